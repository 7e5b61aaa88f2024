"""harmonize: every note of the melody file comes back note for note, the voices stay
under its lowest sounding note, whatever the model (accompany's mechanism with voices:
musicgen.arrange), on both part-keeping encodings."""

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

# a melody in E major, 3/4, with a chord under its first note, a legato overlap and a
# rest: all of it is kept
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
SPQ = 4  # the test checkpoints' grid: steps per quarter


def _checkpoint(folder: Path, name: str, controls: bool) -> Path:
    return untrained_checkpoint(folder, EncodingConfig(name=name, controls=controls))


@pytest.fixture(scope="module", params=["steps", "tracks"])
def checkpoints(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    name = request.param
    return _checkpoint(root / "plain", name, False), _checkpoint(root / "steered", name, True)


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
    return sorted(
        ((p, float(s), float(s + d)) for p, s, d, _ in MELODY), key=lambda n: (n[1], n[0])
    )


def melody_ceiling(melody: list[tuple[int, float, float]], steps: int) -> np.ndarray:
    """Per grid step, the melody's lowest sounding pitch; where it rests, the last one;
    before its first note, that note's."""
    low = np.full(steps, 1 << 30)
    for pitch, start, end in melody:
        span = low[round(start * SPQ) : round(end * SPQ)]
        np.minimum(span, pitch, out=span)
    out, last = low.copy(), None
    for t in range(steps):
        if low[t] < 1 << 30:
            last = low[t]
        out[t] = last if last is not None else low[low < 1 << 30][0]
    return out


def assert_harmonized(path: Path, melody: list[tuple[int, float, float]], name: str = "Flute"):
    """The melody's track is exactly `melody`, with its name and program; every voice
    note starts below the melody's lowest sounding note (the last one where it rests);
    the voices have tracks of their own."""
    mid, tracks = assert_arrangement_ready(path)
    notes = note_tracks(path)
    assert notes[name] == melody
    voices = [n for n in notes if n != name]
    assert voices and any(notes[v] for v in voices), "an untrained model still writes voices"
    ceiling = melody_ceiling(melody, round(max(e for _, _, e in melody) * SPQ) + 64)
    for voice in voices:
        for pitch, start, _ in notes[voice]:
            assert pitch < ceiling[round(start * SPQ)], (voice, pitch, start)
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
    first = next(iter(note_tracks(f.path)))  # an unnamed part: named by its place (Soprano)
    assert_harmonized(f.path, [(p, s, s + d) for p, s, d, _ in notes], name=first)


def test_every_part_of_the_melody_file_is_kept(checkpoints, tmp_path):
    """A file of a tune and a held second line: both kept note for note on their own
    tracks; the voices go under the lower."""
    path = tmp_path / "two.mid"
    tune = [(72 + (i % 3), float(i), 1.0, 90) for i in range(6)]
    drone = [(64, 0.0, 3.0, 60), (62, 3.0, 3.0, 60)]
    write_test_midi(path, [Track(tune, name="Tune"), Track(drone, program=42, name="Drone")])
    (f,) = harmonize(checkpoints[1], path, tmp_path / "out", sample=SampleConfig(seed=5))
    notes = note_tracks(f.path)
    assert notes["Tune"] == [(p, s, s + d) for p, s, d, _ in tune]
    assert notes["Drone"] == [(p, s, s + d) for p, s, d, _ in drone]
    for voice in (n for n in notes if n not in ("Tune", "Drone")):
        assert all(pitch < (64 if start < 3 else 62) for pitch, start, _ in notes[voice])


def test_notes_out_of_the_model_range_are_written_and_told(checkpoints, tmp_path):
    path = tmp_path / "high.mid"
    tune = [(72, 0.0, 1.0, 90), (125, 1.0, 1.0, 90), (74, 2.0, 2.0, 90)]
    write_test_midi(path, [Track(tune, name="Tune")])
    told: list[str] = []
    (f,) = harmonize(checkpoints[0], path, tmp_path / "out", on_note=told.append)
    assert note_tracks(f.path)["Tune"] == [(p, s, s + d) for p, s, d, _ in tune]
    assert any("1 note(s) of the song lie outside this model's pitch range" in t for t in told)


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
    with pytest.raises(UsageError, match="force=True"):
        harmonize(checkpoints[0], melody_file, tmp_path)
    harmonize(checkpoints[0], melody_file, tmp_path, force=True)
    remi = tmp_path / "remi"
    config = RunConfig(encoding=EncodingConfig(name="remi"))
    ckpt.save_config(remi, config, len(get_encoding(config.encoding).vocab), {})
    with pytest.raises(UsageError, match="remi encoding, which cannot keep a song; .*steps"):
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
