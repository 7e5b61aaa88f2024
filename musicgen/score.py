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
    name:    the track or voice name as the file gave it ("" when it gave none)
    notes:   sorted by (start, pitch), no same-pitch overlaps
    """

    program: int
    notes: list[Note] = field(default_factory=list)
    name: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.program <= DRUM_PROGRAM:
            raise ValueError(f"program {self.program} outside 0..{DRUM_PROGRAM}")

    @property
    def is_drum(self) -> bool:
        return self.program == DRUM_PROGRAM


@dataclass
class Score:
    """A piece as one stream of pitched notes plus its tempo and metre maps.

    notes:            pitched notes sorted by (start, pitch); non-drum tracks merged
    tempos:           (time in quarters, beats per minute), sorted, the first at 0
    time_signatures:  (time in quarters, numerator, denominator), sorted, the first at 0
    drums:            drum notes, kept apart from `notes`
    program:          General MIDI program (0..127) to write the pitched track with
    end:              length in quarters when it is known exactly (e.g. a whole number
                      of bars from a decoder); None means "just after the last note"
    dropped:          what reading or encoding had to leave out, by reason
    parts:            the same music kept apart by instrument (drum kit included), in
                      the file's order; empty when the source had no parts to tell
                      apart (then `notes` and `drums` are all there is). Readers fill
                      both views: `notes` is every pitched part merged, `drums` every
                      drum part merged.
    """

    notes: list[Note] = field(default_factory=list)
    tempos: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 120.0)])
    time_signatures: list[tuple[float, int, int]] = field(default_factory=lambda: [(0.0, 4, 4)])
    drums: list[Note] = field(default_factory=list)
    program: int = 0
    end: float | None = None
    dropped: Counter[str] = field(default_factory=Counter)
    parts: list[Part] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.tempos or self.tempos[0][0] != 0:
            first_bpm = self.tempos[0][1] if self.tempos else 120.0
            self.tempos = [(0.0, first_bpm)] + [t for t in self.tempos if t[0] > 0]
        if not self.time_signatures or self.time_signatures[0][0] != 0:
            first = self.time_signatures[0][1:] if self.time_signatures else (4, 4)
            self.time_signatures = [(0.0, *first)] + [t for t in self.time_signatures if t[0] > 0]

    @property
    def length(self) -> float:
        """Length in quarters: `end` if set, else the end of the last note (0 if none)."""
        if self.end is not None:
            return self.end
        last = [n.end for n in self.notes] + [n.end for n in self.drums]
        last += [n.end for part in self.parts for n in part.notes]
        return max(last, default=0.0)

    @property
    def note_count(self) -> int:
        """Notes of the piece, drums included (each part's, or notes + drums)."""
        if self.parts:
            return sum(len(part.notes) for part in self.parts)
        return len(self.notes) + len(self.drums)

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
