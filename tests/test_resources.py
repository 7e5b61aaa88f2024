"""Full disks, read-only folders, too little memory: one clear line, nothing lost.

Root ignores chmod, so an unwritable place is simulated by making `os.replace` or
`tempfile.mkstemp` raise OSError(ENOSPC / EROFS), and TensorFlow's out-of-memory
error by making the training loop (`train._fit`) raise it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from musicgen.runtime import import_tensorflow

tf = import_tensorflow()

from musicgen import atomic, dataset  # noqa: E402
from musicgen import checkpoint as ckpt  # noqa: E402
from musicgen import trainer as train_module  # noqa: E402
from musicgen.cli import main  # noqa: E402
from musicgen.config import EncodingConfig, ModelConfig, RunConfig  # noqa: E402
from musicgen.encoding import get_encoding  # noqa: E402
from musicgen.errors import UserError  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from musicgen.trainer import train  # noqa: E402
from tests.hostile import good_midi  # noqa: E402

TINY = {"layers": 1, "units": 8, "embedding_dim": 8, "seq_len": 16, "batch_size": 4,
        "epochs": 1, "steps_per_epoch": 2, "val_fraction": 0.34, "patience": 0}  # fmt: skip
CLI_TINY = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]


def _fail_with(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(3):
        good_midi(folder / f"piece{i}.mid", root=55 + i)
    return folder


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """A finished one-epoch checkpoint (copied by tests that change it)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    train(RunConfig().with_flat(TINY), corpus, out, verbose=0)
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# ----------------------------------------------------------------------------- full disk


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
@pytest.mark.parametrize("where", ["replace", "mkstemp"])
def test_checkpoint_writes_fail_cleanly_and_keep_the_old_files(tmp_path, monkeypatch, code, where):
    config = RunConfig(model=ModelConfig(layers=1, units=8, embedding_dim=8))
    vocab = len(get_encoding(config.encoding).vocab)
    model = build_model(config.model, vocab)
    folder = tmp_path / "ckpt"
    ckpt.save_config(folder, config, vocab, {})
    ckpt.save_weights(folder, model, "best")
    ckpt.save_state(folder, {"epoch": 1, "status": "finished"})
    before = _snapshot(folder)

    target = (atomic.os, "replace") if where == "replace" else (atomic.tempfile, "mkstemp")
    monkeypatch.setattr(*target, _fail_with(code))
    for save in (
        lambda: ckpt.save_weights(folder, model, "best"),
        lambda: ckpt.save_state(folder, {"epoch": 2}),
        lambda: ckpt.save_config(folder, config, vocab, {}),
    ):
        with pytest.raises(UserError) as raised:
            save()
        assert str(raised.value) == f"cannot write checkpoint to {folder}: {os.strerror(code)}"
    monkeypatch.undo()
    assert _snapshot(folder) == before and not list(folder.glob(".tmp-*"))
    assert ckpt.load_checkpoint(folder).config == config


@pytest.mark.slow
def test_train_on_a_full_disk_says_so_and_keeps_the_last_epoch(trained, corpus, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = _snapshot(out)
    mp = pytest.MonkeyPatch()
    mp.setattr(atomic.os, "replace", _fail_with(errno.ENOSPC))
    try:
        result = CliRunner().invoke(
            main, ["train", str(corpus), "--out", str(out), "--resume", "--epochs", "2", "-q"]
        )
    finally:
        mp.undo()
    assert result.exit_code == 1, result.output
    assert result.stderr == f"Error: cannot write checkpoint to {out}: No space left on device\n"
    assert _snapshot(out) == before  # every file as the last good epoch left it
    assert ckpt.read_state(out)["epoch"] == 1
    ckpt.load_checkpoint(out)


def test_prepare_works_when_the_cache_cannot_be_written(tmp_path, monkeypatch):
    folder = tmp_path / "music"
    folder.mkdir()
    good_midi(folder / "a.mid")
    monkeypatch.setattr(atomic.tempfile, "mkstemp", _fail_with(errno.EROFS))
    data = dataset.prepare(
        folder, EncodingConfig(name="remi"), cache_dir=tmp_path / "cache", workers=1
    )
    assert [f.path for f in data.files] == ["a.mid"]


# ----------------------------------------------------------------------------- memory


@pytest.mark.slow
@pytest.mark.parametrize(
    "error",
    [
        tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape"),
        MemoryError(),
    ],  # fmt: skip
)
def test_out_of_memory_suggests_a_smaller_batch(corpus, tmp_path, monkeypatch, error):
    def fit(*args, **kwargs):
        raise error

    monkeypatch.setattr(train_module, "_fit", fit)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(corpus), "--out", str(out), *CLI_TINY, "-q"])
    assert result.exit_code == 1
    line = result.stderr
    assert line.startswith("Error: out of memory with --batch-size 4") and line.count("\n") == 1
    assert "try a smaller --batch-size (e.g. 2)" in line and "Traceback" not in result.output
    assert ckpt.read_state(out)["status"] == "stopped: out of memory"
    ckpt.load_checkpoint(out)  # the initial weights are there


# ----------------------------------------------------------------------------- generate --out


def test_generate_out_under_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "ck").mkdir()
    args = ["generate", "--checkpoint", str(tmp_path / "ck")]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "file.txt" / "sub")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: cannot write to --out {tmp_path / 'file.txt' / 'sub'}: "
        f"{tmp_path / 'file.txt'} is not a folder\n"
    )


def test_generate_out_in_a_read_only_folder_is_a_usage_error(tmp_path, monkeypatch):
    real_access = os.access  # root passes chmod checks: say tmp_path is read-only
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != tmp_path and real_access(p, mode))
    (tmp_path / "ck").mkdir()
    args = ["generate", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "new")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"Error: cannot write to --out {tmp_path / 'new'}: {tmp_path} is not writable\n"
    )


@pytest.mark.slow
def test_generate_on_a_full_disk_is_one_line(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", _fail_with(errno.ENOSPC))
    out = tmp_path / "gen"
    args = [
        "generate",
        "--checkpoint",
        str(trained),
        "--out",
        str(out),
        "--num",
        "1",
        "--bars",
        "1",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert result.stderr == f"Error: {out}/run-0-01.mid: No space left on device\n"
    assert "Traceback" not in result.output
    assert not [p for p in out.iterdir() if p.suffix == ".mid" or p.name.endswith(".tmp")]


def test_temporary_files_are_not_left_by_a_failed_midi_write(tmp_path, monkeypatch):
    from musicgen.midi_io import write_midi
    from tests.music import make_score

    monkeypatch.setattr(os, "replace", _fail_with(errno.ENOSPC))
    with pytest.raises(OSError, match="No space left"):
        write_midi(make_score([(60, 0, 1, 80)]), tmp_path / "a.mid")
    assert list(tmp_path.iterdir()) == []  # no temporary file left beside the target
