"""Generation speed: the window-re-predict recipe, our Keras step and our NumPy step.

One untrained checkpoint (default 2 x 256 LSTM, remi vocabulary, Glorot-random
weights) is written with checkpoint.py's own functions into a temporary folder, and
every method runs on its weights in this process, one after the other:

- "window": the common recipe: `model.predict` over the last `--window` tokens for
  every generated token, sampling from the last position's logits;
- "keras step": musicgen's sampling loop (`generate.sample_ids`) on the Keras
  `MusicRNN`: one compiled `tf.function(model.step)` call per token for the whole
  batch, carrying the recurrent states, then the grammar masks and `sample_next`;
- "numpy step": the same loop on `npmodel.NumpyRNN` (the default engine).

Tokens/s counts generated tokens over all pieces of the batch, best of `--rounds`
timed rounds; the ratio is against the window recipe at the same batch. Then the whole command
`musicgen generate --num 4 --bars 32` runs in a fresh process per engine, so its
wall time includes Python start-up, imports, loading and writing the MIDI files.
Prints markdown tables. Run from the repository root:

    python benchmarks/bench_generate.py [--quick] [--units 256 --layers 2 --cell lstm]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from musicgen.runtime import import_tensorflow

tf = import_tensorflow()

from musicgen import checkpoint as ckpt  # noqa: E402
from musicgen import generate as gen  # noqa: E402
from musicgen.config import ModelConfig, RunConfig, SampleConfig  # noqa: E402
from musicgen.encoding.base import BOS, get_encoding  # noqa: E402
from musicgen.errors import UserError  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from musicgen.sampling import sample_next  # noqa: E402


def make_checkpoint(folder: Path, model_config: ModelConfig) -> Path:
    """A checkpoint folder with config.json and best.weights.h5 of an untrained model."""
    config = RunConfig(model=model_config)
    vocab_size = len(get_encoding(config.encoding).vocab)
    model = build_model(config.model, vocab_size)
    ckpt.save_config(folder, config, vocab_size, {"data_dir": "random weights"})
    ckpt.save_weights(folder, model, "best")
    return folder


def best_rate(run, tokens: int, rounds: int) -> float:
    """Tokens/s of the fastest of `rounds` calls of `run()`, each making `tokens`
    (the best round is the least disturbed by other work on the machine)."""
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return tokens / min(seconds)


def bench_loop(model, encoding, batch: int, steps: int, rounds: int) -> float:
    """Tokens/s of generate's sampling loop (either engine): `steps` tokens for each
    of `batch` pieces whose grammars never finish."""

    def run(n: int) -> None:
        grammars = [encoding.grammar(1_000_000) for _ in range(batch)]
        for g in grammars:
            g.advance(BOS)
        rngs = [np.random.default_rng([0, i]) for i in range(batch)]
        try:
            gen.sample_ids(model, grammars, [BOS], SampleConfig(), n, rngs)
        except UserError:  # the step cap: every piece ran exactly n steps
            pass

    run(5)  # trace and warm up
    return best_rate(lambda: run(steps), batch * steps, rounds)


def bench_window(model, vocab_size: int, batch: int, steps: int, window: int, rounds: int) -> float:
    """Tokens/s of model.predict over the last `window` tokens per generated token."""
    rngs = [np.random.default_rng([0, i]) for i in range(batch)]
    masks = np.ones((batch, vocab_size), dtype=bool)
    ids = np.full((batch, window), BOS, dtype=np.int32)

    def run(n: int) -> None:
        nonlocal ids
        for _ in range(n):
            logits = model.predict(ids[:, -window:], verbose=0)[:, -1, :]
            chosen = sample_next(logits, masks, SampleConfig(), rngs)
            ids = np.concatenate([ids, chosen[:, None].astype(np.int32)], axis=1)

    run(2)
    return best_rate(lambda: run(steps), batch * steps, rounds)


def bench_command(folder: Path, engine: str, num: int, bars: int, repeats: int) -> float:
    """Best wall seconds of `musicgen generate` in a fresh process (start-up included)."""
    best = float("inf")
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "musicgen", "generate", "--checkpoint", str(folder)]
        command += ["--out", out, "--num", str(num), "--bars", str(bars)]
        command += ["--engine", engine, "--force", "--quiet"]
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(command, check=True)
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
    parser.add_argument("--steps", type=int, default=400, help="tokens per piece, keras step")
    parser.add_argument("--numpy-steps", type=int, default=2000, help="tokens per piece, numpy")
    parser.add_argument("--window-steps", type=int, default=20, help="tokens, window recipe")
    parser.add_argument("--window", type=int, default=100, help="window length (tokens)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--num", type=int, default=4, help="--num of the timed command")
    parser.add_argument("--bars", type=int, default=32, help="--bars of the timed command")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per rate (best)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per command (best)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.numpy_steps, args.window_steps = 100, 300, 5
        args.rounds, args.repeats = 1, 1

    encoding = get_encoding(RunConfig().encoding)
    config = ModelConfig(cell=args.cell, layers=args.layers, units=args.units)
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(
        f"{args.layers}x{args.units} {args.cell.upper()}, embedding {config.embedding_dim}, "
        f"vocab {len(encoding.vocab)}, TensorFlow on {device}, {os.cpu_count()} CPUs, "
        f"OPENBLAS_NUM_THREADS={threads}, load average {os.getloadavg()[0]:.1f} at start\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_checkpoint(Path(tmp) / "random", config)
        keras_model = ckpt.load_checkpoint(folder, engine="keras").model
        numpy_model = ckpt.load_checkpoint(folder, engine="numpy").model
        window_label = f"`model.predict` over {args.window} tokens, per token"
        print("| method | batch | tokens/s | vs window |")
        print("|---|---:|---:|---:|")
        for batch in args.batches:
            vocab = len(encoding.vocab)
            window = bench_window(
                keras_model, vocab, batch, args.window_steps, args.window, args.rounds
            )
            keras = bench_loop(keras_model, encoding, batch, args.steps, args.rounds)
            numpy = bench_loop(numpy_model, encoding, batch, args.numpy_steps, args.rounds)
            for label, speed in [
                (window_label, window),
                ("musicgen loop, Keras step (`tf.function`)", keras),
                ("musicgen loop, NumPy step (default)", numpy),
            ]:
                print(f"| {label} | {batch} | {speed:.1f} | {speed / window:.0f}x |")

        command = f"musicgen generate --num {args.num} --bars {args.bars}"
        print(f"\n| whole command (fresh process, best of {args.repeats}) | engine | wall s |")
        print("|---|---|---:|")
        for engine in ("numpy", "keras"):
            seconds = bench_command(folder, engine, args.num, args.bars, args.repeats)
            print(f"| `{command}` | {engine} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
