"""STEPS: the tracks encoding with what sounds, not how long - each part's whole chord
is written again whenever it changes, held and re-struck notes told apart.

A piece opens with its parts and goes bar by bar, as tracks does; inside a bar the
stream holds the grid steps where some part's sounding notes change (an onset, an
end), and at each such step the parts that changed, each with everything it sounds
from there on, highest pitch first:

    BOS Program_p+                                   the parts, as tracks
    Bar [Key Density] [TimeSig_N/D] [Tempo_i]        as remi (controls optional)
      Position_s                                     a step where something changes
        [Track_i]                                    a part that changed
          Hold_n                                     a note of the part that goes on
          [Velocity_v] Pitch_n                       a note that starts (or re-starts)
          [Velocity_v] Drum_n                        a hit of the drum part
    ... EOS

Nothing says how long a note is: it sounds until the next step that lists its part
without a `Hold` of it. A note's length is thus chosen step by step, when the network
has heard what the other parts did, and every step shows it the whole sounding chord
of the parts that move, which is what a chorale's harmony is made of. Tokens that carry
nothing are left out: `Track_i` when the part goes on from the last one written (after
a Position, notes with no Track belong to that part), `Velocity` when it does not
change, the step where the last notes end when that is the end of the last bar (EOS
ends every note). A part that stops sounding is listed with no notes: its Track with
nothing after it, or a Position with nothing after it for the part that goes on.
Drums have no length: a hit lasts one grid step, as in tracks.

The vocabulary is tracks' (same ids) plus `Hold_<pitch_min..pitch_max>`; tracks'
Duration tokens are never used. Parts come in tracks' canonical order, and inside a
step in that order.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from musicgen.encoding.base import EOS, Encoded
from musicgen.encoding.remi import (
    BAR,
    DENSITY,
    KEY,
    PITCH,
    POSITION,
    SPECIAL,
    TEMPO,
    TIMESIG,
    VELOCITY,
    group_by_bar,
)
from musicgen.encoding.tracks import (
    DRUM,
    HOLD,
    PHASE_NOTE,
    PHASE_POSITION,
    PHASE_TRACK,
    PHASE_VELOCITY,
    PROGRAM,
    TRACK,
    TracksEncoding,
    TracksGrammar,
    _TracksReader,
)
from musicgen.score import DRUM_PROGRAM, Note, Part, Score

# one step of one part: (held pitches, started pitches with their velocity bins)
Change = tuple[list[int], list[tuple[int, int]]]


class StepsEncoding(TracksEncoding):
    """Multi-track sounding-chord tokens; see the module docstring."""

    name = "steps"
    has_parts = True
    counts_bars = True
    takes_controls = True

    def _build_tokens(self) -> list[str]:
        c = self.config
        return [
            *super()._build_tokens(),
            *(f"Hold_{n}" for n in range(c.pitch_min, c.pitch_max + 1)),
        ]

    def _index_tokens(self) -> None:
        super()._index_tokens()
        c = self.config
        lo = self.vocab.id(f"Hold_{c.pitch_min}")
        count = c.pitch_max - c.pitch_min + 1
        self.first_id[HOLD] = lo
        self.id_range[HOLD] = (lo, lo + count)
        self.kinds[lo : lo + count] = HOLD
        self.values[lo : lo + count] = np.arange(count) + c.pitch_min
        self._kinds_list, self._values_list = self.kinds.tolist(), self.values.tolist()

    def pitch_id_ranges(self) -> list[tuple[int, int]]:
        lo, hi = self.id_range[HOLD]
        return [*super().pitch_id_ranges(), (lo, hi - 1)]

    # ------------------------------------------------------------------ encode

    def encode(self, score: Score) -> Encoded:
        """Score -> ids. Counted losses as tracks' (no durations are clipped), plus
        notes_cut: a note re-struck on its own pitch in its part before it ended."""
        dropped: Counter[str] = Counter()
        layout = self._layout(score, dropped)
        bars = layout.bars
        changes = _changes(layout.grids, [p.is_drum for p in layout.parts], dropped)
        changes.pop(bars[-1].start + bars[-1].steps, None)  # EOS ends what still sounds
        onsets = group_by_bar(bars, [n for grid in layout.grids for n in grid])
        steps_by_bar = group_by_bar(bars, sorted(changes), step=int)

        ids = layout.header(self)
        writer = _StepWriter(self, [p.is_drum for p in layout.parts])
        for i, bar in enumerate(bars):
            ids.extend(layout.opening(self, i, onsets[i]))
            for step in steps_by_bar[i]:
                ids.extend(writer.step(step - bar.start, changes[step]))
        ids.append(EOS)
        return Encoded(np.array(ids, dtype=np.int32), dropped)

    def part_changes(self, grid: list[GridOnset], drum: bool) -> dict[int, Change]:
        """{step: (held, started)} where one part's sounding notes change, as `encode`
        lists them (`grid`: the part's grid notes, `layout().grids`); pitches falling."""
        changes = _changes([grid], [drum], Counter())
        return {step: parts[0] for step, parts in changes.items()}

    def _part_grid(self, part: Part, dropped: Counter) -> list[GridOnset]:
        if part.is_drum:
            return super()._part_grid(part, dropped)
        return self._grid_notes(part.notes, dropped, clip=False)

    def _reader(self) -> _StepsReader:
        return _StepsReader(self)

    def grammar(self, length: float | None = None) -> StepsGrammar:
        return StepsGrammar(self, None if length is None else int(length))


GridOnset = tuple[int, int, int, int]  # (onset step, pitch, velocity bin, steps)
NO_CEILING = 1 << 30  # a group's notes before its first: any pitch may come


def _changes(
    grids: list[list[GridOnset]], is_drum: list[bool], dropped: Counter
) -> dict[int, dict[int, Change]]:
    """{step: {part: (held, started)}} for every step where a part's sounding notes
    change; held and started pitches descending."""
    changes: dict[int, dict[int, Change]] = {}
    for part, grid in enumerate(grids):
        if is_drum[part]:
            for onset, pitch, vbin, _ in grid:
                changes.setdefault(onset, {}).setdefault(part, ([], []))[1].append((pitch, vbin))
            continue
        ends: dict[int, int] = {}  # pitch -> the step its sounding note ends
        notes_at: dict[int, list[GridOnset]] = {}
        for note in grid:
            notes_at.setdefault(note[0], []).append(note)
        for step in sorted({n[0] for n in grid} | {n[0] + n[3] for n in grid}):
            ended = [p for p, end in ends.items() if end <= step]
            for pitch in ended:
                del ends[pitch]
            started = notes_at.get(step, [])
            for _, pitch, _, steps in started:
                dropped["notes_cut"] += pitch in ends
                ends[pitch] = step + steps
            if started or ended:
                new = {p for _, p, _, _ in started}
                held = sorted((p for p in ends if p not in new), reverse=True)
                hits = sorted(((p, vb) for _, p, vb, _ in started), reverse=True)
                changes.setdefault(step, {})[part] = (held, hits)
    return changes


class _StepWriter:
    """Emits one step's ids, leaving out a Track or Velocity that would repeat."""

    def __init__(self, encoding: StepsEncoding, is_drum: list[bool]):
        self.enc, self.is_drum = encoding, is_drum
        self.part: int | None = None
        self.velocity: list[int | None] = [None] * len(is_drum)

    def step(self, position: int, parts: dict[int, Change]) -> list[int]:
        f, lo = self.enc.first_id, self.enc.config.pitch_min
        ids = [f[POSITION] + position]
        for k, part in enumerate(sorted(parts)):
            held, started = parts[part]
            implicit = k == 0 and part == self.part and (held or started or len(parts) == 1)
            if not implicit:
                ids.append(f[TRACK] + part)
                self.part = part
            notes = sorted([(p, None) for p in held] + started, key=lambda n: -n[0])
            for pitch, vbin in notes:
                if vbin is None:
                    ids.append(f[HOLD] + pitch - lo)
                    continue
                if vbin != self.velocity[part]:
                    self.velocity[part] = vbin
                    ids.append(f[VELOCITY] + vbin)
                ids.append(f[DRUM] + pitch if self.is_drum[part] else f[PITCH] + pitch - lo)
        return ids


class _StepsReader(_TracksReader):
    """Decoding state: tracks' header, bars and velocities, plus what each part sounds
    (pitch -> onset step, velocity) and the part being listed at this step."""

    def __init__(self, encoding: StepsEncoding):
        super().__init__(encoding)
        self.sounding: list[dict[int, tuple[int, int]]] = []
        self.listed: set[int] | None = None  # pitches the open group has listed
        self.group_open = False  # a Position was read and no group closed it yet

    def read(self, token_id: int) -> None:
        if not 0 <= token_id < len(self.enc.vocab):
            self.invalid += 1
            return
        kind, value = self.enc._kinds_list[token_id], self.enc._values_list[token_id]
        if kind in (POSITION, BAR, TRACK):
            self._close_group(empty=kind != TRACK)
        handler = _HANDLERS.get(kind)
        if handler is None or not handler(self, value, token_id):
            self.invalid += 1

    def _program(self, value: int, token_id: int) -> bool:
        if not super()._program(value, token_id):
            return False
        self.sounding.append({})
        return True

    def _step_position(self, value: int, token_id: int) -> bool:
        if not self._position(value, token_id):
            return False
        self.group_open = True  # the part that goes on, until a Track says otherwise
        return True

    def _step_track(self, value: int, token_id: int) -> bool:
        if not self._track(value, token_id):
            return False
        self.listed, self.group_open = set(), False
        return True

    def _open(self) -> bool:
        """The group notes go to: a Track's, or the carried part's right after a Position."""
        if self.group_open and self.part is not None:
            self.listed, self.group_open = set(), False
        return self.listed is not None

    def _hold(self, value: int, token_id: int) -> bool:
        if not self._open() or self.programs[self.part] == DRUM_PROGRAM:
            return False
        if value not in self.sounding[self.part] or value in self.listed:
            return False
        self.listed.add(value)
        return True

    def _step_pitch(self, value: int, token_id: int) -> bool:
        if not self._open() or not self._ready(drum=False) or value in self.listed:
            return False
        now = self.bar_start + self.position
        self._end(self.part, value, now)
        self.sounding[self.part][value] = (now, self.part_velocity[self.part])
        self.listed.add(value)
        return True

    def _step_drum(self, value: int, token_id: int) -> bool:
        if not self._open():
            return False
        return self._drum(value, token_id)

    def _end(self, part: int, pitch: int, now: int) -> None:
        onset, velocity = self.sounding[part].pop(pitch, (None, 0))
        if onset is not None and now > onset:
            spq = self.enc.config.steps_per_quarter
            self.part_notes[part].append(Note(pitch, onset / spq, now / spq, velocity))

    def _close_group(self, empty: bool = True) -> None:
        """End every note of the listed part that the group did not hold or restart.
        `empty`: a Position with nothing after it lists the part that goes on, empty
        (a Track right after a Position does not)."""
        if empty and self.group_open and self.part is not None:
            self.listed = set()
        self.group_open = False
        if self.listed is None or self.part is None or self.position is None:
            self.listed = None
            return
        now = self.bar_start + self.position
        for pitch in [p for p in self.sounding[self.part] if p not in self.listed]:
            self._end(self.part, pitch, now)
        self.listed = None

    def score(self) -> Score:
        self._close_group()
        end = self.bar_start + self.bar_len if self.bars else 0
        for part, notes in enumerate(self.sounding):
            for pitch in list(notes):
                self._end(part, pitch, end)
        return super().score()


_HANDLERS = {
    SPECIAL: _StepsReader._special,
    BAR: _StepsReader._bar,
    TIMESIG: _StepsReader._timesig,
    TEMPO: _StepsReader._tempo,
    POSITION: _StepsReader._step_position,
    PITCH: _StepsReader._step_pitch,
    VELOCITY: _StepsReader._velocity,
    KEY: _StepsReader._control,
    DENSITY: _StepsReader._control,
    PROGRAM: _StepsReader._program,
    TRACK: _StepsReader._step_track,
    DRUM: _StepsReader._step_drum,
    HOLD: _StepsReader._hold,
}


class StepsGrammar(TracksGrammar):
    """Which STEPS ids may come next. `length`: the number of bars.

    The header and the bars are tracks' grammar. After a Position: a Track (ascending
    within the step), or the notes of the part that goes on; after a part's notes, more
    of them (pitches falling), a later part's Track, or what ends the step (Position,
    Bar, EOS). A Hold names a pitch the part sounds; a Pitch or Drum needs the part's
    velocity (a changed Velocity first, required for the part's first note). A part
    may be listed with no notes, which silences it, only while it sounds.
    """

    def __init__(self, encoding: StepsEncoding, length: int | None = None):
        super().__init__(encoding, length)
        self.sounding: list[set[int]] = []
        self.listed: set[int] | None = None  # the open group's pitches
        self.below = NO_CEILING  # the group's pitches must fall below this

    def allowed(self) -> np.ndarray:
        phase = self.phase
        if phase not in (PHASE_POSITION, PHASE_TRACK, PHASE_VELOCITY, PHASE_NOTE):
            return super().allowed()
        mask = np.zeros(self.size, dtype=bool)
        part = self.part
        if phase == PHASE_VELOCITY:
            self._new_notes(mask, part)
            return mask
        if phase == PHASE_POSITION:
            for j in range(len(self.programs)):
                if j != part or self._sounds(j):
                    mask[self.r[TRACK][0] + j] = True
        elif phase == PHASE_NOTE or self._sounds(part):  # an empty group silences a part
            for j in range(part + 1, len(self.programs)):
                mask[self.r[TRACK][0] + j] = True
        if part is not None:
            self._notes(mask, part)
        if phase == PHASE_NOTE or (part is not None and self._sounds(part)):
            self._set(mask, POSITION, self.position + 1, self.bar_len)
            mask[self.r[BAR][0]] = self.length is None or self.bars < self.length
            mask[EOS] = self.length is None or self.bars == self.length
        return mask

    def copy(self) -> StepsGrammar:
        """An independent grammar in the same state (the encoding is shared)."""
        twin = super().copy()
        twin.sounding = [set(pitches) for pitches in self.sounding]
        twin.listed = None if self.listed is None else set(self.listed)
        return twin

    def _sounds(self, part: int) -> bool:
        return bool(self.sounding[part])

    def _notes(self, mask: np.ndarray, part: int) -> None:
        """The part's next note, below the group's last: a Hold of a sounding pitch,
        a Velocity that changes, or a Pitch/Drum once the part has a velocity."""
        if self.programs[part] != DRUM_PROGRAM:
            first = self.r[HOLD][0] - self.enc.config.pitch_min
            for pitch in self.sounding[part]:
                if pitch < self.below:
                    mask[first + pitch] = True
        if self.below <= self._struck(part)[1]:
            return
        self._set(mask, VELOCITY)
        current = self.velocity[part]
        if current is not None:
            mask[self.r[VELOCITY][0] + current] = False
            self._new_notes(mask, part)

    def _struck(self, part: int) -> tuple[int, int]:
        """(token kind, lowest value) of a note the part strikes: Drum or Pitch."""
        if self.programs[part] == DRUM_PROGRAM:
            return DRUM, 0
        return PITCH, self.enc.config.pitch_min

    def _new_notes(self, mask: np.ndarray, part: int) -> None:
        kind, lo = self._struck(part)
        self._set(mask, kind, 0, self.below - lo)

    def _apply(self, token_id: int) -> None:
        kind = self.enc._kinds_list[token_id]
        value = self.enc._values_list[token_id]
        if kind in (POSITION, BAR, TRACK) or token_id == EOS:
            self._close(empty=kind != TRACK)
        if kind == PROGRAM:
            self.sounding.append(set())
        if kind == POSITION:
            self.phase, self.position = PHASE_POSITION, value
            self.below = NO_CEILING
            return
        if kind == TRACK:
            self.phase, self.part, self.listed, self.below = PHASE_TRACK, value, set(), NO_CEILING
            return
        if kind in (HOLD, PITCH, DRUM):
            if self.listed is None:  # the part that goes on, right after a Position
                self.listed = set()
            self.listed.add(value)
            self.phase, self.below = PHASE_NOTE, value
            return
        if kind == VELOCITY and self.listed is None:
            self.listed = set()
        super()._apply(token_id)

    def _close(self, empty: bool) -> None:
        """The open group becomes what its part sounds (drums never sound on)."""
        if empty and self.phase == PHASE_POSITION and self.part is not None:
            self.listed = set()
        if self.listed is not None and self.part is not None:
            drum = self.programs[self.part] == DRUM_PROGRAM
            self.sounding[self.part] = set() if drum else set(self.listed)
        self.listed = None
