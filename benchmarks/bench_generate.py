"""Generation speed: our state-carrying step versus re-running a window per token.

Both sides use the same untrained network (default 2 x 256 LSTM, remi vocabulary)
in one process, measured one after the other:

- "step": musicgen's sampling loop (`generate._sample`): one compiled
  `tf.function(model.step)` call per token for the whole batch, carrying the LSTM
  states, then the grammar masks and `sample_next`;
- "window": the common recipe: `model.predict` over the last `--window` tokens for
  every generated token, sampling from the last position's logits.

Tokens/s counts generated tokens over all pieces of the batch. Run from the
repository root:

    python benchmarks/bench_generate.py [--units 256 --layers 2 --steps 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from musicgen.runtime import import_tensorflow

tf = import_tensorflow()

from musicgen import generate as gen  # noqa: E402
from musicgen.config import EncodingConfig, ModelConfig, SampleConfig  # noqa: E402
from musicgen.encoding.base import BOS, get_encoding  # noqa: E402
from musicgen.errors import UserError  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from musicgen.sampling import sample_next  # noqa: E402


def bench_step(model, encoding, batch: int, steps: int) -> float:
    """Tokens/s of generate's loop: `steps` tokens for each of `batch` pieces."""

    def run(n: int) -> None:
        grammars = [encoding.grammar(1_000_000) for _ in range(batch)]  # never done
        for g in grammars:
            g.advance(BOS)
        rngs = [np.random.default_rng([0, i]) for i in range(batch)]
        try:
            gen._sample(model, grammars, [BOS], SampleConfig(), rngs, n)
        except UserError:  # the step cap: every piece ran exactly n steps
            pass

    run(5)  # trace and warm up
    start = time.perf_counter()
    run(steps)
    return batch * steps / (time.perf_counter() - start)


def bench_window(model, vocab_size: int, batch: int, steps: int, window: int) -> float:
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
    start = time.perf_counter()
    run(steps)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
    parser.add_argument("--steps", type=int, default=400, help="tokens per piece, step loop")
    parser.add_argument("--window-steps", type=int, default=20, help="tokens, window recipe")
    parser.add_argument("--window", type=int, default=100, help="window length (tokens)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()

    encoding = get_encoding(EncodingConfig())
    config = ModelConfig(cell=args.cell, layers=args.layers, units=args.units)
    model = build_model(config, len(encoding.vocab))
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    print(f"{args.layers}x{args.units} {args.cell.upper()}, vocab {len(encoding.vocab)}, {device}")
    print(f"{'method':<34}{'batch':>6}{'tokens/s':>12}{'speedup':>10}")
    for batch in args.batches:
        window = bench_window(model, len(encoding.vocab), batch, args.window_steps, args.window)
        step = bench_step(model, encoding, batch, args.steps)
        print(
            f"{f'model.predict over {args.window} tokens':<34}{batch:>6}{window:>12.1f}{1:>10.1f}"
        )
        print(f"{'musicgen step (tf.function)':<34}{batch:>6}{step:>12.1f}{step / window:>10.1f}")


if __name__ == "__main__":
    main()
