"""The small interface every encoding implements: Score <-> token ids, and a grammar.

An `Encoding` is built from an `EncodingConfig` alone; its `Vocabulary` is a pure
function of those settings, so any checkpoint reads any file. Ids 0, 1, 2 are
always PAD, BOS and EOS. `encode` returns BOS ... EOS; `decode` reads ids back
into a `Score`, skipping PAD/BOS and stopping at EOS.

A `Grammar` is the state machine the sampler consults: `allowed()` says which ids
may come next, `advance(id)` moves on. Every sequence a grammar accepts decodes
without dropping a token, and every sequence `encode` writes is accepted. With a
`length` (bars when `Encoding.counts_bars`, else seconds) it also forbids ending early
and running over, so generated pieces have exactly the asked length.

This module is the package's leaf: it imports no encoding. The registry (which name
is which class) is the package's `__init__`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musicgen.config import EncodingConfig
from musicgen.score import Score

PAD, BOS, EOS = 0, 1, 2
SPECIAL_TOKENS = ("PAD", "BOS", "EOS")


class Vocabulary:
    """An ordered list of token names; the id of a token is its index."""

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[:3]) != SPECIAL_TOKENS:
            raise ValueError("a vocabulary starts with PAD, BOS, EOS")
        self.tokens: list[str] = list(tokens)
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        if len(self._ids) != len(self.tokens):
            raise ValueError("duplicate token names in vocabulary")

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def id(self, token: str) -> int:
        return self._ids[token]

    def token(self, token_id: int) -> str:
        return self.tokens[token_id]

    def ids_with_prefix(self, prefix: str) -> np.ndarray:
        """Ids of every token whose name starts with `prefix`, ascending."""
        return np.array([i for i, t in enumerate(self.tokens) if t.startswith(prefix)], np.int32)


@dataclass
class Encoded:
    """What `Encoding.encode` returns: ids (int32, BOS ... EOS) and what was lost."""

    ids: np.ndarray
    dropped: Counter[str]


class Grammar(ABC):
    """Which ids may follow the sequence so far (one instance per sequence)."""

    @abstractmethod
    def allowed(self) -> np.ndarray:
        """Boolean mask of shape (vocab_size,): True where the id may come next."""

    @abstractmethod
    def advance(self, token_id: int) -> None:
        """Consume one id; raises ValueError if it was not allowed."""

    def advance_allowed(self, token_id: int) -> None:
        """`advance` past an id that a grammar wrapping this one took from its own mask
        (a subset of this grammar's `allowed()`), so that this grammar need not compute
        its mask again to check it. By default the same as `advance`."""
        self.advance(token_id)

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once EOS has been consumed."""

    def _check(self, token_id: int, vocab: Vocabulary) -> int:
        """`token_id` as an int; ValueError naming the token if it is not allowed now."""
        token_id = int(token_id)
        mask = self.allowed()
        if not (0 <= token_id < mask.size and mask[token_id]):
            name = vocab.token(token_id) if 0 <= token_id < len(vocab) else token_id
            raise ValueError(f"token {name} is not allowed here")
        return token_id

    @property
    @abstractmethod
    def elapsed(self) -> float:
        """Length so far: bars begun (remi) or seconds (performance)."""


def allowed_id(grammar: Grammar, token_id: int) -> int:
    """`token_id` as an int; ValueError unless `grammar.allowed()` allows it."""
    token_id = int(token_id)
    mask = grammar.allowed()
    if not (0 <= token_id < mask.size and mask[token_id]):
        raise ValueError(f"token id {token_id} is not allowed here")
    return token_id


class NarrowedGrammar(Grammar):
    """A grammar that narrows another one's choices (controls, a melody to keep).

    The inner grammar reads every id and decides length and end; subclasses implement
    `allowed()` (a subset of `self.inner.allowed()`) and `_observe(id)`, their own
    bookkeeping after an allowed id has been read. `advance` checks the id against this
    grammar's mask once; the grammars inside are advanced with `advance_allowed`, so no
    mask of theirs is computed again for the check (a subclass with more bookkeeping
    extends `advance_allowed`, never `advance` alone).
    """

    def __init__(self, inner: Grammar):
        self.inner = inner

    def advance(self, token_id: int) -> None:
        self.advance_allowed(allowed_id(self, token_id))

    def advance_allowed(self, token_id: int) -> None:
        self.inner.advance_allowed(token_id)
        self._observe(token_id)

    @abstractmethod
    def _observe(self, token_id: int) -> None:
        """Update the wrapper's own state after `token_id` was read."""

    @property
    def done(self) -> bool:
        return self.inner.done

    @property
    def elapsed(self) -> float:
        return self.inner.elapsed

    @property
    def length(self) -> float | None:
        """The inner grammar's length (bars or seconds; None without one): what the
        controls read to find a piece's closing bars, through any wrapper."""
        return getattr(self.inner, "length", None)


class Encoding(ABC):
    """Score <-> ids for one family of token events.

    What an encoding can do is asked of it (class attributes, readable without building
    one: `musicgen.encoding.encoding_class(name).has_parts`), never of its name.
    """

    name: str
    has_parts: bool = False  # keeps every part (instrument) apart: Program header, Track tokens
    counts_bars: bool = False  # a piece's length is counted in bars (else in seconds)
    takes_controls: bool = False  # can open every bar with Key and Density control tokens
    keeps_songs: bool = False  # can force a user's notes into its stream (accompany, infill)

    def __init__(self, config: EncodingConfig):
        config.validate()
        self.config = config
        self.vocab = Vocabulary(self._build_tokens())

    @abstractmethod
    def _build_tokens(self) -> list[str]:
        """Token names in id order, starting with SPECIAL_TOKENS."""

    @abstractmethod
    def encode(self, score: Score) -> Encoded:
        """Score -> ids (BOS ... EOS). Lossy steps are counted in `Encoded.dropped`."""

    @abstractmethod
    def decode(self, ids: Sequence[int] | np.ndarray) -> Score:
        """Ids -> Score. Tolerant: an id that makes no sense where it stands is skipped
        (and counted in `Score.dropped['invalid_tokens']`)."""

    @abstractmethod
    def grammar(self, length: float | None = None) -> Grammar:
        """A fresh grammar at the start of a sequence (before BOS).

        length: bars (remi) or seconds (performance) the sequence must have when it
        ends; None leaves the length to the model.
        """

    @abstractmethod
    def pitch_id_ranges(self) -> list[tuple[int, int]]:
        """Inclusive id ranges (first, last) whose tokens stand for pitches
        pitch_min..pitch_max in ascending order (remi: Pitch; performance: NoteOn and
        NoteOff). Transposing by k semitones adds k to every id in these ranges."""

    def cyclic_id_groups(self) -> list[tuple[int, int]]:
        """(first id, size) of each group of tokens that name a pitch class, in
        ascending pitch-class order (e.g. remi's Key_* tokens of one mode, size 12).
        Transposing by k semitones rotates an id within its group by k, modulo the
        size. None by default."""
        return []

    def transpose(self, ids: np.ndarray, semitones: int) -> np.ndarray:
        """Shift every pitch token by `semitones` and rotate every pitch-class token
        (`cyclic_id_groups`) with it; ValueError if a pitch leaves its range."""
        original = np.asarray(ids, dtype=np.int32)
        out = np.array(original, copy=True)
        for first, last in self.pitch_id_ranges():
            inside = (original >= first) & (original <= last)
            moved = original[inside] + semitones
            if moved.size and (moved.min() < first or moved.max() > last):
                raise ValueError(f"transposing by {semitones} leaves the pitch range")
            out[inside] = moved
        for first, size in self.cyclic_id_groups():
            inside = (original >= first) & (original < first + size)
            out[inside] = first + (original[inside] - first + semitones) % size
        return out

    def music_size(self, ids: Sequence[int] | np.ndarray) -> tuple[float, int]:
        """(quarter notes, notes) of the music that `ids` encode: every BOS..EOS
        piece decoded (a file may hold several back to back) and added up. The units
        every encoding shares, so that nats per quarter note and per note compare
        encodings and settings."""
        ids = np.asarray(ids, dtype=np.int64)
        starts = np.flatnonzero(ids == BOS).tolist() or [0]
        quarters, notes = 0.0, 0
        for first, nxt in zip(starts, [*starts[1:], ids.size], strict=True):
            score = self.decode(ids[first:nxt])
            quarters += score.length
            notes += score.note_count
        return quarters, notes

    def describe(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Token names of ids, for debugging and tests."""
        return [self.vocab.token(int(i)) for i in ids]
