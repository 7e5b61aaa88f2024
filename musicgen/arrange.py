"""Working on a user's own song: new parts against it (`accompany`, `harmonize`) and
new bars inside it (`infill`), with every note of the user's kept exactly.

Both are one mechanism. A `SongPlan` says, for a `tracks` encoding, what the token
stream must hold: the header (every part's program, the user's and the new ones, in
the encoding's canonical order), each bar's opening (the song's time signature and
tempo, its key when the model has controls) and the user's kept notes as
(onset, part, value, velocity bin, steps), in stream order. `KeepGrammar` wraps the
encoding's grammar so that the model may only write notes where the plan leaves a
part free (`SongPlan.free`): an added part everywhere, a part being rewritten inside
the infill window. The sampler then steps the network through the user's notes as it
would through a primer: the recurrent state carries the whole song, so there is no
window limit and the new parts hear everything before them.

When the pieces are written, the user's parts are the user's own `Part`s (pitch,
onset, duration, velocity, name, program as read), never their quantized tokens; only
the added or rewritten notes come from the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from musicgen.encoding.base import BOS, EOS, Grammar, NarrowedGrammar
from musicgen.encoding.remi import BAR, DURATION, KEY, PITCH, POSITION, TEMPO, TIMESIG, VELOCITY
from musicgen.encoding.tracks import (
    _CONTROLS,
    _HEADER,
    _KEY,
    _NOTE,
    _PITCH,
    _POSITION,
    _TRACK,
    _VELOCITY,
    DRUM,
    PROGRAM,
    TRACK,
    TracksEncoding,
    TracksGrammar,
    canonical_parts,
)
from musicgen.score import DRUM_PROGRAM, Part, Score


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
    dropped: dict = {}
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
        kept = [
            n for n in kept if not (n.part in chosen and in_window[0] <= n.onset < in_window[1])
        ]
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


def _openings(
    encoding: TracksEncoding, song: Score, bars: list, kept: list[KeptNote], programs: list[int]
) -> list[list[int]]:
    """Each bar's forced opening ids: the song's key (with controls; from its pitched
    notes), its time signature and tempo where they are first or change."""
    tempo_bins = encoding._bar_tempos(song, bars, {})
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
        if phase == _HEADER:
            return self._header(mask)
        if self.g.done or self.g.bars == 0 or phase == _KEY:  # before BOS; a bar's Density
            return mask
        if phase == _CONTROLS:
            return self._opening(mask, KEY)
        out = mask.copy()
        if phase == _POSITION:
            self._after_position(out)
        elif phase == _TRACK:
            self._note_start(out, self.g.part)
        elif phase == _VELOCITY:
            if not self.plan.free(self.g.part, self._now()):
                self._only(out, self._value_id(self._next()))
        elif phase == _PITCH:  # its duration comes
            if not self.plan.free(self.g.part, self._now()):
                self._only(out, self.r[DURATION][0] + self._next().steps - 1)
        else:  # the open end of a bar: _BAR, _TIMESIG, _TEMPO, _NOTE
            self._openings_mask(out)
            if not self.pending or not out.any():
                self._open_end(out, phase == _NOTE)
        return out if out.any() else mask

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
