"""Quantizers shared by the encodings: MIDI velocity bins and log-spaced tempo bins.

Each maps a value to a bin index and a bin index back to a representative value,
such that value -> bin -> value is the identity on the representatives (so music
whose velocities/tempos sit on them round-trips exactly).
"""

from __future__ import annotations

import math

import numpy as np


class VelocityBins:
    """Velocities 1..127 in `bins` contiguous, nearly equal bins.

    bin(v) = (v - 1) * bins // 127; the representative of a bin is its middle
    velocity. Every bin holds at least one velocity for bins <= 127.
    """

    def __init__(self, bins: int):
        self.bins = bins
        self._bin_of = np.zeros(128, dtype=np.int64)
        members: list[list[int]] = [[] for _ in range(bins)]
        for v in range(1, 128):
            b = (v - 1) * bins // 127
            self._bin_of[v] = b
            members[b].append(v)
        self.values = [m[len(m) // 2] for m in members]  # representative velocity per bin

    def bin(self, velocity: int) -> int:
        return int(self._bin_of[min(max(int(velocity), 1), 127)])

    def value(self, index: int) -> int:
        return self.values[index]


class TempoBins:
    """Beats per minute in `bins` log-spaced bins whose centres run from lo to hi."""

    def __init__(self, bins: int, lo: float, hi: float):
        self.bins = bins
        if bins == 1:
            self.values = [math.sqrt(lo * hi)]
        else:
            self.values = [lo * (hi / lo) ** (i / (bins - 1)) for i in range(bins)]
        self._logs = np.log(np.array(self.values))

    def bin(self, bpm: float) -> int:
        """The bin whose centre is nearest in log-tempo (out-of-range tempos clamp)."""
        return int(np.argmin(np.abs(self._logs - math.log(bpm))))

    def value(self, index: int) -> float:
        return self.values[index]
