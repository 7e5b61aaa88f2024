"""Parsing speed: `musicgen.dataset.prepare` cold and warm, against music21.

Three ways to turn the same MIDI files into tokens, in one process:

- "prepare, cold": `prepare(folder, EncodingConfig())` with a fresh, empty cache
  folder: hash, parse (pretty_midi), encode (remi), write the cache; once with
  `workers=1` (parsed in this process) and once per larger worker count (a process
  pool, its start-up included);
- "prepare, warm": the same call again on the filled cache (hash + cache reads only);
- "music21": the common recipe of the well-known LSTM scripts, on the first
  `--music21-files` files only (it is slow): `music21.converter.parse` on each file,
  then every note and chord of the flattened score as a string token. music21's own
  pickle cache is bypassed (forceSource), so every repeat parses, as our cold run does.

Figures are files per second (median of `--repeats`); the cold runs also give the
scaling from one worker to all cores. Run from the repository root:

    python benchmarks/bench_parse.py [--quick] [--data midi_corpus] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from run_all import Report, fmt

from musicgen.config import EncodingConfig
from musicgen.dataset import prepare, scan


def time_median(run: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of `repeats` calls of run()."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def prepare_cold(folder: Path, workers: int) -> None:
    """prepare() with a fresh empty cache: every file is parsed and encoded."""
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        data = prepare(folder, EncodingConfig(), cache_dir=cache, workers=workers)
        assert data.cached == 0, "a cold run found a cache entry"


def music21_tokens(path: Path) -> list[str]:
    """The common recipe: music21 parses the file; each note of the flattened score
    becomes its pitch name and each chord the dot-joined normal order of its pitches."""
    from music21 import chord, converter, note

    tokens = []
    score = converter.parse(str(path), forceSource=True, storePickle=False)  # no music21 cache
    for element in score.flatten().notes:
        if isinstance(element, note.Note):
            tokens.append(str(element.pitch))
        elif isinstance(element, chord.Chord):
            tokens.append(".".join(str(n) for n in element.normalOrder))
    return tokens


def subset_folder(data: Path, count: int, into: Path) -> Path:
    """A folder holding copies of the first `count` music files of `data` (all if 0)."""
    files, _ = scan(data)
    if not count or count >= len(files):
        return data
    for rel in files[:count]:
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / rel, target)
    return into


def measure(args: argparse.Namespace, folder: Path, report: Report) -> None:
    files, _ = scan(folder)
    n = len(files)
    worker_counts = sorted({1, *args.workers})
    table = report.table(
        f"Files per second, {n} files (median of {args.repeats})",
        ["method", "workers", "seconds", "files/s", "x music21"],
    )
    # music21 first: its imports should not be charged to our cold run, nor ours to it
    m21_files = [folder / rel for rel in files[: args.music21_files]]
    music21_tokens(m21_files[0])  # import music21 and warm its caches
    m21_seconds = time_median(lambda: [music21_tokens(p) for p in m21_files], args.repeats)
    m21_rate = len(m21_files) / m21_seconds
    prepare_cold(folder, 1)  # warm-up: imports, page cache
    cold = {
        w: time_median(lambda w=w: prepare_cold(folder, w), args.repeats) for w in worker_counts
    }
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        prepare(folder, EncodingConfig(), cache_dir=cache)
        warm = time_median(lambda: prepare(folder, EncodingConfig(), cache_dir=cache), args.repeats)

    table.add(f"music21 recipe ({len(m21_files)} files)", 1, m21_seconds, m21_rate, 1.0)
    for w, seconds in cold.items():
        table.add("prepare, cold cache", w, seconds, n / seconds, n / seconds / m21_rate)
    table.add("prepare, warm cache", 1, warm, n / warm, n / warm / m21_rate)
    scaling = report.table("prepare (cold) from one worker to more", ["workers", "speed-up"])
    for w, seconds in cold.items():
        scaling.add(w, cold[1] / seconds)
    best_cold = n / min(cold.values())
    report.target(
        "prepare cold / music21 (files/s)",
        f"{fmt(best_cold / m21_rate)}x",
        "faster",
        best_cold > m21_rate,
    )
    report.target(
        "prepare warm / cold (files/s)",
        f"{fmt(cold[1] / warm)}x",
        "faster",
        warm < min(cold.values()),
    )


def _worker_counts() -> list[int]:
    """1, 2, 4, ... up to every core, and every core: how prepare scales."""
    cores = os.cpu_count() or 1
    return sorted({2**i for i in range(cores.bit_length()) if 2**i <= cores} | {cores})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="midi_corpus", help="folder of MIDI files")
    parser.add_argument("--files", type=int, default=0, help="first N files only (0 = all)")
    parser.add_argument("--music21-files", type=int, default=40, help="files music21 parses")
    parser.add_argument("--workers", type=int, nargs="+", default=_worker_counts())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 files, 4 for music21, once")
    parser.add_argument("--json", help="also write the report here (for run_all.py)")
    args = parser.parse_args()
    if args.quick:
        args.files, args.music21_files, args.repeats = args.files or 40, 4, 1

    report = Report("Parsing: prepare (cold, warm, 1..n workers) vs music21")
    report.notes.append(
        f"data: {args.data}; encoding: remi (defaults); cores: {os.cpu_count()}; "
        f"music21 is timed on the first {args.music21_files} files only"
    )
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        folder = subset_folder(Path(args.data), args.files, Path(tmp))
        measure(args, folder, report)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
