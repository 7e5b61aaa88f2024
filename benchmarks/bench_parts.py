"""Parts that sound like their instrument: accompany's bass and drums against the songs'
own, and plain generation's parts against the corpus (issue 25 item 2).

(a) Accompaniment. The songs are the checkpoint's held-out files (split.json's
"validation" list, under the checkpoint's data folder, as `musicgen evaluate` scores
them) that have a bass and a drum part; a checkpoint without a split (the untrained
stand-in) takes the songs of band_corpus/freedoom in name order. Of each song, `--bars`
bars (16): bars 9-24 when the bass and the drums each start notes in at least 3/4 of
them, else the first such window starting on bar 1, 5, 9, ...; a song without one is
left out. The window's parts of the families in `--add` (drums and bass) are taken
away, the rest written to a temporary MIDI file, and `musicgen.load(CHECKPOINT)
.accompany(SONG, add, num=2, seed=1)` writes them back: the same notes as `musicgen
accompany SONG --add drums,bass --num 2 --seed 1`. The written bass and drums are scored
beside the song's own (its main bass part: the bass-family part with the most notes in
the window; all its drum parts) with benchmarks/part_metrics.py: bass chord onsets,
register (MIDI 23-64), notes on the harmony the kept parts sound in that beat (beside
chance), notes per bar and its ratio to the song's own; drum hi-hat and cymbal shares,
notes outside the GM kit (35-81), hits per bar, and the arrangements whose drums barely
play (under QUIET_DRUMS = 4 hits a bar: a musician asked for drums). Then the drums
written 4 times into bench_arrange's built-in 64-bar song (`--sparse-bars`), a melody,
string chords and a bass with no drums, where a model may leave them out.

(b) Plain generation. `Model.write(num=--pieces, bars=16, seed)` (what `musicgen
generate --checkpoint CHECKPOINT --num 30 --bars 16` writes, no --instruments): the
pieces with drums and at least 3 pitched parts, those whose drums barely play (beside
the songs' first 16 bars and all their 16-bar windows: a drum part of one hit counts as
drums above), and `musicgen.stats` per instrument
family against `--reference` (band_corpus/freedoom): the overlap of each family's
statistic (what `musicgen stats GENERATED --reference band_corpus/freedoom` prints). A
16-bar piece against whole songs compares unlike things: the notes, the parts that
play, the lowest and the highest note all grow with a piece's length. So the target is
held against the songs cut into pieces of the generated length (`song_windows`: each
song's bars 1-16, 17-32, ..., every full window in which something plays, measured as a
piece of its own); the whole-song overlaps are shown beside them. A family that fewer
than 5 generated pieces have is shown but not judged.

Targets (issue 25): bass <= 5% chord onsets, >= 95% in MIDI 23-64, >= 85% on the
harmony, notes per bar within 0.5x-2x the song's own; hi-hat >= 20% of the hits,
cymbals <= 15%, no note outside the kit; >= 9 in 10 generated pieces with drums and 3
or more pitched parts; every per-family statistic's overlap >= 0.7. Run from the
repository root:

    python benchmarks/bench_parts.py [--checkpoint DIR] [--songs N] [--seed 1] [--quick]
        [--temperature 0.8] [--sparse-bars 64] [--markdown] [--json FILE]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from fixtures import BAND, ROOT, band_checkpoint, shown, write_song
from part_metrics import bars_playing, bass_metrics, drum_metrics, score_of, window
from run_all import Report, _markdown_table, _target_rows, fmt

import musicgen
from musicgen import stats
from musicgen.checkpoint import read_split
from musicgen.instruments import DRUMS, family, parse_instruments
from musicgen.midi_io import read_score, write_midi
from musicgen.score import MusicError, Note, Score

REFERENCE = ROOT / "band_corpus" / "freedoom"
PLAYING = 0.75  # share of the window's bars in which the bass and the drums must start notes
# (figure, part_metrics key, target text, test on the mean, percent?)
BASS_ROWS = [
    ("bass onsets that are chords", "chord_onsets", "<= 5%", lambda v: v <= 0.05, True),
    ("bass notes in MIDI 23-64", "in_register", ">= 95%", lambda v: v >= 0.95, True),
    ("bass notes on the sounding harmony", "on_harmony", ">= 85%", lambda v: v >= 0.85, True),
    ("  chance: pitch classes sounding", "chance", "", None, True),
    ("bass notes per bar", "notes_per_bar", "", None, False),
]
DRUM_ROWS = [
    ("hi-hat share of drum hits", "hat_share", ">= 20%", lambda v: v >= 0.20, True),
    ("crash/ride/china/splash share", "cymbal_share", "<= 15%", lambda v: v <= 0.15, True),
    ("drum notes outside the GM kit (35-81)", "off_kit", "0", lambda v: v == 0, False),
    ("drum hits per bar", "hits_per_bar", "", None, False),
]
QUIET_DRUMS = 4.0  # drum hits per bar under which a piece's drums barely play
RATIO = (0.5, 2.0)  # bass notes per bar, written / the song's own
MIN_OVERLAP = 0.7
MIN_FAMILY_PIECES = 5  # a family's overlaps are judged when this many pieces have it
PIECES_TARGET = 0.9  # share of generated pieces with drums and >= 3 pitched parts


# ----------------------------------------------------------------------------- songs


def held_out_songs(model: musicgen.Model) -> tuple[Path, list[str], str]:
    """(data folder, relative paths, how they were chosen): the model's validation
    files (its data folder relative to the repository root unless absolute), else the
    freedoom songs in name order."""
    split = read_split(model.path) or {}
    data = model.info.get("data", {}).get("data_dir")
    if split.get("validation") and data:
        folder = Path(data) if Path(data).is_absolute() else ROOT / data
        return folder, list(split["validation"]), f"{shown(model.path)}/split.json validation"
    names = sorted(p.name for p in REFERENCE.glob("*.mid"))
    return REFERENCE, names, f"{shown(REFERENCE)} in name order (no split.json)"


def choose_window(score: Score, removed: set[str], bars: int) -> int | None:
    """First bar (0-based) of the window: 8 (bars 9-24) if bass and drums play in it,
    else the first of 0, 4, 8, ... that does; None if none does."""
    count = len(stats.bar_grid(score))
    need = {DRUMS, "bass"} & removed or removed
    playing = {
        fam: bars_playing(
            [n for p in score.parts if family(p.program) == fam for n in p.notes], score
        )
        for fam in need
    }
    for first in [8, *range(0, count - bars + 1, 4)]:
        inside = set(range(first, first + bars))
        if first + bars <= count and all(
            len(b & inside) >= PLAYING * bars for b in playing.values()
        ):
            return first
    return None


def main_part(score: Score, fam: str) -> list[Note]:
    """The notes of the part of family `fam` with the most notes (none: [])."""
    parts = [p for p in score.parts if family(p.program) == fam]
    return max(parts, key=lambda p: len(p.notes)).notes if parts else []


def part_figures(score: Score, kept: list[Note], reference: Score) -> dict[str, dict[str, float]]:
    """{"bass": bass_metrics, "drums": drum_metrics} of the parts of `score`; the
    harmony and the bars are `reference`'s (the song's window)."""
    hits = [n.pitch for p in score.parts if p.is_drum for n in p.notes]
    bars = max(len(stats.bar_grid(reference)), 1)
    return {
        "bass": bass_metrics(main_part(score, "bass"), kept, reference),
        "drums": {**drum_metrics(hits), "hits_per_bar": len(hits) / bars},
    }


def accompany_songs(
    model: musicgen.Model, args: argparse.Namespace, songs: list[Path], tmp: Path
) -> list[dict]:
    """Per usable song: its name, window, own figures and each arrangement's figures."""
    removed = {family(p) for r in parse_instruments(args.add) for p in r}
    results = []
    for path in songs:
        if len(results) >= args.songs:
            break
        try:
            song = read_score(path, allow_drums_only=True)
        except MusicError:
            continue
        fams = {family(p.program) for p in song.parts if p.notes}
        if not removed <= fams or (first := choose_window(song, removed, args.bars)) is None:
            continue
        own = window(song, first, args.bars)
        kept = Score([p for p in own.parts if family(p.program) not in removed],
                     own.tempos, own.time_signatures, end=own.end)  # fmt: skip
        write_midi(kept, tmp / path.name)
        written = model.accompany(tmp / path.name, args.add, num=args.num, seed=args.seed,
                                  temperature=args.temperature)  # fmt: skip
        kept_notes = [n for p in kept.parts for n in p.notes]
        results.append({
            "song": path.name,
            "bars": f"{first + 1}-{first + args.bars}",
            "own": part_figures(own, kept_notes, own),
            "written": [part_figures(score_of(pm), kept_notes, own) for pm in written],
        })  # fmt: skip
    return results


def _values(results: list[dict], who: str, part: str, key: str) -> np.ndarray:
    """Per-piece values of a figure: the songs' own ("own") or every arrangement's."""
    rows = [r["own"] for r in results] if who == "own" else [w for r in results for w in r[who]]
    v = np.array([row[part][key] for row in rows], float)
    return v[~np.isnan(v)]


def _cell(v: np.ndarray, percent: bool) -> str:
    """ "mean (min-max)" of per-piece values."""
    if not len(v):
        return "-"
    show: Callable[[float], str] = (lambda x: f"{x:.0%}") if percent else (lambda x: fmt(x, 2))
    return f"{show(float(v.mean()))} ({show(float(v.min()))}-{show(float(v.max()))})"


def accompany_report(report: Report, results: list[dict]) -> None:
    """The side-by-side table, the per-song table and the accompaniment targets."""
    table = report.table(
        "Accompaniment: the songs' own parts and the written ones (mean over pieces, range)",
        ["figure", "the songs' own parts", "musicgen", "target"],
    )
    rows = [("bass", *row) for row in BASS_ROWS] + [("drums", *row) for row in DRUM_ROWS]
    for part, figure, key, target, test, percent in rows:
        own, written = (_values(results, who, part, key) for who in ("own", "written"))
        table.add(figure, _cell(own, percent), _cell(written, percent), target)
        if test is not None:
            value = (
                float(written.sum() if key == "off_kit" else written.mean())
                if len(written)
                else math.nan
            )
            shown_value = f"{value:.0%}" if percent else fmt(value, 2)
            if key == "off_kit":
                shown_value = f"{value:.0f} in {len(written)} arrangements"
            report.target(f"accompany: {figure}", shown_value, target, bool(test(value)))
    quiet = [
        (_values(results, who, "drums", "hits_per_bar") < QUIET_DRUMS) for who in ("own", "written")
    ]
    table.add(
        f"drums striking under {QUIET_DRUMS:.0f} times a bar",
        *(f"{q.sum()} of {q.size}" for q in quiet),
        "",
    )
    ratios = bass_ratios(results)
    table.add("bass notes per bar, written / own", "1", _cell(ratios, False), "0.5-2")
    within = int(np.sum((ratios >= RATIO[0]) & (ratios <= RATIO[1])))
    report.target("accompany: bass notes per bar within 0.5x-2x the song's own",
                  f"{within} of {len(ratios)}", "all", within == len(ratios) > 0)  # fmt: skip
    per_song = report.table(
        "Accompaniment per song (own / written, written as the mean of its arrangements)",
        ["song", "bars", "bass notes/bar", "bass on harmony", "bass chords", "hi-hat", "cymbals"],
    )
    for r in results:
        per_song.add(r["song"], r["bars"], *(_pair(r, *c) for c in (
            ("bass", "notes_per_bar", False), ("bass", "on_harmony", True),
            ("bass", "chord_onsets", True), ("drums", "hat_share", True),
            ("drums", "cymbal_share", True))))  # fmt: skip


def bass_ratios(results: list[dict]) -> np.ndarray:
    """Each arrangement's bass notes per bar over its song's own."""
    return np.array([
        w["bass"]["notes_per_bar"] / r["own"]["bass"]["notes_per_bar"]
        for r in results for w in r["written"] if r["own"]["bass"]["notes_per_bar"]
    ])  # fmt: skip


def _pair(result: dict, part: str, key: str, percent: bool) -> str:
    show = (lambda x: "-" if math.isnan(x) else f"{x:.0%}") if percent else (lambda x: fmt(x, 2))
    written = (
        np.nanmean([w[part][key] for w in result["written"]]) if result["written"] else math.nan
    )
    return f"{show(result['own'][part][key])} / {show(float(written))}"


def sparse_song_report(
    report: Report, model: musicgen.Model, args: argparse.Namespace, tmp: Path
) -> None:
    """Drums asked for in a sparse song: bench_arrange's built-in song (a melody, string
    chords and a bass on the beats; no drums), `--add` written 4 times; the drum hits per
    bar of each arrangement."""
    song = write_song(tmp / "sparse.mid", args.sparse_bars)
    written = model.accompany(song, args.add, num=4, seed=args.seed, temperature=args.temperature)
    rates = [sum(len(i.notes) for i in pm.instruments if i.is_drum) / args.sparse_bars
             for pm in written]  # fmt: skip
    table = report.table(
        f"A sparse song ({args.sparse_bars} bars of benchmarks/fixtures.py band_song: a "
        f"melody, string chords, a bass; no drums), `accompany --add {args.add} --num 4 "
        f"--seed {args.seed}`",
        ["arrangement", "drum hits per bar"],
    )
    for i, rate in enumerate(rates, 1):
        table.add(str(i), fmt(rate, 2))
    quiet = sum(rate < QUIET_DRUMS for rate in rates)
    table.add(f"drums striking under {QUIET_DRUMS:.0f} times a bar", f"{quiet} of {len(rates)}")


# ----------------------------------------------------------------------------- generation


def band_like(fs: stats.FileStats) -> bool:
    """Whether a piece has drums and at least 3 pitched parts."""
    pitched = sum(v["parts"] for fam, v in fs.parts.items() if fam != DRUMS)
    return DRUMS in fs.parts and pitched >= 3


def song_windows(ref: stats.SetStats, bars: int) -> stats.SetStats:
    """The reference songs cut into pieces of `bars` bars (each song's bars 1..bars,
    bars + 1..2 x bars, ...: every full window in which a note plays), each measured as
    a piece of its own ("song.mid@17": the window from bar 17)."""
    files, scores = [], []
    for whole, score in zip(ref.files, ref.scores, strict=True):
        for first in range(0, len(stats.bar_grid(score)) - bars + 1, bars):
            piece = window(score, first, bars)
            if piece.parts:
                files.append(stats.file_stats(piece, f"{whole.path}@{first + 1}", key=False))
                scores.append(piece)
    return stats.SetStats(f"{ref.root}, {bars}-bar windows", files, scores)


def generation_report(
    report: Report, model: musicgen.Model, args: argparse.Namespace, out: Path
) -> None:
    """Plain generation: line-ups, and each family's statistics against the reference's
    songs cut to the pieces' length (the target) and whole (shown beside)."""
    model.write(out, num=args.pieces, bars=args.gen_bars, seed=args.seed, force=True,
                temperature=args.temperature,
                on_note=lambda _: None)  # fmt: skip
    made, songs = stats.collect(out, key=False), stats.collect(args.reference, key=False)
    cut = song_windows(songs, args.gen_bars)
    bands = sum(band_like(f) for f in made.files)
    report.target(f"generate: pieces with drums and >= 3 pitched parts (of {args.pieces})",
                  f"{bands} of {args.pieces}", ">= 9 in 10",
                  bands >= PIECES_TARGET * args.pieces)  # fmt: skip
    quiet = report.table(
        f"Drums that barely play: pieces whose drums strike under {QUIET_DRUMS:.0f} times a bar",
        ["pieces", "with drums", f"under {QUIET_DRUMS:.0f} hits a bar"],
    )
    openings = [f for f in cut.files if f.path.endswith("@1")]
    for name, files in (("generated", made.files), (f"the songs' first {args.gen_bars} bars", openings),
                        (f"the songs' {args.gen_bars}-bar windows", cut.files)):  # fmt: skip
        drums = [f.parts[DRUMS]["hits_per_bar"] for f in files if DRUMS in f.parts]
        quiet.add(name, str(len(drums)), str(sum(h < QUIET_DRUMS for h in drums)))
    lineups = report.table("Generated pieces: their parts", ["piece", "families (parts)"])
    for f in made.files:
        lineups.add(f.path, ", ".join(f"{fam} {v['parts']:.0f}" for fam, v in f.parts.items()))
    overlaps, whole = stats.part_overlaps(made, cut), stats.part_overlaps(made, songs)
    sa, sc, sw = made.summary(), cut.summary(), songs.summary()
    table = report.table(
        f"Generated ({args.pieces} x {args.gen_bars} bars) against {shown(args.reference)}'s "
        f"songs in {args.gen_bars}-bar windows ({len(cut.files)}) and whole "
        f"({len(songs.files)}): per family",
        ["family statistic", "generated", "windows", "overlap", "whole songs", "overlap"],
    )
    rows, few = [], []
    for fam, by_stat in overlaps.items():
        judged = sa["parts"][fam]["files"] >= MIN_FAMILY_PIECES
        if not judged:
            few.append(f"{fam} ({sa['parts'][fam]['files']})")
        for name, overlap in by_stat.items():
            table.add(f"{fam} {name}", _mean_std(sa, fam, name), _mean_std(sc, fam, name),
                      _overlap(overlap), _mean_std(sw, fam, name),
                      _overlap(whole.get(fam, {}).get(name)))  # fmt: skip
            if judged:
                rows.append((overlap if overlap is not None else math.nan, f"{fam} {name}"))
    low = [r for r in rows if not r[0] >= MIN_OVERLAP]
    worst = min(rows, default=(math.nan, "-"))
    report.target(f"generate: per-family statistics with overlap >= 0.7 ({args.gen_bars}-bar "
                  f"windows of the songs; families in >= {MIN_FAMILY_PIECES} pieces)",
                  f"{len(rows) - len(low)} of {len(rows)} (lowest {worst[0]:.2f}, {worst[1]})",
                  "all", not low and bool(rows))  # fmt: skip
    if few:
        report.notes.append(
            f"families in fewer than {MIN_FAMILY_PIECES} generated pieces, shown but not "
            f"judged (an overlap of one or two values says nothing): {', '.join(few)}"
        )
    only = [f for f in made.families() if f not in overlaps]
    if only:
        report.notes.append(f"families only the generated pieces have: {', '.join(only)}")


def _overlap(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _mean_std(summary: dict, fam: str, name: str) -> str:
    entry = summary["parts"][fam][name]
    return "-" if entry["mean"] is None else f"{fmt(entry['mean'], 3)} +- {fmt(entry['std'], 2)}"


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=BAND, help="band checkpoint folder")
    parser.add_argument(
        "--songs", type=int, default=12, help="held-out songs to accompany (at most)"
    )
    parser.add_argument("--bars", type=int, default=16, help="bars of each song")
    parser.add_argument("--add", default="drums,bass", help="parts to take away and write back")
    parser.add_argument("--num", type=int, default=2, help="arrangements per song")
    parser.add_argument("--seed", type=int, default=1, help="accompany's and generate's seed")
    parser.add_argument(
        "--pieces", type=int, default=30, help="pieces of plain generation (0: none)"
    )
    parser.add_argument("--gen-bars", type=int, default=16, help="bars of each generated piece")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="corpus for stats")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="sampling temperature (0.8: the commands' default)")  # fmt: skip
    parser.add_argument("--sparse-bars", type=int, default=64,
                        help="bars of the sparse song given drums (0: none)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="2 songs, 8 bars, 2 pieces")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--json", help="also write the report here (for run_all.py)")
    args = parser.parse_args(argv)
    if args.quick:
        args.songs, args.bars, args.pieces, args.gen_bars, args.sparse_bars = 2, 8, 2, 8, 8
    return args


def markdown(report: Report) -> str:
    """The report as Markdown: its notes as a list, each table, the targets."""
    lines = [f"- {note}" for note in report.notes]
    for table in report.tables:
        lines += ["", f"**{table.title}**", "", _markdown_table(table.columns, table.rows)]
    lines += ["", _markdown_table(*_target_rows(report.targets), align="lrrl")]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    report = Report("Parts that sound like their instrument (issue 25)")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, label = band_checkpoint(Path(tmp), args.checkpoint)
        model = musicgen.load(checkpoint)
        folder, names, how = held_out_songs(model)
        results = accompany_songs(model, args, [folder / n for n in names], Path(tmp))
        names = ", ".join(r["song"] for r in results)
        report.notes += [
            f"checkpoint: {label}",
            f"songs: {len(results)} of {how} that have {args.add} ({names}); {args.bars} bars "
            f"each (bars 9-{8 + args.bars}, else the first window where they play)",
            f"accompany: Model.accompany(song, {args.add!r}, num={args.num}, seed={args.seed}) "
            f"= `musicgen accompany SONG --add {args.add} --num {args.num} --seed {args.seed}`",
            f"generate: Model.write(num={args.pieces}, bars={args.gen_bars}, seed={args.seed}), "
            f"no instruments; stats against {shown(args.reference)} (no key finding)",
            f"temperature: {args.temperature} (every sampling command's default: 0.8)",
        ]
        accompany_report(report, results)
        if args.sparse_bars and DRUMS in {
            family(p) for r in parse_instruments(args.add) for p in r
        }:
            sparse_song_report(report, model, args, Path(tmp))
        if args.pieces:
            generation_report(report, model, args, Path(tmp) / "generated")
    if args.markdown:
        print(markdown(report))
    else:
        report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
