"""Training and checkpoints end to end on a tiny repetitive corpus with a tiny model.

Covers: loss falls; save -> load gives the same predictions; --resume continues the
epoch count, history and optimizer; a checkpoint outlives its data folder; a non-empty
--out is refused; the NaN guard and Ctrl-C leave a loadable folder; the CLI `train`
and `info` commands; the learning-rate schedule (a pure function, and on a toy run
across --resume), the time budget, and history's encoding-independent columns.
"""

import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from musicgen.runtime import import_tensorflow

import_tensorflow()

import keras  # noqa: E402

from musicgen import callbacks  # noqa: E402
from musicgen import checkpoint as ckpt  # noqa: E402
from musicgen.cli import main  # noqa: E402
from musicgen.config import ModelConfig, RunConfig  # noqa: E402
from musicgen.encoding import get_encoding  # noqa: E402
from musicgen.errors import UsageError, UserError  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from musicgen.trainer import train  # noqa: E402
from tests.music import Track, write_test_midi  # noqa: E402

TINY = {
    "layers": 1, "units": 16, "embedding_dim": 8, "dropout": 0.0, "seq_len": 16,
    "batch_size": 8, "epochs": 2, "steps_per_epoch": 6, "learning_rate": 0.01,
    "val_fraction": 0.34, "transpose": 2, "patience": 0, "warmup_steps": 0, "lr_patience": 0,
}  # fmt: skip
CLI_TINY = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]


def tiny(**changes) -> RunConfig:
    return RunConfig().with_flat({**TINY, **changes})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three MIDI files of one repeated four-bar phrase, each in its own key."""
    folder = tmp_path_factory.mktemp("corpus")
    phrase = [0, 2, 4, 5, 7, 5, 4, 2, 0, 4, 7, 12, 7, 4, 2, 0]
    for i, root in enumerate((60, 62, 65)):
        notes = [(root + step, q, 1.0, 80) for q, step in enumerate(phrase * 4)]
        write_test_midi(folder / f"piece{i}.mid", [Track(notes)])
    return folder


def _logits(model, ids):
    return np.asarray(model(np.asarray(ids, np.int32)))


@pytest.mark.slow
def test_loss_falls_and_folder_is_complete(corpus, tmp_path):
    out = tmp_path / "run"
    lines = []
    result = train(tiny(epochs=3), corpus, out, verbose=0, log=lines.append)
    assert lines[0].startswith("Training on CPU")
    assert result.status == "finished" and result.epochs == 3
    history = ckpt.read_history(out)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    assert result.best_val_loss == min(row["val_loss"] for row in history)
    assert math.isclose(result.best_val_perplexity, math.exp(result.best_val_loss))
    for name in ("config.json", "best.weights.h5", "last.weights.h5", "optimizer.npz",
                 "state.json", "history.csv", "split.json", "curves.png"):  # fmt: skip
        assert (out / name).is_file(), name
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    assert not list(out.glob(".tmp-*")), "no temporary files left behind"
    split = json.loads((out / "split.json").read_text())
    assert sorted(split["train"] + split["validation"]) == [f"piece{i}.mid" for i in range(3)]
    state = ckpt.read_state(out)
    assert state["status"] == "finished" and state["epoch"] == 3
    assert state["train_steps"] == 3 * TINY["steps_per_epoch"]
    assert any("perplexity" in line for line in lines)


def test_save_then_load_gives_identical_predictions(tmp_path):
    config = tiny()
    encoding = get_encoding(config.encoding)
    model = build_model(config.model, len(encoding.vocab))
    ckpt.save_config(tmp_path, config, len(encoding.vocab), {"data_dir": "gone"})
    ckpt.save_weights(tmp_path, model, "best")
    loaded = ckpt.load_checkpoint(tmp_path)
    assert loaded.config == config and loaded.info["weights"] == "best.weights.h5"
    ids = [[1, 5, 9, 12, 7], [1, 3, 3, 4, 2]]
    np.testing.assert_array_equal(_logits(model, ids), _logits(loaded.model, ids))
    assert ckpt.load_checkpoint(tmp_path, which="last").info["weights"] == "best.weights.h5"


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "missing")
    with pytest.raises(UserError, match="no config.json"):
        ckpt.load_checkpoint(tmp_path)
    config = tiny()
    vocab = len(get_encoding(config.encoding).vocab)
    ckpt.save_config(tmp_path, config, vocab, {})
    with pytest.raises(UserError, match="no weights"):
        ckpt.load_checkpoint(tmp_path)
    (tmp_path / "best.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(UserError, match="cannot load weights"):
        ckpt.load_checkpoint(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**raw, "vocab_size": vocab + 1}))
    with pytest.raises(UserError, match="vocabulary"):
        ckpt.load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**raw, "model": {"unitz": 3}}))
    with pytest.raises(UserError, match="unitz"):
        ckpt.load_checkpoint(tmp_path)


def test_optimizer_round_trip_and_mismatch(tmp_path):
    import keras

    model = build_model(ModelConfig(units=8, embedding_dim=4, layers=1), 20)
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    for variable in optimizer.variables:
        variable.assign(np.full(variable.shape, 3, variable.dtype))
    ckpt.save_optimizer(tmp_path, optimizer)
    fresh = keras.optimizers.Adam()
    fresh.build(model.trainable_variables)
    ckpt.load_optimizer(tmp_path, fresh)
    assert all(np.all(np.asarray(v) == 3) for v in fresh.variables)
    other = keras.optimizers.Adam()
    other.build(
        build_model(ModelConfig(units=4, embedding_dim=4, layers=1), 20).trainable_variables
    )
    with pytest.raises(UserError, match="does not fit"):
        ckpt.load_optimizer(tmp_path, other)


@pytest.mark.slow
def test_resume_continues_epochs_history_and_optimizer(corpus, tmp_path):
    out = tmp_path / "run"
    train(tiny(epochs=2), corpus, out, verbose=0)
    before = ckpt.read_history(out)
    result = train(tiny(epochs=3), corpus, out, resume=True, verbose=0)
    assert result.epochs == 3
    history = ckpt.read_history(out)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[:2] == before
    with np.load(out / "optimizer.npz") as saved:
        assert "iteration" in str(saved["paths"][0])
        assert int(saved["v0000"]) == 3 * TINY["steps_per_epoch"]
    assert ckpt.read_state(out)["train_steps"] == 3 * TINY["steps_per_epoch"]
    lines = []
    again = train(tiny(epochs=3), corpus, out, resume=True, verbose=0, log=lines.append)
    assert again.status == "already finished" and "already finished" in lines[-1]
    with pytest.raises(UsageError, match="model.units"):
        train(tiny(epochs=4, units=32), corpus, out, resume=True, verbose=0)


def test_averaged_weights_swap_the_average_in_and_the_trained_weights_back_exactly():
    model = build_model(ModelConfig(units=8, embedding_dim=4, layers=1), 20)
    variables = model.trainable_variables
    optimizer = keras.optimizers.Adam(0.1, use_ema=True, ema_momentum=0.5)
    optimizer.build(variables)
    averaged = callbacks.AveragedWeights(model, optimizer)
    start = [v.numpy().copy() for v in variables]
    with averaged:  # before the first step the average is not the model's yet
        assert all(np.array_equal(v.numpy(), w) for v, w in zip(variables, start, strict=True))
    expected = None
    for step in range(3):
        optimizer.apply([np.full(v.shape, step + 1.0, "float32") for v in variables], variables)
        now = [v.numpy().copy() for v in variables]  # the first step's weights, then halves
        expected = (
            now
            if expected is None
            else [0.5 * a + 0.5 * w for a, w in zip(expected, now, strict=True)]
        )
    with averaged:
        for variable, average in zip(variables, expected, strict=True):
            np.testing.assert_allclose(variable.numpy(), average, rtol=1e-6)
    assert all(np.array_equal(v.numpy(), w) for v, w in zip(variables, now, strict=True))
    assert not all(np.allclose(a, w) for a, w in zip(expected, now, strict=True))
    plain = keras.optimizers.Adam()
    plain.build(variables)
    assert callbacks.AveragedWeights(model, plain).pairs == []


@pytest.mark.slow
def test_a_run_with_average_epochs_validates_and_keeps_the_average(corpus, tmp_path):
    out = tmp_path / "run"
    lines = []
    train(tiny(epochs=1, average_epochs=1), corpus, out, verbose=0, log=lines.append)
    assert any("their average over about 6 steps" in line for line in lines)
    config = ckpt.load_checkpoint(out).config
    best = ckpt.load_checkpoint(out, which="best").model.trainable_variables
    last = ckpt.load_checkpoint(out, which="last").model.trainable_variables
    with np.load(out / "optimizer.npz") as saved:
        paths = [str(p) for p in saved["paths"]]
        averages = [saved[f"v{i:04d}"] for i, p in enumerate(paths) if "average" in p]
    assert config.train.average_epochs == 1 and len(averages) == len(best)
    for kept, average in zip(best, averages, strict=True):  # best: epoch 1's average, bit for bit
        np.testing.assert_array_equal(kept.numpy(), average)
    assert not all(np.array_equal(b.numpy(), t.numpy()) for b, t in zip(best, last, strict=True))
    result = train(tiny(epochs=2, average_epochs=1), corpus, out, resume=True, verbose=0)
    assert result.epochs == 2


@pytest.mark.slow
def test_checkpoint_outlives_data_and_refuses_reuse(corpus, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(corpus, data)
    out = tmp_path / "run"
    train(tiny(epochs=1), data, out, verbose=0)
    shutil.rmtree(data)
    loaded = ckpt.load_checkpoint(out)
    assert _logits(loaded.model, [[1, 4, 5]]).shape == (1, 3, len(loaded.encoding.vocab))
    with pytest.raises(UsageError, match="not empty"):
        train(tiny(epochs=1), corpus, out, verbose=0)
    result = train(tiny(epochs=1), corpus, out, force=True, verbose=0)
    assert result.epochs == 1
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="notes.txt"):
        train(tiny(epochs=1), corpus, out, force=True, verbose=0)
    assert (out / "notes.txt").exists()


class _Poison(callbacks.EpochScalars):
    """Turns every weight into NaN at the start of the second epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            for variable in self.model.trainable_variables:
                variable.assign(variable * np.nan)


class _CtrlC(callbacks.EpochScalars):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_nan_guard_keeps_the_last_good_checkpoint(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(callbacks, "EpochScalars", _Poison)
    out = tmp_path / "run"
    with pytest.raises(UserError, match="diverged at epoch 2.*last good checkpoint"):
        train(tiny(epochs=3), corpus, out, verbose=0)
    state = ckpt.read_state(out)
    assert state["status"] == "stopped: training diverged at epoch 2" and state["epoch"] == 1
    assert len(ckpt.read_history(out)) == 1
    loaded = ckpt.load_checkpoint(out, which="last")
    assert np.all(np.isfinite(_logits(loaded.model, [[1, 4, 5]])))


@pytest.mark.slow
def test_ctrl_c_keeps_finished_epochs(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(callbacks, "EpochScalars", _CtrlC)
    out = tmp_path / "run"
    lines = []
    result = train(tiny(epochs=3), corpus, out, verbose=0, log=lines.append)
    assert result.status == "interrupted" and result.epochs == 1
    assert "resume with --resume" in " ".join(lines)
    assert ckpt.read_state(out)["status"] == "interrupted"
    ckpt.load_checkpoint(out)


def test_gpu_request_without_gpu_is_a_usage_error(corpus, tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(UsageError, match="no GPU"):
        train(tiny(device="gpu"), corpus, tmp_path / "run", verbose=0)


@pytest.mark.slow
def test_cli_train_resume_and_info(corpus, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli-run"
    config_file = tmp_path / "settings.json"
    config_file.write_text(json.dumps({"model": {"units": 12}, "seed": 3}))
    args = ["train", str(corpus), "--out", str(out), *CLI_TINY, "--epochs=1"]
    result = runner.invoke(main, [*args, "--config", str(config_file), "--units=16"])
    assert result.exit_code == 0, result.output
    assert "Training on CPU" in result.output and "Checkpoint:" in result.output
    config, meta = ckpt.read_config(out)
    assert config.model.units == 16 and config.train.seed == 3  # option beats file
    assert config.train.epochs == 1 and meta["vocab_size"] > 3

    refused = runner.invoke(main, args)
    assert refused.exit_code == 2 and "--resume" in refused.output
    changed = runner.invoke(main, ["train", "--out", str(out), "--resume", "--units=32"])
    assert changed.exit_code == 2 and "model.units" in changed.output
    resumed = runner.invoke(main, ["train", "--out", str(out), "--resume", "--epochs=2", "-q"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output == ""
    assert len(ckpt.read_history(out)) == 2

    shown = runner.invoke(main, ["info", str(out)])
    assert shown.exit_code == 0, shown.output
    for text in ("Best validation loss", "1 x 16 GRU", "best.weights.h5", "tensorflow"):
        assert text in shown.output
    as_json = json.loads(runner.invoke(main, ["info", str(out), "--json"]).output)
    assert as_json["state"]["epoch"] == 2 and as_json["config"]["model"]["units"] == 16


def test_cli_rejects_bad_settings(tmp_path):
    runner = CliRunner()
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps({"unitz": 3}))
    result = runner.invoke(main, ["train", str(tmp_path), "--config", str(bad_file)])
    assert result.exit_code == 2 and "unitz" in result.output
    assert runner.invoke(main, ["train", "--units", "0"]).exit_code == 2
    assert runner.invoke(main, ["train", "--cell", "rnn"]).exit_code == 2
    missing = runner.invoke(main, ["info", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not found" in missing.output


@pytest.mark.slow
def test_one_file_gru_performance_validates_on_training_data(corpus, tmp_path):
    data = tmp_path / "one"
    data.mkdir()
    shutil.copy(corpus / "piece0.mid", data / "piece0.mid")
    lines = []
    result = train(
        tiny(epochs=1, cell="gru", encoding="performance"), data, tmp_path / "run",
        verbose=0, log=lines.append,
    )  # fmt: skip
    assert result.epochs == 1 and math.isfinite(result.best_val_loss)
    assert any("validating on the training data" in line for line in lines)
    loaded = ckpt.load_checkpoint(tmp_path / "run")
    assert loaded.config.model.cell == "gru" and loaded.encoding.name == "performance"


# ----------------------------------------------------------------------------- schedule, budget


def test_schedule_warms_up_then_halves_after_a_stall():
    rate = callbacks.scheduled_rate
    assert rate(1.0, 0, 4, 0) == 0.25 and rate(1.0, 3, 4, 0) == 1.0 and rate(1.0, 99, 4, 0) == 1.0
    assert rate(0.01, 0, 0, 0) == 0.01 and rate(0.01, 50, 10, 2) == 0.0025
    halvings = callbacks.plateau_halvings
    assert halvings([], 2) == 0 and halvings([3.0, 2.0, 1.0], 2) == 0
    assert halvings([3.0, 3.5, 3.2], 2) == 1  # two epochs without progress: halve once
    assert halvings([3.0, 3.5, 3.2, 3.1], 2) == 1  # the count starts again after a halving
    assert halvings([3.0, 3.5, 3.2, 3.1, 3.3], 2) == 2
    assert halvings([3.0, 2.9995, 2.9991], 2) == 1  # below 0.1% is no progress
    assert halvings([3.0, 3.5, 2.0, 3.5], 2) == 0  # progress resets the count
    assert halvings([3.0, 3.5, 3.5, 3.5], 0) == 0  # patience 0: never
    assert halvings([float("nan"), 3.0, 3.0], 1) == 2
    assert halvings([1.0] * 50, 1) == callbacks.MAX_HALVINGS


def _rows(val_losses, losses, dropouts=None):
    dropouts = dropouts or [0.2] * len(losses)
    return [
        {"val_loss": v, "loss": t, "dropout": d}
        for v, t, d in zip(val_losses, losses, dropouts, strict=True)
    ]


def test_a_stall_while_the_training_loss_falls_raises_dropout_before_the_rate_halves():
    answers = callbacks.plateau_answers
    step = callbacks.DROPOUT_STEP
    # validation stalls from epoch 2 on while the training loss keeps falling: learning
    # the training music by heart, answered by more dropout, up to the ceiling
    val = [3.0, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6]
    falling = [3.0, 2.5, 1.8, 1.6, 1.5, 1.3, 1.1, 1.0]
    assert answers(_rows(val[:2], falling[:2]), 2, dropout=0.2, max_dropout=0.5) == (
        callbacks.PlateauAnswers(0, 0.2)
    )
    first = answers(_rows(val[:4], falling[:4]), 2, dropout=0.2, max_dropout=0.5)
    assert first == callbacks.PlateauAnswers(0, pytest.approx(0.2 + step))
    # the next stall compares only epochs at the new dropout (epochs 4-5 below)
    risen = [0.2] * 4 + [0.35] * 4
    second = answers(_rows(val[:6], falling[:6], risen[:6]), 2, dropout=0.2, max_dropout=0.5)
    assert second == callbacks.PlateauAnswers(0, 0.5)
    # at the ceiling, a stall halves the rate
    third = answers(_rows(val, falling, risen), 2, dropout=0.2, max_dropout=0.5)
    assert third == callbacks.PlateauAnswers(1, 0.5)
    # the training loss stalled too: the rate halves, dropout stays
    flat = [3.0, 2.4, 2.4, 2.4]
    assert answers(_rows(val[:4], flat[:4]), 2, dropout=0.2, max_dropout=0.5) == (
        callbacks.PlateauAnswers(1, 0.2)
    )
    # a training loss measured under less dropout is not compared with one under more
    jumped = _rows([3.0, 2.0, 2.1, 2.2], [3.0, 1.5, 2.0, 2.0], [0.2, 0.2, 0.35, 0.35])
    assert answers(jumped, 2, dropout=0.35, max_dropout=0.5).halvings == 1
    # a ceiling at or below the start: the plain halving schedule
    for ceiling in (0.0, 0.2):
        plain = answers(_rows(val, falling), 2, dropout=0.2, max_dropout=ceiling)
        assert plain == callbacks.PlateauAnswers(callbacks.plateau_halvings(val, 2), 0.2)
    assert answers(_rows(val, falling), 0, dropout=0.2, max_dropout=0.5).halvings == 0


def test_a_stall_with_the_training_loss_as_high_as_validation_halves_the_rate():
    # checkpoints/bach's 115-minute run, epochs 29-32 (nats per token): the training loss
    # fell, but under dropout it stood within 4% of validation: nothing learned by heart
    val = [0.7606, 0.7547, 0.7564, 0.7623]
    train = [0.7474, 0.7412, 0.7393, 0.7329]
    answers = callbacks.plateau_answers(_rows(val, train), 2, dropout=0.2, max_dropout=0.5)
    assert answers == callbacks.PlateauAnswers(1, 0.2)
    # the 130-minute run, epochs 42-44: validation 1.10 x training, and the rise to 0.35
    # it got then took validation from 7.44 to 7.51-7.53 nats per quarter note
    later = _rows([0.73126, 0.73177, 0.73362], [0.67303, 0.66624, 0.66669])
    assert callbacks.plateau_answers(later, 2, dropout=0.2, max_dropout=0.5).halvings == 1
    # the same stall with the training loss a third below validation: dropout rises
    lower = [t * 0.67 for t in train]
    risen = callbacks.plateau_answers(_rows(val, lower), 2, dropout=0.2, max_dropout=0.5)
    assert risen == callbacks.PlateauAnswers(0, pytest.approx(0.2 + callbacks.DROPOUT_STEP))


def test_the_schedule_logs_each_epochs_dropout_and_decides_the_next(tmp_path):
    optimizer = type("Optimizer", (), {"learning_rate": _Rate()})()
    config = tiny(learning_rate=0.01, lr_patience=1, dropout=0.1, max_dropout=0.4)
    schedule = callbacks.LearningRateSchedule(optimizer, config, [], 0)
    logged = []
    for epoch, (val, loss) in enumerate([(2.0, 3.0), (2.5, 1.8), (2.6, 1.0), (2.7, 0.5)]):
        schedule.on_epoch_begin(epoch)
        logs = {"loss": loss, "val_loss": val}
        schedule.on_epoch_end(epoch, logs)
        logged.append(logs["dropout"])
    # epoch 1 stalls while the training loss falls: 0.25 from epoch 2; epoch 2 stalls
    # again, but one epoch at 0.25 says nothing yet; with epoch 3 it rises again
    assert logged == pytest.approx([0.1, 0.1, 0.25, 0.25])
    assert schedule.dropout == pytest.approx(0.4) and schedule.halvings == 0
    # --resume: the same decisions from history.csv's rows
    rows = [
        {"loss": t, "val_loss": v, "dropout": d}
        for (v, t), d in zip([(2.0, 3.0), (2.5, 1.8), (2.6, 1.0), (2.7, 0.5)], logged, strict=True)
    ]
    resumed = callbacks.LearningRateSchedule(optimizer, config, rows, 40)
    assert resumed.dropout == pytest.approx(0.4) and resumed.halvings == 0


@pytest.mark.slow
def test_train_applies_a_risen_dropout_and_logs_it(corpus, tmp_path, monkeypatch):
    # every epoch's stall answered with more dropout (the answer itself is tested above)
    def rising(rows, patience, *, dropout=0.0, max_dropout=0.0, delta=0.0):
        return callbacks.PlateauAnswers(0, min(max_dropout, dropout + 0.15 * len(rows)))

    monkeypatch.setattr(callbacks, "plateau_answers", rising)
    lines = []
    out = tmp_path / "run"
    train(tiny(epochs=3, dropout=0.1, max_dropout=0.3), corpus, out, verbose=0, log=lines.append)
    assert [row["dropout"] for row in ckpt.read_history(out)] == pytest.approx([0.1, 0.25, 0.3])
    assert sum("dropout 0.1 -> 0.25 (validation stalled" in line for line in lines) == 1
    assert ckpt.read_config(out)[0].model.dropout == 0.1  # config.json keeps the start


def test_budget_anneal_brings_the_rate_down_over_the_budgets_last_quarter():
    anneal, floor = callbacks.budget_anneal, callbacks.ANNEAL_FLOOR
    assert anneal(None) == 1.0  # no budget: no anneal
    assert anneal(1.0) == anneal(0.5) == anneal(callbacks.ANNEAL_SHARE) == 1.0
    assert anneal(0.0) == pytest.approx(floor) and anneal(-0.1) == pytest.approx(floor)
    assert anneal(0.125) == pytest.approx(floor + (1 - floor) / 2)  # halfway through it
    assert anneal(0.1, share=0.2, floor=0.0) == pytest.approx(0.5)
    assert callbacks.scheduled_rate(0.01, 50, 10, 1, anneal=0.5) == pytest.approx(0.0025)


class _Rate:
    """The optimizer's learning-rate variable, as the schedule uses it."""

    def __init__(self):
        self.value = None

    def assign(self, value):
        self.value = value


def test_schedule_follows_the_budget_left_at_every_step():
    optimizer = type("Optimizer", (), {"learning_rate": _Rate()})()
    config = tiny(learning_rate=0.01, warmup_steps=2, lr_patience=1)
    left = [1.0]
    schedule = callbacks.LearningRateSchedule(
        optimizer, config, [], 0, fraction_left=lambda: left[0]
    )
    schedule.on_train_begin()
    rates = []
    for fraction in (0.9, 0.5, 0.25, 0.125, 0.0):
        left[0] = fraction
        schedule.on_train_batch_end(0)
        rates.append(optimizer.learning_rate.value)
    floor = callbacks.ANNEAL_FLOOR
    expected = [0.01, 0.01, 0.01, 0.01 * (floor + (1 - floor) / 2), 0.01 * floor]
    assert rates == pytest.approx(expected)
    # a stall halves the annealed rate too; its epoch's rate is that of its last step
    logs = {"val_loss": 2.0}
    schedule.on_epoch_end(0, logs)
    assert logs["learning_rate"] == pytest.approx(0.01 * (floor + (1 - floor) / 2))
    schedule.on_epoch_end(1, {"val_loss": 2.0})
    assert optimizer.learning_rate.value == pytest.approx(0.01 * floor / 2)


def test_settling_stalls_then_anneals_then_stops():
    settle = callbacks.settling
    assert settle([3.0, 2.0, 1.0], 2) == callbacks.Settling(None, False)
    assert settle([3.0, 3.5, 3.2] * 5, 0) == callbacks.Settling(None, False)  # never
    # two epochs without progress: the anneal begins at epoch 3 and lasts 3 epochs...
    stalled = [3.0, 3.5, 3.2]
    assert settle(stalled, 2) == callbacks.Settling(3, False)
    assert settle(stalled + [3.1, 3.1], 2) == callbacks.Settling(3, False)
    # ...and the first epoch from its last one on without progress ends the run
    assert settle(stalled + [3.1, 3.1, 3.1], 2) == callbacks.Settling(3, True)
    assert settle(stalled + [3.1, 2.9, 2.8], 2) == callbacks.Settling(3, False)
    assert settle(stalled + [3.1, 2.9, 2.8, 2.7, 2.75], 2) == callbacks.Settling(3, True)
    assert settle(stalled, 2, anneal_epochs=0) == callbacks.Settling(3, True)  # plain stop
    assert settle([float("nan"), 3.0, 2.0], 2) == callbacks.Settling(None, False)  # 3.0 counts
    anneal, floor = callbacks.settle_anneal, callbacks.ANNEAL_FLOOR
    assert anneal(-1, 10) == 1.0 and anneal(9, 10) == pytest.approx(floor)
    assert anneal(4, 10) == pytest.approx(floor + (1 - floor) / 2) and anneal(50, 10) == floor


class _FakeClock:
    """time.monotonic's stand-in: `seconds` move only when a test says so."""

    def __init__(self):
        self.seconds = 1000.0

    def __call__(self):
        return self.seconds


def _toy_run(out, config, val_losses, *, steps, clock, seconds_per_step=0.0):
    """trainer._fit's calls to the run's callbacks (schedule, writer, early stopping,
    time budget), with a tiny real model whose weights are all `epoch + 1` after each
    epoch and the validation losses scripted: (each step's rate, the callbacks)."""
    cfg = config.train
    model = build_model(config.model, 12)
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    optimizer.build(model.trainable_variables)
    budget = callbacks.TimeBudget(cfg.max_minutes, clock(), clock=clock)
    named = [
        callbacks.LearningRateSchedule(
            optimizer, config, [], 0, budget.fraction_left, steps_per_epoch=steps
        ),
        callbacks.CheckpointWriter(out, config, {"epoch": 0}, clock(), optimizer),
        callbacks.EarlyStopping([], cfg.patience),
        budget,
    ]
    model.stop_training, rates = False, []
    for callback in named:
        callback.set_model(model)
        callback.on_train_begin()
    for epoch, val_loss in enumerate(val_losses):
        for callback in named:
            callback.on_epoch_begin(epoch)
        for index in range(steps):
            rates.append(float(optimizer.learning_rate.numpy()))
            clock.seconds += seconds_per_step
            for callback in named:
                callback.on_train_batch_end(index, {"loss": 1.0})
            if model.stop_training:
                break
        for variable in model.trainable_variables:
            variable.assign(np.full(variable.shape, epoch + 1.0, np.float32))
        for callback in named:
            callback.on_epoch_end(epoch, {"loss": 1.0, "val_loss": val_loss})
        if model.stop_training:
            break
    return rates, named


def test_patience_anneals_the_rate_before_it_stops_and_keeps_the_best(tmp_path):
    config = tiny(learning_rate=0.01, patience=2, max_minutes=0)
    steps, settle = 4, callbacks.SETTLE_EPOCHS
    # best at epoch 2; epochs 3-4 stall; the anneal (epochs 5-7) improves once (epoch 6),
    # then epoch 7 does not: the run stops there, though the script goes on
    losses = [3.0, 2.0, 2.5, 2.4, 2.2, 1.9, 1.95, 1.0, 1.0]
    rates, (_, writer, early, budget) = _toy_run(
        tmp_path, config, losses, steps=steps, clock=_FakeClock()
    )
    assert early.stopped_epoch == 7 and not budget.reached
    assert len(rates) == 7 * steps and ckpt.read_state(tmp_path)["epoch"] == 7
    floor = callbacks.ANNEAL_FLOOR
    assert rates[: 4 * steps] == pytest.approx([0.01] * 4 * steps)  # full rate till the stall
    expected = [0.01 * callbacks.settle_anneal(i, settle * steps) for i in range(settle * steps)]
    assert rates[4 * steps :] == pytest.approx(expected)
    assert rates[-1] == pytest.approx(0.01 * floor)  # settled at the end
    assert np.all(np.diff(rates[4 * steps :]) < 0)  # falling at every step
    # the best epoch's weights are the ones kept as best.weights.h5
    assert writer.state["best_epoch"] == 6 and writer.state["best_val_loss"] == 1.9
    for which, epoch in (("best", 6.0), ("last", 7.0)):
        model = build_model(config.model, 12)
        ckpt.load_weights(model, ckpt.weights_path(tmp_path, which))
        assert all(np.all(np.asarray(v) == epoch) for v in model.trainable_variables)


def test_a_run_the_budget_ends_still_anneals(tmp_path):
    # 1 minute, 6 s a step: the budget ends the run after 10 steps (the third epoch),
    # its last quarter (steps 8-10) annealed, though validation never stalls
    config = tiny(learning_rate=0.01, patience=2, max_minutes=1)
    rates, (_, writer, early, budget) = _toy_run(
        tmp_path, config, [3.0, 2.0, 1.0, 0.5], steps=4, clock=_FakeClock(), seconds_per_step=6
    )
    assert budget.reached and early.stopped_epoch == 0 and len(rates) == 10
    floor = callbacks.ANNEAL_FLOOR
    assert rates[:8] == pytest.approx([0.01] * 8)
    assert rates[8:] == pytest.approx([0.01 * callbacks.budget_anneal(f) for f in (0.2, 0.1)])
    assert writer.optimizer.learning_rate.numpy() == pytest.approx(0.01 * floor)
    assert writer.state["best_epoch"] == 3 and ckpt.read_state(tmp_path)["epoch"] == 3


@pytest.mark.slow
def test_train_anneals_after_patience_and_stops_as_settling_says(corpus, tmp_path):
    # a rate high enough that validation soon stops improving; lr_patience 0: no halvings
    base, steps, patience = 0.05, TINY["steps_per_epoch"], 1
    result = train(
        tiny(epochs=12, patience=patience, learning_rate=base), corpus, tmp_path, verbose=0
    )
    history = ckpt.read_history(tmp_path)
    losses = [row["val_loss"] for row in history]
    found = callbacks.settling(losses, patience)
    assert found.stop == result.status.startswith("finished: early stopping")
    assert found.anneal_from is not None, "validation never stalled: raise the rate"
    for epoch, row in enumerate(history):  # each epoch's rate is that of its last step
        into = (epoch - found.anneal_from + 1) * steps - 1
        total = callbacks.SETTLE_EPOCHS * steps
        assert row["learning_rate"] == pytest.approx(base * callbacks.settle_anneal(into, total))
    best = min(range(len(losses)), key=losses.__getitem__)
    assert result.best_epoch == best + 1 and ckpt.read_state(tmp_path)["best_epoch"] == best + 1


def test_an_early_stopped_folder_is_already_finished_on_resume():
    from musicgen.trainer import _already_finished

    rows = [{"val_loss": v} for v in (3.0, 2.0, 2.5, 2.4)]
    assert not _already_finished({"epoch": 4, "history": rows}, 10, 2)  # annealing next
    rows += [{"val_loss": 2.3}] * 3
    assert _already_finished({"epoch": 7, "history": rows}, 10, 2)
    assert not _already_finished({"epoch": 7, "history": rows}, 10, 0)


def _expected_rates(history, steps_per_epoch, base, warmup, lr_patience):
    """Each epoch's rate (that of its last step) from the schedule's pure functions."""
    losses = [row["val_loss"] for row in history]
    return [
        callbacks.scheduled_rate(
            base, (e + 1) * steps_per_epoch - 1, warmup,
            callbacks.plateau_halvings(losses[:e], lr_patience),
        )
        for e in range(len(history))
    ]  # fmt: skip


@pytest.mark.slow
def test_rate_halves_after_a_stall_and_resume_continues_the_schedule(corpus, tmp_path):
    # a rate so small that validation cannot improve by 0.1%: every epoch after the
    # first is a stall, so with lr_patience 1 the rate halves after each
    base, warmup, steps = 1e-5, 8, TINY["steps_per_epoch"]
    config = {"learning_rate": base, "warmup_steps": warmup, "lr_patience": 1, "max_dropout": 0}
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(tiny(epochs=4, **config), corpus, whole, verbose=0)
    train(tiny(epochs=2, **config), corpus, parts, verbose=0)
    train(tiny(epochs=4, **config), corpus, parts, resume=True, verbose=0)
    history, resumed = ckpt.read_history(whole), ckpt.read_history(parts)
    rates = [row["learning_rate"] for row in history]
    assert rates == pytest.approx(_expected_rates(history, steps, base, warmup, 1), rel=1e-6)
    assert rates[0] == pytest.approx(base * 6 / 8) and rates[1] == pytest.approx(base)
    assert rates[2] == pytest.approx(rates[1] / 2) and rates[3] == pytest.approx(rates[1] / 4)
    assert [row["learning_rate"] for row in resumed] == pytest.approx(rates, rel=1e-6)
    np.testing.assert_allclose(
        [row["val_loss"] for row in resumed], [row["val_loss"] for row in history], rtol=1e-5
    )
    assert _saved_rate(parts) == pytest.approx(base / 8, rel=1e-6)  # the next epoch's rate


def _saved_rate(out):
    """The learning rate in a checkpoint's optimizer.npz (the next step's, for --resume)."""
    with np.load(out / "optimizer.npz") as saved:
        paths = [str(p) for p in saved["paths"]]
        return float(saved[f"v{paths.index(next(p for p in paths if 'learning_rate' in p)):04d}"])


@pytest.mark.slow
def test_history_has_the_rate_and_nats_per_quarter_and_note(corpus, tmp_path):
    out = tmp_path / "run"
    result = train(tiny(epochs=2), corpus, out, verbose=0)
    _, meta = ckpt.read_config(out)
    # the validation file: one of the corpus's pieces, 64 one-quarter notes
    assert meta["data"]["files"]["validation"] == 1
    assert meta["data"]["validation_music"] == {"quarters": 64.0, "notes": 64}
    targets = meta["data"]["tokens"]["validation"] - 1  # every token after the first
    history = ckpt.read_history(out)
    for row in history:
        assert row["learning_rate"] == pytest.approx(TINY["learning_rate"])
        nats = row["val_loss"] * targets
        assert row["val_nats_per_quarter"] == pytest.approx(nats / 64, rel=1e-5)
        assert row["val_nats_per_note"] == pytest.approx(nats / 64, rel=1e-5)
    best = min(history, key=lambda row: row["val_loss"])
    metrics = ckpt.read_state(out)["metrics"]
    assert metrics["epoch"] == best["epoch"] == result.best_epoch
    for name in ("val_loss", "val_nats_per_quarter", "val_nats_per_note", "learning_rate"):
        assert metrics[name] == pytest.approx(best[name]) == result.metrics[name]


@pytest.mark.slow
def test_time_budget_stops_cleanly_with_a_complete_checkpoint(corpus, tmp_path):
    out = tmp_path / "run"
    lines = []
    # 0.01 s: spent before the first step ends, so the first epoch stops after one step
    result = train(tiny(epochs=5, max_minutes=0.01 / 60), corpus, out, verbose=0, log=lines.append)
    assert result.status == "finished (time budget)" and result.epochs == 1
    state = ckpt.read_state(out)
    assert state["status"] == "finished (time budget)"
    assert state["epoch"] == 1 and state["train_steps"] == 1
    assert len(ckpt.read_history(out)) == 1 and result.best_epoch == 1
    for which in ("best", "last"):
        loaded = ckpt.load_checkpoint(out, which=which)
        assert np.all(np.isfinite(_logits(loaded.model, [[1, 4, 5]])))
    assert any("time budget" in line for line in lines)
    # the budget was spent at the first step, so the rate saved for the next is annealed
    assert _saved_rate(out) == pytest.approx(TINY["learning_rate"] * callbacks.ANNEAL_FLOOR)
    # --resume goes on (with a new budget) from the step where the budget stopped it, at
    # the rate its own budget gives (here none: the full rate)
    again = train(tiny(epochs=2, max_minutes=0), corpus, out, resume=True, verbose=0)
    assert again.status == "finished" and again.epochs == 2
    assert ckpt.read_state(out)["train_steps"] == 1 + TINY["steps_per_epoch"]
    assert ckpt.read_history(out)[1]["learning_rate"] == pytest.approx(TINY["learning_rate"])


def test_an_epoch_is_at_least_min_steps_per_epoch(corpus, tmp_path):
    import re

    lines = []

    def stop(line):
        lines.append(line)
        if line.startswith("Model:"):
            raise KeyboardInterrupt  # the plan is logged; no need to train

    with pytest.raises(KeyboardInterrupt):
        train(tiny(steps_per_epoch=0, min_steps_per_epoch=37), corpus, tmp_path / "r", log=stop)
    assert re.search(r"\b37 steps of 8 x 16 tokens per epoch", lines[-1])
