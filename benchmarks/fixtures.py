"""What several benchmarks share: checkpoints of untrained models, the band checkpoint
or its stand-in, a 64-bar song built in code, and timing a command in a fresh process.

Not a benchmark itself (run_all.py runs only `bench_*.py`). Imports TensorFlow only
when a checkpoint has to be written. Importing it puts this checkout first on
sys.path, so that a script importing it (before musicgen) measures the same musicgen
in its own process as in the fresh `python -m musicgen` processes it starts from the
repository root, whatever copy of musicgen is installed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))

from musicgen.config import EncodingConfig, ModelConfig, RunConfig  # noqa: E402
from musicgen.score import DRUM_PROGRAM, Note, Part, Score  # noqa: E402

BAND = ROOT / "checkpoints" / "band"  # the bundled band model, once it is copied there
# The parts the stand-in band checkpoint claims to know, as config.json `data.programs`
# ({program: pieces}): piano, clean and overdriven guitar, fingered bass, strings, drums.
# Made-up counts (an untrained model knows nothing); accompany and --instruments need some.
STAND_IN_PROGRAMS = {0: 30, 27: 20, 29: 25, 33: 60, 48: 15, DRUM_PROGRAM: 100}
STAND_IN = "band-stand-in"  # the folder name of the untrained stand-in
BUNDLED_MODEL = ModelConfig(cell="gru", layers=2, units=256)  # the bundled models' size


def encoding_config(name: str) -> EncodingConfig:
    """The encoding of the bundled models: `name` ("remi", "tracks" or "steps") with controls."""
    return EncodingConfig(name=name, controls=True)


def make_checkpoint(
    folder: Path,
    model: ModelConfig = BUNDLED_MODEL,
    encoding: EncodingConfig | None = None,
    programs: dict[int, int] | None = None,
) -> Path:
    """Write a checkpoint of an untrained model (Glorot-random weights) into `folder`:
    config.json (with `data.programs` when given) and best.weights.h5."""
    from musicgen.runtime import import_tensorflow

    import_tensorflow()
    from musicgen import checkpoint as ckpt
    from musicgen.encoding import get_encoding
    from musicgen.model import build_model

    config = RunConfig(encoding=encoding or encoding_config("tracks"), model=model)
    vocab_size = len(get_encoding(config.encoding).vocab)
    data: dict = {"data_dir": "random weights"}
    if programs:
        data["programs"] = {str(p): n for p, n in programs.items()}
    ckpt.save_config(folder, config, vocab_size, data)
    ckpt.save_weights(folder, build_model(config.model, vocab_size), "best")
    return folder


def is_stand_in(folder: Path) -> bool:
    """Whether `folder` is band_checkpoint's untrained stand-in."""
    return folder.name == STAND_IN


def band_checkpoint(tmp: Path, folder: Path = BAND) -> tuple[Path, str]:
    """(checkpoint folder, what it is): `folder` (default checkpoints/band) when it holds
    a checkpoint, else an untrained 2 x 256 GRU tracks checkpoint (controls on,
    STAND_IN_PROGRAMS) written under `tmp`."""
    if (folder / "config.json").exists():
        return folder, f"{shown(folder)} (trained band model)"
    stand_in = make_checkpoint(tmp / STAND_IN, programs=STAND_IN_PROGRAMS)
    label = (
        f"{shown(folder)} is absent: an UNTRAINED 2 x 256 GRU tracks checkpoint (random "
        "weights, controls on) in a temporary folder stands in; its pieces are noise, "
        "so token counts, and so times, differ from a trained model's"
    )
    return stand_in, label


def shown(folder: Path) -> str:
    """`folder` relative to the repository root when it lies inside, else as given."""
    try:
        return str(folder.resolve().relative_to(ROOT))
    except ValueError:
        return str(folder)


def band_song(bars: int = 64, tempo: float = 120.0) -> Score:
    """A 4/4 song of `bars` bars built in code: a melody (eighths and quarters, C major),
    string chords (I-V-vi-IV, one triad a bar) and a bass (the root on every beat), on
    three named tracks; about 13 notes a bar."""
    progression = [(60, 64, 67), (55, 59, 62), (57, 60, 64), (53, 57, 60)]  # C G Am F
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    melody, chords, bass = [], [], []
    for bar in range(bars):
        start = 4.0 * bar
        triad = progression[bar % 4]
        chords += [Note(p, start, start + 4.0, 70) for p in triad]
        bass += [Note(triad[0] - 24, start + b, start + b + 1.0, 90) for b in range(4)]
        # rhythm: two eighths, a quarter, two eighths, a quarter (6 notes a bar)
        for k, (offset, length) in enumerate(
            [(0, 0.5), (0.5, 0.5), (1, 1), (2, 0.5), (2.5, 0.5), (3, 1)]
        ):
            pitch = scale[(bar * 3 + k * 2) % len(scale)]
            melody.append(Note(pitch, start + offset, start + offset + length, 80 + 4 * (k % 3)))
    return Score(
        parts=[Part(0, melody, "Melody"), Part(48, chords, "Strings"), Part(33, bass, "Bass")],
        tempos=[(0.0, tempo)],
        time_signatures=[(0.0, 4, 4)],
        end=4.0 * bars,
    )


def write_song(path: Path, bars: int = 64) -> Path:
    """`band_song(bars)` written as a type-1 MIDI file at `path`."""
    from musicgen.midi_io import write_midi

    write_midi(band_song(bars), path)
    return path


def command_seconds(args: list[str], repeats: int) -> float:
    """Best wall seconds of `python -m musicgen ARGS` in a fresh process (Python
    start-up, imports, loading and writing included), over `repeats` runs; its stdout
    is dropped, its stderr shown."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        command = [sys.executable, "-m", "musicgen", *args]
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best
