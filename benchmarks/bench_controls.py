"""How well the generation controls steer a checkpoint: key (with its mode), metre, density.

Every figure comes from pieces `generate` writes (NumPy engine) and judges from the MIDI
file; each asked value is drawn under several seeds (`--seeds`, `--num` pieces each), so
one lucky seed cannot flatter a row.

- key (`--keys`, default all 24): for every length (`--bars`, default 8 and 16), metre
  (`--metres`, default 4/4 and 3/4) and key, the share of pieces whose music21 key
  analysis (`stats.music21_key`, the figure `musicgen stats` reports) names the asked
  key *with its mode*, the share that names its relative key (D minor asked, F major
  heard: the key signature obeyed, the mode not), and the share our own key finder
  (`remi.find_key`, what the Key tokens were trained on) names the asked key;
- metre (`--metres`): success when the file has the one asked time signature and a
  whole number of its bars, and the tokens hold no other TimeSig;
- density (`--densities`): each word means one Density level of the checkpoint (the
  15th, 50th and 85th percentile bar of its training data, stored in config.json);
  the figures are the mean notes per bar and the share of bars whose notes per
  quarter note fall in the asked level (and within one level of it, a 19% step);
  success overall when the means rise from low to high.

Metre and density use the first length of `--bars`. A baseline batch generated without
any control gives their chance level. Key and density can only be steered by a model
trained with `musicgen train --controls`; on any other remi checkpoint the script says
so and measures the metre only. The work (generation and music21's analysis, which
dominates) runs on `--workers` processes. Prints markdown tables. From the repository
root (`PYTHONPATH=.` in front makes it measure this checkout's musicgen rather than an
installed one):

    python benchmarks/bench_controls.py                    # the full grid, a few minutes
    python benchmarks/bench_controls.py --keys "D minor,C# minor" --bars 16 --metres 4/4 \
        --sections key                                     # a quick look at a few keys
    [--checkpoint checkpoints/bach] [--seeds 0,1,2,3] [--num 4] [--temperature 0.8]
    [--densities low,medium,high] [--workers 2] [--json results.json] [--quick]
    [--keep pieces/]                          # keep the written pieces, to look at the misses
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgen import checkpoint as ckpt
from musicgen.config import SampleConfig
from musicgen.constraints import KEY_NAMES, key_name, parse_key, stored_density_choices
from musicgen.encoding import encoding_class, get_encoding
from musicgen.encoding.remi import MODES, density_level, density_range, find_key
from musicgen.errors import UsageError, UserError
from musicgen.generate import generate
from musicgen.midi_io import read_score
from musicgen.stats import bar_grid, music21_key

ALL_KEYS = ",".join(f"{t} {m}" for m in MODES for t in KEY_NAMES)
SECTIONS = ("key", "metre", "density")
QUICK = {"keys": "C major,A minor", "bars": "8", "metres": "4/4", "seeds": "0,1", "num": 2}


def main() -> int:
    args = _arguments()
    folder = Path(args.checkpoint)
    try:
        config, meta = ckpt.read_config(folder)
    except UserError as exc:
        print(f"bench_controls: {exc}", file=sys.stderr)
        return 1
    if not encoding_class(config.encoding.name).takes_controls:
        print("bench_controls: the controls need a beat-grid checkpoint", file=sys.stderr)
        return 1
    controls = config.encoding.controls
    seeds = [int(s) for s in _items(args.seeds)]
    print(f"# Controls of {folder}\n")
    if not controls:
        print(
            "This model was trained without controls: key and density cannot be steered "
            "(retrain with `musicgen train --controls`). Only the metre is measured.\n"
        )
    print(
        f"{args.num} pieces per seed, seeds {args.seeds} ({args.num * len(seeds)} pieces per "
        f"row), temperature {args.temperature}, {args.workers} worker(s).\n"
    )
    started = time.perf_counter()
    results = {"checkpoint": str(folder), "controls": controls, "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="bench-controls-") as tmp:
        with ProcessPoolExecutor(args.workers) as pool:
            run = _Runner(pool, folder, Path(args.keep or tmp), args, seeds)
            if "key" in args.sections and controls:
                results["key"] = _keys(run, args)
            bars = int(_items(args.bars)[0])
            if "metre" in args.sections or "density" in args.sections:
                baseline = run.pieces([{"bars": bars}])[0]
            if "metre" in args.sections:
                results["metre"] = _metres(run, args.metres, bars, baseline)
            if "density" in args.sections and controls:
                levels = stored_density_choices(meta)
                results["density"] = _densities(run, args.densities, bars, baseline, levels)
    print(f"Took {time.perf_counter() - started:.0f} s.")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="checkpoints/bach")
    parser.add_argument("--num", type=int, default=4, help="pieces per seed and asked value")
    parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated sampling seeds")
    parser.add_argument("--bars", default="8,16", help="comma-separated lengths in bars")
    parser.add_argument("--keys", default=ALL_KEYS, help="comma-separated keys (default all 24)")
    parser.add_argument("--metres", default="4/4,3/4")
    parser.add_argument("--densities", default="low,medium,high")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="key,metre,density")
    parser.add_argument("--temperature", type=float, default=0.8, help="the CLI's default")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--keep",
        help="write the pieces into this folder and keep them (the json names "
        "each piece whose key analysis missed the asked key)",
    )
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK}")
    args = parser.parse_args()
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    args.sections = _items(args.sections)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        raise UsageError(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    return args


def _items(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


# ----------------------------------------------------------------------------- running


@dataclass(frozen=True)
class _Job:
    """One generate() call: `num` pieces under one seed, judged in the worker."""

    folder: Path
    out: Path
    num: int
    seed: int
    temperature: float
    request: tuple[tuple[str, object], ...]  # generate()'s keyword arguments


class _Runner:
    """Sends each asked request, once per seed, to the process pool."""

    def __init__(self, pool, folder: Path, tmp: Path, args: argparse.Namespace, seeds: list[int]):
        self.pool, self.folder, self.tmp, self.args, self.seeds = pool, folder, tmp, args, seeds
        self.calls = 0

    def pieces(self, requests: list[dict]) -> list[list[dict]]:
        """For each request (generate()'s keywords, e.g. {"bars": 8, "key": "D minor"})
        the judged pieces of every seed, in request order."""
        jobs = []
        for request in requests:
            for seed in self.seeds:
                self.calls += 1
                out = self.tmp / str(self.calls)
                args = (self.folder, out, self.args.num, seed, self.args.temperature)
                jobs.append(_Job(*args, tuple(sorted(request.items()))))
        judged = list(self.pool.map(_run_job, jobs))
        per = len(self.seeds)
        return [sum(judged[i * per : (i + 1) * per], []) for i in range(len(requests))]


def _run_job(job: _Job) -> list[dict]:
    sample = SampleConfig(temperature=job.temperature, seed=job.seed)
    request = dict(job.request)
    files = generate(job.folder, job.out, num=job.num, sample=sample, **request)
    encoding = get_encoding(ckpt.read_config(job.folder)[0].encoding)
    return [_judge(encoding, f.path, f.ids) for f in files]


def _judge(encoding, path: Path, ids) -> dict:
    """What one written piece turned out to be: keys, metres, notes per bar."""
    score = read_score(path)
    # a MIDI file's silent last beats are not notes: take the length the file was written
    # with (its end of track) from the piece's own ids
    score.end = encoding.decode(ids).length
    bars = bar_grid(score)
    timesigs = {t for t in encoding.describe(ids) if t.startswith("TimeSig_")}
    return {
        "path": str(path),
        "music21_key": parse_key(music21_key(score)),
        "our_key": find_key([n.pitch for n in score.notes], [n.end - n.start for n in score.notes]),
        "metres": {(num, den) for _, _, num, den in bars},
        "whole_bars": all(abs(length - num * 4 / den) < 1e-6 for _, length, num, den in bars),
        "timesig_tokens": timesigs,
        "notes_per_bar": len(score.notes) / max(len(bars), 1),
        "bar_levels": [_bar_level(score, start, length) for start, length, _, _ in bars],
    }


def _bar_level(score, start: float, length: float) -> int:
    """Density level of the bar [start, start + length) quarters of a written piece."""
    notes = sum(1 for n in score.notes if start - 1e-6 <= n.start < start + length - 1e-6)
    return density_level(notes, length)


def _share(flags: list[bool]) -> float:
    return float(np.mean(flags)) if flags else float("nan")


def _rate(flags: list[bool]) -> str:
    return f"{np.mean(flags):.0%}" if flags else "-"


# ----------------------------------------------------------------------------- key


def relative_key(tonic: int, mode: int) -> tuple[int, int]:
    """The key with the same signature and the other mode: (2, 1) D minor -> (5, 0)."""
    return ((tonic + 3) % 12, 0) if mode == 1 else ((tonic + 9) % 12, 1)


def _keys(run: _Runner, args: argparse.Namespace) -> dict:
    keys = [parse_key(k) for k in _items(args.keys)]
    conditions = list(itertools.product([int(b) for b in _items(args.bars)], _items(args.metres)))
    requests = [
        {"bars": bars, "time_signature": metre, "key": key_name(*key)}
        for bars, metre in conditions
        for key in keys
    ]
    pieces = iter(run.pieces(requests))
    per_key: dict[tuple[int, str], dict[str, dict]] = {}
    for condition in conditions:
        per_key[condition] = {key_name(*k): _key_figures(k, next(pieces)) for k in keys}
    _print_key_tables(conditions, keys, per_key)
    return {f"{bars} bars {metre}": figures for (bars, metre), figures in per_key.items()}


def _key_figures(asked: tuple[int, int], pieces: list[dict]) -> dict:
    """Shares of `pieces` whose key is the asked one, its relative key, and find_key's."""
    return {
        "pieces": len(pieces),
        "asked": _share([p["music21_key"] == asked for p in pieces]),
        "relative": _share([p["music21_key"] == relative_key(*asked) for p in pieces]),
        "find_key": _share([p["our_key"] == asked for p in pieces]),
        "missed": {
            p["path"]: key_name(*p["music21_key"]) for p in pieces if p["music21_key"] != asked
        },
    }


def _print_key_tables(conditions, keys, per_key) -> None:
    print("## Key (music21's analysis of the written file = the asked key, mode included)\n")
    print(
        "| bars | metre | keys | pieces | asked key | relative key | other | find_key | worst key |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for condition in conditions:
        rows = per_key[condition]
        n = sum(r["pieces"] for r in rows.values())
        mean = {
            f: sum(r[f] * r["pieces"] for r in rows.values()) / n
            for f in ("asked", "relative", "find_key")
        }
        worst = min(rows, key=lambda k: rows[k]["asked"])
        print(
            f"| {condition[0]} | {condition[1]} | {len(rows)} | {n} | {mean['asked']:.1%} | "
            f"{mean['relative']:.1%} | {1 - mean['asked'] - mean['relative']:.1%} | "
            f"{mean['find_key']:.1%} | {worst} {rows[worst]['asked']:.0%} |"
        )
    print("\nPer key, asked key (relative key):\n")
    print("| key | " + " | ".join(f"{b} bars {m}" for b, m in conditions) + " |")
    print("|---|" + "---:|" * len(conditions))
    for key in keys:
        name = key_name(*key)
        cells = [per_key[c][name] for c in conditions]
        print(
            f"| {name} | "
            + " | ".join(f"{c['asked']:.0%} ({c['relative']:.0%})" for c in cells)
            + " |"
        )
    print()


# ----------------------------------------------------------------------------- metre, density


def _metres(run: _Runner, metres: str, bars: int, baseline: list[dict]) -> list[dict]:
    print(f"## Metre (every bar in the asked time signature; {bars} bars)\n")
    print("| asked | steered | baseline |")
    print("|---|---|---|")
    texts = _items(metres)
    batches = run.pieces([{"bars": bars, "time_signature": t} for t in texts])
    rows = []
    for text, pieces in zip(texts, batches, strict=True):
        num, den = (int(x) for x in text.split("/"))
        token = f"TimeSig_{num}/{den}"

        def holds(p: dict, num: int = num, den: int = den, token: str = token) -> bool:
            return (
                p["metres"] == {(num, den)} and p["whole_bars"] and p["timesig_tokens"] == {token}
            )

        row = {
            "metre": text,
            "steered": _rate([holds(p) for p in pieces]),
            "baseline": _rate([holds(p) for p in baseline]),
        }
        rows.append(row)
        print(f"| {text} | {row['steered']} | {row['baseline']} |")
    print()
    return rows


def _densities(
    run: _Runner, densities: str, bars: int, baseline: list[dict], levels: dict[str, int]
) -> dict:
    print(f"## Density (each word is one Density level of the model; {bars} bars)\n")
    print("| asked | level | mean notes per bar | bars at the level | within one level |")
    print("|---|---|---|---|---|")
    texts = _items(densities)
    batches = run.pieces([{"bars": bars, "density": t} for t in texts])
    rows = []
    for text, pieces in zip(texts, batches, strict=True):
        level = levels[text]
        means = [p["notes_per_bar"] for p in pieces]
        bar_levels = [b for p in pieces for b in p["bar_levels"]]
        lo, hi = density_range(level)
        row = {
            "density": text,
            "level": level,
            "notes_per_quarter": [round(lo, 2), round(hi, 2)],
            "mean_notes_per_bar": round(float(np.mean(means)), 2),
            "bars_at_level": _rate([b == level for b in bar_levels]),
            "bars_within_one": _rate([abs(b - level) <= 1 for b in bar_levels]),
            "baseline_at_level": _rate([b == level for p in baseline for b in p["bar_levels"]]),
        }
        rows.append(row)
        print(
            f"| {text} | {level} ({lo:.2f}-{hi:.2f}) | {row['mean_notes_per_bar']:.1f} | "
            f"{row['bars_at_level']} (baseline {row['baseline_at_level']}) | "
            f"{row['bars_within_one']} |"
        )
    base_mean = float(np.mean([p["notes_per_bar"] for p in baseline]))
    means = [r["mean_notes_per_bar"] for r in rows]
    rising = len(means) > 1 and all(a < b for a, b in zip(means, means[1:], strict=False))
    print(f"\nBaseline mean notes per bar: {base_mean:.1f}. ", end="")
    print(f"Means rise with the asked level: {'yes' if rising else 'no'}.\n")
    return {"rows": rows, "baseline_mean": round(base_mean, 2), "rising": bool(rising)}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (UsageError, UserError) as exc:
        print(f"bench_controls: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
