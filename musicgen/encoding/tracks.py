"""TRACKS: REMI with instruments (REMI+ style) - every part on the beat grid, in one
time-ordered stream, each note tagged with the part that plays it.

A piece opens with its instruments, then goes bar by bar as remi does:

    BOS Program_p+                                   the parts, in a canonical order
    Bar [Key Density] [TimeSig_N/D] [Tempo_i]        as remi (controls optional)
      Position_s                                     an onset on the grid
        [Track_i] [Velocity_v] Pitch_n Duration_d    a note of a pitched part
        [Track_i] [Velocity_v] Drum_n                a hit of the drum part
    ... EOS

`Program_<0..127>` is a General MIDI program, `Program_drums` the drum kit (at most one,
always the last part). `Track_i` names the i-th part of the header, so parts that share
a program (a chorale's four voices, two guitars) stay apart. Tokens that carry no
information are left out, which is what makes the stream dense:

- `Track_i` only when the part changes (the part carries over from one position to
  the next; within a position parts come in header order, pitches rise in a part);
- `Velocity_v` only when the part's velocity changes (once per part for music of one
  dynamic, such as a chorale);
- drums have no duration (a hit lasts one grid step when decoded): `Drum_n` are their
  own tokens, General MIDI drum notes, so transposing pitches never moves a drum.

Canonical part order: pitched parts by program, parts of one program from the highest
(mean pitch) to the lowest, then the drums. The key control is the pitched parts'
key; a bar's density counts every part's onsets. The vocabulary is a function of
`EncodingConfig` alone: remi's tokens (same ids, controls included), then Program_*,
Track_* and Drum_*.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musicgen.encoding.base import BOS, EOS, PAD, Encoded, Grammar, NarrowedGrammar
from musicgen.encoding.remi import (
    BAR,
    DENSITY,
    DURATION,
    KEY,
    PITCH,
    POSITION,
    SPECIAL,
    TEMPO,
    TIMESIG,
    VELOCITY,
    RemiEncoding,
    _Bar,
    _RemiReader,
    group_by_bar,
)
from musicgen.instruments import track_names
from musicgen.score import DRUM_PROGRAM, Note, Part, Score

PROGRAM, TRACK, DRUM = 10, 11, 12  # token kinds after remi's
HOLD = 13  # the steps encoding's (a note that goes on)
DRUM_NOTES = 128  # Drum_0 .. Drum_127

# a part's grid notes: (onset step, pitch, velocity bin, duration steps)
GridNote = tuple[int, int, int, int]


def canonical_parts(score: Score) -> list[Part]:
    """The score's parts that have notes, in the encoding's order (see the module
    docstring)."""
    parts = list(score.parts)
    drums = [p for p in parts if p.is_drum]
    pitched = [p for p in parts if not p.is_drum and p.notes]

    def order(part: Part) -> tuple[int, float]:
        return part.program, -sum(n.pitch for n in part.notes) / len(part.notes)

    pitched.sort(key=order)
    if len(drums) > 1:  # one kit: merge
        notes = sorted((n for d in drums for n in d.notes), key=lambda n: (n.start, n.pitch))
        drums = [Part(DRUM_PROGRAM, notes, "Drums")]
    return pitched + [d for d in drums if d.notes]


@dataclass
class PartsLayout:
    """A score laid out for a part-keeping encoding (`TracksEncoding._layout`)."""

    parts: list[Part]
    grids: list[list[GridNote]]  # each part's grid notes
    bars: list[_Bar]
    tempo_bins: list[int]
    key: int | None  # the Key id (controls), else None

    def header(self, encoding: TracksEncoding) -> list[int]:
        """BOS and the parts' Program ids."""
        return [BOS, *(encoding.program_id(p.program) for p in self.parts)]

    def opening(self, encoding: TracksEncoding, i: int, onsets: Sequence) -> list[int]:
        """Bar i's opening ids (`onsets`: the bar's notes, one per onset, for Density)."""
        return encoding._opening_ids(self.bars, i, self.tempo_bins, self.key, onsets)


class TracksEncoding(RemiEncoding):
    """Multi-track beat-grid tokens; see the module docstring."""

    name = "tracks"
    has_parts = True
    counts_bars = True
    takes_controls = True
    keeps_songs = True

    # ------------------------------------------------------------------ vocabulary

    def _build_tokens(self) -> list[str]:
        return [
            *super()._build_tokens(),
            *(f"Program_{p}" for p in range(128)),
            "Program_drums",
            *(f"Track_{i}" for i in range(self.config.max_parts)),
            *(f"Drum_{n}" for n in range(DRUM_NOTES)),
        ]

    def _index_tokens(self) -> None:
        super()._index_tokens()
        tokens = self.vocab.tokens
        extra = {PROGRAM: ("Program_0", 129), TRACK: ("Track_0", self.config.max_parts)}
        extra[DRUM] = ("Drum_0", DRUM_NOTES)
        for kind, (first, count) in extra.items():
            lo = tokens.index(first)
            self.first_id[kind] = lo
            self.id_range[kind] = (lo, lo + count)
            self.kinds[lo : lo + count] = kind
            self.values[lo : lo + count] = np.arange(count)
        self._kinds_list, self._values_list = self.kinds.tolist(), self.values.tolist()

    def token_kind(self, token_id: int) -> int:
        """The kind of a token id (BAR, POSITION, PITCH, ... as the module constants)."""
        return self._kinds_list[token_id]

    def token_value(self, token_id: int) -> int:
        """The value a token id carries (a position, a pitch, a part, a bin)."""
        return self._values_list[token_id]

    def program_id(self, program: int) -> int:
        """Id of Program_<program> (DRUM_PROGRAM: Program_drums)."""
        return self.first_id[PROGRAM] + program

    # ------------------------------------------------------------------ encode

    def encode(self, score: Score) -> Encoded:
        """Score -> ids. Counted losses as remi's, plus parts_merged (more parts than
        `max_parts`: the smallest go into the part of the nearest program)."""
        dropped: Counter[str] = Counter()
        layout = self._layout(score, dropped)
        # every note as (onset, part index, pitch, velocity bin, steps), in stream order
        grids = layout.grids
        events = sorted((n[0], i, n[1], n[2], n[3]) for i, grid in enumerate(grids) for n in grid)
        by_bar = group_by_bar(layout.bars, events)
        ids = layout.header(self)
        writer = _NoteWriter(self, [p.is_drum for p in layout.parts])
        for i, bar in enumerate(layout.bars):
            ids.extend(layout.opening(self, i, by_bar[i]))
            for event in by_bar[i]:
                ids.extend(writer.note(bar.start, *event))
        ids.append(EOS)
        return Encoded(np.array(ids, dtype=np.int32), dropped)

    def _layout(self, score: Score, dropped: Counter) -> PartsLayout:
        """The score's parts (canonical, at most max_parts), their grid notes, bars,
        bar tempos and key: what every part-keeping encoding writes notes into."""
        parts = self._limit_parts(canonical_parts(score), dropped)
        grids = [self._part_grid(part, dropped) for part in parts]
        end_step = max((on + dur for grid in grids for on, _, _, dur in grid), default=0)
        if score.end is not None:
            end_step = max(end_step, round(score.end * self.config.steps_per_quarter))
        bars = self._bars(score, end_step, dropped)
        tempo_bins = self._bar_tempos(score, bars, dropped)
        pitched = [
            n for part, grid in zip(parts, grids, strict=True) if not part.is_drum for n in grid
        ]
        key = self._key_id(pitched) if self.config.controls else None
        return PartsLayout(parts, grids, bars, tempo_bins, key)

    def layout(self, score: Score, dropped: Counter | None = None) -> PartsLayout:
        """The score as `encode` lays it out: canonical parts (at most max_parts), their
        grid notes, bars, bar tempos and key. Losses are counted in `dropped`."""
        return self._layout(score, Counter() if dropped is None else dropped)

    def bar_opening(self, layout: PartsLayout, i: int, notes: int | None) -> list[int]:
        """Bar i's opening ids after its Bar token: [Key] (controls), [Density] (controls,
        of `notes` notes; left out when `notes` is None: not known), TimeSig and Tempo
        where they change."""
        ids = layout.opening(self, i, [None] * (notes or 0))[1:]
        if layout.key is not None and notes is None:
            del ids[1]
        return ids

    def _limit_parts(self, parts: list[Part], dropped: Counter) -> list[Part]:
        """At most `max_parts` parts: the smallest pitched part merges into the one of
        the nearest program until they fit."""
        parts = list(parts)
        while len(parts) > self.config.max_parts:
            pitched = [i for i, p in enumerate(parts) if not p.is_drum]
            small = min(pitched, key=lambda i: (len(parts[i].notes), i))
            rest = [i for i in pitched if i != small]
            into = min(rest, key=lambda i: (abs(parts[i].program - parts[small].program), i))
            notes = sorted(
                [*parts[into].notes, *parts[small].notes], key=lambda n: (n.start, n.pitch)
            )
            parts[into] = Part(parts[into].program, notes, parts[into].name)
            del parts[small]
            dropped["parts_merged"] += 1
        return parts

    def _part_grid(self, part: Part, dropped: Counter) -> list[GridNote]:
        """One part's notes on the grid; drums keep every note 0..127 and one step."""
        if not part.is_drum:
            return self._grid_notes(part.notes, dropped)
        spq, grid = self.config.steps_per_quarter, {}
        for note in part.notes:
            key = (round(note.start * spq), note.pitch)
            if key in grid:
                dropped["duplicate_notes"] += 1
            grid[key] = max(grid.get(key, 0), self.velocities.bin(note.velocity))
        return [(on, p, vb, 1) for (on, p), vb in sorted(grid.items())]

    # ------------------------------------------------------------------ decode

    def _reader(self) -> _TracksReader:
        """Decoding (remi's `decode`) gives a Score with one `Part` per header program,
        named by `instruments.track_names` (`notes` and `drums` are views of them)."""
        return _TracksReader(self)

    def grammar(self, length: float | None = None) -> TracksGrammar:
        return TracksGrammar(self, None if length is None else int(length))


class _NoteWriter:
    """Emits one note's ids, leaving out a Track or Velocity that would repeat."""

    def __init__(self, encoding: TracksEncoding, is_drum: list[bool]):
        self.enc, self.is_drum = encoding, is_drum
        self.position: int | None = None  # absolute grid step of the last Position
        self.part: int | None = None
        self.velocity: list[int | None] = [None] * len(is_drum)

    def note(
        self, bar_start: int, onset: int, part: int, pitch: int, vbin: int, steps: int
    ) -> list[int]:
        f, ids = self.enc.first_id, []
        if onset != self.position:
            self.position = onset
            ids.append(f[POSITION] + onset - bar_start)
        if part != self.part:
            self.part = part
            ids.append(f[TRACK] + part)
        if vbin != self.velocity[part]:
            self.velocity[part] = vbin
            ids.append(f[VELOCITY] + vbin)
        if self.is_drum[part]:
            ids.append(f[DRUM] + pitch)
        else:
            ids.append(f[PITCH] + pitch - self.enc.config.pitch_min)
            ids.append(f[DURATION] + steps - 1)
        return ids


class _TracksReader(_RemiReader):
    """Decoding state: remi's bars, metre and tempo, plus the header and the parts;
    tolerant of tokens out of place (counted, skipped)."""

    def __init__(self, encoding: TracksEncoding):
        super().__init__(encoding)
        self.programs: list[int] = []
        self.part_notes: list[list[Note]] = []
        self.part: int | None = None
        self.part_velocity: list[int | None] = []

    def read(self, token_id: int) -> None:
        if not 0 <= token_id < len(self.enc.vocab):
            self.invalid += 1
            return
        kind, value = self.enc._kinds_list[token_id], self.enc._values_list[token_id]
        if kind != DURATION and self.pitch is not None:  # a pitch never finished
            self.invalid, self.pitch = self.invalid + 1, None
        handler = getattr(self, f"_{_KIND_NAMES[kind]}")
        if not handler(value, token_id):
            self.invalid += 1

    def _program(self, value: int, token_id: int) -> bool:
        if self.bars or len(self.programs) >= self.enc.config.max_parts:
            return False
        self.programs.append(value)
        self.part_notes.append([])
        self.part_velocity.append(None)
        return True

    def _track(self, value: int, token_id: int) -> bool:
        if self.position is None or value >= len(self.programs):
            return False
        self.part = value
        return True

    def _velocity(self, value: int, token_id: int) -> bool:
        if self.position is None or self.part is None:
            return False
        self.part_velocity[self.part] = self.enc.velocities.value(value)
        return True

    def _tracks_pitch(self, value: int, token_id: int) -> bool:
        if not self._ready(drum=False):
            return False
        self.pitch = value
        return True

    def _tracks_duration(self, value: int, token_id: int) -> bool:
        if self.pitch is None:
            return False
        self._add(self.pitch, value)
        self.pitch = None
        return True

    def _drum(self, value: int, token_id: int) -> bool:
        if not self._ready(drum=True):
            return False
        self._add(value, 1)
        return True

    def _ready(self, drum: bool) -> bool:
        """A note may start: a position, a part of the right kind with a velocity."""
        part = self.part
        return (
            self.position is not None
            and part is not None
            and (self.programs[part] == DRUM_PROGRAM) == drum
            and self.part_velocity[part] is not None
        )

    def _add(self, pitch: int, steps: int) -> None:
        spq = self.enc.config.steps_per_quarter
        onset = self.bar_start + self.position
        velocity = self.part_velocity[self.part]
        self.part_notes[self.part].append(Note(pitch, onset / spq, (onset + steps) / spq, velocity))

    def score(self) -> Score:
        if self.pitch is not None:
            self.invalid += 1
        spq = self.enc.config.steps_per_quarter
        names = track_names(self.programs)
        parts = [
            Part(program, sorted(notes, key=lambda n: (n.start, n.pitch)), name)
            for program, notes, name in zip(self.programs, self.part_notes, names, strict=True)
        ]
        dropped: Counter[str] = Counter()
        if self.invalid:
            dropped["invalid_tokens"] = self.invalid
        return Score(
            parts=parts,
            tempos=[(s / spq, bpm) for s, bpm in self.tempos] or [(0.0, 120.0)],
            time_signatures=[(s / spq, n, d) for s, n, d in self.signatures] or [(0.0, 4, 4)],
            end=(self.bar_start + self.bar_len) / spq if self.bars else 0.0,
            dropped=dropped,
        )


_KIND_NAMES = {
    SPECIAL: "special",
    BAR: "bar",
    TIMESIG: "timesig",
    TEMPO: "tempo",
    POSITION: "position",
    PITCH: "tracks_pitch",
    VELOCITY: "velocity",
    DURATION: "tracks_duration",
    KEY: "control",
    DENSITY: "control",
    PROGRAM: "program",
    TRACK: "track",
    DRUM: "drum",
}

# grammar phases (what the last token was); public, for grammars that wrap TracksGrammar
PHASE_START, PHASE_HEADER, PHASE_CONTROLS, PHASE_KEY, PHASE_BAR, PHASE_TIMESIG, PHASE_TEMPO = range(
    7
)
PHASE_POSITION, PHASE_TRACK, PHASE_VELOCITY, PHASE_PITCH, PHASE_NOTE, PHASE_DONE = range(7, 13)


class TracksGrammar(Grammar):
    """Which TRACKS ids may come next. `length`: the number of bars.

    After BOS: Program tokens in canonical order (pitched programs not decreasing, at
    most one Program_drums and nothing after it, at most max_parts), then Bar once
    there is a part. Bars as remi's grammar (controls, TimeSig and Tempo at the first
    bar, positions rising inside the bar). After a Position: a Track other than the
    current part, or a note of the current part. Inside a position parts rise and a
    part's pitches rise. A note starts with a Velocity (only if it changes the part's
    velocity; required for the part's first note), then Pitch + Duration (pitched
    part) or Drum (drum part). Bar only while fewer than `length` bars have begun, EOS
    only when exactly `length` have (any number without a length).
    """

    def __init__(self, encoding: TracksEncoding, length: int | None = None):
        if length is not None and length < 1:
            raise ValueError("a piece needs at least one bar")
        self.enc = encoding
        self.length = length
        self.size = len(encoding.vocab)
        self.r = encoding.id_range
        self.controls = encoding.config.controls
        self.phase = PHASE_START
        self.programs: list[int] = []
        self.bars = 0
        self.bar_len = 0
        self.position = -1
        self.part: int | None = None
        self.pitch = -1  # the current part's last pitch (or drum) at this position
        self.velocity: list[int | None] = []

    @property
    def done(self) -> bool:
        return self.phase == PHASE_DONE

    @property
    def elapsed(self) -> float:
        return float(self.bars)

    def copy(self) -> TracksGrammar:
        """An independent grammar in the same state (the encoding is shared)."""
        twin = copy.copy(self)
        twin.programs, twin.velocity = list(self.programs), list(self.velocity)
        return twin

    def _set(self, mask: np.ndarray, kind: int, lo: int = 0, hi: int | None = None) -> None:
        """Allow values lo..hi-1 of a token kind (all of them by default)."""
        first, end = self.r[kind]
        mask[first + lo : end if hi is None else min(first + hi, end)] = True

    def allowed(self) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        phase = self.phase
        if phase == PHASE_START:
            mask[BOS] = True
        elif phase == PHASE_HEADER:
            self._header(mask)
        elif phase == PHASE_CONTROLS:
            self._set(mask, KEY)
        elif phase == PHASE_KEY:
            self._set(mask, DENSITY)
        elif phase == PHASE_DONE:
            mask[PAD] = True
        elif self.bars == 1 and phase == PHASE_BAR:
            self._set(mask, TIMESIG)
        elif self.bars == 1 and phase == PHASE_TIMESIG:
            self._set(mask, TEMPO)
        elif phase == PHASE_POSITION:
            for j in range(len(self.programs)):
                if j != self.part:
                    mask[self.r[TRACK][0] + j] = True
            if self.part is not None:
                self._note_start(mask, self.part, -1)
        elif phase == PHASE_TRACK:
            self._note_start(mask, self.part, -1)
        elif phase == PHASE_VELOCITY:
            self._note_value(mask, self.part, self.pitch)
        elif phase == PHASE_PITCH:
            self._set(mask, DURATION)
        else:  # PHASE_BAR, PHASE_TIMESIG, PHASE_TEMPO, PHASE_NOTE: the open end of a bar
            if phase == PHASE_BAR:
                self._set(mask, TIMESIG)
            if phase in (PHASE_BAR, PHASE_TIMESIG):
                self._set(mask, TEMPO)
            if phase == PHASE_NOTE:
                for j in range(self.part + 1, len(self.programs)):
                    mask[self.r[TRACK][0] + j] = True
                self._note_start(mask, self.part, self.pitch)
            self._set(mask, POSITION, self.position + 1, self.bar_len)
            mask[self.r[BAR][0]] = self.length is None or self.bars < self.length
            mask[EOS] = self.length is None or self.bars == self.length
        return mask

    def _header(self, mask: np.ndarray) -> None:
        count = len(self.programs)
        if count:
            mask[self.r[BAR][0]] = True
        if count >= self.enc.config.max_parts or (count and self.programs[-1] == DRUM_PROGRAM):
            return
        self._set(mask, PROGRAM, self.programs[-1] if count else 0)

    def _pitch_range(self, part: int) -> tuple[int, int]:
        """(kind, number of values) of the note tokens of a part."""
        if self.programs[part] == DRUM_PROGRAM:
            return DRUM, DRUM_NOTES
        return PITCH, self.enc.config.pitch_max - self.enc.config.pitch_min + 1

    def _note_start(self, mask: np.ndarray, part: int, above: int) -> None:
        """A new note of `part` whose value must exceed `above`: a changed Velocity,
        or the note itself when the part has a velocity."""
        kind, count = self._pitch_range(part)
        if above + 1 >= count:
            return
        current = self.velocity[part]
        self._set(mask, VELOCITY)
        if current is not None:
            mask[self.r[VELOCITY][0] + current] = False
            self._set(mask, kind, above + 1)

    def _note_value(self, mask: np.ndarray, part: int, above: int) -> None:
        kind, _ = self._pitch_range(part)
        self._set(mask, kind, above + 1)

    def advance(self, token_id: int) -> None:
        token_id = self._check(token_id, self.enc.vocab)
        if self.phase != PHASE_DONE:
            self._apply(token_id)

    def advance_allowed(self, token_id: int) -> None:
        """`advance` past an id the caller took from `allowed()` (a grammar that wraps
        this one and has checked it), without computing the mask again."""
        if self.phase != PHASE_DONE:
            self._apply(int(token_id))

    def _apply(self, token_id: int) -> None:
        """Move on past an allowed id."""
        kind = self.enc._kinds_list[token_id]
        value = self.enc._values_list[token_id]
        if token_id == BOS:
            self.phase = PHASE_HEADER
        elif token_id == EOS:
            self.phase = PHASE_DONE
        elif kind == PROGRAM:
            self.programs.append(value)
            self.velocity.append(None)
        elif kind == BAR:
            self.bars += 1
            self.phase = PHASE_CONTROLS if self.controls else PHASE_BAR
            self.position = -1
        elif kind == KEY:
            self.phase = PHASE_KEY
        elif kind == DENSITY:
            self.phase = PHASE_BAR
        elif kind == TIMESIG:
            self.phase = PHASE_TIMESIG
            self.bar_len = self.enc.bar_steps(self.enc.time_signatures[value])
        elif kind == TEMPO:
            self.phase = PHASE_TEMPO
        elif kind == POSITION:
            self.phase, self.position, self.pitch = PHASE_POSITION, value, -1
        elif kind == TRACK:
            self.phase, self.part, self.pitch = PHASE_TRACK, value, -1
        elif kind == VELOCITY:
            self.phase = PHASE_VELOCITY
            self.velocity[self.part] = value
        elif kind == PITCH:
            self.phase, self.pitch = PHASE_PITCH, value - self.enc.config.pitch_min
        elif kind == DURATION:
            self.phase = PHASE_NOTE
        elif kind == DRUM:
            self.phase, self.pitch = PHASE_NOTE, value


def header_programs(ids: Sequence[int] | np.ndarray, encoding: TracksEncoding) -> Counter[int]:
    """How many pieces of `ids` (BOS..EOS back to back) have each program in their
    header: what a model trained on them knows (`data.programs` in config.json)."""
    lo, hi = encoding.id_range[PROGRAM]
    ids = np.asarray(ids, dtype=np.int64)
    counts: Counter[int] = Counter()
    for piece in np.split(ids, np.flatnonzero(ids == BOS)[1:]):
        bar = np.flatnonzero(piece == encoding.first_id[BAR])
        header = piece[: bar[0] if bar.size else piece.size]
        counts.update(set((header[(header >= lo) & (header < hi)] - lo).tolist()))
    return counts


def order_requests(requests: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Asked parts (each a set of allowed programs) in the canonical part order:
    pitched by program, the drums last."""
    cleaned = [tuple(sorted(set(r))) for r in requests]
    return sorted(cleaned, key=lambda r: (r[0] == DRUM_PROGRAM, r[0], r[-1]))


class InstrumentsGrammar(NarrowedGrammar):
    """Keeps a piece to the asked parts (`generate --instruments`): the header holds
    exactly one program from each request, in canonical order.

    requests: one tuple of allowed programs per part (`instruments.parse_instruments`,
    narrowed to what the model knows). Part k's program is also kept at or below the
    highest program every later part may still take, so that no choice leads to a
    dead end."""

    def __init__(self, inner: Grammar, encoding: TracksEncoding, requests: Sequence[Sequence[int]]):
        super().__init__(inner)
        if not requests or len(requests) > encoding.config.max_parts:
            raise ValueError(f"1..{encoding.config.max_parts} parts can be asked for")
        self.requests = order_requests(requests)
        self.first = encoding.first_id[PROGRAM]
        self.bar = encoding.first_id[BAR]
        self.chosen: list[int] = []
        self.header = True

    def allowed(self) -> np.ndarray:
        mask = self.inner.allowed()
        if not self.header or not mask[self.first : self.first + 129].any() and not mask[self.bar]:
            return mask
        out = np.zeros_like(mask)
        k = len(self.chosen)
        if k == len(self.requests):
            out[self.bar] = mask[self.bar]
            return out
        low = self.chosen[-1] if self.chosen else 0
        high = min((r[-1] for r in self.requests[k + 1 :]), default=DRUM_PROGRAM)
        for program in self.requests[k]:
            if low <= program <= high:
                out[self.first + program] = mask[self.first + program]
        return out

    def _observe(self, token_id: int) -> None:
        if self.first <= token_id < self.first + 129:
            self.chosen.append(token_id - self.first)
        elif token_id == self.bar:
            self.header = False


def token_parts(ids: Sequence[int] | np.ndarray, encoding: TracksEncoding) -> np.ndarray:
    """For every id, the program of the part it belongs to (the Track, Velocity, Pitch,
    Duration, Hold and Drum tokens of a part's notes), or -1 for what all parts share (bars,
    positions, controls, the header). Pieces back to back each use their own header."""
    kinds = encoding.kinds[np.asarray(ids, dtype=np.int64)]
    values = encoding.values[np.asarray(ids, dtype=np.int64)]
    out = np.full(len(kinds), -1, dtype=np.int64)
    programs: list[int] = []
    part: int | None = None
    for i, (kind, value) in enumerate(zip(kinds.tolist(), values.tolist(), strict=True)):
        if kind == SPECIAL and ids[i] == BOS:
            programs, part = [], None
        elif kind == PROGRAM:
            programs.append(value)
        elif kind == TRACK:
            part = value
        if (
            kind in (TRACK, VELOCITY, PITCH, DURATION, DRUM, HOLD)
            and part is not None
            and part < len(programs)
        ):
            out[i] = programs[part]
    return out
