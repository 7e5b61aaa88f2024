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
- `grouped_train_dataset`: the same batches over a corpus too big to hold at once,
  given as groups of tokens loaded on demand (a few shards each). Each pass over the
  corpus visits the groups in a seeded order and draws from each as many batches as it
  has tokens for; at most two groups are in memory. Batch n is still a pure function
  of (key, n, the groups); with one group it is exactly `train_dataset`'s batch n.
- `val_dataset`: non-overlapping windows in order, no augmentation, the last one
  padded with PAD (weight 0); a finite dataset that is the same on every pass
  (optionally padded with empty windows to a fixed number of batches).

On a network that reads each token's part (`part_programs`, encoding/parts.py) the
arrays hold packed ids (id + vocab x part feature) and `vocab` says so: windows are
cut from the packed stream, transposition moves the ids alone, the inputs stay packed
and the targets are the plain ids; `hide_parts` of the training windows (each drawn
with the batch's stateless seed) are fed with every feature 0, as if no part had been
named.

For tf.distribute, `replicas=R` cuts each batch into R consecutive per-replica batches
(elements R * n ... R * n + R - 1): a strategy's local replicas take them in turn, so
the replicas together see exactly the batch a single device would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from musicgen.encoding import PAD

_HIDE_KEY = 7  # the key of the draw of hidden windows: the feed's key plus this
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
    key: int | None = None,
    replicas: int = 1,
    vocab: int = 0,
    hide_parts: float = 0.0,
) -> tf.data.Dataset:
    """Endless (inputs, targets, weights) batches of random windows, each [batch, seq_len].

    arrays: int id arrays, one per training file. transpose: semitones (0 disables).
    pitch_id_ranges: inclusive (first, last) id ranges of pitch tokens, ascending pitch.
    first_batch: index of the first batch to yield (a resumed run continues the feed).
    cyclic_id_groups: (first id, size) groups of pitch-class tokens; a window shifted
    by k semitones has each such id rotated by k within its group.
    key: the random ops' seed (default `seed`; each worker of a cluster has its own).
    replicas: cut each batch into this many per-replica batches (batch_size / replicas).
    vocab: the arrays hold packed ids of this vocabulary (0: plain ids).
    hide_parts: the share of windows fed without their part features (packed ids only).
    """
    make_batch = _batch_maker(
        seq_len, batch_size, transpose, pitch_id_ranges, cyclic_id_groups,
        seed if key is None else key, vocab, hide_parts,
    )  # fmt: skip
    tokens = tf.constant(concatenate(arrays, min_length=seq_len + 1))
    dataset = tf.data.Dataset.counter(start=first_batch).map(
        lambda step: make_batch(tokens, step),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return _per_replica(dataset, batch_size, replicas).prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class TokenGroup:
    """Part of a corpus that is loaded as one stream: `tokens` ids, read by `load()`."""

    tokens: int
    load: Callable[[], np.ndarray]


def group_schedule(
    sizes: Sequence[int], batch_tokens: int, key: int
) -> Callable[[int], Iterator[tuple[int, int, int]]]:
    """The order in which `grouped_train_dataset` draws batches from groups of `sizes`
    tokens: a function first_batch -> endless (group, first batch, end batch) visits.

    Pass p (of sum(per_visit) batches) visits every group once, in the permutation
    `np.random.default_rng([key mod 2**63, p])` draws; a visit to group g yields per_visit[g] =
    ceil(sizes[g] / batch_tokens) (at least 1) consecutive batch numbers."""
    per_visit = [max(1, -(-int(size) // batch_tokens)) for size in sizes]
    pass_length = sum(per_visit)

    def visits(first_batch: int) -> Iterator[tuple[int, int, int]]:
        pass_index, skip = divmod(first_batch, pass_length)
        while True:
            start = pass_index * pass_length
            order = np.random.default_rng([key % 2**63, pass_index]).permutation(len(sizes))
            for group in order:
                end = start + per_visit[group]
                if end > pass_index * pass_length + skip:
                    yield int(group), max(start, pass_index * pass_length + skip), end
                start = end
            pass_index, skip = pass_index + 1, 0

    return visits


def grouped_train_dataset(
    groups: Sequence[TokenGroup],
    seq_len: int,
    batch_size: int,
    transpose: int = 0,
    pitch_id_ranges: Sequence[tuple[int, int]] = (),
    seed: int = 0,
    *,
    first_batch: int = 0,
    cyclic_id_groups: Sequence[tuple[int, int]] = (),
    key: int | None = None,
    replicas: int = 1,
    vocab: int = 0,
    hide_parts: float = 0.0,
) -> tf.data.Dataset:
    """`train_dataset` over `groups` loaded one at a time (see `group_schedule`).

    Batch n draws its windows from the group that the schedule gives for n, with the
    random ops of batch n; one group gives exactly `train_dataset`'s batches."""
    key = seed if key is None else key
    if len(groups) == 1:
        return train_dataset(
            [groups[0].load()], seq_len, batch_size, transpose, pitch_id_ranges, seed,
            first_batch=first_batch, cyclic_id_groups=cyclic_id_groups, key=key,
            replicas=replicas, vocab=vocab, hide_parts=hide_parts,
        )  # fmt: skip
    make_batch = _batch_maker(
        seq_len, batch_size, transpose, pitch_id_ranges, cyclic_id_groups, key, vocab,
        hide_parts,
    )  # fmt: skip
    visits = group_schedule([g.tokens for g in groups], batch_size * seq_len, key)

    def segments() -> Iterator[tuple[np.ndarray, int, int]]:
        for group, start, end in visits(first_batch):
            yield concatenate([groups[group].load()], min_length=seq_len + 1), start, end

    def batches(tokens: tf.Tensor, start: tf.Tensor, end: tf.Tensor) -> tf.data.Dataset:
        return tf.data.Dataset.range(start, end).map(
            lambda step: make_batch(tokens, step),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    signature = (
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([], tf.int64),
        tf.TensorSpec([], tf.int64),
    )
    dataset = tf.data.Dataset.from_generator(segments, output_signature=signature)
    dataset = dataset.flat_map(batches)
    return _per_replica(dataset, batch_size, replicas).prefetch(tf.data.AUTOTUNE)


def _batch_maker(
    seq_len: int,
    batch_size: int,
    transpose: int,
    pitch_id_ranges: Sequence[tuple[int, int]],
    cyclic_id_groups: Sequence[tuple[int, int]],
    key: int,
    vocab: int = 0,
    hide_parts: float = 0.0,
) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
    """make_batch(tokens int32[N >= seq_len + 1], step int64) -> batch `step` of windows
    of `tokens`: starts drawn with the stateless seed (key, 2 step), shifts with
    (key, 2 step + 1), the windows whose parts are hidden with (key + _HIDE_KEY, 2 step + 1)."""
    offsets = tf.range(seq_len + 1, dtype=tf.int32)
    ranges = [(int(a), int(b)) for a, b in pitch_id_ranges]
    cycles = [(int(a), int(b)) for a, b in cyclic_id_groups]
    key_tensor = tf.constant(key, tf.int64)

    def make_batch(tokens: tf.Tensor, step: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        num_starts = tf.shape(tokens)[0] - seq_len  # window starts 0 .. N - seq_len - 1
        start_seed = tf.stack([key_tensor, step * 2])
        shift_seed = tf.stack([key_tensor, step * 2 + 1])
        starts = tf.random.stateless_uniform(
            [batch_size], start_seed, minval=0, maxval=num_starts, dtype=tf.int32
        )
        windows, parts = _unpacked(tf.gather(tokens, starts[:, None] + offsets[None, :]), vocab)
        if parts is not None and hide_parts > 0:
            hide_seed = tf.stack([key_tensor + _HIDE_KEY, step * 2 + 1])
            told = tf.random.stateless_uniform([batch_size], hide_seed) >= hide_parts
            parts = parts * tf.cast(told, parts.dtype)[:, None]
        if transpose > 0 and ranges:
            windows = _transpose_windows(windows, transpose, ranges, shift_seed, cycles)
        return _split(windows, parts, vocab)

    return make_batch


def _per_replica(dataset: tf.data.Dataset, batch_size: int, replicas: int) -> tf.data.Dataset:
    """Each batch of `batch_size` cut into `replicas` consecutive batches."""
    if replicas <= 1:
        return dataset
    if batch_size % replicas:
        raise ValueError(f"batch size {batch_size} does not split over {replicas} replicas")
    return dataset.rebatch(batch_size // replicas)


def val_dataset(
    arrays: Sequence[np.ndarray],
    seq_len: int,
    batch_size: int,
    *,
    steps: int | None = None,
    replicas: int = 1,
    vocab: int = 0,
) -> tf.data.Dataset:
    """Finite (inputs, targets, weights) batches of consecutive, non-overlapping windows.

    Window i covers tokens [i * seq_len, (i + 1) * seq_len] of the concatenated stream;
    the stream is padded with PAD (weight 0) to fill the last window. Same every pass.
    steps: pad with all-PAD windows (weight 0) to exactly this many full batches, so
    that every replica of a cluster runs the same number of steps. vocab: as
    `train_dataset`'s.
    """
    windows = val_windows(arrays, seq_len)
    if steps is not None:
        if steps * batch_size < len(windows):
            raise ValueError(f"{len(windows)} windows do not fit {steps} batches")
        padding = np.full((steps * batch_size - len(windows), seq_len + 1), PAD, np.int32)
        windows = np.concatenate([windows, padding])
    dataset = (
        tf.data.Dataset.from_tensor_slices(windows)
        .batch(batch_size)
        .map(lambda w: _split(*_unpacked(w, vocab), vocab))
    )
    return _per_replica(dataset, batch_size, replicas).prefetch(tf.data.AUTOTUNE)


def val_window_count(tokens: int, seq_len: int) -> int:
    """How many windows `val_windows` cuts from a stream of `tokens` tokens."""
    return max(1, -(-(tokens - 1) // seq_len))


def val_windows(arrays: Sequence[np.ndarray], seq_len: int) -> np.ndarray:
    """int32[n, seq_len + 1]: the consecutive windows `val_dataset` feeds (sharing one
    token at each seam, so every token after the first is a target exactly once)."""
    tokens = concatenate(arrays)
    count = val_window_count(tokens.size, seq_len)  # ceil((N - 1) / seq_len)
    tokens = concatenate([tokens], min_length=count * seq_len + 1)
    index = np.arange(count)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    return tokens[index]


def _unpacked(windows: tf.Tensor, vocab: int) -> tuple[tf.Tensor, tf.Tensor | None]:
    """(ids, part features) of packed windows; (windows, None) when vocab is 0."""
    if not vocab:
        return windows, None
    return tf.math.floormod(windows, vocab), tf.math.floordiv(windows, vocab)


def _split(
    windows: tf.Tensor, parts: tf.Tensor | None = None, vocab: int = 0
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """windows int[b, t + 1] -> inputs int[b, t] (packed again with `parts`, when
    given), targets int[b, t], weights float[b, t]."""
    inputs, targets = windows[:, :-1], windows[:, 1:]
    if parts is not None:
        inputs = inputs + vocab * parts[:, :-1]
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
