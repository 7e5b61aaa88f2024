"""How much a bass line sounds like a bass and a drum part like a drum kit (issue 25).

The figures bench_parts.py puts side by side for a song's own parts and the parts
`accompany` writes in their place; each takes plain `Note` lists, so tests feed them
tiny music built in code. Times are quarter notes; a beat is the time signature's
denominator unit (`stats.bar_grid`).

- `bass_metrics(bass, kept, score)`: chord onsets, share in the bass register
  (BASS_REGISTER), share on the harmony the kept parts sound in that beat (and the
  chance of that: the share of the 12 pitch classes sounding), notes per bar;
- `drum_metrics(pitches)`: hi-hat and cymbal shares of the hits, hits outside the GM kit;
- `window(score, first, count)`: bars first..first+count-1 (0-based) of a song as a
  Score of their own; `score_of(pm)`: a `pretty_midi.PrettyMIDI` (what the API returns)
  as a Score in quarters, every note as written (no reader's clean-up).

Not a benchmark itself (run_all.py runs only `bench_*.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from musicgen import stats
from musicgen.instruments import DRUM_GROUPS
from musicgen.score import DRUM_PROGRAM, Note, Part, Score

BASS_REGISTER = (23, 64)  # MIDI B0..E4: a bass guitar's range with a low B, plus its top
HAT_NOTES = DRUM_GROUPS["hat_share"]  # GM 42, 44, 46
CYMBAL_NOTES = DRUM_GROUPS["cymbal_share"]  # GM 49, 51, 52, 53, 55, 57, 59


def beat_grid(score: Score) -> np.ndarray:
    """Start times of the score's beats plus its end (quarters, ascending): beat i is
    [grid[i], grid[i + 1])."""
    starts = [
        float(b)
        for start, length, _, den in stats.bar_grid(score)
        for b in np.arange(start, start + length - 1e-9, 4.0 / den)
    ]
    return np.array([*starts, score.length])


def sounding_classes(kept: Sequence[Note], grid: np.ndarray) -> np.ndarray:
    """[beats, 12] bool: which pitch classes the `kept` notes sound in each beat of
    `grid` (a note sounds in a beat it overlaps for any time)."""
    sounding = np.zeros((max(len(grid) - 1, 0), 12), bool)
    for note in kept:
        first = max(int(np.searchsorted(grid, note.start, "right")) - 1, 0)
        last = int(np.searchsorted(grid, note.end, "left"))  # beats starting before the end
        sounding[first:last, note.pitch % 12] = True
    return sounding


def harmony_fit(
    notes: Sequence[Note], kept: Sequence[Note], score: Score
) -> tuple[float, float, int]:
    """(share of `notes` whose pitch class the `kept` notes sound in the note's beat,
    the chance of that: the share of the 12 pitch classes sounding there, averaged over
    the same notes, how many notes were counted). Notes in beats where nothing of
    `kept` sounds are not counted; NaN shares when none is."""
    grid = beat_grid(score)
    sounding = sounding_classes(kept, grid)
    hits, chance = [], []
    for note in notes:
        beat = int(np.searchsorted(grid, note.start, "right")) - 1
        if 0 <= beat < len(sounding) and sounding[beat].any():
            hits.append(sounding[beat, note.pitch % 12])
            chance.append(sounding[beat].mean())
    if not hits:
        return math.nan, math.nan, 0
    return float(np.mean(hits)), float(np.mean(chance)), len(hits)


def bass_metrics(bass: Sequence[Note], kept: Sequence[Note], score: Score) -> dict[str, float]:
    """A bass line's figures: chord_onsets (share of its onsets where more than one
    note starts), in_register (share of notes in BASS_REGISTER), on_harmony and chance
    (`harmony_fit` against the `kept` parts), notes_per_bar (over the bars of `score`).
    NaN shares for a line without notes."""
    low, high = BASS_REGISTER
    on_harmony, chance, _ = harmony_fit(bass, kept, score)
    return {
        "chord_onsets": stats.chord_onset_share(bass),
        "in_register": float(np.mean([low <= n.pitch <= high for n in bass])) if bass else math.nan,
        "on_harmony": on_harmony,
        "chance": chance,
        "notes_per_bar": len(bass) / max(len(stats.bar_grid(score)), 1),
    }


def drum_metrics(pitches: Sequence[int]) -> dict[str, float]:
    """A drum part's figures from its hits' GM notes: hat_share, cymbal_share (of the
    hits; NaN without hits), off_kit (how many lie outside the GM kit 35-81)."""
    hits = np.asarray(pitches, int)
    share = (
        (lambda group: float(np.isin(hits, group).mean())) if len(hits) else (lambda _: math.nan)
    )
    return {
        "hat_share": share(HAT_NOTES),
        "cymbal_share": share(CYMBAL_NOTES),
        "off_kit": float(stats.off_kit(hits.tolist())),
    }


# ----------------------------------------------------------------------------- songs


def window(score: Score, first: int, count: int) -> Score:
    """Bars first..first + count - 1 (0-based, `stats.bar_grid`'s bars) as a Score of
    their own: the notes starting in them, cut at the window's end, moved to start at
    0, with the tempo and metre in force there."""
    bars = stats.bar_grid(score)
    start = bars[first][0]
    last_start, last_length, *_ = bars[min(first + count, len(bars)) - 1]
    end = last_start + last_length
    parts = [
        Part(p.program, [_moved(n, start, end) for n in p.notes if start <= n.start < end], p.name)
        for p in score.parts
    ]
    tempos = [(0.0, score.tempo_at(start))] + [
        (t - start, bpm) for t, bpm in score.tempos if start < t < end
    ]
    metres = [(0.0, *score.time_signature_at(start))] + [
        (t - start, num, den) for t, num, den in score.time_signatures if start < t < end
    ]
    return Score([p for p in parts if p.notes], tempos, metres, end=end - start)


def _moved(note: Note, start: float, end: float) -> Note:
    return Note(note.pitch, note.start - start, min(note.end, end) - start, note.velocity)


def bars_playing(notes: Sequence[Note], score: Score) -> set[int]:
    """Indexes (0-based) of the bars of `score` in which some of `notes` start."""
    starts = np.array([b[0] for b in stats.bar_grid(score)])
    return {int(np.searchsorted(starts, n.start + 1e-9)) - 1 for n in notes}


def score_of(pm: Any) -> Score:
    """A `pretty_midi.PrettyMIDI` as a Score: one Part per instrument (drums as
    DRUM_PROGRAM), times in quarters by the file's own tempo map, every note kept as
    written (a zero-length note gets one tick)."""
    tick = 1.0 / pm.resolution
    parts = []
    for inst in pm.instruments:
        notes = []
        for n in inst.notes:
            start = pm.time_to_tick(n.start) * tick
            end = max(pm.time_to_tick(n.end) * tick, start + tick)
            notes.append(Note(n.pitch, start, end, max(1, min(127, n.velocity))))
        notes.sort(key=lambda n: (n.start, n.pitch))
        parts.append(Part(DRUM_PROGRAM if inst.is_drum else inst.program, notes, inst.name))
    return Score(parts)
