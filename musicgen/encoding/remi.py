"""REMI: beat-grid tokens, bar by bar (Huang & Yang 2020, "Pop Music Transformer").

A piece becomes, for each bar,

    Bar [TimeSig_N/D] [Tempo_i] (Position_p (Pitch_n Velocity_v Duration_d)+)*

with TimeSig and Tempo at the first bar and whenever they change. Positions count
grid steps from the bar line (`steps_per_quarter` per quarter note); durations are
whole steps, 1..max. The vocabulary is a function of `EncodingConfig` alone:

    PAD BOS EOS | Bar | TimeSig_* | Tempo_* | Position_* | Pitch_* | Velocity_* | Duration_*

With `EncodingConfig.controls` the vocabulary ends with control tokens (appended, so
the ids above do not move) and every bar opens `Bar Key_<pc>_<mode> Density_<level>`:
the key is the piece's, found from the music itself (`find_key`: Krumhansl-Schmuckler
correlation with Aarden-Essen profiles), and the density is the bar's own notes per
quarter note on a fixed geometric scale (`density_level`, DENSITY_EDGES). Repeating
them at every bar puts them in every training window, so the model learns to follow
them wherever it is in a piece; a model trained on them can be asked for a key or a
density by forcing these tokens (musicgen.constraints).

`RemiEncoding.encode` quantizes a `Score` onto this grid (each loss counted),
`decode` reads tokens back (skipping what makes no sense where it stands), and
`RemiGrammar` is the state machine that only allows sequences `decode` reads
without loss: the sampler masks logits with it, and `encode`'s output always
passes it.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicgen.config import EncodingConfig
from musicgen.encoding.base import BOS, EOS, PAD, SPECIAL_TOKENS, Encoded, Encoding, Grammar
from musicgen.encoding.bins import TempoBins, VelocityBins
from musicgen.score import Note, Score

TIME_SIGNATURE_DENOMINATORS = (2, 4, 8)
MAX_NUMERATOR = 16

# token kinds, indexed by id through RemiEncoding.kinds
SPECIAL, BAR, TIMESIG, TEMPO, POSITION, PITCH, VELOCITY, DURATION, KEY, DENSITY = range(10)

MODES = ("major", "minor")  # Key_<pc>_<mode> ids: first Key id + mode * 12 + tonic pc
# Density_<level> of a bar: its notes per quarter note against these edges (a geometric
# scale, four levels per octave of density, from 1/4 to 16 notes per quarter): level 0
# below the first edge (an empty bar), level i in [DENSITY_EDGES[i-1], DENSITY_EDGES[i]).
# Fixed, so the vocabulary never depends on the data; which levels "low", "medium" and
# "high" mean for a model is measured on its training data (constraints.density_choices).
DENSITY_EDGES = tuple(float(2 ** (k / 4)) for k in range(-8, 17))
DENSITY_LEVELS = len(DENSITY_EDGES) + 1
# Key profiles (Aarden-Essen, as published with Humdrum's keycor): how often each pitch
# class, counted from the tonic upwards, sounds in major and minor folk melodies.
# find_key correlates a piece's pitch-class durations with each rotation (the
# Krumhansl-Schmuckler method). On 50 midi_corpus chorales they gave the key music21's
# default analysis gives for all 50, and the file's key signature for 41; Krumhansl &
# Kessler's probe-tone profiles gave 36 and 32 (they favour the dominant key there).
KEY_PROFILES = np.array(
    [
        [17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587]
        + [0.291248, 22.062, 0.145624, 8.15494, 0.232998, 4.95122],  # major
        [18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362]
        + [0.702494, 18.6161, 4.56621, 1.93186, 7.37619, 1.75623],  # minor
    ]
)


def supported_time_signatures(config: EncodingConfig) -> list[tuple[int, int]]:
    """(num, den) whose bar is a whole number of grid steps, at most max_bar_quarters."""
    spq, out = config.steps_per_quarter, []
    for den in TIME_SIGNATURE_DENOMINATORS:
        for num in range(1, MAX_NUMERATOR + 1):
            steps = num * 4 * spq / den
            if steps == int(steps) and steps <= config.max_bar_quarters * spq:
                out.append((num, den))
    return out


def find_key(pitches: Sequence[int], durations: Sequence[float]) -> tuple[int, int]:
    """(tonic pitch class 0..11, mode index into MODES) of the best-fitting key.

    pitches: MIDI numbers; durations: the notes' lengths in any one unit (they weight
    the pitch-class histogram). The key is the rotation of KEY_PROFILES with the
    highest Pearson correlation to the histogram; C major when nothing is found
    (no notes, or every pitch class equally long). Transposing the notes by k
    semitones moves the tonic by k.
    """
    histogram = np.bincount(
        np.asarray(pitches, dtype=np.int64) % 12,
        weights=np.asarray(durations, dtype=np.float64),
        minlength=12,
    )
    centred = histogram - histogram.mean()
    if not np.any(np.abs(centred) > 1e-12):
        return 0, 0
    # rotated[m, t, j] = weight of pitch class j in the key of tonic t, mode m
    index = (np.arange(12)[None, :] - np.arange(12)[:, None]) % 12
    rotated = KEY_PROFILES[:, index]
    rotated = rotated - rotated.mean(axis=-1, keepdims=True)
    # Pearson r up to the factor 1 / |centred|, which is the same for every key
    scores = rotated @ centred / np.linalg.norm(rotated, axis=-1)
    mode, tonic = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(tonic), int(mode)


def density_level(notes: int, quarters: float) -> int:
    """Density level (0 .. DENSITY_LEVELS - 1) of a bar of `quarters` quarter notes
    holding `notes` note onsets."""
    per_quarter = notes / quarters if quarters > 0 else 0.0
    return int(np.searchsorted(DENSITY_EDGES, per_quarter, side="right"))


def density_range(level: int) -> tuple[float, float]:
    """(lowest, highest) notes per quarter of a density level (highest exclusive)."""
    edges = (0.0, *DENSITY_EDGES, math.inf)
    return edges[level], edges[level + 1]


def key_token(tonic: int, mode: int) -> str:
    """Token name of a key, e.g. (2, 1) -> "Key_2_minor"."""
    return f"Key_{tonic % 12}_{MODES[mode]}"


@dataclass(frozen=True)
class _Bar:
    start: int  # grid steps from the start of the piece
    steps: int  # length in grid steps
    signature: tuple[int, int]


def group_by_bar(
    bars: Sequence[_Bar], items: Iterable[Any], step: Callable[[Any], int] | None = None
) -> list[list]:
    """`items` (in order) split by the bar their grid step falls in: `step(item)`, by
    default the item's first field."""
    starts = [bar.start for bar in bars]
    out: list[list] = [[] for _ in bars]
    for item in items:
        at = item[0] if step is None else step(item)
        out[bisect.bisect_right(starts, at) - 1].append(item)
    return out


class RemiEncoding(Encoding):
    """Beat-grid REMI tokens; see the module docstring."""

    name = "remi"
    counts_bars = True
    takes_controls = True

    def __init__(self, config: EncodingConfig):
        self.time_signatures = supported_time_signatures(config)
        self.velocities = VelocityBins(config.velocity_bins)
        self.tempos = TempoBins(config.tempo_bins, config.tempo_min, config.tempo_max)
        super().__init__(config)
        self._index_tokens()

    # ------------------------------------------------------------------ vocabulary

    def _build_tokens(self) -> list[str]:
        c = self.config
        return [
            *SPECIAL_TOKENS,
            "Bar",
            *(f"TimeSig_{n}/{d}" for n, d in self.time_signatures),
            *(f"Tempo_{i}" for i in range(c.tempo_bins)),
            *(f"Position_{p}" for p in range(c.max_bar_quarters * c.steps_per_quarter)),
            *(f"Pitch_{n}" for n in range(c.pitch_min, c.pitch_max + 1)),
            *(f"Velocity_{v}" for v in range(c.velocity_bins)),
            *(f"Duration_{d}" for d in range(1, c.max_duration_quarters * c.steps_per_quarter + 1)),
            *(self._control_tokens() if c.controls else []),
        ]

    @staticmethod
    def _control_tokens() -> list[str]:
        keys = [key_token(tonic, mode) for mode in range(len(MODES)) for tonic in range(12)]
        return [*keys, *(f"Density_{level}" for level in range(DENSITY_LEVELS))]

    def _index_tokens(self) -> None:
        """First id of each token kind, and kind/value of every id (for decoding)."""
        tokens = self.vocab.tokens
        prefixes = {
            BAR: "Bar",
            TIMESIG: "TimeSig_",
            TEMPO: "Tempo_",
            POSITION: "Position_",
            PITCH: "Pitch_",
            VELOCITY: "Velocity_",
            DURATION: "Duration_",
        }
        if self.config.controls:
            prefixes.update({KEY: "Key_", DENSITY: "Density_"})
        self.first_id = {
            k: tokens.index(next(t for t in tokens if t.startswith(p))) for k, p in prefixes.items()
        }
        counts = {
            BAR: 1,
            TIMESIG: len(self.time_signatures),
            TEMPO: self.config.tempo_bins,
            POSITION: self.config.max_bar_quarters * self.config.steps_per_quarter,
            PITCH: self.config.pitch_max - self.config.pitch_min + 1,
            VELOCITY: self.config.velocity_bins,
            DURATION: self.config.max_duration_quarters * self.config.steps_per_quarter,
            KEY: 12 * len(MODES),
            DENSITY: DENSITY_LEVELS,
        }
        self.id_range = {k: (self.first_id[k], self.first_id[k] + counts[k]) for k in prefixes}
        self.kinds = np.full(len(tokens), SPECIAL, dtype=np.int64)
        self.values = np.zeros(len(tokens), dtype=np.int64)
        offsets = {PITCH: self.config.pitch_min, DURATION: 1}
        for kind, (lo, hi) in self.id_range.items():
            self.kinds[lo:hi] = kind
            self.values[lo:hi] = np.arange(hi - lo) + offsets.get(kind, 0)
        self._kinds_list, self._values_list = self.kinds.tolist(), self.values.tolist()
        self._timesig_id = {
            sig: self.first_id[TIMESIG] + i for i, sig in enumerate(self.time_signatures)
        }

    def pitch_id_ranges(self) -> list[tuple[int, int]]:
        lo, hi = self.id_range[PITCH]
        return [(lo, hi - 1)]

    def cyclic_id_groups(self) -> list[tuple[int, int]]:
        """The Key_* tokens of each mode (12 tonics each), when controls are on."""
        if not self.config.controls:
            return []
        return [(self.first_id[KEY] + 12 * mode, 12) for mode in range(len(MODES))]

    def bar_steps(self, signature: tuple[int, int]) -> int:
        """Length of a bar of `signature` in grid steps."""
        num, den = signature
        return num * 4 * self.config.steps_per_quarter // den

    def nearest_time_signature(self, num: int, den: int) -> tuple[int, int]:
        """`(num, den)` itself when supported, else the supported one with the closest
        bar length (then the same denominator, then the closest numerator)."""
        if (num, den) in self._timesig_id:
            return num, den
        if num <= 0 or den <= 0:
            return (4, 4) if (4, 4) in self._timesig_id else self.time_signatures[0]
        target = math.log(num * 4 / den)

        def distance(sig: tuple[int, int]) -> tuple[float, bool, int]:
            n, d = sig
            return abs(math.log(n * 4 / d) - target), d != den, abs(n - num)

        return min(self.time_signatures, key=distance)

    # ------------------------------------------------------------------ encode

    def encode(self, score: Score) -> Encoded:
        """Score -> ids. Counted losses: time_signatures_changed / _moved,
        tempo_changes_moved, pitch_out_of_range, durations_clipped, duplicate_notes."""
        dropped: Counter[str] = Counter()
        notes = self._grid_notes(score.merged(drums=self.config.include_drums), dropped)
        end_step = max((on + dur for on, _, _, dur in notes), default=0)
        if score.end is not None:
            end_step = max(end_step, round(score.end * self.config.steps_per_quarter))
        bars = self._bars(score, end_step, dropped)
        tempo_bins = self._bar_tempos(score, bars, dropped)

        key = self._key_id(notes) if self.config.controls else None
        ids = [BOS]
        by_bar = group_by_bar(bars, notes)
        for i, bar in enumerate(bars):
            ids.extend(self._opening_ids(bars, i, tempo_bins, key, by_bar[i]))
            ids.extend(self._bar_note_ids(bar, by_bar[i]))
        ids.append(EOS)
        return Encoded(np.array(ids, dtype=np.int32), dropped)

    def _opening_ids(
        self, bars: list[_Bar], i: int, tempo_bins: list[int], key: int | None, onsets: Sequence
    ) -> list[int]:
        """Bar i's opening: Bar, [Key Density] (with controls; `onsets` are the bar's
        notes, one per onset), TimeSig and Tempo where they change (always in bar 0)."""
        bar = bars[i]
        ids = [self.first_id[BAR]]
        if key is not None:
            ids += [key, self._density_id(onsets, bar.steps)]
        if i == 0 or bar.signature != bars[i - 1].signature:
            ids.append(self._timesig_id[bar.signature])
        if i == 0 or tempo_bins[i] != tempo_bins[i - 1]:
            ids.append(self.first_id[TEMPO] + tempo_bins[i])
        return ids

    def _key_id(self, notes: list[tuple[int, int, int, int]]) -> int:
        """Key id of the piece's grid notes (onset, pitch, velocity bin, steps)."""
        tonic, mode = find_key([n[1] for n in notes], [n[3] for n in notes])
        return self.first_id[KEY] + 12 * mode + tonic

    def _density_id(self, notes: Sequence, steps: int) -> int:
        """Density id of a bar of `steps` grid steps holding `notes` (one per onset)."""
        quarters = steps / self.config.steps_per_quarter
        return self.first_id[DENSITY] + density_level(len(notes), quarters)

    def _grid_notes(
        self, notes: Iterable[Note], dropped: Counter, clip: bool = True
    ) -> list[tuple[int, int, int, int]]:
        """Notes as (onset step, pitch, velocity bin, duration steps), sorted, one per
        (onset, pitch) (the longest); durations clipped to max_duration_quarters
        unless `clip` is False."""
        c, spq = self.config, self.config.steps_per_quarter
        max_steps = c.max_duration_quarters * spq if clip else None
        grid: dict[tuple[int, int], tuple[int, int]] = {}
        for note in notes:
            if not c.pitch_min <= note.pitch <= c.pitch_max:
                dropped["pitch_out_of_range"] += 1
                continue
            onset = round(note.start * spq)
            steps = max(1, round(note.end * spq) - onset)
            if max_steps is not None and steps > max_steps:
                steps = max_steps
                dropped["durations_clipped"] += 1
            key = (onset, note.pitch)
            if key in grid:
                dropped["duplicate_notes"] += 1
                if grid[key][1] >= steps:
                    continue
            grid[key] = (self.velocities.bin(note.velocity), steps)
        return [(on, p, vb, dur) for (on, p), (vb, dur) in sorted(grid.items())]

    def _bars(self, score: Score, end_step: int, dropped: Counter) -> list[_Bar]:
        """Bars from the time-signature map until `end_step` (at least one bar).
        A change that falls inside a bar takes effect at the next bar line."""
        spq = self.config.steps_per_quarter
        changes = []
        for q, num, den in score.time_signatures:
            signature = self.nearest_time_signature(num, den)
            if signature != (num, den):
                dropped["time_signatures_changed"] += 1
            changes.append((round(q * spq), signature))
        signature, start, i, bars = changes[0][1], 0, 1, []
        while True:
            while i < len(changes) and changes[i][0] <= start:
                if changes[i][0] != start:
                    dropped["time_signatures_moved"] += 1
                signature, i = changes[i][1], i + 1
            bars.append(_Bar(start, self.bar_steps(signature), signature))
            start += bars[-1].steps
            if start >= end_step:
                return bars

    def _bar_tempos(self, score: Score, bars: list[_Bar], dropped: Counter) -> list[int]:
        """Tempo bin of each bar: the last tempo change before the bar's end (changes
        inside a bar are snapped to its start and counted)."""
        spq = self.config.steps_per_quarter
        times = [q * spq for q, _ in score.tempos]
        starts = {bar.start for bar in bars}
        end = bars[-1].start + bars[-1].steps
        moved = sum(1 for t in times[1:] if t < end and t not in starts)
        if moved:
            dropped["tempo_changes_moved"] += moved
        out = []
        for bar in bars:
            i = bisect.bisect_left(times, bar.start + bar.steps) - 1
            out.append(self.tempos.bin(score.tempos[max(i, 0)][1]))
        return out

    def _bar_note_ids(self, bar: _Bar, notes: list[tuple[int, int, int, int]]) -> list[int]:
        """Position / Pitch / Velocity / Duration ids of one bar's notes (sorted)."""
        f = self.first_id
        ids, position = [], None
        for onset, pitch, velocity_bin, steps in notes:
            if onset != position:
                position = onset
                ids.append(f[POSITION] + onset - bar.start)
            ids.append(f[PITCH] + pitch - self.config.pitch_min)
            ids.append(f[VELOCITY] + velocity_bin)
            ids.append(f[DURATION] + steps - 1)
        return ids

    # ------------------------------------------------------------------ decode

    def decode(self, ids: Sequence[int] | np.ndarray) -> Score:
        """Ids -> Score; `end` is the sum of the bar lengths. Tokens out of place are
        skipped and counted in dropped['invalid_tokens'] (an unfinished note counts one)."""
        reader = self._reader()
        for token_id in np.asarray(ids, dtype=np.int64).tolist():
            if token_id == EOS:
                break
            reader.read(token_id)
        return reader.score()

    def _reader(self) -> _RemiReader:
        """A fresh decoding state (subclasses with more token kinds read more)."""
        return _RemiReader(self)

    def grammar(self, length: float | None = None) -> RemiGrammar:
        return RemiGrammar(self, None if length is None else int(length))


class _RemiReader:
    """Decoding state: where we are in the bar and which note is half-read."""

    def __init__(self, encoding: RemiEncoding):
        self.enc = encoding
        self.bars = 0
        self.bar_start = 0  # steps
        self.signature = encoding.nearest_time_signature(4, 4)  # until a TimeSig says
        self.bar_len = encoding.bar_steps(self.signature)
        self.stage = 0  # 0 just after Bar, 1 after TimeSig, 2 after Tempo, 3 in the notes
        self.position: int | None = None
        self.pitch: int | None = None
        self.velocity: int | None = None
        self.notes: list[Note] = []
        self.tempos: list[tuple[int, float]] = []
        self.signatures: list[tuple[int, int, int]] = []
        self.invalid = 0

    def read(self, token_id: int) -> None:
        if not 0 <= token_id < len(self.enc.vocab):
            self.invalid += 1
            return
        kind, value = self.enc._kinds_list[token_id], self.enc._values_list[token_id]
        handler = {
            SPECIAL: self._special,
            BAR: self._bar,
            TIMESIG: self._timesig,
            TEMPO: self._tempo,
            POSITION: self._position,
            PITCH: self._pitch,
            VELOCITY: self._velocity,
            DURATION: self._duration,
            KEY: self._control,
            DENSITY: self._control,
        }[kind]
        if not handler(value, token_id):
            self.invalid += 1

    def _special(self, value: int, token_id: int) -> bool:
        return token_id in (PAD, BOS)

    def _control(self, value: int, token_id: int) -> bool:
        # controls open a bar, before its TimeSig/Tempo; they carry no music
        return self.bars > 0 and self.stage == 0  # stage 0: no TimeSig/Tempo/Position yet

    def _drop_unfinished(self) -> None:
        if self.pitch is not None:
            self.invalid += 1
            self.pitch = self.velocity = None

    def _bar(self, value: int, token_id: int) -> bool:
        self._drop_unfinished()
        if self.bars:
            self.bar_start += self.bar_len
        self.bars += 1
        self.stage, self.position = 0, None
        if self.bars == 1:
            self.signatures.append((0, *self.signature))
        return True

    def _timesig(self, value: int, token_id: int) -> bool:
        if not self.bars or self.stage != 0:
            return False
        self.signature = self.enc.time_signatures[value]
        self.bar_len = self.enc.bar_steps(self.signature)
        if self.signatures[-1][0] == self.bar_start:
            self.signatures.pop()
        if not self.signatures or self.signatures[-1][1:] != self.signature:
            self.signatures.append((self.bar_start, *self.signature))
        self.stage = 1
        return True

    def _tempo(self, value: int, token_id: int) -> bool:
        if not self.bars or self.stage > 1:
            return False
        bpm = self.enc.tempos.value(value)
        if not self.tempos or self.tempos[-1][1] != bpm:
            self.tempos.append((self.bar_start, bpm))
        self.stage = 2
        return True

    def _position(self, value: int, token_id: int) -> bool:
        if not self.bars or value >= self.bar_len:
            return False
        self._drop_unfinished()
        self.position, self.stage = value, 3
        return True

    def _pitch(self, value: int, token_id: int) -> bool:
        if self.position is None:
            return False
        self._drop_unfinished()
        self.pitch = value
        return True

    def _velocity(self, value: int, token_id: int) -> bool:
        if self.pitch is None or self.velocity is not None:
            return False
        self.velocity = self.enc.velocities.value(value)
        return True

    def _duration(self, value: int, token_id: int) -> bool:
        if self.pitch is None or self.velocity is None or self.position is None:
            return False
        spq = self.enc.config.steps_per_quarter
        onset = self.bar_start + self.position
        self.notes.append(Note(self.pitch, onset / spq, (onset + value) / spq, self.velocity))
        self.pitch = self.velocity = None
        return True

    def score(self) -> Score:
        self._drop_unfinished()
        spq = self.enc.config.steps_per_quarter
        end = (self.bar_start + self.bar_len) / spq if self.bars else 0.0
        dropped: Counter[str] = Counter()
        if self.invalid:
            dropped["invalid_tokens"] = self.invalid
        return Score.of(
            self.notes,
            tempos=[(s / spq, bpm) for s, bpm in self.tempos] or [(0.0, 120.0)],
            time_signatures=[(s / spq, n, d) for s, n, d in self.signatures] or [(0.0, 4, 4)],
            end=end,
            dropped=dropped,
        )


# grammar phases: what the last token was
_START, _OPEN, _BAR, _TIMESIG, _TEMPO, _POSITION, _PITCH, _VELOCITY, _DURATION, _DONE = range(10)
_CONTROLS, _KEY = 10, 11  # a Bar's Key and Density (EncodingConfig.controls) to come


class RemiGrammar(Grammar):
    """Which REMI ids may come next. `length`: the number of bars the piece must have.

    After BOS only Bar. With controls every Bar is followed by Key then Density
    (then the bar goes on as one without controls). The first bar
    must open with TimeSig then Tempo; later bars may (TimeSig only directly after
    Bar, Tempo directly after Bar or TimeSig).
    Positions rise strictly within a bar and stay inside it; each Position is
    followed by one or more Pitch Velocity Duration triples with rising pitches.
    Bar only while fewer than `length` bars have begun, EOS only when exactly
    `length` have (or, without a length, once the first bar is under way). After
    EOS only PAD.
    """

    def __init__(self, encoding: RemiEncoding, length: int | None = None):
        if length is not None and length < 1:
            raise ValueError("a remi piece needs at least one bar")
        self.enc = encoding
        self.length = length
        self.size = len(encoding.vocab)
        self.phase = _START
        self.bars = 0
        self.bar_len = 0
        self.position = -1
        self.pitch = -1
        r = encoding.id_range
        self._pos0, self._pitch0 = r[POSITION][0], r[PITCH][0]
        self._pitch_end = r[PITCH][1]
        self._ranges = r
        self._bar_id = r[BAR][0]
        self._controls = encoding.config.controls

    @property
    def done(self) -> bool:
        return self.phase == _DONE

    @property
    def elapsed(self) -> float:
        return float(self.bars)

    def allowed(self) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        phase, r = self.phase, self._ranges
        if phase == _START:
            mask[BOS] = True
        elif phase == _CONTROLS:
            mask[r[KEY][0] : r[KEY][1]] = True
        elif phase == _KEY:
            mask[r[DENSITY][0] : r[DENSITY][1]] = True
        elif phase == _OPEN:
            mask[self._bar_id] = True
        elif phase == _POSITION:
            mask[r[PITCH][0] : r[PITCH][1]] = True
        elif phase == _PITCH:
            mask[r[VELOCITY][0] : r[VELOCITY][1]] = True
        elif phase == _VELOCITY:
            mask[r[DURATION][0] : r[DURATION][1]] = True
        elif phase == _DONE:
            mask[PAD] = True
        elif self.bars == 1 and phase == _BAR:
            mask[r[TIMESIG][0] : r[TIMESIG][1]] = True
        elif self.bars == 1 and phase == _TIMESIG:
            mask[r[TEMPO][0] : r[TEMPO][1]] = True
        else:  # _BAR, _TIMESIG, _TEMPO, _DURATION: the open end of a bar
            if phase == _BAR:
                mask[r[TIMESIG][0] : r[TIMESIG][1]] = True
            if phase in (_BAR, _TIMESIG):
                mask[r[TEMPO][0] : r[TEMPO][1]] = True
            if phase == _DURATION:
                mask[self._pitch0 + self.pitch + 1 : self._pitch_end] = True
            mask[self._pos0 + self.position + 1 : self._pos0 + self.bar_len] = True
            mask[self._bar_id] = self.length is None or self.bars < self.length
            mask[EOS] = self.length is None or self.bars == self.length
        return mask

    def advance(self, token_id: int) -> None:
        token_id = self._check(token_id, self.enc.vocab)
        if self.phase == _DONE:
            return
        kind = self.enc._kinds_list[token_id]
        value = self.enc._values_list[token_id]
        if token_id == BOS:
            self.phase = _OPEN
        elif token_id == EOS:
            self.phase = _DONE
        elif kind == BAR:
            self.phase, self.bars, self.position = _BAR, self.bars + 1, -1
            if self._controls:
                self.phase = _CONTROLS
            if self.bars == 1:
                self.bar_len = 0  # set by the first TimeSig
        elif kind == TIMESIG:
            self.phase = _TIMESIG
            self.bar_len = self.enc.bar_steps(self.enc.time_signatures[value])
        elif kind == TEMPO:
            self.phase = _TEMPO
        elif kind == POSITION:
            self.phase, self.position, self.pitch = _POSITION, value, -1
        elif kind == PITCH:
            self.phase, self.pitch = _PITCH, value - self.enc.config.pitch_min
        elif kind == VELOCITY:
            self.phase = _VELOCITY
        elif kind == DURATION:
            self.phase = _DURATION
        elif kind == KEY:
            self.phase = _KEY
        elif kind == DENSITY:
            self.phase = _BAR  # the bar goes on as if it had just begun
