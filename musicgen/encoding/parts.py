"""Which instrument each token belongs to: the network's second input on part encodings.

A tracks or steps stream names its parts once, in the header (`Program_p`, one per
part, right after BOS), and after that only by index (`Track_i`; the notes after a
Position with no Track go on in the last part written). A training window of 128
tokens is under two bars of a band song, so it almost never holds the header: a
network that reads the ids alone cannot tell whether part 3 is a bass or a flute, and
writes every part like an average of all instruments (chords in the bass, monophonic
pianos, leads in the bass register).

The part feature of a token says which instrument the stream is in after it: the
General MIDI family of the last part written since BOS (1..16, the drums 17), and 0
before the first Track (the header and the first Bar). The family, not the program:
on band_corpus (20-minute runs, checkpoints/README.md) the program made the parts play
like their instruments but let the network learn rare programs' parts by heart (4.8%
worse on the validation windows than no feature); the family did so less. The feed
can hide it from a share of the training windows (`hide_parts`, off by default) so
that the network does not lean on it. It is a function of the stream alone, so training, evaluation
and sampling compute the same thing:

- `part_features(ids, encoding)`: the feature of every id of a stream of one or more
  pieces (each from its BOS), vectorised;
- `PartTracker`: the same, token by token, for a batch of pieces being sampled;
- `told_parts(encoding, part_programs)`: whether a network reads them at all (the
  encoding when it does, None when its ids are plain).

The network reads token and feature as one int, `pack(ids, features, vocab_size)` =
id + vocab_size x feature, so windows, batches and the model's single input stay as
they are; `unpack` gives them back (targets are always plain ids).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musicgen.encoding.base import BOS, Encoding
from musicgen.encoding.tracks import PROGRAM, TRACK, TracksEncoding
from musicgen.score import DRUM_PROGRAM

# Program token value (0..127, drums DRUM_PROGRAM) -> its feature: family + 1, drums 17
FEATURE_OF_PROGRAM = np.array([p // 8 + 1 for p in range(DRUM_PROGRAM)] + [17])
PART_VALUES = 18  # feature values: 0 (no part yet), a family 1..16, the drums 17


def part_features(ids: Sequence[int] | np.ndarray, encoding: TracksEncoding) -> np.ndarray:
    """int32[len(ids)]: each token's part feature (module docstring). A Track whose
    index the piece's header does not have gives 0."""
    ids = np.asarray(ids, dtype=np.int64).ravel()
    index = np.arange(ids.size)
    plo, phi = encoding.id_range[PROGRAM]
    tlo, thi = encoding.id_range[TRACK]
    # the position of the BOS of each token's piece (-1 before the first BOS)
    bos = np.maximum.accumulate(np.where(ids == BOS, index, -1))
    track = np.maximum.accumulate(np.where((ids >= tlo) & (ids < thi), index, -1))
    in_piece = track > bos  # a Track since the piece's BOS
    # header programs follow BOS back to back: part i's Program is at BOS + 1 + i
    where = np.where(in_piece, bos + 1 + ids[track] - tlo, 0)
    where = np.minimum(where, max(ids.size - 1, 0))
    program = ids[where] if ids.size else ids
    ok = in_piece & (program >= plo) & (program < phi) & (where < track)
    feature = FEATURE_OF_PROGRAM[np.clip(program - plo, 0, DRUM_PROGRAM)]
    return np.where(ok, feature, 0).astype(np.int32)


def told_parts(encoding: Encoding, part_programs: bool) -> TracksEncoding | None:
    """The encoding whose part features a network with `ModelConfig.part_programs`
    reads (training, evaluation and sampling alike); None: it reads plain ids (the
    setting off, or an encoding without parts)."""
    return encoding if part_programs and encoding.has_parts else None  # type: ignore[return-value]


def pack(ids: np.ndarray, features: np.ndarray, vocab_size: int) -> np.ndarray:
    """The network's input ids: id + vocab_size x feature (int32)."""
    return (np.asarray(ids, np.int64) + vocab_size * np.asarray(features, np.int64)).astype(
        np.int32
    )


def pack_stream(ids: Sequence[int] | np.ndarray, encoding: TracksEncoding) -> np.ndarray:
    """`pack` of a stream with its own `part_features`."""
    return pack(np.asarray(ids), part_features(ids, encoding), len(encoding.vocab))


def unpack(packed: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, features) of packed input ids."""
    packed = np.asarray(packed)
    return packed % vocab_size, packed // vocab_size


class PartTracker:
    """`part_features` token by token for `batch` pieces sampled together: `feed(ids)`
    reads one id per live row and returns their packed inputs; `keep(rows)` goes on
    with those rows, `reset(row, start)` puts a row back to a saved state (`state(0)`
    after a shared prefix)."""

    def __init__(self, encoding: TracksEncoding, batch: int):
        self.vocab_size = len(encoding.vocab)
        self.plo, self.phi = encoding.id_range[PROGRAM]
        self.tlo, self.thi = encoding.id_range[TRACK]
        # each row's parts' features, in header order (a spare last slot for a header
        # longer than max_parts)
        self.part_feature = np.zeros((batch, encoding.config.max_parts + 1), np.int64)
        self.count = np.zeros(batch, np.int64)  # header programs read (BOS clears)
        self.feature = np.zeros(batch, np.int64)
        self.rows = np.arange(batch)  # the state row of each live row

    def feed(self, ids: np.ndarray) -> np.ndarray:
        """Read one id per live row; int32 packed inputs (id + vocab x feature)."""
        ids = np.asarray(ids, np.int64)
        rows = self.rows
        if (ids == BOS).any():
            start = rows[ids == BOS]
            self.count[start], self.feature[start] = 0, 0
        program = (ids >= self.plo) & (ids < self.phi)
        if program.any():
            r = rows[program]
            slot = np.minimum(self.count[r], self.part_feature.shape[1] - 1)
            self.part_feature[r, slot] = FEATURE_OF_PROGRAM[ids[program] - self.plo]
            self.count[r] += 1
        track = (ids >= self.tlo) & (ids < self.thi)
        if track.any():
            r, part = rows[track], ids[track] - self.tlo
            known = part < self.count[r]
            self.feature[r] = np.where(
                known, self.part_feature[r, np.minimum(part, self.part_feature.shape[1] - 1)], 0
            )
        return pack(ids, self.feature[rows], self.vocab_size)

    def state(self, row: int) -> tuple[np.ndarray, int, int]:
        """One row's state (its parts' features, count and feature), for `reset`."""
        r = self.rows[row]
        return self.part_feature[r].copy(), int(self.count[r]), int(self.feature[r])

    def keep(self, rows: Sequence[int]) -> None:
        """Go on with these live rows only (indices of the live rows, in their order)."""
        self.rows = self.rows[np.asarray(rows, dtype=np.intp)]

    def reset(self, row: int, start: tuple[np.ndarray, int, int]) -> None:
        """Live row `row` back to a state `state` gave."""
        r = self.rows[row]
        self.part_feature[r], self.count[r], self.feature[r] = start
