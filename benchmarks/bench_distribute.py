"""Distributed training: replica scaling and the feed against the step.

One process whose CPU is split into two logical devices before TensorFlow starts (so
it must run in its own process). The default model (2 x 256 LSTM, remi vocabulary),
global batch 64 x 128, the corpus's shards split as trainer.py splits them:

- "1 replica": the default strategy, the very step and feed `musicgen train` runs
  (`train.make_train_step`, `train._feeds`); "2 replicas": the same under
  MirroredStrategy over the two logical CPU devices (each replica gets 32 windows).
  On one CPU both replicas share the same cores, so this measures what the
  strategy costs, not a speed-up; with GPUs visible (--device auto, the default) the
  replicas are the GPUs and run in parallel, and the step is the GPU's;
- "feed alone": batches/s of the distributed training dataset with no model running,
  against the step rate on one constant batch (the bare model): the feed must be
  much faster than the step for the model never to wait.

Each figure is the median of --repeats repeats of --steps steps, after a warm-up.
Run from the repository root:

    python benchmarks/bench_distribute.py [--quick] [--data midi_corpus] [--device auto]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from run_all import Report, _markdown_table

from musicgen.runtime import import_tensorflow

tf = import_tensorflow()
cpu = tf.config.list_physical_devices("CPU")[0]  # two logical CPUs, before anything else
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from musicgen import distribute  # noqa: E402
from musicgen import trainer as train_module  # noqa: E402
from musicgen.config import RunConfig  # noqa: E402
from musicgen.dataset import prepare, shard_set, split_files  # noqa: E402
from musicgen.encoding import get_encoding  # noqa: E402


def seconds_per_call(call: Callable[[], object], steps: int, repeats: int) -> float:
    """Median over `repeats` of the mean wall seconds of `steps` calls (one untimed first)."""
    samples = []
    for _ in range(repeats):
        call()
        start = time.perf_counter()
        for _ in range(steps):
            call()
        samples.append((time.perf_counter() - start) / steps)
    return statistics.median(samples)


def measure(mode: str, config: RunConfig, data: train_module._Data, args: argparse.Namespace):
    """(seconds per fed step, per bare step, per feed batch) under `mode`."""
    layout = distribute.setup(mode, args.device)
    keras.utils.set_random_seed(config.train.seed)
    encoding = get_encoding(config.encoding)
    vocab = len(encoding.vocab)
    with layout.placement():
        model, optimizer = train_module.build_model_and_optimizer(config, vocab, layout)
        step = train_module.make_train_step(model, optimizer, layout.strategy)
        feeds = train_module._feeds(data, config, encoding, layout, first_batch=0)
        fed = iter(feeds.train)
        bare = _Same(next(iter(feeds.train)))  # one batch, already split over the replicas
        loader = iter(feeds.train)

        def fed_step() -> None:
            [float(x) for x in step(fed)]

        def bare_step() -> None:
            [float(x) for x in step(bare)]

        def feed_batch() -> None:
            batch = next(loader)
            layout.strategy.experimental_local_results(batch[0])[0].numpy()

        fed_step(), bare_step()  # trace
        times = [seconds_per_call(f, args.steps, args.repeats) for f in (fed_step, bare_step)]
        times.append(seconds_per_call(feed_batch, args.steps * 4, args.repeats))
    return layout.replicas, times


class _Same:
    """An "iterator" that always gives the same batch. The step's tf.function calls
    next() once, while tracing: the batch becomes a constant of the graph, so the step
    runs with no input pipeline at all (the bare model)."""

    def __init__(self, batch: object):
        self.batch = batch

    def __next__(self) -> object:
        return self.batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="midi_corpus", help="folder of MIDI files")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a tiny model, 3 steps, 1 repeat")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    parser.add_argument("--json", help="also write the report here (for run_all.py)")
    args = parser.parse_args()
    kind = distribute.setup("none", args.device).kind
    config = RunConfig()
    if args.quick:
        args.steps, args.repeats = 3, 1
        config = config.with_flat({"layers": 1, "units": 32, "batch_size": 16, "seq_len": 32})
    cfg = config.train
    packed = shard_set(prepare(args.data, config.encoding))
    train, validation = split_files(packed.files, cfg.val_fraction, cfg.seed)
    data = train_module._Data(packed, train, validation or train, summary={})

    report = Report(
        f"Distributed training: replica scaling on {kind.upper()} devices, the feed vs the step"
    )
    devices = (
        "the CPU split into 2 logical devices (both share the same cores)"
        if kind == "cpu"
        else f"{len(tf.config.list_logical_devices('GPU'))} GPU(s)"
    )
    report.notes += [
        f"model: {config.model.layers} x {config.model.units} {config.model.cell.upper()}; "
        f"global batch {cfg.batch_size} x seq_len {cfg.seq_len}; {devices}",
        f"data: {args.data}, {len(train)} training files in {packed.num_shards} shard(s)",
        f"median of {args.repeats} repeats of {args.steps} steps (the feed: {args.steps * 4})",
    ]
    scaling = report.table(
        "Replica scaling (same global batch)",
        [
            "strategy",
            "replicas",
            "ms/step (fed)",
            "tokens/s (fed)",
            "ms/step (bare)",
            "x 1 replica",
        ],
    )
    pipeline = report.table(
        "The feed against the step",
        ["strategy", "feed batches/s", "bare steps/s", "feed / step"],
    )
    tokens = cfg.batch_size * cfg.seq_len
    base = None
    for mode, name in (("none", "default (one device)"), ("mirrored", "MirroredStrategy")):
        replicas, (fed, bare, batch) = measure(mode, config, data, args)
        base = base or tokens / fed
        scaling.add(name, replicas, fed * 1e3, tokens / fed, bare * 1e3, tokens / fed / base)
        pipeline.add(name, 1 / batch, 1 / bare, f"{bare / batch:.1f}x")
    for table in report.tables:
        print(f"\n**{table.title}**\n")
        print(_markdown_table(table.columns, table.rows))
    print()
    for note in report.notes:
        print(f"- {note}")
    report.save(args.json)


if __name__ == "__main__":
    main()
