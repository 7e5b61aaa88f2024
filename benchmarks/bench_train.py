"""Training speed: our step fed by our pipeline, the bare step, and the common recipe.

One process, the default model (2 x 256 LSTM, embedding 128, remi vocabulary), batch
64 x seq_len 128:

- (a) "ours, fed by feed.train_dataset": train.py's own training step (`train.build_model_and_optimizer`'s
  model and optimizer, `train.make_train_step`: `strategy.run` in a tf.function, under the
  default one-device strategy, the loss read back every step as train.py's loop does)
  on `feed.train_dataset` over the corpus's cached ids (random windows, random
  transposition), exactly as train.py feeds one device; supervised tokens/s = batch x
  seq_len per step;
- (b) "bare step": on one constant in-memory batch of the same shapes, (b1) the same
  step on `Dataset.from_tensors(...).repeat()` and (b2) Keras's own
  `model.train_on_batch` (the same network compiled with the same Adam, clipping and
  loss) on tensors already on the device. Pipeline overhead = (fastest bare rate /
  rate a) - 1; the target is <= 10%;
- (c) "common recipe": the well-known LSTM scripts' training at the same size: windows
  of 100 tokens, the last LSTM with return_sequences=False, one next-token target per
  window, batch 64; tokens/s = supervised targets/s. The target is ours/common >= 100x.

Also: the feed alone (batches/s with no model running) and peak memory (ru_maxrss).
Every way is warmed up (traced) first; then each repeat times `--steps` steps after
one untimed step, (a), (b) and (c) interleaved in a rotating order, and the median
repeat is reported. Beside wall-clock time, the process's CPU time per step is shown:
it shifts less than wall time when other processes share the cores.
Run from the repository root:

    python benchmarks/bench_train.py [--quick] [--data midi_corpus] [--json FILE]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from run_all import Report, fmt

from musicgen.runtime import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)
from keras import layers as kl  # noqa: E402

from musicgen import distribute, feed  # noqa: E402
from musicgen.config import RunConfig  # noqa: E402
from musicgen.dataset import prepare, split_files  # noqa: E402
from musicgen.encoding.base import EOS, PAD, get_encoding  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from musicgen.trainer import build_model_and_optimizer, make_train_step  # noqa: E402

COMMON_WINDOW = 100  # the recipe's sequence length: 100 notes in, 1 note out
COMMON_BATCH = 64  # the recipe's batch size (windows per step)


Seconds = tuple[float, float]  # (wall-clock, CPU time of the whole process) per step


def clock() -> Seconds:
    """Now, as (wall-clock seconds, CPU seconds of all this process's threads). CPU time
    is what a step costs even when other processes share the cores."""
    return time.perf_counter(), time.process_time()


def per_step(start: Seconds, end: Seconds, steps: int) -> Seconds:
    return (end[0] - start[0]) / steps, (end[1] - start[1]) / steps


class StepTimer(keras.callbacks.Callback):
    """The clock at the end of every training step (Keras syncs the step's logs for a
    callback that is not async-safe, so each reading is after the step finished)."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[Seconds] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.ends.append(clock())

    def per_step(self) -> Seconds:
        """Mean (wall, CPU) seconds per step, the first step (pipeline start-up) left out."""
        return per_step(self.ends[0], self.ends[-1], len(self.ends) - 1)


def fit_step_seconds(model: keras.Model, data: tf.data.Dataset | tuple, steps: int) -> Seconds:
    """(wall, CPU) seconds per step of `model.fit` over `steps` + 1 steps (the first
    untimed)."""
    timer = StepTimer()
    if isinstance(data, tuple):  # in-memory arrays: the recipe's way of calling fit
        x, y = data
        rows = COMMON_BATCH * (steps + 1)
        model.fit(
            x[:rows], y[:rows], batch_size=COMMON_BATCH, shuffle=False, verbose=0, callbacks=[timer]
        )
    else:
        model.fit(
            data, epochs=1, steps_per_epoch=steps + 1, shuffle=False, verbose=0, callbacks=[timer]
        )
    return timer.per_step()


def step_seconds(step: Callable, data: tf.data.Dataset, steps: int) -> Seconds:
    """(wall, CPU) seconds per call of train.py's `step(iterator)` over `steps` steps
    after one untimed step; each step's sums are read back (a host sync), as in
    train.py's loop."""
    iterator = iter(data)
    _ = [float(x) for x in step(iterator)]
    start = clock()
    for _ in range(steps):
        _ = [float(x) for x in step(iterator)]
    return per_step(start, clock(), steps)


def compiled_model(config: RunConfig, vocab: int) -> keras.Model:
    """The same network compiled for Keras's own loop: Adam with the same global-norm
    clip, cross-entropy over logits ignoring PAD targets."""
    model = build_model(config.model, vocab)
    cfg = config.train
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate, global_clipnorm=cfg.clip_norm or None),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=False,
    )
    return model


def train_on_batch_seconds(model: keras.Model, batch: tuple, steps: int) -> Seconds:
    """(wall, CPU) seconds per `train_on_batch` call on a constant batch of device
    tensors."""
    x, y, w = batch
    model.train_on_batch(x, y, sample_weight=w)
    start = clock()
    for _ in range(steps):
        model.train_on_batch(x, y, sample_weight=w)
    return per_step(start, clock(), steps)


def feed_seconds(dataset: tf.data.Dataset, steps: int) -> Seconds:
    """(wall, CPU) seconds per batch of the feed alone (no model), after a warm-up batch."""
    iterator = iter(dataset)
    next(iterator)
    start = clock()
    for _ in range(steps):
        batch = next(iterator)
    _ = [t.numpy() for t in batch]
    return per_step(start, clock(), steps)


def common_recipe_model(vocab: int, config: RunConfig) -> keras.Model:
    """The recipe's network at our size: embedding, 2 x LSTM(256) (only the last
    position out of the top layer), dropout, Dense(vocab) logits; same optimizer."""
    m = config.model
    model = keras.Sequential(
        [keras.Input((COMMON_WINDOW,), dtype="int32"), kl.Embedding(vocab, m.embedding_dim)]
        + [
            layer
            for i in range(m.layers)
            for layer in (
                kl.LSTM(m.units, return_sequences=i < m.layers - 1),
                kl.Dropout(m.dropout),
            )
        ]
        + [kl.Dense(vocab)]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(
            config.train.learning_rate, global_clipnorm=config.train.clip_norm or None
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def common_recipe_arrays(stream: np.ndarray, count: int, rng: np.random.Generator) -> tuple:
    """`count` windows of the corpus stream: inputs int32[count, 100], targets int32[count]
    (the token after each window), at random starts."""
    starts = rng.integers(0, stream.size - COMMON_WINDOW - 1, size=count)
    index = starts[:, None] + np.arange(COMMON_WINDOW + 1)[None, :]
    windows = stream[index]
    return windows[:, :-1], windows[:, -1]


def peak_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_of(runs: list[Callable[[], Seconds]], repeats: int) -> list[Seconds]:
    """Call each run `repeats` times, interleaved, each repeat starting one run later
    (so no way is always first); the median (wall, CPU) per run."""
    samples: list[list[Seconds]] = [[] for _ in runs]
    for r in range(repeats):
        for k in range(len(runs)):
            i = (r + k) % len(runs)
            samples[i].append(runs[i]())
    return [tuple(statistics.median(x) for x in zip(*s, strict=True)) for s in samples]


@dataclass
class Timings:
    """(wall, CPU) seconds per step of each way (medians), the same per batch of the
    feed alone, and peak memory (MiB)."""

    ours: Seconds  # (a)
    bare_step: Seconds  # (b1)
    bare_call: Seconds  # (b2)
    common: Seconds  # (c)
    feed: Seconds  # per batch, no model
    memory: dict[str, float]


def measure(
    args: argparse.Namespace, config: RunConfig, arrays: list[np.ndarray], layout: Any
) -> Timings:
    """Build the models, warm every way up, then time them interleaved (call inside
    `layout.placement()`, as train.py runs)."""
    cfg = config.train
    b, t = cfg.batch_size, cfg.seq_len
    keras.utils.set_random_seed(cfg.seed)
    encoding = get_encoding(config.encoding)
    vocab = len(encoding.vocab)
    memory = {"after loading the data": peak_mib()}
    # (a) train.py's step fed by our pipeline; (b) the same on one constant batch
    model, optimizer = build_model_and_optimizer(config, vocab, layout)
    step = make_train_step(model, optimizer, layout.strategy)
    keras_model = compiled_model(config, vocab)
    fed = feed.train_dataset(  # the feed exactly as train.py builds it for one device
        arrays,
        t,
        b,
        cfg.transpose,
        encoding.pitch_id_ranges(),
        cfg.seed,
        cyclic_id_groups=encoding.cyclic_id_groups(),
    )
    rng = np.random.default_rng(cfg.seed)
    ids = tf.constant(rng.integers(EOS + 1, vocab, size=(b, t + 1)), tf.int32)
    const = (ids[:, :-1], ids[:, 1:], tf.ones((b, t), tf.float32))
    bare = tf.data.Dataset.from_tensors(const).repeat()
    # (c) the common recipe at the same size, fed from in-memory arrays as it does
    common = common_recipe_model(vocab, config)
    rows = COMMON_BATCH * (max(args.steps, args.warmup) + 1)
    recipe = common_recipe_arrays(feed.concatenate(arrays), rows, rng)

    def ways(steps: int) -> list[Callable[[], Seconds]]:
        return [
            lambda: step_seconds(step, fed, steps),
            lambda: step_seconds(step, bare, steps),
            lambda: train_on_batch_seconds(keras_model, const, steps),
            lambda: fit_step_seconds(common, recipe, steps),
        ]

    median_of(ways(args.warmup), 1)  # trace and warm up every way before any timing
    memory["after warm-up (both models built)"] = peak_mib()
    ours, bare_step, bare_call, common_step = median_of(ways(args.steps), args.repeats)
    (feed_step,) = median_of([lambda: feed_seconds(fed, args.steps * 4)], args.repeats)
    memory["after timing"] = peak_mib()
    return Timings(ours, bare_step, bare_call, common_step, feed_step, memory)


def fill_report(
    report: Report, args: argparse.Namespace, config: RunConfig, arrays: list, took: Timings
) -> None:
    """The tables and targets of this benchmark."""
    cfg = config.train
    tokens = cfg.batch_size * cfg.seq_len
    stream_tokens = sum(len(a) for a in arrays)
    vocab = len(get_encoding(config.encoding).vocab)
    ways = {
        "(a) ours: train.py's step on feed.train_dataset": (took.ours, tokens),
        "(b1) bare: the same step on one constant batch": (took.bare_step, tokens),
        "(b2) bare: Keras train_on_batch, device tensors": (took.bare_call, tokens),
        f"(c) common recipe: {COMMON_WINDOW} in, 1 out": (took.common, COMMON_BATCH),
    }
    rate = {way: n / seconds[0] for way, (seconds, n) in ways.items()}
    ours, bare_step, bare_call, common = rate.values()
    overhead = max(bare_step, bare_call) / ours - 1
    cpu_overhead = took.ours[1] / min(took.bare_step[1], took.bare_call[1]) - 1
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    report.notes += [
        f"model: {config.model.layers} x {config.model.units} {config.model.cell.upper()}, "
        f"embedding {config.model.embedding_dim}, vocabulary {vocab} (remi), on the {device}; "
        f"batch {cfg.batch_size} x seq_len {cfg.seq_len}; (a) and (b1) run train.py's own "
        "training step (strategy.run in a tf.function, default strategy)",
        f"data: {args.data}, {len(arrays)} training files, {stream_tokens:,} tokens "
        f"(split by file, as train.py does); transposition +-{cfg.transpose}",
        f"each figure: median of {args.repeats} repeats of {args.steps} timed steps, "
        f"after {args.warmup} warm-up steps per way",
        f"ours / common = {cfg.seq_len} targets per window x (common step time / our step "
        f"time); both run the LSTM over every position, so at equal cost per position it "
        f"tends to the recipe's window length, {COMMON_WINDOW}",
    ]
    table = report.table(
        "Training throughput",
        ["way", "targets/step", "ms/step", "CPU ms/step", "supervised tokens/s", "x common"],
    )
    for way, ((wall, cpu), n) in ways.items():
        table.add(way, n, wall * 1e3, cpu * 1e3, rate[way], rate[way] / common)
    feed_table = report.table("The feed alone (no model running)", ["figure", "value"])
    feed_table.add("ms per batch (wall)", took.feed[0] * 1e3)
    feed_table.add("CPU ms per batch (all threads)", took.feed[1] * 1e3)
    feed_table.add("CPU share of one training step (a)", f"{took.feed[1] / took.ours[1]:.1%}")
    feed_table.add("pipeline overhead, wall (fastest bare rate / ours - 1)", f"{overhead:+.1%}")
    feed_table.add("pipeline overhead, CPU time (ours / cheapest bare - 1)", f"{cpu_overhead:+.1%}")
    mem = report.table("Memory", ["what", "MiB"])
    for what, mib in took.memory.items():
        mem.add(f"peak RSS {what}", mib)
    n = max(stream_tokens - COMMON_WINDOW, 0)
    mem.add("training arrays, ours (one int32 stream)", stream_tokens * 4 / 2**20)
    recipe_bytes = n * COMMON_WINDOW * 4 + n * vocab * 4  # int32 windows + float32 one-hot
    mem.add(
        f"training arrays, common recipe ({n:,} windows + one-hot targets)", recipe_bytes / 2**20
    )
    report.target("pipeline overhead (b/a - 1)", f"{overhead:+.1%}", "<= 10%", overhead <= 0.10)
    ratio = ours / common
    report.target("supervised tokens/s, ours / common", f"{fmt(ratio)}x", ">= 100x", ratio >= 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="midi_corpus", help="folder of MIDI files")
    parser.add_argument("--cache-dir", default=None, help="prepare's cache (default: usual)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per way first")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="4 steps, 1 repeat")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even with a GPU")
    parser.add_argument("--json", help="also write the report here (for run_all.py)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.repeats = 4, 1, 1
    report = Report("Training: our pipeline vs the bare step vs the common recipe")
    config = RunConfig().with_flat({"cell": "lstm"})  # the recipe (c) is an LSTM: compare like
    prepared = prepare(args.data, config.encoding, cache_dir=args.cache_dir)
    train_files, _ = split_files(prepared.files, config.train.val_fraction, config.train.seed)
    arrays = [f.ids for f in train_files]
    layout = distribute.setup("none", "cpu" if args.cpu else "auto")  # as train.py, first
    with layout.placement():
        took = measure(args, config, arrays, layout)
    fill_report(report, args, config, arrays, took)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
