"""Rebuild band_corpus/ from the shared multi-track corpora (no network).

    python band_corpus/rebuild.py                       # reads ../shared/corpora
    python band_corpus/rebuild.py /path/to/corpora      # or a folder holding both

Two subfolders, copied byte for byte from the corpora folder:

- `freedoom/`: every Freedoom song (`*.mid`) with at least one pitched part (a note on
  any channel but 10), plus its licence `COPYING.adoc` and `CREDITS-MUSIC`.
- `groove/`: the Groove MIDI Dataset's 4/4 beats of its train and validation splits
  (`info.csv` rows with beat_type "beat", time_signature "4-4" and split "train" or
  "validation"), under their original paths (`drummerN/sessionM/...mid`), plus
  `LICENSE` and an `info.csv` holding the header and the kept rows in their original
  order. Left out: the fills (one or two bars each), the 12 beats in other metres, and
  the test split, which stays unseen for evaluating a model trained on this folder.

Both subfolders are written afresh each time (staged, then swapped in), so they hold
exactly what this script wrote; the output is the same bytes for the same input.
README.md and this script, beside them, are left alone.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
import tempfile
from pathlib import Path

import mido

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "corpora"  # ../shared/corpora from the repo
DRUM_CHANNEL = 9  # General MIDI channel 10, counted from 0
FREEDOOM_LICENCE = ("COPYING.adoc", "CREDITS-MUSIC")
GROOVE_LICENCE = ("LICENSE",)


def has_pitched_part(path: Path) -> bool:
    """True if the MIDI file sounds a note (note-on, velocity > 0) off channel 10."""
    for track in mido.MidiFile(path).tracks:
        for msg in track:
            if msg.type == "note_on" and msg.velocity > 0 and msg.channel != DRUM_CHANNEL:
                return True
    return False


def keep_groove_row(row: dict[str, str]) -> bool:
    """The selection rule on a Groove info.csv row: 4/4 beats, test split left out."""
    return (
        row["beat_type"] == "beat"
        and row["time_signature"] == "4-4"
        and row["split"] in ("train", "validation")
    )


def build_freedoom(source: Path, out: Path) -> tuple[int, int]:
    """Copy the songs with a pitched part and the licence files; (kept, left out)."""
    out.mkdir(parents=True)
    songs = sorted(source.glob("*.mid"))
    kept = [p for p in songs if has_pitched_part(p)]
    for path in [*kept, *(source / name for name in FREEDOOM_LICENCE)]:
        shutil.copyfile(path, out / path.name)
    return len(kept), len(songs) - len(kept)


def build_groove(source: Path, out: Path) -> tuple[int, int]:
    """Copy the rows `keep_groove_row` picks, LICENSE and the kept info.csv rows;
    (kept, left out)."""
    out.mkdir(parents=True)
    lines = (source / "info.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    header = next(csv.reader(io.StringIO(lines[0])))
    kept_lines = [lines[0]]
    for line in lines[1:]:
        if not line.strip():
            continue
        row = dict(zip(header, next(csv.reader(io.StringIO(line))), strict=True))
        if keep_groove_row(row):
            kept_lines.append(line)
            target = out / row["midi_filename"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / row["midi_filename"], target)
    (out / "info.csv").write_text("".join(kept_lines), encoding="utf-8", newline="")
    for name in GROOVE_LICENCE:
        shutil.copyfile(source / name, out / name)
    total = sum(1 for line in lines[1:] if line.strip())
    return len(kept_lines) - 1, total - (len(kept_lines) - 1)


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    if not (source / "freedoom").is_dir() or not (source / "groove" / "info.csv").is_file():
        print(f"error: no freedoom/ and groove/info.csv under {source}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(dir=HERE, prefix=".staging-") as staging:
        stage = Path(staging)
        counts = {
            "freedoom": build_freedoom(source / "freedoom", stage / "freedoom"),
            "groove": build_groove(source / "groove", stage / "groove"),
        }
        for name in counts:  # swap in: the old folder goes, the staged one takes its place
            shutil.rmtree(HERE / name, ignore_errors=True)
            (stage / name).rename(HERE / name)
    for name, (kept, left) in counts.items():
        print(f"{name}: {kept} files kept, {left} left out")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
