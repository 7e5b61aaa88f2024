"""Musical statistics of a set of pieces, and how close two sets are.

How the pieces relate:
- `file_stats(score)` measures one `Score`: scalar statistics (`SCALAR_STATS`), two
  histograms (`HISTOGRAMS`: note lengths and inter-onset intervals, in quarters) and the
  key music21 finds. Bars and beats come from the score's time-signature map
  (`bar_grid`); beats are the time signature's denominator unit. Per instrument family
  (`instruments.family`: "piano", "bass", ..., "drums") it also measures the parts
  (`part_stats`: `PITCHED_PART_STATS`, `DRUM_PART_STATS`); the piece-wide statistics
  read `Score.notes`, every pitched part as one stream, but for the note counts
  (`notes`, `notes_per_bar`): those count every note, drums included, as `generate`,
  `prepare` and `evaluate` do. A drums-only piece has parts and note counts but no
  pitched statistics (NaN).
- `collect(folder)` reads every music file under a folder (recursively, through
  `midi_io.read_score`), measures each, and returns a `SetStats` with per-file values,
  set means and standard deviations (`SetStats.summary`).
- `compare(a, b)` gives, per statistic (and per family's statistic, for the families
  both sets have), the overlap area of the two sets' distributions
  (1 = the same, 0 = disjoint) and a copy check: for each piece of `a`, the longest
  stretch of consecutive notes found verbatim in `b` (`copy_check`).

No TensorFlow here. music21 is imported lazily for key finding only: its key analysis
took ~11 ms for a 250-note piece when measured, so a few hundred files cost seconds,
and it runs on every file unless `key=False`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicgen.errors import UsageError, UserError
from musicgen.instruments import DRUM_GROUPS, DRUMS, FAMILY_ORDER, GM_KIT, family
from musicgen.score import EmptyMusicError, MusicError, Note, Part, Score

LABEL = 24  # width of the report's first column
STAT_LABELS = {"notes": "notes (drums incl.)", "notes_per_bar": "notes/bar (drums incl.)"}
SCALAR_STATS: dict[str, str] = {  # name -> what it measures (unit)
    "notes": "notes in the piece, drums included (`Score.note_count`)",
    "pitch_range": "highest minus lowest pitch (semitones)",
    "pitch_classes": "distinct pitch classes used (of 12)",
    "pitch_class_entropy": "entropy of the pitch-class histogram (bits)",
    "polyphony": "mean notes sounding while any sounds",
    "scale_consistency": "share of notes in the best-fitting major/minor scale",
    "empty_beat_rate": "share of beats with no note onset",
    "groove_consistency": "1 - mean Hamming distance of consecutive bars' onset patterns",
    "notes_per_bar": "notes per bar, drums included",
}

# Note lengths and inter-onset intervals share log2-spaced bins centred on these values
# (quarters): 1/16 ... 8. Values beyond either end fall in the end bins.
HISTOGRAM_CENTRES = tuple(2.0**k for k in range(-4, 4))
HISTOGRAM_EDGES = np.array([2.0 ** (k + 0.5) for k in range(-4, 3)])  # inner edges
HISTOGRAMS: dict[str, str] = {
    "note_length": "note durations (quarters)",
    "ioi": "intervals between successive onsets (quarters)",
}

# Per instrument family of a piece (all its parts of that family together)
PITCHED_PART_STATS: dict[str, str] = {
    "parts": "parts of the family in the piece",
    "notes": "notes of the family's parts",
    "lowest": "lowest pitch (MIDI number)",
    "highest": "highest pitch (MIDI number)",
    "polyphony": "mean notes sounding while the part sounds, averaged over the parts",
    "chord_onsets": "share of onsets where more than one note starts (each part on its own)",
    "notes_per_bar": "notes of the family's parts per bar of the piece",
    "longest": "the longest note of the family's parts (quarters)",
}
DRUM_PART_STATS: dict[str, str] = {
    "parts": "drum parts in the piece",
    "hits": "drum hits (notes) of the drum parts",
    "hits_per_bar": "drum hits per bar of the piece",
    "kick_share": "share of the hits on a kick (GM 35, 36)",
    "snare_share": "share of the hits on a snare or side stick (GM 37, 38, 40)",
    "hat_share": "share of the hits on a hi-hat (GM 42 closed, 44 pedal, 46 open)",
    "cymbal_share": "share of the hits on a crash, ride, china or splash (GM 49-59)",
    "off_kit_share": "share of the hits outside the General MIDI kit (GM 35-81)",
}

GROOVE_STEPS_PER_QUARTER = 12  # onset grid for groove patterns (sixteenths and triplets)
COPY_STEPS_PER_QUARTER = 48  # time resolution of the copy check
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])  # natural minor uses the same sets (relative keys)


# ----------------------------------------------------------------------------- one file


@dataclass
class FileStats:
    """Statistics of one piece: scalars by name, histogram counts, the key found and
    the time signatures of its bars."""

    path: str
    values: dict[str, float]
    histograms: dict[str, np.ndarray]  # counts per bin of HISTOGRAM_CENTRES
    key: str | None = None  # e.g. "C major", "f# minor"; None if not analysed
    metre: str = ""  # its bars' time signatures in order of appearance, e.g. "3/4+4/4"
    parts: dict[str, dict[str, float]] = field(default_factory=dict)  # family -> part_stats

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            **{k: _json_float(v) for k, v in self.values.items()},
            "key": self.key,
            "metre": self.metre,
            **{f"{k}_histogram": v.astype(int).tolist() for k, v in self.histograms.items()},
            "parts": {
                fam: {k: _json_float(v) for k, v in values.items()}
                for fam, values in self.parts.items()
            },
        }


def bar_grid(score: Score) -> list[tuple[float, float, int, int]]:
    """Bars covering the piece: (start, length, numerator, denominator), in quarters.
    A time-signature change in mid-bar starts a new bar there; the last bar ends with
    the piece (`score.length`), so it may be short."""
    changes = [t for t, _, _ in score.time_signatures[1:]]
    bars: list[tuple[float, float, int, int]] = []
    start, end = 0.0, score.length
    while start < end - 1e-9:
        num, den = score.time_signature_at(start)
        nxt = min([start + num * 4.0 / den, end] + [c for c in changes if c > start + 1e-9])
        bars.append((start, nxt - start, num, den))
        start = nxt
    return bars


def file_stats(score: Score, path: str = "", *, key: bool = True) -> FileStats:
    """Measure one piece. A piece of drums only gets its parts measured and NaN for
    every pitched statistic. Raises EmptyMusicError if it has no notes at all."""
    parts = part_stats(score)
    if not parts:
        raise EmptyMusicError("no notes")
    notes = score.notes
    if not notes:
        return _drums_only_stats(score, path, parts)
    pitches = np.array([n.pitch for n in notes])
    onsets = np.array([n.start for n in notes])
    durations = np.array([n.end - n.start for n in notes])
    bars = bar_grid(score)
    pc_counts = np.bincount(pitches % 12, minlength=12).astype(float)
    values = {
        "notes": float(score.note_count),
        "pitch_range": float(pitches.max() - pitches.min()),
        "pitch_classes": float(np.count_nonzero(pc_counts)),
        "pitch_class_entropy": _entropy_bits(pc_counts),
        "polyphony": _polyphony(onsets, onsets + durations),
        "scale_consistency": _scale_consistency(pc_counts),
        "empty_beat_rate": _empty_beat_rate(onsets, bars),
        "groove_consistency": _groove_consistency(onsets, bars),
        "notes_per_bar": score.note_count / max(len(bars), 1),
    }
    distinct_onsets = np.unique(np.round(onsets, 6))
    histograms = {
        "note_length": _log2_histogram(durations),
        "ioi": _log2_histogram(np.diff(distinct_onsets)),
    }
    found = music21_key(score) if key else None
    return FileStats(path, values, histograms, found, _metre(bars), parts)


def _drums_only_stats(score: Score, path: str, parts: dict[str, dict[str, float]]) -> FileStats:
    """FileStats of a piece without pitched notes: its note counts, pitched statistics
    NaN, empty histograms, no key."""
    values = {name: math.nan for name in SCALAR_STATS}
    bars = max(len(bar_grid(score)), 1)
    values.update(notes=float(score.note_count), notes_per_bar=score.note_count / bars)
    histograms = {name: np.zeros(len(HISTOGRAM_CENTRES), int) for name in HISTOGRAMS}
    return FileStats(path, values, histograms, None, _metre(bar_grid(score)), parts)


def _metre(bars: Sequence[tuple[float, float, int, int]]) -> str:
    """The bars' time signatures in order of first appearance, e.g. "3/4+4/4"."""
    return "+".join(dict.fromkeys(f"{num}/{den}" for _, _, num, den in bars))


# ----------------------------------------------------------------------------- parts


def part_stats(score: Score) -> dict[str, dict[str, float]]:
    """Statistics per instrument family of the piece's parts that have notes:
    {family: {stat: value}}, with PITCHED_PART_STATS for pitched families and
    DRUM_PART_STATS for "drums"; families in FAMILY_ORDER."""
    by_family: dict[str, list[Part]] = {}
    for part in score.parts:
        if part.notes:
            by_family.setdefault(family(part.program), []).append(part)
    bars = len(bar_grid(score)) if by_family else 0
    return {
        fam: _drum_stats(by_family[fam], bars)
        if fam == DRUMS
        else _pitched_stats(by_family[fam], bars)
        for fam in FAMILY_ORDER
        if fam in by_family
    }


def chord_onset_share(notes: Sequence[Note]) -> float:
    """Share of the distinct onset times of `notes` (one part's) at which more than one
    note starts (onsets within 1e-6 quarters are one); NaN without notes."""
    return float(np.mean(_notes_per_onset(notes) > 1)) if notes else math.nan


def _notes_per_onset(notes: Sequence[Note]) -> np.ndarray:
    """How many of `notes` start at each of their distinct onset times (to 1e-6 quarters)."""
    return np.unique(np.round([n.start for n in notes], 6), return_counts=True)[1]


def off_kit(pitches: Sequence[int]) -> int:
    """How many of these drum notes lie outside the General MIDI kit (GM_KIT)."""
    low, high = GM_KIT
    return sum(not low <= p <= high for p in pitches)


def _pitched_stats(parts: Sequence[Part], bars: int) -> dict[str, float]:
    """PITCHED_PART_STATS of one family's parts (each with notes) in a piece of `bars`
    bars; chord_onsets pools the parts' onsets (each part's counted on its own)."""
    pitches = [n.pitch for part in parts for n in part.notes]
    polyphony = [
        _polyphony(np.array([n.start for n in p.notes]), np.array([n.end for n in p.notes]))
        for p in parts
    ]
    return {
        "parts": float(len(parts)),
        "notes": float(len(pitches)),
        "lowest": float(min(pitches)),
        "highest": float(max(pitches)),
        "polyphony": float(np.mean(polyphony)),
        "chord_onsets": _pooled_chord_onsets(parts),
        "notes_per_bar": len(pitches) / max(bars, 1),
        "longest": max(n.end - n.start for part in parts for n in part.notes),
    }


def _pooled_chord_onsets(parts: Sequence[Part]) -> float:
    """chord_onset_share over the onsets of all `parts`, each part's onsets its own."""
    counts = np.concatenate([_notes_per_onset(p.notes) for p in parts])
    return float(np.mean(counts > 1))


def _drum_stats(parts: Sequence[Part], bars: int) -> dict[str, float]:
    """DRUM_PART_STATS of the drum parts (each with notes) of a piece of `bars` bars."""
    hits = np.array([n.pitch for part in parts for n in part.notes])
    values = {
        "parts": float(len(parts)),
        "hits": float(len(hits)),
        "hits_per_bar": len(hits) / max(bars, 1),
    }
    for name, notes in DRUM_GROUPS.items():
        values[name] = float(np.isin(hits, notes).mean())
    values["off_kit_share"] = off_kit(hits.tolist()) / len(hits)
    return values


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _polyphony(starts: np.ndarray, ends: np.ndarray) -> float:
    """Total note time divided by the time during which at least one note sounds."""
    order = np.argsort(starts)
    sounding, covered_until = 0.0, -math.inf
    for s, e in zip(starts[order], ends[order], strict=True):
        if s >= covered_until:
            sounding += e - s
            covered_until = e
        elif e > covered_until:
            sounding += e - covered_until
            covered_until = e
    return float((ends - starts).sum() / sounding)


def _scale_consistency(pc_counts: np.ndarray) -> float:
    """Largest share of notes inside one of the 12 major (= natural minor) scales."""
    inside = [pc_counts[(_MAJOR + root) % 12].sum() for root in range(12)]
    return float(max(inside) / pc_counts.sum())


def _empty_beat_rate(onsets: np.ndarray, bars: Sequence[tuple[float, float, int, int]]) -> float:
    """Share of beats (the time signature's denominator unit) where no note starts."""
    beat_starts, beat_ends = [], []
    for start, length, _, den in bars:
        beat = 4.0 / den
        for b in np.arange(start, start + length - 1e-9, beat):
            beat_starts.append(b)
            beat_ends.append(min(b + beat, start + length))
    if not beat_starts:
        return 0.0
    sorted_onsets = np.sort(onsets)
    first = np.searchsorted(sorted_onsets, np.array(beat_starts) - 1e-9)
    last = np.searchsorted(sorted_onsets, np.array(beat_ends) - 1e-9)
    return float(np.mean(last == first))


def _groove_consistency(onsets: np.ndarray, bars: Sequence[tuple[float, float, int, int]]) -> float:
    """1 - mean normalised Hamming distance between the onset patterns (on a grid of
    GROOVE_STEPS_PER_QUARTER) of consecutive bars of equal length; NaN with < 2 bars."""
    patterns = []
    for start, length, _, _ in bars:
        steps = max(round(length * GROOVE_STEPS_PER_QUARTER), 1)
        inside = onsets[(onsets >= start - 1e-9) & (onsets < start + length - 1e-9)]
        pattern = np.zeros(steps, bool)
        pattern[
            np.clip(np.round((inside - start) * GROOVE_STEPS_PER_QUARTER).astype(int), 0, steps - 1)
        ] = True
        patterns.append(pattern)
    distances = [
        np.mean(a != b) for a, b in zip(patterns, patterns[1:], strict=False) if len(a) == len(b)
    ]
    return float(1.0 - np.mean(distances)) if distances else math.nan


def _log2_histogram(values: np.ndarray) -> np.ndarray:
    """Counts per bin of HISTOGRAM_CENTRES (log2-spaced; out-of-range values clipped)."""
    return np.bincount(np.searchsorted(HISTOGRAM_EDGES, values), minlength=len(HISTOGRAM_CENTRES))


def music21_key(score: Score) -> str:
    """The key music21's default key analysis finds, e.g. "C major" or "a minor"."""
    from music21 import note, stream  # lazily: only stats with key finding pays for it

    part = stream.Stream()
    for n in score.notes:
        m21 = note.Note(n.pitch)
        m21.quarterLength = max(round(n.end - n.start, 4), 1 / 64)
        part.insert(round(n.start, 4), m21)
    return str(part.analyze("key"))


# ----------------------------------------------------------------------------- a set


@dataclass
class SetStats:
    """Statistics of every readable piece under `root`; `scores` keeps the music for
    the copy check (same order as `files`)."""

    root: str
    files: list[FileStats]
    scores: list[Score] = field(repr=False)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def values(self, name: str) -> np.ndarray:
        """Per-file values of a scalar statistic, NaNs (undefined) left out."""
        v = np.array([f.values[name] for f in self.files], float)
        return v[~np.isnan(v)]

    def families(self) -> list[str]:
        """Instrument families with a part in at least one file, in FAMILY_ORDER."""
        present = {fam for f in self.files for fam in f.parts}
        return [fam for fam in FAMILY_ORDER if fam in present]

    def part_values(self, fam: str, name: str) -> np.ndarray:
        """Per-file values of a family's statistic, over the files that have the family."""
        v = np.array([f.parts[fam][name] for f in self.files if fam in f.parts], float)
        return v[~np.isnan(v)]

    def histogram(self, name: str) -> np.ndarray:
        """Pooled histogram of all files, as shares summing to 1 (zeros if empty)."""
        counts = np.sum([f.histograms[name] for f in self.files], axis=0).astype(float)
        return counts / counts.sum() if counts.sum() else counts

    def summary(self, files: bool = False) -> dict:
        """Set means and standard deviations (population), pooled histograms, key counts;
        with `files`, every file's own values too."""
        stats = {}
        for name in SCALAR_STATS:
            v = self.values(name)
            stats[name] = {
                "mean": _json_float(v.mean() if len(v) else math.nan),
                "std": _json_float(v.std() if len(v) else math.nan),
            }
        keys = Counter(f.key for f in self.files if f.key)
        metres = Counter(f.metre for f in self.files if f.metre)
        parts = {fam: self._family_summary(fam) for fam in self.families()}
        return {
            "root": self.root,
            "files": len(self.files),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "stats": stats,
            "histograms": {
                name: {
                    "bins_quarters": list(HISTOGRAM_CENTRES),
                    "shares": self.histogram(name).round(6).tolist(),
                }
                for name in HISTOGRAMS
            },
            "keys": dict(keys.most_common()),
            "metres": dict(metres.most_common()),
            "parts": parts,
            **({"per_file": [f.to_dict() for f in self.files]} if files else {}),
        }

    def _family_summary(self, fam: str) -> dict:
        """{"files": files with the family, stat: {"mean", "std"} over those files}."""
        names = DRUM_PART_STATS if fam == DRUMS else PITCHED_PART_STATS
        entry: dict = {"files": sum(fam in f.parts for f in self.files)}
        for name in names:
            v = self.part_values(fam, name)
            entry[name] = {
                "mean": _json_float(v.mean() if len(v) else math.nan),
                "std": _json_float(v.std() if len(v) else math.nan),
            }
        return entry


def collect(
    folder: str | Path,
    *,
    key: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> SetStats:
    """Read and measure every music file under `folder` (recursively, as `dataset.scan`
    finds them), or the one file `folder` names; each piece of a collection (an ABC
    file of many tunes) is measured on its own, as "path#k" (its k-th piece with notes).

    Unreadable or empty files are skipped and listed; UsageError if the folder is
    missing, UserError if no file is usable. progress: called (files done, total).
    """
    from musicgen.dataset import scan
    from musicgen.midi_io import read_pieces

    root = Path(folder)
    if not root.exists():
        raise UsageError(f"folder does not exist: {folder}")
    if root.is_file():
        root, paths, skipped = root.parent, [root.name], []
    else:
        paths, skipped = scan(root)
    files, scores = [], []
    for i, rel in enumerate(paths):
        try:
            pieces = read_pieces(root / rel, allow_drums_only=True)
        except MusicError as exc:
            skipped.append((rel, str(exc)))
            pieces = []
        for k, score in enumerate(pieces, start=1):  # a collection: "tunes.abc#3"
            name = rel if len(pieces) == 1 else f"{rel}#{k}"
            try:
                files.append(file_stats(score, name, key=key))
                scores.append(score)
            except MusicError as exc:
                skipped.append((name, str(exc)))
        if progress is not None:
            progress(i + 1, len(paths))
    if not files:
        raise UserError(f"no usable music file in {folder} ({len(paths)} found)")
    return SetStats(str(folder), files, scores, skipped)


# ----------------------------------------------------------------------------- comparing


def compare(a: SetStats, b: SetStats) -> dict:
    """How close set `a` is to set `b`.

    overlap[stat]: for scalar statistics, the overlap area of the two distributions of
    per-file values, each smoothed by a Gaussian kernel density estimate (Silverman's
    bandwidth, floored at 1% of the pooled range so constant sets still have a width),
    integrated on a shared grid: integral of min(f_a, f_b), 1 = identical, 0 = disjoint.
    For the histograms (note_length, ioi): histogram intersection of the pooled shares,
    sum over bins of min(p_a, p_b), same scale.
    parts[family][stat]: the same overlap of a family's per-file values (over the files
    that have the family), for each family both sets have; parts_only: the families only
    "set" (a) or only "reference" (b) has.
    copy: see `copy_check`.
    """
    overlap = {
        name: _json_float(kde_overlap(a.values(name), b.values(name))) for name in SCALAR_STATS
    }
    for name in HISTOGRAMS:
        overlap[name] = float(np.minimum(a.histogram(name), b.histogram(name)).sum())
    copies = copy_check(a.scores, b.scores, [f.path for f in b.files])
    for item, f in zip(copies, a.files, strict=True):
        item["path"] = f.path
    fa, fb = a.families(), b.families()
    return {
        "overlap": overlap,
        "parts": part_overlaps(a, b),
        "parts_only": {
            "set": [fam for fam in fa if fam not in fb],
            "reference": [fam for fam in fb if fam not in fa],
        },
        "copy": {"files": copies, **_copy_summary(copies)},
    }


def part_overlaps(a: SetStats, b: SetStats) -> dict[str, dict[str, float | None]]:
    """`compare`'s "parts" alone (no copy check): {family: {stat: overlap}} for each
    family both sets have, in FAMILY_ORDER."""
    fb = b.families()
    return {fam: _family_overlap(a, b, fam) for fam in a.families() if fam in fb}


def _family_overlap(a: SetStats, b: SetStats, fam: str) -> dict[str, float | None]:
    """Overlap of each of a family's statistics between the two sets."""
    names = DRUM_PART_STATS if fam == DRUMS else PITCHED_PART_STATS
    return {
        name: _json_float(kde_overlap(a.part_values(fam, name), b.part_values(fam, name)))
        for name in names
    }


def kde_overlap(a: np.ndarray, b: np.ndarray, grid_points: int = 2048) -> float:
    """Overlap area of two 1-D Gaussian KDEs (NaN if either sample is empty)."""
    if len(a) == 0 or len(b) == 0:
        return math.nan
    pooled = np.concatenate([a, b])
    spread = float(pooled.max() - pooled.min()) or max(abs(float(pooled.mean())), 1.0)
    h = [max(_silverman(x), 0.01 * spread) for x in (a, b)]
    grid = np.linspace(pooled.min() - 5 * max(h), pooled.max() + 5 * max(h), grid_points)
    dens = []
    for x, bw in zip((a, b), h, strict=True):
        d = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / bw) ** 2).sum(axis=1)
        dens.append(d / d.sum())  # uniform grid: densities as shares of the grid cells
    return float(np.clip(np.minimum(*dens).sum(), 0.0, 1.0))


def _silverman(x: np.ndarray) -> float:
    return 1.06 * float(np.std(x)) * len(x) ** -0.2


# ----------------------------------------------------------------------------- copy check


def _note_events(score: Score) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """Per note, sorted by (start, pitch): the opening event (pitch, duration) and the
    following event (onset delta from the previous note, pitch, duration); times in
    1/COPY_STEPS_PER_QUARTER quarters."""
    q = COPY_STEPS_PER_QUARTER
    notes = sorted(score.notes, key=lambda n: (n.start, n.pitch))
    if not notes:  # a drums-only piece: nothing pitched to copy
        return [], []
    onsets = [round(n.start * q) for n in notes]
    opening = [(n.pitch, round((n.end - n.start) * q)) for n in notes]
    following = [
        (on - prev, n.pitch, round((n.end - n.start) * q))
        for n, on, prev in zip(notes, onsets, [onsets[0]] + onsets[:-1], strict=True)
    ]
    return opening, following


class _Hasher:
    """Polynomial hashes (mod 2^64) of note stretches: a stretch of notes j..j+m-1 is
    the opening event of note j followed by the following events of notes j+1..j+m-1,
    so a copy may start anywhere in the other piece."""

    P = 0x100000001B3

    def __init__(self, seed: int = 0):
        self._values: dict[tuple, int] = {}
        self._rng = np.random.default_rng(seed)

    def token(self, event: tuple) -> int:
        """A random odd 64-bit value per distinct event."""
        if event not in self._values:
            self._values[event] = int(self._rng.integers(0, 2**63)) * 2 + 1
        return self._values[event]

    def encode(self, scores: Sequence[Score]) -> _Encoded:
        """Tokens and prefix hashes of the notes of `scores`, end to end."""
        opening, following, ends, owner = [], [], [], []
        for index, score in enumerate(scores):
            o, f = _note_events(score)
            opening += [self.token(("o", *e)) for e in o]
            following += [self.token(("f", *e)) for e in f]
            ends += [len(opening)] * len(o)
            owner += [index] * len(o)
        prefix = [0]
        for t in following:  # prefix[i+1] = prefix[i] * P + t (mod 2^64)
            prefix.append((prefix[-1] * self.P + t) % 2**64)
        return _Encoded(
            np.array(opening, np.uint64),
            np.array(prefix, np.uint64),
            np.array(ends, np.int64),
            np.array(owner, np.int64),
        )

    def windows(self, enc: _Encoded, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of every stretch of m notes inside one file, and their first notes."""
        starts = np.flatnonzero(np.arange(len(enc.opening)) + m <= enc.ends)
        scale = np.uint64(pow(self.P, m - 1, 2**64))
        hashes = enc.prefix[starts + m] + (enc.opening[starts] - enc.prefix[starts + 1]) * scale
        return hashes, starts


@dataclass
class _Encoded:
    """Notes of several pieces end to end (index = note number)."""

    opening: np.ndarray  # uint64 token of each note's opening event
    prefix: np.ndarray  # uint64 prefix hashes of the following events, one longer
    ends: np.ndarray  # int64: one past the last note of the note's piece
    owner: np.ndarray  # int64: index of the note's piece


def copy_check(
    pieces: Sequence[Score],
    reference: Sequence[Score],
    reference_paths: Sequence[str] | None = None,
) -> list[dict]:
    """For each piece, the longest stretch of consecutive notes (sorted by start, then
    pitch) that occurs verbatim in some reference piece: same pitches, same durations,
    same onset spacing (to 1/48 quarter), anywhere in the bar.

    Returns one dict per piece: notes (in the piece), copy_notes, copy_bars (the stretch's
    span from its first onset to its last note-off, in bars of the time signature where it
    starts), source (reference path holding it, when `reference_paths` is given).
    """
    hasher = _Hasher()
    ref = hasher.encode(reference)
    ref_windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def ref_hashes(m: int) -> tuple[np.ndarray, np.ndarray]:
        if m not in ref_windows:
            hashes, starts = hasher.windows(ref, m)
            order = np.argsort(hashes)
            ref_windows[m] = (hashes[order], starts[order])
        return ref_windows[m]

    def matches(enc: _Encoded, m: int) -> tuple[np.ndarray, np.ndarray]:
        """(matching first notes in the piece, a reference start note for each)."""
        hashes, starts = hasher.windows(enc, m)
        keys, ref_starts = ref_hashes(m)
        at = np.minimum(np.searchsorted(keys, hashes), max(len(keys) - 1, 0))
        hit = keys[at] == hashes if len(keys) else np.zeros(len(hashes), bool)
        return starts[hit], ref_starts[at[hit]]

    encoded = [hasher.encode([score]) for score in pieces]
    longest_possible = max((len(e.opening) for e in encoded), default=0)
    results = []
    for score, enc in zip(pieces, encoded, strict=True):
        lo, hi = 0, longest_possible + 1  # the same search tree for every piece: cache hits
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if mid <= len(enc.opening) and len(matches(enc, mid)[0]):
                lo = mid
            else:
                hi = mid
        item = {"notes": len(enc.opening), "copy_notes": lo, "copy_bars": 0.0, "source": None}
        if lo:
            starts, ref_starts = matches(enc, lo)
            spans = [_span_bars(score, int(j), lo) for j in starts]
            best = int(np.argmax(spans))
            item["copy_bars"] = round(spans[best], 4)
            if reference_paths is not None:
                item["source"] = reference_paths[int(ref.owner[ref_starts[best]])]
        results.append(item)
    return results


def _span_bars(score: Score, first: int, count: int) -> float:
    """Bars from the onset of note `first` to the last note-off of the next `count` notes."""
    notes = sorted(score.notes, key=lambda n: (n.start, n.pitch))[first : first + count]
    num, den = score.time_signature_at(notes[0].start)
    return (max(n.end for n in notes) - notes[0].start) / (num * 4.0 / den)


def _copy_summary(copies: list[dict]) -> dict:
    if not copies:
        return {"max_bars": 0.0, "mean_bars": 0.0, "max_notes": 0, "mean_notes": 0.0, "worst": None}
    worst = max(copies, key=lambda c: (c["copy_bars"], c["copy_notes"]))
    return {
        "max_bars": worst["copy_bars"],
        "mean_bars": float(np.mean([c["copy_bars"] for c in copies])),
        "max_notes": max(c["copy_notes"] for c in copies),
        "mean_notes": float(np.mean([c["copy_notes"] for c in copies])),
        "worst": worst.get("path"),
    }


def _json_float(x: float) -> float | None:
    """NaN -> None so JSON stays standard."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


# ----------------------------------------------------------------------------- report


def report_lines(
    a: SetStats, b: SetStats | None = None, comparison: dict | None = None
) -> list[str]:
    """A readable table: per statistic the mean +- std of each set and their overlap,
    then the Parts block (one line per instrument family; with a comparison one row
    per family's statistic and its overlap too), the copy-check summary, the
    most frequent keys and the pieces' metres."""
    sa = a.summary()
    sb = b.summary() if b is not None else None
    cols = [f"{a.root} ({len(a.files)} pieces)"]
    if sb is not None:
        cols.append(f"{b.root} ({len(b.files)} pieces)")
    width = max(LABEL, *(len(c) + 2 for c in cols))
    lines = [f"{'statistic':<{LABEL}}" + "".join(f"{c:>{width}}" for c in cols)]
    if comparison is not None:
        lines[0] += f"{'overlap':>9}"
    for name in SCALAR_STATS:
        line = f"{STAT_LABELS.get(name, name):<{LABEL}}" + "".join(
            f"{_mean_std(s['stats'][name]):>{width}}" for s in [sa, sb] if s is not None
        )
        if comparison is not None:
            line += f"{_fmt(comparison['overlap'][name], '{:.2f}'):>9}"
        lines.append(line)
    if comparison is not None:
        for name in HISTOGRAMS:
            label = f"{name} histogram"
            overlap = _fmt(comparison["overlap"][name], "{:.2f}")
            lines.append(
                f"{label:<{LABEL}}"
                + "".join(f"{'(pooled)':>{width}}" for _ in cols)
                + f"{overlap:>9}"
            )
    lines += _parts_lines(sa, sb, comparison)
    if comparison is not None:
        lines += ["", *_copy_lines(comparison["copy"], b.root if b is not None else "")]
    keys = list(sa["keys"].items())[:4]
    if keys:
        lines += ["", "Keys: " + ", ".join(f"{k} {n}" for k, n in keys)]
    metres = ", ".join(f"{m} {n}" for m, n in list(sa["metres"].items())[:4])
    if metres:
        lines += ([] if keys else [""]) + [f"Metres (of every bar): {metres}"]
    skipped = len(a.skipped) + (len(b.skipped) if b is not None else 0)
    if skipped:
        lines.append(f"Skipped {skipped} unreadable file(s) (see --json)")
    return lines


def _parts_lines(sa: dict, sb: dict | None, comparison: dict | None) -> list[str]:
    """The Parts block: per family (both sets' families, FAMILY_ORDER), the pieces that
    have it and its mean figures per such piece in each set, and with a comparison the
    mean of its statistics' overlaps ("-" where only one set has the family)."""
    families = [f for f in FAMILY_ORDER if f in sa["parts"] or (sb and f in sb["parts"])]
    if not families:
        return []
    title = "Parts (per instrument family: pieces with it, means over those pieces"
    title += ", mean overlap of its statistics)" if comparison is not None else ")"
    lines = ["", title]
    for fam in families:
        line = f"  {fam:<11}" + "".join(_family_cell(s, fam) for s in [sa, sb] if s is not None)
        if comparison is not None:
            overlaps = [v for v in comparison["parts"].get(fam, {}).values() if v is not None]
            line += f"{_fmt(float(np.mean(overlaps)) if overlaps else None, '{:.2f}'):>9}"
        lines.append(line.rstrip())
    if comparison is not None and sb is not None:
        lines += _part_stat_lines(sa, sb, comparison["parts"])
    return lines


def _part_stat_lines(sa: dict, sb: dict, overlaps: dict) -> list[str]:
    """Per family both sets have, one row per statistic: mean +- std in each set and
    the overlap of the two distributions."""
    lines = ["", f"{'part statistic':<28}{'set':>20}{'reference':>20}{'overlap':>9}"]
    for fam, by_stat in overlaps.items():
        for name, overlap in by_stat.items():
            cells = "".join(f"{_mean_std(s['parts'][fam][name]):>20}" for s in (sa, sb))
            lines.append(f"{fam + ' ' + name:<28}{cells}{_fmt(overlap, '{:.2f}'):>9}")
    return lines


def _family_cell(summary: dict, fam: str) -> str:
    """e.g. "  18/20  312 notes, pitches 28-52, polyphony 1.02", padded to one width."""
    entry = summary["parts"].get(fam)
    if entry is None:
        return f"{'-':>8}  {'':<68}"
    pieces = f"{entry['files']}/{summary['files']}"
    mean = {name: value["mean"] for name, value in entry.items() if isinstance(value, dict)}
    if fam == DRUMS:
        figures = (
            f"{mean['hits_per_bar']:.1f} hits/bar: kick {mean['kick_share']:.0%}, "
            f"snare {mean['snare_share']:.0%}, hat {mean['hat_share']:.0%}, "
            f"cymbals {mean['cymbal_share']:.0%}, off-kit {mean['off_kit_share']:.0%}"
        )
    else:
        figures = (
            f"{mean['notes_per_bar']:.1f} notes/bar, pitches {mean['lowest']:.0f}-"
            f"{mean['highest']:.0f}, polyphony {mean['polyphony']:.2f}, "
            f"chords {mean['chord_onsets']:.0%}"
        )
    return f"{pieces:>8}  {figures:<68}"


def _copy_lines(copy: dict, reference: str) -> list[str]:
    lines = [
        f"Copy check (longest stretch found verbatim in {reference}): "
        f"max {copy['max_bars']:.1f} bars and {copy['max_notes']} notes, "
        f"mean {copy['mean_bars']:.1f} bars and {copy['mean_notes']:.1f} notes"
    ]
    worst = next((c for c in copy["files"] if c.get("path") == copy["worst"]), None)
    if worst is not None and worst["copy_notes"]:
        lines.append(
            f"  worst: {worst['path']}: {worst['copy_bars']:.1f} bars, {worst['copy_notes']} of "
            f"{worst['notes']} notes, from {worst['source']}"
        )
    return lines


def _mean_std(entry: dict) -> str:
    if entry["mean"] is None:
        return "-"
    return f"{entry['mean']:.3g} \u00b1 {entry['std']:.2g}"


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
