"""The sampler holds each part to what its instrument plays in the training data.

`PartsGrammar` wraps the grammar of a tracks or steps stream (alone, or narrowed by
--instruments, a song to keep, controls) and narrows what the part being written may
play to its family's `PartProfile` (`musicgen.profiles`):

- a new note (Pitch) only inside the family's register, a drum hit (Drum) only on the
  family's kit;
- a part's new notes within its family's `span` of the notes it has struck so far in the
  piece (its own notes forced by a song count), so one part keeps one register;
- on steps, a note held no longer than its family's `sustain`: once a note the sampler
  struck has sounded that long, the stream must come to a step by then (no later
  Position, no Bar, no EOS, which ends notes at the end of the bar) and list the part
  there (no later part's Track, no end of the step before it) without the note and
  without a new one: the note ends and the part rests until the network strikes again;
- as many new notes in the long run as the family's busier parts play where they play
  (`pace`), with room for a busy bar (`burst`): each part draws its new notes from an
  allowance that starts full and that every Bar raises by `pace`, up to `burst`; a part
  whose allowance is spent strikes nothing until the next bar (it may hold notes, and
  rest);
- a drum part's cymbals (crash, ride, china, splash) no more of its hits than the
  family's `cymbals`: once they would pass that share of the part's hits so far (with a
  grace of CYMBAL_GRACE hits, a crash on the one), the part plays the rest of its kit
  until they are back under it, so no part washes in cymbals more than 3 in 4 of the
  training drum parts do (a ride groove becomes a hi-hat one, not a mix of the two
  groups capped in turn);
- on steps, a new drum part rests no more bars in a row than the family's `rest` (a bar
  with fewer hits than beats is a rest; its lead-in included): once it has, it enters
  in the next bar, where the first step
  of each beat lists it with a hit (no Position, Bar or EOS before it, no later part's
  Track) and the bar does not end before a hit in its last beat; it enters again in
  each following bar until it strikes ENTRY_HITS a beat in one (the network has taken
  the groove up). A network that has heard the drums rest for a window goes on resting
  (no training window holds the header that says a drummer is in the band), so without
  this drums asked for over a sparse song could strike a few times in 64 bars;
- at most `cap` notes struck at one step (one group of the part); a single-line
  family (cap 1, a bass) also lists nothing else at a step where it strikes or holds
  a note (steps: no held note under a new one);
- with `harmony` (accompany): a bass's new notes on the pitch classes the song's kept
  parts sound in that beat, where they sound any and such a note fits;
- in the header, only programs the model was trained on (`known`).

A Velocity is offered only when a note that the part may strike can follow it. The
wrapper never dead-ends: where its narrowing would leave nothing (a kept part's
forced note, a held edge of an infill window), the inner grammar's own choices stand.
Parts in `exempt` (the user's kept parts) are never narrowed. Holds are not narrowed
by register: they go on with notes already struck.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from musicgen.encoding import EOS, Grammar, NarrowedGrammar
from musicgen.encoding.remi import BAR, PITCH, POSITION, VELOCITY
from musicgen.encoding.steps import StepsGrammar
from musicgen.encoding.tracks import (
    DRUM,
    HOLD,
    PHASE_HEADER,
    PHASE_NOTE,
    PHASE_POSITION,
    PHASE_TRACK,
    PHASE_VELOCITY,
    PROGRAM,
    TRACK,
    TracksEncoding,
    TracksGrammar,
)
from musicgen.instruments import DRUM_GROUPS, family
from musicgen.profiles import PartProfile
from musicgen.score import DRUM_PROGRAM

NOTE_PHASES = (PHASE_POSITION, PHASE_TRACK, PHASE_VELOCITY, PHASE_NOTE)
HARMONY_FAMILIES = ("bass",)  # families held to the song's harmony in accompany
NEVER = 1 << 30  # a grid step no piece reaches
CYMBAL_GRACE = 2.0  # cymbal hits allowed beyond their share of a drum part's hits
ENTRY_HITS = 3  # hits a beat that end a drum part's entry (the groove taken up)

# (bar index from 0, position in the bar in grid steps) -> pitch classes sounding in
# that beat, or None where the song sounds none
Harmony = Callable[[int, int], frozenset[int] | None]


def base_grammar(grammar: Grammar) -> TracksGrammar:
    """The tracks/steps grammar under any wrappers (`inner`, or a keep grammar's `g`)."""
    while not isinstance(grammar, TracksGrammar):
        grammar = getattr(grammar, "g", None) or grammar.inner  # type: ignore[attr-defined]
    return grammar


class _Rule:
    """One header part's limits as boolean arrays over its note values (Pitch: pitch
    - pitch_min; Drum: drum note)."""

    def __init__(self, encoding: TracksEncoding, program: int, profile: PartProfile):
        c = encoding.config
        self.drum = program == DRUM_PROGRAM
        self.cap = profile.cap
        self.single = profile.cap == 1 and not self.drum
        self.span = 0 if self.drum else profile.span
        # grid steps a struck note may sound (0: no limit)
        steps = profile.sustain * encoding.config.steps_per_quarter
        self.sustain = 0 if self.drum or steps <= 0 else max(1, math.ceil(steps))
        self.kind = DRUM if self.drum else PITCH
        self.lo = 0 if self.drum else c.pitch_min  # value of the kind's first id
        values = np.arange(128) if self.drum else np.arange(c.pitch_min, c.pitch_max + 1)
        self.values = values  # the note value of each entry (PartsGrammar._order reads it)
        # drums: the most of the part's hits its cymbals may take (None: no limit)
        self.cymbals = profile.cymbals if self.drum and profile.cymbals < 1.0 else None
        self.cymbal = np.isin(values, DRUM_GROUPS["cymbal_share"]) if self.drum else None
        # drums: bars in a row (under a hit a beat) the part may rest (None: no limit)
        self.rest = profile.rest if self.drum and profile.rest >= 0 else None
        if self.drum:
            self.ok = np.isin(values, profile.kit or range(profile.low, profile.high + 1))
        else:
            self.ok = (values >= profile.low) & (values <= profile.high)
        if not self.ok.any():  # a register outside the model's range: leave it free
            self.ok[:] = True
        self.pcs = values % 12
        self.harmony = not self.drum and family(program) in HARMONY_FAMILIES
        # new notes per bar in the long run, and at most in one bar (0: no limit)
        self.rate = profile.pace if profile.burst else 0.0
        self.burst = float(profile.burst) if self.rate > 0 else 0.0


class PartsGrammar(NarrowedGrammar):
    """See the module docstring. `profiles`: {family name: PartProfile} (a family
    without one is free); `known`: programs the header may name (empty: any);
    `exempt`: header indices never narrowed; `harmony`: see `Harmony`."""

    def __init__(
        self,
        inner: Grammar,
        encoding: TracksEncoding,
        profiles: dict[str, PartProfile],
        *,
        known: Iterable[int] = (),
        exempt: Iterable[int] = (),
        harmony: Harmony | None = None,
    ):
        super().__init__(inner)
        self.enc = encoding
        self.g = base_grammar(inner)
        self.steps = isinstance(self.g, StepsGrammar)
        self.profiles = profiles
        self.exempt = frozenset(exempt)
        self.harmony = harmony
        self.r = encoding.id_range
        known = set(known)
        self.known: np.ndarray | None = None
        if known:
            self.known = np.zeros(129, dtype=bool)
            self.known[sorted(known)] = True
        self.rules: dict[int, _Rule | None] = {}
        self.started = 0  # notes struck in the open group
        self.listed = 0  # notes listed (struck or held) in the open group
        self.struck: dict[int, tuple[int, int]] = {}  # part -> (lowest, highest) pitch so far
        self.bar_start = 0  # grid step of the open bar's start (steps)
        self.onsets: dict[int, dict[int, int]] = {}  # part -> {pitch: grid step struck}
        self.earliest = NEVER  # the earliest end (grid step) of a note in `onsets`
        self.allowance: dict[int, float] = {}  # part -> new notes it may strike now
        self.hits: dict[int, tuple[int, int]] = {}  # drum part -> (hits, cymbal hits)
        self.last_hit: dict[int, int] = {}  # drum part -> grid step of its last hit (steps)
        self.rested: dict[int, int] = {}  # drum part -> bars in a row it has rested
        self.entering: dict[int, int] = {}  # drum part -> the bar it must enter in
        self.bar_hits: dict[int, int] = {}  # drum part -> its hits in the open bar
        self.resting: list[int] | None = None  # new parts with a `rest` (after the header)
        self._mask: np.ndarray | None = None

    def clone(self) -> PartsGrammar:
        """An independent copy (the inner grammar's `clone`), the rules shared."""
        twin = PartsGrammar.__new__(PartsGrammar)
        twin.__dict__.update(self.__dict__)
        twin.inner = self.inner.clone()  # type: ignore[attr-defined]
        twin.g = base_grammar(twin.inner)
        twin.struck = dict(self.struck)
        twin.onsets = {part: dict(notes) for part, notes in self.onsets.items()}
        twin.allowance = dict(self.allowance)
        twin.hits = dict(self.hits)
        twin.last_hit = dict(self.last_hit)
        twin.rested = dict(self.rested)
        twin.entering = dict(self.entering)
        twin.bar_hits = dict(self.bar_hits)
        return twin

    # ------------------------------------------------------------------ the mask

    def allowed(self) -> np.ndarray:
        if self._mask is None:  # computed once per token (advance reads it again)
            mask = self.inner.allowed()
            out = self._narrow(mask)
            out = mask if out is None or not out.any() else out
            held = self._release(out) if self.onsets else None
            out = out if held is None or not held.any() else held
            enter = self._enter(out) if self.steps else None
            self._mask = out if enter is None or not enter.any() else enter
        return self._mask

    def advance_allowed(self, token_id: int) -> None:
        if self.steps and token_id == self.r[BAR][0]:
            self.bar_start += self.g.bar_len  # the bar that ends (0 before the first)
        self.inner.advance_allowed(token_id)  # our mask is a subset of the inner one
        self._mask = None
        self._observe(token_id)

    def _narrow(self, mask: np.ndarray) -> np.ndarray | None:
        """The narrowed mask, or None where nothing is narrowed."""
        g = self.g
        if g.phase == PHASE_HEADER:
            return self._header(mask)
        part = g.part
        if g.phase not in NOTE_PHASES or part is None or part in self.exempt:
            return None
        rule = self._rule(part)
        if rule is None:
            return None
        out = mask.copy()
        lo, hi = self.r[rule.kind]
        full = (
            self.started >= rule.cap
            or (rule.single and self.listed >= 1)
            or (rule.burst > 0 and self.allowance.get(part, rule.burst) < 1.0)
        )
        ok = self._values(rule)
        if full:
            out[lo:hi] = False
        else:
            out[lo:hi] &= ok
        if self.steps and rule.single and self.listed >= 1:
            hlo, hhi = self.r[HOLD]
            out[hlo:hhi] = False
        if full or not (ok & self._order(rule)).any():
            vlo, vhi = self.r[VELOCITY]
            out[vlo:vhi] = False
        return out

    def _header(self, mask: np.ndarray) -> np.ndarray | None:
        if self.known is None:
            return None
        out = mask.copy()
        lo, hi = self.r[PROGRAM]
        out[lo:hi] &= self.known[: hi - lo]
        return out

    def _rule(self, part: int) -> _Rule | None:
        if part not in self.rules:
            program = self.g.programs[part]
            profile = self.profiles.get(family(program))
            self.rules[part] = None if profile is None else _Rule(self.enc, program, profile)
        return self.rules[part]

    def _order(self, rule: _Rule) -> np.ndarray:
        """Note values that may come next in the group's order: below the last (steps,
        pitches falling) or above it (tracks, rising)."""
        if self.steps:
            return rule.values < self.g.below  # type: ignore[attr-defined]
        return rule.values > self.g.pitch + rule.lo

    def _values(self, rule: _Rule) -> np.ndarray:
        """The note values the part may strike now: its register or kit within its span,
        narrowed to the beat's harmony where some such note can still come."""
        ok = self._register(rule)
        if rule.cymbals is not None:
            ok = self._cymbals(rule, ok)
        if not (rule.harmony and self.harmony is not None and self.g.bars):
            return ok
        pcs = self.harmony(self.g.bars - 1, max(self.g.position, 0))
        if not pcs:
            return ok
        on = ok & np.isin(rule.pcs, sorted(pcs))
        return on if (on & self._order(rule)).any() else ok

    def _cymbals(self, rule: _Rule, ok: np.ndarray) -> np.ndarray:
        """The kit without its cymbals once one more would pass their share of the part's
        hits (the kit as it is where that would leave no drum)."""
        hits, cymbals = self.hits.get(self.g.part, (0, 0))  # type: ignore[arg-type]
        if cymbals + 1 <= rule.cymbals * (hits + 1) + CYMBAL_GRACE:
            return ok
        out = ok & ~rule.cymbal
        return out if out.any() else ok

    def _register(self, rule: _Rule) -> np.ndarray:
        """The register (or kit), narrowed to `span` semitones around the part's notes so
        far: no new note more than `span` above its lowest or below its highest."""
        struck = self.struck.get(self.g.part)  # type: ignore[arg-type]
        if not rule.span or struck is None:
            return rule.ok
        low, high = struck
        near = rule.ok & (rule.values >= high - rule.span) & (rule.values <= low + rule.span)
        return near if near.any() else rule.ok

    def _release(self, mask: np.ndarray) -> np.ndarray | None:
        """`mask` narrowed so that no struck note sounds past its part's `sustain` (steps):
        see the module docstring. None where nothing is due."""
        g = self.g
        if g.done or not g.bars:  # the header, or the piece has ended
            return None
        now = self._now()
        if self.earliest > now and self.earliest - self.bar_start >= g.bar_len:
            return None  # no struck note ends before this bar does
        due, deadline = self._due(now)
        soon = deadline - self.bar_start < g.bar_len and g.position + 1 < g.bar_len
        if not (due or soon):
            return None
        out = mask.copy()
        if soon:  # no step after the deadline (at least the next step stays open)
            upto = max(deadline - self.bar_start, g.position + 1)
            out[self.r[POSITION][0] + upto + 1 : self.r[POSITION][1]] = False
            out[[self.r[BAR][0], EOS]] = False  # EOS ends notes at the bar's end
        if due and g.phase in NOTE_PHASES:
            self._list_due(out, due)
        return out

    def _list_due(self, out: np.ndarray, due: dict[int, list[int]]) -> None:
        """Narrow `out` (in a step) so that the parts with late notes are listed here, in
        part order, each without its late notes and without a new one."""
        g = self.g
        tlo, thi = self.r[TRACK]
        late = due.pop(g.part, None) if g.part is not None else None
        if late:  # being listed, or goes on right after the Position: the late notes
            hlo = self.r[HOLD][0] - self.enc.config.pitch_min  # end and nothing starts
            out[[hlo + p for p in late]] = False
            self._clear(out, VELOCITY, PITCH)
            if g.phase == PHASE_POSITION:  # a later part's Track would pass it by
                out[tlo + g.part + 1 : thi] = False  # type: ignore[operator]
        if due:
            self._list_here(out, min(due))  # the next part to list

    def _list_here(self, out: np.ndarray, part: int) -> None:
        """Narrow `out` (in a step) so that `part` is listed at this step: no Position,
        Bar or EOS, no later part's Track before it; nothing where this step has passed
        it already (the next step lists it)."""
        g = self.g
        passed = g.part is not None and g.part > part
        if passed and g.phase != PHASE_POSITION:
            return
        tlo, thi = self.r[TRACK]
        out[tlo + part + 1 : thi] = False
        self._clear(out, POSITION, BAR)
        out[EOS] = False
        if passed:  # after the Position, the later part's notes would come first
            self._clear(out, HOLD, VELOCITY, PITCH, DRUM)

    def _enter(self, mask: np.ndarray) -> np.ndarray | None:
        """`mask` narrowed so that a drum part entering in this bar (it rested its `rest`
        bars before it, or has not taken the groove up since) strikes at the first step of each beat and in the bar's
        last beat (module docstring); None where none is due."""
        g = self.g
        entering = [p for p, bar in self.entering.items() if bar == g.bars]
        if g.done or not entering:
            return None
        spq = self.enc.config.steps_per_quarter
        beat = self.bar_start + max(g.position, 0) // spq * spq  # grid step of the beat
        last = self.bar_start + g.bar_len - spq
        out = mask.copy()
        if any(self.last_hit.get(p, -1) < last for p in entering):
            out[[self.r[BAR][0], EOS]] = False  # not the bar's end before its last beat
        due = [p for p in entering if self.last_hit.get(p, -1) < beat]
        at_position = g.phase == PHASE_POSITION
        waiting = [p for p in due if at_position or g.part is None or p >= g.part]
        if g.phase not in NOTE_PHASES or not waiting:
            return out  # passed in this step: the next step lists it
        part = min(waiting)
        self._list_here(out, part)
        if g.part == part and not at_position:  # listed: a hit, not the next part
            self._clear(out, TRACK)
        return out

    def _enters(self) -> None:
        """A Bar: which parts held to a `rest` enter in it: those whose last `rest` bars
        were rests (under a hit a beat, counted from the first bar), and those that
        entered in the bar before and struck fewer than ENTRY_HITS a beat there (the
        network has not taken the groove up yet). The header's new drum parts are found
        at the first Bar."""
        g = self.g
        if self.resting is None:
            parts = [p for p in range(len(g.programs)) if p not in self.exempt]
            self.resting = [p for p in parts if (rule := self._rule(p)) and rule.rest is not None]
        beats = g.bar_len / self.enc.config.steps_per_quarter  # of the bar that ended
        for part in self.resting:
            hits = self.bar_hits.get(part, 0)
            if g.bars > 1:  # a bar has ended
                self.rested[part] = self.rested.get(part, 0) + 1 if hits < beats else 0
            going = self.entering.get(part) == g.bars - 1
            if self.rested.get(part, 0) >= self.rules[part].rest or (  # type: ignore[union-attr,operator]
                going and hits < ENTRY_HITS * beats
            ):
                self.entering[part] = g.bars
        self.bar_hits.clear()

    def _clear(self, out: np.ndarray, *kinds: int) -> None:
        """Disallow every id of these token kinds."""
        for kind in kinds:
            lo, hi = self.r[kind]
            out[lo:hi] = False

    def _due(self, now: int) -> tuple[dict[int, list[int]], int]:
        """({part: its sounding struck pitches that have sounded their sustain by grid
        step `now`}, the earliest grid step by which a struck note must end). The part
        being listed (or going on after the Position) is due on what it sounded before;
        its deadline is that of the notes that sound on from this step."""
        g = self.g
        due: dict[int, list[int]] = {}
        deadline = NEVER
        listing = g.listed is not None  # type: ignore[attr-defined]
        for part, struck in self.onsets.items():
            sustain = self.rules[part].sustain  # type: ignore[union-attr]
            sounding = g.sounding[part]  # type: ignore[attr-defined]
            late = [p for p in sounding if p in struck and struck[p] + sustain <= now]
            if late:
                due[part] = late
            going = sounding
            if part == g.part and g.phase in NOTE_PHASES:  # listed in this step: late notes end
                going = (g.listed if listing else sounding) - set(late)  # type: ignore[attr-defined]
            ends = [struck[p] + sustain for p in going if p in struck]
            deadline = min(deadline, *ends) if ends else deadline
        return due, deadline

    # ------------------------------------------------------------------ bookkeeping

    def _observe(self, token_id: int) -> None:
        kind = self.enc.token_kind(token_id)
        if kind in (POSITION, BAR, TRACK) or token_id == EOS:
            self.started = self.listed = 0
            if self.onsets:
                self._forget()
            if kind == BAR:
                self._refill()
                if self.steps:
                    self._enters()
        elif kind in (PITCH, DRUM):
            self.started += 1
            self.listed += 1
            self._spend(self.g.part)
            if kind == DRUM and self.g.part is not None:
                self._hit(self.g.part, token_id - self.r[DRUM][0])
                self.last_hit[self.g.part] = self._now()
                self.bar_hits[self.g.part] = self.bar_hits.get(self.g.part, 0) + 1
            if kind == PITCH and self.g.part is not None:
                pitch = token_id - self.r[PITCH][0] + self.enc.config.pitch_min
                self._struck(self.g.part, pitch)
                self._onset(self.g.part, pitch)
        elif kind == HOLD:
            self.listed += 1

    def _spend(self, part: int | None) -> None:
        """A new note of a part with a `burst` comes out of its allowance (never below 0:
        a song's own notes forced in a rewritten part leave it empty, not in debt)."""
        if part is None or part in self.exempt:
            return
        rule = self._rule(part)
        if rule is not None and rule.burst:
            self.allowance[part] = max(0.0, self.allowance.get(part, rule.burst) - 1.0)

    def _hit(self, part: int, note: int) -> None:
        """Count a drum part's hit, and whether it is a cymbal (a part held to `cymbals`)."""
        rule = None if part in self.exempt else self._rule(part)
        if rule is None or rule.cymbals is None:
            return
        hits, cymbals = self.hits.get(part, (0, 0))
        self.hits[part] = (hits + 1, cymbals + int(rule.cymbal[note]))

    def _refill(self) -> None:
        """A new bar: each part's allowance rises by its rate, up to its burst."""
        for part, left in self.allowance.items():
            rule = self.rules[part]
            self.allowance[part] = min(rule.burst, left + rule.rate)  # type: ignore[union-attr]

    def _struck(self, part: int, pitch: int) -> None:
        """Widen the part's (lowest, highest) by a pitch it strikes."""
        low, high = self.struck.get(part, (pitch, pitch))
        self.struck[part] = (min(low, pitch), max(high, pitch))

    def _onset(self, part: int, pitch: int) -> None:
        """Note when the sampler struck a pitch of a part with a sustain (steps)."""
        if not self.steps or part in self.exempt:
            return
        rule = self._rule(part)
        if rule is None or not rule.sustain:
            return
        now = self._now()
        self.onsets.setdefault(part, {})[pitch] = now
        self.earliest = min(self.earliest, now + rule.sustain)

    def _now(self) -> int:
        """The grid step of the open step (a bar's start before its first Position)."""
        return self.bar_start + max(self.g.position, 0)

    def _forget(self) -> None:
        """Drop the onsets of notes that no longer sound (parts whose group is closed)
        and find the earliest end of those that do."""
        g = self.g
        listing = g.listed is not None  # type: ignore[attr-defined]
        self.earliest = NEVER
        for part, struck in self.onsets.items():
            if not (listing and part == g.part):
                sounding = g.sounding[part]  # type: ignore[attr-defined]
                for pitch in [p for p in struck if p not in sounding]:
                    del struck[pitch]
            if struck:
                sustain = self.rules[part].sustain  # type: ignore[union-attr]
                self.earliest = min(self.earliest, min(struck.values()) + sustain)
