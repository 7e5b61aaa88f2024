"""The network's recurrent step in NumPy: generation without TensorFlow.

`MusicRNN.step` (model.py) is a few small matrix products per token; through
TensorFlow each call pays far more in dispatch than in arithmetic, and importing
TensorFlow and building the Keras model costs seconds before the first token.
`NumpyRNN` runs the same inference arithmetic with NumPy on the weights that
checkpoint.py saved (a Keras 3 `.weights.h5`, read with h5py):

- `NumpyRNN.from_weights_file(path, model_config, vocab_size)` finds the arrays by
  the layer names model.py gives (`embedding`, `rnn_0`.., `logits`), checks their
  shapes against the config, and folds the embedding into the first layer's input
  projection (one table row per token id; with `part_programs`, a second table per
  part feature, the ids packed as encoding/parts.py packs them);
- `initial_states(batch)` and `step(ids[b], states) -> (logits[b, vocab], states)`
  have `MusicRNN`'s meaning and state layout (a flat list of float32[b, units]: per
  layer `h, c` for an LSTM, `h` for a GRU); `run(ids[b, t])` steps a whole sequence;
- `batch(states) -> StepBatch`: the sampling loop's way (engine.py) - the states kept
  in preallocated buffers and updated in place (no array made per layer and step),
  rows of finished pieces dropped (`keep`) and a row started again from given states
  (`reset`); `step(ids, columns)` computes only the logits of the ids in `columns`
  (those some piece's grammar allows: a tenth of the output projection on average);
- `one_blas_thread()` is the context to step in (see there why).

The cells follow Keras 3 exactly (keras/src/layers/rnn/lstm.py, gru.py, defaults
as model.py uses them): LSTM gates i, f, c, o with kernel [in, 4u], recurrent
kernel [u, 4u], bias [4u], c' = f*c + i*tanh(g), h' = o*tanh(c'); GRU with
reset_after: gates z, r, h with kernel [in, 3u], recurrent kernel [u, 3u], bias
[2, 3u] (input bias, recurrent bias), h' = z*h + (1-z)*tanh(x_h + r*(h R_h + b_h)).
Dropout is inactive at inference. Everything is float32; logits agree with Keras
to float rounding (about 1e-6).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from musicgen.config import ModelConfig
from musicgen.encoding import PART_VALUES
from musicgen.errors import UserError

GATES = {"lstm": 4, "gru": 3}  # gate blocks per cell in the kernels' last axis


@dataclass
class _Layer:
    """One recurrent layer's weights, float32. `kernel` is None for the first layer,
    whose input projection (bias included) lives in `NumpyRNN.table`."""

    kernel: np.ndarray | None  # [in, gates * units]
    recurrent: np.ndarray  # [units, gates * units]
    bias: np.ndarray  # lstm: [4u] input bias; gru: [3u] input bias
    recurrent_bias: np.ndarray | None  # gru only: [3u]


class NumpyRNN:
    """Embedding -> stacked LSTM/GRU -> Dense logits, one token per `step`, NumPy only."""

    def __init__(
        self,
        cell: str,
        embedding: np.ndarray,
        kernels: list[np.ndarray],
        recurrents: list[np.ndarray],
        biases: list[np.ndarray],
        dense_kernel: np.ndarray,
        dense_bias: np.ndarray,
        part_embedding: np.ndarray | None = None,
    ):
        """Weights as Keras stores them: embedding [vocab, dim]; per layer kernel
        [in, g*u], recurrent [u, g*u], bias [g*u] (lstm) or [2, g*u] (gru); dense
        kernel [u, vocab] and bias [vocab]; the part embedding [PART_VALUES, dim] of a
        model with `part_programs` (its ids packed as id + vocab x part feature)."""
        if cell not in GATES:
            raise ValueError(f"cell must be lstm or gru, not {cell!r}")
        self.cell = cell
        self.units = recurrents[0].shape[0]
        self.vocab_size = dense_bias.shape[0]
        f32 = np.float32
        self.layers: list[_Layer] = []
        for i, (kernel, recurrent, bias) in enumerate(
            zip(kernels, recurrents, biases, strict=True)
        ):
            bias = np.asarray(bias, f32)
            input_bias, recurrent_bias = (bias[0], bias[1]) if cell == "gru" else (bias, None)
            self.layers.append(
                _Layer(
                    kernel=None if i == 0 else np.ascontiguousarray(kernel, f32),
                    recurrent=np.ascontiguousarray(recurrent, f32),
                    bias=input_bias,
                    recurrent_bias=recurrent_bias,
                )
            )
        # token id -> the first layer's input projection plus its input bias
        embedding = np.asarray(embedding, f32)
        self.table = embedding @ np.asarray(kernels[0], f32) + self.layers[0].bias
        # part feature -> its share of the first layer's input projection (None: no parts)
        self.part_table = (
            None if part_embedding is None else np.asarray(part_embedding, f32) @ kernels[0]
        )
        self.dense_kernel = np.ascontiguousarray(dense_kernel, f32)
        self.dense_rows = np.ascontiguousarray(self.dense_kernel.T)  # [vocab, u]: id -> row
        self.dense_bias = np.asarray(dense_bias, f32)

    @property
    def states_per_layer(self) -> int:
        """2 for an LSTM (h, c), 1 for a GRU (h)."""
        return 2 if self.cell == "lstm" else 1

    @property
    def num_states(self) -> int:
        """Length of the flat state list."""
        return len(self.layers) * self.states_per_layer

    @classmethod
    def from_weights_file(
        cls, path: str | Path, model_config: ModelConfig, vocab_size: int
    ) -> NumpyRNN:
        """Read the weights checkpoint.py saved for `build_model(model_config, vocab_size)`.

        UserError when the file cannot be read, lacks a layer, or holds arrays whose
        shapes do not fit the config.
        """
        path = Path(path)
        try:
            with h5py.File(path, "r") as handle:
                named = _named_vars(handle)
                arrays = _collect(named, model_config, path)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:  # h5py on a bad file
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise UserError(f"cannot load weights {path}: {reason[:200]}") from exc
        _check_shapes(arrays, model_config, vocab_size, path)
        return cls(model_config.cell, *arrays)

    def initial_states(self, batch: int) -> list[np.ndarray]:
        """Zero states for `batch` sequences: num_states arrays float32[batch, units]."""
        return [np.zeros((int(batch), self.units), np.float32) for _ in range(self.num_states)]

    def step(
        self, ids: np.ndarray, states: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """One token per sequence: ids int[b] and states -> (logits float32[b, vocab],
        new states). The given states are not modified."""
        batch = self.batch([np.array(s, dtype=np.float32) for s in states])
        logits = batch.step(ids)
        return logits.copy(), batch.states()

    def batch(self, states: list[np.ndarray]) -> StepBatch:
        """A `StepBatch` that owns `states` (num_states arrays float32[b, units], used
        as its buffers and changed in place from then on)."""
        return StepBatch(self, states)

    def run(
        self, ids: np.ndarray, states: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Step through ids int[b, t] from `states` (zeros when None):
        (logits float32[b, t, vocab], final states)."""
        ids = np.asarray(ids)
        states = self.initial_states(ids.shape[0]) if states is None else states
        logits = np.empty((ids.shape[0], ids.shape[1], self.vocab_size), np.float32)
        for t in range(ids.shape[1]):
            logits[:, t], states = self.step(ids[:, t], states)
        return logits, states


# ----------------------------------------------------------------------------- cells


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in place, overflow-free: 1/(1+e^-x) = (1 + tanh(x/2)) / 2."""
    x *= 0.5
    np.tanh(x, out=x)
    x += 1.0
    x *= 0.5
    return x


def _lstm(z: np.ndarray, h: np.ndarray, c: np.ndarray, layer: _Layer, inner: np.ndarray) -> None:
    """z: the input projection plus bias [b, 4u] (overwritten); h, c [b, u] become the
    new state in place; inner [b, 4u] is scratch."""
    u = h.shape[1]
    np.matmul(h, layer.recurrent, out=inner)
    z += inner
    _sigmoid(z[:, : 2 * u])  # i, f
    candidate = z[:, 2 * u : 3 * u]
    np.tanh(candidate, out=candidate)
    _sigmoid(z[:, 3 * u :])  # o
    c *= z[:, u : 2 * u]
    candidate *= z[:, :u]
    c += candidate
    np.tanh(c, out=h)
    h *= z[:, 3 * u :]


def _gru(x: np.ndarray, h: np.ndarray, layer: _Layer, inner: np.ndarray) -> None:
    """x: the input projection plus input bias [b, 3u] (overwritten); h [b, u] becomes
    the new state in place; inner [b, 3u] is scratch."""
    u = h.shape[1]
    np.matmul(h, layer.recurrent, out=inner)
    inner += layer.recurrent_bias
    gates = x[:, : 2 * u]
    gates += inner[:, : 2 * u]
    _sigmoid(gates)  # z, r
    candidate, recurrent = x[:, 2 * u :], inner[:, 2 * u :]
    recurrent *= gates[:, u:]
    candidate += recurrent
    np.tanh(candidate, out=candidate)
    # h' = z*h + (1-z)*hh = hh + z*(h - hh)
    np.subtract(h, candidate, out=h)
    h *= gates[:, :u]
    h += candidate


class StepBatch:
    """Sequences stepped together, one token each per `step`, their states kept in the
    arrays given (float32[b, units] each, `NumpyRNN`'s layout) and updated in place,
    with per-layer scratch buffers made once: a step makes no array but its logits.

    `rows` sequences take part (the first rows of the buffers); `keep(rows)` leaves
    only those (in that order), `reset(row, states)` starts a row again from states
    of one sequence ([1, units] each). A row's numbers do not depend on the other
    rows' values, though BLAS may round a product differently for another batch size
    (about 1e-6)."""

    def __init__(self, model: NumpyRNN, states: list[np.ndarray]):
        self.model = model
        self.buffers = [np.ascontiguousarray(s, np.float32) for s in states]
        self.rows = self.buffers[0].shape[0] if self.buffers else 0
        width = GATES[model.cell] * model.units
        self.inputs = np.empty((self.rows, width), np.float32)
        self.inner = np.empty((self.rows, width), np.float32)
        self.logits = np.empty((self.rows, model.vocab_size), np.float32)

    def states(self) -> list[np.ndarray]:
        """The live rows' states (views of the buffers, changed by the next step)."""
        return [s[: self.rows] for s in self.buffers]

    def keep(self, rows: np.ndarray | list[int]) -> None:
        """Go on with these rows only (indices of the live rows, in their new order)."""
        rows = np.asarray(rows, dtype=np.intp)
        for s in self.buffers:
            s[: len(rows)] = s[rows]
        self.rows = len(rows)

    def reset(self, row: int, states: list[np.ndarray]) -> None:
        """Row `row`'s state becomes `states` (one sequence's, [1, units] each)."""
        for buffer, state in zip(self.buffers, states, strict=True):
            buffer[row] = state[0]

    def step(self, ids: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """ids int[rows] -> logits float32[rows, vocab], or [rows, len(columns)]: only
        the logits of the ids `columns` (sorted). The result is a buffer that the next
        step overwrites."""
        model, b = self.model, self.rows
        ids = np.asarray(ids, dtype=np.intp)
        x = self.inputs[:b]
        inner = self.inner[:b]
        if model.part_table is None:
            np.take(model.table, ids, axis=0, out=x)
        else:  # packed: id + vocab x part feature
            parts, tokens = np.divmod(ids, model.vocab_size)
            np.take(model.table, tokens, axis=0, out=x)
            x += model.part_table[parts]
        h = x
        for i, layer in enumerate(model.layers):
            if layer.kernel is not None:
                np.matmul(h, layer.kernel, out=x)
                x += layer.bias
            if model.cell == "lstm":
                h, c = self.buffers[2 * i][:b], self.buffers[2 * i + 1][:b]
                _lstm(x, h, c, layer, inner)
            else:
                h = self.buffers[i][:b]
                _gru(x, h, layer, inner)
        if columns is None:
            logits = self.logits[:b]
            np.matmul(h, model.dense_kernel, out=logits)
            logits += model.dense_bias
            return logits
        logits = h @ model.dense_rows[columns].T
        logits += model.dense_bias[columns]
        return logits


def one_blas_thread() -> contextlib.AbstractContextManager:
    """A context in which NumPy's BLAS uses one thread. A step's products are small
    ([batch <= ~64, units] x [units, 4 units]): extra BLAS threads gain little and,
    when the cores are busy, their spin-waiting makes a step 10-50x slower. Without
    threadpoolctl installed this does nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency, but not a vital one
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ----------------------------------------------------------------------------- file


def _named_vars(handle: h5py.File) -> dict[str, h5py.Group]:
    """Every `vars` group of a Keras 3 weights file by its layer's name attribute
    (e.g. "embedding", "rnn_0", "logits")."""
    found: dict[str, h5py.Group] = {}

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Group) and name.split("/")[-1] == "vars":
            layer = item.attrs.get("name")
            if isinstance(layer, bytes):
                layer = layer.decode()
            if isinstance(layer, str):
                found.setdefault(layer, item)

    handle.visititems(visit)
    return found


def _arrays(group: h5py.Group | None, count: int) -> list[np.ndarray] | None:
    """vars/0 .. vars/{count-1} as float32 arrays, or None when any is missing."""
    if group is None or any(str(i) not in group for i in range(count)):
        return None
    return [np.asarray(group[str(i)], dtype=np.float32) for i in range(count)]


def _collect(named: dict[str, h5py.Group], model_config: ModelConfig, path: Path) -> tuple:
    """(embedding, kernels, recurrents, biases, dense_kernel, dense_bias, part
    embedding or None) from a file's named groups; UserError naming the first layer
    that is missing."""

    def need(what: str, arrays: list[np.ndarray] | None) -> list[np.ndarray]:
        if arrays is None:
            raise UserError(
                f"cannot load weights {path}: no {what} found; was it saved by musicgen "
                f"for a {model_config.layers}-layer {model_config.cell.upper()}?"
            )
        return arrays

    [embedding] = need("embedding layer 'embedding'", _arrays(named.get("embedding"), 1))
    kernels, recurrents, biases = [], [], []
    for i in range(model_config.layers):
        layer = named.get(f"rnn_{i}")
        cell = layer.parent.get("cell/vars") if layer is not None else None
        kernel, recurrent, bias = need(f"recurrent layer 'rnn_{i}'", _arrays(cell, 3))
        kernels.append(kernel)
        recurrents.append(recurrent)
        biases.append(bias)
    dense_kernel, dense_bias = need("output layer 'logits'", _arrays(named.get("logits"), 2))
    parts = None
    if model_config.part_programs:
        [parts] = need("part embedding 'part_embedding'", _arrays(named.get("part_embedding"), 1))
    return embedding, kernels, recurrents, biases, dense_kernel, dense_bias, parts


def _check_shapes(arrays: tuple, config: ModelConfig, vocab_size: int, path: Path) -> None:
    """UserError when an array's shape is not what `build_model(config, vocab_size)` makes."""
    embedding, kernels, recurrents, biases, dense_kernel, dense_bias, parts = arrays
    g, u = GATES[config.cell], config.units
    bias_shape = (g * u,) if config.cell == "lstm" else (2, g * u)
    expected = [("embedding", embedding, (vocab_size, config.embedding_dim))]
    for i in range(config.layers):
        width = config.embedding_dim if i == 0 else u
        expected += [
            (f"rnn_{i} kernel", kernels[i], (width, g * u)),
            (f"rnn_{i} recurrent kernel", recurrents[i], (u, g * u)),
            (f"rnn_{i} bias", biases[i], bias_shape),
        ]
    expected += [("logits kernel", dense_kernel, (u, vocab_size))]
    expected += [("logits bias", dense_bias, (vocab_size,))]
    if parts is not None:
        expected += [("part embedding", parts, (PART_VALUES, config.embedding_dim))]
    for what, array, shape in expected:
        if tuple(array.shape) != shape:
            raise UserError(
                f"cannot load weights {path}: {what} has shape {tuple(array.shape)}, "
                f"but the checkpoint's config ({config.layers}x{u} {config.cell.upper()}, "
                f"vocab {vocab_size}) needs {shape}"
            )
