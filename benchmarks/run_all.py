"""Run every benchmark and write benchmarks/RESULTS.md.

    python benchmarks/run_all.py            # the full run (about 10 minutes on 2 cores)
    python benchmarks/run_all.py --quick    # a smoke run: same code, tiny sizes

It runs every benchmarks/bench_*.py (parse, train, generate, arrange first, then any other by
name), each in its own process, one after the other (so none disturbs another, and
each process's peak memory is its own); `--quick` passes `--quick` on and leaves out
a script that has none. Scripts that build their report with `Report` from here
(parse, train, generate, arrange) hand it back as JSON (`--json FILE`, the shape
below); the others print their own tables, copied as they are. RESULTS.md opens with
the command that wrote it and a description of the machine (CPU, cores, memory,
versions, date, and how busy the CPUs were just before: figures taken on a busy machine
say so).

A report, as the bench scripts write it:

    {"title": str,
     "notes": [str, ...],                               # set-up, one line each
     "tables": [{"title": str, "columns": [str, ...], "rows": [[cell, ...], ...]}],
     "targets": [{"figure": str, "value": str, "target": str, "met": bool}]}

`Table`/`Report` build that shape and print it for people; the bench scripts import
them from here.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGES = ("tensorflow", "keras", "numpy", "music21", "pretty_midi", "mido", "musicgen")
BUSY = 0.15  # share of CPU time used by others before the run above which figures are suspect
FIRST = ("bench_parse.py", "bench_train.py", "bench_generate.py", "bench_arrange.py")
TITLES = {  # for scripts that print their own tables
    "bench_controls.py": "Generation controls: key, metre, density",
    "bench_step.py": "The training step, way by way: share of the matmul peak",
}
# The targets each script reports (issues 14-16, SPEC.md "Speed"); one that a script did
# not report (it failed, or did not run) is listed in RESULTS.md as not measured.
TARGETS = {
    "bench_parse.py": [],
    "bench_train.py": [
        ("pipeline overhead (b/a - 1)", "<= 10%"),
        ("supervised tokens/s, ours / common", ">= 100x"),
    ],
    "bench_generate.py": [("generate band --num 4 --bars 32, whole command", "< 1 s")],
    "bench_arrange.py": [
        ("accompany 64 bars, --add drums,bass, whole command", "< 5 s"),
        ("infill 4 bars (31-34) of 64, 16 candidates, whole command", "< 5 s"),
    ],
    "bench_render.py": [("render a 32-bar band piece to WAV, x real time", ">= 20x")],
    "bench_parts.py": [  # issue 25
        ("accompany: bass onsets that are chords", "<= 5%"),
        ("accompany: bass notes in MIDI 23-64", ">= 95%"),
        ("accompany: bass notes on the sounding harmony", ">= 85%"),
        ("accompany: hi-hat share of drum hits", ">= 20%"),
        ("accompany: crash/ride/china/splash share", "<= 15%"),
        ("accompany: drum notes outside the GM kit (35-81)", "0"),
        ("accompany: bass notes per bar within 0.5x-2x the song's own", "all"),
        ("generate: pieces with drums and >= 3 pitched parts", ">= 9 in 10"),
        ("generate: per-family statistics with overlap >= 0.7", "all"),
    ],
    "bench_live.py": [  # issue 24
        ("first note after play() is called", "<= 1 s"),
        ("note timing at 120 bpm, median / 99th pct (continue)", "<= 5 ms"),
        ("answer: reply start after the silence, worst", "<= 1 beat"),
        ("notes left sounding after stop", "0"),
    ],
}


# ----------------------------------------------------------------------------- reports


@dataclass
class Table:
    """One table of figures: a title, column names and rows of cells (str or number)."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))


@dataclass
class Report:
    """What one benchmark script measured (see the module docstring for the JSON)."""

    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)

    def table(self, title: str, columns: list[str]) -> Table:
        table = Table(title, columns)
        self.tables.append(table)
        return table

    def target(self, figure: str, value: str, target: str, met: bool) -> None:
        self.targets.append({"figure": figure, "value": value, "target": target, "met": met})

    def print(self) -> None:
        """The report as plain text on stdout."""
        print(f"== {self.title}")
        for note in self.notes:
            print(f"   {note}")
        for table in self.tables:
            print(f"\n{table.title}")
            print(_text_table(table.columns, table.rows))
        if self.targets:
            print("\ntargets")
            print(_text_table(*_target_rows(self.targets)))
        sys.stdout.flush()

    def save(self, path: str | Path | None) -> None:
        if path:
            Path(path).write_text(json.dumps(asdict(self), indent=1))


def fmt(value: float, digits: int = 3) -> str:
    """A figure with `digits` significant digits, thousands separated (12,300; 0.0123)."""
    if value == 0 or not (abs(value) < float("inf")):
        return str(value)
    decimals = max(0, digits - 1 - int(f"{abs(value):e}".split("e")[1]))
    return f"{value:,.{decimals}f}"


def _cell(value: Any) -> str:
    return fmt(value) if isinstance(value, float) else str(value)


def _text_table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [columns] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(_align(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _align(row: list[str], widths: list[int]) -> list[str]:
    """The first cell left-aligned, the others (figures) right-aligned."""
    cells = zip(row, widths, strict=True)
    return [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)]


def _markdown_table(columns: list[str], rows: list[list[Any]], align: str = "") -> str:
    """A Markdown table; `align` gives "l" or "r" per column (default: the first column
    left, the figures right)."""
    align = align or "l" + "r" * (len(columns) - 1)
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    body = ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def _target_rows(targets: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    rows = [[t["figure"], t["value"], t["target"], "yes" if t["met"] else "NO"] for t in targets]
    return ["figure", "measured", "target", "met"], rows  # Markdown: align "lrrl"


# ----------------------------------------------------------------------------- machine


def machine(busy: float | None) -> list[tuple[str, str]]:
    """(what, value) pairs describing this machine and its software; busy: the share
    of CPU time other processes used just before the run."""
    rows = [
        ("date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")),
        ("CPU", _cpu_model()),
        ("cores", _cores()),
        ("memory", _memory()),
        ("GPU", _gpu()),
        ("load average (1, 5, 15 min) before the run", _load()),
        ("CPU busy in the 2 s before the run", _percent(busy)),
        ("OS", platform.platform()),
        ("python", platform.python_version()),
    ]
    for name in PACKAGES:
        try:
            rows.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    rows.append(("musicgen commit", _git_commit()))
    return rows


def _percent(share: float | None) -> str:
    return "unknown" if share is None else f"{share:.0%}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{usable} usable ({os.cpu_count()} online)"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _gpu() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
        return out.replace("\n", "; ") or "none"
    except (OSError, subprocess.SubprocessError):
        return "none (CPU only)"


def _load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_busy(seconds: float = 2.0) -> float | None:
    """Share of all cores' time spent busy over the next `seconds` (from /proc/stat);
    None where that cannot be read."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"
    except OSError:
        return "unknown"


# ----------------------------------------------------------------------------- running


@dataclass
class Outcome:
    """One benchmark process: its report (JSON scripts) or its stdout, and how it ended."""

    script: str
    command: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None = None


def run_script(script: str, args: list[str], with_json: bool) -> Outcome:
    """Run benchmarks/<script> with this Python from the repository root."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        command = [sys.executable, str(HERE / script), *args]
        if with_json:
            command += ["--json", str(out)]
        shown = ["python", f"benchmarks/{script}", *args]
        print(f"-- {shlex.join(shown)}", flush=True)
        start = time.monotonic()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.monotonic() - start
        sys.stdout.write(proc.stdout)
        if proc.returncode:
            sys.stdout.write(proc.stderr[-4000:])
        report = json.loads(out.read_text()) if with_json and out.exists() else None
    return Outcome(script, shown, seconds, proc.returncode, proc.stdout, proc.stderr, report)


def scripts() -> list[str]:
    """Every benchmarks/bench_*.py: parse, train, generate and arrange first, then the rest by name."""
    found = sorted(p.name for p in HERE.glob("bench_*.py"))
    first = [name for name in FIRST if name in found]
    return first + [name for name in found if name not in first]


def plan(script: str, quick: bool) -> tuple[list[str], bool] | None:
    """(arguments, whether it writes a report as JSON) for one script; None when it
    should not run (a --quick run of a script that has no --quick)."""
    source = (HERE / script).read_text()
    speaks_json = "from run_all import" in source  # builds its report with Report
    if not quick:
        return [], speaks_json
    helptext = subprocess.run(
        [sys.executable, str(HERE / script), "--help"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return (["--quick"], speaks_json) if "--quick" in helptext else None


# ----------------------------------------------------------------------------- RESULTS.md


TARGET_NOTES = [
    "Where a target is missed, and what changed:",
    "",
    "- **Training, ours / common recipe (target >= 100x):** missed by a few percent, by",
    "  construction. Both ways run the same LSTM forward and backward over every position of",
    "  a window; ours supervises all 128 positions, the recipe 1 of 100. At equal cost per",
    "  position the ratio tends to 128 x (recipe step / our step), about the recipe's window",
    "  length; the table below measures the two step times. Removing the accuracy metric, the",
    "  PAD masking or gradient clipping each changed our step by under 3%; passing 100x needs a",
    "  recurrent kernel cheaper per position than stock Keras, or a longer recipe window.",
    "- **Generation (the slowest stage a user waits on):** before, the Keras `tf.function` step",
    "  (the 'Keras step' rows below) plus about 4 s of TensorFlow start-up per command; after,",
    "  the NumPy step that `generate` uses by default (no TensorFlow import). Both rows are",
    "  measured side by side in the same run.",
    "- **Band generation, `generate --checkpoint checkpoints/band --num 4 --bars 32` (target < 1",
    "  s):** missed. A band piece takes many tokens: the band corpus averages 20 tokens per",
    "  quarter note (a chorale 14), and the densest of the four pieces sets the number of steps,",
    "  here about 7,000 for 32 bars of up to 8 parts. The NumPy step itself runs at 8,600 tokens/s",
    "  at batch 1 (tracks vocabulary, 0.88x remi's; the larger output layer), and a profile puts",
    "  most of the time in the GRU step, not in the grammar or the sampler. The Bach model's",
    "  `generate --num 4 --bars 32` stays under a second. Getting band pieces there needs fewer",
    "  tokens per note (e.g. one compound token per note) or a smaller step.",
    "- **GPU:** not measured; no GPU machine was lent to the session that wrote this file.",
    "",
]


def render(
    command: str,
    machine_rows: list[tuple[str, str]],
    outcomes: list[Outcome],
    busy: bool,
    skipped: Sequence[str] = (),
) -> str:
    """The whole RESULTS.md. busy: whether the machine was busy before the run;
    skipped: scripts not run (--only, or no --quick in a quick run)."""
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` (from the repository root). Each benchmark ran in its own",
        "process, one after the other. Ratios compare figures measured in the same process.",
        "",
        "## Machine",
        "",
        _markdown_table(["what", "value"], [list(r) for r in machine_rows], align="ll"),
        "",
    ]
    if busy:
        lines += [
            "**The machine was busy when this run began** (other processes used more than",
            f"{BUSY:.0%} of the CPU time): they shared the cores, so these figures are disturbed.",
            "",
        ]
    targets = [t for o in outcomes if o.report for t in o.report.get("targets", [])]
    targets += unmeasured(outcomes, skipped)
    if targets:
        lines += ["## Targets", "", _markdown_table(*_target_rows(targets), align="lrrl"), ""]
        lines += TARGET_NOTES
    for outcome in outcomes:
        lines += _render_outcome(outcome)
    if skipped:
        lines += ["## Not run", "", f"{', '.join(skipped)} (not chosen, or no --quick option)", ""]
    return "\n".join(lines).rstrip() + "\n"


def unmeasured(outcomes: list[Outcome], skipped: Sequence[str]) -> list[dict[str, Any]]:
    """Target rows ("not measured") for the TARGETS of scripts that reported none:
    skipped, failed before writing their report, or without any target in it."""
    reported = {o.script for o in outcomes if o.report and o.report.get("targets")}
    scripts = [o.script for o in outcomes] + list(skipped)
    return [
        {"figure": f"{figure} ({script})", "value": "not measured", "target": target, "met": False}
        for script in scripts
        if script not in reported
        for figure, target in TARGETS.get(script, [])
    ]


def _render_outcome(outcome: Outcome) -> list[str]:
    report = outcome.report
    title = report["title"] if report else TITLES.get(outcome.script, outcome.script)
    lines = [
        f"## {title}",
        "",
        f"`{' '.join(outcome.command)}` ({outcome.seconds:.0f} s, exit {outcome.returncode})",
        "",
    ]
    if outcome.returncode:
        tail = outcome.stderr[-2000:].rstrip()
        lines += ["Failed; the end of its error output:", "", "```", tail, "```", ""]
    if report is None:  # a script that prints: Markdown as it is, anything else verbatim
        text = outcome.stdout.strip()
        markdown = any(line.startswith("|---") for line in text.splitlines())
        lines += [text, ""] if markdown else ["```", text, "```", ""]
        return lines
    lines += [f"- {note}" for note in report.get("notes", [])]
    lines += [""] if report.get("notes") else []
    for table in report.get("tables", []):
        lines += [f"**{table['title']}**", "", _markdown_table(table["columns"], table["rows"]), ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"), help="the Markdown file")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="e.g. parse train")
    args = parser.parse_args()
    command = "python benchmarks/run_all.py" + (" --quick" if args.quick else "")
    busy = cpu_busy()  # before anything runs: what others use
    machine_rows = machine(busy)
    outcomes, skipped = [], []
    for script in scripts():
        name = script.removeprefix("bench_").removesuffix(".py")
        how = plan(script, args.quick) if not args.only or name in args.only else None
        if how is None:
            print(f"-- skipped {script}", flush=True)
            skipped.append(script)
            continue
        outcomes.append(run_script(script, *how))
    Path(args.out).write_text(
        render(command, machine_rows, outcomes, busy is not None and busy > BUSY, skipped)
    )
    print(f"wrote {args.out}")
    return 1 if any(o.returncode for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
