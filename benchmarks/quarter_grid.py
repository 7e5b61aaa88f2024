"""A quarter-note-grid copy of a folder of chorales, shaped like the polyphonic benchmark
of issue 14 (JSB Chorales as piano rolls: the pitches sounding at each beat, one part).

Every file's parts are merged; at each quarter note the pitches sounding at the beat
are kept, and a pitch sounding on consecutive beats becomes one held note. One piano
track, velocity 80, the file's tempo and metre. Used to compare encodings on music of
that shape (checkpoints/README.md "Representation"):

    python benchmarks/quarter_grid.py midi_corpus /tmp/quarter-grid
    musicgen train /tmp/quarter-grid --out /tmp/qg-steps --max-minutes 20
    musicgen evaluate --checkpoint /tmp/qg-steps
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musicgen.midi_io import read_score, write_midi
from musicgen.score import MusicError, Note, Part, Score


def quarter_grid(score: Score) -> Score:
    """`score` on a quarter-note grid: one part, held pitches merged."""
    notes = [n for p in score.parts if not p.is_drum for n in p.notes]
    end = int(max(n.end for n in notes))
    beats = [{n.pitch for n in notes if n.start <= q + 1e-6 < n.end} for q in range(end)]
    out: list[Note] = []
    held: dict[int, int] = {}  # pitch -> the beat it began
    for beat, pitches in enumerate([*beats, set()]):
        for pitch in [p for p in held if p not in pitches]:
            out.append(Note(pitch, held.pop(pitch), beat, 80))
        for pitch in pitches:
            held.setdefault(pitch, beat)
    out.sort(key=lambda n: (n.start, n.pitch))
    return Score(
        parts=[Part(0, out, "Piano")],
        tempos=score.tempos,
        time_signatures=score.time_signatures,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in sorted(args.source.glob("*.mid")):
        try:
            write_midi(quarter_grid(read_score(path)), args.out / path.name)
            written += 1
        except (MusicError, ValueError) as exc:
            print(f"skipped {path.name}: {exc}")
    print(f"{written} files in {args.out}")


if __name__ == "__main__":
    main()
