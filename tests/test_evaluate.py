"""evaluate: network scores equal a direct computation, padding never leaks, the baseline and
the SPEC shape, missing files; the CLI table."""

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
from musicgen.config import ModelConfig, RunConfig  # noqa: E402
from musicgen.encoding.base import get_encoding  # noqa: E402
from musicgen.errors import UserError  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from tests.music import Track, write_test_midi  # noqa: E402

VOCAB = 19


def _direct_scores(model, ids):
    """(nll nats, correct) of one sequence straight from the model's logits."""
    logits = model(np.asarray(ids[None, :-1], np.int32)).numpy()[0].astype(np.float64)
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
    ((nll, correct),) = base["scores"]
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
    assert set(saved["files"][0]) == {"path", "tokens", "nll_nats", "seconds"}


def test_evaluate_command_without_a_checkpoint(tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(tmp_path / "none")])
    assert result.exit_code == 2 and "checkpoint folder not found" in result.output


def _read(path):
    from musicgen.midi_io import read_score

    return read_score(path)
