"""Infill: does choosing among K candidates by the likelihood of the following bars help?

For each song (validation songs of the band model), bars A..A+3 of every part are rewritten
with K = 1 and K = 16 candidates (same seeds). Reported per K, averaged over songs:
- continuation: the model's log-likelihood (nats) of the song's kept bars after the window,
  given the new bars (higher is better: the new bars lead into what follows);
- seam: |notes per bar in the new bars - notes per bar in the song's 4 bars each side| and the
  L1 distance of their pitch-class histograms (lower is closer to the song).
"""

import sys

import numpy as np

from musicgen import arrange
from musicgen.config import SampleConfig
from musicgen.midi_io import read_score


def window_stats(score, start, end):
    notes = [n for p in score.parts if not p.is_drum for n in p.notes if start <= n.start < end]
    hist = np.bincount([n.pitch % 12 for n in notes], minlength=12).astype(float)
    return len(notes), hist / max(hist.sum(), 1)


if __name__ == "__main__":
    checkpoint, songs = sys.argv[1], sys.argv[2:]
    rows = {1: [], 16: []}
    for song in songs:
        s = read_score(song, allow_drums_only=True)
        num, den = s.time_signatures[0][1:]
        bar = num * 4 / den
        first = 9
        start, end = (first - 1) * bar, (first + 3) * bar
        ctx_n, ctx_h = window_stats(s, start - 4 * bar, start)
        after_n, after_h = window_stats(s, end, end + 4 * bar)
        ref_n, ref_h = (ctx_n + after_n) / 8, (ctx_h + after_h) / 2
        for k in rows:
            for seed in range(3):
                (a,) = arrange.infill(
                    checkpoint,
                    song,
                    f"{first}-{first + 3}",
                    None,
                    candidates=k,
                    sample=SampleConfig(temperature=0.8, seed=seed),
                )
                n, h = window_stats(a.music, start, end)
                rows[k].append((a.score, abs(n / 4 - ref_n), np.abs(h - ref_h).sum()))
        print(
            song,
            {k: np.mean(v[-3:], axis=0).round(3).tolist() for k, v in rows.items()},
            flush=True,
        )
    print(
        "| candidates | continuation log-likelihood (nats) | notes/bar gap to the song | pitch-class L1 to the song |"
    )
    print("|---:|---:|---:|---:|")
    for k, v in rows.items():
        m = np.mean(v, axis=0)
        print(f"| {k} | {m[0]:.1f} | {m[1]:.2f} | {m[2]:.3f} |")
