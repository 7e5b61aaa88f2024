"""The checkpoint folder: the only module that knows its file names.

A folder stands alone - generation needs nothing else:

    config.json        RunConfig (encoding, model, train) + vocab size, versions, data summary
    best.weights.h5    weights of the epoch with the lowest validation loss
    last.weights.h5    weights of the last completed epoch (what --resume continues)
    optimizer.npz      the optimizer's variables after the last completed epoch
    state.json         progress and metrics: epochs done, best val loss, steps, status
    history.csv        one row of metrics per epoch
    curves.png         loss and accuracy curves drawn from history.csv
    split.json         which files were train and which validation
    logs/              TensorBoard event files

Every file is written atomically (a temporary file in the same folder, fsync,
`os.replace`), weights and optimizer before state.json, so a run killed at any moment
leaves a folder that loads. `load_checkpoint` rebuilds the model from config.json and
the weights; `describe` summarises a folder without importing TensorFlow.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import platform
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicgen import __version__
from musicgen.atomic import TEMP_PREFIX, atomic_write
from musicgen.config import METADATA_KEYS, ConfigError, RunConfig, read_json_object
from musicgen.errors import UserError, param

CONFIG_FILE = "config.json"
BEST_WEIGHTS_FILE = "best.weights.h5"
LAST_WEIGHTS_FILE = "last.weights.h5"
OPTIMIZER_FILE = "optimizer.npz"
STATE_FILE = "state.json"
HISTORY_FILE = "history.csv"
SPLIT_FILE = "split.json"
CURVES_FILE = "curves.png"  # loss and accuracy by epoch, redrawn after every epoch
LOGS_DIR = "logs"

WEIGHTS_FILES = {"best": BEST_WEIGHTS_FILE, "last": LAST_WEIGHTS_FILE}
KNOWN_NAMES = (
    CONFIG_FILE,
    BEST_WEIGHTS_FILE,
    LAST_WEIGHTS_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    HISTORY_FILE,
    SPLIT_FILE,
    CURVES_FILE,
    LOGS_DIR,
)


@dataclass
class Checkpoint:
    """A loaded checkpoint: settings, model with weights, encoding and what else is known."""

    config: RunConfig
    model: Any  # musicgen.model.MusicRNN, or npmodel.NumpyRNN (engine="numpy")
    encoding: Any  # musicgen.encoding.Encoding
    info: dict[str, Any]  # path, weights, vocab_size, versions, data, state


# ----------------------------------------------------------------------------- writing


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path` and rename it over `path`
    (`atomic.atomic_write`, fsynced). A failure leaves `path` as it was; an OSError
    (disk full, read-only folder) becomes the UserError "cannot write checkpoint to
    FOLDER: REASON"."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            write(tmp)
    except OSError as exc:
        raise _write_error(path, exc) from exc


def _write_error(path: Path, exc: OSError) -> UserError:
    """The one-line error for a checkpoint file that could not be written."""
    return UserError(f"cannot write checkpoint to {path.parent}: {exc.strerror or exc}")


def _write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _write_json(path: Path, data: Any) -> None:
    _write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def versions() -> dict[str, str]:
    """Versions of musicgen, keras, tensorflow and python (without importing TensorFlow)."""
    from importlib import metadata  # here: importing it costs a sampling command ~25 ms

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "musicgen": __version__,
        "keras": installed("keras"),
        "tensorflow": installed("tensorflow"),
        "python": platform.python_version(),
    }


def save_config(
    folder: Path,
    config: RunConfig,
    vocab_size: int,
    data: dict[str, Any],
    *,
    started_from: dict[str, Any] | None = None,
) -> None:
    """config.json: the run's settings, vocabulary size, versions and a data summary
    (data_dir, files, tokens), and for a run that started from a trained model
    (`train --from`) `started_from` (checkpoint, epoch, data_dir). It is itself a valid
    --config file."""
    payload = config.to_dict()
    payload.update(
        vocab_size=int(vocab_size),
        encoding_name=config.encoding.name,
        versions=versions(),
        data=data,
    )
    if started_from:
        payload["started_from"] = started_from
    _write_json(Path(folder) / CONFIG_FILE, payload)


def save_weights(folder: Path, model: Any, which: str) -> None:
    """best.weights.h5 or last.weights.h5 (`which` = "best" | "last"): the model's
    weights only; the optimizer's variables go to optimizer.npz."""
    _atomic_write(Path(folder) / WEIGHTS_FILES[which], lambda tmp: _model_weights(model, tmp))


def _model_weights(model: Any, path: Path) -> None:
    import keras

    optimizer = getattr(model, "optimizer", None)
    try:  # a compiled model would otherwise store its optimizer in every weights file
        keras.saving.save_weights(
            model, str(path), objects_to_skip=[optimizer] if optimizer else None
        )
    except TypeError:  # a Keras without objects_to_skip
        model.save_weights(str(path))


def save_optimizer(folder: Path, optimizer: Any) -> None:
    """optimizer.npz: every optimizer variable in order (v0000, v0001, ...) plus their paths."""
    arrays = {f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
    arrays["paths"] = np.array([v.path for v in optimizer.variables])

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    _atomic_write(Path(folder) / OPTIMIZER_FILE, write)


def save_state(folder: Path, state: dict[str, Any]) -> None:
    """state.json: epoch, best_val_loss, best_epoch, train_steps, wall_seconds, seed,
    status ("running", "finished: ...", "stopped: ...", "interrupted"), metrics."""
    _write_json(Path(folder) / STATE_FILE, state)


def save_history(folder: Path, rows: Sequence[dict[str, Any]]) -> None:
    """history.csv: one row per epoch; columns are the union of the rows' keys, in order."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(Path(folder) / HISTORY_FILE, buffer.getvalue())


def save_split(
    folder: Path, train: Sequence[str], validation: Sequence[str], seed: int, val_fraction: float
) -> None:
    """split.json: the data folder's relative paths used for training and for validation."""
    _write_json(
        Path(folder) / SPLIT_FILE,
        {
            "train": list(train),
            "validation": list(validation),
            "seed": seed,
            "val_fraction": val_fraction,
        },
    )


def logs_dir(folder: Path) -> Path:
    """The folder for TensorBoard event files."""
    return Path(folder) / LOGS_DIR


def clear(folder: Path) -> None:
    """Remove a checkpoint's files from `folder` (for --force). Refuses (UserError) when
    the folder holds anything else, so a mistyped --out never deletes a user's files."""
    folder = Path(folder)
    strangers = sorted(
        p.name
        for p in folder.iterdir()
        if p.name not in KNOWN_NAMES and not p.name.startswith(TEMP_PREFIX)
    )
    if strangers:
        raise UserError(
            f"{folder} holds files that are not part of a checkpoint "
            f"({', '.join(strangers[:3])}); choose another {{out}}",
            out=param("out"),
        )
    for path in folder.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


# ----------------------------------------------------------------------------- reading


def is_checkpoint(folder: Path) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files a killed writer left in `folder` (for --resume)."""
    for path in Path(folder).glob(TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            path.unlink()


def is_unfinished_start(folder: Path) -> bool:
    """Whether `folder` is a run killed before its config was saved: it exists and holds
    nothing but checkpoint files (e.g. split.json) and temporary files, or nothing."""
    folder = Path(folder)
    if not folder.is_dir() or is_checkpoint(folder):
        return False
    return all(p.name in KNOWN_NAMES or p.name.startswith(TEMP_PREFIX) for p in folder.iterdir())


def read_config(folder: Path) -> tuple[RunConfig, dict[str, Any]]:
    """(RunConfig, metadata) from config.json; UserError naming what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"checkpoint folder not found: {folder}")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"not a checkpoint: {folder} has no {CONFIG_FILE}")
    try:
        raw = read_json_object(path)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    settings, meta = split_metadata(raw)
    try:
        config = RunConfig.from_dict(settings)
    except (ConfigError, TypeError) as exc:
        raise UserError(f"bad {path}: {exc}") from exc
    return config, meta


def split_metadata(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A config.json dict -> (settings, metadata): metadata are the METADATA_KEYS."""
    settings = {k: v for k, v in raw.items() if k not in METADATA_KEYS}
    return settings, {k: raw[k] for k in METADATA_KEYS if k in raw}


def read_state(folder: Path) -> dict[str, Any]:
    """state.json, or {} when there is none or it cannot be read."""
    return _read_json(Path(folder) / STATE_FILE) or {}


def read_split(folder: Path) -> dict[str, Any] | None:
    return _read_json(Path(folder) / SPLIT_FILE)


def read_history(folder: Path) -> list[dict[str, Any]]:
    """history.csv rows with numbers parsed back ([] when there is none)."""
    path = Path(folder) / HISTORY_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def weights_path(folder: Path, which: str = "best") -> Path:
    """The weights file to load: `which` ("best" | "last"), falling back to the other."""
    if which not in WEIGHTS_FILES:
        raise UserError(f"which must be 'best' or 'last', not {which!r}")
    folder = Path(folder)
    order = [which] + [w for w in WEIGHTS_FILES if w != which]
    for name in order:
        if (folder / WEIGHTS_FILES[name]).is_file():
            return folder / WEIGHTS_FILES[name]
    raise UserError(f"no weights in {folder} (neither {BEST_WEIGHTS_FILE} nor {LAST_WEIGHTS_FILE})")


def load_weights(model: Any, path: Path) -> None:
    """Load a weights file into a built model; UserError when it is unreadable or does
    not fit the model."""
    try:
        model.load_weights(str(path))
    except Exception as exc:  # h5py/keras raise many kinds for truncated or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load weights {path}: {reason[:200]}") from exc


def load_checkpoint(path: str | Path, which: str = "best", *, engine: str = "keras") -> Checkpoint:
    """Rebuild the model saved in folder `path` with its `which` weights (falling back to
    the other file when that one is missing). Errors are UserError naming the problem.

    engine: "keras" gives a `model.MusicRNN`; "numpy" gives an `npmodel.NumpyRNN`
    (inference only, read with h5py: TensorFlow is not imported)."""
    from musicgen.encoding import get_encoding, told_parts

    folder = Path(path)
    config, meta = read_config(folder)
    encoding = get_encoding(config.encoding)
    vocab_size = len(encoding.vocab)
    if meta.get("vocab_size", vocab_size) != vocab_size:
        raise UserError(
            f"checkpoint {folder} has a vocabulary of {meta['vocab_size']} tokens "
            f"but this musicgen's {config.encoding.name} encoding has {vocab_size} (made "
            f"by musicgen {meta.get('versions', {}).get('musicgen', '?')}: use that version, "
            "or retrain)"
        )
    if engine not in ("keras", "numpy"):
        raise ValueError(f"engine must be 'keras' or 'numpy', not {engine!r}")
    chosen = weights_path(folder, which)
    if engine == "numpy":
        from musicgen.npmodel import NumpyRNN

        model = NumpyRNN.from_weights_file(chosen, config.model, vocab_size)
    else:
        from musicgen.model import build_model

        model = build_model(config.model, vocab_size)
        load_weights(model, chosen)
    # what the sampler packs each id with (encoding/parts.py); None: plain ids
    model.parts = told_parts(encoding, config.model.part_programs)
    info = {
        "path": str(folder),
        "weights": chosen.name,
        "vocab_size": vocab_size,
        "versions": meta.get("versions", {}),
        "data": meta.get("data", {}),
        "state": read_state(folder),
    }
    return Checkpoint(config=config, model=model, encoding=encoding, info=info)


def load_optimizer(folder: Path, optimizer: Any) -> None:
    """Assign optimizer.npz's values to a built optimizer's variables (for --resume)."""
    path = Path(folder) / OPTIMIZER_FILE
    try:
        with np.load(path) as saved:
            values = [saved[f"v{i:04d}"] for i in range(len(saved.files) - 1)]
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    variables = list(optimizer.variables)
    shapes_match = len(values) == len(variables) and all(
        tuple(v.shape) == tuple(a.shape) for v, a in zip(variables, values, strict=True)
    )
    if not shapes_match:
        raise UserError(f"{path} does not fit this model's optimizer; was the folder changed?")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def describe(path: str | Path) -> dict[str, Any]:
    """What `musicgen info` shows: config, vocab size, data, state/metrics, the last
    history.csv row (`last_epoch`, {} when none), versions and file sizes (bytes). Does
    not import TensorFlow."""
    folder = Path(path)
    config, meta = read_config(folder)
    files = {}
    for name in KNOWN_NAMES:
        target = folder / name
        if target.is_file():
            files[name] = target.stat().st_size
        elif target.is_dir():
            files[name] = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    split = read_split(folder) or {}
    history = read_history(folder)
    return {
        "path": str(folder),
        "config": config.to_dict(),
        "vocab_size": meta.get("vocab_size"),
        "versions": meta.get("versions", {}),
        "data": meta.get("data", {}),
        "started_from": meta.get("started_from", {}),
        "state": read_state(folder),
        "last_epoch": history[-1] if history else {},
        "split": {k: len(split.get(k, [])) for k in ("train", "validation")},
        "files": files,
    }
