"""tf.distribute training: one step for every mode, and what each mode must keep.

In this process the CPU is two logical devices (tests/conftest.py), so MirroredStrategy
runs two replicas here. A two-worker MultiWorkerMirroredStrategy cluster runs as two
`python -m musicgen train --distribute multi-worker` processes on 127.0.0.1 with
TF_CONFIG. Each mode is compared with a single-device run of the same global batch and
seed: mirrored must match it to float rounding (the replicas see exactly its batches);
the two workers read different halves of the data, so they must reach a loss close to
it (tolerance below). Also: chief-only writes, --resume across modes, usage errors.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from musicgen.runtime import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402

from musicgen import checkpoint as ckpt  # noqa: E402
from musicgen import dataset, distribute  # noqa: E402
from musicgen import trainer as train_module  # noqa: E402
from musicgen.cli import main  # noqa: E402
from musicgen.config import ConfigError, RunConfig, TrainConfig  # noqa: E402
from musicgen.errors import UsageError  # noqa: E402
from musicgen.trainer import train  # noqa: E402
from tests.music import Track, write_test_midi  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "layers": 1, "units": 16, "embedding_dim": 8, "dropout": 0.0, "seq_len": 16,
    "batch_size": 8, "epochs": 2, "steps_per_epoch": 6, "learning_rate": 0.01,
    "val_fraction": 0.25, "transpose": 2, "patience": 0, "device": "cpu",
    "warmup_steps": 4, "lr_patience": 1,  # the schedule's per-step and per-epoch rates
}  # fmt: skip
SHARD_TOKENS = 400  # about one corpus file per shard, so two workers split by shard
MIRRORED_TOLERANCE = 1e-5  # relative: the same batches, only sums reordered (seen: 1e-7)
WORKERS_TOLERANCE = 0.05  # relative final losses: other batches of like music (seen: 1.8%)
PROCESS_LIMIT = 240.0  # seconds for a worker process (two share two cores with TF start-up)


def tiny(**changes) -> RunConfig:
    return RunConfig().with_flat({**TINY, **changes})


def _two_cpus() -> None:
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.fail("tests/conftest.py did not split the CPU into two logical devices")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four MIDI files of one repeated phrase, each in its own key."""
    folder = tmp_path_factory.mktemp("corpus")
    phrase = [0, 2, 4, 5, 7, 5, 4, 2, 0, 4, 7, 12, 7, 4, 2, 0]
    for i, root in enumerate((60, 62, 65, 67)):
        notes = [(root + step, q, 1.0, 80) for q, step in enumerate(phrase * 4)]
        write_test_midi(folder / f"piece{i}.mid", [Track(notes)])
    return folder


# ----------------------------------------------------------------------------- one step


def _one_step(
    mode: str, batch: tuple, clip_norm: float, make_optimizer=None, *, jit_compile=False, steps=1
) -> tuple[float, list[np.ndarray]]:
    """Loss of the last of `steps` training steps on `batch` (the global batch) and the
    weights after them."""
    config = tiny(clip_norm=clip_norm)
    layout = distribute.setup(mode, "cpu")
    keras.utils.set_random_seed(3)
    model, optimizer = train_module.build_model_and_optimizer(
        config, 40, layout, make_optimizer=make_optimizer
    )
    step = train_module.make_train_step(model, optimizer, layout.strategy, jit_compile=jit_compile)
    per_replica = len(batch[0]) // layout.replicas

    def dataset_fn(context):
        return tf.data.Dataset.from_tensors(batch).repeat().rebatch(per_replica)

    iterator = iter(layout.strategy.distribute_datasets_from_function(dataset_fn))
    for _ in range(steps):
        loss_sum, _, count = (float(x) for x in step(iterator))
    scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaling == (keras.mixed_precision.global_policy().name == "mixed_float16")
    return loss_sum / count, [np.asarray(v) for v in model.trainable_variables]


@pytest.mark.parametrize("clip_norm", [0.0, 0.05])
def test_a_step_under_two_replicas_equals_one_device(clip_norm):
    _two_cpus()
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 40, (8, 17)).astype(np.int32)
    weights = np.ones((8, 16), np.float32)
    weights[:4, 10:] = 0.0  # the first replica's half has fewer targets than the second
    ids[:4, 11:] = 0
    batch = (ids[:, :-1], ids[:, 1:], weights)
    one_loss, one_weights = _one_step("none", batch, clip_norm)
    two_loss, two_weights = _one_step("mirrored", batch, clip_norm)
    assert two_loss == pytest.approx(one_loss, abs=1e-5)
    for a, b in zip(one_weights, two_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("clip_norm", [0.0, 0.05])
def test_the_xla_compiled_step_gives_the_plain_steps_loss_and_update(clip_norm):
    rng = np.random.default_rng(1)
    ids = rng.integers(3, 40, (8, 17)).astype(np.int32)
    weights = np.ones((8, 16), np.float32)
    weights[:2, 12:] = 0.0  # PAD targets weigh nothing in both
    batch = (ids[:, :-1], ids[:, 1:], weights)
    plain_loss, plain_weights = _one_step("none", batch, clip_norm, steps=3)
    xla_loss, xla_weights = _one_step("none", batch, clip_norm, jit_compile=True, steps=3)
    assert xla_loss == pytest.approx(plain_loss, rel=1e-5)
    for a, b in zip(plain_weights, xla_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


class _SummedSGD(train_module.SummedGradients, keras.optimizers.SGD):
    """Plain SGD on replica-summed gradients: its update is proportional to the gradient,
    so gradients summed twice (Keras's own all-reduce after ours) move it twice as far."""


def _initial_weights() -> list[np.ndarray]:
    keras.utils.set_random_seed(3)
    model = train_module.build_model(tiny().model, 40)
    return [np.asarray(v) for v in model.trainable_variables]


def test_plain_sgd_under_two_replicas_equals_one_device():
    """Scale-sensitive: fails if Keras stops calling `SummedGradients`'s hook (the
    private `_all_reduce_sum_gradients`), which Adam, nearly blind to the gradient's
    scale, could not show."""
    _two_cpus()
    batch = _batch_of(np.random.default_rng(2).integers(3, 40, (8, 17)))
    start = _initial_weights()

    def sgd():
        return _SummedSGD(learning_rate=0.5, name="sgd")

    _, one = _one_step("none", batch, 0.0, sgd)
    _, two = _one_step("mirrored", batch, 0.0, sgd)
    moved = [b - a for a, b in zip(start, one, strict=True)]
    assert max(float(np.abs(m).max()) for m in moved) > 1e-3  # the step moved the weights
    for a, b, m in zip(start, two, moved, strict=True):
        np.testing.assert_allclose(b - a, m, atol=1e-6)
    # without the hook Keras all-reduces again: the two replicas' step is twice as long
    _, twice = _one_step("mirrored", batch, 0.0, lambda: keras.optimizers.SGD(0.5))
    for a, b, m in zip(start, twice, moved, strict=True):
        np.testing.assert_allclose(b - a, 2 * m, atol=1e-6)


def test_any_worker_agrees_over_the_replicas():
    _two_cpus()
    layout = distribute.setup("mirrored", "cpu")
    agree = train_module.any_worker(layout.strategy)
    assert agree(True) is True and agree(False) is False


def test_mixed_precision_step_scales_the_loss_under_two_replicas():
    """The GPU path (LossScaleOptimizer around the Adam) runs under a strategy; on the
    CPU it is only checked to run and to match the float32 step roughly."""
    _two_cpus()
    batch = _batch_of(np.random.default_rng(1).integers(3, 40, (8, 17)))
    plain, _ = _one_step("mirrored", batch, 1.0)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        scaled, weights = _one_step("mirrored", batch, 1.0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert scaled == pytest.approx(plain, rel=1e-2)
    assert all(np.all(np.isfinite(w)) for w in weights)


def _batch_of(ids: np.ndarray) -> tuple:
    ids = ids.astype(np.int32)
    return ids[:, :-1], ids[:, 1:], np.ones((len(ids), ids.shape[1] - 1), np.float32)


# ----------------------------------------------------------------------------- mirrored


def _losses(out: Path) -> list[tuple[float, float]]:
    return [(row["loss"], row["val_loss"]) for row in ckpt.read_history(out)]


@pytest.mark.slow
def test_mirrored_training_matches_one_device_and_resumes(corpus, tmp_path):
    _two_cpus()
    single = tmp_path / "single"
    train(tiny(epochs=3), corpus, single, verbose=0)
    lines = []
    mirrored = tmp_path / "mirrored"
    train(tiny(epochs=2, distribute="mirrored"), corpus, mirrored, verbose=0, log=lines.append)
    assert "MirroredStrategy over 2 CPU replicas" in lines[0]
    # --resume continues the feed and the optimizer, here under another mode
    result = train(tiny(epochs=3), corpus, mirrored, resume=True, verbose=0)
    assert result.epochs == 3 and ckpt.read_state(mirrored)["train_steps"] == 18
    np.testing.assert_allclose(_losses(mirrored), _losses(single), rtol=MIRRORED_TOLERANCE)
    loaded = ckpt.load_checkpoint(mirrored)
    assert loaded.config.train.distribute == "none"  # the mode may change on --resume


@pytest.mark.slow
def test_mirrored_training_averages_the_weights_as_one_device_does(corpus, tmp_path):
    _two_cpus()
    for mode in ("none", "mirrored"):
        train(tiny(epochs=2, average_epochs=1, distribute=mode), corpus, tmp_path / mode, verbose=0)
    np.testing.assert_allclose(
        _losses(tmp_path / "mirrored"), _losses(tmp_path / "none"), rtol=MIRRORED_TOLERANCE
    )


def test_batch_must_split_over_the_replicas(corpus, tmp_path):
    _two_cpus()
    with pytest.raises(UsageError, match="global batch.*2 replicas"):
        train(tiny(batch_size=7, distribute="mirrored"), corpus, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- settings


def test_distribute_setting_is_validated(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="distribute"):
        TrainConfig(distribute="ring").validate()
    assert RunConfig.from_dict({"train": {}}).train.distribute == "none"  # old config.json
    runner = CliRunner()
    bad = runner.invoke(main, ["train", "--distribute", "ring"])
    assert bad.exit_code == 2 and "ring" in bad.output
    monkeypatch.delenv(distribute.TF_CONFIG, raising=False)
    with pytest.raises(UsageError, match="TF_CONFIG"):
        distribute.setup("multi-worker", "cpu")
    monkeypatch.setenv(distribute.TF_CONFIG, "{not json")
    with pytest.raises(UsageError, match="not a usable cluster"):
        distribute.setup("multi-worker", "cpu")
    monkeypatch.setenv(distribute.TF_CONFIG, json.dumps({"cluster": {"worker": ["a:1"]},
                                                         "task": {"type": "worker", "index": 3}}))  # fmt: skip
    with pytest.raises(UsageError, match="not in the cluster"):
        distribute.setup("multi-worker", "cpu")


# ----------------------------------------------------------------------------- two workers


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _workers(args: list[str], outs: list[Path], cache: Path) -> list[tuple[int, str, str]]:
    """Run `musicgen train ARGS --out OUT_i --distribute multi-worker` as worker i of a
    two-worker cluster on 127.0.0.1; (exit code, stdout, stderr) of each."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = []
    for index, out in enumerate(outs):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(tf_config),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": str(ROOT),
            "MUSICGEN_CACHE_DIR": str(cache),
            "MUSICGEN_SHARD_TOKENS": str(SHARD_TOKENS),
        }
        command = [sys.executable, "-m", "musicgen", "train", *args, "--out", str(out)]
        command += ["--distribute", "multi-worker"]
        processes.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        )
    deadline = time.monotonic() + PROCESS_LIMIT
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise AssertionError("a worker did not finish in time") from None
        results.append((process.returncode, stdout, stderr))
    return results


@pytest.mark.slow
def test_two_workers_match_one_device_and_only_the_chief_writes(corpus, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MUSICGEN_CACHE_DIR", str(cache))
    monkeypatch.setenv("MUSICGEN_SHARD_TOKENS", str(SHARD_TOKENS))
    prepared = dataset.prepare(corpus, RunConfig().encoding, workers=1)  # as README says
    assert prepared.shards is not None and prepared.shards.num_shards >= 2
    # every window told its parts: which windows are hidden is a draw of each worker's
    # feed, and a hidden window's loss is higher, so hiding would add its own noise to
    # the comparison of the training losses below
    told = {**TINY, "hide_parts": 0.0}
    single = tmp_path / "single"
    train(tiny(epochs=3, hide_parts=0.0), corpus, single, verbose=0)

    chief, other = tmp_path / "chief", tmp_path / "other"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in told.items()]
    args = [str(corpus), *flags]
    results = _workers(args, [chief, other], cache)
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    assert "MultiWorkerMirroredStrategy: 2 workers" in results[0][1]
    assert "each reads its own shards" in results[0][1]
    assert results[1][1] == "" and not other.exists(), "worker 1 logs and writes nothing"
    assert ckpt.read_state(chief)["status"] == "finished"

    # both workers resume from the chief's folder (shared storage)
    results = _workers([*args, "--epochs=3", "--resume"], [chief, chief], cache)
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    assert ckpt.read_state(chief)["train_steps"] == 18
    worked, alone = _losses(chief), _losses(single)
    assert len(worked) == 3
    np.testing.assert_allclose(worked[-1], alone[-1], rtol=WORKERS_TOLERANCE)
    ckpt.load_checkpoint(chief)
