"""How well the generation controls steer a checkpoint: key, metre and density.

For each asked value, `generate` writes N pieces into a temporary folder and each piece
is judged from its MIDI file:

- key (`--keys`): success when music21's key analysis (`stats.music21_key`, the same
  figure `musicgen stats` reports) names the asked key; the rate of our own key finder
  (`remi.find_key`, what the Key tokens were trained on) is shown beside it;
- metre (`--metres`): success when the file has the one asked time signature and a
  whole number of its bars, and the tokens hold no other TimeSig;
- density (`--densities`): each word means one Density level of the checkpoint (the
  15th, 50th and 85th percentile bar of its training data, stored in config.json);
  the figures are the mean notes per bar and the share of bars whose notes per
  quarter note fall in the asked level (and within one level of it, a 19% step);
  success overall when the means rise from low to high.

A baseline batch generated without any control gives the chance level of each row.
Key and density can only be steered by a model trained with `musicgen train
--controls`; on any other remi checkpoint the script says so, measures the metre, and
shows only the baseline for keys and densities. Prints markdown tables. Run from the
repository root:

    python benchmarks/bench_controls.py [--checkpoint checkpoints/bach] [--num 8]
        [--bars 16] [--keys "C major,A minor,D major,E minor"] [--metres 4/4,3/4]
        [--densities low,medium,high] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from musicgen import checkpoint as ckpt
from musicgen.config import SampleConfig
from musicgen.constraints import key_name, parse_key, stored_density_choices
from musicgen.encoding.base import get_encoding
from musicgen.encoding.remi import density_level, density_range, find_key
from musicgen.errors import UsageError, UserError
from musicgen.generate import GeneratedFile, generate
from musicgen.midi_io import read_score
from musicgen.stats import bar_grid, music21_key


def main() -> int:
    args = _arguments()
    folder = Path(args.checkpoint)
    try:
        config, meta = ckpt.read_config(folder)
    except UserError as exc:
        print(f"bench_controls: {exc}", file=sys.stderr)
        return 1
    if config.encoding.name != "remi":
        print("bench_controls: the controls need a remi checkpoint", file=sys.stderr)
        return 1
    encoding = get_encoding(config.encoding)
    controls = config.encoding.controls
    print(f"# Controls of {folder}\n")
    if not controls:
        print(
            "This model was trained without controls: key and density cannot be steered "
            "(retrain with `musicgen train --controls`). Only the metre is measured; the "
            "key and density rows show the unsteered baseline.\n"
        )
    print(f"{args.num} pieces of {args.bars} bars per row, temperature {args.temperature}.\n")

    run = _Runner(folder, args)
    started = time.perf_counter()
    results = {"checkpoint": str(folder), "controls": controls, "num": args.num, "bars": args.bars}
    baseline = [_judge(encoding, f) for f in run()]
    results["key"] = _keys(run, encoding, args.keys, baseline, controls)
    results["metre"] = _metres(run, encoding, args.metres, baseline)
    levels = stored_density_choices(meta)
    results["density"] = _densities(run, encoding, args.densities, baseline, controls, levels)
    print(f"Took {time.perf_counter() - started:.0f} s.")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="checkpoints/bach")
    parser.add_argument("--num", type=int, default=8, help="pieces per asked value")
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--keys", default="C major,A minor,D major,E minor")
    parser.add_argument("--metres", default="4/4,3/4")
    parser.add_argument("--densities", default="low,medium,high")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


class _Runner:
    """generate() into a fresh temporary folder per call, with the shared settings."""

    def __init__(self, folder: Path, args: argparse.Namespace):
        self.folder, self.args = folder, args
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-controls-")
        self.calls = 0

    def __call__(self, **controls: str) -> list[GeneratedFile]:
        self.calls += 1
        out = Path(self.tmp.name) / str(self.calls)
        sample = SampleConfig(temperature=self.args.temperature, seed=self.args.seed)
        return generate(
            self.folder, out, num=self.args.num, bars=self.args.bars, sample=sample, **controls
        )


def _judge(encoding, f: GeneratedFile) -> dict:
    """What one written piece turned out to be: keys, metres, notes per bar."""
    score = read_score(f.path)
    # a MIDI file's silent last beats are not notes: take the length the file was written
    # with (its end of track) from the piece's own ids
    score.end = encoding.decode(f.ids).length
    bars = bar_grid(score)
    timesigs = {t for t in encoding.describe(f.ids) if t.startswith("TimeSig_")}
    return {
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


def _rate(flags: list[bool]) -> str:
    return f"{np.mean(flags):.0%}" if flags else "-"


def _keys(run, encoding, keys: str, baseline: list[dict], controls: bool) -> list[dict]:
    print("## Key (music21's analysis of the written file = the asked key)\n")
    print("| asked | steered: music21 | steered: find_key | baseline: music21 |")
    print("|---|---|---|---|")
    rows = []
    for text in [k.strip() for k in keys.split(",") if k.strip()]:
        asked = parse_key(text)
        pieces = [_judge(encoding, f) for f in run(key=text)] if controls else []
        row = {
            "key": key_name(*asked),
            "music21": _rate([p["music21_key"] == asked for p in pieces]),
            "find_key": _rate([p["our_key"] == asked for p in pieces]),
            "baseline": _rate([p["music21_key"] == asked for p in baseline]),
        }
        rows.append(row)
        print(f"| {row['key']} | {row['music21']} | {row['find_key']} | {row['baseline']} |")
    print()
    return rows


def _metres(run, encoding, metres: str, baseline: list[dict]) -> list[dict]:
    print("## Metre (every bar in the asked time signature)\n")
    print("| asked | steered | baseline |")
    print("|---|---|---|")
    rows = []
    for text in [m.strip() for m in metres.split(",") if m.strip()]:
        num, den = (int(x) for x in text.split("/"))
        token = f"TimeSig_{num}/{den}"

        def holds(p: dict, num: int = num, den: int = den, token: str = token) -> bool:
            return (
                p["metres"] == {(num, den)} and p["whole_bars"] and p["timesig_tokens"] == {token}
            )

        pieces = [_judge(encoding, f) for f in run(time_signature=text)]
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
    run, encoding, densities: str, baseline: list[dict], controls: bool, levels: dict[str, int]
) -> dict:
    print("## Density (each word is one Density level of the model; notes per quarter)\n")
    print("| asked | level | mean notes per bar | bars at the level | within one level |")
    print("|---|---|---|---|---|")
    rows = []
    for text in [d.strip() for d in densities.split(",") if d.strip()]:
        level = levels[text]
        pieces = [_judge(encoding, f) for f in run(density=text)] if controls else []
        means = [p["notes_per_bar"] for p in pieces]
        bars = [b for p in pieces for b in p["bar_levels"]]
        lo, hi = density_range(level)
        row = {
            "density": text,
            "level": level,
            "notes_per_quarter": [round(lo, 2), round(hi, 2)],
            "mean_notes_per_bar": round(float(np.mean(means)), 2) if means else None,
            "bars_at_level": _rate([b == level for b in bars]),
            "bars_within_one": _rate([abs(b - level) <= 1 for b in bars]),
            "baseline_at_level": _rate([b == level for p in baseline for b in p["bar_levels"]]),
        }
        rows.append(row)
        mean = "-" if row["mean_notes_per_bar"] is None else f"{row['mean_notes_per_bar']:.1f}"
        print(
            f"| {text} | {level} ({lo:.2f}-{hi:.2f}) | {mean} | {row['bars_at_level']} "
            f"(baseline {row['baseline_at_level']}) | {row['bars_within_one']} |"
        )
    base_mean = float(np.mean([p["notes_per_bar"] for p in baseline]))
    means = [r["mean_notes_per_bar"] for r in rows]
    rising = (
        controls and len(means) > 1 and all(a < b for a, b in zip(means, means[1:], strict=False))
    )
    print(f"\nBaseline mean notes per bar: {base_mean:.1f}. ", end="")
    print(f"Means rise with the asked level: {'yes' if rising else 'no'}.\n")
    return {"rows": rows, "baseline_mean": round(base_mean, 2), "rising": bool(rising)}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (UsageError, UserError) as exc:
        print(f"bench_controls: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
