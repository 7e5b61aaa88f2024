"""harmonize: the melody comes back note for note, the voices stay under it, whatever
the model (accompany's mechanism with voices: musicgen.arrange)."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
from click.testing import CliRunner

from musicgen import checkpoint as ckpt
from musicgen.arrange import harmonize
from musicgen.config import EncodingConfig, RunConfig, SampleConfig
from musicgen.encoding import get_encoding
from musicgen.errors import UsageError, UserError
from tests.music import Track, assert_arrangement_ready, untrained_checkpoint, write_test_midi

# a melody in E major, 3/4, with a chord under its first note (only the top note is the
# melody), a legato overlap (cut at the next onset) and a rest
MELODY = [
    (76, 0, 1, 90),
    (68, 0, 1, 60),
    (75, 1, 1.25, 90),  # overlaps the next note by a quarter
    (71, 2, 0.5, 90),
    (73, 2.5, 0.5, 70),
    (76, 3, 2, 100),
    (80, 6, 1.5, 90),  # after a one-quarter rest
    (78, 7.5, 1.5, 90),
]


def _checkpoint(folder: Path, controls: bool) -> Path:
    return untrained_checkpoint(folder, EncodingConfig(name="tracks", controls=controls))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    return _checkpoint(root / "plain", False), _checkpoint(root / "steered", True)


@pytest.fixture
def melody_file(tmp_path) -> Path:
    path = tmp_path / "tune.mid"
    write_test_midi(
        path,
        [Track(MELODY, program=73, name="Flute")],
        tempos=((0.0, 90.0),),
        time_signatures=((0.0, 3, 4),),
    )
    return path


def note_tracks(path: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Notes per track name as (pitch, start, end) in quarters, read with mido."""
    mid = mido.MidiFile(path)
    out = {}
    for track in mid.tracks[1:]:
        name, now, sounding, notes = None, 0, {}, []
        for msg in track:
            now += msg.time
            if msg.type == "track_name":
                name = msg.name
            elif msg.type == "note_on" and msg.velocity > 0:
                sounding[msg.note] = now
            elif msg.type in ("note_on", "note_off"):
                start = sounding.pop(msg.note)
                notes.append((msg.note, start / mid.ticks_per_beat, now / mid.ticks_per_beat))
        out[name] = sorted(notes, key=lambda n: (n[1], n[0]))
    return out


def expected_melody() -> list[tuple[int, float, float]]:
    return [
        (76, 0.0, 1.0),
        (75, 1.0, 2.0),  # cut at the next onset
        (71, 2.0, 2.5),
        (73, 2.5, 3.0),
        (76, 3.0, 5.0),
        (80, 6.0, 7.5),
        (78, 7.5, 9.0),
    ]


def assert_harmonized(path: Path, melody: list[tuple[int, float, float]], name: str = "Flute"):
    """The melody's track is exactly `melody`, with its name and program; every voice
    note starts below the melody note that began last (the first before it begins);
    the voices have tracks of their own."""
    mid, tracks = assert_arrangement_ready(path)
    notes = note_tracks(path)
    assert notes[name] == melody
    voices = [n for n in notes if n != name]
    assert voices and any(notes[v] for v in voices), "an untrained model still writes voices"
    onsets = np.array([start for _, start, _ in melody])
    for voice in voices:
        for pitch, start, _ in notes[voice]:
            latest = max(int(np.searchsorted(onsets, start, side="right")) - 1, 0)
            assert pitch < melody[latest][0], (voice, pitch, start)
    return tracks


@pytest.mark.parametrize("which", [0, 1])
def test_harmonize_keeps_every_melody_note(checkpoints, melody_file, tmp_path, which):
    folder = checkpoints[which]
    files = harmonize(folder, melody_file, tmp_path, num=3, sample=SampleConfig(seed=4))
    assert [f.path.name for f in files] == [f"tune-harmony-4-{i:02d}.mid" for i in (1, 2, 3)]
    for f in files:
        tracks = assert_harmonized(f.path, expected_melody())
        assert tracks[0] == ("Flute", 0, 73)  # the melody's own name and program
        assert [t[0] for t in tracks[1:]] == ["Alto", "Tenor", "Bass"]
        assert f.bars == 3 and f.notes > 0
    assert files[0].path.read_bytes() != files[1].path.read_bytes()
    tempo = next(m for m in mido.MidiFile(files[0].path).tracks[0] if m.type == "set_tempo")
    assert tempo.tempo == 666_667  # the melody's own 90 bpm, not the nearest tempo bin


def test_harmonize_is_deterministic_by_seed(checkpoints, melody_file, tmp_path):
    a = harmonize(checkpoints[1], melody_file, tmp_path / "a", sample=SampleConfig(seed=2))
    b = harmonize(checkpoints[1], melody_file, tmp_path / "b", sample=SampleConfig(seed=2))
    assert a[0].path.read_bytes() == b[0].path.read_bytes()


def test_melody_in_another_key_and_metre(checkpoints, tmp_path):
    path = tmp_path / "low.mid"
    notes = [(62 + s, i * 1.5, 1.5, 80) for i, s in enumerate([0, 3, 7, 5, 3, 2, 0, -2])]
    write_test_midi(path, [Track(notes)], time_signatures=((0.0, 6, 8),))
    (f,) = harmonize(checkpoints[0], path, tmp_path / "out", sample=SampleConfig(seed=1))
    assert_harmonized(f.path, [(p, s, s + d) for p, s, d, _ in notes], name="Melody")


def test_a_melody_file_of_several_tunes_harmonizes_the_first(checkpoints, tmp_path):
    from tests.test_midi_io import TUNES

    path = tmp_path / "tunes.abc"
    path.write_text(TUNES)
    notes = []
    (f,) = harmonize(checkpoints[0], path, tmp_path / "out", on_note=notes.append)
    assert notes == ["tunes.abc holds 2 pieces: the first is used"]
    melody = [(60, 0.0, 1.0), (62, 1.0, 2.0), (64, 2.0, 3.0), (67, 3.0, 6.0)]
    names = list(note_tracks(f.path))
    assert_harmonized(f.path, melody, name=names[0])


def test_harmonize_errors(checkpoints, melody_file, tmp_path):
    harmonize(checkpoints[0], melody_file, tmp_path)
    with pytest.raises(UsageError, match="--force"):
        harmonize(checkpoints[0], melody_file, tmp_path)
    harmonize(checkpoints[0], melody_file, tmp_path, force=True)
    remi = tmp_path / "remi"
    config = RunConfig(encoding=EncodingConfig(name="remi"))
    ckpt.save_config(remi, config, len(get_encoding(config.encoding).vocab), {})
    with pytest.raises(UsageError, match="tracks checkpoint"):
        harmonize(remi, melody_file, tmp_path / "p")
    drums = tmp_path / "drums.mid"
    write_test_midi(drums, [Track([(36, 0, 1, 80)], channel=9)])
    with pytest.raises(UserError, match="no pitched notes"):
        harmonize(checkpoints[0], drums, tmp_path / "h")
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"not midi")
    with pytest.raises(UserError, match="cannot use"):
        harmonize(checkpoints[0], junk, tmp_path / "j")


def test_cli_harmonize(checkpoints, melody_file, tmp_path):
    from musicgen.cli import main

    args = ["harmonize", str(melody_file), "--checkpoint", str(checkpoints[0])]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o"), "--num", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(tmp_path / "o" / "tune-harmony-0-01.mid"))
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o"), "--num", "2"])
    assert result.exit_code == 2 and "--force" in result.output
