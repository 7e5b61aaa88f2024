"""harmonize: the melody comes back exactly, the harmony stays under it, whatever the model."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
from click.testing import CliRunner

from musicgen import checkpoint as ckpt
from musicgen.config import EncodingConfig, RunConfig, SampleConfig
from musicgen.encoding import BOS, get_encoding
from musicgen.encoding.remi import KEY, PITCH
from musicgen.errors import UsageError, UserError
from musicgen.harmonize import CLASHES, harmonize, plan_melody, read_melody, split_melody
from tests.music import Track, assert_daw_ready, untrained_checkpoint, write_test_midi

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


def _checkpoint(folder: Path, controls: bool, encoding: str = "remi") -> Path:
    return untrained_checkpoint(folder, EncodingConfig(name=encoding, controls=controls))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    return _checkpoint(root / "plain", False), _checkpoint(root / "steered", True)


@pytest.fixture
def melody_file(tmp_path) -> Path:
    path = tmp_path / "tune.mid"
    write_test_midi(
        path,
        [Track(MELODY, program=73)],
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


def assert_harmonized(path: Path, melody: list[tuple[int, float, float]]) -> None:
    """The melody track is exactly `melody`; every harmony note starts below the melody
    note that began last (the first one before it begins), and no note starting with a
    melody note is a second, tritone or seventh below it."""
    tracks = note_tracks(path)
    assert tracks["melody"] == melody
    (harmony_name,) = [name for name in tracks if name != "melody"]
    harmony = tracks[harmony_name]
    assert harmony, "an untrained model still writes some harmony"
    onsets = np.array([start for _, start, _ in melody])
    for pitch, start, _ in harmony:
        latest = max(int(np.searchsorted(onsets, start, side="right")) - 1, 0)
        assert pitch < melody[latest][0], (pitch, start)
        assert (pitch, start) not in {(p, s) for p, s, _ in melody}
        if start == melody[latest][1]:
            assert (melody[latest][0] - pitch) % 12 not in CLASHES


def test_read_melody_keeps_the_top_line_on_the_grid(melody_file):
    encoding = get_encoding(EncodingConfig())
    melody = read_melody(melody_file, encoding)
    assert [(n.pitch, n.start, n.end) for n in melody.notes] == expected_melody()
    assert melody.notes[0].velocity == 90 and melody.time_signatures == [(0.0, 3, 4)]
    plan = plan_melody(encoding, melody)
    assert len(plan.bars) == 3 and [b.steps for b in plan.bars] == [12, 12, 12]
    assert [len(b.notes) for b in plan.bars] == [4, 1, 2]
    assert [(n.pitch, n.start, n.end) for n in plan.notes] == expected_melody()


@pytest.mark.parametrize("controls", [False, True])
def test_grammar_keeps_the_melody_whatever_is_sampled(melody_file, controls):
    """Uniform random choices among the allowed ids: no model at all."""
    encoding = get_encoding(EncodingConfig(controls=controls))
    plan = plan_melody(encoding, read_melody(melody_file, encoding))
    from musicgen.harmonize import _start

    rng = np.random.default_rng(0)
    for _ in range(30):
        grammar, ids = _start(encoding, plan), [BOS]
        while not grammar.done:
            token_id = int(rng.choice(np.flatnonzero(grammar.allowed())))
            grammar.advance(token_id)
            ids.append(token_id)
        score = encoding.decode(ids)
        assert not score.dropped
        notes = {(n.pitch, n.start, n.end) for n in score.notes}
        assert set(expected_melody()) <= notes
        assert score.time_signatures == [(0.0, 3, 4)] and score.length == 9
        onsets = {n.start: n.pitch for n in plan.notes}
        for note in split_melody(score, plan.notes, encoding.config.steps_per_quarter):
            step = round(note.start * encoding.config.steps_per_quarter)
            assert note.pitch < plan.ceiling[step]
            if note.start in onsets:
                assert (onsets[note.start] - note.pitch) % 12 not in CLASHES


def test_clashes_can_be_allowed(melody_file):
    encoding = get_encoding(EncodingConfig())
    plan = plan_melody(encoding, read_melody(melody_file, encoding))
    from musicgen.harmonize import _start

    strict, free = _start(encoding, plan), _start(encoding, plan, clashes=())
    for token_id in encoding.encode(read_melody(melody_file, encoding)).ids[1:5]:
        strict.advance(token_id)  # Bar TimeSig Tempo Position_0
        free.advance(token_id)
    offset = encoding.id_range[PITCH][0] - encoding.config.pitch_min

    def below(grammar) -> set[int]:
        """MIDI pitches the grammar allows next."""
        return {int(i) - offset for i in np.flatnonzero(grammar.allowed())}

    assert max(below(free)) == 76 and {75, 74, 70} <= below(free)  # the melody's E5 is 76
    assert 76 in below(strict) and not {75, 74, 70, 66, 65} & below(strict)
    assert {73, 72, 71, 64, 52} <= below(strict)


@pytest.mark.parametrize("which", [0, 1])
def test_harmonize_keeps_every_melody_note(checkpoints, melody_file, tmp_path, which):
    folder = checkpoints[which]
    files = harmonize(folder, melody_file, tmp_path, num=3, sample=SampleConfig(seed=4))
    assert [f.path.name for f in files] == [f"tune-harmony-4-{i:02d}.mid" for i in (1, 2, 3)]
    for f in files:
        assert_harmonized(f.path, expected_melody())
        assert_daw_ready(f.path, length_quarters=9.0)
        assert f.bars == 3 and f.notes > 0 and f.highest < 80
    assert files[0].path.read_bytes() != files[1].path.read_bytes()
    if which == 1:  # the model with controls is told the key of the melody at every bar
        encoding = get_encoding(EncodingConfig(controls=True))
        melody_key = encoding.encode(read_melody(melody_file, encoding)).ids[2]
        assert encoding.describe([melody_key]) == ["Key_1_minor"]  # C# minor: E D# B C# ...
        for f in files:
            keys = [i for i in f.ids if encoding.kinds[i] == KEY]
            assert keys == [melody_key] * f.bars
    tempo = next(m for m in mido.MidiFile(files[0].path).tracks[0] if m.type == "set_tempo")
    assert tempo.tempo == 666_667  # the melody's own 90 bpm, not the nearest tempo bin


def test_melody_in_another_key_and_metre(checkpoints, tmp_path):
    path = tmp_path / "low.mid"
    notes = [(62 + s, i * 1.5, 1.5, 80) for i, s in enumerate([0, 3, 7, 5, 3, 2, 0, -2])]
    write_test_midi(path, [Track(notes)], time_signatures=((0.0, 6, 8),))
    (f,) = harmonize(checkpoints[0], path, tmp_path / "out", sample=SampleConfig(seed=1))
    assert_harmonized(f.path, [(p, s, s + d) for p, s, d, _ in notes])


def test_a_melody_file_of_several_tunes_harmonizes_the_first(checkpoints, tmp_path):
    from tests.test_midi_io import TUNES

    path = tmp_path / "tunes.abc"
    path.write_text(TUNES)
    notes = []
    (f,) = harmonize(checkpoints[0], path, tmp_path / "out", on_note=notes.append)
    assert notes == ["tunes.abc holds 2 pieces: the first is harmonized"]
    assert_harmonized(f.path, [(60, 0.0, 1.0), (62, 1.0, 2.0), (64, 2.0, 3.0), (67, 3.0, 6.0)])


def test_harmonize_errors(checkpoints, melody_file, tmp_path):
    harmonize(checkpoints[0], melody_file, tmp_path)
    with pytest.raises(UsageError, match="--force"):
        harmonize(checkpoints[0], melody_file, tmp_path)
    harmonize(checkpoints[0], melody_file, tmp_path, force=True)
    perf = tmp_path / "perf"
    config = RunConfig(encoding=EncodingConfig(name="performance"))
    ckpt.save_config(perf, config, len(get_encoding(config.encoding).vocab), {})
    with pytest.raises(UsageError, match="remi"):
        harmonize(perf, melody_file, tmp_path / "p")
    high = tmp_path / "high.mid"
    write_test_midi(high, [Track([(120, 0, 1, 80)])])
    with pytest.raises(UserError, match="no note within pitches"):
        harmonize(checkpoints[0], high, tmp_path / "h")
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"not midi")
    with pytest.raises(UserError, match="cannot use melody"):
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
