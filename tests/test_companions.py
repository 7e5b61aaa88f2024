"""generate --plot / --render: pictures and audio beside the MIDI files of the bundled model."""

from pathlib import Path

from click.testing import CliRunner

from musicgen import render
from musicgen.cli import main
from musicgen.errors import UserError

BUNDLED = Path(__file__).resolve().parent.parent / "checkpoints" / "bach"


def test_plot_writes_a_piano_roll_beside_each_file(tmp_path):
    out = tmp_path / "gen"
    result = CliRunner().invoke(
        main, ["generate", "--checkpoint", str(BUNDLED), "--out", str(out), "--num", "2",
               "--bars", "2", "--plot"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for i in (1, 2):
        png = out / f"bach-0-0{i}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_without_fluidsynth_warns_and_keeps_the_midi(tmp_path, monkeypatch):
    def missing() -> str:
        raise render.RenderUnavailableError("fluidsynth is not installed: apt-get install ...")

    monkeypatch.setattr(render, "find_fluidsynth", missing)
    out = tmp_path / "gen"
    result = CliRunner().invoke(
        main, ["generate", "--checkpoint", str(BUNDLED), "--out", str(out), "--num", "1",
               "--bars", "2", "--render", "wav"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fluidsynth is not installed" in result.output
    assert (out / "bach-0-01.mid").is_file()
    assert not (out / "bach-0-01.wav").exists()
    assert issubclass(render.RenderUnavailableError, UserError)
