"""What a piece written against a user's song must hold, and the grammar that holds it.

A `SongPlan` says, for a `tracks` encoding, what the token stream of a piece written
against a song must hold: the header (every part's program, the user's and the new ones,
in the encoding's canonical order), each bar's opening (the song's time signature and
tempo, its key when the model has controls, its density where a bar is wholly the
song's) and the user's kept notes as (onset, part, value, velocity bin, steps), in
stream order. `KeepGrammar` wraps the encoding's grammar so that the model may only write
notes where the plan leaves a part free (`SongPlan.free`): an added part everywhere, a
part being rewritten inside an infill window; harmonize adds a ceiling the added parts
stay under. `forced_prefix` reads what the plan leaves no choice about, so that it is
stepped once for every candidate; `fit_around` keeps new notes from cutting kept ones.

Pure Python and NumPy: `arrange.py` reads the song, runs the network and writes files.
"""

from __future__ import annotations

import bisect
import copy
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from musicgen.encoding.base import BOS, EOS, Grammar, NarrowedGrammar
from musicgen.encoding.remi import (
    BAR,
    DENSITY,
    DURATION,
    KEY,
    PITCH,
    POSITION,
    TEMPO,
    TIMESIG,
    VELOCITY,
)
from musicgen.encoding.tracks import (
    DRUM,
    PHASE_CONTROLS,
    PHASE_HEADER,
    PHASE_KEY,
    PHASE_NOTE,
    PHASE_PITCH,
    PHASE_POSITION,
    PHASE_TRACK,
    PHASE_VELOCITY,
    PROGRAM,
    TRACK,
    TracksEncoding,
    TracksGrammar,
    canonical_parts,
)
from musicgen.score import DRUM_PROGRAM, Note, Part, Score

INFILL_HORIZON_BARS = 4  # bars after an infill window that score its candidates


@dataclass(frozen=True, order=True)
class KeptNote:
    """One of the user's notes as the stream must hold it."""

    onset: int  # absolute grid step
    part: int  # index into the header
    value: int  # MIDI pitch, or drum note
    velocity: int  # velocity bin
    steps: int  # duration in grid steps (1 for drums)


@dataclass
class SongPlan:
    """What a piece written against a song must hold; see the module docstring.

    programs:   the header, in canonical order
    user:       header index -> the user's own Part it stands for
    bars:       (start step, steps) of every bar
    openings:   per bar, the TimeSig/Tempo/Key ids it must open with, in order
    kept:       the user's notes in stream order
    window:     (first step, end step) where `rewrite` parts are free (infill)
    rewrite:    header indices of the parts rewritten inside `window`
    skipped:    user notes that no token can hold (out of the pitch range): they are
                still written, the model just does not hear them
    ceiling:    per grid step, the pitch added parts stay below (harmonize), or None
    """

    programs: list[int]
    user: dict[int, Part]
    bars: list[tuple[int, int]]
    openings: list[list[int]]
    kept: list[KeptNote]
    window: tuple[int, int] = (0, 0)
    rewrite: frozenset[int] = frozenset()
    skipped: int = 0
    song: Score = field(default_factory=Score)
    # harmonize: per grid step, the pitch the added parts must stay below (the melody
    # note that began last); None: no ceiling
    ceiling: np.ndarray | None = None

    def free(self, part: int, step: int) -> bool:
        """May the model write a note of `part` at absolute grid step `step`?"""
        if part not in self.user:
            return True
        return part in self.rewrite and self.window[0] <= step < self.window[1]

    def free_parts(self, step: int) -> list[int]:
        return [p for p in range(len(self.programs)) if self.free(p, step)]


def plan_song(
    encoding: TracksEncoding,
    song: Score,
    added: list[int],
    *,
    window: tuple[float, float] | None = None,
    rewrite: list[int] | None = None,
) -> SongPlan:
    """The plan for writing `added` programs against `song` (accompany), or for
    rewriting song parts `rewrite` (indices into `canonical_parts(song)`) inside
    `window` (quarters, infill). The song's parts keep their canonical order; an added
    part goes after the song's parts of the same program."""
    user_parts = canonical_parts(song)
    slots = [(p.program, 0, i) for i, p in enumerate(user_parts)]
    slots += [(program, 1, j) for j, program in enumerate(added)]
    slots.sort(key=lambda s: (s[0] == DRUM_PROGRAM, s[0], s[1], s[2]))
    programs = [s[0] for s in slots]
    user = {h: user_parts[s[2]] for h, s in enumerate(slots) if s[1] == 0}
    header_of = {s[2]: h for h, s in enumerate(slots) if s[1] == 0}

    spq = encoding.config.steps_per_quarter
    dropped: Counter = Counter()
    kept: list[KeptNote] = []
    for i, part in enumerate(user_parts):
        for onset, value, velocity, steps in encoding._part_grid(part, dropped):
            kept.append(KeptNote(onset, header_of[i], value, velocity, steps))
    skipped = dropped.get("pitch_out_of_range", 0)
    end_step = max((n.onset + n.steps for n in kept), default=1)
    end_step = max(end_step, round(song.length * spq))
    bars = encoding._bars(song, end_step, dropped)
    openings = _openings(encoding, song, bars, kept, programs)
    in_window = (0, 0)
    chosen: frozenset[int] = frozenset()
    if window is not None:
        in_window = (round(window[0] * spq), round(window[1] * spq))
        chosen = frozenset(header_of[i] for i in (rewrite or range(len(user_parts))))
        _fix_densities(encoding, bars, kept, openings, in_window)
        kept = [
            n for n in kept if not (n.part in chosen and in_window[0] <= n.onset < in_window[1])
        ]
        # the bars after the window are the song's own: only the first INFILL_HORIZON_BARS
        # of them are read (they score the candidates); the rest is written from the song
        last = next((i for i, b in enumerate(bars) if b.start >= in_window[1]), len(bars))
        bars = bars[: last + INFILL_HORIZON_BARS]
        openings = openings[: len(bars)]
        end = bars[-1].start + bars[-1].steps
        kept = [n for n in kept if n.onset < end]
    return SongPlan(
        programs=programs,
        user=user,
        bars=[(b.start, b.steps) for b in bars],
        openings=openings,
        kept=sorted(kept),
        window=in_window,
        rewrite=chosen,
        skipped=skipped,
        song=song,
    )


def _fix_densities(
    encoding: TracksEncoding,
    bars: list,
    kept: list[KeptNote],
    openings: list[list[int]],
    window: tuple[int, int],
) -> None:
    """With controls, a bar wholly outside the infill window opens with the song's own
    density (its notes are all known), inserted after its Key in `openings`."""
    if not encoding.config.controls:
        return
    starts = [b.start for b in bars]
    counts = Counter(bisect.bisect_right(starts, n.onset) - 1 for n in kept)
    for i, bar in enumerate(bars):
        if bar.start + bar.steps <= window[0] or bar.start >= window[1]:
            openings[i].insert(1, encoding._density_id([None] * counts[i], bar.steps))


def _openings(
    encoding: TracksEncoding, song: Score, bars: list, kept: list[KeptNote], programs: list[int]
) -> list[list[int]]:
    """Each bar's forced opening ids: the song's key (with controls; from its pitched
    notes), its time signature and tempo where they are first or change."""
    tempo_bins = encoding._bar_tempos(song, bars, Counter())
    key = None
    pitched = [
        (n.onset, n.value, n.velocity, n.steps) for n in kept if programs[n.part] != DRUM_PROGRAM
    ]
    if encoding.config.controls and pitched:
        key = encoding._key_id(pitched)
    out = []
    for i, bar in enumerate(bars):
        ids = [key] if key is not None else []
        if i == 0 or bar.signature != bars[i - 1].signature:
            ids.append(encoding._timesig_id[bar.signature])
        if i == 0 or tempo_bins[i] != tempo_bins[i - 1]:
            ids.append(encoding.first_id[TEMPO] + tempo_bins[i])
        out.append(ids)
    return out


class KeepGrammar(NarrowedGrammar):
    """The tracks grammar narrowed to a `SongPlan`: the header and bar openings as
    planned, the user's notes at their places, new notes only where a part is free.

    `k` points at the next kept note. A Position may not pass it, Bar and EOS wait for
    it, and at its onset the parts before its part may only be free ones; its own
    part must then write exactly it (Velocity if the part's velocity differs, the
    pitch or drum, the duration)."""

    def __init__(self, inner: TracksGrammar, encoding: TracksEncoding, plan: SongPlan):
        super().__init__(inner)
        self.g = inner
        self.enc = encoding
        self.plan = plan
        self.r = encoding.id_range
        self.k = 0
        self.pending: list[int] = []  # opening ids of this bar still to come

    # -- where we are
    def _bar_start(self) -> int:
        return self.plan.bars[self.g.bars - 1][0] if self.g.bars else 0

    def _now(self) -> int:
        return self._bar_start() + self.g.position

    def _next(self) -> KeptNote | None:
        return self.plan.kept[self.k] if self.k < len(self.plan.kept) else None

    def allowed(self) -> np.ndarray:
        mask = self.inner.allowed()
        phase = self.g.phase
        if phase == PHASE_HEADER:
            return self._header(mask)
        if self.g.done or self.g.bars == 0:  # before BOS
            return mask
        if phase == PHASE_CONTROLS:
            return self._opening(mask, KEY)
        if phase == PHASE_KEY:  # the bar's Density: the song's own where the plan keeps the bar
            return self._opening(mask, DENSITY)
        out = mask.copy()
        if phase == PHASE_POSITION:
            self._after_position(out)
        elif phase == PHASE_TRACK:
            self._note_start(out, self.g.part)
        elif phase == PHASE_VELOCITY:
            if not self.plan.free(self.g.part, self._now()):
                self._only(out, self._value_id(self._next()))
        elif phase == PHASE_PITCH:  # its duration comes
            if not self.plan.free(self.g.part, self._now()):
                self._only(out, self.r[DURATION][0] + self._next().steps - 1)
        else:  # the open end of a bar: PHASE_BAR, PHASE_TIMESIG, PHASE_TEMPO, PHASE_NOTE
            self._openings_mask(out)
            if not self.pending or not out.any():
                self._open_end(out, phase == PHASE_NOTE)
        if self.plan.ceiling is not None and phase in (
            PHASE_POSITION,
            PHASE_TRACK,
            PHASE_VELOCITY,
            PHASE_NOTE,
        ):
            self._under_ceiling(out)
        return out if out.any() else mask

    def _under_ceiling(self, out: np.ndarray) -> None:
        """An added pitched part's next pitch stays below the plan's ceiling here; a
        Velocity that could lead to no such pitch is not offered."""
        part = self.g.part
        if part is None or part in self.plan.user or self.plan.programs[part] == DRUM_PROGRAM:
            return
        now = min(self._now(), len(self.plan.ceiling) - 1)
        lo, hi = self.r[PITCH]
        first_banned = lo + max(int(self.plan.ceiling[now]) - self.enc.config.pitch_min, 0)
        out[first_banned:hi] = False
        if not out[lo:hi].any() and self.g.phase != PHASE_VELOCITY:
            above = self.r[PITCH][0] + self.g.pitch + 1 if self.g.phase == PHASE_NOTE else lo
            if above >= first_banned:
                vlo, vhi = self.r[VELOCITY]
                out[vlo:vhi] = False

    # -- pieces of the mask
    def _header(self, mask: np.ndarray) -> np.ndarray:
        out = np.zeros_like(mask)
        k = len(self.g.programs)
        if k < len(self.plan.programs):
            out[self.r[PROGRAM][0] + self.plan.programs[k]] = True
        else:
            out[self.r[BAR][0]] = True
        return out & mask

    def _opening(self, mask: np.ndarray, kind: int) -> np.ndarray:
        """At a bar's Key: the planned one, when planned."""
        lo, hi = self.r[kind]
        wanted = [i for i in self.pending if lo <= i < hi]
        if not wanted:
            return mask
        out = np.zeros_like(mask)
        out[wanted[0]] = mask[wanted[0]]
        return out

    def _openings_mask(self, out: np.ndarray) -> None:
        """TimeSig and Tempo only as planned; while one is pending, nothing else."""
        for kind in (TIMESIG, TEMPO):
            lo, hi = self.r[kind]
            allowed_here = out[lo:hi].copy()
            out[lo:hi] = False
            for i in self.pending:
                if lo <= i < hi and allowed_here[i - lo]:
                    out[:] = False
                    out[i] = True
                    return

    def _open_end(self, out: np.ndarray, after_note: bool) -> None:
        """Position / Track / a note of the current part / Bar / EOS."""
        nxt, bar_start = self._next(), self._bar_start()
        bar_end = bar_start + self.plan.bars[self.g.bars - 1][1]
        lo, hi = self.r[POSITION]
        if after_note:
            now = self._now()
            here = nxt is not None and nxt.onset == now
            tlo, thi = self.r[TRACK]
            for j in range(thi - tlo):
                if out[tlo + j]:
                    out[tlo + j] = (
                        here and j <= nxt.part and (j == nxt.part or self.plan.free(j, now))
                    ) or (not here and self.plan.free(j, now))
            self._continue_part(out, here, nxt)
            if here:  # the kept note comes before anything leaves this position
                out[lo:hi] = False
                out[self.r[BAR][0]] = out[EOS] = False
                return
        for p in range(hi - lo):
            if not out[lo + p]:
                continue
            step = bar_start + p
            if nxt is not None and nxt.onset < bar_end:
                out[lo + p] = step <= nxt.onset and (
                    step == nxt.onset or bool(self.plan.free_parts(step))
                )
            else:
                out[lo + p] = bool(self.plan.free_parts(step))
        if nxt is not None and nxt.onset < bar_end:
            out[self.r[BAR][0]] = out[EOS] = False
        if nxt is not None:
            out[EOS] = False

    def _continue_part(self, out: np.ndarray, here: bool, nxt: KeptNote | None) -> None:
        """After a note: another note of the same part is free, or the kept one."""
        part, now = self.g.part, self._now()
        if here and nxt.part == part:
            self._force_note(out, nxt)
        elif not self.plan.free(part, now):
            self._no_note(out)

    def _after_position(self, out: np.ndarray) -> None:
        now, nxt = self._now(), self._next()
        here = nxt is not None and nxt.onset == now
        tlo, thi = self.r[TRACK]
        for j in range(thi - tlo):
            if out[tlo + j]:
                if here:
                    out[tlo + j] = j == nxt.part or (j < nxt.part and self.plan.free(j, now))
                else:
                    out[tlo + j] = self.plan.free(j, now)
        if self.g.part is not None:
            if here and nxt.part == self.g.part:
                self._force_note(out, nxt)
            elif not self.plan.free(self.g.part, now) or (here and self.g.part > nxt.part):
                self._no_note(out)

    def _note_start(self, out: np.ndarray, part: int) -> None:
        now, nxt = self._now(), self._next()
        if not self.plan.free(part, now):
            self._force_note(out, nxt)

    def _force_note(self, out: np.ndarray, note: KeptNote) -> None:
        """Only the start of `note`: its Velocity when the part's differs, else its value."""
        if self.g.velocity[note.part] != note.velocity:
            token = self.r[VELOCITY][0] + note.velocity
        else:
            token = self._value_id(note)
        keep = out[token]
        out[:] = False
        out[token] = keep

    def _no_note(self, out: np.ndarray) -> None:
        for kind in (VELOCITY, PITCH, DRUM):
            lo, hi = self.r[kind]
            out[lo:hi] = False

    def _value_id(self, note: KeptNote) -> int:
        if self.plan.programs[note.part] == DRUM_PROGRAM:
            return self.r[DRUM][0] + note.value
        return self.r[PITCH][0] + note.value - self.enc.config.pitch_min

    @staticmethod
    def _only(out: np.ndarray, token: int) -> None:
        keep = out[token]
        out[:] = False
        out[token] = keep

    def clone(self) -> KeepGrammar:
        """An independent copy in the same state (the plan and encoding are shared)."""
        inner = copy.copy(self.g)
        inner.programs, inner.velocity = list(self.g.programs), list(self.g.velocity)
        twin = copy.copy(self)
        twin.inner = twin.g = inner
        twin.pending = list(self.pending)
        return twin

    # -- bookkeeping
    def _observe(self, token_id: int) -> None:
        kind = self.enc._kinds_list[token_id]
        if kind == BAR:
            self.pending = list(self.plan.openings[self.g.bars - 1])
        elif token_id in self.pending:
            self.pending.remove(token_id)
        nxt = self._next()
        if nxt is None or kind not in (DURATION, DRUM):
            return
        if (
            self._now() == nxt.onset
            and self.g.part == nxt.part
            and self.g.pitch == self._pitch_of(nxt)
        ):
            self.k += 1

    def _pitch_of(self, note: KeptNote) -> int:
        """The inner grammar's `pitch` after `note`: drum note, or pitch - pitch_min."""
        if self.plan.programs[note.part] == DRUM_PROGRAM:
            return note.value
        return note.value - self.enc.config.pitch_min


def start_grammar(encoding: TracksEncoding, plan: SongPlan) -> Grammar:
    """A KeepGrammar for `plan`'s number of bars that has read BOS."""
    grammar = KeepGrammar(encoding.grammar(len(plan.bars)), encoding, plan)
    grammar.advance(BOS)
    return grammar


def forced_prefix(grammar: KeepGrammar) -> list[int]:
    """Advance `grammar` while it allows exactly one id (and is not done); those ids."""
    ids: list[int] = []
    while not grammar.done:
        choices = np.flatnonzero(grammar.allowed())
        if choices.size != 1 or choices[0] == EOS:
            return ids
        grammar.advance(int(choices[0]))
        ids.append(int(choices[0]))
    return ids


def token_times(encoding: TracksEncoding, plan: SongPlan, ids: list[int]) -> list[int]:
    """The grid step each id belongs to: its bar's start for bar-level tokens, its
    position for the notes (-1 before the first bar)."""
    kinds, values = encoding._kinds_list, encoding._values_list
    out, bar, position = [], -1, -1
    for token in ids:
        kind = kinds[token]
        if kind == BAR:
            bar += 1
            position = plan.bars[bar][0]
        elif kind == POSITION:
            position = plan.bars[bar][0] + values[token]
        out.append(position)
    return out


def ceiling(notes: list[Note], plan: SongPlan, encoding: TracksEncoding) -> np.ndarray:
    """Per grid step of the plan, the pitch of the melody note that began last (the
    first note's before it begins): harmonize's voices stay below it."""
    spq = encoding.config.steps_per_quarter
    total = plan.bars[-1][0] + plan.bars[-1][1]
    onsets = np.array([round(n.start * spq) for n in notes])
    pitches = np.array([n.pitch for n in notes], dtype=np.int64)
    latest = np.searchsorted(onsets, np.arange(total), side="right") - 1
    return pitches[np.maximum(latest, 0)]


def fit_around(kept: list[Note], new: list[Note]) -> list[Note]:
    """The new notes that leave every kept note whole: one that starts while a kept note
    of its pitch sounds is dropped, one still sounding when a kept note of its pitch
    starts ends there (a MIDI channel cannot hold two notes of one pitch at once)."""
    by_pitch: dict[int, list[Note]] = {}
    for note in kept:
        by_pitch.setdefault(note.pitch, []).append(note)
    out = []
    for note in new:
        same = by_pitch.get(note.pitch, [])
        if any(k.start <= note.start < k.end for k in same):
            continue
        end = min([note.end, *(k.start for k in same if k.start > note.start)])
        if end > note.start:
            out.append(Note(note.pitch, note.start, end, note.velocity))
    return out
