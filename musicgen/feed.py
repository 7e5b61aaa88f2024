"""tf.data pipelines that turn token id arrays into training and validation batches.

Both pipelines concatenate the files' id arrays (each BOS ... EOS) into one int32
stream and cut windows of `seq_len + 1` tokens from it. A window `w` gives
`inputs = w[:-1]` and `targets = w[1:]`: the model predicts the next token at every
position, not one target per window. Each element is `(inputs, targets, weights)`,
all of shape [batch, seq_len]; `weights` is 0.0 where the target is PAD (padding of a
corpus shorter than a window) and 1.0 elsewhere.

- `train_dataset`: endless batches of windows at random starts. Batch n is a pure
  function of (seed, n) (stateless random ops), so a seed fixes the whole feed. Each
  window is transposed by its own random k semitones in [-transpose, +transpose],
  narrowed per window so that every pitch token stays inside its pitch range;
  pitch-class tokens (remi's Key_*, `Encoding.cyclic_id_groups`) rotate with it.
  Everything runs as vectorized TensorFlow ops on whole batches (no Python in the
  loop), so the pipeline keeps up with the model.
- `val_dataset`: non-overlapping windows in order, no augmentation, the last one
  padded with PAD (weight 0); a finite dataset that is the same on every pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from musicgen.encoding.base import PAD

_FAR = 1 << 20  # larger than any id offset: "no pitch token in this window"


def concatenate(arrays: Sequence[np.ndarray], min_length: int = 0) -> np.ndarray:
    """One int32 stream of all `arrays`, padded with PAD up to `min_length` tokens."""
    parts = [np.asarray(a, dtype=np.int32).ravel() for a in arrays]
    tokens = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    if tokens.size < min_length:
        tokens = np.concatenate([tokens, np.full(min_length - tokens.size, PAD, np.int32)])
    return tokens


def train_dataset(
    arrays: Sequence[np.ndarray],
    seq_len: int,
    batch_size: int,
    transpose: int = 0,
    pitch_id_ranges: Sequence[tuple[int, int]] = (),
    seed: int = 0,
    *,
    first_batch: int = 0,
    cyclic_id_groups: Sequence[tuple[int, int]] = (),
) -> tf.data.Dataset:
    """Endless (inputs, targets, weights) batches of random windows, each [batch, seq_len].

    arrays: int id arrays, one per training file. transpose: semitones (0 disables).
    pitch_id_ranges: inclusive (first, last) id ranges of pitch tokens, ascending pitch.
    first_batch: index of the first batch to yield (a resumed run continues the feed).
    cyclic_id_groups: (first id, size) groups of pitch-class tokens; a window shifted
    by k semitones has each such id rotated by k within its group.
    """
    tokens = tf.constant(concatenate(arrays, min_length=seq_len + 1))
    num_starts = int(tokens.shape[0]) - seq_len  # window starts 0 .. N - seq_len - 1
    offsets = tf.range(seq_len + 1, dtype=tf.int32)
    ranges = [(int(a), int(b)) for a, b in pitch_id_ranges]
    cycles = [(int(a), int(b)) for a, b in cyclic_id_groups]

    def make_batch(step: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        start_seed = tf.stack([tf.constant(seed, tf.int64), step * 2])
        shift_seed = tf.stack([tf.constant(seed, tf.int64), step * 2 + 1])
        starts = tf.random.stateless_uniform(
            [batch_size], start_seed, minval=0, maxval=num_starts, dtype=tf.int32
        )
        windows = tf.gather(tokens, starts[:, None] + offsets[None, :])
        if transpose > 0 and ranges:
            windows = _transpose_windows(windows, transpose, ranges, shift_seed, cycles)
        return _split(windows)

    return (
        tf.data.Dataset.counter(start=first_batch)
        .map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def val_dataset(arrays: Sequence[np.ndarray], seq_len: int, batch_size: int) -> tf.data.Dataset:
    """Finite (inputs, targets, weights) batches of consecutive, non-overlapping windows.

    Window i covers tokens [i * seq_len, (i + 1) * seq_len] of the concatenated stream;
    the stream is padded with PAD (weight 0) to fill the last window. Same every pass.
    """
    windows = val_windows(arrays, seq_len)
    return (
        tf.data.Dataset.from_tensor_slices(windows)
        .batch(batch_size)
        .map(_split)
        .prefetch(tf.data.AUTOTUNE)
    )


def val_windows(arrays: Sequence[np.ndarray], seq_len: int) -> np.ndarray:
    """int32[n, seq_len + 1]: the consecutive windows `val_dataset` feeds (sharing one
    token at each seam, so every token after the first is a target exactly once)."""
    tokens = concatenate(arrays)
    count = max(1, -(-(tokens.size - 1) // seq_len))  # ceil((N - 1) / seq_len)
    tokens = concatenate([tokens], min_length=count * seq_len + 1)
    index = np.arange(count)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    return tokens[index]


def _split(windows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """windows int[b, t + 1] -> inputs int[b, t], targets int[b, t], weights float[b, t]."""
    inputs, targets = windows[:, :-1], windows[:, 1:]
    weights = tf.cast(tf.not_equal(targets, PAD), tf.float32)
    return inputs, targets, weights


def _transpose_windows(
    windows: tf.Tensor,
    transpose: int,
    ranges: list[tuple[int, int]],
    seed: tf.Tensor,
    cycles: Sequence[tuple[int, int]] = (),
) -> tf.Tensor:
    """Shift every pitch token of each window by one random k per window, and rotate
    every id of a (first, size) group in `cycles` to first + (id - first + k) mod size.

    k is drawn uniformly from [-transpose, transpose] narrowed, per window, to the
    shifts that keep every pitch token inside its range (k = 0 always qualifies).
    """
    lowest = tf.fill(tf.shape(windows)[:1], -transpose)
    highest = tf.fill(tf.shape(windows)[:1], transpose)
    is_pitch = tf.zeros_like(windows, dtype=tf.bool)
    for first, last in ranges:
        inside = (windows >= first) & (windows <= last)
        offset = windows - first  # semitones above the range's lowest pitch
        min_offset = tf.reduce_min(tf.where(inside, offset, _FAR), axis=1)
        max_offset = tf.reduce_max(tf.where(inside, offset, -_FAR), axis=1)
        lowest = tf.maximum(lowest, -min_offset)
        highest = tf.minimum(highest, (last - first) - max_offset)
        is_pitch |= inside
    uniform = tf.random.stateless_uniform(tf.shape(lowest), seed)
    span = tf.cast(highest - lowest + 1, tf.float32)
    k = lowest + tf.minimum(tf.cast(uniform * span, tf.int32), highest - lowest)
    shifted = windows + tf.where(is_pitch, k[:, None], 0)
    for first, size in cycles:
        inside = (windows >= first) & (windows < first + size)
        rotated = first + tf.math.floormod(windows - first + k[:, None], size)
        shifted = tf.where(inside, rotated, shifted)
    return shifted
