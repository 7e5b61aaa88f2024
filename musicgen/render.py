"""MIDI -> WAV through the FluidSynth command-line program and a General MIDI soundfont.

`render_wav` runs `fluidsynth -ni -F OUT.wav -r RATE SOUNDFONT IN.mid` (no shell, no
audio device); `find_soundfont` looks in the places Debian/Ubuntu, Fedora, Arch and
Homebrew install one. A missing program or soundfont is a `RenderUnavailableError`
whose one line says how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from musicgen.atomic import atomic_write
from musicgen.errors import UserError

INSTALL_HINT = "install it with `sudo apt-get install fluidsynth fluid-soundfont-gm`"
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
    """FluidSynth or a soundfont is missing; the message says how to get it."""


def find_fluidsynth() -> str:
    """Path of the fluidsynth program, or RenderUnavailableError."""
    program = shutil.which("fluidsynth")
    if program is None:
        raise RenderUnavailableError(f"fluidsynth is not installed: {INSTALL_HINT}")
    return program


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """The given soundfont (must exist), else the first General MIDI one installed."""
    if soundfont is not None:
        path = Path(soundfont)
        if not path.is_file():
            raise RenderUnavailableError(f"soundfont not found: {soundfont}")
        return path
    for place in SOUNDFONT_PLACES:
        if Path(place).is_file():
            return Path(place)
    raise RenderUnavailableError(
        f"no General MIDI soundfont found: {INSTALL_HINT}, or pass --soundfont PATH"
    )


def render_wav(
    midi_path: str | Path,
    wav_path: str | Path,
    soundfont: str | Path | None = None,
    sample_rate: int = 44100,
    timeout: float = 600.0,
) -> Path:
    """Synthesize a MIDI file to a 16-bit stereo WAV at `sample_rate` Hz.

    The WAV lasts the MIDI's length plus FluidSynth's release tail (about a second).
    It is written to a temporary file beside `wav_path` and renamed, so a failed render
    never leaves a partial file. Raises RenderUnavailableError (no fluidsynth or no
    soundfont) or UserError (the MIDI file is missing or FluidSynth failed).
    """
    midi_path, wav_path = Path(midi_path), Path(wav_path)
    if not midi_path.is_file():
        raise UserError(f"MIDI file not found: {midi_path}")
    program, font = find_fluidsynth(), find_soundfont(soundfont)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_write(wav_path, durable=False) as tmp:
            command = [program, "-ni", "-F", str(tmp), "-r", str(sample_rate), str(font)]
            done = subprocess.run(
                [*command, str(midi_path)], capture_output=True, text=True, timeout=timeout
            )
            if done.returncode != 0 or os.path.getsize(tmp) == 0:
                lines = (done.stderr or done.stdout).strip().splitlines()
                reason = lines[-1] if lines else f"exit code {done.returncode}"
                raise UserError(f"fluidsynth could not render {midi_path.name}: {reason}")
    except subprocess.TimeoutExpired:
        raise UserError(f"fluidsynth took more than {timeout:g} s on {midi_path.name}") from None
    return wav_path
