"""Pictures and audio beside the MIDI files (`--plot`, `--render wav`), and `musicgen render`."""

from pathlib import Path

import mido
import pytest
from click.testing import CliRunner

from musicgen import render
from musicgen.cli import main
from musicgen.midi_io import write_midi
from musicgen.score import Note, Part, Score
from tests.music import make_score

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "checkpoints" / "bach"
BAND = ROOT / "checkpoints" / "band"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_wav_beside(midi: Path) -> None:
    """The WAV beside `midi` lasts the file's music plus the release tail."""
    wav = midi.with_suffix(".wav")
    seconds = mido.MidiFile(midi).length
    assert render.wav_seconds(wav) == pytest.approx(seconds + render.TAIL_SECONDS, abs=0.02)


def test_plot_writes_a_piano_roll_beside_each_file(tmp_path):
    out = tmp_path / "gen"
    result = run("generate", "--checkpoint", BUNDLED, "--out", out, "--num", "2", "--bars", "2",
                 "--plot")  # fmt: skip
    assert result.exit_code == 0, result.output
    for i in (1, 2):
        png = out / f"bach-0-0{i}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generate_render_writes_a_wav_beside_each_file(tmp_path):
    out = tmp_path / "gen"
    result = run("generate", "--checkpoint", BUNDLED, "--out", out, "--num", "2", "--bars", "2",
                 "--render", "wav")  # fmt: skip
    assert result.exit_code == 0, result.output
    for i in (1, 2):
        assert f"bach-0-0{i}.wav" in result.output
        assert_wav_beside(out / f"bach-0-0{i}.mid")


def test_render_unavailable_warns_and_keeps_the_midi(tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise render.RenderUnavailableError("the synthesizer is not installed: pip install ...")

    monkeypatch.setattr(render, "check_available", missing)
    out = tmp_path / "gen"
    result = run("generate", "--checkpoint", BUNDLED, "--out", out, "--num", "1", "--bars", "2",
                 "--render", "wav")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Warning: the synthesizer is not installed" in result.output
    assert (out / "bach-0-01.mid").is_file()
    assert not (out / "bach-0-01.wav").exists()


@pytest.fixture
def song_file(tmp_path) -> Path:
    melody = [Note(72 + (i % 5), i, i + 1, 90) for i in range(16)]
    bass = [Note(36 + (i % 3), 2 * i, 2 * i + 2, 90) for i in range(8)]
    song = Score(parts=[Part(0, melody, "Melody"), Part(33, bass, "My bass")],
                 tempos=[(0.0, 120.0)], time_signatures=[(0.0, 4, 4)], end=16.0)  # fmt: skip
    path = tmp_path / "song.mid"
    write_midi(song, path)
    return path


def test_song_commands_render_wav(song_file, tmp_path):
    out = tmp_path / "o"
    for args, name in [
        (["accompany", song_file, "--add", "drums", "--checkpoint", BAND], "song-accompany-0-01"),
        (["infill", song_file, "--bars", "2-3", "--candidates", "2", "--checkpoint", BAND],
         "song-infill-0-01"),
        (["harmonize", song_file, "--voices", "2"], "song-harmony-0-01"),
    ]:  # fmt: skip
        result = run(*args, "--out", out, "--render", "wav")
        assert result.exit_code == 0, result.output
        assert f"{name}.wav" in result.output
        assert_wav_beside(out / f"{name}.mid")


# ----------------------------------------------------------------------------- musicgen render


def test_render_command_writes_one_line_per_file(tmp_path):
    for name, pitch in (("a", 60), ("b", 67)):
        write_midi(make_score([(pitch, 0, 2, 90), (pitch + 4, 2, 2, 90)]), tmp_path / f"{name}.mid")
    result = run("render", tmp_path / "a.mid", tmp_path / "b.mid")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{tmp_path / 'a.wav'}  3.0 s",
        f"{tmp_path / 'b.wav'}  3.0 s",
    ]
    result = run("render", tmp_path / "a.mid", "--out", tmp_path / "wavs", "-q")
    assert result.exit_code == 0 and result.output == ""
    assert render.wav_seconds(tmp_path / "wavs" / "a.wav") == pytest.approx(3.0)


def test_render_command_bad_input_is_one_line(tmp_path):
    write_midi(make_score([(60, 0, 2, 90)]), tmp_path / "good.mid")
    (tmp_path / "bad.mid").write_text("not music")
    cases = [
        (["render", tmp_path / "missing.mid"], 2, "path does not exist"),
        (["render", tmp_path / "good.mid", "--soundfont", tmp_path / "none.sf2"], 2,
         "'--soundfont': File"),
        (["render", tmp_path / "good.mid", "--soundfont", tmp_path / "bad.mid"], 1,
         "is not a SoundFont 2"),
        (["render"], 2, "Missing argument"),
    ]  # fmt: skip
    for args, code, message in cases:
        result = run(*args)
        assert result.exit_code == code, result.output
        assert len(result.output.splitlines()) == 1 and message in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "good.wav").exists()
    # a bad file among good ones: the good ones are written, one error line, exit 1
    result = run("render", tmp_path / "bad.mid", tmp_path / "good.mid")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: bad.mid: not a readable MIDI file (MThd not found. Probably not a MIDI file)",
        f"{tmp_path / 'good.wav'}  2.0 s",
    ]
    result = run("render", tmp_path / "good.mid")  # exists now
    assert result.exit_code == 2 and "exists; use --force" in result.output
    assert run("render", tmp_path / "good.mid", "--force").exit_code == 0
