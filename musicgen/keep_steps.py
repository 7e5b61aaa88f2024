"""The user's notes forced into a `steps` stream (accompany, infill, harmonize on steps
checkpoints, the default encoding).

In steps each part lists its whole sounding set at every grid step where it changes
(musicgen.encoding.steps). Keeping a part therefore means: at each of its change steps
(`StepsEncoding.part_changes`, what `encode` lists) the part is listed with exactly its
held and started notes (velocities included), and at no other step is it listed (a
listing there would hold, strike or silence notes of the user's). Free parts - added
parts, a rewritten part inside an infill window - list what the model likes, with three
limits:

- a rewritten part holds the song's notes that began before the window and sound into
  it, to their own end; at the window's end the part is listed again with the song's
  own sounding notes when what it sounds differs (what the model wrote there ends);
- a rewritten pitched part's new notes keep to its register in the song (the plan's
  `register`: pitches its own notes span, a little wider), so a vocal stays a vocal;
- an added pitched part stays under the plan's ceiling (harmonize): its held and new
  pitches are below the ceiling at each step, and it is listed (to drop the notes) at
  a step where the ceiling falls to what it holds;
- parts come in header order, so a free part is listed before a required one only when
  it comes first in the header.

The grammar never dead-ends: a step is offered only when some part can be listed there,
never past the next step where a part must be listed, and a part's group only when it
can be completed. The requirements are precomputed per part (`_Rules`, shared by every
candidate); the state per candidate is the inner `StepsGrammar` and the step's lists.
"""

from __future__ import annotations

import bisect

import numpy as np

from musicgen.encoding.base import BOS, EOS
from musicgen.encoding.remi import BAR, DENSITY, KEY, PITCH, POSITION, VELOCITY
from musicgen.encoding.steps import StepsEncoding, StepsGrammar
from musicgen.encoding.tracks import (
    DRUM,
    HOLD,
    PHASE_BAR,
    PHASE_CONTROLS,
    PHASE_HEADER,
    PHASE_KEY,
    PHASE_POSITION,
    PHASE_TEMPO,
    PHASE_TIMESIG,
    PHASE_VELOCITY,
    TRACK,
)
from musicgen.score import DRUM_PROGRAM
from musicgen.songplan import PlanGrammar, SongPlan

# one listed note of a kept part: (pitch or drum note, velocity bin; None for a Hold)
Listed = tuple[int, int | None]
FREE = None  # a part that must be listed at a step, with notes of the model's choice


class _Rules:
    """What the plan requires of each part, precomputed once for every candidate."""

    def __init__(self, encoding: StepsEncoding, plan: SongPlan):
        self.plan = plan
        self.parts = len(plan.programs)
        self.drum = [p == DRUM_PROGRAM for p in plan.programs]
        self.end = plan.end
        self.window = plan.window
        grids: dict[int, list] = {p: [] for p in plan.user}
        for n in plan.kept:
            grids[n.part].append((n.onset, n.value, n.velocity, n.steps))
        self.changes: dict[int, dict] = {}
        self.after: dict[int, tuple[list[int], list[frozenset[int]]]] = {}
        required: set[int] = set()
        for p, grid in grids.items():
            changes = encoding.part_changes(sorted(grid), self.drum[p])
            changes = {s: c for s, c in changes.items() if s < self.end}
            self.changes[p] = changes
            steps = sorted(changes)
            sounds = [
                frozenset()
                if self.drum[p]
                else frozenset([*changes[s][0], *(n for n, _ in changes[s][1])])
                for s in steps
            ]
            self.after[p] = (steps, sounds)
            required.update(steps)
        self.required = sorted(required)
        a, b = plan.window
        self.rewritten = sorted(p for p in plan.rewrite if not self.drum[p])
        # a rewritten part's notes that sound into the window: (pitch, end step)
        self.span = {p: self._span(p) for p in self.rewritten}
        self.ceiling = plan.ceiling
        self.ceiled = (
            [p for p in range(self.parts) if p not in plan.user and not self.drum[p]]
            if plan.ceiling is not None
            else []
        )
        # any step is listable when an added part can always strike a note
        self.always = any(
            p not in plan.user and (self.drum[p] or p not in self.ceiled) for p in range(self.parts)
        )
        self.pitch_min = encoding.config.pitch_min
        self._falls: dict[int, np.ndarray] = {}

    def _span(self, part: int) -> list[tuple[int, int]]:
        """(pitch, end step) of what a rewritten part sounds into its window, as the
        stream tells it (a note struck again on its pitch ends there); the end is the
        first change from the window's start on that does not hold it."""
        a = self.window[0]
        out = []
        for pitch in self.sounding_at(part, a):
            end = self.end
            for step in self.after[part][0]:
                held, started = self.changes[part][step]
                if step >= a and pitch not in held and all(n != pitch for n, _ in started):
                    end = step
                    break
            out.append((pitch, end))
        return out

    # -- the song's own sounding notes
    def sounding_at(self, part: int, step: int) -> frozenset[int]:
        """What a kept part sounds just before `step` by the song: after its last change."""
        steps, sounds = self.after[part]
        i = bisect.bisect_left(steps, step) - 1
        return sounds[i] if i >= 0 else frozenset()

    def target(self, part: int, step: int, sounding: set[int]) -> list[Listed] | None:
        """The listing a kept part must have at `step` (pitches falling), or None when
        it must not be listed there."""
        change = self.changes[part].get(step)
        if change is not None:
            held, started = change
            return sorted([(n, None) for n in held] + list(started), key=lambda n: -n[0])
        want = self.sounding_at(part, step)
        if sounding != want:  # a rewritten part at its window's end
            return [(n, None) for n in sorted(want, reverse=True)]
        return None

    def ceiling_at(self, step: int) -> int:
        return int(self.ceiling[min(step, len(self.ceiling) - 1)])

    def falls_to(self, pitch: int, start: int) -> int | None:
        """The first step >= start where the ceiling is at or under `pitch`."""
        steps = self._falls.get(pitch)
        if steps is None:
            steps = self._falls[pitch] = np.flatnonzero(self.ceiling <= pitch)
        i = int(np.searchsorted(steps, start))
        return int(steps[i]) if i < steps.size else None

    # -- free parts
    def holds(self, part: int, step: int) -> tuple[list[int], set[int]]:
        """(pitches a rewritten part must hold at `step`, pitches it may not hold)."""
        if part not in self.span or not self.window[0] <= step < self.window[1]:
            return [], set()
        must = [pitch for pitch, end in self.span[part] if end > step]
        ended = {pitch for pitch, end in self.span[part] if end == step}
        return must, ended

    def must_at(self, step: int, sounding: list[set[int]]) -> dict[int, list[Listed] | None]:
        """The parts that must be listed at `step`: kept ones with their listing, free
        ones (FREE) whose kept notes end there or that hold a pitch the ceiling falls to."""
        out: dict[int, list[Listed] | None] = {}
        for p in self.changes:
            if self.plan.free(p, step):
                if step in self.changes[p]:
                    out[p] = FREE
                continue
            target = self.target(p, step, sounding[p])
            if target is not None:
                out[p] = target
        for p in self.ceiled:
            if sounding[p] and max(sounding[p]) >= self.ceiling_at(step):
                out[p] = FREE
        return out

    def next_required(self, step: int, sounding) -> int | None:
        """The first step after `step` (before the plan's end) where a part must be
        listed, given what the parts sound (`sounding(part)`); None if there is none."""
        i = bisect.bisect_right(self.required, step)
        best = self.required[i] if i < len(self.required) else None
        b = self.window[1]
        if step < b < self.end and (best is None or b < best):
            for p in self.rewritten:
                if b not in self.changes[p] and sounding(p) != self.sounding_at(p, b):
                    best = b
                    break
        for p in self.ceiled:
            held = sounding(p)
            if held:
                t = self.falls_to(max(held), step + 1)
                if t is not None and t < self.end and (best is None or t < best):
                    best = t
        return best

    def can_start(self, part: int, step: int, sounding: set[int]) -> bool:
        """Can a free part be listed at `step` (a note, a hold, or silence)?"""
        if self.drum[part] or sounding:
            return True
        return part not in self.ceiled or self.ceiling_at(step) > self.pitch_min

    def listable(self, step: int, sounding) -> bool:
        """Can some free part be listed at `step`?"""
        if self.always:
            return True
        return any(
            self.plan.free(p, step) and self.can_start(p, step, sounding(p))
            for p in range(self.parts)
        )


class StepsKeepGrammar(PlanGrammar):
    """The steps grammar narrowed to a `SongPlan`; see the module docstring.

    State beside the inner grammar's: `step` (the absolute grid step of the last
    Position; None before the bar's first), `must` (the parts that must be listed at
    it, with their listing) and `listed` (the parts listed at it so far)."""

    def __init__(self, inner: StepsGrammar, encoding: StepsEncoding, plan: SongPlan, rules: _Rules):
        super().__init__(inner, encoding, plan)
        self.rules = rules
        self.step: int | None = None
        self.must: dict[int, list[Listed] | None] = {}
        self.listed: set[int] = set()
        self._mask: np.ndarray | None = None
        self.hold0 = self.r[HOLD][0] - encoding.config.pitch_min
        self.pitch0 = self.r[PITCH][0] - encoding.config.pitch_min

    # ------------------------------------------------------------------ the mask

    def allowed(self) -> np.ndarray:
        if self._mask is None:
            self._mask = self._allowed()
        return self._mask

    def advance_allowed(self, token_id: int) -> None:
        self.g.advance_allowed(token_id)  # our mask is a subset of the inner one
        self._mask = None
        self._observe(token_id)

    def _allowed(self) -> np.ndarray:
        mask = self.inner.allowed()
        phase = self.g.phase
        if phase == PHASE_HEADER:
            return self._header(mask)
        if self.g.done or self.g.bars == 0:
            return mask
        if phase == PHASE_CONTROLS:
            return self._opening(mask, KEY)
        if phase == PHASE_KEY:
            return self._opening(mask, DENSITY)
        if phase in (PHASE_BAR, PHASE_TIMESIG, PHASE_TEMPO):
            out = mask.copy()
            if not self._openings_mask(out):
                self._no_step_ids(out)
                self._step_end(mask, out, self._bar_start() - 1, None)
            return out
        return self._in_step(mask)

    def _no_step_ids(self, out: np.ndarray) -> None:
        lo, hi = self.r[POSITION]
        out[lo:hi] = False
        out[self.r[BAR][0]] = out[EOS] = False

    def _in_step(self, mask: np.ndarray) -> np.ndarray:
        """Inside a step: the current part's notes, a later part's Track, the step's end."""
        out = np.zeros_like(mask)
        g, step, part = self.g, self.step, self.g.part
        if g.phase == PHASE_VELOCITY:
            self._notes(mask, out, part, step)
            return out
        opened = g.phase != PHASE_POSITION  # a group is open (after a Position: none yet)
        waiting = [p for p in self.must if p not in self.listed and not (opened and p == part)]
        first_due = min(waiting, default=self.rules.parts)
        if part is not None and (opened or self._may_list(part, step, first_due)):
            self._notes(mask, out, part, step)
        if not opened or self._complete(part, step):
            tlo = self.r[TRACK][0]
            for j in range(min(first_due, self.rules.parts - 1) + 1):
                if mask[tlo + j] and self._may_list(j, step, first_due):
                    out[tlo + j] = True
        if opened:
            if not waiting and self._complete(part, step):
                self._step_end(mask, out, step, (part, set(g.listed or ())))
        elif part is not None and self._may_empty(part, step):  # the carried part, empty
            if all(p == part for p in waiting):
                self._step_end(mask, out, step, (part, set()))
        return out

    def _may_list(self, part: int, step: int, first_due: int) -> bool:
        """May `part` be listed now (in header order, before the first part due)?"""
        if part > first_due or part in self.listed:
            return False
        if part in self.must:
            return True
        if not self.plan.free(part, step):
            return False
        return self.rules.can_start(part, step, self.g.sounding[part])

    def _may_empty(self, part: int, step: int) -> bool:
        """May the carried part be listed with no notes (a Position alone)?"""
        if not self.plan.free(part, step):
            return self.must.get(part, FREE) == []
        return not self.rules.holds(part, step)[0]

    def _complete(self, part: int, step: int) -> bool:
        """Has the open group of `part` listed all it must?"""
        listed = self.g.listed or set()
        target = self.must.get(part)
        if not self.plan.free(part, step):
            return target is not None and len(listed) == len(target)
        return all(pitch in listed for pitch in self.rules.holds(part, step)[0])

    def _notes(self, mask: np.ndarray, out: np.ndarray, part: int, step: int) -> None:
        """The next note ids of `part`'s group: exactly the kept listing's next one, or
        the model's choice within the free part's limits."""
        if not self.plan.free(part, step):
            target = self.must.get(part)
            done = len(self.g.listed or ())
            if target is not None and done < len(target):
                token = self._listed_id(part, target[done])
                out[token] = mask[token]
            return
        if self.rules.drum[part]:
            for kind in (VELOCITY, DRUM):
                lo, hi = self.r[kind]
                out[lo:hi] = mask[lo:hi]
            return
        must, ended = self.rules.holds(part, step)
        listed = self.g.listed or set()
        floor = max((p for p in must if p not in listed), default=-1)  # holds not to skip
        top = self.rules.ceiling_at(step) if part in self.rules.ceiled else 1 << 30
        c = self.enc.config
        bottom, roof = self.plan.register.get(part, (c.pitch_min, c.pitch_max))
        low, high = max(floor, c.pitch_min, bottom), min(top - 1, c.pitch_max, roof)
        if low <= high:
            out[self.hold0 + low : self.hold0 + high + 1] = mask[
                self.hold0 + low : self.hold0 + high + 1
            ]
            for pitch in ended:
                out[self.hold0 + pitch] = False
            first = max(floor + 1, c.pitch_min, bottom)
            if first <= high:
                out[self.pitch0 + first : self.pitch0 + high + 1] = mask[
                    self.pitch0 + first : self.pitch0 + high + 1
                ]
                below = min(self.g.below, high + 1)
                if below > first:  # some Pitch can follow a Velocity
                    vlo, vhi = self.r[VELOCITY]
                    out[vlo:vhi] = mask[vlo:vhi]

    def _listed_id(self, part: int, note: Listed) -> int:
        pitch, vbin = note
        if vbin is None:
            return self.hold0 + pitch
        if self.g.phase != PHASE_VELOCITY and self.g.velocity[part] != vbin:
            return self.r[VELOCITY][0] + vbin
        if self.rules.drum[part]:
            return self.r[DRUM][0] + pitch
        return self.pitch0 + pitch

    def _step_end(
        self, mask: np.ndarray, out: np.ndarray, step: int, closing: tuple[int, set[int]] | None
    ) -> None:
        """Position / Bar / EOS after `step`: never past the next step where a part must
        be listed, a Position only where some part can be. `closing`: the group being
        closed and what its part will sound."""
        sounding = self.g.sounding
        if closing is None:

            def sounds(p: int) -> set[int]:
                return sounding[p]
        else:
            part, now = closing
            now = set() if self.rules.drum[part] else now

            def sounds(p: int) -> set[int]:
                return now if p == part else sounding[p]

        due = self.rules.next_required(step, sounds)
        bar_start = self._bar_start()
        bar_end = bar_start + self.plan.bars[self.g.bars - 1][1]
        lo = self.r[POSITION][0]
        last = bar_end - 1 if due is None or due >= bar_end else due
        for at in range(step + 1, last + 1):
            pos = at - bar_start
            if mask[lo + pos] and (at == due or self.rules.listable(at, sounds)):
                out[lo + pos] = True
        if due is None or due >= bar_end:
            out[self.r[BAR][0]] = mask[self.r[BAR][0]]
        if due is None:
            out[EOS] = mask[EOS]

    # ------------------------------------------------------------------ bookkeeping

    def _observe(self, token_id: int) -> None:
        self._observe_opening(token_id)
        kind = self.enc.token_kind(token_id)
        if kind == BAR:
            self.step, self.must, self.listed = None, {}, set()
        elif kind == POSITION:
            self.step = self._bar_start() + self.enc.token_value(token_id)
            self.must = self.rules.must_at(self.step, self.g.sounding)
            self.listed = set()
        elif kind == TRACK:
            self.listed.add(self.enc.token_value(token_id))
        elif kind in (HOLD, VELOCITY, PITCH, DRUM):
            self.listed.add(self.g.part)

    def clone(self) -> StepsKeepGrammar:
        """An independent copy in the same state (plan, rules and encoding shared)."""
        twin = StepsKeepGrammar.__new__(StepsKeepGrammar)
        twin.__dict__.update(self.__dict__)
        twin.inner = twin.g = self.g.copy()
        twin.pending, twin.listed = list(self.pending), set(self.listed)
        return twin


def start_steps_grammar(encoding: StepsEncoding, plan: SongPlan) -> StepsKeepGrammar:
    """A StepsKeepGrammar for `plan`'s number of bars that has read BOS."""
    grammar = StepsKeepGrammar(
        encoding.grammar(len(plan.bars)), encoding, plan, _Rules(encoding, plan)
    )
    grammar.advance(BOS)
    return grammar
