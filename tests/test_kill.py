"""Killed runs lose nothing: real processes, real signals.

A `musicgen train` process on a tiny corpus with a tiny model and many short epochs
is killed with SIGKILL at seeded random moments, three times; every time the folder
loads with `checkpoint.load_checkpoint` and `train --resume` goes on from where it
was. Ctrl-C (SIGINT) saves and exits with 130, state "interrupted". Two `prepare`
processes sharing one cache do not corrupt it.

These tests start Python processes (TensorFlow in the training ones), so they are slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from musicgen import checkpoint as ckpt
from musicgen import dataset
from musicgen.config import EncodingConfig
from tests.hostile import good_midi

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--layers", "1", "--units", "8", "--embedding-dim", "8", "--seq-len", "16",
        "--batch-size", "4", "--steps-per-epoch", "2", "--epochs", "100000",
        "--val-fraction", "0.34", "--patience", "0", "-q"]  # fmt: skip
WAIT_LIMIT = 180.0  # seconds any one process may take to reach the point we wait for (a busy CI)


def _corpus(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        good_midi(folder / f"piece{i:02d}.mid", root=48 + i)
    return folder


def _musicgen(*args: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "musicgen", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"exited early ({process.returncode}): {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the training process")
        time.sleep(0.05)


def _epochs(out: Path) -> int:
    return int(ckpt.read_state(out).get("epoch", 0))


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_then_sigint(tmp_path):
    from musicgen.runtime import import_tensorflow

    import_tensorflow()
    corpus, out = _corpus(tmp_path / "corpus", 3), tmp_path / "run"
    rng = np.random.default_rng(8)
    train = ["train", str(corpus), "--out", str(out), *TINY]
    done = 0
    for kill in range(3):
        process = _musicgen(*train, *(["--resume"] if kill else []))
        if kill == 0:  # anywhere once the folder exists: while preparing, building, saving
            _wait_for(out.is_dir, process)
        else:  # the resumed run has trained at least one more epoch
            _wait_for(lambda done=done: _epochs(out) > done, process)
        time.sleep(float(rng.uniform(0.0, 1.5)))
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=WAIT_LIMIT) == -signal.SIGKILL
        assert kill == 0 or _epochs(out) > done  # a resume goes on, never back
        if kill > 0 or ckpt.is_checkpoint(out):
            loaded = ckpt.load_checkpoint(out)
            assert loaded.config.model.units == 8
            assert len(ckpt.read_history(out)) >= _epochs(out)  # rows of every saved epoch
        else:
            assert ckpt.is_unfinished_start(out)  # --resume starts it afresh
        done = _epochs(out)

    process = _musicgen(*train, "--resume")
    _wait_for(lambda: _epochs(out) > done, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=WAIT_LIMIT)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    state = ckpt.read_state(out)
    assert state["status"] == "interrupted" and state["epoch"] > done
    ckpt.load_checkpoint(out, which="last")
    assert not list(out.glob(".tmp-*")), "no temporary file left behind"


@pytest.mark.slow
def test_two_prepares_on_one_cache_at_once(tmp_path):
    corpus, cache = _corpus(tmp_path / "corpus", 12), tmp_path / "cache"
    args = ["prepare", str(corpus), "--cache-dir", str(cache), "--json", "--workers", "1"]
    first, second = _musicgen(*args), _musicgen(*args)
    outputs = [p.communicate(timeout=WAIT_LIMIT) for p in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    summaries = [json.loads(stdout) for stdout, _ in outputs]
    assert summaries[0]["files_ok"] == summaries[1]["files_ok"] == 12
    assert summaries[0]["tokens"] == summaries[1]["tokens"]

    third = dataset.prepare(corpus, EncodingConfig(), cache_dir=cache, workers=1)
    assert third.cached == 12 and third.parsed == 0
    fresh = dataset.prepare(corpus, EncodingConfig(), cache_dir=tmp_path / "fresh", workers=1)
    for a, b in zip(third.files, fresh.files, strict=True):
        assert a.path == b.path and np.array_equal(a.ids, b.ids)
    assert not [p for p in cache.rglob("*") if p.name.startswith(".tmp-")]


@pytest.mark.slow
def test_resume_of_a_run_killed_before_its_first_save_starts_afresh(tmp_path):
    from musicgen.config import RunConfig
    from musicgen.trainer import train

    corpus, out = _corpus(tmp_path / "corpus", 3), tmp_path / "run"
    out.mkdir()
    (out / "split.json").write_text('{"train": [], "validation": []}')  # killed here...
    (out / ".tmp-abcd-last.weights.h5").write_bytes(b"half")  # ...while writing this
    tiny = {"layers": 1, "units": 8, "embedding_dim": 8, "seq_len": 16, "batch_size": 4,
            "epochs": 1, "steps_per_epoch": 2, "val_fraction": 0.34}  # fmt: skip
    result = train(RunConfig().with_flat(tiny), corpus, out, resume=True, verbose=0)
    assert result.status == "finished" and result.epochs == 1
    assert len(json.loads((out / "split.json").read_text())["train"]) == 2
    assert not list(out.glob(".tmp-*"))
    ckpt.load_checkpoint(out)
