"""Shared fixtures: every test gets its own cache folder; TensorFlow stays quiet.

When the collected tests import TensorFlow, its CPU is split into two logical devices
once, before any test runs (TensorFlow allows it only before it initialises its
devices), so tests/test_distribute.py can train with MirroredStrategy over two CPU
replicas; every other test keeps using the first CPU device as before.
"""

import os
import sys

import pytest
from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# CI replays the same examples every run (a property found false locally is fixed, not
# left to chance); a developer's run draws new ones each time
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
LOGICAL_CPUS = 2


def pytest_collection_finish(session):
    if "tensorflow" in sys.modules:
        split_cpu(LOGICAL_CPUS)


def split_cpu(count: int) -> None:
    """Make the CPU `count` logical devices (a no-op when TensorFlow's devices are
    already initialised; tests that need them check `list_logical_devices`)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        pass


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MUSICGEN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
