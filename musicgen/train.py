"""Training: a data folder and a RunConfig in, a checkpoint folder out.

`train()` runs the steps in order:

1. where it runs (`distribute.setup`): one device, every GPU (or logical CPU) of this
   machine, or a cluster from $TF_CONFIG; only the chief logs and writes files;
2. the output folder: refuse a non-empty one (unless --force or --resume); the other
   workers wait until the chief has checked it, then read it on --resume;
3. one seed for everything (Keras/TF/NumPy, the split, the data feed);
4. on a GPU, the mixed-precision policy;
5. the data: the folder's token shards (`dataset.load_shards`: those an unchanged
   folder already has, else what `prepare` writes), split by file (split.json); each worker feeds its own part
   (`shards.assign`) through `feed.py` and `strategy.distribute_datasets_from_function`;
6. the model and Adam (global-norm clipping; loss scaling under mixed precision),
   built in the strategy's scope;
7. `_fit`: one `tf.function` training step for every mode, `strategy.run` of a replica
   step whose loss is its PAD-weighted cross-entropy sum over the global count of
   non-PAD targets, so the replicas' summed gradients are one device's gradient of the
   whole batch; then an exact validation pass (sums reduced over every replica). It
   calls Keras callbacks as `fit` would: `_CheckpointWriter` (every epoch: last
   weights, optimizer, history, state; best weights when validation loss improves; it
   stops on a NaN/inf loss), early stopping, `_EpochScalars` (TensorBoard files);
8. a summary: best validation loss and perplexity, tokens/s, wall time.

Ctrl-C stops cleanly (the last completed epoch is on disk; state "interrupted").
`resume=True` continues a folder: its config, last weights, optimizer variables,
epoch count, history and data-feed position; a run killed before its first save is
started afresh. Out of memory and a full disk end with a one-line UserError.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicgen import checkpoint as ckpt
from musicgen.config import RunConfig
from musicgen.errors import UsageError, UserError
from musicgen.runtime import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)

from musicgen import distribute, feed, shards  # noqa: E402
from musicgen.encoding.base import PAD, Encoding, get_encoding  # noqa: E402
from musicgen.model import build_model  # noqa: E402

# Settings that --resume may change; anything else would make a different run.
RESUMABLE_CHANGES = ("train.epochs", "train.patience", "train.device", "train.distribute")
GROUP_TOKENS = 1 << 24  # training tokens a worker holds in memory at once (64 MiB of int32)
SUM = tf.distribute.ReduceOp.SUM


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
    shards: shards.ShardSet  # every usable file of the folder, packed
    train: list[shards.ShardFile]  # every worker's training files, sorted by path
    validation: list[shards.ShardFile]  # (the training files when there is none)
    summary: dict[str, Any]  # config.json's "data"

    def ids(self, files: Sequence[shards.ShardFile]) -> Iterator[np.ndarray]:
        """Each file's int32 token ids (BOS ... EOS), read from its shard one at a time."""
        return (self.shards.ids(f) for f in files)


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

    verbose: 1 shows Keras's progress bar, 2 one line per epoch, 0 nothing.
    log: receives human-readable lines. Under --distribute multi-worker only the chief
    logs, shows progress and writes `out_dir` (which every worker must see, for --resume).
    Raises UsageError (bad folder/options), UserError (no data, diverged).
    """
    started = time.monotonic()
    out = Path(out_dir)
    config.validate()
    train_cfg = config.train
    layout = distribute.setup(train_cfg.distribute, train_cfg.device)  # before other TF work
    if not layout.is_chief:
        log, verbose = (lambda line: None), 0
    log(layout.description)
    layout.per_replica_batch(train_cfg.batch_size)
    previous = _open_out_dir(out, config, resume=resume, force=force) if layout.is_chief else {}
    layout.barrier()  # the chief has checked (or cleared) --out before the others read it
    if not layout.is_chief:
        previous = _read_previous(out, resume)
    keras.utils.set_random_seed((train_cfg.seed + previous["epoch"]) % 2**32)
    policy = _set_precision(train_cfg.mixed_precision, layout.kind, log)
    try:
        with layout.placement():
            return _run(
                config, Path(data_dir), out, previous, resume, cache_dir, verbose, log, started,
                layout,
            )  # fmt: skip
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
                f"config (only epochs, patience, device and distribute may change)"
            )
        return _read_previous(out, resume=True)
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


def _read_previous(out: Path, resume: bool) -> dict:
    """The state of the checkpoint in `out` with its history ({"epoch": 0} if none)."""
    if not (resume and ckpt.is_checkpoint(out)):
        return {"epoch": 0, "history": []}
    state = ckpt.read_state(out)
    state.setdefault("epoch", 0)
    state["history"] = ckpt.read_history(out)[: state["epoch"]]
    return state


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


def _set_precision(mixed: bool, kind: str, log: Callable[[str], None]) -> bool:
    """Set the mixed_float16 policy on a GPU; True if the policy was changed."""
    if not mixed:
        return False
    if kind != "gpu":
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
    encoding: Encoding,
    *,
    chief: bool = True,
) -> _Data:
    """The folder's shards, split by file (split.json, written by the chief; reused on
    --resume). Reads no file's tokens when `prepare` has written the shards before."""
    from musicgen.constraints import density_choices
    from musicgen.dataset import load_shards, split_files

    packed = load_shards(data_dir, config.encoding, cache_dir=cache_dir)
    saved = ckpt.read_split(out) if resume else None
    if saved:
        by_path = {f.path: f for f in packed.files}
        train = [by_path[p] for p in saved["train"] if p in by_path]
        validation = [by_path[p] for p in saved["validation"] if p in by_path]
        missing = len(saved["train"]) + len(saved["validation"]) - len(train) - len(validation)
        if missing:
            log(f"{missing} file(s) of the original split are gone from {data_dir}")
        if not train:
            raise UserError(f"none of the checkpoint's training files are in {data_dir}")
    else:
        train, validation = split_files(packed.files, config.train.val_fraction, config.train.seed)
        if chief:
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
            "skipped": len(packed.skipped),
        },
        "tokens": {"train": _tokens(train), "validation": _tokens(validation)},
    }
    if config.encoding.controls and chief:  # what generate --density's words mean
        levels = density_choices(encoding, (packed.ids(f) for f in train))
        summary["controls"] = {"density": levels}
    log(
        f"Data: {len(train)} training files ({_tokens(train):,} tokens), {len(validation)} "
        f"validation files ({_tokens(validation):,} tokens), {len(packed.skipped)} skipped"
    )
    if not validation:
        log("No validation file (too few files): validating on the training data")
    return _Data(packed, train=train, validation=validation or train, summary=summary)


def _tokens(files: Sequence[shards.ShardFile]) -> int:
    return int(sum(f.length for f in files))


class _SummedAdam(keras.optimizers.Adam):
    """Adam that takes gradients already summed over the replicas.

    Keras's TensorFlow optimizer all-reduces gradients only after clipping them, so
    under a strategy each replica would clip its own part; `_replica_step` sums them
    first, so the global-norm clip sees the whole batch's gradient, as on one device."""

    def _all_reduce_sum_gradients(self, grads_and_vars: Any) -> list:
        return list(grads_and_vars)


def _build(config: RunConfig, vocab_size: int, layout: distribute.Layout) -> tuple[Any, Any]:
    """(model, optimizer) with their variables, created in the strategy's scope."""
    cfg = config.train
    with layout.strategy.scope():
        model = build_model(config.model, vocab_size)
        optimizer = _SummedAdam(
            cfg.learning_rate, global_clipnorm=cfg.clip_norm or None, name="adam"
        )
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    return model, optimizer


def _compile(model: keras.Model, config: RunConfig) -> None:
    """`model.compile` with the optimizer and loss `_fit` uses (Adam with global-norm
    clipping; cross-entropy over logits ignoring PAD targets), for benchmarks that
    compare with Keras's own `fit`. Training itself does not compile."""
    cfg = config.train
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate, global_clipnorm=cfg.clip_norm or None),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=False,  # XLA is not faster on CPU and would bypass cuDNN on a GPU
    )


# ----------------------------------------------------------------------------- the feeds


@dataclass
class _Feeds:
    """Distributed datasets: endless training batches, `val_steps` validation batches."""

    train: Any
    validation: Any
    val_steps: int
    how: str  # how the data was cut between workers ("shards" | "files" | "all")


def _pipeline_key(seed: int, pipeline: int, pipelines: int) -> int:
    """The feed's random key of one worker: the seed itself when there is one worker."""
    if pipelines == 1:
        return seed
    state = np.random.SeedSequence([seed % 2**32, pipeline, pipelines]).generate_state(2)
    return int(state[0]) << 31 | int(state[1]) >> 1


def _groups(packed: shards.ShardSet, files: Sequence[shards.ShardFile]) -> list[feed.TokenGroup]:
    """A worker's training files as groups of whole shards of at most GROUP_TOKENS tokens
    (one group, files in path order, when they fit: then the feed is `train_dataset`'s)."""
    if _tokens(files) <= GROUP_TOKENS:
        ordered = sorted(files, key=lambda f: f.path)
        return [feed.TokenGroup(_tokens(ordered), lambda: packed.concatenated(ordered))]
    by_shard: dict[int, list[shards.ShardFile]] = {}
    for f in files:
        by_shard.setdefault(f.shard, []).append(f)
    groups: list[list[shards.ShardFile]] = [[]]
    for shard in sorted(by_shard):
        if groups[-1] and _tokens(groups[-1]) + _tokens(by_shard[shard]) > GROUP_TOKENS:
            groups.append([])
        groups[-1].extend(by_shard[shard])
    return [feed.TokenGroup(_tokens(g), lambda g=g: packed.concatenated(g)) for g in groups]


def _feeds(data: _Data, config: RunConfig, layout: distribute.Layout, first_batch: int) -> _Feeds:
    """Each worker's training and validation datasets, distributed over its replicas.

    Worker p of P reads only its part (`shards.assign`) and builds batches of
    batch_size / P windows, cut into per-replica batches. Every worker computes every
    worker's validation window count from the shard index, so all run the same number
    of validation steps (padded with weight-0 windows)."""
    cfg = config.train
    encoding = get_encoding(config.encoding)
    pipelines = layout.workers
    batch = cfg.batch_size // pipelines  # per worker: per-replica batch x local replicas
    parts = [
        (shards.assign(data.train, p, pipelines, duplicate=True),
         shards.assign(data.validation, p, pipelines)[0])
        for p in range(pipelines)
    ]  # fmt: skip
    val_steps = max(
        -(-feed.val_window_count(_tokens(val), cfg.seq_len) // batch) for _, val in parts
    )

    def train_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        p = context.input_pipeline_id
        (files, _), _ = parts[p]
        return feed.grouped_train_dataset(
            _groups(data.shards, files), cfg.seq_len, batch, cfg.transpose,
            encoding.pitch_id_ranges(), cfg.seed, first_batch=first_batch,
            cyclic_id_groups=encoding.cyclic_id_groups(),  # Key_* tokens move with pitches
            key=_pipeline_key(cfg.seed, p, pipelines), replicas=layout.local_replicas,
        )  # fmt: skip

    def val_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        _, files = parts[context.input_pipeline_id]
        arrays = list(data.ids(sorted(files, key=lambda f: f.path)))
        return feed.val_dataset(
            arrays, cfg.seq_len, batch, steps=val_steps, replicas=layout.local_replicas
        )

    strategy = layout.strategy
    return _Feeds(
        train=strategy.distribute_datasets_from_function(train_fn),
        validation=strategy.distribute_datasets_from_function(val_fn),
        val_steps=val_steps,
        how=parts[0][0][1],
    )


# ----------------------------------------------------------------------------- the steps


def _weighted_sums(targets: Any, logits: Any, weights: Any) -> tuple[Any, Any]:
    """(sum of weight x cross-entropy, sum of weight x correct) over a [b, t] batch."""
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    predicted = tf.argmax(logits, axis=-1, output_type=targets.dtype)
    correct = tf.cast(tf.equal(predicted, targets), weights.dtype)
    return tf.reduce_sum(losses * weights), tf.reduce_sum(correct * weights)


def _train_step(model: Any, optimizer: Any, strategy: Any) -> Callable[[Any], list]:
    """step(iterator) -> [loss sum, correct, targets] over the whole global batch.

    Each replica's loss is its weighted cross-entropy sum / the global number of
    non-PAD targets, so the gradients summed over replicas are the gradient of the
    global mean loss: one step's loss and update equal one device's on the same batch."""

    def replica_step(inputs: Any, targets: Any, weights: Any) -> tuple[Any, Any, Any]:
        context = tf.distribute.get_replica_context()
        count = tf.reduce_sum(weights)
        global_count = tf.maximum(context.all_reduce(SUM, count), 1.0)
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            loss_sum, correct = _weighted_sums(targets, logits, weights)
            scaled = optimizer.scale_loss(loss_sum / global_count)
        grads = tape.gradient(scaled, model.trainable_variables)
        grads = context.all_reduce(SUM, grads)  # clipped and unscaled by the optimizer
        optimizer.apply(grads, model.trainable_variables)
        return loss_sum, correct, count

    @tf.function
    def step(iterator: Any) -> list:
        sums = strategy.run(replica_step, args=next(iterator))
        return [strategy.reduce(SUM, value, axis=None) for value in sums]

    return step


def _val_step(model: Any, strategy: Any) -> Callable[[Any], list]:
    """step(iterator) -> [loss sum, correct, targets] of one validation batch, summed over
    every replica."""

    def replica_step(inputs: Any, targets: Any, weights: Any) -> tuple[Any, Any, Any]:
        logits = model(inputs, training=False)
        return (*_weighted_sums(targets, logits, weights), tf.reduce_sum(weights))

    @tf.function
    def step(iterator: Any) -> list:
        sums = strategy.run(replica_step, args=next(iterator))
        return [strategy.reduce(SUM, value, axis=None) for value in sums]

    return step


def _fit(
    model: Any,
    optimizer: Any,
    feeds: _Feeds,
    layout: distribute.Layout,
    callbacks: list[keras.callbacks.Callback],
    *,
    epochs: range,
    steps: int,
    verbose: int,
) -> None:
    """Train `epochs` of `steps` steps, validating after each, calling `callbacks` as
    Keras's fit does (the loss in the logs: mean over the epoch's steps; accuracy and
    the validation figures: exact sums over all targets). Stops early when a callback
    sets `model.stop_training`, and after an epoch whose loss is not finite."""
    train_step = _train_step(model, optimizer, layout.strategy)
    val_step = _val_step(model, layout.strategy)
    iterator = iter(feeds.train)
    model.stop_training = False
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    for epoch in epochs:
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        bar = _progress_bar(epoch, epochs.stop, steps, verbose)
        losses, correct, count = [], 0.0, 0.0
        for index in range(steps):
            loss_sum, step_correct, step_count = (float(x) for x in train_step(iterator))
            losses.append(loss_sum / max(step_count, 1.0))
            correct, count = correct + step_correct, count + step_count
            logs = {"accuracy": correct / max(count, 1.0), "loss": float(np.mean(losses))}
            for callback in callbacks:
                callback.on_train_batch_end(index, logs)
            if bar:
                bar.update(index + 1, list(logs.items()), finalize=False)
            if model.stop_training:
                break
        if not math.isfinite(logs["loss"]):
            break  # diverged: the writer has kept the last good epoch
        logs.update(_validate(val_step, feeds))
        if bar:
            bar.update(index + 1, list(logs.items()), finalize=True)
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for callback in callbacks:
        callback.on_train_end()


def _validate(val_step: Callable[[Any], list], feeds: _Feeds) -> dict[str, float]:
    """val_loss (nats per non-PAD target) and val_accuracy over the whole validation set."""
    totals = np.zeros(3)
    iterator = iter(feeds.validation)
    for _ in range(feeds.val_steps):
        totals += [float(x) for x in val_step(iterator)]
    loss_sum, correct, count = totals
    return {"val_accuracy": correct / max(count, 1.0), "val_loss": loss_sum / max(count, 1.0)}


def _progress_bar(epoch: int, epochs: int, steps: int, verbose: int) -> Any:
    """Keras's progress bar for one epoch (None when quiet), after an "Epoch i/n" line."""
    if not verbose:
        return None
    sys.stdout.write(f"Epoch {epoch + 1}/{epochs}\n")
    sys.stdout.flush()
    names = ["accuracy", "loss", "val_accuracy", "val_loss"]
    return keras.utils.Progbar(steps, verbose=verbose, stateful_metrics=names, unit_name="step")


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
    layout: distribute.Layout,
) -> TrainResult:
    cfg = config.train
    done = previous["epoch"]
    writer = _CheckpointWriter(out, config, previous, started, chief=layout.is_chief)
    if _already_finished(previous, cfg.epochs, cfg.patience):
        log(f"{out} already finished at epoch {done}; raise --epochs or --patience to go on")
        return writer.result("already finished", started)
    encoding = get_encoding(config.encoding)
    data = _load_data(
        config, data_dir, out, resume, cache_dir, log, encoding, chief=layout.is_chief
    )
    model, optimizer = _build(config, len(encoding.vocab), layout)
    writer.optimizer = optimizer
    if resume and previous["epoch"] > 0:
        ckpt.load_weights(model, ckpt.weights_path(out, "last"))
        ckpt.load_optimizer(out, optimizer)
    else:  # new, or killed before the first epoch ended: the same seed, the same start
        writer.save_initial(model)  # a loadable folder even if the first epoch fails
    if layout.is_chief:  # config.json last: a folder that has it has weights
        ckpt.save_config(out, config, len(encoding.vocab), data.summary)

    steps = cfg.steps_per_epoch or max(1, _tokens(data.train) // (cfg.batch_size * cfg.seq_len))
    feeds = _feeds(data, config, layout, first_batch=previous.get("train_steps", 0))
    if layout.workers > 1:
        log(f"Data over {layout.workers} workers: each reads its own {feeds.how}")
    log(
        f"Model: {config.model.layers} x {config.model.units} {config.model.cell.upper()}, "
        f"{model.count_params():,} parameters; {steps} steps of {cfg.batch_size} x "
        f"{cfg.seq_len} tokens per epoch; epochs {done + 1}..{cfg.epochs}"
    )
    early = _EarlyStopping(previous["history"], cfg.patience) if cfg.patience else None
    scalars = _EpochScalars(ckpt.logs_dir(out)) if layout.is_chief else keras.callbacks.Callback()
    callbacks = [writer, scalars] + ([early] if early else [])
    try:
        _fit(
            model, optimizer, feeds, layout, callbacks,
            epochs=range(done, cfg.epochs), steps=steps, verbose=verbose,
        )  # fmt: skip
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
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as exc:
        if layout.workers == 1:
            raise
        writer.finish("stopped: lost a worker")
        raise UserError(
            f"lost contact with another worker ({_oom_reason(exc)}); the last completed "
            f"epoch is kept in {out}: restart every worker with --resume"
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
    and state.json last, so the folder is loadable whenever the process dies. Only the
    chief writes; another worker's writer keeps the same state and writes nothing.
    """

    def __init__(
        self, out: Path, config: RunConfig, previous: dict, started: float, *, chief: bool = True
    ):
        super().__init__()
        self.out, self.config, self.started, self.chief = out, config, started, chief
        self.optimizer: Any = None  # set by _run once built; saved with every epoch
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
        if self.chief:
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
        if self.chief:
            ckpt.save_weights(self.out, self.model, "last")
            ckpt.save_optimizer(self.out, self.optimizer)
            if improved:
                ckpt.save_weights(self.out, self.model, "best")
        if improved:
            self.state.update(best_val_loss=row["val_loss"], best_epoch=epoch + 1)
        if self.chief:
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
        if self.chief:
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
