"""The user's notes forced into a `tracks` stream (accompany, infill, harmonize on
tracks checkpoints): each kept note at its onset, with its duration.

`TracksKeepGrammar` narrows the tracks grammar to a `SongPlan` (musicgen.songplan): the
header and bar openings as planned, the user's notes at their places, new notes only
where a part is free, an added part's pitches under the plan's ceiling (harmonize), a
rewritten part's new pitches in its register in the song (infill).
"""

from __future__ import annotations

import numpy as np

from musicgen.encoding.base import BOS, EOS
from musicgen.encoding.remi import BAR, DENSITY, DURATION, KEY, PITCH, POSITION, VELOCITY
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
    TRACK,
    TracksEncoding,
    TracksGrammar,
)
from musicgen.score import DRUM_PROGRAM
from musicgen.songplan import KeptNote, PlanGrammar, SongPlan


class TracksKeepGrammar(PlanGrammar):
    """The tracks grammar narrowed to a `SongPlan`.

    `k` points at the next kept note. A Position may not pass it, Bar and EOS wait for
    it, and at its onset the parts before its part may only be free ones; its own
    part must then write exactly it (Velocity if the part's velocity differs, the
    pitch or drum, the duration)."""

    def __init__(self, inner: TracksGrammar, encoding: TracksEncoding, plan: SongPlan):
        super().__init__(inner, encoding, plan)
        self.k = 0

    # -- where we are
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
            forced = self._openings_mask(out)
            if not forced:
                self._open_end(out, phase == PHASE_NOTE)
        if phase in (PHASE_POSITION, PHASE_TRACK, PHASE_VELOCITY, PHASE_NOTE):
            if self.plan.ceiling is not None:
                self._under_ceiling(out)
            if self.plan.register:
                self._in_register(out)
        return out if out.any() else mask

    def _in_register(self, out: np.ndarray) -> None:
        """A rewritten part's next pitch in the window keeps to its register in the song
        (pitches rise within a part's notes at a position); a Velocity that could lead
        to no such pitch is not offered."""
        part = self.g.part
        if part not in self.plan.register or not self.plan.free(part, self._now()):
            return
        low, high = self.plan.register[part]
        lo, hi = self.r[PITCH]
        pitch_min = self.enc.config.pitch_min
        out[lo : lo + low - pitch_min] = False
        out[lo + high - pitch_min + 1 : hi] = False
        if self.g.phase != PHASE_VELOCITY:
            above = self.g.pitch + pitch_min if self.g.phase == PHASE_NOTE else -1
            if above >= high:
                vlo, vhi = self.r[VELOCITY]
                out[vlo:vhi] = False

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
        if not self.plan.free(part, self._now()):
            self._force_note(out, self._next())

    def _force_note(self, out: np.ndarray, note: KeptNote) -> None:
        """Only the start of `note`: its Velocity when the part's differs, else its value."""
        if self.g.velocity[note.part] != note.velocity:
            token = self.r[VELOCITY][0] + note.velocity
        else:
            token = self._value_id(note)
        self._only(out, token)

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

    def clone(self) -> TracksKeepGrammar:
        """An independent copy in the same state (the plan and encoding are shared)."""
        twin = TracksKeepGrammar.__new__(TracksKeepGrammar)
        twin.__dict__.update(self.__dict__)
        twin.inner = twin.g = self.g.copy()
        twin.pending = list(self.pending)
        return twin

    # -- bookkeeping
    def _observe(self, token_id: int) -> None:
        self._observe_opening(token_id)
        kind = self.enc.token_kind(token_id)
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


def start_tracks_grammar(encoding: TracksEncoding, plan: SongPlan) -> TracksKeepGrammar:
    """A TracksKeepGrammar for `plan`'s number of bars that has read BOS."""
    grammar = TracksKeepGrammar(encoding.grammar(len(plan.bars)), encoding, plan)
    grammar.advance(BOS)
    return grammar
