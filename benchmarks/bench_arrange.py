"""Working on a song: `accompany` and `infill` wall time on a 64-bar song.

The song is built in code (fixtures.band_song: a melody, string chords and a bass in
4/4 at 120 bpm, three named tracks, about 13 notes a bar) and written as a MIDI file.
The checkpoint is checkpoints/band (or `--band FOLDER`) when it exists, else an
untrained 2 x 256 GRU tracks checkpoint in a temporary folder (the output says which). Two jobs:

- (a) accompany: `--add drums,bass`, one arrangement;
- (b) infill: 4 bars in the middle of the song, 16 candidates (the default), one file.

Each is timed twice: the function call (`musicgen.arrange.accompany` / `infill`) in
this process, loading the checkpoint and reading and writing the files included, the
modules already imported (best of `--repeats` after one untimed call); and the whole
command (`python -m musicgen accompany ...`) in a fresh process, Python start-up and
imports included (best of `--repeats`). Targets (issue 16 "Speed"): each under 5 s on
the 2-core CPU, measured on the whole command. Run from the repository root:

    python benchmarks/bench_arrange.py [--quick] [--bars 64] [--band FOLDER] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fixtures import BAND, band_checkpoint, command_seconds, is_stand_in, write_song
from run_all import Report

from musicgen import arrange
from musicgen.config import SampleConfig

T = TypeVar("T")
TARGET_SECONDS = 5.0  # issue 16: accompany 64 bars, infill 4 bars x 16 candidates


def call_seconds(run: Callable[[], T], repeats: int) -> tuple[float, T]:
    """(best wall seconds of `run()` over `repeats` calls after one untimed call, what
    the untimed call returned)."""
    first = run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best, first


def infill_bars(bars: int, width: int = 4) -> str:
    """ "A-B": `width` bars in the middle of a song of `bars` bars (1-based)."""
    first = max(1, bars // 2 - width // 2 + 1)
    return f"{first}-{min(bars, first + width - 1)}"


Job = tuple[Callable[[], list], list[str]]  # (the function call, the CLI's arguments)


def make_jobs(args: argparse.Namespace, checkpoint: Path, song: Path, out: Path) -> dict[str, Job]:
    """The two timed jobs by name: accompany, and infill of 4 bars in the middle."""
    sample = SampleConfig(temperature=0.8, seed=0)  # the CLI's defaults
    window = infill_bars(args.bars)
    return {
        f"(a) accompany {args.bars} bars, --add {args.add}": (
            lambda: arrange.accompany(checkpoint, song, args.add, out, sample=sample, force=True),
            ["accompany", str(song), "--add", args.add],
        ),
        f"(b) infill 4 bars ({window}) of {args.bars}, {args.candidates} candidates": (
            lambda: arrange.infill(
                checkpoint, song, window, out, candidates=args.candidates, sample=sample,
                force=True,
            ),
            ["infill", str(song), "--bars", window, "--candidates", str(args.candidates)],
        ),
    }  # fmt: skip


def time_jobs(
    report: Report, args: argparse.Namespace, jobs: dict[str, Job], checkpoint: Path, out: Path
) -> None:
    """Each job as a function call and as a fresh command: the table and the targets."""
    table = report.table(
        "Wall seconds", ["job", "function call s", "whole command s", "notes written"]
    )
    common = ["--checkpoint", str(checkpoint), "--out", str(out), "--force", "--quiet"]
    stand_in = " (band STAND-IN, untrained)" if is_stand_in(checkpoint) else ""
    for job, (run, cli) in jobs.items():
        seconds, written = call_seconds(run, args.repeats)
        command = command_seconds([*cli, *common], args.repeats)
        table.add(job, seconds, command, sum(a.notes for a in written))
        report.target(f"{job.split(' ', 1)[1]}, whole command{stand_in}", f"{command:.2f} s",
                      f"< {TARGET_SECONDS:g} s", command < TARGET_SECONDS)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--band", type=Path, default=BAND, help="band checkpoint folder")
    parser.add_argument("--bars", type=int, default=64, help="length of the song")
    parser.add_argument("--add", default="drums,bass", help="accompany's --add")
    parser.add_argument("--candidates", type=int, default=16, help="infill's --candidates")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (best)")
    parser.add_argument("--quick", action="store_true", help="8 bars, 2 candidates, 1 run")
    parser.add_argument("--json", help="also write the report here (for run_all.py)")
    args = parser.parse_args()
    if args.quick:
        args.bars, args.candidates, args.repeats = 8, 2, 1
    report = Report("Working on a song: accompany and infill")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, label = band_checkpoint(Path(tmp), args.band)
        song = write_song(Path(tmp) / "song.mid", args.bars)
        report.notes += [
            f"checkpoint: {label}",
            f"song: built in code, {args.bars} bars of 4/4 at 120 bpm, melody + string "
            "chords + bass on three tracks (benchmarks/fixtures.py band_song)",
            f"engine: numpy (the default); {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f} at start",
            f"function: best of {args.repeats} in-process calls after one untimed call; "
            f"command: best of {args.repeats} fresh processes (start-up included)",
        ]
        out = Path(tmp) / "out"
        time_jobs(report, args, make_jobs(args, checkpoint, song, out), checkpoint, out)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
