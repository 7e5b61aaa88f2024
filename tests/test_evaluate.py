"""evaluate: network scores equal a direct computation, padding never leaks, the baseline and
the SPEC shape, missing files; nats per quarter note and per note on music built in code
(hand-checked totals, a file of two pieces); the CLI table; `info`'s validation figures."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from musicgen.runtime import import_tensorflow

import_tensorflow()

from musicgen import checkpoint as ckpt  # noqa: E402
from musicgen import evaluate as ev  # noqa: E402
from musicgen.cli import main  # noqa: E402
from musicgen.config import EncodingConfig, ModelConfig, RunConfig  # noqa: E402
from musicgen.dataset import PreparedFile  # noqa: E402
from musicgen.encoding import get_encoding  # noqa: E402
from musicgen.encoding.parts import pack_stream  # noqa: E402
from musicgen.errors import UserError  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from tests.music import Track, make_score, untrained_checkpoint, write_test_midi  # noqa: E402

VOCAB = 19


def _direct_scores(model, ids):
    """(nll nats, correct) of one sequence straight from the model's logits (its
    inputs packed with their parts where the checkpoint's network reads them)."""
    parts = getattr(model, "parts", None)
    inputs = ids if parts is None else pack_stream(ids, parts)
    logits = model(np.asarray(inputs[None, :-1], np.int32)).numpy()[0].astype(np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
    logp -= logits.max(-1, keepdims=True)
    targets = ids[1:]
    nll = -logp[np.arange(len(targets)), targets].sum()
    return nll, int((logits.argmax(-1) == targets).sum())


def test_network_scores_match_one_sequence_at_a_time():
    model = build_model(ModelConfig(layers=2, units=8, embedding_dim=4, dropout=0.5), VOCAB)
    rng = np.random.default_rng(0)
    seqs = [
        np.concatenate([[1], rng.integers(3, VOCAB, n), [2]]).astype(np.int32)
        for n in (5, 40, 1, 17, 40)
    ]
    scores = ev.network_scores(model, seqs, batch_size=3)  # padded batches, sorted by length
    for seq, (nll, correct) in zip(seqs, scores, strict=True):
        want_nll, want_correct = _direct_scores(model, seq)
        assert nll == pytest.approx(want_nll, rel=1e-5)
        assert correct == want_correct


def test_batches_respect_size_and_token_budget(monkeypatch):
    monkeypatch.setattr(ev, "MAX_BATCH_TOKENS", 100)
    batches = ev._batches([10, 60, 5, 30, 200, 12], batch_size=2)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len(b) <= 2 for b in batches)
    lengths = [10, 60, 5, 30, 200, 12]
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 100


def test_ngram_scores_and_summary_shape():
    rng = np.random.default_rng(1)
    motif = [3, 5, 7, 5]
    train = [np.array([1] + motif * int(rng.integers(3, 8)) + [2]) for _ in range(12)]
    held = [np.array([1] + motif * 4 + [2])]
    base = ev.ngram_scores(train, held, vocab_size=8, orders=range(1, 5))
    assert 1 <= base["order"] <= 4 and base["train_files"] == 12
    ((nll, correct),) = ev._totals(base["scores"])
    assert nll > 0 and correct >= 12  # the motif is predictable after a few tokens


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """Three small MIDI files and an untrained 1x8 LSTM checkpoint whose split.json names
    two training files and one validation file (plus one that is not in the folder)."""
    data = tmp_path_factory.mktemp("data")
    phrase = [0, 2, 4, 5, 7, 5, 4, 2]
    for i, root in enumerate((60, 62, 65)):
        notes = [(root + step, q, 1.0, 80) for q, step in enumerate(phrase * 2)]
        write_test_midi(data / f"piece{i}.mid", [Track(notes)])
    folder = tmp_path_factory.mktemp("ckpt")
    config = RunConfig().with_flat({"layers": 1, "units": 8, "embedding_dim": 4, "seq_len": 16})
    vocab_size = len(get_encoding(config.encoding).vocab)
    model = build_model(config.model, vocab_size)
    ckpt.save_config(folder, config, vocab_size, {"data_dir": str(data)})
    ckpt.save_weights(folder, model, "best")
    ckpt.save_split(folder, ["piece0.mid", "piece1.mid"], ["piece2.mid", "gone.mid"], 0, 0.3)
    return folder, data


@pytest.mark.slow
def test_evaluate_validation_files(tiny_checkpoint):
    folder, data = tiny_checkpoint
    result = ev.evaluate(folder)  # data_dir from config.json
    assert result["split"] == "validation" and result["data_dir"] == str(data)
    assert [f["path"] for f in result["files"]] == ["piece2.mid"]
    assert result["missing"] == ["gone.mid"]
    # the figures agree with each other and with a direct computation
    loaded = ckpt.load_checkpoint(folder)
    ids = get_encoding(loaded.config.encoding).encode(_read(data / "piece2.mid")).ids
    nll, correct = _direct_scores(loaded.model, ids)
    assert result["tokens"] == len(ids) - 1 == result["files"][0]["tokens"]
    assert result["files"][0]["nll_nats"] == pytest.approx(nll, rel=1e-5)
    assert result["nll_per_token"] == pytest.approx(nll / (len(ids) - 1), rel=1e-5)
    assert result["bits_per_token"] == pytest.approx(result["nll_per_token"] / math.log(2))
    assert result["perplexity"] == pytest.approx(math.exp(result["nll_per_token"]))
    assert result["accuracy"] == pytest.approx(correct / (len(ids) - 1))
    assert result["files"][0]["seconds"] == pytest.approx(8.0)  # 16 quarters at 120 bpm
    base = result["baseline"]
    assert base["train_files"] == 2 and base["tokens"] == result["tokens"]
    # an untrained network is near uniform; the n-gram has seen the same phrase transposed
    assert base["nll_per_token"] < result["nll_per_token"]
    json.dumps(result)  # JSON-ready


@pytest.mark.slow
def test_evaluate_all_files_and_errors(tiny_checkpoint, tmp_path):
    folder, data = tiny_checkpoint
    result = ev.evaluate(folder, data, all_files=True)
    assert [f["path"] for f in result["files"]] == [f"piece{i}.mid" for i in range(3)]
    other = tmp_path / "other"
    other.mkdir()
    write_test_midi(other / "new.mid", [Track([(60, 0, 1, 80)])])
    with pytest.raises(UserError, match="none of the 2 validation files"):
        ev.evaluate(folder, other)


@pytest.mark.slow
def test_evaluate_command(tiny_checkpoint, tmp_path):
    folder, data = tiny_checkpoint
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        main, ["evaluate", str(data), "--checkpoint", str(folder), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "network" in result.output and "n-gram (order" in result.output
    assert "perplexity" in result.output and "1 missing" in result.output
    saved = json.loads(out.read_text())
    for key in ("nll_per_token", "bits_per_token", "perplexity", "accuracy", "tokens", "files"):
        assert key in saved and key in saved["baseline"]
    assert set(saved["files"][0]) == {"path", "tokens", "nll_nats", "seconds", "quarters", "notes"}
    for key in ("nats_per_quarter", "nats_per_note"):
        assert saved[key] > 0 and saved["baseline"][key] > 0
    table = result.output.splitlines()
    lead = table.index(next(line for line in table if "n-gram (order" in line)) + 1
    assert table[lead].startswith("nats/quarter note") and table[lead + 1].startswith("nats/note")


def test_evaluate_command_without_a_checkpoint(tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(tmp_path / "none")])
    assert result.exit_code == 2 and "checkpoint folder not found" in result.output


# ------------------------------------------------------------ nats per quarter note / note

# Two pieces whose size is known by hand. remi counts music in whole bars:
# A (4/4): notes end at 1, 2 and 6.5 quarters -> 2 bars = 8 quarters, 3 notes;
# B (3/4): notes end at 1 and 1.5 quarters -> 1 bar = 3 quarters, 2 notes.
PIECE_A = [(60, 0, 1, 80), (64, 0, 2, 80), (67, 2.5, 4, 80)]
PIECE_B = [(62, 0, 1, 80), (65, 1, 0.5, 80)]


def _two_pieces():
    remi = get_encoding(EncodingConfig(name="remi"))
    a = remi.encode(make_score(PIECE_A)).ids
    b = remi.encode(make_score(PIECE_B, time_signature=(3, 4))).ids
    return remi, a, b


def test_music_size_counts_every_piece_of_a_file():
    remi, a, b = _two_pieces()
    assert remi.music_size(a) == (8.0, 3)
    assert remi.music_size(b) == (3.0, 2)
    assert remi.music_size(np.concatenate([a, b])) == (11.0, 5)  # one file, two pieces


def test_summarize_divides_total_nats_by_total_music():
    """Uniform predictions over V ids cost log(V) nats per target, so each total is known."""
    remi, a, b = _two_pieces()
    both = np.concatenate([a, b])
    files = [
        PreparedFile("a.mid", "0", a, 3, 4.0, {}),
        PreparedFile("ab.abc", "1", both, 5, 5.5, {}),
    ]
    log_v = math.log(len(remi.vocab))
    scores = [((len(f.ids) - 1) * log_v, 1) for f in files]
    sizes = [remi.music_size(f.ids) for f in files]
    result = ev.summarize(ev.file_scores(files, sizes, scores))

    tokens = (len(a) - 1) + (len(both) - 1)
    assert result["tokens"] == tokens and result["quarters"] == 8 + 11 and result["notes"] == 3 + 5
    assert result["nll_nats"] == pytest.approx(tokens * log_v)
    assert result["nats_per_quarter"] == pytest.approx(tokens * log_v / 19)
    assert result["nats_per_note"] == pytest.approx(tokens * log_v / 8)
    assert result["nll_per_token"] == pytest.approx(log_v)
    assert result["perplexity"] == pytest.approx(len(remi.vocab))
    assert result["accuracy"] == pytest.approx(2 / tokens)
    assert result["files"] == [
        {"path": "a.mid", "tokens": len(a) - 1, "nll_nats": scores[0][0], "seconds": 4.0,
         "quarters": 8.0, "notes": 3},
        {"path": "ab.abc", "tokens": len(both) - 1, "nll_nats": scores[1][0], "seconds": 5.5,
         "quarters": 11.0, "notes": 5},
    ]  # fmt: skip


def test_summarize_hand_numbers_and_no_music():
    files = [
        ev.FileScore("x", tokens=10, nll_nats=12.0, correct=4, seconds=2, quarters=8, notes=3),
        ev.FileScore("y", tokens=6, nll_nats=3.0, correct=2, seconds=1, quarters=3, notes=2),
    ]
    result = ev.summarize(files)
    assert result["nll_nats"] == 15.0 and result["tokens"] == 16
    assert result["nats_per_quarter"] == pytest.approx(15 / 11)
    assert result["nats_per_note"] == pytest.approx(3.0)
    assert result["nll_per_token"] == pytest.approx(15 / 16)
    assert result["accuracy"] == pytest.approx(6 / 16)
    silent = ev.summarize([ev.FileScore("z", 2, 1.0, 0, 0.0, 0.0, 0)])
    assert silent["nats_per_quarter"] is None and silent["nats_per_note"] is None
    assert "n/a" in ev._shown(silent["nats_per_quarter"], "{:.4f}")


def test_evaluate_figures_per_quarter_and_note(tmp_path):
    """An untrained checkpoint scored on a MIDI file of chords (8 quarters, 16 notes) and an
    ABC file of two tunes (2 bars of 4/4 + 1 bar of 3/4 = 11 quarters, 8 + 3 notes)."""
    data = tmp_path / "data"
    data.mkdir()
    chords = [(p, q, 1, 80) for q in range(8) for p in (60 + q, 64 + q)]
    write_test_midi(data / "chords.mid", [Track(chords)])
    (data / "tunes.abc").write_text(
        "X:1\nT:one\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|\n\nX:2\nT:two\nM:3/4\nL:1/4\nK:C\nCDE|\n"
    )
    for i in range(2):
        write_test_midi(
            data / f"train{i}.mid", [Track([(60 + i + q % 5, q, 1, 80) for q in range(8)])]
        )
    folder = untrained_checkpoint(tmp_path / "ckpt")
    ckpt.save_split(folder, ["train0.mid", "train1.mid"], ["chords.mid", "tunes.abc"], 0, 0.5)

    result = ev.evaluate(folder, data)
    files = {f["path"]: f for f in result["files"]}
    assert (files["chords.mid"]["quarters"], files["chords.mid"]["notes"]) == (8.0, 16)
    assert (files["tunes.abc"]["quarters"], files["tunes.abc"]["notes"]) == (11.0, 11)
    for figures in (result, result["baseline"]):
        assert [f["quarters"] for f in figures["files"]] == [f["quarters"] for f in result["files"]]
        total = sum(f["nll_nats"] for f in figures["files"])
        assert figures["nll_nats"] == pytest.approx(total)
        assert figures["nll_per_token"] == pytest.approx(total / figures["tokens"])
        assert figures["quarters"] == 19.0 and figures["notes"] == 27
        assert figures["nats_per_quarter"] == pytest.approx(total / 19)
        assert figures["nats_per_note"] == pytest.approx(total / 27)
    json.dumps(result)


# ----------------------------------------------------------------------------- info


def test_info_shows_validation_figures_when_present(tmp_path):
    folder = untrained_checkpoint(tmp_path / "ckpt")
    runner = CliRunner()
    old = runner.invoke(main, ["info", str(folder)])
    assert old.exit_code == 0, old.output
    assert "nats/quarter note" not in old.output  # older checkpoints: nothing new

    row = {"epoch": 1, "loss": 2.0, "val_loss": 1.9, "val_nats_per_quarter": 5.25,
           "val_nats_per_note": 1.5}  # fmt: skip
    ckpt.save_history(folder, [row, {**row, "epoch": 2, "val_nats_per_quarter": 4.75}])
    shown = runner.invoke(main, ["info", str(folder)]).output
    assert "Validation: 4.7500 nats/quarter note, 1.5000 nats/note (epoch 2)" in shown
    as_json = json.loads(runner.invoke(main, ["info", str(folder), "--json"]).output)
    assert as_json["last_epoch"]["val_nats_per_quarter"] == 4.75

    state = {"epoch": 2, "best_epoch": 1, "best_val_loss": 1.9, "metrics": row}
    ckpt.save_state(folder, state)  # the best epoch's figures win over the last row's
    shown = runner.invoke(main, ["info", str(folder)]).output
    assert "Validation: 5.2500 nats/quarter note, 1.5000 nats/note (epoch 1)" in shown
    as_json = json.loads(runner.invoke(main, ["info", str(folder), "--json"]).output)
    assert as_json["state"]["metrics"]["val_nats_per_note"] == 1.5


def _read(path):
    from musicgen.midi_io import read_score

    return read_score(path)


def test_family_scores_split_the_nats_between_the_parts_and_what_they_share():
    from types import SimpleNamespace

    from musicgen.config import EncodingConfig
    from musicgen.encoding import get_encoding
    from tests.test_tracks import band

    enc = get_encoding(EncodingConfig(name="tracks"))
    ids = enc.encode(band()).ids
    names = enc.describe(ids)
    nll = np.ones(len(ids) - 1)  # one nat per prediction: nats = tokens
    got = ev.family_scores(enc, [SimpleNamespace(ids=ids)], [(nll, 0)])
    # drums: Track_3, Velocity_12, Drum_36, Velocity_8, Drum_42, then Track_3 Drum_38
    assert got["drums"] == {"nats": 7.0, "notes": 3, "nats_per_note": 7 / 3}
    assert got["bass"]["nats"] == 4 + 3 and got["bass"]["notes"] == 2  # T V P D, T P D
    assert got["guitar"]["notes"] == 4
    shared = sum(
        1
        for n in names[1:]
        if n.split("_")[0] in ("Program", "Bar", "TimeSig", "Tempo", "Position", "EOS")
    )
    assert got["shared"]["nats"] == shared and got["shared"]["quarters"] == 4.0
    total = sum(v["nats"] for v in got.values())
    assert total == len(ids) - 1
    assert (
        ev.family_scores(
            get_encoding(EncodingConfig(name="remi")), [SimpleNamespace(ids=ids)], [(nll, 0)]
        )
        == {}
    )
