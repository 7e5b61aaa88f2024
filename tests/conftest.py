"""Shared fixtures: every test gets its own cache folder; TensorFlow stays quiet."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MUSICGEN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
