"""The sampling engine: open a checkpoint, step its network for a batch, sample ids.

Every command that samples a model (generate, accompany, infill, harmonize) and the
Python API's `Model` run through here, on a checkpoint folder or one already loaded
(`CheckpointLike`):

1. what a checkpoint says about itself, without weights or TensorFlow:
   `checkpoint_settings(checkpoint) -> CheckpointSettings` (folder, config, config.json
   metadata, encoding); `checkpoint_folder(path)` refuses a missing folder;
2. the network for an engine (`resolve_engine`): `open_checkpoint(path, engine)` loads
   a folder, `load_model(checkpoint, engine)` gives the network to step, reusing a
   loaded checkpoint's own when it is of the engine's kind:
   - "numpy" (the default; "auto"): `npmodel.NumpyRNN` reads the weights with h5py and
     steps in NumPy on one BLAS thread. TensorFlow is never imported, so a command
     starts in well under a second, and a step at batch 1..16 costs tens to hundreds
     of microseconds instead of TensorFlow's ~1 ms dispatch;
   - "keras": `MusicRNN` and one compiled `tf.function(model.step)` with a fixed batch
     shape - worth its start-up only on a GPU with a very large batch;
   both give the same logits to float rounding (~1e-6), hence the same pieces;
3. one piece's grammar: `start_grammar` (the encoding's grammar for a length, narrowed
   to asked parts, each part held to its learned profile (`hold_parts`) and wrapped by
   steering controls, having read a primer);
4. sampling: `sample_ids` advances every piece of a batch together, one network step
   per token carrying the recurrent state (`step_function`; a prefix shared by every
   piece is stepped once), each piece with its own grammar and its own Generator
   (`seeded_rngs`: `default_rng([seed, piece])`, so piece i does not change with the
   batch). A finished piece leaves the batch (its NumPy row dropped; keras feeds it
   PAD), unless `again` draws it anew in its row, in the same pass; each step computes
   only the logits of ids some piece's grammar allows; `max_steps` (commands use
   MAX_STEPS_PER_UNIT per bar or second) caps a piece that never ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from musicgen import checkpoint as ckpt
from musicgen.config import RunConfig, SampleConfig
from musicgen.encoding import BOS, PAD, Encoding, Grammar, PartTracker, get_encoding
from musicgen.encoding.tracks import InstrumentsGrammar
from musicgen.errors import UsageError, UserError, param
from musicgen.npmodel import NumpyRNN, one_blas_thread
from musicgen.runtime import import_tensorflow

if TYPE_CHECKING:
    from musicgen.constraints import Controls
    from musicgen.profiles import PartProfile

ENGINES = ("auto", "numpy", "keras")  # --engine values; auto = numpy
DEFAULT_TEMPERATURE = 0.8  # the commands' and the API's; SampleConfig's own default is 1.0
MAX_STEPS_PER_UNIT = 2000  # safety net: tokens per bar (bar encodings) or per second

# A checkpoint folder, or one already loaded (`checkpoint.load_checkpoint`).
CheckpointLike = str | Path | ckpt.Checkpoint


def default_sample() -> SampleConfig:
    """The commands' sampling settings: temperature 0.8, no top-k/top-p cut, seed 0."""
    return SampleConfig(temperature=DEFAULT_TEMPERATURE)


def resolve_engine(engine: str) -> str:
    """The engine an --engine value names: "numpy" ("auto" too) or "keras"; else UsageError."""
    if engine not in ENGINES:
        raise UsageError(
            f"{{engine}} must be one of {', '.join(ENGINES)}", engine=param("engine", engine)
        )
    return "numpy" if engine == "auto" else engine


# ----------------------------------------------------------------------------- 1. settings


@dataclass
class CheckpointSettings:
    """What a checkpoint says about itself (config.json), read without its weights."""

    folder: Path
    config: RunConfig
    meta: dict[str, Any]  # config.json beside the settings: {"data": {...}, ...}
    encoding: Encoding  # built from config.encoding


def checkpoint_folder(path: str | Path) -> Path:
    """`path` as a Path; UsageError (saying how to make one) when it is not a folder."""
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(
            f"no checkpoint folder at {folder}; train one with "
            f"`musicgen train DATA_DIR --out {folder}` or pass {{checkpoint}}",
            checkpoint=param("checkpoint"),
        )
    return folder


def checkpoint_settings(checkpoint: CheckpointLike) -> CheckpointSettings:
    """The settings of a checkpoint folder (config.json; no TensorFlow, no weights), or
    of a loaded checkpoint (its own, nothing read again). UsageError for a missing
    folder, UserError for one that is not a checkpoint."""
    if isinstance(checkpoint, ckpt.Checkpoint):
        meta = {"data": checkpoint.info.get("data", {})}
        folder = Path(checkpoint.info["path"])
        return CheckpointSettings(folder, checkpoint.config, meta, checkpoint.encoding)
    folder = checkpoint_folder(checkpoint)
    config, meta = ckpt.read_config(folder)
    return CheckpointSettings(folder, config, meta, get_encoding(config.encoding))


# ----------------------------------------------------------------------------- 2. model


def open_checkpoint(
    path: str | Path,
    engine: str = "auto",
    which: str = "best",
    verbose_tensorflow: bool = False,
) -> ckpt.Checkpoint:
    """Load the checkpoint folder `path` with the network of `engine` ("auto"/"numpy":
    no TensorFlow; "keras": TensorFlow imported quietly unless verbose). which: "best"
    or "last" weights (the other when that one is missing). UsageError for a missing
    folder, UserError for one that is not a loadable checkpoint."""
    engine = resolve_engine(engine)
    folder = checkpoint_folder(path)
    if engine == "keras":
        import_tensorflow(verbose=verbose_tensorflow)  # before checkpoint.py imports Keras
    return ckpt.load_checkpoint(folder, which=which, engine=engine)


def load_model(
    checkpoint: CheckpointLike,
    engine: str = "auto",
    which: str = "best",
    verbose_tensorflow: bool = False,
) -> Any:
    """The network to step for `engine`: a `NumpyRNN` ("auto"/"numpy"; no TensorFlow)
    or a keras `MusicRNN` ("keras"). A loaded checkpoint's own model is used when it is
    of that kind, else its folder is loaded again."""
    engine = resolve_engine(engine)
    if isinstance(checkpoint, ckpt.Checkpoint):
        if isinstance(checkpoint.model, NumpyRNN) == (engine == "numpy"):
            return checkpoint.model
        checkpoint = checkpoint.info["path"]
    return open_checkpoint(checkpoint, engine, which, verbose_tensorflow).model


# ----------------------------------------------------------------------------- 3. grammar


def start_grammar(
    encoding: Encoding,
    length: float,
    prefix: list[int],
    controls: Controls | None = None,
    instruments: list[tuple[int, ...]] | None = None,
    *,
    profiles: dict[str, PartProfile] | None = None,
    known: Iterable[int] = (),
) -> Grammar:
    """One piece's grammar: it has read BOS and the primer (`prefix`), and is wrapped to
    impose `controls` and the asked parts (`instruments`: allowed programs per part, an
    encoding with parts). `length` is the new music's, bars or seconds
    (`Encoding.counts_bars`); the grammar's counts the primer too: its bars begun (the
    primer's closing Bar excluded) or its seconds. With parts, the new music's parts
    are held to `profiles` and the header to the `known` programs (`hold_parts`)."""
    probe = encoding.grammar()
    for token_id in [BOS, *prefix]:
        probe.advance(token_id)
    already = probe.elapsed - 1 if encoding.counts_bars and prefix else probe.elapsed
    grammar = encoding.grammar(length + already)
    if instruments:
        grammar = InstrumentsGrammar(grammar, encoding, instruments)
    for token_id in [BOS, *prefix]:
        grammar.advance(token_id)
    grammar = hold_parts(grammar, encoding, profiles, known=known)
    return grammar if controls is None else controls.wrap(grammar, [BOS, *prefix])


def hold_parts(
    grammar: Grammar,
    encoding: Encoding,
    profiles: dict[str, PartProfile] | None,
    **options: Any,
) -> Grammar:
    """`grammar` wrapped in a `part_rules.PartsGrammar` (each part held to its family's
    profile; `options`: its `known`, `exempt`, `harmony`), for an encoding with parts
    and given profiles; else `grammar` itself. The one place every sampling command
    (generate, accompany, infill, harmonize, live) gets it from."""
    if not encoding.has_parts or profiles is None:
        return grammar
    from musicgen.part_rules import PartsGrammar

    return PartsGrammar(grammar, encoding, profiles, **options)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- 4. sample


def seeded_rngs(seed: int, num: int) -> list[np.random.Generator]:
    """One Generator per piece, `default_rng([seed, piece])`: piece i does not change
    when the number of pieces does."""
    return [np.random.default_rng([seed, i]) for i in range(num)]


def sample_ids(
    model: Any,
    grammars: list[Grammar],
    prefix: list[int],
    config: SampleConfig,
    max_steps: int,
    rngs: list[np.random.Generator] | None = None,
    logprobs: list[list[float]] | None = None,
    again: Again | None = None,
) -> list[list[int]]:
    """Step the network (a `NumpyRNN` or a keras `MusicRNN`) over `prefix` (shared by
    every piece, BOS first), then sample until every grammar is done. rngs: one per
    grammar (default `seeded_rngs(config.seed, len(grammars))`). logprobs: one list per
    grammar, given to receive the network's own log-probability (nats, before
    temperature and mask) of every id chosen. again(piece, ids): called when a piece
    is done, with its new ids; a (grammar, Generator) it returns (the grammar having
    read the prefix) draws that piece again in the same pass, from the prefix's state,
    its ids (and logprobs) replaced. Returns each piece's new ids (EOS included);
    UserError when a piece is not done after `max_steps` of its own tokens."""
    rngs = list(rngs) if rngs is not None else seeded_rngs(config.seed, len(grammars))
    with one_blas_thread():  # the NumPy step's small products run best on one thread
        return _sample_loop(model, list(grammars), prefix, config, rngs, max_steps, logprobs, again)


# A piece's new draw in the same pass: (piece, its finished ids) -> (grammar, Generator)
Again = Callable[[int, list[int]], "tuple[Grammar, np.random.Generator] | None"]


def _sample_loop(
    model: Any,
    grammars: list[Grammar],
    prefix: list[int],
    config: SampleConfig,
    rngs: list[np.random.Generator],
    max_steps: int,
    logprobs: list[list[float]] | None,
    again: Again | None,
) -> list[list[int]]:
    """`sample_ids`'s work. Per step: the masks of the live pieces, one network step
    for their rows computing only the logits some mask allows (all of them when
    logprobs are recorded), one draw each, their grammars advanced. A finished piece
    leaves the batch (its row dropped) unless `again` starts it anew in its row."""
    from musicgen.sampling import sample_next

    num = len(grammars)
    live = [i for i, g in enumerate(grammars) if not g.done]
    rows = Rows(model, num, prefix[:-1])  # the last one is fed by the loop below
    rows.keep(live)
    last = np.full(num, prefix[-1], dtype=np.int32)
    new_ids: list[list[int]] = [[] for _ in range(num)]
    masks = np.zeros((num, rows.vocab_size), dtype=bool)
    while live:
        for row, i in enumerate(live):
            masks[row] = grammars[i].allowed()
        mask = masks[: len(live)]
        columns = None if logprobs is not None else np.flatnonzero(mask.any(axis=0))
        logits = rows.step(last[live], columns)
        picks = sample_next(
            logits, mask if columns is None else mask[:, columns], config, [rngs[i] for i in live]
        )
        chosen = picks if columns is None else columns[picks]
        if logprobs is not None:
            _record_logprobs(logits, chosen, [logprobs[i] for i in live])
        for i, token_id in zip(live, chosen.tolist(), strict=True):
            grammars[i].advance(token_id)
            new_ids[i].append(token_id)
            last[i] = token_id
        if any(grammars[i].done for i in live):
            live = _after_done(live, rows, grammars, rngs, new_ids, last, prefix, logprobs, again)
        if any(len(new_ids[i]) >= max_steps for i in live):
            raise UserError(
                f"generation did not finish within {max_steps} tokens (the model keeps "
                "adding notes); try a lower {temperature}, {top_k} or {top_p}",
                temperature=param("temperature"),
                top_k=param("top_k"),
                top_p=param("top_p"),
            )
    return new_ids


def _after_done(
    live: list[int],
    rows: Rows,
    grammars: list[Grammar],
    rngs: list[np.random.Generator],
    new_ids: list[list[int]],
    last: np.ndarray,
    prefix: list[int],
    logprobs: list[list[float]] | None,
    again: Again | None,
) -> list[int]:
    """The pieces that go on after a step in which some finished: a finished piece is
    drawn again in its row when `again` says so (its state back to the prefix's), else
    its row leaves the batch."""
    kept: list[int] = []
    for row, i in enumerate(live):
        if grammars[i].done:
            fresh = again(i, new_ids[i]) if again is not None else None
            if fresh is None:
                continue
            grammars[i], rngs[i] = fresh
            new_ids[i] = []
            last[i] = prefix[-1]
            rows.reset(row)
            if logprobs is not None:
                logprobs[i].clear()
        kept.append(row)
    if len(kept) < len(live):
        rows.keep(kept)
    return [live[row] for row in kept]


def _record_logprobs(logits: np.ndarray, chosen: np.ndarray, into: list[list[float]]) -> None:
    """Append log softmax(logits)[chosen] of each row to its list."""
    logits = logits.astype(np.float64)
    top = logits.max(axis=-1, keepdims=True)
    norm = np.log(np.exp(logits - top).sum(axis=-1)) + top[:, 0]
    for row, (token, out) in enumerate(zip(chosen.tolist(), into, strict=True)):
        out.append(float(logits[row, token] - norm[row]))


class Rows:
    """The network's side of a sampling batch: `batch` sequences that have read the
    same prefix, stepped together (`step(ids[rows], columns=None) -> logits[rows,
    vocab or len(columns)]`, a buffer the next step may overwrite); `keep(rows)` goes
    on with those rows only, `reset(row)` puts a row back to the prefix's state.

    A network that reads each token's part (`model.parts`, the encoding, set by
    checkpoint.py for `part_programs`) gets its ids packed with their part feature by a
    `PartTracker` that follows every row.

    A `NumpyRNN` steps only the live rows, in place (`npmodel.StepBatch`; the prefix
    once, at batch 1). A keras `MusicRNN` steps its fixed batch through one compiled
    `tf.function(model.step)`, dropped rows fed PAD."""

    def __init__(self, model: Any, batch: int, prefix: list[int]):
        self.vocab_size = int(model.vocab_size)
        parts = getattr(model, "parts", None)
        self.tracker = PartTracker(parts, batch) if parts is not None else None
        prefix = [int(self._inputs(np.full(batch, t, np.int32))[0]) for t in prefix]
        self.start_parts = self.tracker.state(0) if self.tracker is not None else None
        if isinstance(model, NumpyRNN):
            self.start = model.initial_states(1)
            for token_id in prefix:
                _, self.start = model.step(np.array([token_id]), self.start)
            self.numpy = model.batch([np.repeat(s, batch, axis=0) for s in self.start])
            return
        self.numpy = None
        self.tf = import_tensorflow()
        self.compiled = self.tf.function(model.step, reduce_retracing=True)
        states = model.initial_states(batch)
        for token_id in prefix:
            fill = self.tf.fill([batch], self.tf.constant(token_id, self.tf.int32))
            _, states = self.compiled(fill, states)
        self.states = states
        self.start = [s.numpy()[:1] for s in states]
        self.slots = np.arange(batch)  # the fixed batch's slot of each live row
        self.ids = np.full(batch, PAD, dtype=np.int32)

    def _inputs(self, ids: np.ndarray) -> np.ndarray:
        """The live rows' ids as the network reads them (packed with their parts)."""
        return ids if self.tracker is None else self.tracker.feed(ids)

    def step(self, ids: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        ids = self._inputs(ids)
        if self.numpy is not None:
            return self.numpy.step(ids, columns)
        self.ids[:] = PAD
        self.ids[self.slots] = ids
        logits, self.states = self.compiled(self.tf.constant(self.ids), self.states)
        logits = logits.numpy()[self.slots]
        return logits if columns is None else logits[:, columns]

    def keep(self, rows: list[int]) -> None:
        if self.tracker is not None:
            self.tracker.keep(rows)
        if self.numpy is not None:
            self.numpy.keep(rows)
        else:
            self.slots = self.slots[np.asarray(rows, dtype=np.intp)]

    def reset(self, row: int) -> None:
        if self.tracker is not None:
            self.tracker.reset(row, self.start_parts)  # type: ignore[arg-type]
        if self.numpy is not None:
            self.numpy.reset(row, self.start)
            return
        states = [s.numpy() for s in self.states]
        for state, start in zip(states, self.start, strict=True):
            state[self.slots[row]] = start[0]
        self.states = [self.tf.constant(s) for s in states]


def step_function(model: Any, batch: int, prefix: list[int]) -> Callable[[np.ndarray], np.ndarray]:
    """A function ids int32[batch] -> logits float32[batch, vocab] (a fresh array) that
    carries the recurrent state from call to call, after feeding it `prefix` (the same
    ids for every piece): `Rows` with every row kept."""
    rows = Rows(model, batch, prefix)

    def step(ids: np.ndarray) -> np.ndarray:
        return np.array(rows.step(ids), dtype=np.float32)

    return step
