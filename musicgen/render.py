"""MIDI -> audio: a SoundFont synthesizer installed by pip, FluidSynth where asked for.

The one module that knows the synthesizers. `synthesize(midi bytes)` gives the samples
(float32 [frames, 2] in -1..1) and their rate; `render_wav(MIDI file, WAV file)` writes
them as 16-bit stereo PCM (`write_wav`). Two synthesizers:

- "builtin" (the default): RustySynth through the `midirenderer` wheel (MIT; Rust,
  no system library, wheels for Linux, macOS and Windows), at `SAMPLE_RATE` Hz. It plays
  the file through its end; `midi_io.with_silence_after` first adds `TAIL_SECONDS`, so a
  WAV lasts the music plus that release tail. Channel 10 plays the General MIDI drum
  kit (bank 128), every other channel the program its program change names.
- "fluidsynth": the `fluidsynth` command-line program where it is installed (never
  required); it adds its own release tail.

The soundfont (`find_soundfont`): the user's `--soundfont`, else the General MIDI
TimGM6mb.sf2 that the pretty_midi wheel installs (GPL-2.0, Tim Brechbill; see README),
else one a system package installed. What is missing is a `RenderUnavailableError`
(a `UserError`) whose one line says how to get it; a file that is not MIDI is a
`UserError`.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from musicgen.atomic import atomic_write
from musicgen.errors import UsageError, UserError
from musicgen.score import MusicError

SYNTHS = ("builtin", "fluidsynth")
SAMPLE_RATE = 48_000  # Hz; the builtin synthesizer's rate (RustySynth's default)
TAIL_SECONDS = 1.0  # silence after the music for the last notes' release
BUNDLED_SOUNDFONT = "TimGM6mb.sf2"  # General MIDI, inside the pretty_midi package
INSTALL_HINT = "install it with `sudo apt-get install fluidsynth`"
SOUNDFONT_PLACES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM2-2.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
)


class RenderUnavailableError(UserError):
    """A synthesizer or a soundfont is missing or unusable; the message says what to do."""


# ----------------------------------------------------------------------------- soundfont


def bundled_soundfont() -> Path | None:
    """pretty_midi's TimGM6mb.sf2 (found without importing pretty_midi), or None."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / BUNDLED_SOUNDFONT
    return path if path.is_file() else None


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """The given soundfont (it must exist and be a SoundFont 2 file), else pretty_midi's
    General MIDI one, else the first one a system package installed."""
    if soundfont is not None:
        path = Path(soundfont)
        if not path.is_file():
            raise RenderUnavailableError(f"soundfont not found: {soundfont}")
        with open(path, "rb") as handle:
            head = handle.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise RenderUnavailableError(f"{soundfont} is not a SoundFont 2 (.sf2) file")
        return path
    for place in (bundled_soundfont(), *map(Path, SOUNDFONT_PLACES)):
        if place is not None and place.is_file():
            return place
    raise RenderUnavailableError(
        "no General MIDI soundfont found (pretty_midi's TimGM6mb.sf2 is missing): "
        "reinstall pretty_midi with pip, or pass --soundfont FILE.sf2"
    )


def check_available(soundfont: str | Path | None = None, synth: str = "builtin") -> Path:
    """The soundfont to use; RenderUnavailableError when `synth` or a soundfont is
    missing (call it before rendering anything)."""
    if synth not in SYNTHS:
        raise UsageError(f"unknown synthesizer {synth!r}: choose from {', '.join(SYNTHS)}")
    if synth == "fluidsynth":
        find_fluidsynth()
    elif importlib.util.find_spec("midirenderer") is None:
        raise RenderUnavailableError(
            "the synthesizer is not installed: pip install midirenderer (or pip install -e .)"
        )
    return find_soundfont(soundfont)


def find_fluidsynth() -> str:
    """Path of the fluidsynth program, or RenderUnavailableError."""
    program = shutil.which("fluidsynth")
    if program is None:
        raise RenderUnavailableError(f"fluidsynth is not installed: {INSTALL_HINT}")
    return program


# ----------------------------------------------------------------------------- synthesis


def synthesize(
    midi: bytes,
    soundfont: str | Path | None = None,
    *,
    synth: str = "builtin",
    name: str = "MIDI data",
) -> tuple[np.ndarray, int]:
    """The bytes of a MIDI file as audio: (samples float32 [frames, 2] in -1..1, rate Hz).

    builtin: SAMPLE_RATE Hz, frames = (the file's length + TAIL_SECONDS) x rate.
    `name` names the music in error messages. Raises RenderUnavailableError (no
    synthesizer or soundfont, or the soundfont is unusable) or UserError (not MIDI).
    """
    from musicgen.midi_io import with_silence_after

    font = check_available(soundfont, synth)
    try:
        padded = with_silence_after(midi, TAIL_SECONDS if synth == "builtin" else 0.0)
    except MusicError as exc:
        raise UserError(f"{name}: {exc}") from None
    wav = _builtin(font, padded, name) if synth == "builtin" else _fluidsynth(font, padded, name)
    return read_wav(wav)


def _builtin(font: Path, midi: bytes, name: str) -> bytes:
    """WAV bytes of RustySynth's rendering (16-bit stereo at SAMPLE_RATE)."""
    import midirenderer

    try:
        return midirenderer.render_wave_from(font.read_bytes(), midi)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a Rust panic is a BaseException (pyo3)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if "soundfont" in reason.lower():
            raise RenderUnavailableError(f"cannot use soundfont {font}: {reason}") from None
        raise UserError(f"{name}: the synthesizer failed: {reason}") from None


def _fluidsynth(font: Path, midi: bytes, name: str, timeout: float = 600.0) -> bytes:
    """WAV bytes of `fluidsynth -ni -F OUT.wav -r RATE SOUNDFONT IN.mid` (no shell)."""
    program = find_fluidsynth()
    with tempfile.TemporaryDirectory(prefix="musicgen-render-") as folder:
        midi_path, wav_path = Path(folder) / "in.mid", Path(folder) / "out.wav"
        midi_path.write_bytes(midi)
        command = [program, "-ni", "-F", str(wav_path), "-r", str(SAMPLE_RATE), str(font)]
        try:
            done = subprocess.run(
                [*command, str(midi_path)], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise UserError(f"fluidsynth took more than {timeout:g} s on {name}") from None
        if done.returncode != 0 or not wav_path.is_file() or wav_path.stat().st_size == 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            reason = lines[-1] if lines else f"exit code {done.returncode}"
            raise UserError(f"fluidsynth could not render {name}: {reason}")
        return wav_path.read_bytes()


# ----------------------------------------------------------------------------- WAV files


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV bytes -> (float32 [frames, channels] in -1..1, rate Hz)."""
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2:
            raise UserError(f"expected 16-bit audio, got {8 * w.getsampwidth()}-bit")
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        samples = frames.reshape(-1, w.getnchannels()).astype(np.float32) / 32768.0
        return samples, w.getframerate()


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write samples (float [frames] or [frames, channels], -1..1; clipped there) as a
    16-bit PCM WAV at `sample_rate` Hz, atomically (never a partial file)."""
    scaled = np.array(samples, dtype=np.float32, ndmin=1) * np.float32(32768.0)
    scaled = scaled[:, None] if scaled.ndim == 1 else scaled
    np.clip(np.rint(scaled, out=scaled), -32768, 32767, out=scaled)
    pcm = scaled.astype("<i2")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, durable=False) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return path


def render_wav(
    midi_path: str | Path,
    wav_path: str | Path,
    soundfont: str | Path | None = None,
    *,
    synth: str = "builtin",
) -> Path:
    """Synthesize a MIDI file to a 16-bit stereo WAV (`synthesize`, `write_wav`).

    Raises RenderUnavailableError (no synthesizer or soundfont) or UserError (the MIDI
    file is missing or unreadable); a failed render never leaves a partial file.
    """
    midi_path = Path(midi_path)
    if not midi_path.is_file():
        raise UserError(f"MIDI file not found: {midi_path}")
    samples, rate = synthesize(midi_path.read_bytes(), soundfont, synth=synth, name=midi_path.name)
    return write_wav(wav_path, samples, rate)


def wav_targets(midi_paths: list[Path], out: str | Path | None = None) -> list[Path]:
    """Where `musicgen render` writes each file's WAV: beside it, or OUT/NAME.wav.
    UsageError when two inputs would write one file."""
    targets = [
        (Path(out) / p.name if out is not None else p).with_suffix(".wav") for p in midi_paths
    ]
    seen: dict[Path, Path] = {}
    for midi, target in zip(midi_paths, targets, strict=True):
        if target.resolve() in seen:
            raise UsageError(f"{seen[target.resolve()]} and {midi} would both write {target}")
        seen[target.resolve()] = midi
    return targets


def wav_seconds(path: str | Path) -> float:
    """Length of a WAV file in seconds."""
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()
