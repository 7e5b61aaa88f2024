"""musicgen: learn the style of a MIDI folder with a stacked LSTM/GRU, write new MIDI files.

The Python API (musicgen/api.py; the command line is built on it):

    import musicgen
    model = musicgen.load("checkpoints/bach")          # any checkpoint folder
    pieces = model.generate(num=4, bars=16, seed=1)    # list of pretty_midi.PrettyMIDI
    model = musicgen.train("my_midi/", out="checkpoints/mine", epochs=5)
    report = musicgen.prepare("my_midi/")

`load`, `prepare`, `Model` and `PrepareReport` are imported on first use, so `import
musicgen` stays light (no TensorFlow). `musicgen.train` is the training module
(musicgen/train.py, which imports TensorFlow) made callable: calling it is
`musicgen.api.train`, and its attributes are the module's.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.2.0"

_API = ("load", "prepare", "Model", "PrepareReport")
__all__ = [*_API, "train", "UserError", "UsageError", "__version__"]


def __getattr__(name: str) -> Any:
    """The API's names, imported when first asked for."""
    if name == "train":
        return importlib.import_module("musicgen.train")  # callable: see _Package
    if name in _API:
        from musicgen import api

        return getattr(api, name)
    if name in ("UserError", "UsageError"):
        from musicgen import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'musicgen' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """musicgen/train.py, callable as the API's `train`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Train a model and return it loaded: see `musicgen.api.train`."""
        from musicgen.api import train

        return train(*args, **kwargs)


class _Package(types.ModuleType):
    """The package module: when the import system binds the submodule musicgen.train
    to it, that module becomes callable (`musicgen.train(...)` trains)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "train" and type(value) is types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
