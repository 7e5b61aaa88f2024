"""Token shards: packing, the index, reuse and renewal, each worker's part, and the
grouped feed that streams a corpus bigger than memory."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from musicgen import dataset, shards
from musicgen.config import EncodingConfig
from tests.hostile import good_midi


def _file(path: str, length: int, digest: str | None = None) -> SimpleNamespace:
    ids = np.concatenate([[1], np.full(length - 2, 7 + len(path)), [2]]).astype(np.int32)
    return SimpleNamespace(path=path, digest=digest or f"{hash(path) & 0xFFFF:04x}", ids=ids)


def _corpus(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        good_midi(folder / f"piece{i:02d}.mid", root=48 + i)
    return folder


def test_pack_keeps_files_whole_and_shards_bounded():
    files = [_file(f"f{i}", length) for i, length in enumerate([5, 9, 4, 30, 3, 8])]
    packed = shards.pack(files, 12)
    for shard in packed:
        assert sum(f.length for f in shard) <= 12 or len(shard) == 1  # a long file alone
        offsets = [f.offset for f in shard]
        assert offsets == list(np.cumsum([0] + [f.length for f in shard][:-1]))
    assert sorted(f.path for shard in packed for f in shard) == sorted(f.path for f in files)
    assert [f.digest for shard in packed for f in shard] == sorted(f.digest for f in files)


def test_written_set_round_trips_and_is_reused(tmp_path):
    files = [_file(f"f{i}", 10 + i) for i in range(7)]
    written = shards.write(tmp_path / "set", files, [("bad.mid", "unreadable")], 25)
    index = json.loads((tmp_path / "set" / "index.json").read_text())
    assert index["files"] == 7 and index["tokens"] == sum(len(f.ids) for f in files)
    assert set(index["shards"][0]["files"][0]) == {"path", "digest", "offset", "length"}
    loaded = shards.ShardSet.load(tmp_path / "set")
    assert loaded.num_shards == written.num_shards >= 3 and loaded.skipped == [
        ("bad.mid", "unreadable")
    ]
    by_path = {f.path: f for f in files}
    for f in loaded.files:
        ids = loaded.ids(f)
        np.testing.assert_array_equal(ids, by_path[f.path].ids)
        assert ids[0] == 1 and ids[-1] == 2  # BOS ... EOS, never split
    stamp = (tmp_path / "set" / "index.json").stat().st_mtime_ns
    shards.write(tmp_path / "set", files, [], 25)  # complete: reused, not rewritten
    assert (tmp_path / "set" / "index.json").stat().st_mtime_ns == stamp
    assert not list((tmp_path / "set").glob(".tmp-*"))
    memory = shards.ShardSet.in_memory(files, [], 25)
    assert [f.path for f in memory.files] == [f.path for f in loaded.files]
    np.testing.assert_array_equal(memory.shard(1), loaded.shard(1))


def test_a_damaged_set_is_not_loaded(tmp_path):
    shards.write(tmp_path / "set", [_file(f"f{i}", 10) for i in range(4)], [], 20)
    np.save(tmp_path / "set" / "shard-00001.npy", np.zeros(3, np.int32))
    assert shards.ShardSet.load(tmp_path / "set") is None
    (tmp_path / "set" / "index.json").write_text("{")
    assert shards.ShardSet.load(tmp_path / "set") is None


def test_prepare_writes_shards_that_find_shards_finds_until_the_folder_changes(tmp_path):
    folder, cache = _corpus(tmp_path / "music", 5), tmp_path / "cache"
    encoding = EncodingConfig(name="remi")
    assert dataset.find_shards(folder, encoding, cache_dir=cache) is None
    prepared = dataset.prepare(folder, encoding, cache_dir=cache, workers=1, tokens_per_shard=150)
    found = dataset.find_shards(folder, encoding, cache_dir=cache, tokens_per_shard=150)
    assert found is not None and found.folder == prepared.shards.folder
    assert found.num_shards >= 2 and len(found.files) == 5
    for f in prepared.files:
        (where,) = [s for s in found.files if s.path == f.path]
        np.testing.assert_array_equal(found.ids(where), f.ids)
    assert dataset.find_shards(folder, encoding, cache_dir=cache, tokens_per_shard=151) is None
    good_midi(folder / "piece00.mid", root=70)  # new content under an old name
    assert dataset.find_shards(folder, encoding, cache_dir=cache, tokens_per_shard=150) is None
    again = dataset.prepare(folder, encoding, cache_dir=cache, workers=1, tokens_per_shard=150)
    assert again.shards.folder != prepared.shards.folder


def test_load_shards_prepares_a_new_folder_then_finds_its_shards(tmp_path, monkeypatch):
    folder, cache = _corpus(tmp_path / "music", 3), tmp_path / "cache"
    encoding = EncodingConfig(name="remi")
    first = dataset.load_shards(folder, encoding, cache_dir=cache, tokens_per_shard=150)
    assert len(first.files) == 3 and first.folder is not None
    parsed = []
    monkeypatch.setattr(dataset, "_parse_all", lambda *args: parsed.append(args))
    again = dataset.load_shards(folder, encoding, cache_dir=cache, tokens_per_shard=150)
    assert again.folder == first.folder and not parsed  # found, not prepared again
    assert [again.ids(f).tolist() for f in again.files] == [
        first.ids(f).tolist() for f in first.files
    ]


def test_each_worker_gets_its_shards_else_its_files():
    files = [
        shards.ShardFile(f"f{i}", f"{i:02x}", shard, 0, 10)
        for i, shard in enumerate([0, 0, 1, 2, 2, 3])
    ]
    parts = [shards.assign(files, p, 2) for p in range(2)]
    assert [how for _, how in parts] == ["shards", "shards"]
    assert {f.shard for f in parts[0][0]} == {0, 2} and {f.shard for f in parts[1][0]} == {1, 3}
    one_shard = [shards.ShardFile(f"f{i}", "d", 0, 0, 10) for i in range(3)]
    part, how = shards.assign(one_shard, 1, 2)
    assert how == "files" and [f.path for f in part] == ["f1"]
    assert shards.assign(one_shard[:1], 1, 2, duplicate=True) == (one_shard[:1], "all")
    assert shards.assign(one_shard[:1], 1, 2) == ([], "files")


# ----------------------------------------------------------------------------- the feed


def test_group_schedule_visits_every_group_once_per_pass_and_resumes():
    from musicgen.feed import group_schedule

    visits = group_schedule([100, 250, 40], batch_tokens=100, key=5)
    first = []
    for visit in visits(0):
        first.append(visit)
        if len(first) == 9:
            break
    per_pass = sorted(g for g, _, _ in first[:3])
    assert per_pass == [0, 1, 2] and sorted(g for g, _, _ in first[3:6]) == [0, 1, 2]
    batches = [n for _, start, end in first for n in range(start, end)]
    assert batches == list(range(len(batches)))  # every batch number once, in order
    later = next(visits(batches[7]))
    owner = next(v for v in first if v[1] <= batches[7] < v[2])
    assert later == (owner[0], batches[7], owner[2])


def test_grouped_feed_streams_groups_and_continues():
    from musicgen.runtime import import_tensorflow

    import_tensorflow()
    from musicgen.feed import TokenGroup, grouped_train_dataset, train_dataset

    rng = np.random.default_rng(0)
    streams = [rng.integers(3 + 20 * g, 20 + 20 * g, 300).astype(np.int32) for g in range(3)]
    loads = []

    def group(g):
        return TokenGroup(300, lambda: loads.append(g) or streams[g])

    def take(dataset, count):
        return [np.asarray(batch[0]) for batch in dataset.take(count)]

    groups = [group(g) for g in range(3)]
    whole = take(grouped_train_dataset(groups, 8, 4, seed=1), 12)
    assert len(loads) <= 5, "groups are loaded one visit at a time"
    for batch in whole:  # every window lies inside one group's stream
        assert len({int(row[0] - 3) // 20 for row in batch}) == 1
    later = take(grouped_train_dataset(groups, 8, 4, seed=1, first_batch=7), 3)
    for a, b in zip(whole[7:10], later, strict=True):
        np.testing.assert_array_equal(a, b)
    single = take(grouped_train_dataset([group(0)], 8, 4, seed=1), 3)
    plain = take(train_dataset([streams[0]], 8, 4, seed=1), 3)
    for a, b in zip(single, plain, strict=True):
        np.testing.assert_array_equal(a, b)
    halves = take(train_dataset([streams[0]], 8, 4, seed=1, replicas=2), 2)
    np.testing.assert_array_equal(np.concatenate(halves), plain[0])


@pytest.mark.slow
def test_training_streams_groups_when_the_corpus_does_not_fit(tmp_path, monkeypatch):
    from musicgen.runtime import import_tensorflow

    import_tensorflow()
    from musicgen import checkpoint as ckpt
    from musicgen import trainer as train_module
    from musicgen.config import RunConfig

    folder = _corpus(tmp_path / "music", 6)
    monkeypatch.setenv(shards.SHARD_TOKENS_ENV, "150")
    monkeypatch.setattr(train_module, "GROUP_TOKENS", 150)
    made = []
    original = train_module._groups
    monkeypatch.setattr(train_module, "_groups", lambda *a: made.append(original(*a)) or made[-1])
    config = RunConfig().with_flat(
        {"layers": 1, "units": 8, "embedding_dim": 8, "seq_len": 16, "batch_size": 4,
         "epochs": 2, "steps_per_epoch": 5, "val_fraction": 0.2, "patience": 0}
    )  # fmt: skip
    result = train_module.train(config, folder, tmp_path / "run", verbose=0)
    assert result.epochs == 2 and len(made[0]) >= 2
    assert np.isfinite(ckpt.read_history(tmp_path / "run")[-1]["loss"])
