"""The network: token ids -> embedding -> stacked LSTM/GRU -> next-token logits.

`build_model(model_config, vocab_size)` returns a built `MusicRNN`. The same layers
serve two ways of running it:

- `model(ids[b, t]) -> logits[b, t, vocab]` for training and evaluation: one pass
  over whole windows, a prediction at every position;
- `model.step(ids[b], states) -> (logits[b, vocab], states)` for generation: one
  token per call, carrying the recurrent state, so sampling never re-runs a window.

On encodings with parts (`ModelConfig.part_programs`) the network also reads which
instrument each token belongs to: its ids come packed as id + vocab_size x part
feature (encoding/parts.py), and the part's embedding is added to the token's. A
window of 128 tokens rarely holds the header that names the parts, so without it
the network cannot tell a bass from a lead.

Depth is data: `ModelConfig.layers` recurrent layers of `units` each, built in one
loop. The recurrent layers keep Keras's defaults (tanh/sigmoid, no recurrent dropout,
no unrolling, biases, GRU reset_after) so that TensorFlow runs them on the fused cuDNN
kernels on a GPU. Logits are float32 even under a mixed-precision policy. Only
Keras 3 APIs are used here, so the module runs on any Keras backend. No IO: weights
are saved and loaded by checkpoint.py.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers as kl
from keras import ops

from musicgen.config import ModelConfig
from musicgen.encoding import PART_VALUES


class MusicRNN(keras.Model):
    """Embedding (+ the part's) -> token dropout -> `layers` x (LSTM|GRU -> Dropout) ->
    Dense(vocab) logits.

    States (what `initial_states` returns and `step` carries) are a flat list of
    float tensors of shape [batch, units]: per recurrent layer, in order, `h, c` for
    an LSTM and `h` for a GRU.
    """

    def __init__(self, model_config: ModelConfig, vocab_size: int, **kwargs: Any):
        super().__init__(**kwargs)
        model_config.validate()
        self.model_config = model_config
        self.vocab_size = int(vocab_size)
        self.embedding = kl.Embedding(self.vocab_size, model_config.embedding_dim, name="embedding")
        # inputs packed as id + vocab_size x part feature (encoding/parts.py): the
        # part's embedding is added to the token's
        self.part_embedding = (
            kl.Embedding(PART_VALUES, model_config.embedding_dim, name="part_embedding")
            if model_config.part_programs
            else None
        )
        # whole tokens hidden: one mask value per position, shared by its features
        self.token_dropout = kl.Dropout(
            model_config.token_dropout, noise_shape=(None, None, 1), name="token_dropout"
        )
        cell = kl.LSTM if model_config.cell == "lstm" else kl.GRU
        self.recurrent = [
            cell(model_config.units, return_sequences=True, return_state=True, name=f"rnn_{i}")
            for i in range(model_config.layers)
        ]
        self.dropouts = [
            kl.Dropout(model_config.dropout, name=f"dropout_{i}")
            for i in range(model_config.layers)
        ]
        self.logits = kl.Dense(self.vocab_size, dtype="float32", name="logits")

    def set_dropout(self, rate: float) -> None:
        """Dropout between the layers from now on. A traced training step keeps the rate
        it was traced with: trace it again after a change."""
        for layer in self.dropouts:
            layer.rate = float(rate)

    @property
    def dropout(self) -> float:
        """The dropout between the layers now."""
        return float(self.dropouts[0].rate) if self.dropouts else 0.0

    @property
    def states_per_layer(self) -> int:
        """2 for an LSTM (h, c), 1 for a GRU (h)."""
        return 2 if self.model_config.cell == "lstm" else 1

    def call(self, ids: Any, training: bool = False) -> Any:
        """ids int[b, t] -> logits float32[b, t, vocab]."""
        logits, _ = self._run(ids, None, training)
        return logits

    def step(self, ids: Any, states: list[Any], training: bool = False) -> tuple[Any, list[Any]]:
        """One token per sequence: ids int[b] and states -> (logits float32[b, vocab], states).

        Runs the same layers as `call` on a length-1 sequence that starts from `states`,
        so stepping token by token gives the logits `call` gives over the whole sequence.
        """
        logits, new_states = self._run(ops.expand_dims(ids, 1), states, training)
        return logits[:, 0, :], new_states

    def initial_states(self, batch: int) -> list[Any]:
        """Zero states for `batch` sequences, in the layout `step` expects."""
        dtype = self.recurrent[0].compute_dtype
        shape = (int(batch), self.model_config.units)
        return [ops.zeros(shape, dtype=dtype) for _ in range(self.num_states)]

    @property
    def num_states(self) -> int:
        """Length of the flat state list."""
        return self.model_config.layers * self.states_per_layer

    def _run(self, ids: Any, states: list[Any] | None, training: bool) -> tuple[Any, list[Any]]:
        """ids int[b, t] (+ optional initial states) -> (logits[b, t, vocab], final states)."""
        if self.part_embedding is None:
            x = self.embedding(ids)
        else:
            x = self.embedding(ops.mod(ids, self.vocab_size))
            x = x + self.part_embedding(ops.floor_divide(ids, self.vocab_size))
        x = self.token_dropout(x, training=training)
        per = self.states_per_layer
        new_states: list[Any] = []
        for i, (rnn, dropout) in enumerate(zip(self.recurrent, self.dropouts, strict=True)):
            initial = None if states is None else list(states[i * per : (i + 1) * per])
            x, *layer_states = rnn(x, initial_state=initial, training=training)
            new_states.extend(layer_states)
            x = dropout(x, training=training)
        return self.logits(x), new_states

    def get_config(self) -> dict[str, Any]:
        return {"model_config": self.model_config.to_dict(), "vocab_size": self.vocab_size}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MusicRNN:
        return cls(ModelConfig.from_dict(config["model_config"]), config["vocab_size"])


def build_model(model_config: ModelConfig, vocab_size: int) -> MusicRNN:
    """A `MusicRNN` with its weights created (built on a dummy [1, 2] batch of BOS ids)."""
    model = MusicRNN(model_config, vocab_size, name="music_rnn")
    model(ops.ones((1, 2), dtype="int32"))
    return model
