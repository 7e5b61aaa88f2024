"""Where a training run executes: one device, every GPU of a machine, or a cluster.

`setup(mode, device, log) -> Layout` picks the device kind and builds the
tf.distribute strategy once, before any other TensorFlow work (a multi-worker strategy
must be created first):

- "none": TensorFlow's default strategy (one replica) on "/CPU:0" or "/GPU:0";
- "mirrored": `MirroredStrategy` over every visible GPU, or, without a GPU (or with
  --device cpu), over every logical CPU device;
- "multi-worker": `MultiWorkerMirroredStrategy`, the cluster read from $TF_CONFIG;
  each worker runs one replica per local GPU (or one on its CPU).

`Layout` says what the rest of training needs: the strategy, how many replicas and
workers there are, which worker this process is and whether it is the chief (the one
that logs and writes the checkpoint: task type "chief", else worker 0), the
per-replica batch, and `barrier()` (a collective every worker must reach).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from musicgen.errors import UsageError
from musicgen.runtime import import_tensorflow

tf = import_tensorflow()

TF_CONFIG = "TF_CONFIG"
# One MirroredStrategy per device list and process: a second one would number its
# collective ops from the same start, and TensorFlow keeps the first one's under those
# numbers (a later run in the same process, e.g. a test, would fail on a shape mismatch).
_MIRRORED: dict[tuple[str, ...], Any] = {}


@dataclass
class Layout:
    """The strategy of a run and this process's place in it."""

    strategy: Any  # tf.distribute.Strategy
    mode: str  # "none" | "mirrored" | "multi-worker"
    kind: str  # "cpu" | "gpu": what the replicas run on
    replicas: int  # replicas in sync, over all workers
    workers: int  # processes (one input pipeline each)
    worker: int  # this process's index among them
    is_chief: bool  # logs and writes the checkpoint
    description: str  # one line for the log: devices, replicas, this worker
    device: str | None = None  # "none" mode: the device to place everything on

    def per_replica_batch(self, batch_size: int) -> int:
        """batch_size (the global batch) / replicas; UsageError when it does not divide."""
        if batch_size % self.replicas:
            raise UsageError(
                f"--batch-size {batch_size} is the global batch and must split evenly "
                f"over {self.replicas} replicas (try a multiple of {self.replicas})"
            )
        return batch_size // self.replicas

    @property
    def local_replicas(self) -> int:
        """Replicas of this worker (they share its input pipeline)."""
        return self.replicas // self.workers

    @contextlib.contextmanager
    def placement(self) -> Iterator[None]:
        """The device scope to build and run under (a strategy places its own)."""
        if self.device is None:
            yield
        else:
            with tf.device(self.device):
                yield

    def barrier(self) -> None:
        """Return once every worker has called it (a one-number all-reduce)."""
        if self.workers > 1:
            _barrier(self.strategy)


def setup(mode: str, device: str) -> Layout:
    """The Layout of a run: `mode` "none" | "mirrored" | "multi-worker", `device` "auto" |
    "cpu" | "gpu". UsageError for a missing GPU or an unusable TF_CONFIG."""
    if mode == "multi-worker":
        return _multi_worker(device)
    kind = _device_kind(device)
    if mode == "none":
        device_name = "/GPU:0" if kind == "gpu" else "/CPU:0"
        strategy = tf.distribute.get_strategy()
        return Layout(strategy, mode, kind, 1, 1, 0, True, _describe(kind), device_name)
    if mode != "mirrored":
        raise UsageError(f"--distribute must be none, mirrored or multi-worker, not {mode!r}")
    devices = tuple(d.name for d in tf.config.list_logical_devices(kind.upper()))
    if devices not in _MIRRORED:
        _MIRRORED[devices] = tf.distribute.MirroredStrategy(list(devices))
    strategy = _MIRRORED[devices]
    replicas = strategy.num_replicas_in_sync
    line = f"{_describe(kind)}; MirroredStrategy over {replicas} {kind.upper()} replicas"
    if replicas == 1:
        line = f"{_describe(kind)}; MirroredStrategy over 1 {kind.upper()} replica (no other "
        line += "device to mirror on; training runs as with --distribute none)"
    return Layout(strategy, mode, kind, replicas, 1, 0, True, line)


# ----------------------------------------------------------------------------- helpers


def _device_kind(choice: str) -> str:
    """ "auto" | "cpu" | "gpu" -> "cpu" | "gpu"; hides the GPUs when "cpu" is chosen."""
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
        return "cpu"
    return "gpu"


def _describe(kind: str) -> str:
    if kind == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return f"Training on CPU ({cores} cores)"
    gpus = tf.config.list_physical_devices("GPU")
    details = tf.config.experimental.get_device_details(gpus[0])
    more = f" (x{len(gpus)})" if len(gpus) > 1 else ""
    return f"Training on GPU: {details.get('device_name', gpus[0].name)}{more}"


def read_tf_config() -> dict[str, Any]:
    """$TF_CONFIG as a dict with a cluster and this process's task; UsageError otherwise."""
    raw = os.environ.get(TF_CONFIG)
    hint = (
        'set it on every machine, e.g. TF_CONFIG=\'{"cluster": {"worker": '
        '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
    )
    if not raw:
        raise UsageError(f"--distribute multi-worker needs the cluster in $TF_CONFIG; {hint}")
    try:
        parsed = json.loads(raw)
        cluster, task = parsed["cluster"], parsed["task"]
        members = cluster[task["type"]]
        if not isinstance(members, list) or not 0 <= int(task["index"]) < len(members):
            raise IndexError(f"task {task['type']} {task['index']} is not in the cluster")
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UsageError(f"$TF_CONFIG is not a usable cluster ({exc}); {hint}") from None
    return parsed


def _multi_worker(device: str) -> Layout:
    """A MultiWorkerMirroredStrategy Layout; the chief is task "chief", else worker 0."""
    config = read_tf_config()
    kind = _device_kind(device)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    cluster = config["cluster"]
    order = [(t, i) for t in ("chief", "worker") for i in range(len(cluster.get(t, [])))]
    worker = order.index((task_type, task_id)) if (task_type, task_id) in order else 0
    is_chief = task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in cluster
    )
    replicas = strategy.num_replicas_in_sync
    workers = len(order)
    line = (
        f"{_describe(kind)}; MultiWorkerMirroredStrategy: {workers} workers, "
        f"{replicas} replicas in all; this is {task_type} {task_id}"
    )
    return Layout(strategy, "multi-worker", kind, replicas, workers, worker, is_chief, line)


def _barrier(strategy: Any) -> None:
    """A one-number all-reduce over every replica of every worker."""

    @tf.function
    def all_reduce_one() -> Any:
        value = strategy.run(lambda: tf.constant(1.0))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

    all_reduce_one()
