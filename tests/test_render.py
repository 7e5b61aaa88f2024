"""MIDI -> WAV with FluidSynth (skipped where the program is not installed)."""

import shutil
import wave

import pytest

from musicgen import render
from musicgen.midi_io import write_midi
from tests.music import make_score

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None, reason="fluidsynth is not installed"
)


@needs_fluidsynth
def test_wav_lasts_as_long_as_the_midi(tmp_path):
    try:
        render.find_soundfont()
    except render.RenderUnavailableError as exc:
        pytest.fail(f"fluidsynth is installed but {exc}")
    # 8 quarters at 120 bpm = 4 seconds of music
    score = make_score([(60 + 2 * i, i, 1, 90) for i in range(8)], tempo=120)
    midi = tmp_path / "scale.mid"
    write_midi(score, midi)
    out = render.render_wav(midi, tmp_path / "out" / "scale.wav", sample_rate=22050)
    with wave.open(str(out)) as w:
        assert w.getframerate() == 22050
        seconds = w.getnframes() / w.getframerate()
    assert 4.0 <= seconds <= 4.0 + 4.0  # the music plus the release tail (~3 s measured)
    assert [p.name for p in out.parent.iterdir()] == ["scale.wav"]  # no temp file left


def test_missing_soundfont_says_how_to_fix(tmp_path, monkeypatch):
    with pytest.raises(render.RenderUnavailableError, match="soundfont not found"):
        render.find_soundfont(tmp_path / "none.sf2")
    monkeypatch.setattr(render, "SOUNDFONT_PLACES", (str(tmp_path / "none.sf2"),))
    with pytest.raises(render.RenderUnavailableError, match="apt-get install .*--soundfont"):
        render.find_soundfont()


def test_missing_fluidsynth_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(render.RenderUnavailableError, match="apt-get install fluidsynth"):
        render.render_wav(__file__, tmp_path / "x.wav")


def test_missing_midi_file(tmp_path):
    with pytest.raises(render.UserError, match="not found"):
        render.render_wav(tmp_path / "missing.mid", tmp_path / "x.wav")
