"""generate(): tiny untrained checkpoints in, DAW-ready, reproducible MIDI files out."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from musicgen.runtime import import_tensorflow

import_tensorflow()

from musicgen import checkpoint as ckpt  # noqa: E402
from musicgen import generate as gen  # noqa: E402
from musicgen.cli import main  # noqa: E402
from musicgen.config import EncodingConfig, SampleConfig  # noqa: E402
from musicgen.encoding import EOS, get_encoding  # noqa: E402
from musicgen.engine import (  # noqa: E402
    checkpoint_settings,
    load_model,
    sample_ids,
    step_function,
)
from musicgen.errors import UsageError, UserError  # noqa: E402
from musicgen.midi_io import read_score  # noqa: E402
from tests.music import (  # noqa: E402
    Track,
    assert_daw_ready,
    untrained_checkpoint,
    write_test_midi,
)


def _make_checkpoint(folder: Path, encoding: str = "remi", cell: str = "lstm") -> Path:
    return untrained_checkpoint(folder, EncodingConfig(name=encoding), cell=cell)


@pytest.fixture(scope="module")
def remi_ckpt(tmp_path_factory):
    return _make_checkpoint(tmp_path_factory.mktemp("ckpts") / "tiny")


@pytest.fixture(scope="module")
def perf_ckpt(tmp_path_factory):
    return _make_checkpoint(tmp_path_factory.mktemp("ckpts") / "perf", "performance", "gru")


def _remi():
    return get_encoding(EncodingConfig(name="remi"))


def test_remi_pieces_have_exact_bars_and_valid_tokens(remi_ckpt, tmp_path):
    files = gen.generate(remi_ckpt, tmp_path, num=3, bars=3, sample=SampleConfig(seed=5))
    assert [f.path.name for f in files] == ["tiny-5-01.mid", "tiny-5-02.mid", "tiny-5-03.mid"]
    encoding = _remi()
    for f in files:
        assert f.ids[-1] == EOS and f.tokens > 0
        score = encoding.decode(f.ids)
        assert score.dropped.get("invalid_tokens", 0) == 0
        assert f.bars == 3 == encoding.describe(f.ids).count("Bar")
        assert f.notes == len(score.notes) > 0
        assert f.lowest == min(n.pitch for n in score.notes)
        assert f.seconds == pytest.approx(score.duration_seconds)
        assert_daw_ready(f.path, length_quarters=score.length)
        assert f.summary().startswith(f"{f.path}  3 bars  {f.notes} notes (drums included)  ")


def test_same_seed_same_bytes_other_seed_other_bytes(remi_ckpt, tmp_path):
    a = gen.generate(remi_ckpt, tmp_path / "a", num=2, bars=2, sample=SampleConfig(seed=1))
    b = gen.generate(remi_ckpt, tmp_path / "b", num=2, bars=2, sample=SampleConfig(seed=1))
    c = gen.generate(remi_ckpt, tmp_path / "c", num=2, bars=2, sample=SampleConfig(seed=2))
    for x, y, z in zip(a, b, c, strict=True):
        assert x.path.read_bytes() == y.path.read_bytes()
        assert x.path.read_bytes() != z.path.read_bytes()
    assert a[0].path.read_bytes() != a[1].path.read_bytes()


def test_piece_does_not_depend_on_num(remi_ckpt, tmp_path):
    two = gen.generate(remi_ckpt, tmp_path / "two", num=2, bars=2)
    four = gen.generate(remi_ckpt, tmp_path / "four", num=4, bars=2)
    for x, y in zip(two, four[:2], strict=True):
        assert x.ids == y.ids
        assert x.path.read_bytes() == y.path.read_bytes()


def test_sampling_settings_are_used(remi_ckpt, tmp_path):
    greedy = gen.generate(remi_ckpt, tmp_path, num=2, bars=2, sample=SampleConfig(top_k=1))
    assert greedy[0].ids == greedy[1].ids  # argmax ignores the per-piece generators


def test_existing_files_need_force(remi_ckpt, tmp_path):
    target = tmp_path / "tiny-0-02.mid"
    target.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="tiny-0-02.mid exists; use force=True"):
        gen.generate(remi_ckpt, tmp_path, num=2, bars=1)
    assert not (tmp_path / "tiny-0-01.mid").exists()  # refused before any work
    assert target.read_bytes() == b"keep me"
    files = gen.generate(remi_ckpt, tmp_path, num=2, bars=1, force=True, name_prefix="x")
    assert [f.path.name for f in files] == ["x-0-01.mid", "x-0-02.mid"]
    gen.generate(remi_ckpt, tmp_path, num=2, bars=1, force=True)
    assert target.read_bytes() != b"keep me"


def test_tempo_and_program(remi_ckpt, tmp_path):
    import mido

    [f] = gen.generate(remi_ckpt, tmp_path, num=1, bars=2, tempo=90, program=40)
    mid = mido.MidiFile(str(f.path))
    tempos = [m for m in mid.tracks[0] if m.type == "set_tempo"]
    assert [round(mido.tempo2bpm(m.tempo)) for m in tempos] == [90]
    assert [m.program for m in mid.tracks[1] if m.type == "program_change"] == [40]
    assert [m.name for m in mid.tracks[1] if m.type == "track_name"] == ["tiny"]
    assert f.seconds == pytest.approx(read_score(f.path).duration_seconds)


def _primer(path: Path, bars: int) -> Path:
    """A 4/4 primer at 100 bpm with notes in every one of `bars` bars, on the grid."""
    notes = []
    for bar in range(bars):
        notes += [
            (60 + bar, 4 * bar, 1, 80),
            (64, 4 * bar + 1.5, 0.5, 100),
            (67, 4 * bar + 2, 2, 60),
        ]
    return write_test_midi(path, [Track(notes)], tempos=[(0.0, 100.0)])


def _notes_before(score, quarters):
    return [(n.pitch, n.start, n.end, n.velocity) for n in score.notes if n.start < quarters]


def test_primer_is_continued(remi_ckpt, tmp_path):
    primer = _primer(tmp_path / "primer.mid", bars=2)
    encoding = _remi()
    expected = encoding.decode(encoding.encode(read_score(primer)).ids)
    files = gen.generate(remi_ckpt, tmp_path / "out", num=2, bars=3, primer=primer)
    for f in files:
        assert f.bars == 5
        score = encoding.decode(f.ids)
        assert score.dropped.get("invalid_tokens", 0) == 0
        assert _notes_before(score, 8.0) == _notes_before(expected, 8.0)
        assert score.tempos[0] == (0.0, expected.tempos[0][1])
        written = read_score(f.path)
        assert [(n.pitch, n.start) for n in written.notes if n.start < 8] == [
            (n.pitch, n.start) for n in expected.notes
        ]
        assert_daw_ready(f.path, length_quarters=score.length)


def test_long_primer_keeps_its_last_bars(remi_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "MAX_PRIMER_BARS", 1)
    primer = _primer(tmp_path / "primer.mid", bars=2)
    notes = []
    [f] = gen.generate(remi_ckpt, tmp_path, num=1, bars=1, primer=primer, on_note=notes.append)
    assert notes == ["primer primer.mid is long: only its last 1 bars are used"]
    score = _remi().decode(f.ids)
    assert f.bars == 2
    assert [(n.pitch, n.start) for n in score.notes if n.start < 4] == [(61, 0), (64, 1.5), (67, 2)]


def test_a_primer_of_several_tunes_continues_the_first(remi_ckpt, tmp_path):
    from tests.test_midi_io import TUNES

    primer = tmp_path / "tunes.abc"
    primer.write_text(TUNES)
    notes = []
    [f] = gen.generate(remi_ckpt, tmp_path, num=1, bars=1, primer=primer, on_note=notes.append)
    assert notes == ["primer tunes.abc holds 2 pieces: the first is used"]
    first = [(n.pitch, n.start) for n in _remi().decode(f.ids).notes][:4]
    assert first == [(60, 0.0), (62, 1.0), (64, 2.0), (67, 3.0)]  # C D E | G3 in 3/4


def test_bad_primer_is_one_line_error(remi_ckpt, tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd this is not midi")
    with pytest.raises(UserError, match=r"cannot use primer .*bad\.mid") as info:
        gen.generate(remi_ckpt, tmp_path / "out", num=1, bars=1, primer=bad)
    assert "\n" not in str(info.value)


def test_performance_pieces_last_exactly(perf_ckpt, tmp_path):
    files = gen.generate(perf_ckpt, tmp_path, num=2, seconds=1.5)
    encoding = get_encoding(EncodingConfig(name="performance"))
    for f in files:
        score = encoding.decode(f.ids)
        assert score.dropped.get("invalid_tokens", 0) == 0
        assert score.duration_seconds == pytest.approx(1.5)
        assert f.seconds == pytest.approx(1.5)
        assert_daw_ready(f.path, length_quarters=score.length)


def test_performance_primer_is_continued(perf_ckpt, tmp_path):
    primer = _primer(tmp_path / "primer.mid", bars=1)  # 4 quarters at 100 bpm = 2.4 s
    encoding = get_encoding(EncodingConfig(name="performance"))
    expected = encoding.decode(encoding.encode(read_score(primer)).ids)
    [f] = gen.generate(perf_ckpt, tmp_path / "out", num=1, seconds=1.0, primer=primer)
    score = encoding.decode(f.ids)
    assert score.dropped.get("invalid_tokens", 0) == 0
    assert score.duration_seconds == pytest.approx(3.4)
    primer_end = expected.length
    assert _notes_before(score, primer_end) == _notes_before(expected, primer_end)


def test_length_unit_must_fit_the_encoding(remi_ckpt, perf_ckpt, tmp_path):
    with pytest.raises(UsageError, match="remi encoding counts bars"):
        gen.generate(remi_ckpt, tmp_path, seconds=10)
    with pytest.raises(UsageError, match="performance encoding counts seconds"):
        gen.generate(perf_ckpt, tmp_path, bars=4)


def test_runaway_generation_is_stopped(remi_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "MAX_STEPS_PER_UNIT", 2)
    with pytest.raises(UserError, match="did not finish within 4 tokens"):
        gen.generate(remi_ckpt, tmp_path, num=1, bars=2)


def test_pitch_names():
    assert [gen.pitch_name(p) for p in (21, 36, 60, 81, 108)] == ["A0", "C2", "C4", "A5", "C8"]


# ----------------------------------------------------------------------------- CLI


def test_cli_generate_prints_a_line_per_file(remi_ckpt, tmp_path):
    out = tmp_path / "gen"
    args = ["generate", "--checkpoint", str(remi_ckpt), "--out", str(out), "--num", "2"]
    result = CliRunner().invoke(main, [*args, "--bars", "2", "--seed", "3", "--top-p", "0.9"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{out / 'tiny-3-01.mid'}  2 bars  ")
    again = CliRunner().invoke(main, [*args, "--bars", "2", "--seed", "3"])
    assert again.exit_code == 2 and "use --force" in again.output
    quiet = CliRunner().invoke(main, [*args, "--bars", "2", "--seed", "3", "--force", "--quiet"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_cli_missing_checkpoint(tmp_path):
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "musicgen train" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "option",
    [["--program", "128"], ["--top-p", "0"], ["--temperature", "0"], ["--num", "0"],
     ["--bars", "0"], ["--top-k", "-1"], ["--tempo", "5"]],
)  # fmt: skip
def test_cli_rejects_bad_options(remi_ckpt, tmp_path, option):
    args = ["generate", "--checkpoint", str(remi_ckpt), "--out", str(tmp_path), *option]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("engine", ["numpy", "keras"])
def test_sample_loop_feeds_finished_pieces_pad(remi_ckpt, engine):
    """Pieces of different lengths in one batch: each stops at its own EOS."""
    loaded = ckpt.load_checkpoint(remi_ckpt, engine=engine)
    encoding = loaded.encoding
    grammars = [encoding.grammar(1), encoding.grammar(3)]
    for g in grammars:
        g.advance(1)
    rngs = [np.random.default_rng([0, i]) for i in range(2)]
    ids = sample_ids(loaded.model, grammars, [1], SampleConfig(), 10_000, rngs)
    assert [encoding.describe(x).count("Bar") for x in ids] == [1, 3]
    assert all(x[-1] == EOS and x.count(EOS) == 1 for x in ids)


def test_again_draws_a_finished_piece_anew_in_the_same_pass(remi_ckpt):
    """sample_ids' `again`: a piece that ends is drawn again in its row with the grammar
    and Generator given (the same ids as that draw alone), the other piece untouched."""
    loaded = ckpt.load_checkpoint(remi_ckpt, engine="numpy")
    encoding = loaded.encoding

    def fresh(bars):
        grammar = encoding.grammar(bars)
        grammar.advance(1)
        return grammar

    ended = []

    def again(piece, ids):
        ended.append((piece, encoding.describe(ids).count("Bar")))
        if ended == [(0, 1)]:
            return fresh(2), np.random.default_rng([7, 7])
        return None

    rngs = [np.random.default_rng([0, i]) for i in range(2)]
    ids = sample_ids(
        loaded.model, [fresh(1), fresh(4)], [1], SampleConfig(), 10_000, rngs, again=again
    )
    alone = sample_ids(
        loaded.model, [fresh(2)], [1], SampleConfig(), 10_000, [np.random.default_rng([7, 7])]
    )
    first = sample_ids(
        loaded.model,
        [fresh(1), fresh(4)],
        [1],
        SampleConfig(),
        10_000,
        [np.random.default_rng([0, i]) for i in range(2)],
    )
    assert ids[0] == alone[0] and ids[1] == first[1]
    assert sorted(ended) == [(0, 1), (0, 2), (1, 4)]
    with pytest.raises(UserError, match="did not finish within 5 tokens"):
        sample_ids(loaded.model, [fresh(4)], [1], SampleConfig(), 5)


# ----------------------------------------------------------------------------- engines


def test_engines_write_identical_files(remi_ckpt, perf_ckpt, tmp_path):
    """NumPy and Keras steps agree to float rounding (~1e-6), far below what could move
    an inverse-CDF draw in these runs, so the files are byte-identical."""
    primer = _primer(tmp_path / "primer.mid", bars=1)
    runs = [
        (remi_ckpt, {"bars": 3, "sample": SampleConfig(seed=4)}),
        (remi_ckpt, {"bars": 2, "primer": primer}),
        (perf_ckpt, {"seconds": 1.0, "sample": SampleConfig(seed=2, top_p=0.9)}),
    ]
    for n, (folder, options) in enumerate(runs):
        files = {
            engine: gen.generate(folder, tmp_path / f"{engine}{n}", num=3, engine=engine, **options)
            for engine in ("numpy", "keras")
        }
        for mine, theirs in zip(files["numpy"], files["keras"], strict=True):
            assert mine.ids == theirs.ids
            assert mine.path.read_bytes() == theirs.path.read_bytes()


def test_engine_step_functions_give_the_same_logits(perf_ckpt):
    numpy_model = ckpt.load_checkpoint(perf_ckpt, engine="numpy").model
    keras_model = ckpt.load_checkpoint(perf_ckpt, engine="keras").model
    prefix = [1, 30, 40, 50]
    steps = [step_function(m, 2, prefix) for m in (numpy_model, keras_model)]
    for ids in ([60, 61], [70, 3], [0, 80]):
        mine, theirs = (step(np.array(ids, dtype=np.int32)) for step in steps)
        assert mine.dtype == np.float32 and mine.shape == theirs.shape
        np.testing.assert_allclose(mine, theirs, atol=1e-5)


def test_a_loaded_checkpoint_is_used_as_it_is(remi_ckpt):
    """The engine reuses a loaded checkpoint's network when it is of the asked kind, and
    reads its settings off it; a folder is read from disk."""
    loaded = ckpt.load_checkpoint(remi_ckpt, engine="numpy")
    assert load_model(loaded, "auto") is loaded.model
    assert load_model(loaded, "keras") is not loaded.model
    mine, read = checkpoint_settings(loaded), checkpoint_settings(remi_ckpt)
    assert mine.encoding is loaded.encoding and mine.folder == read.folder == remi_ckpt
    assert mine.config == read.config and mine.meta["data"] == read.meta.get("data", {})


def test_unknown_engine_is_a_usage_error(remi_ckpt, tmp_path):
    with pytest.raises(UsageError, match="engine='torch' must be one of auto, numpy, keras"):
        gen.generate(remi_ckpt, tmp_path, num=1, bars=1, engine="torch")
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(remi_ckpt), "--engine", "x"])
    assert result.exit_code == 2


def test_cli_generate_does_not_import_tensorflow(remi_ckpt, tmp_path):
    """The whole `musicgen generate` (default engine) runs without TensorFlow or Keras."""
    script = f"""
import sys
import musicgen.generate
from musicgen.cli import main
try:
    main(["generate", "--checkpoint", {str(remi_ckpt)!r}, "--out", {str(tmp_path)!r},
          "--num", "2", "--bars", "2"])
except SystemExit as exc:
    assert not exc.code, exc.code
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"tensorflow", "keras"}}))
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert len(list(tmp_path.glob("*.mid"))) == 2


def test_a_reader_that_goes_away_stops_the_printing_not_the_files(remi_ckpt, tmp_path):
    """`musicgen generate ... | head -1`: the pipe closes after the first line, and every
    piece is still written, with exit code 0 and nothing on stderr."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = ["generate", "--checkpoint", str(remi_ckpt), "--out", str(tmp_path), "--num", "3"]
    read, write = os.pipe()
    os.close(read)  # nobody will ever read what generate prints
    with os.fdopen(write, "wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "musicgen", *args, "--bars", "2"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(list(tmp_path.glob("*.mid"))) == 3
