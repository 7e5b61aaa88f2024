"""Pictures: a piano roll of a Score (a lane per part), training curves, two sets'
statistics side by side.

Each function writes one PNG and returns its path. matplotlib is imported lazily with
the Agg backend (no display needed), so importing this module costs nothing.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musicgen.atomic import atomic_write
from musicgen.errors import UserError
from musicgen.score import Part, Score

if TYPE_CHECKING:  # pragma: no cover
    from musicgen.stats import SetStats


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format=path.suffix[1:] or "png")
    _pyplot().close(fig)
    return path


def roll_layers(score: Score) -> list[tuple[str, Part]]:
    """The piano roll's lanes: every part that has notes, in the score's order, with its
    label (its track name; "Drums" or "Part N" for an unnamed one)."""
    layers = []
    for i, part in enumerate(score.parts, start=1):
        if part.notes:
            label = part.name or ("Drums" if part.is_drum else f"Part {i}")
            layers.append((label, part))
    return layers


LANE_INCHES = 1.4  # height of one part's lane in the piano roll


def plot_piano_roll(score: Score, path: str | Path, title: str | None = None) -> Path:
    """The score as a DAW's arrangement view: one lane per part, top to bottom in the
    score's order, all on one time axis (x: quarters, bar lines from the time-signature
    map), so each part reads on its own. A pitched part's notes are horizontal bars in
    its own register (y: its pitches, octaves marked C2, C3, ...; fainter: softer); the
    drums' hits are ticks on a row per kit note, named as General MIDI names them."""
    from musicgen.stats import bar_grid

    plt = _pyplot()
    length = max(score.length, 1.0)
    layers = roll_layers(score) or [("(no notes)", Part(0, []))]
    fig, axes = plt.subplots(
        len(layers), 1, sharex=True, squeeze=False,
        figsize=(min(5 + length / 4, 42), 0.8 + LANE_INCHES * len(layers)),
    )  # fmt: skip
    colours = plt.get_cmap("tab10" if len(layers) <= 10 else "tab20")
    bars = [start for start, _, _, _ in bar_grid(score)]
    for i, ((label, part), ax) in enumerate(zip(layers, axes[:, 0], strict=True)):
        draw = _drum_lane if part.is_drum else _pitched_lane
        draw(ax, part, colours(i % colours.N))
        for start in bars:
            ax.axvline(start, color="0.85", linewidth=0.6, zorder=0)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_xlim(0, length)
    axes[-1, 0].set_xlabel("quarter notes")
    axes[0, 0].set_title(title or "piano roll")
    return _save(fig, path)


def _drum_lane(ax, part: Part, colour) -> None:
    """Drum hits as ticks, one row per kit note the part uses, named by General MIDI."""
    from pretty_midi import note_number_to_drum_name

    notes = sorted({n.pitch for n in part.notes})
    rows = {pitch: row for row, pitch in enumerate(notes)}
    ax.scatter([n.start for n in part.notes], [rows[n.pitch] for n in part.notes],
               marker="|", s=40, linewidths=1.2, color=colour)  # fmt: skip
    ax.set_yticks(range(len(notes)))
    ax.set_yticklabels([note_number_to_drum_name(p) or str(p) for p in notes], fontsize=6)
    ax.set_ylim(-0.7, len(notes) - 0.3)


def _pitched_lane(ax, part: Part, colour) -> None:
    """Notes as bars in the part's own register (at least an octave in view), fainter
    when softer, the octaves' Cs marked."""
    from pretty_midi import note_number_to_name

    plt = _pyplot()
    for n in part.notes:
        ax.add_patch(
            plt.Rectangle(
                (n.start, n.pitch - 0.4),
                n.end - n.start,
                0.8,
                color=colour,
                alpha=0.4 + 0.6 * n.velocity / 127,
                linewidth=0,
            )
        )
    pitches = [n.pitch for n in part.notes] or [60]
    low, high = min(pitches), max(pitches)
    pad = max(0, 12 - (high - low)) / 2
    ax.set_ylim(low - 1 - pad, high + 1 + pad)
    octaves = list(range((int(low - pad) // 12 + 1) * 12, int(high + pad) + 1, 12))
    ax.set_yticks(octaves)
    ax.set_yticklabels([note_number_to_name(p) for p in octaves], fontsize=7)


def read_history(history_csv: str | Path) -> dict[str, np.ndarray]:
    """Columns of a Keras CSVLogger file (epoch, loss, val_loss, accuracy, ...) as floats."""
    try:
        with open(history_csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise UserError(f"cannot read {history_csv}: {exc.strerror or exc}") from None
    if not rows:
        raise UserError(f"{history_csv} has no epochs yet")
    columns = {}
    for name in rows[0]:
        try:
            columns[name] = np.array([float(r[name]) for r in rows])
        except (TypeError, ValueError):
            continue  # a non-numeric column is not a curve
    return columns


def plot_history(history_csv: str | Path, path: str | Path) -> Path:
    """Loss (left) and accuracy (right) per epoch, training and validation, from history.csv."""
    plt = _pyplot()
    columns = read_history(history_csv)
    epochs = columns.get("epoch", np.arange(len(next(iter(columns.values())))))
    epochs = epochs + 1 if len(epochs) and epochs[0] == 0 else epochs  # Keras counts from 0
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, word, label in ((loss_ax, "loss", "loss (nats/token)"), (acc_ax, "acc", "accuracy")):
        names = [n for n in columns if word in n and n != "epoch"]
        for name in sorted(names):
            ax.plot(epochs, columns[name], marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(label)
        if names:
            ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(Path(history_csv).parent.name or "training")
    return _save(fig, path)


def plot_stats_comparison(
    a: SetStats,
    b: SetStats | None,
    path: str | Path,
    labels: tuple[str, str] = ("set", "reference"),
) -> Path:
    """One panel per statistic: histograms of the per-file values of `a` (and `b`) on a
    shared range, then the pooled note-length and inter-onset histograms as bars."""
    from musicgen.stats import HISTOGRAM_CENTRES, HISTOGRAMS, SCALAR_STATS

    plt = _pyplot()
    sets = [(a, labels[0])] + ([(b, labels[1])] if b is not None else [])
    names = list(SCALAR_STATS) + list(HISTOGRAMS)
    cols = 4
    fig, axes = plt.subplots(math.ceil(len(names) / cols), cols, figsize=(4 * cols, 3 * 3))
    for ax, name in zip(axes.ravel(), names, strict=False):
        if name in SCALAR_STATS:
            values = [s.values(name) for s, _ in sets]
            pooled = np.concatenate(values)
            lo, hi = (pooled.min(), pooled.max()) if len(pooled) else (0.0, 1.0)
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 21)
            for v, (_, label) in zip(values, sets, strict=True):
                if len(v):  # a statistic can be undefined for every file (e.g. one-bar pieces)
                    ax.hist(v, bins=bins, alpha=0.5, density=True, label=label)
        else:
            x = np.arange(len(HISTOGRAM_CENTRES))
            width = 0.8 / len(sets)
            for i, (s, label) in enumerate(sets):
                ax.bar(x + i * width, s.histogram(name), width=width, label=label)
            ax.set_xticks(x + 0.4 - width / 2, [_fraction(c) for c in HISTOGRAM_CENTRES])
            ax.set_xlabel("quarters")
        ax.set_title(name, fontsize=10)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    axes.ravel()[0].legend()
    fig.tight_layout()
    return _save(fig, path)


def _fraction(q: float) -> str:
    return f"1/{round(1 / q)}" if q < 1 else f"{q:g}"
