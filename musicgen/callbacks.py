"""Keras callbacks of a training run, and the learning-rate schedule they apply.

trainer.py's loop calls these as Keras's `fit` would (`on_epoch_begin`,
`on_train_batch_end`, `on_epoch_end`, ...). Each has one concern:

- `CheckpointWriter`: after every epoch the folder (last weights, optimizer, best
  weights when validation improves, history.csv, curves.png, state.json last); stops on
  a NaN/inf loss;
- `EarlyStopping`: ends the run when validation has stalled for good (`settling`):
  `patience` epochs without a lower validation loss start the closing anneal, and the
  run stops at the first epoch without progress once the anneal is over;
- `LearningRateSchedule`: linear warm-up, then halve the rate when validation stalls
  (`scheduled_rate`, `plateau_halvings`: pure functions of the history), and bring it
  down linearly over the closing anneal: the time budget's last quarter
  (`budget_anneal`) or the `SETTLE_EPOCHS` epochs after patience ran out
  (`settle_anneal`), whichever is lower; so a run settles before it stops, whether
  the budget or patience ends it;
- `TimeBudget`: stops between two steps once the run's wall-clock budget is spent
  (its clock can be replaced, for tests);
- `EpochScalars`: TensorBoard scalars (logs/train, logs/validation);
- `AveragedWeights` (not a callback): the optimizer's moving average of the weights
  (`--average-epochs`), swapped into the model while it is validated and saved as
  best.

The learning rate is a variable of the optimizer (saved in optimizer.npz) and a column
of history.csv; the schedule's state (steps taken, halvings so far, where the closing
anneal began) is a function of state.json's `train_steps`, the epoch count and
history.csv's `val_loss`, so --resume continues it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicgen import checkpoint as ckpt
from musicgen.config import RunConfig
from musicgen.runtime import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)

PLATEAU_DELTA = 1e-3  # a validation loss must fall by 0.1% of the best to count as progress
MAX_HALVINGS = 6  # the rate never falls below learning_rate / 64
ANNEAL_SHARE = 0.25  # with a time budget, the rate falls over the budget's last quarter...
ANNEAL_FLOOR = 0.02  # ...to 2% of what it was
SETTLE_EPOCHS = 3  # when patience runs out, the rate falls to ANNEAL_FLOOR over 3 epochs
DROPOUT_STEP = 0.15  # dropout's rise at a stall while the training loss still falls
# ...and validation lies this share above it: a network learning its training music by
# heart (30 band songs: validation 1.4-1.5 x training when it stalled, and the rise
# helped). The chorales of midi_corpus stalled at 1.04 x (a rise to 0.35 and 0.5 took
# validation from 7.68 to 8.12 nats per quarter note) and, later in a longer run, at
# 1.10 x (a rise to 0.35 took it from 7.44 to 7.51-7.53 for four epochs): there the
# rate halves instead.
OVERFIT_GAP = 0.25


# ----------------------------------------------------------------------------- schedule


def val_losses(history: Sequence[dict[str, Any]]) -> list[float]:
    """The validation losses of history.csv's rows (`read_history`), epoch by epoch."""
    return [float(row["val_loss"]) for row in history if "val_loss" in row]


def plateau_halvings(
    val_losses: Sequence[float], patience: int, *, delta: float = PLATEAU_DELTA
) -> int:
    """How often the rate has been halved after these epochs' validation losses, when
    dropout never rises (`plateau_answers` with no training losses)."""
    rows = [{"val_loss": loss} for loss in val_losses]
    return plateau_answers(rows, patience, delta=delta).halvings


@dataclass(frozen=True)
class PlateauAnswers:
    """What the stalls of a run so far were answered with (`plateau_answers`): the
    rate's halvings and the dropout the next epoch trains with."""

    halvings: int
    dropout: float


def plateau_answers(
    rows: Sequence[dict[str, Any]],
    patience: int,
    *,
    dropout: float = 0.0,
    max_dropout: float = 0.0,
    delta: float = PLATEAU_DELTA,
) -> PlateauAnswers:
    """The answers to the validation stalls of these epochs (history rows with
    `val_loss`, and the training `loss` in nats per token).

    An epoch improves when its validation loss is below the best so far by more than
    `delta` x best; after `patience` epochs in a row without improvement (a stall) the
    count starts again, and the stall is answered one of two ways:
    - the training loss still fell from the epoch before the stall to its last epoch
      (`_still_learning`, among the epochs at the latest dropout; a stall right after a
      rise is judged one epoch later), it lies more than OVERFIT_GAP below the
      validation loss at the stall's last epoch (`_memorising`), and dropout is below
      `max_dropout`: the network is learning its training music by heart, so dropout
      rises by DROPOUT_STEP (to at most `max_dropout`). Halving the rate there would
      only speed up the memorising;
    - otherwise (the training loss stalled too, or it is as high as validation's: steps
      too large to settle; or dropout at its ceiling): the rate halves (at most
      MAX_HALVINGS times), as Keras's ReduceLROnPlateau does.
    `dropout` is the run's starting dropout. patience 0: never answer."""
    halvings, level = 0, dropout
    if patience <= 0:
        return PlateauAnswers(0, level)
    best, wait = math.inf, 0
    for epoch, row in enumerate(rows):
        loss = float(row["val_loss"])
        if (best == math.inf and math.isfinite(loss)) or loss < best - delta * abs(best):
            best, wait = loss, 0
            continue
        wait += 1
        if wait < patience:
            continue
        stall = _same_dropout(rows[max(0, epoch - patience) : epoch + 1])
        if len(stall) < 2 and level < max_dropout:
            continue  # dropout has just risen: judge the stall one epoch later
        wait = 0
        if level < max_dropout and _still_learning(stall, delta) and _memorising(stall[-1]):
            level = min(max_dropout, round(level + DROPOUT_STEP, 6))
        else:
            halvings = min(halvings + 1, MAX_HALVINGS)
    return PlateauAnswers(halvings, level)


def _same_dropout(stall: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The epochs of a stall (with the one before it) trained at its last epoch's
    dropout: a training loss measured under less dropout is not comparable."""
    last = stall[-1].get("dropout")
    return [row for row in stall if row.get("dropout") == last]


def _memorising(row: dict[str, Any]) -> bool:
    """Whether an epoch's training loss lies more than OVERFIT_GAP below its validation
    loss (False without `loss`)."""
    loss, val = float(row.get("loss", math.nan)), float(row["val_loss"])
    return math.isfinite(loss) and val > (1 + OVERFIT_GAP) * loss


def _still_learning(stall: Sequence[dict[str, Any]], delta: float) -> bool:
    """Whether the training loss fell by more than `delta` of itself from the first of
    these epochs to the last (False with fewer than two, or without `loss`)."""
    losses = [float(row["loss"]) for row in stall if "loss" in row]
    if len(losses) < 2 or not all(map(math.isfinite, losses)):
        return False
    return losses[-1] < losses[0] - delta * abs(losses[0])


def budget_anneal(
    fraction_left: float | None, *, share: float = ANNEAL_SHARE, floor: float = ANNEAL_FLOOR
) -> float:
    """The factor on the learning rate when `fraction_left` of the time budget is left
    (None: no budget): 1 until the last `share` of the budget, then linear down to
    `floor` at its end.

    Why: a run that the budget ends while validation is still improving (a default run
    on a small folder on a CPU) never stalls, so the plateau halving never comes and the
    last minutes are spent at the full rate, whose noise keeps the weights from settling.
    Bringing the rate down at the end of the time the user gave (a warm-up, stable,
    decay shape) lets them settle: the closing epochs then give the run's best
    validation loss, and the best weights are what is kept."""
    if fraction_left is None or fraction_left >= share:
        return 1.0
    return floor + (1.0 - floor) * max(0.0, fraction_left) / share


@dataclass(frozen=True)
class Settling:
    """Where a run stands with its patience (`settling`): `anneal_from` is the 0-based
    epoch at which the closing anneal begins (None: patience has not run out);
    `stop`: the run is over after the last epoch seen."""

    anneal_from: int | None
    stop: bool


def settling(
    val_losses: Sequence[float], patience: int, anneal_epochs: int = SETTLE_EPOCHS
) -> Settling:
    """The closing anneal and the stop, from the epochs' validation losses.

    An epoch improves when its loss is below the best so far (the first finite loss
    always does). After `patience` epochs in a row without improvement, the next epoch
    begins the closing anneal (`settle_anneal`: the rate falls over `anneal_epochs`
    epochs); from the anneal's last epoch on, the first epoch that does not improve
    ends the run. Why: a run that patience ends while the rate is still high stops
    before its weights have settled; lowering the rate at the end is what gives the
    best validation loss (as the time budget's anneal does). anneal_epochs 0: stop as
    soon as patience runs out (plain early stopping); patience 0: never stop."""
    if patience <= 0:
        return Settling(None, False)
    best, wait, start = math.inf, 0, None
    for epoch, loss in enumerate(val_losses):
        improved = (best == math.inf and math.isfinite(loss)) or loss < best
        best, wait = (loss, 0) if improved else (best, wait + 1)
        if start is None and wait >= patience:
            start = epoch + 1
            if anneal_epochs <= 0:
                return Settling(start, True)
        elif start is not None and epoch >= start + anneal_epochs - 1 and not improved:
            return Settling(start, True)
    return Settling(start, False)


def settle_anneal(step: int, anneal_steps: int, *, floor: float = ANNEAL_FLOOR) -> float:
    """The factor on the learning rate of the closing anneal's step `step` (0-based; a
    negative step is before the anneal): linear from 1 down to `floor` at the anneal's
    last step (`anneal_steps` in all), then `floor`."""
    if step < 0:
        return 1.0
    if anneal_steps <= 0:
        return floor
    return floor + (1.0 - floor) * max(0.0, 1.0 - (step + 1) / anneal_steps)


def scheduled_rate(
    base: float, step: int, warmup_steps: int, halvings: int, anneal: float = 1.0
) -> float:
    """The learning rate of optimizer step `step` (0-based, over the whole run):
    base x min(1, (step + 1) / warmup_steps) x 0.5 ** halvings x anneal (the lower of
    `budget_anneal` and `settle_anneal`).

    Why this schedule: Adam's first steps on a fresh recurrent network take its moment
    estimates from a handful of batches, and a full-size step then can throw the
    weights far off (spikes at the start of a run); a linear warm-up over
    `warmup_steps` avoids that. After it the rate stays at `base` while validation
    improves, so a run needs no length fixed in advance (a cosine schedule would need
    one in steps, which neither the data size nor --max-minutes gives); when validation
    stalls for `lr_patience` epochs, the rate halves, which usually buys more progress
    before early stopping (`patience`, larger than `lr_patience`) gives up. A time
    budget does give an end in time: over its last quarter the rate falls to
    `ANNEAL_FLOOR` of itself (`anneal`, from `budget_anneal`); so does patience running
    out, over the next `SETTLE_EPOCHS` epochs (`settle_anneal`)."""
    warm = 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)
    return base * warm * 0.5**halvings * anneal


class LearningRateSchedule(keras.callbacks.Callback):
    """Sets the optimizer's learning rate: every step during the warm-up and the
    closing anneals, and after each epoch from the validation losses so far (`history`:
    earlier epochs' rows). It also decides the next epoch's dropout (`dropout`, from
    the same stalls: `plateau_answers`), which the training loop applies; both go into
    each epoch's logs (`learning_rate`, `dropout`).

    `steps_done`: optimizer steps taken before this run (state.json's train_steps).
    `fraction_left() -> float | None`: the share of this run's time budget left (None:
    no budget, no budget anneal). The budget is that of one `train` call, so a resumed
    run starts again at the rate its halvings give and anneals at the end of its own
    budget. `steps_per_epoch`: the length of an epoch, which sets the closing anneal's
    length in steps (`anneal_epochs` x steps_per_epoch) once `config.train.patience`
    has run out (`settling`)."""

    def __init__(
        self,
        optimizer: Any,
        config: RunConfig,
        history: Sequence[dict],
        steps_done: int,
        fraction_left: Callable[[], float | None] = lambda: None,
        *,
        steps_per_epoch: int = 1,
        anneal_epochs: int = SETTLE_EPOCHS,
    ):
        super().__init__()
        cfg = config.train
        self.optimizer, self.base = optimizer, cfg.learning_rate
        self.warmup_steps, self.patience = cfg.warmup_steps, cfg.lr_patience
        self.stop_patience, self.anneal_epochs = cfg.patience, anneal_epochs
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.fraction_left = fraction_left
        # --dropout 0 is a network without dropout layers at work: it stays without
        self.start_dropout = config.model.dropout
        self.max_dropout = cfg.max_dropout if config.model.dropout > 0 else 0.0
        self.rows = [dict(row) for row in history if "val_loss" in row]  # validated epochs
        self.step = steps_done
        self.epoch, self.epoch_steps = len(self.rows), 0
        self._answer_stalls()
        self.last_dropout = self.dropout  # the dropout of the epoch in progress
        self.anneal_from = settling(
            val_losses(self.rows), self.stop_patience, anneal_epochs
        ).anneal_from
        self.anneal = self._anneal()
        self.last_rate = self.rate  # the rate of the latest step

    @property
    def rate(self) -> float:
        """The rate of the next step."""
        return scheduled_rate(self.base, self.step, self.warmup_steps, self.halvings, self.anneal)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._assign()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.epoch_steps = epoch, 0
        self.last_dropout = self.dropout
        self.anneal = self._anneal()
        self._assign()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.last_rate = self.rate
        self.step += 1
        self.epoch_steps += 1
        anneal = self._anneal()
        if self.step <= self.warmup_steps or anneal != self.anneal:
            self.anneal = anneal
            self._assign()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Adds `learning_rate` (that of the epoch's last step) and `dropout` (the epoch's)
        to `logs`, for the callbacks after this one (history.csv), then sets the next
        epoch's rate and dropout."""
        if logs is not None:
            logs["learning_rate"] = self.last_rate
            logs["dropout"] = self.last_dropout
        if logs and "val_loss" in logs:
            self.rows.append(dict(logs))
            self._answer_stalls()
            found = settling(val_losses(self.rows), self.stop_patience, self.anneal_epochs)
            self.anneal_from = found.anneal_from
        self.epoch, self.epoch_steps = epoch + 1, 0
        self.anneal = self._anneal()
        self._assign()

    def _answer_stalls(self) -> None:
        """The halvings and the next epoch's dropout from the epochs so far."""
        answers = plateau_answers(
            self.rows, self.patience, dropout=self.start_dropout, max_dropout=self.max_dropout
        )
        self.halvings, self.dropout = answers.halvings, answers.dropout

    def _anneal(self) -> float:
        """The next step's anneal factor: the lower of the budget's and the settling's."""
        factor = budget_anneal(self.fraction_left())
        if self.anneal_from is not None:
            into = (self.epoch - self.anneal_from) * self.steps_per_epoch + self.epoch_steps
            total = self.anneal_epochs * self.steps_per_epoch
            factor = min(factor, settle_anneal(into, total))
        return factor

    def _assign(self) -> None:
        self.optimizer.learning_rate.assign(self.rate)


# ----------------------------------------------------------------------------- time budget


class TimeBudget(keras.callbacks.Callback):
    """Stops training between two steps once `minutes` have passed since `started`
    (`clock()` at the start of the run, seconds; minutes 0: no budget). `clock`:
    time.monotonic, or a fake one in tests.

    `agree(reached) -> bool` turns this process's verdict into every worker's (an
    all-reduce under multi-worker, so all stop after the same step); it is asked
    every `every` steps."""

    def __init__(
        self,
        minutes: float,
        started: float,
        *,
        agree: Callable[[bool], bool] = lambda reached: reached,
        every: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        self.clock = clock
        self.seconds = minutes * 60.0
        self.started, self.agree, self.every = started, agree, max(1, every)
        self.reached = False
        self.steps = 0

    def seconds_left(self) -> float | None:
        """Seconds of the budget left now (None without a budget; never below 0)."""
        if not self.seconds:
            return None
        return max(0.0, self.seconds - (self.clock() - self.started))

    def fraction_left(self) -> float | None:
        """The share of the budget left now, 1 to 0 (None without a budget)."""
        left = self.seconds_left()
        return None if left is None else left / self.seconds

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1
        if not self.seconds or self.steps % self.every:
            return
        if self.agree(self.seconds_left() == 0.0):
            self.reached = True
            self.model.stop_training = True


def describe_left(seconds: float | None) -> str:
    """'12:05 left' style text for the progress line ('' without a budget)."""
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{clock} of the time budget left"


# ----------------------------------------------------------------------------- checkpoint


class AveragedWeights:
    """`with averaged:` the model holds the optimizer's moving average of its weights
    (Keras's `use_ema`, `--average-epochs`), and its trained weights again after.

    Values are exchanged, not added and subtracted, so the trained weights come back
    bit for bit. Nothing is swapped when the optimizer keeps no average, or before its
    first step: the average is then a copy of the weights it was built on, not of those
    loaded after (--from, --resume). Reads the optimizer's
    `_model_variables_moving_average`, as Keras's own SwapEMAWeights callback does;
    tests/test_train.py fails if Keras renames it."""

    def __init__(self, model: keras.Model, optimizer: Any):
        inner = getattr(optimizer, "inner_optimizer", optimizer)  # under loss scaling
        self.optimizer = inner
        self.pairs = (
            list(zip(model.trainable_variables, inner._model_variables_moving_average, strict=True))
            if inner.use_ema
            else []
        )
        self.swapped = False

    def __enter__(self) -> AveragedWeights:
        self.swapped = bool(self.pairs) and int(self.optimizer.iterations.numpy()) > 0
        if self.swapped:
            self._exchange()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.swapped:
            self._exchange()
            self.swapped = False

    def _exchange(self) -> None:
        for variable, average in self.pairs:
            trained = variable.numpy()
            variable.assign(average.numpy())
            average.assign(trained)


class CheckpointWriter(keras.callbacks.Callback):
    """Writes the folder after every epoch and stops on a NaN/inf loss.

    Order per epoch: last weights, optimizer, best weights (if improved; the averaged
    ones, `averaged`, when the run keeps an average), history, and state.json last, so
    the folder is loadable whenever the process dies. Only the chief writes; another
    worker's writer keeps the same state and writes nothing.
    state.json's `metrics` is the best epoch's history row (the epoch best.weights.h5
    holds), so `info` and `TrainResult.metrics` describe the model that is used.
    """

    def __init__(
        self,
        out: Path,
        config: RunConfig,
        previous: dict,
        started: float,
        optimizer: Any = None,
        *,
        chief: bool = True,
    ):
        super().__init__()
        self.out, self.config, self.started, self.chief = out, config, started, chief
        self.optimizer = optimizer  # saved with every epoch
        # best.weights.h5 holds the averaged weights when the run keeps an average
        self.averaged: AveragedWeights | contextlib.nullcontext = contextlib.nullcontext()
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
        """A loadable folder (random weights, state) before the first epoch."""
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
        row.update(
            train_seconds=round(seconds, 3),
            tokens_per_second=round(tokens / seconds, 1) if seconds > 0 else 0.0,
        )
        self.history.append(row)
        improved = (
            self.state["best_val_loss"] is None or row["val_loss"] < self.state["best_val_loss"]
        )
        if self.chief:
            ckpt.save_weights(self.out, self.model, "last")
            ckpt.save_optimizer(self.out, self.optimizer)
            if improved:
                with self.averaged:
                    ckpt.save_weights(self.out, self.model, "best")
        if improved:
            self.state.update(best_val_loss=row["val_loss"], best_epoch=epoch + 1, metrics=row)
        if self.chief:
            ckpt.save_history(self.out, self.history)
            draw_curves(self.out)
        self.state.update(
            epoch=epoch + 1,
            train_steps=self.state["train_steps"] + self.epoch_steps,
            train_seconds=self.state["train_seconds"] + seconds,
        )
        self._save_state()

    def _diverge(self) -> None:
        self.diverged_epoch = self.state["epoch"] + 1
        self.model.stop_training = True
        self.finish(f"stopped: training diverged at epoch {self.diverged_epoch}")

    def finish(self, status: str) -> None:
        """Write state.json with its final status."""
        self.state["status"] = status
        self._save_state()

    def _save_state(self) -> None:
        self.state["wall_seconds"] = round(self.base_wall + time.monotonic() - self.started, 3)
        best = self.state["best_val_loss"]
        self.state["best_val_perplexity"] = None if best is None else math.exp(min(best, 700.0))
        if self.chief:
            ckpt.save_state(self.out, self.state)


class EarlyStopping(keras.callbacks.Callback):
    """Ends the run after an epoch when validation has stalled for good (`settling`:
    patience ran out, the closing anneal ran, and an epoch after it did not improve),
    counting the epochs before a --resume (`history`).

    Weights are not restored: the best ones are on disk already (best.weights.h5).
    `stopped_epoch`: the 1-based epoch after which it stopped the run (0: it did not).
    """

    def __init__(
        self,
        history: Sequence[dict[str, Any]],
        patience: int,
        anneal_epochs: int = SETTLE_EPOCHS,
    ):
        super().__init__()
        self.patience, self.anneal_epochs = patience, anneal_epochs
        self.val_losses = val_losses(history)
        self.stopped_epoch = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not logs or "val_loss" not in logs:
            return
        self.val_losses.append(float(logs["val_loss"]))
        if settling(self.val_losses, self.patience, self.anneal_epochs).stop:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True


def draw_curves(out: Path) -> None:
    """Redraw curves.png from history.csv; a picture never stops a training run."""
    from musicgen.plots import plot_history

    try:
        plot_history(out / ckpt.HISTORY_FILE, out / ckpt.CURVES_FILE)
    except Exception:  # noqa: BLE001 - matplotlib trouble must not cost the run
        pass


class EpochScalars(keras.callbacks.Callback):
    """Per-epoch scalars for TensorBoard (logs/train and logs/validation, tags
    epoch_loss, epoch_accuracy, epoch_learning_rate, ...) written with TensorFlow's own
    summary ops, so neither the tensorboard package nor graph/profile dumps are needed."""

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
