"""The Python API (musicgen/api.py): the CLI's notes, defaults and messages, from Python."""

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest
from click.testing import CliRunner

import musicgen
from musicgen.cli import main
from musicgen.errors import UsageError, UserError
from tests.hostile import good_midi

ROOT = Path(__file__).resolve().parents[1]
BACH = ROOT / "checkpoints" / "bach"


@pytest.fixture(scope="module")
def bach():
    return musicgen.load(BACH)


def _notes(midi: pretty_midi.PrettyMIDI) -> list[list[tuple]]:
    """Per instrument: (pitch, start s, end s, velocity) of every note."""
    return [[(n.pitch, n.start, n.end, n.velocity) for n in i.notes] for i in midi.instruments]


def _cli_defaults(command: str) -> dict:
    """What each option of `musicgen COMMAND` is when not given (None if no default)."""
    return main.commands[command].make_context(command, [], resilient_parsing=True).params


def _cli(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output


def test_import_musicgen_does_not_import_tensorflow():
    code = "import musicgen, sys; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_generating_from_python_does_not_import_tensorflow():
    code = (
        "import musicgen, sys\n"
        "model = musicgen.load('checkpoints/bach')\n"
        "assert len(model.generate(num=1, bars=1)) == 1\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_api_gives_the_cli_notes(bach, tmp_path):
    """`musicgen generate --num 2 --bars 4 --seed 11` and model.generate(...) agree."""
    _cli("generate", "--num", "2", "--bars", "4", "--seed", "11", "--out", str(tmp_path), "-q",
         "--checkpoint", str(BACH))  # fmt: skip
    files = sorted(tmp_path.glob("*.mid"))
    assert [f.name for f in files] == ["bach-11-01.mid", "bach-11-02.mid"]
    pieces = bach.generate(num=2, bars=4, seed=11)
    assert len(pieces) == 2
    for path, piece in zip(files, pieces, strict=True):
        assert isinstance(piece, pretty_midi.PrettyMIDI)
        written = pretty_midi.PrettyMIDI(str(path))
        assert _notes(piece) == _notes(written) and _notes(piece)[0]
        assert [i.program for i in piece.instruments] == [i.program for i in written.instruments]
        assert piece.get_tempo_changes()[1].tolist() == written.get_tempo_changes()[1].tolist()


def test_api_gives_the_cli_notes_with_steering_and_a_primer(bach, tmp_path):
    primer = tmp_path / "primer.mid"
    bach.generate(num=1, bars=2, seed=3)[0].write(str(primer))
    options = {"temperature": 1.1, "top_k": 20, "top_p": 0.95, "tempo": 90}
    options |= {"key": "D minor", "density": "high", "time_signature": "3/4"}
    args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    out = tmp_path / "out"
    _cli("generate", "--num", "2", "--bars", "2", "--seed", "4", "--primer", str(primer),
         "--out", str(out), "-q", "--checkpoint", str(BACH), *args)  # fmt: skip
    pieces = bach.generate(num=2, bars=2, seed=4, primer=primer, **options)
    for path, piece in zip(sorted(out.glob("*.mid")), pieces, strict=True):
        assert _notes(piece) == _notes(pretty_midi.PrettyMIDI(str(path)))
        assert [i.name for i in piece.instruments] == ["Soprano", "Alto", "Tenor", "Bass"]


def test_api_harmonize_gives_the_cli_notes(bach, tmp_path):
    melody = tmp_path / "tune.mid"
    good_midi(melody)
    _cli("harmonize", str(melody), "--num", "2", "--seed", "5", "--out", str(tmp_path / "h"), "-q",
         "--checkpoint", str(BACH))  # fmt: skip
    pieces = bach.harmonize(melody, num=2, seed=5)
    files = sorted((tmp_path / "h").glob("*.mid"))
    assert len(files) == len(pieces) == 2
    for path, piece in zip(files, pieces, strict=True):
        assert len(piece.instruments) == 4  # the melody, then Alto, Tenor and Bass
        assert _notes(piece) == _notes(pretty_midi.PrettyMIDI(str(path)))


def test_model_methods_read_no_checkpoint_again(bach, tmp_path, monkeypatch):
    """generate and harmonize on a Model sample from the checkpoint it holds."""
    from musicgen import checkpoint

    def read_again(*args, **kwargs):
        raise AssertionError("the checkpoint was read again")

    monkeypatch.setattr(checkpoint, "load_checkpoint", read_again)
    monkeypatch.setattr(checkpoint, "read_config", read_again)
    melody = tmp_path / "tune.mid"
    good_midi(melody)
    assert len(bach.harmonize(melody, num=1, seed=2)) == 1
    assert len(bach.generate(num=1, bars=1, seed=2)) == 1


def test_api_defaults_are_the_cli_defaults():
    """Model.generate's and GenerateRequest's defaults are `musicgen generate`'s."""
    from musicgen.generate import GenerateRequest

    cli = _cli_defaults("generate")
    api = {
        name: p.default
        for name, p in inspect.signature(musicgen.Model.generate).parameters.items()
        if name != "self"
    }
    assert set(api) <= set(cli)
    assert {name: cli[name] for name in api} == api
    request = GenerateRequest()
    flat = {**vars(request), **vars(request.sample)}
    del flat["sample"]
    assert {name: cli[name] for name in flat} == flat
    harmonize_cli = _cli_defaults("harmonize")
    for name, p in inspect.signature(musicgen.Model.harmonize).parameters.items():
        if name in harmonize_cli and name != "melody":
            assert p.default == harmonize_cli[name], name
    prepare_cli = _cli_defaults("prepare")
    report = inspect.signature(musicgen.prepare).parameters
    assert report["data_dir"].default == prepare_cli["data_dir"]


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (lambda m: m.generate(seconds=3), ["--seconds", "3"]),
        (lambda m: m.generate(key="Q"), ["--key", "Q"]),
        (lambda m: m.generate(time_signature="5/0"), ["--time-signature", "5/0"]),
    ],
)
def test_errors_are_the_cli_messages(bach, tmp_path, call, args):
    """The CLI and the API raise the same error; each prints it in its own words."""
    args = ["generate", "--checkpoint", str(BACH), "--out", str(tmp_path), *args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    with pytest.raises(UsageError) as raised:
        call(bach)
    assert result.stderr == f"Error: {raised.value.cli_message()}\n"
    assert "--" not in str(raised.value)


def test_errors_name_the_api_keywords_and_the_cli_options(bach, song_file, tmp_path):
    """A Python caller reads `bars=(40, 44)`, a shell user `--bars 40-44`; one line each."""
    with pytest.raises(UsageError) as raised:
        bach.infill(song_file, bars=(40, 44))
    assert str(raised.value) == "bars=(40, 44): the song has 4 bars"
    result = CliRunner().invoke(
        main, ["infill", str(song_file), "--bars", "40-44", "--checkpoint", str(BACH)]
    )
    assert result.exit_code == 2
    assert result.stderr == "Error: --bars 40-44: the song has 4 bars\n"
    with pytest.raises(UsageError, match=r"^bars=\(0, 2\): bars go from A to B"):
        bach.infill(song_file, bars=(0, 2))
    with pytest.raises(UsageError, match=r"^candidates=0 must be at least 1$"):
        bach.infill(song_file, bars=(1, 2), candidates=0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "song-infill-0-01.mid").write_bytes(b"mine")
    with pytest.raises(UsageError, match=r"exists; use force=True to overwrite$"):
        _infill_files(song_file, out)
    with pytest.raises(UsageError, match=r"pass checkpoint=$"):
        musicgen.load(tmp_path / "nope")
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(tmp_path / "nope")])
    assert result.stderr.endswith("pass --checkpoint\n") and result.exit_code == 2


@pytest.fixture
def song_file(tmp_path):
    from musicgen.midi_io import write_midi
    from tests.test_arrange import song

    path = tmp_path / "song.mid"
    write_midi(song(4), path)
    return path


def _infill_files(song_file, out):
    from musicgen.arrange import infill

    return infill(BACH, song_file, (1, 2), out, candidates=1)


def test_loading_a_missing_checkpoint_is_the_cli_message(tmp_path):
    missing = tmp_path / "nope"
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(missing)])
    with pytest.raises(UsageError) as raised:
        musicgen.load(missing)
    assert result.stderr == f"Error: {raised.value.cli_message()}\n"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a checkpoint"):
        musicgen.load(tmp_path / "empty")
    assert musicgen.UsageError is UsageError and musicgen.UserError is UserError


def test_prepare_reports_the_cli_figures(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    for i in range(3):
        good_midi(folder / f"piece{i}.mid", root=55 + i)
    (folder / "junk.mid").write_bytes(b"not midi")
    report = musicgen.prepare(folder, workers=1)
    assert isinstance(report, musicgen.PrepareReport)
    assert report.files_ok == 3 and report.parsed == 4 and report.notes > 0
    assert [f["path"] for f in report.files_skipped] == ["junk.mid"]
    result = CliRunner().invoke(main, ["prepare", str(folder), "--json", "--workers", "1"])
    printed = json.loads(result.output)
    assert printed["cached"] == 4  # the second look reads the cache (skips too)
    mine = report.to_dict()
    for changes in (mine, printed):
        del changes["cached"], changes["parsed"]
    assert mine == printed
    with pytest.raises(UsageError, match="unknown encoding"):
        musicgen.prepare(folder, encoding="midi-like")


def test_readme_example_runs(tmp_path, monkeypatch):
    """The README's Python example (its first ```python block), as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python API") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "bach").symlink_to(BACH)
    (tmp_path / "checkpoints" / "band").symlink_to(ROOT / "checkpoints" / "band")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert (tmp_path / "one.mid").is_file()
    assert len(scope["pieces"]) == 2 and len(scope["voices"]) == 1
    names = [i.name for i in scope["pieces"][0].instruments]
    assert names == ["Soprano", "Alto", "Tenor", "Bass"]
    (song,) = scope["songs"]
    kept = {i.name for i in scope["pieces"][0].instruments}
    assert kept < {i.name for i in song.instruments} and any(i.is_drum for i in song.instruments)
    assert len(scope["fills"]) == 1


def test_musicgen_train_is_the_api_function():
    """`musicgen.train` is the API's train (the trainer module is musicgen.trainer)."""
    from musicgen import api

    assert musicgen.train is api.train


@pytest.mark.slow
def test_a_tiny_model_trains_from_python(tmp_path):
    data = tmp_path / "music"
    data.mkdir()
    for i in range(3):
        good_midi(data / f"piece{i}.mid", root=55 + i)
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"units": 12, "cell": "gru", "seq_len": 16}))
    tiny = {"layers": 1, "units": 8, "embedding_dim": 8, "batch_size": 4, "epochs": 1}
    tiny |= {"steps_per_epoch": 2, "val_fraction": 0.34, "patience": 0}
    model = musicgen.train(data, out=tmp_path / "run", config=settings_file, verbose=0, **tiny)
    assert isinstance(model, musicgen.Model) and model.path == tmp_path / "run"
    assert model.config.model.units == 8  # a keyword beats the file
    assert model.config.model.cell == "gru" and model.config.train.seq_len == 16  # the file
    assert model.config.model.dropout == 0.2  # the default
    assert model.training.epochs == 1 and model.training.best_val_loss is not None
    (piece,) = model.generate(num=1, bars=2, seed=1)
    assert isinstance(piece, pretty_midi.PrettyMIDI)
    assert model.evaluate(data)["tokens"] > 0
    with pytest.raises(UsageError, match="unknown setting 'unitz'"):
        musicgen.train(data, out=tmp_path / "other", unitz=3)
    with pytest.raises(UsageError, match="path does not exist"):
        musicgen.train(tmp_path / "nothing", out=tmp_path / "other")


def test_a_request_gives_the_same_scores_without_files(tmp_path):
    from musicgen.config import SampleConfig
    from musicgen.generate import GenerateRequest, generate, sample_pieces, sample_scores
    from musicgen.midi_io import midi_bytes

    request = GenerateRequest(num=2, bars=2, sample=SampleConfig(temperature=0.9, seed=7))
    files = generate(BACH, tmp_path, request)
    assert [f.path.name for f in files] == ["bach-7-01.mid", "bach-7-02.mid"]
    pieces = sample_pieces(BACH, request)
    assert [p.score for p in pieces] == sample_scores(BACH, request)
    for info, piece in zip(files, pieces, strict=True):
        assert piece.ids == info.ids and piece.track_name == "bach"
        assert midi_bytes(piece.score, track_name=piece.track_name) == info.path.read_bytes()
    assert (
        generate(BACH, tmp_path / "kw", num=2, bars=2, sample=request.sample)[0].ids == files[0].ids
    )
    with pytest.raises(TypeError, match="not both"):
        generate(BACH, tmp_path, request, num=3)
    with pytest.raises(UsageError, match="num=0 must be at least 1"):
        sample_scores(BACH, GenerateRequest(num=0))


def test_pieces_render_to_audio_from_python(bach, tmp_path):
    """`Model.render` / `musicgen.synthesize`: a generated piece, or a file, as samples;
    `musicgen.write_wav` writes them; the same audio as `musicgen render`'s WAV."""
    from musicgen import render

    (piece,) = bach.generate(num=1, bars=2, seed=3)
    samples, rate = bach.render(piece)
    assert rate == 48_000 and samples.shape[1] == 2 and samples.dtype.name == "float32"
    assert len(samples) / rate == pytest.approx(piece.get_end_time() + 1.0, abs=0.01)
    assert abs(samples).max() > 0.01
    midi = tmp_path / "piece.mid"
    piece.write(str(midi))
    from_file, _ = musicgen.synthesize(midi)
    assert (from_file == samples).all()
    written = musicgen.write_wav(tmp_path / "api.wav", samples, rate)
    _cli("render", str(midi))
    assert written.read_bytes() == (tmp_path / "piece.wav").read_bytes()
    assert render.read_wav(written.read_bytes())[0].shape == samples.shape
    with pytest.raises(UsageError, match="cannot render a int"):
        musicgen.synthesize(3)
    with pytest.raises(UsageError, match="path does not exist"):
        musicgen.synthesize(tmp_path / "none.mid")


def test_the_cli_commands_are_the_api_calls(tmp_path, monkeypatch):
    """`musicgen train` and `musicgen generate` hand their options to the API's functions
    (one settings resolution, one request builder), the options given and nothing else."""
    from types import SimpleNamespace

    from musicgen import api

    calls = {}

    def train_checkpoint(data_dir, out, **options):
        calls["train"] = (data_dir, out, options)
        return SimpleNamespace(status="finished")

    class Loaded:
        def write(self, out, request, **options):
            calls["write"] = (out, request)
            return []

    monkeypatch.setattr(api, "train_checkpoint", train_checkpoint)
    monkeypatch.setattr(api, "load", lambda path, **options: calls.setdefault("load", Loaded()))
    _cli("train", str(tmp_path), "--out", str(tmp_path / "run"), "--units", "8", "--resume", "-q")
    data_dir, out, options = calls["train"]
    assert (data_dir, out) == (tmp_path, tmp_path / "run")
    assert options["units"] == 8 and options["resume"] is True and "layers" not in options
    _cli("generate", "--out", str(tmp_path / "gen"), "--num", "2", "--top-k", "5", "--key", "Dm")
    out, request = calls["write"]
    assert request == api.generate_request(num=2, top_k=5, key="Dm")
    assert out == tmp_path / "gen"


def test_an_error_names_a_setting_in_each_sides_words():
    from musicgen.errors import Words, param

    error = UsageError(
        "/tmp/{x}/a.mid exists; use {force} after {bars}, see {doc}",
        force=param("force", True),
        bars=param("bars", (40, 44), "40-44"),
        doc=Words("Model.infill", "`musicgen infill --help`"),
    )
    assert str(error) == (
        "/tmp/{x}/a.mid exists; use force=True after bars=(40, 44), see Model.infill"
    )
    assert error.cli_message() == (
        "/tmp/{x}/a.mid exists; use --force after --bars 40-44, see `musicgen infill --help`"
    )
    assert UsageError("plain {braces}").cli_message() == "plain {braces}"
    assert (
        param("batch_size", 0).cli == "--batch-size 0" and param("checkpoint").api == "checkpoint="
    )
