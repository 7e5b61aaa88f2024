"""Generation speed: the window-re-predict recipe, our Keras step and our NumPy step.

Untrained checkpoints (the bundled models' network, 2 x 256 GRU, with the remi, tracks
and steps vocabularies, controls on, Glorot-random weights) are written with
checkpoint.py's own functions into a temporary folder, and every method runs on
their weights in this process, one after the other:

- "window": the common recipe: `model.predict` over the last `--window` tokens for
  every generated token, sampling from the last position's logits;
- "keras step": musicgen's sampling loop (`generate.sample_ids`) on the Keras
  `MusicRNN`: one compiled `tf.function(model.step)` call per token for the whole
  batch, carrying the recurrent states, then the grammar masks and `sample_next`;
- "numpy step": the same loop on `npmodel.NumpyRNN` (the default engine).

Tokens/s counts generated tokens over all pieces of the batch, best of `--rounds`
timed rounds; the ratio is against the window recipe at the same batch (on the
`--encoding` vocabulary, steps by default). Next to it, the NumPy step's tokens/s on
the remi, tracks and steps vocabularies at the same size (the larger the vocabulary,
the larger its output projection).

Then whole commands in a fresh process per engine, so their wall time includes Python
start-up, imports, loading and writing the MIDI files: `musicgen generate --num 4
--bars 32` on the untrained `--encoding` checkpoint, and `musicgen generate
--checkpoint checkpoints/band --num 4 --bars 32` (or `--band FOLDER`; when it does not exist,
an untrained 2 x 256 GRU tracks checkpoint stands in, and the output says so); the
band command's in-process call (`musicgen.generate.generate`, modules imported) and
the bare start-up (`python -m musicgen --version`) are shown beside it. Target (issues
14, 15): the band command, whole, under 1 s on the 2-core CPU. Run from the
repository root:

    python benchmarks/bench_generate.py [--quick] [--units 256 --layers 2 --cell gru]
        [--encoding steps] [--band FOLDER] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from fixtures import BAND, band_checkpoint, command_seconds, encoding_config, is_stand_in, shown
from fixtures import make_checkpoint as write_checkpoint
from run_all import Report

from musicgen.runtime import import_tensorflow

tf = import_tensorflow()

from musicgen import checkpoint as ckpt  # noqa: E402
from musicgen import generate as gen  # noqa: E402
from musicgen.config import ModelConfig, SampleConfig  # noqa: E402
from musicgen.encoding import BOS, REGISTRY, Encoding, get_encoding  # noqa: E402
from musicgen.errors import UserError  # noqa: E402
from musicgen.sampling import sample_next  # noqa: E402

TARGET_SECONDS = 1.0  # issues 14 and 15: generate --num 4 --bars 32 on the band model
BAR_ENCODINGS = tuple(name for name, cls in REGISTRY.items() if cls.counts_bars)  # timed here


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


def generate_command(folder: Path, engine: str, num: int, bars: int, repeats: int) -> float:
    """Best wall seconds of `musicgen generate` in a fresh process (start-up included)."""
    with tempfile.TemporaryDirectory() as out:
        args = ["generate", "--checkpoint", str(folder), "--out", out, "--num", str(num)]
        args += ["--bars", str(bars), "--engine", engine, "--force", "--quiet"]
        return command_seconds(args, repeats)


def generate_call(folder: Path, num: int, bars: int, repeats: int) -> tuple[float, int]:
    """(best wall seconds of `generate.generate` in this process, loading and writing
    included, after one untimed call; tokens the untimed call sampled)."""
    with tempfile.TemporaryDirectory() as out:

        def run() -> list:
            return gen.generate(folder, out, num=num, bars=bars, force=True)

        tokens = sum(f.tokens for f in run())
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
    return best, tokens


def methods_table(
    report: Report, args: argparse.Namespace, folder: Path, encoding: Encoding
) -> None:
    """Tokens/s of the window recipe, the Keras step and the NumPy step, per batch."""
    keras_model = ckpt.load_checkpoint(folder, engine="keras").model
    numpy_model = ckpt.load_checkpoint(folder, engine="numpy").model
    vocab = len(encoding.vocab)
    table = report.table(
        f"Sampling loop, {args.encoding} vocabulary ({vocab} tokens)",
        ["method", "batch", "tokens/s", "vs window"],
    )
    for batch in args.batches:
        window = bench_window(
            keras_model, vocab, batch, args.window_steps, args.window, args.rounds
        )
        keras = bench_loop(keras_model, encoding, batch, args.steps, args.rounds)
        numpy = bench_loop(numpy_model, encoding, batch, args.numpy_steps, args.rounds)
        for label, speed in [
            (f"`model.predict` over {args.window} tokens, per token", window),
            ("musicgen loop, Keras step (`tf.function`)", keras),
            ("musicgen loop, NumPy step (default)", numpy),
        ]:
            table.add(label, batch, speed, f"{speed / window:.0f}x")


def vocabularies_table(report: Report, args: argparse.Namespace, folders: dict[str, Path]) -> None:
    """The NumPy step's tokens/s on each vocabulary, side by side, per batch."""
    models = {n: ckpt.load_checkpoint(f, engine="numpy").model for n, f in folders.items()}
    encodings = {n: get_encoding(encoding_config(n)) for n in folders}
    sizes = ", ".join(f"{n} {len(e.vocab)}" for n, e in encodings.items())
    table = report.table(
        f"NumPy step by vocabulary (tokens: {sizes})",
        ["batch", *(f"{n} tokens/s" for n in folders), "tracks / remi", "steps / remi"],
    )
    for batch in args.batches:
        rates = [
            bench_loop(models[n], encodings[n], batch, args.numpy_steps, args.rounds)
            for n in folders
        ]
        table.add(batch, *rates, f"{rates[1] / rates[0]:.2f}", f"{rates[2] / rates[0]:.2f}")


def commands_table(report: Report, args: argparse.Namespace, folder: Path, band: Path) -> float:
    """Whole `generate` commands in fresh processes (and the band one in this process);
    returns the band command's best wall seconds with the numpy engine."""
    table = report.table(
        "Whole commands (fresh process unless said)", ["command", "engine", "wall s"]
    )
    startup = command_seconds(["--version"], args.repeats)
    table.add("`python -m musicgen --version` (start-up alone)", "-", startup)
    size = f"--num {args.num} --bars {args.bars}"
    for engine in ("numpy", "keras"):
        seconds = generate_command(folder, engine, args.num, args.bars, args.repeats)
        table.add(f"`musicgen generate {size}` (untrained {args.encoding})", engine, seconds)
    where = "STAND-IN (untrained, see above)" if is_stand_in(band) else shown(band)
    call, tokens = generate_call(band, args.num, args.bars, args.repeats)
    table.add(f"in-process `generate.generate`, {where}, {size} ({tokens} tokens)", "numpy", call)
    band_seconds = {}
    for engine in ("numpy", "keras"):
        band_seconds[engine] = generate_command(band, engine, args.num, args.bars, args.repeats)
        table.add(f"`musicgen generate --checkpoint {where} {size}`", engine, band_seconds[engine])
    return band_seconds["numpy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cell", default="gru", choices=["lstm", "gru"])
    parser.add_argument("--encoding", default="steps", choices=BAR_ENCODINGS)
    parser.add_argument("--steps", type=int, default=400, help="tokens per piece, keras step")
    parser.add_argument("--numpy-steps", type=int, default=2000, help="tokens per piece, numpy")
    parser.add_argument("--window-steps", type=int, default=20, help="tokens, window recipe")
    parser.add_argument("--window", type=int, default=100, help="window length (tokens)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--band", type=Path, default=BAND, help="band checkpoint folder")
    parser.add_argument("--num", type=int, default=4, help="--num of the timed command")
    parser.add_argument("--bars", type=int, default=32, help="--bars of the timed command")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per rate (best)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per command (best)")
    parser.add_argument("--quick", action="store_true", help="fewer steps, rounds and bars")
    parser.add_argument("--json", help="also write the report here (for run_all.py)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.numpy_steps, args.window_steps = 20, 60, 2
        args.rounds, args.repeats, args.bars = 1, 1, 4

    config = ModelConfig(cell=args.cell, layers=args.layers, units=args.units)
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    report = Report("Generation: the state-carrying step vs a window per token")
    with tempfile.TemporaryDirectory() as tmp:
        folders = {
            name: write_checkpoint(Path(tmp) / name, config, encoding_config(name))
            for name in BAR_ENCODINGS
        }
        band, band_label = band_checkpoint(Path(tmp), args.band)
        report.notes += [
            f"{args.layers}x{args.units} {args.cell.upper()}, embedding {config.embedding_dim}, "
            f"untrained, controls on; TensorFlow on {device}, {os.cpu_count()} CPUs, "
            f"OPENBLAS_NUM_THREADS={threads}, load average {os.getloadavg()[0]:.1f} at start",
            f"band command's checkpoint: {band_label}",
            f"rates: best of {args.rounds} rounds; commands: best of {args.repeats} fresh "
            "processes; in-process call: best of as many after one untimed call",
        ]
        folder = folders[args.encoding]
        methods_table(report, args, folder, get_encoding(encoding_config(args.encoding)))
        vocabularies_table(report, args, folders)
        seconds = commands_table(report, args, folder, band)
    report.target(
        f"generate {'band STAND-IN (untrained)' if is_stand_in(band) else 'band'} --num {args.num} "
        f"--bars {args.bars}, whole command",
        f"{seconds:.2f} s",
        f"< {TARGET_SECONDS:g} s",
        seconds < TARGET_SECONDS,
    )
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
