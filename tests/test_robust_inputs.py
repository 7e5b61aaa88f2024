"""Hostile folders: broken and odd files never crash musicgen, and nothing is lost.

Every bad file of `tests/hostile.py`'s corpus is skipped with its reason, every odd
but legal one is used, by `prepare` (library and CLI), `train` and `generate
--primer`; `read_score` only ever returns a Score or raises a MusicError (a loop over
cut points and a hypothesis test on random and mutated bytes); the cache never keeps
a half-written entry; a huge file is refused before it costs memory.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicgen import dataset, midi_io
from musicgen.cli import main
from musicgen.config import EncodingConfig
from musicgen.midi_io import MAX_EVENTS, MAX_FILE_BYTES, read_score
from musicgen.score import MusicError, Score, UnreadableFileError
from tests.hostile import USED, build_hostile_folder, good_midi, midi_bytes
from tests.music import assert_arrangement_ready

REAL_MIDI = None  # bytes of one real file, built once


def _real_midi() -> bytes:
    global REAL_MIDI
    if REAL_MIDI is None:
        with tempfile.TemporaryDirectory() as folder:
            REAL_MIDI = good_midi(Path(folder) / "real.mid").read_bytes()
    return REAL_MIDI


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return folder, build_hostile_folder(folder)


@pytest.fixture
def locked_open(monkeypatch):
    """Make `locked.mid` unreadable even for root (chmod 0 does not stop root)."""
    real_open = open

    def fake_open(path, *args, **kwargs):
        if str(path).endswith("locked.mid"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(dataset, "open", fake_open, raising=False)


def _check_outcome(expected: dict[str, str], used: list[str], skipped: dict[str, str]) -> None:
    for path, want in expected.items():
        if want == USED:
            assert path in used, f"{path!r} not used: {skipped.get(path)}"
        else:
            assert path in skipped, f"{path!r} not skipped"
            assert want in skipped[path], f"{path!r}: {skipped[path]!r}"
            assert "\n" not in skipped[path] and "Traceback" not in skipped[path]


# ----------------------------------------------------------------------------- read_score


def test_every_cut_of_a_real_file_is_a_score_or_a_music_error(tmp_path):
    data = _real_midi()
    path = tmp_path / "cut.mid"
    outcomes = set()
    for cut in range(0, len(data) + 1, 3):
        path.write_bytes(data[:cut])
        try:
            outcomes.add(type(read_score(path)).__name__)
        except MusicError as exc:
            assert str(exc) and "\n" not in str(exc)
            outcomes.add("MusicError")
    assert "MusicError" in outcomes


def _mutations():
    """Random bytes, or a real file with some bytes overwritten, cut or repeated."""
    random_bytes = st.binary(max_size=400)
    edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8)

    def mutate(args):
        edits, cut, prefix = args
        data = bytearray(_real_midi())
        for where, value in edits:
            data[where % len(data)] = value
        return prefix + bytes(data[: cut % (len(data) + 1)] if cut else data)

    mutated = st.tuples(edits, st.integers(0, 2000), st.sampled_from([b"", b"MThd"])).map(mutate)
    return st.one_of(random_bytes, mutated, st.just(midi_bytes([b"\x00\xff\x51\x03\x00\x00\x00"])))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutations(), suffix=st.sampled_from([".mid", ".MIDI", ".musicxml", ".abc"]))
def test_read_score_returns_a_score_or_raises_a_music_error(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            score = read_score(path)
        except MusicError:
            return
        assert isinstance(score, Score) and score.notes
        _assert_parts_are_tidy(score)
        midi_io.write_midi(score, Path(folder) / "out.mid")  # every part writes back
        _, layout = assert_arrangement_ready(Path(folder) / "out.mid", score.length)
        assert len(layout) == len(score.parts)


def _assert_parts_are_tidy(score: Score) -> None:
    """At most MAX_PARTS parts, one drum kit at most, each sorted without same-pitch
    overlaps; together they hold the merged view's notes."""
    assert 0 < len(score.parts) <= midi_io.MAX_PARTS
    assert sum(part.is_drum for part in score.parts) <= 1
    for part in score.parts:
        assert part.notes == sorted(part.notes, key=lambda n: (n.start, n.pitch))
        ends: dict[int, float] = {}
        for note in sorted(part.notes, key=lambda n: (n.pitch, n.start)):
            assert note.start >= ends.get(note.pitch, 0.0)
            ends[note.pitch] = note.end
    pitches = {n.pitch for part in score.parts for n in part.notes}
    assert {n.pitch for n in score.notes + score.drums} <= pitches


def test_huge_file_is_refused_before_it_costs_memory(tmp_path, monkeypatch):
    # running-status note events: 3 bytes each, ~2.8 million in 8 MiB (mido would need
    # ~700 MB and 12 s for them; they are counted in the bytes and refused)
    events = b"\x00\x3c\x40" * ((MAX_FILE_BYTES - 64) // 3)
    huge = tmp_path / "huge.mid"
    huge.write_bytes(midi_bytes([b"\x00\x90\x3c\x40" + events + b"\x00\xff\x2f\x00"], fmt=0))
    with pytest.raises(UnreadableFileError, match=f"more than {MAX_EVENTS}"):
        read_score(huge)
    monkeypatch.setattr(midi_io, "MAX_EVENTS", 20_000)  # the same path, quicker to trace
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableFileError, match="too many events"):
            read_score(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_FILE_BYTES  # the bytes themselves, not a Python object per event

    too_big = tmp_path / "too_big.mid"
    with open(too_big, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: refused by its size, never read
    with pytest.raises(UnreadableFileError, match="too large"):
        read_score(too_big)


def test_odd_but_legal_files_keep_their_music(hostile):
    folder, _ = hostile
    never_closed = read_score(folder / "never_closed.mid")
    assert [(n.pitch, n.start, n.end) for n in never_closed.notes] == [
        (60, 0.0, 3.0),
        (64, 1.0, 3.0),
        (67, 2.0, 3.0),
    ]
    assert never_closed.dropped["notes_never_closed"] == 3
    assert read_score(folder / "zero_length.mid").dropped["zero_length_notes"] == 1
    assert read_score(folder / "overlaps.mid").dropped["overlaps_merged"] == 1
    assert read_score(folder / "tempo_slowest.mid").tempos[0][1] == pytest.approx(3.576, 1e-3)
    assert read_score(folder / "tempo_1000.mid").tempos == [(0.0, 1000.0)]
    assert len(read_score(folder / "tempo_every_beat.mid").tempos) == 16
    silence = read_score(folder / "silence_hour.mid")
    assert silence.notes[0].start == 7200.0 and silence.duration_seconds > 3600
    assert len(read_score(folder / "many_notes.mid").notes) == 20_000


def test_odd_but_legal_files_keep_their_parts_and_write_back(hostile, tmp_path):
    folder, expected = hostile
    used = [name for name, outcome in sorted(expected.items()) if outcome == USED]
    midi = [name for name in used if name.lower().endswith((".mid", ".midi"))]
    assert len(midi) >= 5
    for name in midi:
        score = read_score(folder / name)
        _assert_parts_are_tidy(score)
        out = tmp_path / "out.mid"
        midi_io.write_midi(score, out)
        assert_arrangement_ready(out, score.length)
        back = read_score(out)
        assert [p.program for p in back.parts] == [p.program for p in score.parts], name


# ----------------------------------------------------------------------------- prepare


def test_prepare_skips_each_bad_file_with_its_reason(hostile, tmp_path, locked_open):
    folder, expected = hostile
    data = dataset.prepare(
        folder, EncodingConfig(name="remi"), cache_dir=tmp_path / "cache", workers=1
    )
    _check_outcome(expected, [f.path for f in data.files], dict(data.skipped))
    assert all(f.ids[0] == 1 and f.ids[-1] == 2 for f in data.files)  # BOS ... EOS
    again = dataset.prepare(
        folder, EncodingConfig(name="remi"), cache_dir=tmp_path / "cache", workers=1
    )
    assert again.parsed == 0 and [f.path for f in again.files] == [f.path for f in data.files]
    entries = list((tmp_path / "cache").rglob("*"))
    assert not [p for p in entries if p.name.startswith(".tmp-")], "half-written cache entry"


def test_prepare_cli_reports_everything_without_a_traceback(hostile, tmp_path, locked_open):
    folder, expected = hostile
    runner = CliRunner()
    args = ["prepare", str(folder), "--encoding", "remi", "--cache-dir", str(tmp_path / "c")]
    args += ["--workers", "1"]  # remi: the drums-only files are skipped, as `hostile` expects
    result = runner.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    skipped = {f["path"]: f["reason"] for f in summary["files_skipped"]}
    assert summary["files_ok"] == sum(want == USED for want in expected.values())
    bad = {p: r for p, r in expected.items() if r != USED}
    _check_outcome(bad, [], skipped)
    assert summary["dropped"]["notes_never_closed"] == 3
    human = runner.invoke(main, args)  # the report prints a non-UTF-8 name without failing
    assert human.exit_code == 0 and "Traceback" not in human.output
    assert "Skipped files:" in human.stdout and "smpte.mid: unreadable: SMPTE" in human.stdout


def test_a_bad_name_in_the_skip_list_prints(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    good_midi(folder / "good.mid")
    (folder / os.fsdecode(b"bad-\xff.mid")).write_bytes(b"junk")
    result = CliRunner().invoke(main, ["prepare", str(folder), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "bad-\ufffd.mid: unreadable" in result.stdout


def test_cache_never_keeps_a_half_written_entry(tmp_path, monkeypatch):
    folder = tmp_path / "music"
    folder.mkdir()
    for i in range(3):
        good_midi(folder / f"p{i}.mid", root=60 + i)
    cache = tmp_path / "cache"
    real_savez = np.savez

    def disk_full(handle, **arrays):
        real_savez(handle, **arrays)
        handle.truncate(10)  # half of it reached the disk...
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dataset.np, "savez", disk_full)
    first = dataset.prepare(folder, EncodingConfig(name="remi"), cache_dir=cache, workers=1)
    assert len(first.files) == 3  # the run still works without its cache
    assert not [p for p in cache.rglob("*") if p.is_file()], "no entry, whole or half"
    monkeypatch.setattr(dataset.np, "savez", real_savez)

    second = dataset.prepare(folder, EncodingConfig(name="remi"), cache_dir=cache, workers=1)
    assert second.parsed == 3
    entry = next(p for p in cache.rglob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:20])  # a torn entry (e.g. an old crash) is a miss
    third = dataset.prepare(folder, EncodingConfig(name="remi"), cache_dir=cache, workers=1)
    assert third.parsed == 1 and third.cached == 2
    for a, b in zip(first.files, third.files, strict=True):
        assert a.path == b.path and np.array_equal(a.ids, b.ids)


# ----------------------------------------------------------------------------- train, generate


@pytest.mark.slow
def test_train_and_generate_on_a_hostile_folder(hostile, tmp_path, locked_open):
    folder, expected = hostile
    runner = CliRunner()
    out = tmp_path / "run"
    tiny = [
        "--units",
        "8",
        "--embedding-dim",
        "8",
        "--layers",
        "1",
        "--seq-len",
        "16",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "4",
        "--encoding",
        "remi",
    ]  # fmt: skip  (remi: the drums-only files are skipped)
    result = runner.invoke(main, ["train", str(folder), "--out", str(out), *tiny])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    split = json.loads((out / "split.json").read_text())
    used = sorted(split["train"] + split["validation"])
    assert used == sorted(p for p, want in expected.items() if want == USED)

    generate = ["generate", "--checkpoint", str(out), "--out", str(tmp_path / "gen"), "--num",
                "1", "--bars", "1", "-q"]  # fmt: skip
    for bad in ("text.mid", "empty.mid", "drums.mid", "broken.musicxml", "smpte.mid"):
        result = runner.invoke(main, [*generate, "--primer", str(folder / bad)])
        assert result.exit_code == 1, (bad, result.output)
        assert result.stderr.startswith("Error: cannot use primer") and "Traceback" not in (
            result.output
        )
        assert result.stderr.count("\n") == 1
    odd = runner.invoke(main, [*generate, "--primer", str(folder / "never_closed.mid")])
    assert odd.exit_code == 0, odd.output
    assert list((tmp_path / "gen").glob("*.mid"))


def test_tracks_uses_drum_grooves_and_skips_the_same_broken_files(hostile, tmp_path):
    folder, _ = hostile
    remi = dataset.prepare(folder, EncodingConfig(name="remi"), cache_dir=tmp_path / "r", workers=1)
    tracks = dataset.prepare(
        folder, EncodingConfig(name="tracks"), cache_dir=tmp_path / "t", workers=1
    )
    used_remi, used_tracks = {f.path for f in remi.files}, {f.path for f in tracks.files}
    assert used_remi <= used_tracks
    reasons = dict(remi.skipped)
    assert all(reasons[p] == "drums only" for p in used_tracks - used_remi)
    assert {p for p, _ in tracks.skipped} == {p for p, r in remi.skipped if r != "drums only"}
