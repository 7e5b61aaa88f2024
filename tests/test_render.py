"""MIDI -> audio with the pip-installed synthesizer and soundfont (no system package).

The audio is judged by ear's proxies: its length, that it sounds, that a pitched note
has its fundamental where the pitch says, and that a drum kit is noisy where a flute is
tonal (spectral flatness, the share of energy above 4 kHz).
"""

import io
import wave

import mido
import numpy as np
import pytest

from musicgen import render
from musicgen.errors import UserError
from musicgen.midi_io import midi_bytes, with_silence_after, write_midi
from musicgen.score import DRUM_PROGRAM, Note, Part, Score
from tests.music import make_score

FLUTE, PIANO = 73, 0  # General MIDI programs


def part_score(program: int, notes: list[tuple[int, float, float]], tempo: float = 120) -> Score:
    """One part (a program or the drum kit) of (pitch, start, length) notes, in quarters."""
    part = Part(program, [Note(p, s, s + d, 100) for p, s, d in notes], "Part")
    return Score(parts=[part], tempos=[(0.0, tempo)], time_signatures=[(0.0, 4, 4)])


def audio(score: Score) -> tuple[np.ndarray, int]:
    return render.synthesize(midi_bytes(score))


def spectrum(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies Hz, power) of the mono mix."""
    mono = samples.mean(axis=1).astype(np.float64)
    return np.fft.rfftfreq(len(mono), 1 / rate), np.abs(np.fft.rfft(mono)) ** 2 + 1e-20


def flatness(power: np.ndarray) -> float:
    """Geometric over arithmetic mean of the power spectrum: 1 for white noise, ~0 for a tone."""
    return float(np.exp(np.log(power).mean()) / power.mean())


def high_share(freqs: np.ndarray, power: np.ndarray, above: float = 4000.0) -> float:
    return float(power[freqs > above].sum() / power.sum())


def test_audio_lasts_the_music_plus_the_tail_and_sounds():
    # 8 quarters at 120 bpm = 4 seconds of music
    samples, rate = audio(make_score([(60 + 2 * i, i, 1, 90) for i in range(8)], tempo=120))
    assert rate == render.SAMPLE_RATE == 48_000
    assert samples.dtype == np.float32 and samples.shape[1] == 2
    assert len(samples) / rate == pytest.approx(4.0 + render.TAIL_SECONDS, abs=0.01)
    rms = np.sqrt((samples[: 4 * rate] ** 2).mean())
    assert rms > 0.005  # not silent
    assert np.abs(samples).max() < 0.99  # not clipped
    assert np.abs(samples[-rate // 10 :]).max() < np.abs(samples).max() / 10  # rang out


def test_the_tail_follows_the_tempo_at_the_end():
    # 4 quarters at 60 bpm = 4 seconds
    samples, rate = audio(make_score([(60, 0, 4, 90)], tempo=60))
    assert len(samples) / rate == pytest.approx(4.0 + render.TAIL_SECONDS, abs=0.01)


def test_a_pitched_note_peaks_at_its_fundamental():
    for pitch, hertz in ((69, 440.0), (57, 220.0)):
        samples, rate = audio(part_score(FLUTE, [(pitch, q, 0.9) for q in range(4)]))
        freqs, power = spectrum(samples, rate)
        assert freqs[power.argmax()] == pytest.approx(hertz, rel=0.01)


def test_drums_sound_like_a_kit_and_a_flute_like_a_tone():
    beat = [(36, 0, 0.25), (42, 0.5, 0.25), (38, 1, 0.25), (42, 1.5, 0.25)]  # kick, hat, snare
    kit = [(p, s + half * 2, d) for half in range(2) for p, s, d in beat]
    drums = spectrum(*audio(part_score(DRUM_PROGRAM, kit)))
    flute = spectrum(*audio(part_score(FLUTE, [(69, q, 0.9) for q in range(4)])))
    assert flatness(drums[1]) > 50 * flatness(flute[1])
    assert high_share(*drums) > 20 * high_share(*flute)
    assert high_share(*drums) > 0.01


def test_each_part_plays_its_program():
    notes = [(60, q, 0.9) for q in range(4)]
    flute, _ = audio(part_score(FLUTE, notes))
    piano, _ = audio(part_score(PIANO, notes))
    assert flute.shape == piano.shape
    correlation = np.corrcoef(flute.mean(axis=1), piano.mean(axis=1))[0, 1]
    assert correlation < 0.5


def test_render_wav_writes_16_bit_stereo_atomically(tmp_path):
    midi = tmp_path / "scale.mid"
    write_midi(make_score([(60 + 2 * i, i, 1, 90) for i in range(8)], tempo=120), midi)
    out = render.render_wav(midi, tmp_path / "out" / "scale.wav")
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 48_000)
    assert render.wav_seconds(out) == pytest.approx(5.0, abs=0.01)
    assert [p.name for p in out.parent.iterdir()] == ["scale.wav"]  # no temp file left


def test_write_wav_round_trips_and_clips(tmp_path):
    samples = np.array([[0.0, -1.0], [0.5, 0.25], [2.0, -3.0]], dtype=np.float32)
    path = render.write_wav(tmp_path / "x.wav", samples, 22_050)
    back, rate = render.read_wav(path.read_bytes())
    assert rate == 22_050
    np.testing.assert_array_equal(back, [[0.0, -1.0], [0.5, 0.25], [32767 / 32768, -1.0]])


def test_the_bundled_soundfont_comes_with_pretty_midi():
    font = render.find_soundfont()
    assert font == render.bundled_soundfont()
    assert font.name == "TimGM6mb.sf2" and font.parent.name == "pretty_midi"


def test_missing_or_bad_soundfont_says_so(tmp_path):
    with pytest.raises(render.RenderUnavailableError, match="soundfont not found"):
        render.find_soundfont(tmp_path / "none.sf2")
    (tmp_path / "bad.sf2").write_bytes(b"not a soundfont")
    with pytest.raises(render.RenderUnavailableError, match="not a SoundFont 2"):
        render.synthesize(midi_bytes(make_score([(60, 0, 1, 90)])), tmp_path / "bad.sf2")
    assert issubclass(render.RenderUnavailableError, UserError)


def test_no_soundfont_anywhere_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(render, "bundled_soundfont", lambda: None)
    monkeypatch.setattr(render, "SOUNDFONT_PLACES", (str(tmp_path / "none.sf2"),))
    with pytest.raises(render.RenderUnavailableError, match="pip.*--soundfont"):
        render.find_soundfont()


def test_fluidsynth_is_an_option_never_a_requirement(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(render.RenderUnavailableError, match="apt-get install fluidsynth"):
        render.synthesize(midi_bytes(make_score([(60, 0, 1, 90)])), synth="fluidsynth")
    samples, _ = render.synthesize(midi_bytes(make_score([(60, 0, 1, 90)])))  # builtin
    assert len(samples) > 0


def test_not_midi_is_one_line(tmp_path):
    (tmp_path / "x.mid").write_text("hello")
    with pytest.raises(UserError, match=r"x\.mid: not a readable MIDI file"):
        render.render_wav(tmp_path / "x.mid", tmp_path / "x.wav")
    with pytest.raises(UserError, match="not found"):
        render.render_wav(tmp_path / "missing.mid", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_silence_after_moves_only_the_end():
    data = midi_bytes(make_score([(60, 0, 1, 90)], tempo=60))
    before = mido.MidiFile(file=io.BytesIO(data))
    after = mido.MidiFile(file=io.BytesIO(with_silence_after(data, 2.0)))
    assert after.length == pytest.approx(before.length + 2.0)
    notes = [[m for m in t if m.type.startswith("note")] for t in before.tracks]
    assert notes == [[m for m in t if m.type.startswith("note")] for t in after.tracks]


def test_wav_targets_beside_or_in_out(tmp_path):
    a, b = tmp_path / "a" / "x.mid", tmp_path / "b" / "x.mid"
    assert render.wav_targets([a, b]) == [a.with_suffix(".wav"), b.with_suffix(".wav")]
    assert render.wav_targets([a], tmp_path / "o") == [tmp_path / "o" / "x.wav"]
    with pytest.raises(UserError, match="would both write"):
        render.wav_targets([a, b], tmp_path / "o")
