"""NumpyRNN: the same logits as the Keras MusicRNN, read from the same weights file."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from musicgen.runtime import import_tensorflow

import_tensorflow()

from musicgen import checkpoint as ckpt  # noqa: E402
from musicgen.config import ModelConfig, RunConfig  # noqa: E402
from musicgen.errors import UserError  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from musicgen.npmodel import NumpyRNN  # noqa: E402

VOCAB = 23


def _saved(folder: Path, config: ModelConfig, seed: int = 0):
    """A MusicRNN with random weights of about unit scale (so every gate saturates
    somewhere), saved by checkpoint.py; returns (model, weights path)."""
    model = build_model(config, VOCAB)
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.7, weight.shape).astype("float32"))
    ckpt.save_weights(folder, model, "best")
    return model, folder / ckpt.BEST_WEIGHTS_FILE


def _config(cell: str, layers: int) -> ModelConfig:
    return ModelConfig(cell=cell, layers=layers, units=12, embedding_dim=5, dropout=0.3)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_matches_keras_step_and_call(tmp_path, cell, layers):
    config = _config(cell, layers)
    model, path = _saved(tmp_path, config)
    engine = NumpyRNN.from_weights_file(path, config, VOCAB)
    ids = np.random.default_rng(1).integers(0, VOCAB, size=(3, 15)).astype(np.int32)

    expected = model(ids).numpy()  # the whole sequence at once
    got, final = engine.run(ids)
    assert got.dtype == np.float32 and got.shape == (3, 15, VOCAB)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)

    keras_states = model.initial_states(3)
    states = engine.initial_states(3)
    for t in range(ids.shape[1]):  # token by token, carrying the state
        keras_logits, keras_states = model.step(ids[:, t], keras_states)
        logits, states = engine.step(ids[:, t], states)
        np.testing.assert_allclose(logits, keras_logits.numpy(), atol=1e-4, rtol=1e-4)
    assert len(states) == len(keras_states) == model.num_states == engine.num_states
    for mine, theirs, last in zip(states, keras_states, final, strict=True):
        assert mine.shape == (3, config.units) and mine.dtype == np.float32
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-4, rtol=1e-4)
        np.testing.assert_array_equal(mine, last)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_step_batch_drops_rows_starts_one_again_and_computes_chosen_logits(tmp_path, cell):
    """StepBatch: in-place states give `run`'s logits; kept rows go on as they were, a
    reset row starts from the given state, `columns` gives just those logits."""
    config = _config(cell, 2)
    _, path = _saved(tmp_path, config)
    engine = NumpyRNN.from_weights_file(path, config, VOCAB)
    ids = np.random.default_rng(2).integers(0, VOCAB, size=(3, 6)).astype(np.int32)
    expected, _ = engine.run(ids)
    batch = engine.batch(engine.initial_states(3))
    for t in range(3):
        np.testing.assert_allclose(batch.step(ids[:, t]), expected[:, t], atol=1e-5)
    batch.keep([2, 0])
    assert batch.rows == 2 and all(s.shape == (2, config.units) for s in batch.states())
    columns = np.array([1, 4, 7, 20])
    for t in range(3, 5):
        logits = batch.step(ids[[2, 0], t], columns)
        assert logits.shape == (2, 4) and logits.dtype == np.float32
        np.testing.assert_allclose(logits, expected[[2, 0], t][:, columns], atol=1e-5)
    batch.reset(1, engine.initial_states(1))  # row 1 (sequence 0) starts again
    again = batch.step(np.array([ids[2, 5], ids[0, 0]]))
    np.testing.assert_allclose(again, expected[[2, 0], [5, 0]], atol=1e-5)


def test_step_leaves_its_input_states_alone(tmp_path):
    config = _config("lstm", 2)
    _, path = _saved(tmp_path, config)
    engine = NumpyRNN.from_weights_file(path, config, VOCAB)
    states = engine.initial_states(2)
    before = [s.copy() for s in states]
    _, after = engine.step(np.array([3, 4]), states)
    for s, b in zip(states, before, strict=True):
        np.testing.assert_array_equal(s, b)
    assert not np.array_equal(after[0], before[0])


def test_load_checkpoint_numpy_engine(tmp_path):
    config = RunConfig(model=ModelConfig(cell="gru", layers=2, units=8, embedding_dim=4))
    from musicgen.encoding import get_encoding

    vocab_size = len(get_encoding(config.encoding).vocab)
    model = build_model(config.model, vocab_size)
    ckpt.save_config(tmp_path, config, vocab_size, {})
    ckpt.save_weights(tmp_path, model, "last")  # best is missing: falls back to last
    loaded = ckpt.load_checkpoint(tmp_path, engine="numpy")
    assert isinstance(loaded.model, NumpyRNN)
    assert loaded.info["weights"] == ckpt.LAST_WEIGHTS_FILE
    ids = np.array([[1, 5, 9, 2]], dtype=np.int32)
    np.testing.assert_allclose(loaded.model.run(ids)[0], model(ids).numpy(), atol=1e-5)


def test_weights_of_another_shape_are_a_user_error(tmp_path):
    _, path = _saved(tmp_path, _config("lstm", 2))
    wider = ModelConfig(cell="lstm", layers=2, units=16, embedding_dim=5)
    with pytest.raises(UserError, match=r"rnn_0 kernel has shape \(5, 48\).*needs \(5, 64\)"):
        NumpyRNN.from_weights_file(path, wider, VOCAB)
    with pytest.raises(UserError, match=r"embedding has shape \(23, 5\)"):
        NumpyRNN.from_weights_file(path, _config("lstm", 2), VOCAB + 1)
    with pytest.raises(UserError, match="rnn_0 kernel has shape"):  # lstm weights, gru config
        NumpyRNN.from_weights_file(path, _config("gru", 2), VOCAB)


def test_missing_layers_and_foreign_files_are_user_errors(tmp_path):
    _, path = _saved(tmp_path, _config("lstm", 1))
    with pytest.raises(UserError, match="no recurrent layer 'rnn_1' found"):
        NumpyRNN.from_weights_file(path, _config("lstm", 2), VOCAB)
    foreign = tmp_path / "foreign.weights.h5"
    with h5py.File(foreign, "w") as handle:
        handle.create_dataset("layers/dense/vars/0", data=np.zeros((2, 2)))
    with pytest.raises(UserError, match="no embedding layer 'embedding' found"):
        NumpyRNN.from_weights_file(foreign, _config("lstm", 1), VOCAB)
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(path.read_bytes()[:-100])  # a copy cut short
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"not hdf5 at all")
    for bad in (truncated, garbage):
        with pytest.raises(UserError, match=f"cannot load weights .*{bad.name}") as info:
            NumpyRNN.from_weights_file(bad, _config("lstm", 1), VOCAB)
        assert "\n" not in str(info.value)
