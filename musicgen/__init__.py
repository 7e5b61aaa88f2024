"""musicgen: learn the style of a MIDI folder with a stacked LSTM/GRU, write new MIDI files.

The Python API (musicgen/api.py; the command line is built on it):

    import musicgen
    model = musicgen.load("checkpoints/bach")          # any checkpoint folder
    pieces = model.generate(num=4, bars=16, seed=1)    # list of pretty_midi.PrettyMIDI
    model = musicgen.train("my_midi/", out="checkpoints/mine", epochs=5)
    report = musicgen.prepare("my_midi/")
    samples, rate = musicgen.synthesize(pieces[0])     # audio: float32 [frames, 2], Hz

`load`, `train`, `prepare`, `synthesize`, `write_wav`, `Model` and `PrepareReport` are
imported on first use, so `import musicgen` stays light (no TensorFlow; training imports
it when it starts). (`musicgen.render` is the module that knows the synthesizers, hence
the name `synthesize` for the audio function.)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.3.0"

_API = ("load", "train", "prepare", "synthesize", "write_wav", "Model", "PrepareReport")
__all__ = [*_API, "UserError", "UsageError", "__version__"]


def __getattr__(name: str) -> Any:
    """The API's names, imported when first asked for."""
    if name in _API:
        from musicgen import api

        return getattr(api, name)
    if name in ("UserError", "UsageError"):
        from musicgen import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'musicgen' has no attribute {name!r}")
