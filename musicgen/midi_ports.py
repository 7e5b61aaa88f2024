"""System MIDI ports for `musicgen live`: the only module that opens them (mido with
the python-rtmidi backend).

Messages cross this boundary as plain tuples of MIDI bytes (`(0x90, 60, 100)`), so
the scheduler (`live.py`) and its tests never import mido and run against in-process
ports. `open_output(name)` opens the output port called `name` when the machine has
one, else makes a virtual port of that name that a DAW sees as an instrument input;
`open_input(name)` likewise for what a keyboard or a DAW (MIDI clock) sends.

Where no port can be made - python-rtmidi not installed, a container without the ALSA
sequencer (/dev/snd/seq), Windows without a loopback driver - `PortsUnavailableError`
says in one line what to install, or to play into a file with `--port none`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from musicgen.errors import UserError

BACKEND = "mido.backends.rtmidi"
DEFAULT_NAME = "musicgen"  # the virtual ports' name when none is given
FILE_HINT = "or play into a file with --port none --record FILE.mid"


class PortsUnavailableError(UserError):
    """This machine cannot open or make the MIDI port asked for (one line, with a fix)."""


class MidoOutput:
    """An output port: `send(bytes)` one message, `close()`."""

    def __init__(self, port: Any, mido: Any):
        self.port, self.mido, self.name = port, mido, port.name

    def send(self, message: Sequence[int]) -> None:
        self.port.send(self.mido.Message.from_bytes(list(message)))

    def close(self) -> None:
        self.port.close()


class MidoInput:
    """An input port: `receive()` gives the messages waiting (never blocks), `close()`."""

    def __init__(self, port: Any):
        self.port, self.name = port, port.name

    def receive(self) -> list[tuple[int, ...]]:
        return [tuple(message.bytes()) for message in self.port.iter_pending()]

    def close(self) -> None:
        self.port.close()


def open_output(name: str | None = None) -> MidoOutput:
    """The output port `name` (an existing one, else a new virtual port of that name;
    None: a virtual port called "musicgen"). PortsUnavailableError when impossible."""
    mido, backend = _backend()
    with _alsa_errors_quiet(), _unavailable("output"):
        known = backend.get_output_names()
        if name is not None and name in known:
            return MidoOutput(backend.open_output(name), mido)
        return MidoOutput(backend.open_output(name or DEFAULT_NAME, virtual=True), mido)


def open_input(name: str | None = None) -> MidoInput:
    """The input port `name` (an existing one, else a new virtual port of that name;
    None: a virtual port called "musicgen in"). PortsUnavailableError when impossible."""
    _, backend = _backend()
    with _alsa_errors_quiet(), _unavailable("input"):
        known = backend.get_input_names()
        if name is not None and name in known:
            return MidoInput(backend.open_input(name))
        return MidoInput(backend.open_input(name or f"{DEFAULT_NAME} in", virtual=True))


def _backend() -> tuple[Any, Any]:
    """(mido, its rtmidi backend, loaded); PortsUnavailableError without python-rtmidi."""
    import mido

    try:
        return mido, mido.Backend(BACKEND, load=True)
    except ImportError:
        raise PortsUnavailableError(
            f"MIDI ports need python-rtmidi: pip install python-rtmidi, {FILE_HINT}"
        ) from None


@contextlib.contextmanager
def _unavailable(kind: str) -> Iterator[None]:
    """Turn the backend's failures into PortsUnavailableError naming the fix."""
    try:
        yield
    except (OSError, NotImplementedError, RuntimeError) as exc:
        raise PortsUnavailableError(f"cannot open a MIDI {kind} port: {_advice(exc)}") from None


def _advice(exc: BaseException) -> str:
    """What to do, by platform and by what the backend said."""
    if sys.platform.startswith("linux") and not os.path.exists("/dev/snd/seq"):
        return (
            "this machine has no ALSA sequencer (/dev/snd/seq; a container usually has none): "
            f"load it with `sudo modprobe snd-seq` or run musicgen on the host, {FILE_HINT}"
        )
    if sys.platform == "win32":
        return (
            "Windows cannot make virtual ports: install a loopback driver (loopMIDI) and "
            f"pass its name with --port NAME, {FILE_HINT}"
        )
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{reason}; name an existing port with --port NAME, {FILE_HINT}"


@contextlib.contextmanager
def _alsa_errors_quiet() -> Iterator[None]:
    """Keep the ALSA library's own stderr lines (written by C code) out of the output
    while a port is opened; our one-line error says what went wrong."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured or replaced stderr
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
