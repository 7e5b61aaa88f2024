"""dataset: scanning a folder (nesting, links, loops, duplicates, bad files), the
content cache, parsing in worker processes (and surviving a dead worker), the split."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from musicgen import dataset
from musicgen.config import EncodingConfig
from musicgen.dataset import PreparedFile, prepare, scan, split_files
from musicgen.errors import UsageError, UserError
from tests.music import Track, write_test_midi

REMI = EncodingConfig(name="remi")


def good_midi(path: Path, seed: int = 0) -> Path:
    """A small two-track piece, different for each seed."""
    rng = np.random.default_rng(seed)
    melody = [(int(rng.integers(60, 80)), q, 1, 80) for q in range(8)]
    bass = [(int(rng.integers(36, 50)), q, 2, 70) for q in range(0, 8, 2)]
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_test_midi(path, [Track(melody), Track(bass, program=32)])


def drums_midi(path: Path) -> Path:
    return write_test_midi(path, [Track([(36, q, 0.5, 100) for q in range(4)], channel=9)])


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Three good files (one with an upper-case suffix) and five bad ones."""
    root = tmp_path / "mixed"
    good_midi(root / "a.mid", 1)
    good_midi(root / "b.midi", 2)
    good_midi(root / "C.MID", 3)
    (root / "empty.mid").write_bytes(b"")
    whole = (root / "a.mid").read_bytes()
    (root / "truncated.mid").write_bytes(whole[: len(whole) // 2])
    (root / "noise.mid").write_bytes(np.random.default_rng(0).bytes(300))
    (root / "text.mid").write_text("this is not a MIDI file\n")
    drums_midi(root / "drums.mid")
    (root / "notes.txt").write_text("ignored: not a music suffix")
    return root


def test_good_files_used_and_each_bad_file_named_with_a_reason(mixed):
    data = prepare(mixed, REMI, workers=1)
    assert [f.path for f in data.files] == ["C.MID", "a.mid", "b.midi"]
    reasons = dict(data.skipped)
    assert set(reasons) == {"empty.mid", "truncated.mid", "noise.mid", "text.mid", "drums.mid"}
    assert reasons["empty.mid"] == "unreadable: empty file"
    assert reasons["drums.mid"] == "drums only"
    for name in ("truncated.mid", "noise.mid", "text.mid"):
        assert reasons[name].startswith("unreadable: "), reasons[name]
    assert all("\n" not in r for r in reasons.values())
    for f in data.files:
        assert f.ids.dtype == np.int32 and f.ids[0] == 1 and f.ids[-1] == 2
        assert f.notes == 12 and f.seconds == pytest.approx(4.0)  # 8 quarters at 120 bpm
        assert len(f.digest) == 64


def test_summary_has_the_prepare_json_shape(mixed):
    s = prepare(mixed, REMI, workers=1).summary(val_fraction=0.34, seed=0)
    assert s["files_ok"] == 3 and len(s["files_skipped"]) == 5
    assert set(s["files_skipped"][0]) == {"path", "reason"}
    assert s["notes"] == 36 and s["tokens"] > 36
    assert s["seconds"] == pytest.approx(12.0) and s["hours"] == pytest.approx(12 / 3600, abs=1e-3)
    assert s["encoding"] == "remi" and s["parsed"] == 3 + 5 and s["cached"] == 0
    assert s["split"] == {"train": 2, "validation": 1}
    assert isinstance(s["dropped"], dict)


def test_nested_folders_symlink_loop_hidden_and_linked_folders(tmp_path):
    root = tmp_path / "root"
    good_midi(root / "top.mid", 1)
    good_midi(root / "x" / "y" / "deep.mid", 2)
    good_midi(root / ".hidden" / "secret.mid", 3)
    good_midi(root / "x" / ".trash.mid", 4)
    outside = tmp_path / "outside"
    good_midi(outside / "linked.mid", 5)
    (root / "x" / "y" / "loop").symlink_to(root, target_is_directory=True)
    (root / "z-link").symlink_to(outside, target_is_directory=True)
    (root / "dangling.mid").symlink_to(tmp_path / "nowhere.mid")
    files, skipped = scan(root)
    assert files == ["top.mid", "x/y/deep.mid", "z-link/linked.mid"]
    assert skipped == [("dangling.mid", "broken link")]
    data = prepare(root, REMI, workers=1)
    assert [f.path for f in data.files] == files
    assert ("dangling.mid", "broken link") in data.skipped


def test_the_cache_folder_inside_the_data_folder_is_not_scanned(tmp_path):
    root = tmp_path / "data"
    good_midi(root / "a.mid", 1)
    good_midi(root / "cache" / "planted.mid", 2)
    data = prepare(root, REMI, cache_dir=root / "cache", workers=1)
    assert [f.path for f in data.files] == ["a.mid"]


def test_identical_contents_are_used_once(tmp_path):
    good_midi(tmp_path / "a.mid", 1)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "copy.mid").write_bytes((tmp_path / "a.mid").read_bytes())
    (tmp_path / "z.mid").write_bytes((tmp_path / "a.mid").read_bytes())
    data = prepare(tmp_path, REMI, workers=1)
    assert [f.path for f in data.files] == ["a.mid"]
    assert data.skipped == [("sub/copy.mid", "duplicate of a.mid"), ("z.mid", "duplicate of a.mid")]


def test_an_unreadable_file_is_skipped_not_a_crash(tmp_path, monkeypatch):
    good_midi(tmp_path / "a.mid", 1)
    good_midi(tmp_path / "locked.mid", 2)
    real = dataset.file_digest

    def digest(path):
        if Path(path).name == "locked.mid":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(dataset, "file_digest", digest)
    data = prepare(tmp_path, REMI, workers=1)
    assert [f.path for f in data.files] == ["a.mid"]
    assert data.skipped == [("locked.mid", "unreadable: Permission denied")]


def test_a_folder_that_cannot_be_listed_is_skipped_not_a_crash(tmp_path, monkeypatch):
    good_midi(tmp_path / "a.mid", 1)
    good_midi(tmp_path / "locked" / "b.mid", 2)
    real = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    data = prepare(tmp_path, REMI, workers=1)
    assert [f.path for f in data.files] == ["a.mid"]
    assert data.skipped == [("locked/", "unreadable folder: Permission denied")]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_an_unreadable_folder_is_skipped_not_a_crash(tmp_path):
    good_midi(tmp_path / "a.mid", 1)
    good_midi(tmp_path / "locked" / "b.mid", 2)
    (tmp_path / "locked").chmod(0)
    try:
        data = prepare(tmp_path, REMI, workers=1)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [f.path for f in data.files] == ["a.mid"]
    assert data.skipped[0][0] == "locked/"


def test_a_single_file_is_a_folder_of_one(tmp_path):
    path = good_midi(tmp_path / "one.mid", 1)
    data = prepare(path, REMI, workers=1)
    assert [f.path for f in data.files] == ["one.mid"] and data.root == tmp_path


def test_errors_for_missing_empty_and_unusable_folders(tmp_path):
    with pytest.raises(UsageError, match="no such file or folder"):
        prepare(tmp_path / "missing", REMI)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no music here")
    with pytest.raises(UsageError, match="no music files"):
        prepare(tmp_path / "empty", REMI)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="not a folder or a music file"):
        prepare(tmp_path / "notes.txt", REMI)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mid").write_bytes(b"")
    drums_midi(bad / "drums.mid")
    with pytest.raises(UserError, match="drums.mid: drums only; empty.mid: unreadable: empty"):
        prepare(bad, REMI)


# ----------------------------------------------------------------------------- cache


def _cache_entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.npz"))


def test_second_run_reads_only_the_cache(mixed, tmp_path):
    cache = tmp_path / "cache"
    first = prepare(mixed, REMI, cache_dir=cache, workers=1)
    calls = []
    second = prepare(mixed, REMI, cache_dir=cache, workers=1, progress=lambda *a: calls.append(a))
    assert (second.parsed, second.cached) == (0, 8)
    assert calls == [(8, 8)]
    assert second.skipped == first.skipped
    for a, b in zip(first.files, second.files, strict=True):
        assert (a.path, a.digest, a.notes, a.seconds, a.dropped) == (
            b.path, b.digest, b.notes, b.seconds, b.dropped,
        )  # fmt: skip
        np.testing.assert_array_equal(a.ids, b.ids)
    assert len(_cache_entries(cache)) == 8  # bad files are remembered too
    assert not [p for p in cache.rglob("*") if p.name.startswith(".tmp-")]


def test_cache_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    good_midi(tmp_path / "data" / "a.mid", 1)
    monkeypatch.setenv("MUSICGEN_CACHE_DIR", str(tmp_path / "env-cache"))
    prepare(tmp_path / "data", REMI, workers=1)
    assert len(_cache_entries(tmp_path / "env-cache")) == 1


def test_a_corrupt_cache_entry_is_a_miss(tmp_path):
    good_midi(tmp_path / "data" / "a.mid", 1)
    good_midi(tmp_path / "data" / "b.mid", 2)
    cache = tmp_path / "cache"
    first = prepare(tmp_path / "data", REMI, cache_dir=cache)
    victim = _cache_entries(cache)[0]
    victim.write_bytes(victim.read_bytes()[:40])
    again = prepare(tmp_path / "data", REMI, cache_dir=cache)
    assert (again.parsed, again.cached) == (1, 1)
    for a, b in zip(first.files, again.files, strict=True):
        np.testing.assert_array_equal(a.ids, b.ids)
    assert prepare(tmp_path / "data", REMI, cache_dir=cache).parsed == 0  # repaired


def test_cache_is_keyed_by_the_encoding_settings(tmp_path):
    good_midi(tmp_path / "data" / "a.mid", 1)
    cache = tmp_path / "cache"
    prepare(tmp_path / "data", REMI, cache_dir=cache)
    finer = prepare(tmp_path / "data", REMI.replace(steps_per_quarter=12), cache_dir=cache)
    perf = prepare(tmp_path / "data", EncodingConfig(name="performance"), cache_dir=cache)
    assert finer.parsed == 1 and perf.parsed == 1 and perf.encoding == "performance"
    assert prepare(tmp_path / "data", REMI, cache_dir=cache).parsed == 0


def test_an_unwritable_cache_does_not_stop_the_run(tmp_path):
    good_midi(tmp_path / "data" / "a.mid", 1)
    (tmp_path / "not-a-folder").write_text("a file where the cache should go")
    data = prepare(tmp_path / "data", REMI, cache_dir=tmp_path / "not-a-folder")
    assert len(data.files) == 1


# ----------------------------------------------------------------------------- processes


def test_worker_processes_give_the_same_result_as_one_process(tmp_path):
    for i in range(7):
        good_midi(tmp_path / "data" / f"f{i}.mid", i)
    (tmp_path / "data" / "empty.mid").write_bytes(b"")
    here = prepare(tmp_path / "data", REMI, cache_dir=tmp_path / "c1", workers=1)
    calls = []
    pool = prepare(tmp_path / "data", REMI, cache_dir=tmp_path / "c2", workers=2,
                   progress=lambda *a: calls.append(a))  # fmt: skip
    assert pool.parsed == 8 and pool.skipped == here.skipped
    assert calls[0] == (0, 8) and calls[-1] == (8, 8) and len(calls) == 9
    for a, b in zip(here.files, pool.files, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(a.ids, b.ids)


def crash_on_marked_files(path: str, config_json: str):
    """A worker that dies (like a segfault would) on files named *crash*."""
    if "crash" in Path(path).name:
        os._exit(3)
    return dataset._parse_file(path, config_json)


def test_a_dying_worker_loses_no_file(tmp_path):
    paths = [good_midi(tmp_path / f"f{i}.mid", i) for i in range(6)]
    paths.insert(3, good_midi(tmp_path / "crash.mid", 9))
    results: dict[int, tuple] = {}

    def done(i, result):
        assert i not in results
        results[i] = result

    dataset._parse_all(paths, REMI, 2, done, worker=crash_on_marked_files)
    assert sorted(results) == list(range(len(paths)))
    assert results[3] == ("skip", "unreadable: the parser crashed on this file")
    assert all(results[i][0] == "ok" for i in results if i != 3)


# ----------------------------------------------------------------------------- split


def _files(n: int) -> list[PreparedFile]:
    return [
        PreparedFile(
            f"p{i:03d}.mid", f"{i * 7919 % 1000:064x}", np.array([1, 2], np.int32), 1, 1.0, {}
        )  # fmt: skip
        for i in range(n)
    ]


def test_split_is_by_file_deterministic_and_seeded():
    files = _files(50)
    train, val = split_files(files, 0.2, seed=0)
    assert len(val) == 10 and len(train) == 40
    assert {f.path for f in train}.isdisjoint(f.path for f in val)
    assert {f.path for f in train} | {f.path for f in val} == {f.path for f in files}
    assert [f.path for f in train] == sorted(f.path for f in train)
    again = split_files(list(reversed(files)), 0.2, seed=0)
    assert [f.path for f in again[1]] == [f.path for f in val]
    other = split_files(files, 0.2, seed=1)
    assert [f.path for f in other[1]] != [f.path for f in val]


def test_split_follows_content_not_names():
    files = _files(20)
    renamed = [PreparedFile("renamed-" + f.path, f.digest, f.ids, 1, 1.0, {}) for f in files]
    val = {f.digest for f in split_files(files, 0.25, 3)[1]}
    assert {f.digest for f in split_files(renamed, 0.25, 3)[1]} == val


@pytest.mark.parametrize(
    "n, fraction, expected",
    [(0, 0.1, (0, 0)), (1, 0.5, (1, 0)), (2, 0.01, (1, 1)), (2, 0.99, (1, 1)), (10, 0.0, (10, 0)),
     (10, 0.1, (9, 1)), (10, 0.95, (1, 9))],
)  # fmt: skip
def test_split_sizes(n, fraction, expected):
    train, val = split_files(_files(n), fraction, seed=0)
    assert (len(train), len(val)) == expected


# ----------------------------------------------------------------------------- the corpus


CORPUS = Path(__file__).resolve().parent.parent / "midi_corpus"


def test_the_bundled_corpus_is_used_whole(tmp_path):
    on_disk = sorted(p.name for p in CORPUS.glob("*.mid"))
    assert len(on_disk) >= 350
    assert sum((CORPUS / n).stat().st_size for n in on_disk) < 5_000_000
    data = prepare(CORPUS, REMI, cache_dir=tmp_path / "cache", workers=2)
    assert [f.path for f in data.files] == on_disk
    assert data.skipped == []
