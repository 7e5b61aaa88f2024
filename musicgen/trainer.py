"""Training: a data folder and a RunConfig in, a checkpoint folder out.

`train()` builds one `RunContext` and runs the steps in order:

1. where it runs (`distribute.setup`): one device, every GPU (or logical CPU) of this
   machine, or a cluster from $TF_CONFIG; only the chief logs and writes files;
2. the output folder: refuse a non-empty one (unless --force or --resume); the other
   workers wait until the chief has checked it, then read it on --resume;
3. one seed for everything (Keras/TF/NumPy, the split, the data feed);
4. on a GPU, the mixed-precision policy;
5. the data (`_load_data`): the folder's token shards (`dataset.load_shards`), split by
   file (split.json), and the validation files' length in quarter notes and notes
   (`Encoding.music_size`, for the encoding-independent figures); each worker feeds its
   own part (`shards.assign`) through `feed.py` (`_feeds`);
6. the model and Adam (`build_model_and_optimizer`: global-norm clipping, loss scaling
   under mixed precision, a moving average of the weights with --average-epochs),
   built in the strategy's scope;
7. `_fit`: one `tf.function` training step for every mode (`make_train_step`) and an
   exact validation pass after each epoch (of the averaged weights, when the run keeps
   an average: `callbacks.AveragedWeights`), calling the callbacks (callbacks.py) as
   Keras's `fit` would: the learning-rate schedule (warm-up, then halved when
   validation stalls, and brought down over the time budget's last quarter or over
   the epochs after patience ran out), the
   checkpoint writer, TensorBoard scalars, early stopping and the time budget;
8. a summary: best validation loss and perplexity, nats per quarter note, tokens/s.

The budget comes from the data and validation: an epoch is a pass over the training
tokens but at least `min_steps_per_epoch` steps; a run ends when validation has stalled
for good (after `patience` epochs without a better validation loss, the rate is
annealed over `callbacks.SETTLE_EPOCHS` epochs; the next epoch without progress ends
it), when `max_minutes` are spent (status "finished (time
budget)": the epoch in progress is validated and saved) or at the `epochs` cap.
best.weights.h5 and state.json's `metrics` are those of the best epoch.

Ctrl-C stops cleanly (the last completed epoch is on disk; state "interrupted").
`resume=True` continues a folder: its config, last weights, optimizer variables (the
learning rate among them), epoch count, history (the schedule's state) and data-feed
position; a run killed before its first save is started afresh. Out of memory and a
full disk end with a one-line UserError.

`from_checkpoint` (--from) starts a new run from a trained model: the source's best
weights (its encoding and network shape are kept; `config.fine_tune_settings`), a
fresh optimizer, the new folder's data prepared with the source's encoding; the source
folder is only read. config.json records `started_from`, and `data.programs` joins the
source's programs to the folder's (`_known_programs`). The run's last line of advice
(`closing_advice`) follows what validation did: go on with --resume only while it
still improves.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicgen import checkpoint as ckpt
from musicgen.config import FineTuneError, RunConfig, changed_keys, check_fine_tune
from musicgen.errors import FROM_CHECKPOINT, UsageError, UserError, param, setting_refusal
from musicgen.runtime import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)

from musicgen import callbacks, distribute, feed, shards  # noqa: E402
from musicgen.encoding import Encoding, get_encoding, pack_stream, told_parts  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from musicgen.profiles import learn as learn_profiles  # noqa: E402

# Settings that --resume may change; anything else would make a different run.
RESUMABLE_CHANGES = (
    "train.epochs", "train.patience", "train.max_minutes", "train.device", "train.distribute",
)  # fmt: skip
GROUP_TOKENS = 1 << 24  # training tokens a worker holds in memory at once (64 MiB of int32)
BUDGET_CHECK_STEPS = 10  # multi-worker: steps between two all-reduced time-budget checks
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
    status: str  # "finished...", "interrupted", "already finished"
    # the best epoch's history row (val_loss, val_nats_per_quarter, val_nats_per_note,
    # learning_rate, ...); {} before the first epoch
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Data:
    shards: shards.ShardSet  # every usable file of the folder, packed
    train: list[shards.ShardFile]  # every worker's training files, sorted by path
    validation: list[shards.ShardFile]  # (the training files when there is none)
    summary: dict[str, Any]  # config.json's "data"
    # the validation files' music: (quarter notes, notes), from Encoding.music_size
    validation_music: tuple[float, int] = (0.0, 0)

    def ids(self, files: Sequence[shards.ShardFile]) -> Iterator[np.ndarray]:
        """Each file's int32 token ids (BOS ... EOS), read from its shard one at a time."""
        return (self.shards.ids(f) for f in files)


@dataclass
class _Feeds:
    """Distributed datasets: endless training batches, `val_steps` validation batches."""

    train: Any
    validation: Any
    val_steps: int
    how: str  # how the data was cut between workers ("shards" | "files" | "all")


@dataclass
class RunContext:
    """One training run: its settings and paths, then what `_prepare` builds."""

    config: RunConfig
    layout: distribute.Layout
    data_dir: Path
    out: Path  # the checkpoint folder
    cache_dir: str | Path | None
    resume: bool
    previous: dict  # the folder's state.json with its history ({"epoch": 0} when new)
    started: float  # time.monotonic() when `train` was called
    verbose: int  # 0 quiet, 1 progress bar, 2 a line per epoch
    log: Callable[[str], None]
    source: Path | None = None  # --from: the checkpoint whose weights this run starts from
    # config.json's `started_from` ({} for a run from scratch): --from's source, kept on --resume
    origin: dict[str, Any] = field(default_factory=dict)
    # the programs known before this run ({program: pieces}, `data.programs`), which the
    # folder's own join (`_known_programs`): the source's with --from, else none
    known_programs: dict[str, int] = field(default_factory=dict)
    encoding: Encoding | None = None
    data: _Data | None = None
    model: Any = None  # model.MusicRNN
    optimizer: Any = None  # _SummedAdam, inside a LossScaleOptimizer under mixed precision
    feeds: _Feeds | None = None
    steps: int = 0  # training steps per epoch


@dataclass
class _Callbacks:
    """The run's callbacks by name; `in_order()` is the order they are called in (the
    schedule first, so that the optimizer saved after an epoch holds the next rate)."""

    schedule: callbacks.LearningRateSchedule
    writer: callbacks.CheckpointWriter
    scalars: keras.callbacks.Callback
    early: callbacks.EarlyStopping | None
    budget: callbacks.TimeBudget

    def in_order(self) -> list[keras.callbacks.Callback]:
        named = [self.schedule, self.writer, self.scalars, self.early, self.budget]
        return [c for c in named if c is not None]


def train(
    config: RunConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    from_checkpoint: str | Path | None = None,
    cache_dir: str | Path | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = lambda line: None,
) -> TrainResult:
    """Train `config`'s model on the music in `data_dir`, writing the checkpoint `out_dir`.

    from_checkpoint: a checkpoint folder to start from (--from): its best weights, with
    `config` keeping its encoding and network shape (`config.fine_tune_settings` gives
    the usual settings); the optimizer starts afresh, the source is only read, and
    config.json's `started_from` names it.
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
    source = _check_source(from_checkpoint, out, config, resume)
    previous = _open_out_dir(out, config, resume=resume, force=force) if layout.is_chief else {}
    layout.barrier()  # the chief has checked (or cleared) --out before the others read it
    if not layout.is_chief:
        previous = _read_previous(out, resume)
    keras.utils.set_random_seed((train_cfg.seed + previous["epoch"]) % 2**32)
    policy = _set_precision(train_cfg.mixed_precision, layout.kind, log)
    run = RunContext(
        config, layout, Path(data_dir), out, cache_dir, resume, previous, started, verbose, log,
        source, *_origin(out, source, resume),
    )  # fmt: skip
    try:
        with layout.placement():
            return _run(run)
    finally:
        if policy:
            keras.mixed_precision.set_global_policy("float32")


# ----------------------------------------------------------------------------- set-up


def _check_source(
    from_checkpoint: str | Path | None, out: Path, config: RunConfig, resume: bool
) -> Path | None:
    """The --from checkpoint folder, checked: a checkpoint, not --out, not with --resume,
    and `config` keeps its encoding and network shape (UsageError otherwise)."""
    if from_checkpoint is None:
        return None
    source = Path(from_checkpoint)
    if resume:
        raise UsageError(
            "{from_checkpoint} starts a new run; continue one with {resume} alone",
            from_checkpoint=FROM_CHECKPOINT,
            resume=param("resume", True),
        )
    if out.resolve() == source.resolve():
        raise UsageError(
            f"{{from_checkpoint}} {source} is never changed: write the new run to another {{out}}",
            from_checkpoint=FROM_CHECKPOINT,
            out=param("out"),
        )
    stored, _ = ckpt.read_config(source)  # UserError when it is not a checkpoint
    try:
        check_fine_tune(stored, config, str(source))
    except FineTuneError as exc:
        raise setting_refusal(str(exc), exc.settings) from None
    return source


def _origin(out: Path, source: Path | None, resume: bool) -> tuple[dict, dict[str, int]]:
    """(config.json's `started_from`, the programs known before this run): --from's
    source (its folder, best epoch and data folder; its `data.programs`), or on --resume
    what the folder's config.json says of them; ({}, {}) for a run from scratch."""
    if source is not None:
        _, meta = ckpt.read_config(source)
        origin = {
            "checkpoint": str(source),
            "epoch": ckpt.read_state(source).get("best_epoch"),
            "data_dir": meta.get("data", {}).get("data_dir"),
        }
        return origin, meta.get("data", {}).get("programs", {})
    if resume and ckpt.is_checkpoint(out):
        _, meta = ckpt.read_config(out)
        if meta.get("started_from"):
            return meta["started_from"], meta.get("data", {}).get("programs", {})
    return {}, {}


def _open_out_dir(out: Path, config: RunConfig, *, resume: bool, force: bool) -> dict:
    """Check the output folder; return the previous run's state ({"epoch": 0} if new)."""
    if resume and ckpt.is_unfinished_start(out):
        ckpt.clear(out)  # killed before its first save: nothing to continue, start afresh
        resume = False
    if resume:
        if not ckpt.is_checkpoint(out):
            raise UsageError(
                f"{{resume}}: {out} is not a checkpoint folder", resume=param("resume", True)
            )
        stored, _ = ckpt.read_config(out)
        ckpt.remove_stale_temporaries(out)  # what a killed run was writing
        changed = changed_keys(stored.to_dict(), config.to_dict())
        refused = [key for key in changed if key not in RESUMABLE_CHANGES]
        if refused:
            raise UsageError(
                f"{{resume}}: {', '.join(refused)} differ from the checkpoint's "
                f"config (only epochs, patience, max_minutes, device and distribute may change)",
                resume=param("resume", True),
            )
        return _read_previous(out, resume=True)
    if out.exists() and not out.is_dir():
        raise UsageError("{out} is a file", out=param("out", str(out)))
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UsageError(
                f"{out} is not empty; continue it with {{resume}} or replace it with {{force}}",
                resume=param("resume", True),
                force=param("force", True),
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


def _load_data(run: RunContext) -> _Data:
    """The folder's shards, split by file (split.json, written by the chief; reused on
    --resume), and the validation files' music size. Reads no training file's tokens
    when `prepare` has written the shards before."""
    from musicgen.constraints import density_choices
    from musicgen.dataset import load_shards, split_files

    config, chief, log = run.config, run.layout.is_chief, run.log
    packed = load_shards(run.data_dir, config.encoding, cache_dir=run.cache_dir)
    saved = ckpt.read_split(run.out) if run.resume else None
    if saved:
        by_path = {f.path: f for f in packed.files}
        train = [by_path[p] for p in saved["train"] if p in by_path]
        validation = [by_path[p] for p in saved["validation"] if p in by_path]
        missing = len(saved["train"]) + len(saved["validation"]) - len(train) - len(validation)
        if missing:
            log(f"{missing} file(s) of the original split are gone from {run.data_dir}")
        if not train:
            raise UserError(f"none of the checkpoint's training files are in {run.data_dir}")
    else:
        train, validation = split_files(packed.files, config.train.val_fraction, config.train.seed)
        if chief:
            ckpt.save_split(
                run.out,
                [f.path for f in train],
                [f.path for f in validation],
                config.train.seed,
                config.train.val_fraction,
            )
    data = _Data(packed, train=train, validation=validation or train, summary={})
    data.validation_music = _music_size(run.encoding, data.ids(data.validation))
    quarters, notes = data.validation_music
    data.summary = {
        "data_dir": str(run.data_dir),
        "files": {
            "train": len(train),
            "validation": len(validation),
            "skipped": len(packed.skipped),
        },
        "tokens": {"train": _tokens(train), "validation": _tokens(validation)},
        "validation_music": {"quarters": quarters, "notes": notes},
    }
    if config.encoding.controls and chief:  # what generate --density's words mean
        levels = density_choices(run.encoding, data.ids(train))
        data.summary["controls"] = {"density": levels}
    if run.encoding.has_parts and chief:  # the parts --instruments may ask for
        programs = _programs(run.encoding, data.ids(train))
        data.summary["programs"] = _known_programs(programs, run.known_programs)
        data.summary.update(learn_profiles(run.encoding, data.ids(train)))  # profiles, lineups
    log(
        f"Data: {len(train)} training files ({_tokens(train):,} tokens), {len(validation)} "
        f"validation files ({_tokens(validation):,} tokens, {quarters:,.0f} quarter notes, "
        f"{notes:,} notes), {len(packed.skipped)} skipped"
    )
    if not validation:
        log("No validation file (too few files): validating on the training data")
    return data


def _programs(encoding: Encoding, arrays: Iterator[np.ndarray]) -> dict[str, int]:
    """{program: training pieces whose header has it} (tracks encodings)."""
    from musicgen.encoding.tracks import header_programs

    counts: Counter[int] = Counter()
    for ids in arrays:
        counts.update(header_programs(ids, encoding))
    return {str(p): n for p, n in sorted(counts.items())}


def _known_programs(folder: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """config.json `data.programs` of a run that started from a trained model: the
    folder's own counts, and each program known before but not in the folder at 0
    pieces (the model still knows it, so `--instruments` may ask for it; where the
    most-seen program of a family is chosen, the folder's come first)."""
    known = {**{p: 0 for p in before}, **folder}
    return {p: known[p] for p in sorted(known, key=int)}


def _music_size(encoding: Encoding, arrays: Iterator[np.ndarray]) -> tuple[float, int]:
    """(quarter notes, notes) of the music in these files' token ids, added up."""
    quarters, notes = 0.0, 0
    for ids in arrays:
        q, n = encoding.music_size(ids)
        quarters, notes = quarters + q, notes + n
    return quarters, notes


def _tokens(files: Sequence[shards.ShardFile]) -> int:
    return int(sum(f.length for f in files))


class SummedGradients:
    """Mixin for a Keras optimizer that takes gradients already summed over the replicas.

    Keras's TensorFlow optimizer all-reduces gradients only after clipping them, so
    under a strategy each replica would clip its own part; `make_train_step` sums them
    first (so the global-norm clip sees the whole batch's gradient, as on one device)
    and this turns Keras's own all-reduce off. It overrides a private Keras method:
    tests/test_distribute.py's plain-SGD test fails if Keras stops calling it (its
    gradients would then be summed twice), and setup.cfg pins keras below 4."""

    def _all_reduce_sum_gradients(self, grads_and_vars: Any) -> list:
        return list(grads_and_vars)


class _SummedAdam(SummedGradients, keras.optimizers.Adam):
    """Adam on replica-summed gradients (see `SummedGradients`)."""


def build_model_and_optimizer(
    config: RunConfig,
    vocab_size: int,
    layout: distribute.Layout,
    *,
    make_optimizer: Callable[[], Any] | None = None,
    average_steps: float = 0.0,
) -> tuple[Any, Any]:
    """(model, optimizer) with their variables, created in the strategy's scope.

    The optimizer is Adam at config.train.learning_rate (the schedule sets the rate of
    every step) with global-norm clipping and decoupled weight decay
    (config.train.weight_decay), taking replica-summed gradients, and, when
    `average_steps` > 0, a moving average of the weights over about that many steps
    (`callbacks.AveragedWeights`);
    `make_optimizer()` builds another in its place (called in the scope; it must take
    summed gradients too, e.g. a `SummedGradients` SGD). Under mixed_float16 it is
    wrapped in a LossScaleOptimizer."""
    cfg = config.train
    with layout.strategy.scope():
        model = build_model(config.model, vocab_size)
        if make_optimizer is None:
            optimizer = _SummedAdam(
                cfg.learning_rate,
                global_clipnorm=cfg.clip_norm or None,
                weight_decay=cfg.weight_decay or None,
                use_ema=average_steps > 0,
                ema_momentum=1.0 - 1.0 / max(average_steps, 1.0),
                name="adam",
            )
        else:
            optimizer = make_optimizer()
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    return model, optimizer


# ----------------------------------------------------------------------------- the feeds


def _pipeline_key(seed: int, pipeline: int, pipelines: int) -> int:
    """The feed's random key of one worker: the seed itself when there is one worker."""
    if pipelines == 1:
        return seed
    state = np.random.SeedSequence([seed % 2**32, pipeline, pipelines]).generate_state(2)
    return int(state[0]) << 31 | int(state[1]) >> 1


def _groups(
    packed: shards.ShardSet,
    files: Sequence[shards.ShardFile],
    inputs: Callable[[np.ndarray], np.ndarray],
) -> list[feed.TokenGroup]:
    """A worker's training files as groups of whole shards of at most GROUP_TOKENS tokens
    (one group, files in path order, when they fit: then the feed is `train_dataset`'s),
    each stream read through `inputs` (`_inputs`)."""
    if _tokens(files) <= GROUP_TOKENS:
        ordered = sorted(files, key=lambda f: f.path)
        return [feed.TokenGroup(_tokens(ordered), lambda: inputs(packed.concatenated(ordered)))]
    by_shard: dict[int, list[shards.ShardFile]] = {}
    for f in files:
        by_shard.setdefault(f.shard, []).append(f)
    groups: list[list[shards.ShardFile]] = [[]]
    for shard in sorted(by_shard):
        if groups[-1] and _tokens(groups[-1]) + _tokens(by_shard[shard]) > GROUP_TOKENS:
            groups.append([])
        groups[-1].extend(by_shard[shard])
    return [feed.TokenGroup(_tokens(g), lambda g=g: inputs(packed.concatenated(g))) for g in groups]


def _inputs(
    config: RunConfig, encoding: Encoding
) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """(what the network reads of a stream of ids, the feed's `vocab`): the ids packed
    with their parts for a network with `part_programs` (encoding/parts.py), else the
    ids as they are (vocab 0)."""
    parts = told_parts(encoding, config.model.part_programs)
    if parts is None:
        return (lambda ids: ids), 0
    return (lambda ids: pack_stream(ids, parts)), len(parts.vocab)


def _feeds(
    data: _Data,
    config: RunConfig,
    encoding: Encoding,
    layout: distribute.Layout,
    *,
    first_batch: int,
) -> _Feeds:
    """Each worker's training and validation datasets, distributed over its replicas.

    Worker p of P reads only its part (`shards.assign`) and builds batches of
    batch_size / P windows, cut into per-replica batches. Every worker computes every
    worker's validation window count from the shard index, so all run the same number
    of validation steps (padded with weight-0 windows). `first_batch`: the training
    batches already taken (state.json's train_steps), so --resume continues the feed."""
    cfg = config.train
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
    inputs, vocab = _inputs(config, encoding)

    def train_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        p = context.input_pipeline_id
        (files, _), _ = parts[p]
        return feed.grouped_train_dataset(
            _groups(data.shards, files, inputs), cfg.seq_len, batch, cfg.transpose,
            encoding.pitch_id_ranges(), cfg.seed, first_batch=first_batch,
            cyclic_id_groups=encoding.cyclic_id_groups(),  # Key_* tokens move with pitches
            key=_pipeline_key(cfg.seed, p, pipelines), replicas=layout.local_replicas,
            vocab=vocab, hide_parts=cfg.hide_parts,
        )  # fmt: skip

    def val_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        _, files = parts[context.input_pipeline_id]
        arrays = [inputs(ids) for ids in data.ids(sorted(files, key=lambda f: f.path))]
        return feed.val_dataset(
            arrays, cfg.seq_len, batch, steps=val_steps, replicas=layout.local_replicas,
            vocab=vocab,
        )  # fmt: skip

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


def make_train_step(
    model: Any, optimizer: Any, strategy: Any, *, jit_compile: bool = False
) -> Callable[[Any], list]:
    """step(iterator) -> [loss sum, correct, targets] over the whole global batch.

    `iterator` yields (inputs, targets, weights) per replica (a distributed dataset's).
    Each replica's loss is its weighted cross-entropy sum / the global number of
    non-PAD targets, so the gradients summed over replicas are the gradient of the
    global mean loss: one step's loss and update equal one device's on the same batch.
    `optimizer` must take summed gradients (`SummedGradients`); it clips and unscales.

    jit_compile: compile the replica's whole step (forward, backward, update) with XLA
    (one replica only). Off in training: on the CPU the compiled step was 1.4-2x slower
    (XLA's matmuls are not oneDNN's; benchmarks/RESULTS.md, "The training step, way by
    way"), and on a GPU the recurrent layers run cuDNN's fused kernels."""

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

    run_replica = tf.function(replica_step, jit_compile=True) if jit_compile else replica_step

    @tf.function
    def step(iterator: Any) -> list:
        sums = strategy.run(run_replica, args=next(iterator))
        return [strategy.reduce(SUM, value, axis=None) for value in sums]

    return step


def make_val_step(model: Any, strategy: Any) -> Callable[[Any], list]:
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


def any_worker(strategy: Any) -> Callable[[bool], bool]:
    """agree(flag) -> True when any worker of `strategy` passes True (an all-reduce every
    worker must call at the same step): the time budget's verdict under multi-worker."""

    @tf.function
    def total(flag: Any) -> Any:
        return strategy.reduce(SUM, strategy.run(tf.identity, args=(flag,)), axis=None)

    return lambda flag: bool(float(total(tf.constant(float(flag)))) > 0.0)


# ----------------------------------------------------------------------------- the loop


def _fit(run: RunContext, named: _Callbacks) -> None:
    """Train epochs of `run.steps` steps from the folder's epoch count up to the cap,
    validating after each, calling the callbacks as Keras's fit does (the loss in the
    logs: mean over the epoch's steps; accuracy and the validation figures: exact sums
    over all targets). Stops when a callback sets `model.stop_training` (early stopping
    after the epoch; the time budget or a NaN loss between steps: a budget-cut epoch is
    still validated and saved), and after an epoch whose loss is not finite."""
    model, layout = run.model, run.layout
    train_step = make_train_step(model, run.optimizer, layout.strategy)
    val_step = make_val_step(model, layout.strategy)
    iterator = iter(run.feeds.train)
    cbs = named.in_order()
    model.stop_training = False
    for callback in cbs:
        callback.set_model(model)
        callback.on_train_begin()
    if run.source is not None and run.previous["epoch"] == 0:
        _log_start(run, _validate(val_step, run.feeds, run.data.validation_music))
    for epoch in range(run.previous["epoch"], run.config.train.epochs):
        if named.schedule.dropout != model.dropout:
            _log_dropout(run, model.dropout, named.schedule.dropout, epoch)
            model.set_dropout(named.schedule.dropout)
            train_step = make_train_step(model, run.optimizer, layout.strategy)
        for callback in cbs:
            callback.on_epoch_begin(epoch)
        bar = _progress_bar(run, epoch, named.budget.seconds_left())
        logs, taken = _train_epoch(run, train_step, iterator, cbs, bar)
        if not math.isfinite(logs["loss"]):
            break  # diverged: the writer has kept the last good epoch
        with named.writer.averaged:
            logs.update(_validate(val_step, run.feeds, run.data.validation_music))
        if bar:
            bar.update(taken, list(logs.items()), finalize=True)
        for callback in cbs:
            callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for callback in cbs:
        callback.on_train_end()


def _log_dropout(run: RunContext, old: float, new: float, epoch: int) -> None:
    """The line that says dropout changed before `epoch` (0-based), and why."""
    why = (
        "validation stalled while the training loss still fell"
        if new > old and epoch > run.previous["epoch"]
        else "as the run's history left it"
    )
    run.log(f"Epoch {epoch + 1}: dropout {old:g} -> {new:g} ({why})")


def _log_start(run: RunContext, logs: dict[str, float]) -> None:
    """What the --from source scores on this folder's validation files before training
    (the figures each epoch's are to beat)."""
    per_quarter = logs.get("val_nats_per_quarter")
    music = f", {per_quarter:.3f} nats per quarter note" if per_quarter is not None else ""
    run.log(
        f"{run.source} on this folder's validation files: {logs['val_loss']:.4f} nats/token{music}"
    )


def _train_epoch(
    run: RunContext,
    train_step: Callable[[Any], list],
    iterator: Any,
    cbs: Sequence[keras.callbacks.Callback],
    bar: Any,
) -> tuple[dict[str, float], int]:
    """Up to `run.steps` training steps: ({"accuracy", "loss"} of those taken, how many)."""
    losses, correct, count = [], 0.0, 0.0
    logs: dict[str, float] = {}
    index = -1
    for index in range(run.steps):
        loss_sum, step_correct, step_count = (float(x) for x in train_step(iterator))
        losses.append(loss_sum / max(step_count, 1.0))
        correct, count = correct + step_correct, count + step_count
        logs = {"accuracy": correct / max(count, 1.0), "loss": float(np.mean(losses))}
        for callback in cbs:
            callback.on_train_batch_end(index, logs)
        if bar:
            bar.update(index + 1, list(logs.items()), finalize=False)
        if run.model.stop_training:
            break
    return logs, index + 1


def _validate(
    val_step: Callable[[Any], list], feeds: _Feeds, music: tuple[float, int]
) -> dict[str, float]:
    """The whole validation set's figures: val_loss (nats per non-PAD target),
    val_accuracy, and, when `music` (the validation files' quarter notes, notes) is not
    empty, val_nats_per_quarter and val_nats_per_note = val_loss x targets / quarters
    (or notes): the validation music's total nats over its length, in units every
    encoding shares."""
    totals = np.zeros(3)
    iterator = iter(feeds.validation)
    for _ in range(feeds.val_steps):
        totals += [float(x) for x in val_step(iterator)]
    loss_sum, correct, count = totals
    logs = {"val_accuracy": correct / max(count, 1.0), "val_loss": loss_sum / max(count, 1.0)}
    quarters, notes = music
    if quarters > 0:
        logs["val_nats_per_quarter"] = loss_sum / quarters
    if notes > 0:
        logs["val_nats_per_note"] = loss_sum / notes
    return logs


def _progress_bar(run: RunContext, epoch: int, seconds_left: float | None) -> Any:
    """Keras's progress bar for one epoch (None when quiet), after an "Epoch i/n" line
    that shows the time budget left."""
    if not run.verbose:
        return None
    left = callbacks.describe_left(seconds_left)
    sys.stdout.write(f"Epoch {epoch + 1}/{run.config.train.epochs}{f' ({left})' if left else ''}\n")
    sys.stdout.flush()
    names = ["accuracy", "loss", "val_accuracy", "val_loss"]
    return keras.utils.Progbar(
        run.steps, verbose=run.verbose, stateful_metrics=names, unit_name="step"
    )


# ----------------------------------------------------------------------------- the run


def _run(run: RunContext) -> TrainResult:
    """Prepare the run, fit, and turn how it ended into a status (or a UserError)."""
    cfg, out, log = run.config.train, run.out, run.log
    writer = callbacks.CheckpointWriter(
        out, run.config, run.previous, run.started, chief=run.layout.is_chief
    )
    if _already_finished(run.previous, cfg.epochs, cfg.patience):
        log(
            f"{out} already finished at epoch {run.previous['epoch']}; raise --epochs or "
            f"--patience to go on"
        )
        return _result(run, writer, "already finished")
    _prepare(run, writer)
    named = _callbacks(run, writer)
    try:
        _fit(run, named)
    except KeyboardInterrupt:
        named.scalars.on_train_end()
        writer.finish("interrupted")
        log("Stopped by the user; resume with --resume")
        return _summarise(_result(run, writer, "interrupted"), log)
    except (tf.errors.ResourceExhaustedError, MemoryError) as exc:
        writer.finish("stopped: out of memory")
        raise UserError(
            f"out of memory with --batch-size {cfg.batch_size} x --seq-len {cfg.seq_len} "
            f"({_oom_reason(exc)}); try a smaller --batch-size (e.g. "
            f"{max(1, cfg.batch_size // 2)}); the last completed epoch is kept in {out}"
        ) from exc
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as exc:
        if run.layout.workers == 1:
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
    status = _final_status(named, cfg.patience)
    writer.finish(status)
    result = _summarise(_result(run, writer, status), log)
    minutes = cfg.max_minutes if named.budget.reached else None
    advice = closing_advice(writer.history, budget_minutes=minutes)
    if advice:
        log(advice)
    return result


def _prepare(run: RunContext, writer: callbacks.CheckpointWriter) -> None:
    """Fill `run`: encoding, data, model and optimizer (restored on --resume), feeds and
    steps per epoch; write config.json (last: a folder that has it has weights)."""
    config, cfg, out = run.config, run.config.train, run.out
    run.encoding = get_encoding(config.encoding)
    run.data = _load_data(run)
    vocab_size = len(run.encoding.vocab)
    run.steps = cfg.steps_per_epoch or max(
        cfg.min_steps_per_epoch, _tokens(run.data.train) // (cfg.batch_size * cfg.seq_len)
    )
    run.model, run.optimizer = build_model_and_optimizer(
        config, vocab_size, run.layout, average_steps=cfg.average_epochs * run.steps
    )
    writer.optimizer = run.optimizer
    writer.averaged = callbacks.AveragedWeights(run.model, run.optimizer)
    start = _starting_weights(run)
    if start is not None:
        ckpt.load_weights(run.model, start)
    if run.resume and run.previous["epoch"] > 0:
        ckpt.load_optimizer(out, run.optimizer)
    else:  # new, or killed before the first epoch ended: the same seed, the same start
        writer.save_initial(run.model)  # a loadable folder even if the first epoch fails
    if run.source is not None:
        run.log(
            f"Starting from {run.source} (its epoch {run.origin['epoch']}): its weights, "
            f"vocabulary and settings, a new optimizer at learning rate {cfg.learning_rate:g}"
        )
    if run.layout.is_chief:
        ckpt.save_config(out, config, vocab_size, run.data.summary, started_from=run.origin)
    run.feeds = _feeds(
        run.data, config, run.encoding, run.layout,
        first_batch=run.previous.get("train_steps", 0),
    )  # fmt: skip
    if run.layout.workers > 1:
        run.log(f"Data over {run.layout.workers} workers: each reads its own {run.feeds.how}")
    budget = f"; time budget {cfg.max_minutes:g} min" if cfg.max_minutes else ""
    average = (
        f"; the weights validated and kept: their average over about "
        f"{cfg.average_epochs * run.steps:,.0f} steps"
        if cfg.average_epochs
        else ""
    )
    parts = " told each token's part" if _inputs(config, run.encoding)[1] else ""
    run.log(
        f"Model: {config.model.layers} x {config.model.units} {config.model.cell.upper()}"
        f"{parts}, "
        f"{run.model.count_params():,} parameters; {run.steps} steps of {cfg.batch_size} x "
        f"{cfg.seq_len} tokens per epoch; epochs {run.previous['epoch'] + 1}..{cfg.epochs}"
        f"{budget}{average}"
    )


def _starting_weights(run: RunContext) -> Path | None:
    """The weights file the model starts from (None: a fresh initialisation): on
    --resume the folder's last epoch (or, for a --from run killed before its first
    epoch, the source's weights it saved first); with --from the source's best."""
    if run.resume and (run.previous["epoch"] > 0 or run.origin):
        return ckpt.weights_path(run.out, "last")
    if run.source is not None:
        return ckpt.weights_path(run.source, "best")
    return None


def _callbacks(run: RunContext, writer: callbacks.CheckpointWriter) -> _Callbacks:
    """The run's callbacks; TensorBoard files only on the chief."""
    cfg, previous = run.config.train, run.previous
    multi = run.layout.workers > 1
    budget = callbacks.TimeBudget(
        cfg.max_minutes,
        run.started,
        agree=any_worker(run.layout.strategy) if multi else (lambda reached: reached),
        every=BUDGET_CHECK_STEPS if multi else 1,
    )
    return _Callbacks(
        # no anneal over several workers: each reads its own clock, and their rates
        # must be the same at every step
        schedule=callbacks.LearningRateSchedule(
            run.optimizer,
            run.config,
            previous["history"],
            previous.get("train_steps", 0),
            fraction_left=(lambda: None) if multi else budget.fraction_left,
            steps_per_epoch=run.steps,
        ),
        writer=writer,
        scalars=(
            callbacks.EpochScalars(ckpt.logs_dir(run.out))
            if run.layout.is_chief
            else keras.callbacks.Callback()
        ),
        early=callbacks.EarlyStopping(previous["history"], cfg.patience) if cfg.patience else None,
        budget=budget,
    )


def _final_status(named: _Callbacks, patience: int) -> str:
    """How a run that neither diverged nor was interrupted ended."""
    if named.early is not None and named.early.stopped_epoch:
        return (
            f"finished: early stopping (no improvement for {patience} epochs, nor after "
            f"the closing anneal)"
        )
    if named.budget.reached:
        return "finished (time budget)"
    return "finished"


def _result(run: RunContext, writer: callbacks.CheckpointWriter, status: str) -> TrainResult:
    """The run's result from the writer's state: the best epoch's figures."""
    state = writer.state
    best = state["best_val_loss"]
    return TrainResult(
        best_val_loss=best,
        best_val_perplexity=None if best is None else math.exp(min(best, 700.0)),
        best_epoch=state["best_epoch"],
        epochs=state["epoch"],
        tokens_per_second=writer.run_tokens / writer.run_seconds if writer.run_seconds else 0.0,
        wall_seconds=time.monotonic() - run.started,
        checkpoint=run.out,
        status=status,
        metrics=dict(state.get("metrics") or {}),
    )


def _oom_reason(exc: BaseException) -> str:
    """The first line of an out-of-memory error, short (TensorFlow's run to pages)."""
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 100 else first[:97] + "..."


def _already_finished(previous: dict, epochs: int, patience: int) -> bool:
    """The cap is reached, or early stopping (`callbacks.settling`) ended the run."""
    if previous["epoch"] >= epochs:
        return True
    return callbacks.settling(callbacks.val_losses(previous["history"]), patience).stop


def closing_advice(
    history: Sequence[dict[str, Any]], *, budget_minutes: float | None = None
) -> str | None:
    """The line that ends a run's report, from its epochs' validation losses (`history`:
    history.csv's rows over every resume, `val_loss` in each): None when there is nothing
    to advise. budget_minutes: the time budget that ended the run (None: it did not).

    When the last epochs have not beaten the best one (early stopping, or a budget whose
    closing anneal did not help either), more training would only fit the training
    files closer: the advice says the best epoch's weights are kept, and never to go on
    with --resume. Only when the budget ended a run whose validation was still
    improving does it say to go on with --resume."""
    losses = callbacks.val_losses(history)
    if losses:
        best = min(range(len(losses)), key=losses.__getitem__) + 1
        since = len(losses) - best
        if since:
            epochs = "epoch" if since == 1 else f"{since} epochs"
            return (
                f"Validation has not beaten epoch {best} in the last {epochs}: epoch "
                f"{best}'s weights are the ones kept (best.weights.h5), and more training "
                f"would only learn the training files by heart (more music in the "
                f"folder, or starting from a trained model with --from, would help instead)"
            )
    if budget_minutes is not None:
        return f"The time budget ({budget_minutes:g} min) is spent; go on with --resume"
    return None


def _summarise(result: TrainResult, log: Callable[[str], None]) -> TrainResult:
    if result.best_val_loss is not None:
        log(
            f"Best validation loss {result.best_val_loss:.4f} nats/token (perplexity "
            f"{result.best_val_perplexity:.2f}) at epoch {result.best_epoch}"
        )
        per_quarter = result.metrics.get("val_nats_per_quarter")
        per_note = result.metrics.get("val_nats_per_note")
        if per_quarter is not None and per_note is not None:
            log(
                f"Validation music: {per_quarter:.3f} nats per quarter note, "
                f"{per_note:.3f} nats per note"
            )
    minutes, seconds = divmod(int(round(result.wall_seconds)), 60)
    log(f"{result.tokens_per_second:,.0f} tokens/s; wall time {minutes}m {seconds:02d}s")
    log(f"Checkpoint: {result.checkpoint}")
    return result
