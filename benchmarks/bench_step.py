"""The training step's FLOP/s as a share of the machine's matmul peak, way by way.

trainer.py's step (`make_train_step`) on one constant in-memory batch, for the default
model (2 x 256 GRU, remi + controls vocabulary) and the 2 x 256 LSTM, in several ways
side by side in one process: the plain `tf.function` step ("plain"), the step compiled
with XLA (`jit_compile`, "xla"), the recurrent layers unrolled over the window
("unroll") or with one matmul per gate (Keras's `implementation=1`, "split-gates"), at
the default batch and at larger ones. Each way is warmed up
(traced, compiled) first, then the ways are timed interleaved (each repeat starts one
way later), median of the repeats. The share's denominator is TensorFlow's float32
matmul of two 2048 x 2048 matrices measured in the same process (best of several), so
the share holds even when other processes share the cores (the peak is measured
before each repeat, the best taken); the load average before and after is printed. FLOPs: `bench_train.step_flops` (matmuls only, backward = 2 x
forward). Thread settings are per process: `--threads INTRA,INTER` (0 = TensorFlow's
choice).

    python benchmarks/bench_step.py [--quick] [--threads 2,1] [--batches 64,128] [--ways plain,xla]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from bench_train import matmul_rates, music_ratios, step_flops, training_arrays

from musicgen.runtime import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)

from musicgen import distribute  # noqa: E402
from musicgen.config import RunConfig  # noqa: E402
from musicgen.encoding import get_encoding  # noqa: E402
from musicgen.trainer import build_model_and_optimizer, make_train_step  # noqa: E402


def constant_batch(batch: int, seq_len: int, vocab: int) -> tf.data.Dataset:
    """One random (inputs, targets, weights) batch, repeated forever."""
    rng = np.random.default_rng(0)
    ids = rng.integers(4, vocab, size=(batch, seq_len + 1), dtype=np.int32)
    weights = np.ones((batch, seq_len), np.float32)
    return tf.data.Dataset.from_tensors((ids[:, :-1], ids[:, 1:], weights)).repeat()


def seconds_per_step(step: Callable, iterator: Any, steps: int) -> float:
    """Wall seconds per step over `steps` steps, each step's sums read back."""
    start = time.perf_counter()
    for _ in range(steps):
        _ = [float(x) for x in step(iterator)]
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", default="64", help="batch sizes, comma-separated")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--cells", default="gru,lstm")
    parser.add_argument("--threads", default="0,0", help="intra,inter op threads")
    parser.add_argument(
        "--ways", default="plain,xla", help="of plain, xla, unroll, split-gates (implementation 1)"
    )
    parser.add_argument("--data", default="midi_corpus", help="folder for tokens per note")
    parser.add_argument("--cache-dir", default=None, help="prepare's cache (default: usual)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the code")
    args = parser.parse_args()
    intra, inter = (int(n) for n in args.threads.split(","))
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    size = 512 if args.quick else 2048
    if args.quick:
        args.steps, args.repeats, args.seq_len = 2, 1, 16
    print(f"load average before: {open('/proc/loadavg').read().split()[:3]}; cores "
          f"{os.cpu_count()}; threads intra,inter {intra},{inter}")  # fmt: skip
    layout = distribute.setup("none", "cpu")
    ways = []
    with layout.placement():
        for cell in args.cells.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                config = RunConfig().with_flat(
                    {"cell": cell, "encoding": "remi", "controls": True,
                     "batch_size": batch, "seq_len": args.seq_len}
                )  # fmt: skip
                vocab = len(get_encoding(config.encoding).vocab)
                for way in args.ways.split(","):
                    keras.utils.set_random_seed(0)
                    model, optimizer = build_model_and_optimizer(config, vocab, layout)
                    for rnn in model.recurrent:  # Keras reads both when it traces the call
                        rnn.unroll = way == "unroll"
                        rnn.cell.implementation = 1 if way == "split-gates" else 2
                    jit = way == "xla"
                    step = make_train_step(model, optimizer, layout.strategy, jit_compile=jit)
                    iterator = iter(constant_batch(batch, args.seq_len, vocab))
                    seconds_per_step(step, iterator, 2)  # trace, compile
                    flops = step_flops(config.model, vocab, batch * args.seq_len)
                    label = f"{cell} b{batch} {way}"
                    ways.append((label, step, iterator, flops, batch * args.seq_len, []))
        peaks = []
        for r in range(args.repeats):
            peaks.append(matmul_rates(size, rounds=3 if args.quick else 5)["tensorflow"])
            for k in range(len(ways)):
                label, step, iterator, flops, tokens, times = ways[(r + k) % len(ways)]
                times.append(seconds_per_step(step, iterator, args.steps))
                print(f"repeat {r + 1}: {label} {times[-1] * 1e3:.0f} ms/step", flush=True)
        peak = max(peaks)
    print(f"matmul peak (TensorFlow, float32 {size}^2): {peak / 1e9:.1f} GFLOP/s")
    config = RunConfig().with_flat({"encoding": "remi", "controls": True})
    per_note, _ = music_ratios(config, training_arrays(args, config))
    print(f"tokens per note: {per_note:.2f} (remi + controls, training files of {args.data})")
    print("| way | ms/step | tokens/s | notes/s | GFLOP/s | share of matmul peak |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, _, _, flops, tokens, times in ways:
        t = statistics.median(times)
        print(f"| {label} | {t * 1e3:.0f} | {tokens / t:,.0f} | {tokens / t / per_note:,.0f} | "
              f"{flops / t / 1e9:.1f} | {flops / t / peak:.1%} |")  # fmt: skip
    print(f"load average after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
