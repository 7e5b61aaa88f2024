"""The in-memory music that sits between files and tokens.

`midi_io` turns files into a `Score` and back; the encodings turn a `Score` into
token ids and back. Times are in quarter notes (MIDI ticks / resolution), which is
exact for any file and is what a beat grid needs; `Score.seconds_at` converts
through the tempo map for the encodings that think in seconds.

Nothing here imports pretty_midi, music21 or TensorFlow.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


class MusicError(Exception):
    """Base class of the errors a single piece of music can raise."""


class UnreadableFileError(MusicError):
    """A file could not be parsed as music (corrupt, truncated, not music at all)."""


class EmptyMusicError(MusicError):
    """A file parsed, but nothing usable was left (no notes, drums only, ...)."""


@dataclass(frozen=True, slots=True)
class Note:
    """One sounding note. Times are quarter notes from the start of the piece."""

    pitch: int  # MIDI pitch 0..127
    start: float  # quarter notes
    end: float  # quarter notes, strictly after start
    velocity: int  # 1..127

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"pitch {self.pitch} outside 0..127")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"velocity {self.velocity} outside 1..127")
        if not (self.start >= 0 and self.end > self.start):
            raise ValueError(f"note must have 0 <= start < end, got {self.start}..{self.end}")

    @property
    def duration(self) -> float:
        return self.end - self.start


DRUM_PROGRAM = 128  # Part.program of a drum kit (General MIDI channel 10)


@dataclass
class Part:
    """One instrument's part: a track of a MIDI file, a voice of a score.

    program: General MIDI program 0..127, or DRUM_PROGRAM for a drum kit (whose
             pitches are General MIDI drum notes, 35 = kick, 38 = snare, ...)
    name:    the track or voice name as the file gave it ("" when it gave none);
             None for the pitched part of a one-stream piece (`Score.of`), which
             is no track of its own: `midi_io.write_midi` names it after its
             `track_name` argument
    notes:   sorted by (start, pitch), no same-pitch overlaps
    """

    program: int
    notes: list[Note] = field(default_factory=list)
    name: str | None = ""

    def __post_init__(self) -> None:
        if not 0 <= self.program <= DRUM_PROGRAM:
            raise ValueError(f"program {self.program} outside 0..{DRUM_PROGRAM}")

    @property
    def is_drum(self) -> bool:
        return self.program == DRUM_PROGRAM


@dataclass
class Score:
    """A piece: its parts, the only copy of its notes, plus its tempo and metre maps.

    parts:            the music kept apart by instrument (drum kit included), in the
                      file's order; a piece without instruments to tell apart (a
                      plain note list, a one-stream encoding's decoding) is one pitched
                      part, see `Score.of`
    tempos:           (time in quarters, beats per minute), sorted, the first at 0
    time_signatures:  (time in quarters, numerator, denominator), sorted, the first at 0
    key_signatures:   (time in quarters, key number), sorted: as MIDI files and
                      pretty_midi number keys, 0..11 the major key on that tonic pitch
                      class (0 = C), 12..23 the minor key on tonic (n - 12); empty when
                      the file names no key (nothing is guessed)
    end:              length in quarters when it is known exactly (e.g. a whole number
                      of bars from a decoder); None means "just after the last note"
    dropped:          what reading or encoding had to leave out, by reason

    `notes`, `drums` and `program` are views computed from the parts on every
    read (one stream of every pitched note, the drum notes, the main program); to
    change the music, change the parts.
    """

    parts: list[Part] = field(default_factory=list)
    tempos: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 120.0)])
    time_signatures: list[tuple[float, int, int]] = field(default_factory=lambda: [(0.0, 4, 4)])
    end: float | None = None
    key_signatures: list[tuple[float, int]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not all(isinstance(part, Part) for part in self.parts):
            raise TypeError("Score(parts=...) takes Part objects; Score.of(notes) takes notes")
        if not self.tempos or self.tempos[0][0] != 0:
            first_bpm = self.tempos[0][1] if self.tempos else 120.0
            self.tempos = [(0.0, first_bpm)] + [t for t in self.tempos if t[0] > 0]
        if not self.time_signatures or self.time_signatures[0][0] != 0:
            first = self.time_signatures[0][1:] if self.time_signatures else (4, 4)
            self.time_signatures = [(0.0, *first)] + [t for t in self.time_signatures if t[0] > 0]

    @classmethod
    def of(
        cls,
        notes: Iterable[Note],
        *,
        drums: Iterable[Note] = (),
        program: int = 0,
        tempos: list[tuple[float, float]] | None = None,
        time_signatures: list[tuple[float, int, int]] | None = None,
        end: float | None = None,
        dropped: Counter[str] | None = None,
        key_signatures: list[tuple[float, int]] | None = None,
    ) -> Score:
        """A one-stream piece from a plain note list: one pitched part of `program`
        (0..127) holding `notes` (kept even when empty, so that the program is), plus
        a drum part of `drums` when there are any. Notes are sorted by (start, pitch)
        and otherwise kept as given. The other arguments are Score's (None: its
        default)."""
        parts = [Part(program, _sorted(notes), None)]
        if drum_notes := _sorted(drums):
            parts.append(Part(DRUM_PROGRAM, drum_notes))
        maps = {
            "tempos": tempos,
            "time_signatures": time_signatures,
            "dropped": dropped,
            "key_signatures": key_signatures,
        }
        return cls(parts, end=end, **{k: v for k, v in maps.items() if v is not None})

    @property
    def notes(self) -> list[Note]:
        """Every pitched note as one stream (a new list), sorted by (start, pitch):
        see `merged`."""
        return self.merged()

    @property
    def drums(self) -> list[Note]:
        """The drum parts' notes (a new list), sorted by (start, pitch)."""
        return _sorted(n for part in self.parts if part.is_drum for n in part.notes)

    def merged(self, drums: bool = False) -> list[Note]:
        """The pitched parts' notes, and the drum parts' with `drums`, as one stream
        (what a one-stream encoding reads), sorted by (start, pitch): a lone part's
        notes as they are, the notes of several with the same-pitch overlaps where
        they meet merged (`merge_overlaps`)."""
        parts = [part for part in self.parts if drums or not part.is_drum]
        if len(parts) == 1:
            return _sorted(parts[0].notes)
        return merge_overlaps(n for part in parts for n in part.notes)[0]

    @property
    def program(self) -> int:
        """The General MIDI program of the pitched notes: the program of the pitched
        parts that hold the most notes (of equal ones the lowest; a lone pitched
        part's even when it is empty); 0 when there is no pitched part."""
        counts: Counter[int] = Counter()
        for part in self.parts:
            if not part.is_drum:
                counts[part.program] += len(part.notes)
        return min(counts, key=lambda p: (-counts[p], p), default=0)

    @property
    def length(self) -> float:
        """Length in quarters: `end` if set, else the end of the last note (0 if none)."""
        if self.end is not None:
            return self.end
        return max((n.end for part in self.parts for n in part.notes), default=0.0)

    @property
    def note_count(self) -> int:
        """Notes of the piece, drums included: every part's, as they are kept."""
        return sum(len(part.notes) for part in self.parts)

    def seconds_at(self, quarters: float) -> float:
        """Seconds from the start at a time given in quarters (through the tempo map)."""
        seconds = 0.0
        for i, (t, bpm) in enumerate(self.tempos):
            nxt = self.tempos[i + 1][0] if i + 1 < len(self.tempos) else float("inf")
            if quarters <= t:
                break
            seconds += (min(quarters, nxt) - t) * 60.0 / bpm
        return seconds

    def quarters_at(self, seconds: float) -> float:
        """Inverse of `seconds_at`."""
        elapsed = 0.0
        for i, (t, bpm) in enumerate(self.tempos):
            nxt = self.tempos[i + 1][0] if i + 1 < len(self.tempos) else float("inf")
            span = (nxt - t) * 60.0 / bpm
            if seconds <= elapsed + span:
                return t + (seconds - elapsed) * bpm / 60.0
            elapsed += span
        return self.tempos[-1][0]  # unreachable: the last span is infinite

    @property
    def duration_seconds(self) -> float:
        return self.seconds_at(self.length)

    def tempo_at(self, quarters: float) -> float:
        """Beats per minute in force at a time in quarters."""
        i = bisect.bisect_right([t for t, _ in self.tempos], quarters) - 1
        return self.tempos[max(i, 0)][1]

    def time_signature_at(self, quarters: float) -> tuple[int, int]:
        """(numerator, denominator) in force at a time in quarters."""
        i = bisect.bisect_right([t for t, _, _ in self.time_signatures], quarters) - 1
        _, num, den = self.time_signatures[max(i, 0)]
        return num, den


def merge_overlaps(notes: Iterable[Note]) -> tuple[list[Note], int]:
    """Remove same-pitch overlaps; returns (notes sorted by (start, pitch), count).

    Two notes of one pitch starting together become one (the longer end, the louder
    velocity); a note still sounding when the next of its pitch starts is cut there.
    """
    by_pitch: dict[int, list[Note]] = {}
    for note in sorted(notes, key=lambda n: (n.pitch, n.start, n.end)):
        by_pitch.setdefault(note.pitch, []).append(note)
    out: list[Note] = []
    merged = 0
    for group in by_pitch.values():
        kept: list[Note] = []
        for note in group:
            if kept and note.start < kept[-1].end:
                prev = kept[-1]
                merged += 1
                if note.start == prev.start:
                    end, velocity = max(prev.end, note.end), max(prev.velocity, note.velocity)
                    kept[-1] = Note(prev.pitch, prev.start, end, velocity)
                    continue
                kept[-1] = Note(prev.pitch, prev.start, note.start, prev.velocity)
            kept.append(note)
        out.extend(kept)
    out.sort(key=lambda n: (n.start, n.pitch))
    return out, merged


def _sorted(notes: Iterable[Note]) -> list[Note]:
    """Notes sorted by (start, pitch), a new list."""
    return sorted(notes, key=lambda n: (n.start, n.pitch))
