"""Training: a data folder and a RunConfig in, a checkpoint folder out.

`train()` runs the steps in order:

1. the output folder: refuse a non-empty one (unless --force or --resume);
2. one seed for everything (Keras/TF/NumPy, the split, the data feed);
3. the device (CPU or the first GPU) and, on a GPU, the mixed-precision policy;
4. the data: `dataset.prepare` (parse + cache), split by file (split.json), tf.data
   feeds from `feed.py` (targets at every position, random transposition);
5. the model from `model.py`, compiled with Adam, gradient clipping and a
   cross-entropy that ignores PAD targets;
6. `fit` with callbacks: `_CheckpointWriter` (every epoch: last weights, optimizer,
   history, state; best weights when validation loss improves, and it stops on a
   NaN/inf loss), early stopping, and `_EpochScalars` (TensorBoard event files);
7. a summary: best validation loss and perplexity, tokens/s, wall time.

Ctrl-C stops cleanly (the last completed epoch is on disk; state "interrupted").
`resume=True` continues a folder: its config, last weights, optimizer variables,
epoch count, history and data-feed position; a run killed before its first save is
started afresh. Out of memory and a full disk end with a one-line UserError.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicgen import checkpoint as ckpt
from musicgen.config import RunConfig
from musicgen.errors import UsageError, UserError
from musicgen.runtime import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)

from musicgen import feed  # noqa: E402
from musicgen.encoding.base import PAD, get_encoding  # noqa: E402
from musicgen.model import build_model  # noqa: E402

# Settings that --resume may change; anything else would make a different run.
RESUMABLE_CHANGES = ("train.epochs", "train.patience", "train.device")


@dataclass
class TrainResult:
    """What a run achieved. Losses in nats per token; None before the first epoch."""

    best_val_loss: float | None
    best_val_perplexity: float | None
    best_epoch: int | None
    epochs: int  # epochs completed in the folder (over all resumes)
    tokens_per_second: float  # supervised tokens (batch x seq_len per step) / training time
    wall_seconds: float  # this call's wall time
    checkpoint: Path
    status: str  # "finished: ...", "interrupted", "already finished"


@dataclass
class _Data:
    train: list  # PreparedFile
    validation: list
    summary: dict[str, Any]  # config.json's "data"


def train(
    config: RunConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    cache_dir: str | Path | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = lambda line: None,
) -> TrainResult:
    """Train `config`'s model on the music in `data_dir`, writing the checkpoint `out_dir`.

    verbose: 1 shows Keras's progress bar, 0 nothing. log: receives human-readable lines.
    Raises UsageError (bad folder/options), UserError (no data, diverged).
    """
    started = time.monotonic()
    out = Path(out_dir)
    config.validate()
    previous = _open_out_dir(out, config, resume=resume, force=force)
    train_cfg = config.train
    keras.utils.set_random_seed((train_cfg.seed + previous["epoch"]) % 2**32)
    device = _choose_device(train_cfg.device, log)
    policy = _set_precision(train_cfg.mixed_precision, device, log)
    try:
        with tf.device(device):
            return _run(
                config, Path(data_dir), out, previous, resume, cache_dir, verbose, log, started
            )
    finally:
        if policy:
            keras.mixed_precision.set_global_policy("float32")


# ----------------------------------------------------------------------------- set-up


def _open_out_dir(out: Path, config: RunConfig, *, resume: bool, force: bool) -> dict:
    """Check the output folder; return the previous run's state ({"epoch": 0} if new)."""
    if resume and ckpt.is_unfinished_start(out):
        ckpt.clear(out)  # killed before its first save: nothing to continue, start afresh
        resume = False
    if resume:
        if not ckpt.is_checkpoint(out):
            raise UsageError(f"--resume: {out} is not a checkpoint folder")
        stored, _ = ckpt.read_config(out)
        ckpt.remove_stale_temporaries(out)  # what a killed run was writing
        changed = _differences(stored.to_dict(), config.to_dict())
        refused = [key for key in changed if key not in RESUMABLE_CHANGES]
        if refused:
            raise UsageError(
                f"--resume: {', '.join(refused)} differ from the checkpoint's "
                f"config (only epochs, patience and device may change)"
            )
        state = ckpt.read_state(out)
        state.setdefault("epoch", 0)
        state["history"] = ckpt.read_history(out)[: state["epoch"]]
        return state
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UsageError(
                f"{out} is not empty; continue it with --resume or replace it with --force"
            )
        ckpt.clear(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    return {"epoch": 0, "history": []}


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(prefix + key)
    return keys


def _choose_device(choice: str, log: Callable[[str], None]) -> str:
    """ "auto" | "cpu" | "gpu" -> a TensorFlow device name; logs the choice."""
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise UsageError(
            "--device gpu: TensorFlow sees no GPU "
            "(install with pip install -e '.[gpu]' on a CUDA machine)"
        )
    if choice == "cpu" or not gpus:
        if gpus:
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # GPUs already initialised: the device scope still applies
                pass
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        log(f"Training on CPU ({cores} cores)")
        return "/CPU:0"
    details = tf.config.experimental.get_device_details(gpus[0])
    log(f"Training on GPU: {details.get('device_name', gpus[0].name)}")
    return "/GPU:0"


def _set_precision(mixed: bool, device: str, log: Callable[[str], None]) -> bool:
    """Set the mixed_float16 policy on a GPU; True if the policy was changed."""
    if not mixed:
        return False
    if device != "/GPU:0":
        log("--mixed-precision is ignored on the CPU (float32)")
        return False
    keras.mixed_precision.set_global_policy("mixed_float16")
    log("Mixed precision: float16 compute, float32 weights")
    return True


def _load_data(
    config: RunConfig,
    data_dir: Path,
    out: Path,
    resume: bool,
    cache_dir: str | Path | None,
    log: Callable[[str], None],
) -> _Data:
    """Prepare the folder and split it by file (split.json; reused on --resume)."""
    from musicgen.constraints import density_choices
    from musicgen.dataset import prepare, split_files

    prepared = prepare(data_dir, config.encoding, cache_dir=cache_dir)
    saved = ckpt.read_split(out) if resume else None
    if saved:
        by_path = {f.path: f for f in prepared.files}
        train = [by_path[p] for p in saved["train"] if p in by_path]
        validation = [by_path[p] for p in saved["validation"] if p in by_path]
        missing = len(saved["train"]) + len(saved["validation"]) - len(train) - len(validation)
        if missing:
            log(f"{missing} file(s) of the original split are gone from {data_dir}")
        if not train:
            raise UserError(f"none of the checkpoint's training files are in {data_dir}")
    else:
        train, validation = split_files(
            prepared.files, config.train.val_fraction, config.train.seed
        )
        ckpt.save_split(
            out,
            [f.path for f in train],
            [f.path for f in validation],
            config.train.seed,
            config.train.val_fraction,
        )
    summary = {
        "data_dir": str(data_dir),
        "files": {
            "train": len(train),
            "validation": len(validation),
            "skipped": len(prepared.skipped),
        },
        "tokens": {"train": _tokens(train), "validation": _tokens(validation)},
    }
    if config.encoding.controls:  # what generate --density's words mean for this model
        encoding = get_encoding(config.encoding)
        summary["controls"] = {"density": density_choices(encoding, [f.ids for f in train])}
    log(
        f"Data: {len(train)} training files ({_tokens(train):,} tokens), {len(validation)} "
        f"validation files ({_tokens(validation):,} tokens), {len(prepared.skipped)} skipped"
    )
    if not validation:
        log("No validation file (too few files): validating on the training data")
    return _Data(train=train, validation=validation or train, summary=summary)


def _tokens(files: list) -> int:
    return int(sum(len(f.ids) for f in files))


def _compile(model: keras.Model, config: RunConfig) -> None:
    """Adam with global-norm clipping; cross-entropy over logits ignoring PAD targets."""
    cfg = config.train
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate, global_clipnorm=cfg.clip_norm or None),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=False,  # XLA is not faster on CPU and would bypass cuDNN on a GPU
    )


# ----------------------------------------------------------------------------- the run


def _run(
    config: RunConfig,
    data_dir: Path,
    out: Path,
    previous: dict,
    resume: bool,
    cache_dir: str | Path | None,
    verbose: int,
    log: Callable[[str], None],
    started: float,
) -> TrainResult:
    cfg = config.train
    done = previous["epoch"]
    writer = _CheckpointWriter(out, config, previous, started)
    if _already_finished(previous, cfg.epochs, cfg.patience):
        log(f"{out} already finished at epoch {done}; raise --epochs or --patience to go on")
        return writer.result("already finished", started)
    data = _load_data(config, data_dir, out, resume, cache_dir, log)
    encoding = get_encoding(config.encoding)
    model = build_model(config.model, len(encoding.vocab))
    if resume and previous["epoch"] > 0:
        _restore(model, config, out, previous)
    else:  # new, or killed before the first epoch ended: the same seed, the same start
        _compile(model, config)
        writer.save_initial(model)  # a loadable folder even if the first epoch fails
    # config.json last: a folder that has it has weights (it is what makes a checkpoint)
    ckpt.save_config(out, config, len(encoding.vocab), data.summary)

    steps = cfg.steps_per_epoch or max(1, _tokens(data.train) // (cfg.batch_size * cfg.seq_len))
    train_ds = feed.train_dataset(
        [f.ids for f in data.train],
        cfg.seq_len,
        cfg.batch_size,
        cfg.transpose,
        encoding.pitch_id_ranges(),
        cfg.seed,
        first_batch=previous.get("train_steps", 0),
        cyclic_id_groups=encoding.cyclic_id_groups(),  # Key_* tokens move with the pitches
    )
    val_ds = feed.val_dataset([f.ids for f in data.validation], cfg.seq_len, cfg.batch_size)
    log(
        f"Model: {config.model.layers} x {config.model.units} {config.model.cell.upper()}, "
        f"{model.count_params():,} parameters; {steps} steps of {cfg.batch_size} x "
        f"{cfg.seq_len} tokens per epoch; epochs {done + 1}..{cfg.epochs}"
    )
    early = _EarlyStopping(previous["history"], cfg.patience) if cfg.patience else None
    callbacks = [writer, _EpochScalars(ckpt.logs_dir(out))] + ([early] if early else [])
    try:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg.epochs,
            initial_epoch=done,
            steps_per_epoch=steps,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )
    except KeyboardInterrupt:
        callbacks[1].on_train_end()
        writer.finish("interrupted")
        log("Stopped by the user; resume with --resume")
        return _summarise(writer.result("interrupted", started), log)
    except (tf.errors.ResourceExhaustedError, MemoryError) as exc:
        writer.finish("stopped: out of memory")
        raise UserError(
            f"out of memory with --batch-size {cfg.batch_size} x --seq-len {cfg.seq_len} "
            f"({_oom_reason(exc)}); try a smaller --batch-size (e.g. "
            f"{max(1, cfg.batch_size // 2)}); the last completed epoch is kept in {out}"
        ) from exc
    if writer.diverged_epoch is not None:
        raise UserError(
            f"training diverged at epoch {writer.diverged_epoch} (the loss became "
            f"NaN or infinite; try a lower --learning-rate); the last good "
            f"checkpoint is kept in {out}"
        )
    status = "finished"
    if early is not None and early.stopped_epoch:
        status = f"finished: early stopping (no improvement for {cfg.patience} epochs)"
    writer.finish(status)
    return _summarise(writer.result(status, started), log)


def _oom_reason(exc: BaseException) -> str:
    """The first line of an out-of-memory error, short (TensorFlow's run to pages)."""
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 100 else first[:97] + "..."


def _restore(model: keras.Model, config: RunConfig, out: Path, previous: dict) -> None:
    """Load the folder's last weights, compile, then load the optimizer's variables."""
    ckpt.load_weights(model, ckpt.weights_path(out, "last"))
    _compile(model, config)
    model.optimizer.build(model.trainable_variables)
    if previous["epoch"] > 0:
        ckpt.load_optimizer(out, model.optimizer)


def _already_finished(previous: dict, epochs: int, patience: int) -> bool:
    if previous["epoch"] >= epochs:
        return True
    best = previous.get("best_epoch")
    return bool(patience and best and previous["epoch"] - best >= patience)


def _summarise(result: TrainResult, log: Callable[[str], None]) -> TrainResult:
    if result.best_val_loss is not None:
        log(
            f"Best validation loss {result.best_val_loss:.4f} nats/token (perplexity "
            f"{result.best_val_perplexity:.2f}) at epoch {result.best_epoch}"
        )
    minutes, seconds = divmod(int(round(result.wall_seconds)), 60)
    log(f"{result.tokens_per_second:,.0f} tokens/s; wall time {minutes}m {seconds:02d}s")
    log(f"Checkpoint: {result.checkpoint}")
    return result


# ----------------------------------------------------------------------------- callbacks


class _CheckpointWriter(keras.callbacks.Callback):
    """Writes the folder after every epoch and stops on a NaN/inf loss.

    Order per epoch: last weights, optimizer, best weights (if improved), history,
    and state.json last, so the folder is loadable whenever the process dies.
    """

    def __init__(self, out: Path, config: RunConfig, previous: dict, started: float):
        super().__init__()
        self.out, self.config, self.started = out, config, started
        self.history: list[dict[str, Any]] = list(previous.get("history", []))
        self.state: dict[str, Any] = {
            "epoch": previous.get("epoch", 0),
            "best_val_loss": previous.get("best_val_loss"),
            "best_epoch": previous.get("best_epoch"),
            "train_steps": previous.get("train_steps", 0),
            "train_seconds": previous.get("train_seconds", 0.0),
            "wall_seconds": previous.get("wall_seconds", 0.0),
            "seed": config.train.seed,
            "status": "running",
            "metrics": previous.get("metrics", {}),
        }
        self.base_wall = self.state["wall_seconds"]
        self.run_tokens, self.run_seconds = 0, 0.0
        self.diverged_epoch: int | None = None

    def save_initial(self, model: keras.Model) -> None:
        ckpt.save_weights(self.out, model, "last")
        ckpt.save_state(self.out, self.state)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start = self.last_batch_end = time.monotonic()
        self.epoch_steps = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.last_batch_end = time.monotonic()
        self.epoch_steps += 1
        if logs and not math.isfinite(float(logs.get("loss", 0.0))):
            self._diverge()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        if self.diverged_epoch is None and not all(
            math.isfinite(float(logs.get(k, 0.0))) for k in ("loss", "val_loss")
        ):
            self._diverge()
        if self.diverged_epoch is not None:
            return
        cfg = self.config.train
        seconds = self.last_batch_end - self.epoch_start
        tokens = self.epoch_steps * cfg.batch_size * cfg.seq_len
        self.run_tokens += tokens
        self.run_seconds += seconds
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
        row["val_perplexity"] = math.exp(min(row["val_loss"], 700.0))
        row.update(train_seconds=round(seconds, 3), tokens_per_second=round(tokens / seconds, 1))
        self.history.append(row)
        improved = (
            self.state["best_val_loss"] is None or row["val_loss"] < self.state["best_val_loss"]
        )
        ckpt.save_weights(self.out, self.model, "last")
        ckpt.save_optimizer(self.out, self.model.optimizer)
        if improved:
            ckpt.save_weights(self.out, self.model, "best")
            self.state.update(best_val_loss=row["val_loss"], best_epoch=epoch + 1)
        ckpt.save_history(self.out, self.history)
        _draw_curves(self.out)
        self.state.update(
            epoch=epoch + 1,
            metrics=row,
            train_steps=self.state["train_steps"] + self.epoch_steps,
            train_seconds=self.state["train_seconds"] + seconds,
        )
        self._save_state()

    def _diverge(self) -> None:
        self.diverged_epoch = self.state["epoch"] + 1
        self.model.stop_training = True
        self.finish(f"stopped: training diverged at epoch {self.diverged_epoch}")

    def finish(self, status: str) -> None:
        self.state["status"] = status
        self._save_state()

    def _save_state(self) -> None:
        self.state["wall_seconds"] = round(self.base_wall + time.monotonic() - self.started, 3)
        best = self.state["best_val_loss"]
        self.state["best_val_perplexity"] = None if best is None else math.exp(min(best, 700.0))
        ckpt.save_state(self.out, self.state)

    def result(self, status: str, started: float) -> TrainResult:
        best = self.state["best_val_loss"]
        return TrainResult(
            best_val_loss=best,
            best_val_perplexity=None if best is None else math.exp(min(best, 700.0)),
            best_epoch=self.state["best_epoch"],
            epochs=self.state["epoch"],
            tokens_per_second=self.run_tokens / self.run_seconds if self.run_seconds else 0.0,
            wall_seconds=time.monotonic() - started,
            checkpoint=self.out,
            status=status,
        )


class _EarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping on val_loss that, on --resume, remembers the best epoch so far.

    Weights are not restored: the best ones are on disk already.
    """

    def __init__(self, history: list[dict[str, Any]], patience: int):
        super().__init__(monitor="val_loss", patience=patience, mode="min")
        self.previous = [row["val_loss"] for row in history if "val_loss" in row]

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self.previous:
            best_index = min(range(len(self.previous)), key=self.previous.__getitem__)
            self.best = self.previous[best_index]
            self.wait = len(self.previous) - 1 - best_index


def _draw_curves(out: Path) -> None:
    """Redraw curves.png from history.csv; a picture never stops a training run."""
    from musicgen.plots import plot_history

    try:
        plot_history(out / ckpt.HISTORY_FILE, out / ckpt.CURVES_FILE)
    except Exception:  # noqa: BLE001 - matplotlib trouble must not cost the run
        pass


class _EpochScalars(keras.callbacks.Callback):
    """Per-epoch scalars for TensorBoard (logs/train and logs/validation, tags
    epoch_loss, epoch_accuracy) written with TensorFlow's own summary ops, so neither
    the tensorboard package nor graph/profile dumps are needed."""

    def __init__(self, log_dir: Path):
        super().__init__()
        from tensorflow.core.framework import summary_pb2

        plugin = summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        self.metadata = summary_pb2.SummaryMetadata(plugin_data=plugin)
        self.writers = {
            part: tf.summary.create_file_writer(str(log_dir / part))
            for part in ("train", "validation")
        }

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            part, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self.writers[part].as_default():
                tf.summary.write(
                    f"epoch_{name}",
                    tf.constant(float(value)),
                    step=epoch + 1,
                    metadata=self.metadata,
                )
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        for writer in self.writers.values():
            writer.close()
