"""Performance events: note-ons, note-offs and time shifts in real time (Oore et al.
2018, Magenta's Performance RNN).

Vocabulary (from `EncodingConfig` alone):

    PAD BOS EOS | NoteOn_p | NoteOff_p | TimeShift_k | Velocity_v

with p in pitch_min..pitch_max (two contiguous ascending ranges, so transposition
is a shift of both), k = 1..max_shift_steps steps of time_shift_ms, and
Velocity_v setting the velocity bin of the NoteOns that follow.

`PerformanceEncoding.encode` reads a `Score` in seconds (through its tempo map)
and quantizes every event to the time step; `decode` plays the events back into
a Score at a constant 120 bpm in 4/4 (one quarter = half a second), so a round
trip keeps every onset and release within one time step. `PerformanceGrammar`
allows only sequences that decode without loss: a note is released only after
time has passed since its onset, is never started while sounding, and with a
length every piece lasts exactly that many seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from musicgen.config import EncodingConfig
from musicgen.encoding.base import BOS, EOS, PAD, SPECIAL_TOKENS, Encoded, Encoding, Grammar
from musicgen.encoding.bins import VelocityBins
from musicgen.score import Note, Score

DECODE_BPM = 120.0  # decoded scores: quarters = seconds * DECODE_BPM / 60

# token kinds, indexed by id through PerformanceEncoding.kinds
SPECIAL, NOTE_ON, NOTE_OFF, TIME_SHIFT, VELOCITY = range(5)

# one event of an encoded piece: (time step, order, pitch, velocity bin); order puts
# note-offs before note-ons at the same step
_OFF, _ON = 0, 1


class PerformanceEncoding(Encoding):
    """Expressive note-on/note-off/time-shift tokens; see the module docstring."""

    name = "performance"

    def __init__(self, config: EncodingConfig):
        self.velocities = VelocityBins(config.velocity_bins)
        super().__init__(config)
        self.step_seconds = config.time_shift_ms / 1000.0
        self._index_tokens()

    # ------------------------------------------------------------------ vocabulary

    def _build_tokens(self) -> list[str]:
        c = self.config
        pitches = range(c.pitch_min, c.pitch_max + 1)
        return [
            *SPECIAL_TOKENS,
            *(f"NoteOn_{p}" for p in pitches),
            *(f"NoteOff_{p}" for p in pitches),
            *(f"TimeShift_{k}" for k in range(1, c.max_shift_steps + 1)),
            *(f"Velocity_{v}" for v in range(c.velocity_bins)),
        ]

    def _index_tokens(self) -> None:
        c = self.config
        pitches = c.pitch_max - c.pitch_min + 1
        lo = len(SPECIAL_TOKENS)
        counts = [(NOTE_ON, pitches), (NOTE_OFF, pitches), (TIME_SHIFT, c.max_shift_steps),
                  (VELOCITY, c.velocity_bins)]  # fmt: skip
        offsets = {NOTE_ON: c.pitch_min, NOTE_OFF: c.pitch_min, TIME_SHIFT: 1}
        self.id_range: dict[int, tuple[int, int]] = {}
        self.kinds = np.full(len(self.vocab), SPECIAL, dtype=np.int64)
        self.values = np.zeros(len(self.vocab), dtype=np.int64)
        for kind, count in counts:
            self.id_range[kind] = (lo, lo + count)
            self.kinds[lo : lo + count] = kind
            self.values[lo : lo + count] = np.arange(count) + offsets.get(kind, 0)
            lo += count
        self.first_id = {kind: r[0] for kind, r in self.id_range.items()}
        self._kinds_list, self._values_list = self.kinds.tolist(), self.values.tolist()

    def pitch_id_ranges(self) -> list[tuple[int, int]]:
        return [(lo, hi - 1) for lo, hi in (self.id_range[NOTE_ON], self.id_range[NOTE_OFF])]

    def steps(self, seconds: float) -> int:
        """Seconds -> whole time steps (rounded)."""
        return int(round(seconds / self.step_seconds))

    # ------------------------------------------------------------------ encode

    def encode(self, score: Score) -> Encoded:
        """Score -> ids. Counted losses: pitch_out_of_range, duplicate_notes
        (same pitch starting in the same step), overlaps_cut (a note still
        sounding when its pitch starts again is released there)."""
        dropped: Counter[str] = Counter()
        events = self._events(score, dropped)
        end_step = max((e[0] for e in events), default=0)
        end_step = max(end_step, self.steps(score.duration_seconds), 1)  # never zero-length

        f = self.first_id
        ids, now, velocity_bin = [BOS], 0, None
        for step, order, pitch, vbin in events:
            ids.extend(self._shift_ids(step - now))
            now = step
            if order == _OFF:
                ids.append(f[NOTE_OFF] + pitch - self.config.pitch_min)
                continue
            if vbin != velocity_bin:
                ids.append(f[VELOCITY] + vbin)
                velocity_bin = vbin
            ids.append(f[NOTE_ON] + pitch - self.config.pitch_min)
        ids.extend(self._shift_ids(end_step - now))
        ids.append(EOS)
        return Encoded(np.array(ids, dtype=np.int32), dropped)

    def _events(self, score: Score, dropped: Counter) -> list[tuple[int, int, int, int]]:
        """Sorted (step, _OFF/_ON, pitch, velocity bin) events, every note >= 1 step,
        no same-pitch overlaps."""
        c = self.config
        merged = score.merged(drums=c.include_drums)
        notes = [n for n in merged if c.pitch_min <= n.pitch <= c.pitch_max]
        if len(notes) < len(merged):
            dropped["pitch_out_of_range"] += len(merged) - len(notes)
        times = np.array([(n.start, n.end) for n in notes], dtype=np.float64).reshape(-1, 2)
        steps = np.rint(seconds_at(score, times) / self.step_seconds).astype(np.int64).tolist()
        by_pitch: dict[int, list[list[int]]] = {}
        for note, (on, off) in zip(notes, steps, strict=True):
            entry = [on, max(off, on + 1), self.velocities.bin(note.velocity)]
            by_pitch.setdefault(note.pitch, []).append(entry)
        events = []
        for pitch, group in by_pitch.items():
            group.sort()
            kept: list[list[int]] = []
            for note in group:
                if kept and note[0] == kept[-1][0]:
                    dropped["duplicate_notes"] += 1
                    kept[-1][1] = max(kept[-1][1], note[1])
                    continue
                if kept and note[0] < kept[-1][1]:
                    dropped["overlaps_cut"] += 1
                    kept[-1][1] = note[0]
                kept.append(note)
            for on, off, vbin in kept:
                events.append((on, _ON, pitch, vbin))
                events.append((off, _OFF, pitch, vbin))
        events.sort()
        return events

    def _shift_ids(self, steps: int) -> list[int]:
        """TimeShift ids adding up to `steps` (longest shifts first)."""
        big, rest = divmod(steps, self.config.max_shift_steps)
        ids = [self.first_id[TIME_SHIFT] + self.config.max_shift_steps - 1] * big
        if rest:
            ids.append(self.first_id[TIME_SHIFT] + rest - 1)
        return ids

    # ------------------------------------------------------------------ decode

    def decode(self, ids: Sequence[int] | np.ndarray) -> Score:
        """Ids -> Score at 120 bpm in 4/4, `end` = the time elapsed. Notes still
        sounding at the end are released there; tokens out of place are skipped and
        counted in dropped['invalid_tokens']."""
        now, invalid = 0, 0
        velocity = self.velocities.value(self.velocities.bin(64))
        sounding: dict[int, tuple[int, int]] = {}  # pitch -> (onset step, velocity)
        notes: list[Note] = []

        def release(pitch: int) -> None:
            onset, vel = sounding.pop(pitch)
            notes.append(Note(pitch, self._quarters(onset), self._quarters(now), vel))

        for token_id in np.asarray(ids, dtype=np.int64).tolist():
            if token_id == EOS:
                break
            if not 0 <= token_id < len(self.vocab):
                invalid += 1
                continue
            kind, value = self._kinds_list[token_id], self._values_list[token_id]
            if kind == TIME_SHIFT:
                now += value
            elif kind == VELOCITY:
                velocity = self.velocities.value(value)
            elif kind == NOTE_ON and value not in sounding:
                sounding[value] = (now, velocity)
            elif kind == NOTE_OFF and value in sounding and sounding[value][0] < now:
                release(value)
            elif token_id not in (PAD, BOS):
                invalid += 1
        for pitch in sorted(sounding):
            if sounding[pitch][0] < now:
                release(pitch)
            else:  # started at the very end: it never sounded
                invalid += 1
        dropped: Counter[str] = Counter()
        if invalid:
            dropped["invalid_tokens"] = invalid
        return Score.of(
            notes,
            tempos=[(0.0, DECODE_BPM)],
            time_signatures=[(0.0, 4, 4)],
            end=self._quarters(now),
            dropped=dropped,
        )

    def _quarters(self, steps: int) -> float:
        """Time steps -> quarters at DECODE_BPM (one rounding, so equal steps give
        equal floats)."""
        return steps * self.config.time_shift_ms * DECODE_BPM / 60_000

    def grammar(self, length: float | None = None) -> PerformanceGrammar:
        return PerformanceGrammar(self, None if length is None else self.steps(length))


def seconds_at(score: Score, quarters: np.ndarray) -> np.ndarray:
    """`score.seconds_at` for a whole array of times in quarters (same shape),
    in O(n log t) for n times and t tempo changes."""
    starts = np.array([q for q, _ in score.tempos], dtype=np.float64)
    spq = np.array([60.0 / bpm for _, bpm in score.tempos], dtype=np.float64)  # s per quarter
    at_start = np.concatenate([[0.0], np.cumsum(np.diff(starts) * spq[:-1])])
    i = np.clip(np.searchsorted(starts, quarters, side="right") - 1, 0, None)
    return at_start[i] + (quarters - starts[i]) * spq[i]


class PerformanceGrammar(Grammar):
    """Which performance ids may come next. `length`: the piece's length in steps.

    NoteOn p only while p is silent (a release and re-attack at one instant is
    fine); NoteOff p only while p sounds and time has passed since its NoteOn;
    Velocity only directly before a NoteOn. With a length, a TimeShift may not pass
    it, and once there only NoteOffs and EOS remain; EOS needs the exact length.
    Without one, EOS needs some time to have passed and no note begun at this very
    instant. After EOS only PAD.
    """

    def __init__(self, encoding: PerformanceEncoding, length_steps: int | None = None):
        if length_steps is not None and length_steps < 1:
            raise ValueError("a performance piece needs a length of at least one time step")
        self.enc = encoding
        self.length = length_steps
        self.size = len(encoding.vocab)
        self.started = False
        self.finished = False
        self.now = 0
        self.after_velocity = False
        c = encoding.config
        self._pitches = c.pitch_max - c.pitch_min + 1
        self._on0 = encoding.first_id[NOTE_ON]
        self._off0 = encoding.first_id[NOTE_OFF]
        self._shift0 = encoding.first_id[TIME_SHIFT]
        self._vel = encoding.id_range[VELOCITY]
        self._max_shift = c.max_shift_steps
        # per pitch index: 0 silent, 1 sounding since an earlier step, 2 begun at `now`
        self.state = np.zeros(self._pitches, dtype=np.int8)

    @property
    def done(self) -> bool:
        return self.finished

    @property
    def elapsed(self) -> float:
        return self.now * self.enc.step_seconds

    def allowed(self) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        if not self.started:
            mask[BOS] = True
            return mask
        if self.finished:
            mask[PAD] = True
            return mask
        at_end = self.length is not None and self.now >= self.length
        silent = self.state == 0
        if not at_end:
            mask[self._on0 : self._on0 + self._pitches] = silent
        if self.after_velocity:
            return mask
        mask[self._off0 : self._off0 + self._pitches] = self.state == 1
        if at_end:
            mask[EOS] = True
            return mask
        room = (
            self._max_shift if self.length is None else min(self._max_shift, self.length - self.now)
        )
        mask[self._shift0 : self._shift0 + room] = True
        if silent.any():
            mask[self._vel[0] : self._vel[1]] = True
        if self.length is None and self.now > 0 and not (self.state == 2).any():
            mask[EOS] = True
        return mask

    def advance(self, token_id: int) -> None:
        token_id = self._check(token_id, self.enc.vocab)
        kind, value = self.enc._kinds_list[token_id], self.enc._values_list[token_id]
        self.after_velocity = kind == VELOCITY
        if token_id == BOS:
            self.started = True
        elif token_id == EOS:
            self.finished = True
        elif kind == TIME_SHIFT:
            self.now += value
            self.state[self.state == 2] = 1
        elif kind == NOTE_ON:
            self.state[value - self.enc.config.pitch_min] = 2
        elif kind == NOTE_OFF:
            self.state[value - self.enc.config.pitch_min] = 0
