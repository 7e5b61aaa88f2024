"""Importing TensorFlow quietly, once.

TensorFlow's C++ start-up prints notices (oneDNN, missing CUDA drivers, absl) on file
descriptor 2 before its own log-level setting is read, so an environment variable is
not enough. `import_tensorflow()` sends fd 2 to a temporary file for the length of the
import and replays it only when asked to be verbose. Everything that needs TensorFlow
or Keras imports it through here first (the CLI does so before loading a model module).
"""

from __future__ import annotations

import os
import sys
import tempfile
from types import ModuleType


def import_tensorflow(verbose: bool = False) -> ModuleType:
    """Import and return `tensorflow`, keeping its start-up chatter off stderr."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            import keras  # noqa: F401  (imports tensorflow as its backend)
            import tensorflow as tf
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        if verbose:
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
    return tf
