"""`train --from`: a new run that starts from a trained model.

Covers: the fine-tuning settings (the source's encoding, network and data feed, a lower
rate, a small folder's budget) and the refusal of a setting that would change the
network or vocabulary, in one line, through the API and the CLI; a tiny run from a tiny
trained checkpoint starts from its weights (the first epoch scores what the source
scored), records where it started, joins the source's programs to the folder's, and
leaves the source folder as it was; the closing advice on made-up histories.
"""

import hashlib
import math

import pytest
from click.testing import CliRunner

from musicgen.runtime import import_tensorflow

import_tensorflow()

from musicgen import api  # noqa: E402
from musicgen import checkpoint as ckpt  # noqa: E402
from musicgen.cli import main  # noqa: E402
from musicgen.config import (  # noqa: E402
    FINE_TUNE,
    FINE_TUNE_RATE_SHARE,
    FineTuneError,
    RunConfig,
    check_fine_tune,
    fine_tune_settings,
    resolve_settings,
)
from musicgen.errors import UsageError  # noqa: E402
from musicgen.trainer import _known_programs, closing_advice, train  # noqa: E402
from tests.music import Track, write_test_midi  # noqa: E402
from tests.test_train import tiny  # noqa: E402

PHRASE = [0, 2, 4, 5, 7, 5, 4, 2, 0, 4, 7, 12, 7, 4, 2, 0]


def _folder(root, name, program):
    """Three files of one repeated phrase in three keys, played on `program`."""
    folder = root / name
    folder.mkdir()
    for i, key in enumerate((48, 50, 53)):
        notes = [(key + step, q, 1.0, 80) for q, step in enumerate(PHRASE * 4)]
        write_test_midi(folder / f"song{i}.mid", [Track(notes, program=program)])
    return folder


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(a tiny checkpoint trained on piano music (program 0) for two epochs, its folder)"""
    root = tmp_path_factory.mktemp("source")
    folder = _folder(root, "piano", 0)
    train(tiny(), folder, root / "source", verbose=0)
    return root / "source", folder


def _contents(folder):
    """{relative path: sha256} of every file under `folder`."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- settings


def test_fine_tune_settings_keep_the_source_and_lower_the_rate():
    source = RunConfig().with_flat({"units": 48, "controls": True, "dropout": 0.5, "seq_len": 64})
    tuned = fine_tune_settings(source)
    assert tuned.encoding == source.encoding and tuned.model == source.model
    assert tuned.train.seq_len == 64
    assert tuned.train.learning_rate == pytest.approx(
        source.train.learning_rate * FINE_TUNE_RATE_SHARE
    )
    for key, value in FINE_TUNE.items():
        assert getattr(tuned.train, key) == value
    # training settings and dropout may change; the network and vocabulary may not
    check_fine_tune(source, tuned.with_flat({"dropout": 0.3, "learning-rate": 1e-4}), "src")
    for change in ({"units": 32}, {"encoding": "tracks"}, {"controls": False}, {"cell": "lstm"}):
        with pytest.raises(FineTuneError, match="{from_checkpoint} src keeps its") as refused:
            check_fine_tune(source, resolve_settings(checkpoint=tuned, flags=change), "src")
        assert "\n" not in str(refused.value)
        assert refused.value.settings == [next(iter(change))]


def test_api_settings_from_a_checkpoint_and_the_cli_refusal(tmp_path):
    source = tmp_path / "band"
    stored = tiny(units=24, learning_rate=0.003)
    ckpt.save_config(source, stored, 100, {"data_dir": "gone"})
    settings = api.train_settings(tmp_path / "mine", from_checkpoint=source, epochs=3)
    assert settings.model == stored.model and settings.encoding == stored.encoding
    assert settings.train.learning_rate == pytest.approx(0.003 * FINE_TUNE_RATE_SHARE)
    assert settings.train.epochs == 3  # an explicit setting wins
    with pytest.raises(UsageError, match="from_checkpoint= .* leave out units= ") as refused:
        api.train_settings(tmp_path / "mine", from_checkpoint=source, units=32)
    assert "dropout=" in str(refused.value)  # a Python caller reads keywords, not options
    with pytest.raises(UsageError, match="does not exist"):
        api.train_settings(tmp_path / "mine", from_checkpoint=tmp_path / "nope")

    runner = CliRunner()
    args = ["train", str(tmp_path), "--from", str(source), "--out", str(tmp_path / "mine")]
    refused = runner.invoke(main, [*args, "--layers", "3"])
    assert refused.exit_code == 2
    assert refused.output.strip().splitlines() == [
        f"Error: --from {source} keeps its network and vocabulary: leave out --layers "
        "(training settings and --dropout may change)"
    ]
    both = runner.invoke(main, [*args, "--resume"])
    assert both.exit_code == 2 and "--resume alone" in both.output


# ----------------------------------------------------------------------------- a run


@pytest.mark.slow
def test_from_starts_from_the_sources_weights_and_keeps_the_source(source, tmp_path):
    source, piano = source
    before = _contents(source)
    tuned = fine_tune_settings(ckpt.read_config(source)[0])
    quick = {"steps_per_epoch": 2, "epochs": 1, "max_minutes": 0}
    # at a rate of ~0 on the source's own folder (the same split), the first epoch
    # scores exactly what the source's best epoch scored, far below a fresh start's
    lines = []
    still = tuned.with_flat({**quick, "learning_rate": 1e-12})
    train(still, piano, tmp_path / "still", from_checkpoint=source, verbose=0, log=lines.append)
    assert any(line.startswith(f"Starting from {source}") for line in lines)
    first = ckpt.read_history(tmp_path / "still")[0]
    best = ckpt.read_state(source)["best_val_loss"]
    assert first["val_loss"] == pytest.approx(best, rel=1e-5)
    start = f"{source} on this folder's validation files: {best:.4f} nats/token"
    assert any(line.startswith(start) for line in lines)
    fresh = math.log(ckpt.read_config(source)[1]["vocab_size"])  # about a fresh start's
    assert first["val_loss"] < fresh - 0.5

    # on a bass folder: where it started is recorded, the source's piano stays known
    bass = _folder(tmp_path, "bass", 33)
    result = train(tuned.with_flat(quick), bass, tmp_path / "mine", from_checkpoint=source,
                   verbose=0)  # fmt: skip
    assert result.epochs == 1
    _, meta = ckpt.read_config(tmp_path / "mine")
    assert meta["started_from"] == {
        "checkpoint": str(source), "epoch": ckpt.read_state(source)["best_epoch"],
        "data_dir": str(piano),
    }  # fmt: skip
    assert meta["data"]["programs"] == {"0": 0, "33": 2}  # the folder's first, at 0 the rest
    assert _contents(source) == before, "the source folder is never changed"
    shown = CliRunner().invoke(main, ["info", str(tmp_path / "mine")])
    assert f"Started from: {source} (its epoch" in shown.output

    with pytest.raises(UsageError, match="another out=") as refused:
        train(tuned, bass, source, from_checkpoint=source, verbose=0)
    assert refused.value.cli_message().endswith("write the new run to another --out")
    assert _contents(source) == before


def test_known_programs_join_the_sources_to_the_folders():
    folder = {"33": 5, "128": 7}
    before = {"0": 40, "33": 12, "48": 9}
    assert _known_programs(folder, before) == {"0": 0, "33": 5, "48": 0, "128": 7}
    assert _known_programs(folder, {}) == folder


# ----------------------------------------------------------------------------- advice


def _history(*val_losses):
    return [{"epoch": i + 1, "loss": 1.0, "val_loss": v} for i, v in enumerate(val_losses)]


def test_advice_says_resume_only_while_validation_improves():
    improving = closing_advice(_history(3.0, 2.5, 2.2), budget_minutes=10)
    assert improving == "The time budget (10 min) is spent; go on with --resume"
    assert closing_advice([], budget_minutes=1) == (
        "The time budget (1 min) is spent; go on with --resume"
    )
    assert closing_advice(_history(3.0, 2.5, 2.2)) is None  # finished: nothing to add
    worse = closing_advice(_history(3.0, 2.5, 2.6, 2.7), budget_minutes=10)
    assert worse == (
        "Validation has not beaten epoch 2 in the last 2 epochs: epoch 2's weights are "
        "the ones kept (best.weights.h5), and more training would only learn the training "
        "files by heart (more music in the folder, or starting from a trained model with --from, would help instead)"
    )
    # the budget's last (annealed) epoch did not help either: no --resume hint
    last = closing_advice(_history(3.0, 2.5, 2.6), budget_minutes=10)
    assert "--resume" not in last and "in the last epoch:" in last
    stopped = closing_advice(_history(2.0, 2.5, 2.6, 2.1, 2.2))  # early stopping
    assert "--resume" not in stopped and "epoch 1's weights" in stopped
