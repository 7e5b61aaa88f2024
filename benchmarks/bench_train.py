"""Training speed: our step fed by our pipeline, the bare step, and the common recipe.

One process, the default model (2 x 256 LSTM, embedding 128, remi vocabulary), batch
64 x seq_len 128:

- (a) "ours, fed by feed.train_dataset": trainer.py's own training step (`trainer.build_model_and_optimizer`'s
  model and optimizer, `train.make_train_step`: `strategy.run` in a tf.function, under the
  default one-device strategy, the loss read back every step as trainer.py's loop does)
  on `feed.train_dataset` over the corpus's cached ids (random windows, random
  transposition), exactly as trainer.py feeds one device; supervised tokens/s = batch x
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

Then training speed in units of music, which compare across encodings (a token of
one vocabulary is not a token of another): (a)'s step, timed the same way, for the
default model (2 x 256 GRU) on the remi and on the tracks vocabulary (both with
controls, as the bundled models), beside the pinned LSTM row above. Notes/s and
quarter notes/s = supervised tokens/s / (training tokens per note, per quarter note),
the ratios measured on the training files with `Encoding.music_size` (each file's
ids decoded). And the step's achieved FLOP/s: the matmul FLOPs of one step counted
analytically (embedding gathers free; per recurrent layer and token
2 x (inputs + units) x gates x units forward, gates 4 for the LSTM, 3 for the GRU;
the output projection 2 x units x vocab; backward twice forward, so x3 in all) over
the step's wall time, as a share of this machine's own float32 matmul throughput
measured in the same run (TensorFlow's matmul of two 2048 x 2048 matrices on the
step's device, best of several; NumPy's beside it). Last, tokens per note and per
quarter note of every prepared file of `--corpora` (midi_corpus and band_corpus) under
both vocabularies.
Every way is warmed up (traced) first; then each repeat times `--steps` steps after
one untimed step, (a), (b) and (c) interleaved in a rotating order, and the median
repeat is reported. Beside wall-clock time, the process's CPU time per step is shown:
it shifts less than wall time when other processes share the cores.
Run from the repository root:

    python benchmarks/bench_train.py [--quick] [--data midi_corpus] [--json FILE]

`--quick` runs every way at a tiny batch (16 x 32), 4 steps, 1 repeat, and a 512 x 512
matmul: it checks the code; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from run_all import Report, fmt

from musicgen.runtime import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)
from keras import layers as kl  # noqa: E402

from musicgen import distribute, feed  # noqa: E402
from musicgen.config import ModelConfig, RunConfig  # noqa: E402
from musicgen.dataset import prepare, split_files  # noqa: E402
from musicgen.encoding import EOS, PAD, REGISTRY, get_encoding  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from musicgen.trainer import build_model_and_optimizer, make_train_step  # noqa: E402

COMMON_WINDOW = 100  # the recipe's sequence length: 100 notes in, 1 note out
COMMON_BATCH = 64  # the recipe's batch size (windows per step)
GATES = {"lstm": 4, "gru": 3}  # weight blocks per recurrent layer (input, forget, ...)
# the vocabularies timed in units of music: the beat-grid encodings
MUSIC_ENCODINGS = tuple(name for name, cls in REGISTRY.items() if cls.counts_bars)


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
    """(wall, CPU) seconds per call of trainer.py's `step(iterator)` over `steps` steps
    after one untimed step; each step's sums are read back (a host sync), as in
    trainer.py's loop."""
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


def fed_step(config: RunConfig, arrays: list[np.ndarray], layout: Any) -> tuple[Callable, Any]:
    """(the trainer's step for `config`'s model and optimizer, `feed.train_dataset`'s
    random windows over `arrays`: the feed the trainer builds for one device when the
    training tokens fit one group, as midi_corpus's do)."""
    cfg = config.train
    encoding = get_encoding(config.encoding)
    vocab = len(encoding.vocab)
    model, optimizer = build_model_and_optimizer(config, vocab, layout)
    step = make_train_step(model, optimizer, layout.strategy)
    fed = feed.train_dataset(
        arrays,
        cfg.seq_len,
        cfg.batch_size,
        cfg.transpose,
        encoding.pitch_id_ranges(),
        cfg.seed,
        cyclic_id_groups=encoding.cyclic_id_groups(),
    )
    return step, fed


def measure(
    args: argparse.Namespace, config: RunConfig, arrays: list[np.ndarray], layout: Any
) -> Timings:
    """Build the models, warm every way up, then time them interleaved (call inside
    `layout.placement()`, as trainer.py runs)."""
    cfg = config.train
    b, t = cfg.batch_size, cfg.seq_len
    keras.utils.set_random_seed(cfg.seed)
    encoding = get_encoding(config.encoding)
    vocab = len(encoding.vocab)
    memory = {"after loading the data": peak_mib()}
    # (a) trainer.py's step fed by our pipeline; (b) the same on one constant batch
    step, fed = fed_step(config, arrays, layout)
    keras_model = compiled_model(config, vocab)
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
        "(a) ours: trainer.py's step on feed.train_dataset": (took.ours, tokens),
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
        f"batch {cfg.batch_size} x seq_len {cfg.seq_len}; (a) and (b1) run trainer.py's own "
        "training step (strategy.run in a tf.function, default strategy)",
        f"data: {args.data}, {len(arrays)} training files, {stream_tokens:,} tokens "
        f"(split by file, as trainer.py does); transposition +-{cfg.transpose}",
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


# ----------------------------------------------------------------------------- units of music


@dataclass
class MusicRun:
    """One model and vocabulary timed in units of music."""

    label: str
    config: RunConfig
    arrays: list[np.ndarray]  # the training files' ids
    seconds: Seconds  # (wall, CPU) per step of trainer.py's step on the feed (median)


def step_flops(model: ModelConfig, vocab: int, tokens: int) -> float:
    """Matmul FLOPs of one training step over `tokens` positions (batch x seq_len):
    embedding gathers are free; per recurrent layer and token 2 (in + units) gates
    units forward (in = embedding_dim for the first layer, units above); the output
    projection 2 units vocab; forward + backward = 3 x forward."""
    gates, units = GATES[model.cell], model.units
    inputs = [model.embedding_dim] + [units] * (model.layers - 1)
    forward = sum(2 * (n + units) * gates * units for n in inputs) + 2 * units * vocab
    return 3.0 * forward * tokens


def matmul_rates(size: int, rounds: int) -> dict[str, float]:
    """Float32 FLOP/s of a size x size matmul (2 size^3 FLOPs), best of `rounds`:
    TensorFlow's on the current device (the step's), NumPy's on the CPU."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    ta, tb = tf.constant(a), tf.constant(b)
    flops = 2.0 * size**3

    def best(run: Callable[[], Any]) -> float:
        run()  # warm up
        seconds = []
        for _ in range(rounds):
            start = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - start)
        return flops / min(seconds)

    return {
        "tensorflow": best(lambda: float(tf.reduce_sum(tf.linalg.matmul(ta, tb)))),
        "numpy": best(lambda: a @ b),
    }


def music_ratios(config: RunConfig, arrays: list[np.ndarray]) -> tuple[float, float]:
    """(tokens per note, tokens per quarter note) of `arrays` under the config's
    encoding (`Encoding.music_size` of every file)."""
    encoding = get_encoding(config.encoding)
    quarters, notes, tokens = 0.0, 0, 0
    for ids in arrays:
        q, n = encoding.music_size(ids)
        quarters, notes, tokens = quarters + q, notes + n, tokens + len(ids)
    return tokens / max(notes, 1), tokens / max(quarters, 1e-9)


def training_arrays(args: argparse.Namespace, config: RunConfig) -> list[np.ndarray]:
    """The training files' ids of `args.data` under the config's encoding (split by
    file, as trainer.py does)."""
    prepared = prepare(args.data, config.encoding, cache_dir=args.cache_dir)
    train_files, _ = split_files(prepared.files, config.train.val_fraction, config.train.seed)
    return [f.ids for f in train_files]


def measure_music(args: argparse.Namespace, shape: dict, layout: Any) -> list[MusicRun]:
    """trainer.py's step on the feed for the default model on each of MUSIC_ENCODINGS
    (controls on), warmed up, then timed interleaved (median of `args.repeats`)."""
    runs, steps = [], []
    for name in MUSIC_ENCODINGS:
        config = RunConfig().with_flat({"encoding": name, "controls": True, **shape})
        arrays = training_arrays(args, config)
        keras.utils.set_random_seed(config.train.seed)
        step, fed = fed_step(config, arrays, layout)
        m = config.model
        label = f"{m.layers} x {m.units} {m.cell.upper()} (default), {name} + controls"
        runs.append(MusicRun(label, config, arrays, (0.0, 0.0)))
        steps.append((step, fed))

    def ways(n: int) -> list[Callable[[], Seconds]]:
        return [lambda s=s, f=f: step_seconds(s, f, n) for s, f in steps]

    median_of(ways(args.warmup), 1)
    for run, seconds in zip(runs, median_of(ways(args.steps), args.repeats), strict=True):
        run.seconds = seconds
    return runs


def fill_music_report(
    report: Report, runs: list[MusicRun], rates: dict[str, float], size: int
) -> None:
    """Training speed per note and per quarter note, and FLOP/s against the matmul peak."""
    peak = rates["tensorflow"]
    table = report.table(
        "Training speed in units of music, and FLOP/s (trainer.py's step on the feed)",
        ["model, vocabulary", "vocab", "tokens/note", "tokens/quarter", "tokens/s", "notes/s",
         "quarters/s", "GFLOP/step", "GFLOP/s", "share of matmul peak"],
    )  # fmt: skip
    for run in runs:
        cfg = run.config
        vocab = len(get_encoding(cfg.encoding).vocab)
        tokens = cfg.train.batch_size * cfg.train.seq_len
        rate = tokens / run.seconds[0]
        per_note, per_quarter = music_ratios(cfg, run.arrays)
        flops = step_flops(cfg.model, vocab, tokens)
        achieved = flops / run.seconds[0]
        table.add(run.label, vocab, per_note, per_quarter, rate, rate / per_note,
                  rate / per_quarter, flops / 1e9, achieved / 1e9, f"{achieved / peak:.1%}")  # fmt: skip
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    report.notes += [
        f"matmul peak: float32 {size} x {size}, best of several: TensorFlow on the {device} "
        f"{rates['tensorflow'] / 1e9:,.1f} GFLOP/s (the share's denominator), NumPy on the "
        f"CPU {rates['numpy'] / 1e9:,.1f} GFLOP/s",
        "units of music: notes/s = tokens/s / tokens per note, quarters/s = tokens/s / "
        "tokens per quarter, both ratios over the training files (Encoding.music_size)",
    ]


def corpus_table(report: Report, args: argparse.Namespace) -> None:
    """Tokens per note and per quarter note of every prepared file of each of
    `args.corpora` under each of MUSIC_ENCODINGS (controls on): what a token is worth."""
    table = report.table(
        "Tokens per note and per quarter note, by corpus (every prepared file)",
        ["corpus", "encoding", "files", "tokens", "notes", "quarters", "tokens/note",
         "tokens/quarter"],
    )  # fmt: skip
    report.notes.append(
        "by corpus: each encoding counts what it keeps (remi leaves out drums, and so a "
        "drums-only file; tracks keeps them), so files and notes differ between the rows"
    )
    for corpus in args.corpora:
        if not Path(corpus).exists():
            table.add(corpus, "-", "absent", "-", "-", "-", "-", "-")
            continue
        for name in MUSIC_ENCODINGS:
            config = RunConfig().with_flat({"encoding": name, "controls": True})
            files = prepare(corpus, config.encoding, cache_dir=args.cache_dir).files
            encoding = get_encoding(config.encoding)
            sizes = [encoding.music_size(f.ids) for f in files]
            tokens = sum(len(f.ids) for f in files)
            quarters, notes = sum(q for q, _ in sizes), sum(n for _, n in sizes)
            table.add(corpus, name, len(files), float(tokens), float(notes), quarters,
                      tokens / max(notes, 1), tokens / max(quarters, 1e-9))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="midi_corpus", help="folder of MIDI files")
    parser.add_argument("--cache-dir", default=None, help="prepare's cache (default: usual)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per way first")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--matmul", type=int, default=2048, help="matmul size for the peak")
    parser.add_argument("--corpora", nargs="*", default=["midi_corpus", "band_corpus"],
                        help="folders whose tokens per note and per quarter are shown")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny batch, 4 steps, 1 repeat")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even with a GPU")
    parser.add_argument("--json", help="also write the report here (for run_all.py)")
    args = parser.parse_args()
    shape = {}
    if args.quick:
        args.steps, args.warmup, args.repeats, args.matmul = 4, 1, 1, 512
        shape = {"batch_size": 16, "seq_len": 32}
    report = Report("Training: our pipeline vs the bare step vs the common recipe")
    # the recipe (c) is an LSTM on remi without controls: compare like with like
    config = RunConfig().with_flat({"cell": "lstm", "encoding": "remi", **shape})
    arrays = training_arrays(args, config)
    layout = distribute.setup("none", "cpu" if args.cpu else "auto")  # as trainer.py, first
    with layout.placement():
        took = measure(args, config, arrays, layout)
        runs = measure_music(args, shape, layout)
        rates = matmul_rates(args.matmul, rounds=3 if args.quick else 10)
    fill_report(report, args, config, arrays, took)
    m = config.model
    label = f"{m.layers} x {m.units} {m.cell.upper()} (pinned row (a) above), remi"
    pinned = MusicRun(label, config, arrays, took.ours)
    fill_music_report(report, [pinned, *runs], rates, args.matmul)
    corpus_table(report, args)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
