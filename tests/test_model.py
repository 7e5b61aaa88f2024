"""MusicRNN: shapes, step-by-step equals the whole-window pass, weights round-trip."""

import numpy as np
import pytest

from musicgen.runtime import import_tensorflow

import_tensorflow()

from musicgen.config import ModelConfig  # noqa: E402
from musicgen.model import MusicRNN, build_model  # noqa: E402

VOCAB = 23


def _ids(batch: int, length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, (batch, length)).astype(np.int32)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_step_reproduces_call(cell, layers):
    model = build_model(ModelConfig(cell=cell, layers=layers, units=16, embedding_dim=8), VOCAB)
    ids = _ids(3, 9)
    whole = np.asarray(model(ids))
    states = model.initial_states(3)
    assert len(states) == layers * (2 if cell == "lstm" else 1)
    stepped = []
    for t in range(ids.shape[1]):
        logits, states = model.step(ids[:, t], states)
        stepped.append(np.asarray(logits))
    assert whole.shape == (3, 9, VOCAB)
    assert whole.dtype == np.float32
    np.testing.assert_allclose(np.stack(stepped, axis=1), whole, rtol=1e-5, atol=1e-5)


def test_depth_is_data():
    model = build_model(ModelConfig(layers=3, units=8, embedding_dim=4), VOCAB)
    assert len(model.recurrent) == 3
    assert all(rnn.units == 8 for rnn in model.recurrent)
    gru = build_model(ModelConfig(cell="gru", layers=1, units=8, embedding_dim=4), VOCAB)
    assert type(gru.recurrent[0]).__name__ == "GRU"
    assert gru.recurrent[0].reset_after


def test_dropout_only_in_training():
    model = build_model(ModelConfig(units=8, embedding_dim=4, dropout=0.5), VOCAB)
    ids = _ids(2, 5)
    np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(model(ids)))
    assert not np.allclose(np.asarray(model(ids, training=True)), np.asarray(model(ids)))


def test_weights_round_trip(tmp_path):
    config = ModelConfig(units=8, embedding_dim=4)
    model = build_model(config, VOCAB)
    path = tmp_path / "w.weights.h5"
    model.save_weights(str(path))
    other = build_model(config, VOCAB)
    other.load_weights(str(path))
    ids = _ids(2, 6)
    np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(other(ids)))


def test_config_round_trip():
    model = build_model(ModelConfig(cell="gru", units=8, embedding_dim=4), VOCAB)
    again = MusicRNN.from_config(model.get_config())
    assert again.model_config == model.model_config and again.vocab_size == VOCAB
