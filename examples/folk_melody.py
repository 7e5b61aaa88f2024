"""Write examples/frere-jacques.mid: a traditional folk melody to try `musicgen harmonize`.

"Frère Jacques" (French, 18th century, public domain), one voice in F major, 4/4,
8 bars at 96 bpm, typed in here note by note. Run from the repository root:

    python examples/folk_melody.py

then harmonize it with the bundled model:

    musicgen harmonize examples/frere-jacques.mid --out harmonized
"""

from __future__ import annotations

from pathlib import Path

from musicgen.midi_io import write_midi
from musicgen.score import Note, Score

# (pitch, length in quarters) per bar; F4 = 65
F, G, A, B_FLAT, C5, D5, C4 = 65, 67, 69, 70, 72, 74, 60
TUNE = [
    [(F, 1), (G, 1), (A, 1), (F, 1)],
    [(F, 1), (G, 1), (A, 1), (F, 1)],
    [(A, 1), (B_FLAT, 1), (C5, 2)],
    [(A, 1), (B_FLAT, 1), (C5, 2)],
    [(C5, 0.5), (D5, 0.5), (C5, 0.5), (B_FLAT, 0.5), (A, 1), (F, 1)],
    [(C5, 0.5), (D5, 0.5), (C5, 0.5), (B_FLAT, 0.5), (A, 1), (F, 1)],
    [(F, 1), (C4, 1), (F, 2)],
    [(F, 1), (C4, 1), (F, 2)],
]


def melody() -> Score:
    """The tune as a Score (times in quarter notes)."""
    notes, start = [], 0.0
    for bar in TUNE:
        for pitch, length in bar:
            notes.append(Note(pitch, start, start + length, 90))
            start += length
    return Score(notes=notes, tempos=[(0.0, 96.0)], time_signatures=[(0.0, 4, 4)], end=start)


if __name__ == "__main__":
    target = Path(__file__).with_name("frere-jacques.mid")
    write_midi(melody(), target, track_name="Frere Jacques")
    print(f"wrote {target}")
