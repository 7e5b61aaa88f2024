"""An interpolated Kneser-Ney n-gram model over token ids: the baseline a network must beat.

The model predicts the same targets as the network: for a sequence `ids` (BOS ... EOS) it
gives log P(ids[i] | ids[max(0, i-n+1):i]) for every i >= 1. Near the start the context is
simply shorter (it begins with BOS), as it is for the network.

How the pieces relate:
- `NGramModel.fit(sequences, vocab_size, max_order)` counts every k-gram (k = 1..max_order)
  that ends on a target position. Grams are stored as 64-bit hashes in sorted numpy arrays,
  so 400k tokens x 8 orders take seconds and a few tens of MB.
- For each order it keeps two kinds of counts: raw counts (used at the model's own order)
  and Kneser-Ney continuation counts (used at every lower order): the number of distinct
  tokens seen just before the gram, plus the times the gram opens a sequence (such grams
  cannot be extended to the left, so their raw count stands, as in KenLM).
- The probability of `w` after context `h` is built bottom-up from the uniform 1/V:

      P_0(w)     = 1 / V
      P_k(w | h) = max(c(h w) - D_k, 0) / c(h .)  +  D_k * N(h .) / c(h .) * P_{k-1}(w | h')

  with c the raw (k = order) or continuation (k < order) count, c(h .) their sum over w,
  N(h .) the number of distinct w with c(h w) > 0, h' = h without its first token, and
  D_k = n1 / (n1 + 2 n2) from the count-of-counts of that order and kind (clipped to
  [0.05, 0.95]). A context never seen leaves P_{k-1} unchanged. Every id, seen or not,
  gets at least a share of 1/V, so log-probabilities are always finite.
- One fit serves every order up to `max_order` (`logprob(seq, order=k)`), which is how
  `fit_order` picks the order on held-out training files cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

_SEED = np.uint64(0x9E3779B97F4A7C15)  # hash of the empty context
_K1 = np.uint64(0xBF58476D1CE4E5B9)
_K2 = np.uint64(0x94D049BB133111EB)
_DISCOUNT_RANGE = (0.05, 0.95)


def _mix(h: np.ndarray, token: np.ndarray) -> np.ndarray:
    """Hash of a gram extended on the left by `token` (uint64 arrays, wrapping arithmetic)."""
    x = (h ^ (token.astype(np.uint64) + np.uint64(1))) * _K1
    x ^= x >> np.uint64(31)
    x *= _K2
    x ^= x >> np.uint64(29)
    return x


def _hash_gram(gram: Sequence[int], last: np.ndarray | None = None) -> np.ndarray:
    """Hash of `gram` (tokens in order); with `last`, of `gram + (w,)` for every w in `last`.

    Grams are folded from their last token to their first, which is what `_position_hashes`
    does for every position of a sequence at once.
    """
    h = np.array([_SEED], np.uint64) if last is None else _mix(np.full(len(last), _SEED), last)
    for token in reversed(gram):
        h = _mix(h, np.full(len(h), token, np.int64))
    return h


def _position_hashes(ids: np.ndarray, max_order: int) -> list[np.ndarray]:
    """hashes[k][j]: hash of the k-gram ending at position j, i.e. ids[j-k+1 : j+1]
    (k = 0..max_order; hashes[0] is the empty gram). Only positions j >= k-1 inside one
    sequence are meaningful; the caller masks the rest."""
    hashes = [np.full(len(ids), _SEED, np.uint64)]
    for k in range(1, max_order + 1):
        shifted = np.zeros(len(ids), np.int64)
        shifted[k - 1 :] = ids[: len(ids) - k + 1]
        hashes.append(_mix(hashes[-1], shifted))
    return hashes


@dataclass
class _Table:
    """One order and kind of counts: grams, their contexts and the discount."""

    grams: np.ndarray  # uint64, sorted: gram hashes
    counts: np.ndarray  # float64, same order: raw or continuation counts
    contexts: np.ndarray  # uint64, sorted: context hashes
    totals: np.ndarray  # float64: c(h .) per context
    distinct: np.ndarray  # float64: N(h .) per context
    discount: float

    @classmethod
    def build(cls, grams: np.ndarray, counts: np.ndarray, contexts: np.ndarray) -> _Table:
        """From unique gram hashes with their counts and their contexts' hashes."""
        order = np.argsort(grams)
        grams, counts, contexts = grams[order], counts[order], contexts[order]
        ctx, inverse = np.unique(contexts, return_inverse=True)
        totals = np.bincount(inverse, weights=counts, minlength=len(ctx))
        distinct = np.bincount(inverse, minlength=len(ctx)).astype(np.float64)
        n1, n2 = np.count_nonzero(counts == 1), np.count_nonzero(counts == 2)
        discount = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
        discount = float(np.clip(discount, *_DISCOUNT_RANGE))
        return cls(grams, counts.astype(np.float64), ctx, totals, distinct, discount)

    def lookup_counts(self, grams: np.ndarray) -> np.ndarray:
        return _lookup(self.grams, self.counts, grams)

    def lookup_context(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(c(h .), N(h .)) for each context hash; zeros where the context is unseen."""
        return (
            _lookup(self.contexts, self.totals, contexts),
            _lookup(self.contexts, self.distinct, contexts),
        )


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[keys == q] for each query, 0 where absent (keys sorted)."""
    if len(keys) == 0:
        return np.zeros(len(queries))
    at = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[at] == queries, values[at], 0.0)


def _concatenate(sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All sequences end to end, and each position's index within its own sequence."""
    seqs = [np.asarray(s, np.int64).ravel() for s in sequences]
    ids = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
    lengths = np.array([len(s) for s in seqs], np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return ids, np.arange(len(ids)) - starts


class NGramModel:
    """Interpolated Kneser-Ney over ids 0..vocab_size-1; fit once, query any order <= max."""

    def __init__(self, vocab_size: int, max_order: int, tables: dict[tuple[str, int], _Table]):
        self.vocab_size = vocab_size
        self.max_order = max_order
        self.order = max_order  # the order `logprob` uses unless told otherwise
        self._tables = tables

    @classmethod
    def fit(
        cls,
        sequences: Sequence[np.ndarray | Sequence[int]],
        vocab_size: int,
        max_order: int = 8,
    ) -> NGramModel:
        """Count k-grams (k = 1..max_order) of `sequences` (each BOS ... EOS, ids < vocab_size)."""
        if max_order < 1:
            raise ValueError("max_order must be >= 1")
        ids, pos = _concatenate(list(sequences))
        if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ValueError(f"token ids must lie in 0..{vocab_size - 1}")
        hashes = _position_hashes(ids, max_order + 1)
        tables: dict[tuple[str, int], _Table] = {}
        for k in range(1, max_order + 1):
            # k-grams ending on a target position j >= 1 that fit in their sequence
            at = np.flatnonzero((pos >= 1) & (pos >= k - 1))
            grams, first, raw = np.unique(hashes[k][at], return_index=True, return_counts=True)
            contexts = hashes[k - 1][at[first] - 1]
            tables["raw", k] = _Table.build(grams, raw.astype(np.float64), contexts)
            cont = _continuation_counts(hashes, pos, k, grams)
            tables["cont", k] = _Table.build(grams, cont, contexts)
        return cls(vocab_size, max_order, tables)

    def logprob(self, seq: np.ndarray | Sequence[int], order: int | None = None) -> np.ndarray:
        """Natural-log P(seq[i] | up to order-1 previous ids) for i = 1..len(seq)-1.

        Returns float64 of shape (len(seq) - 1,), aligned with the network's targets
        (`seq[1:]` predicted from `seq[:-1]`).
        """
        order = self._check_order(order)
        ids, pos = _concatenate([np.asarray(seq)])
        hashes = _position_hashes(ids, order)
        targets = np.arange(1, len(ids))
        p = np.full(len(targets), 1.0 / self.vocab_size)
        for k in range(1, order + 1):
            kind = "raw" if k == order else "cont"
            usable = pos[targets] >= k - 1
            grams = hashes[k][targets]
            contexts = hashes[k - 1][targets - 1]
            p = self._interpolate(self._tables[kind, k], grams, contexts, p, usable)
        return np.log(p)

    def distribution(self, context: Sequence[int], order: int | None = None) -> np.ndarray:
        """P(w | context) for every w, shape (vocab_size,); `context` is the ids before w,
        starting at the beginning of the sequence if it is shorter than order - 1."""
        order = self._check_order(order)
        context = list(context)[-(order - 1) :] if order > 1 else []
        words = np.arange(self.vocab_size)
        p = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for k in range(1, min(order, len(context) + 1) + 1):
            kind = "raw" if k == order else "cont"
            h = context[len(context) - (k - 1) :] if k > 1 else []
            grams = _hash_gram(h, words)
            contexts = np.full(self.vocab_size, _hash_gram(h)[0])
            p = self._interpolate(self._tables[kind, k], grams, contexts, p, True)
        return p

    def distributions(
        self, seq: np.ndarray | Sequence[int], order: int | None = None, chunk: int = 1024
    ) -> np.ndarray:
        """P(w | previous ids) for every target position and every w: float64 of shape
        (len(seq) - 1, vocab_size), row i for target seq[i+1]. Computed `chunk` positions
        at a time (memory ~ chunk x vocab_size x 24 bytes)."""
        order = self._check_order(order)
        ids, pos = _concatenate([np.asarray(seq)])
        hashes = _position_hashes(ids, order)
        words = np.arange(self.vocab_size)
        rows = []
        for first in range(1, len(ids), chunk):
            targets = np.arange(first, min(first + chunk, len(ids)))
            p = np.full((len(targets), self.vocab_size), 1.0 / self.vocab_size)
            grams = np.broadcast_to(_mix(np.full(self.vocab_size, _SEED), words), p.shape)
            for k in range(1, order + 1):
                if k > 1:  # extend every (context, w) gram on the left by one more id
                    grams = _mix(grams, ids[np.maximum(targets - (k - 1), 0)][:, None])
                table = self._tables["raw" if k == order else "cont", k]
                totals, distinct = table.lookup_context(hashes[k - 1][targets - 1])
                seen = (totals > 0) & (pos[targets] >= k - 1)
                counts = table.lookup_counts(grams[seen].ravel()).reshape(-1, self.vocab_size)
                d = table.discount
                total, n = totals[seen][:, None], distinct[seen][:, None]
                p[seen] = np.maximum(counts - d, 0.0) / total + d * n / total * p[seen]
            rows.append(p)
        return np.concatenate(rows) if rows else np.zeros((0, self.vocab_size))

    def _check_order(self, order: int | None) -> int:
        order = self.order if order is None else order
        if not 1 <= order <= self.max_order:
            raise ValueError(f"order must be 1..{self.max_order}, got {order}")
        return order

    @staticmethod
    def _interpolate(
        table: _Table,
        grams: np.ndarray,
        contexts: np.ndarray,
        lower: np.ndarray,
        usable: np.ndarray | bool,
    ) -> np.ndarray:
        """One step of the recursion: P_k from P_{k-1} (`lower`) where the context was seen."""
        counts = table.lookup_counts(grams)
        totals, distinct = table.lookup_context(contexts)
        seen = (totals > 0) & usable
        safe = np.where(seen, totals, 1.0)
        d = table.discount
        p = np.maximum(counts - d, 0.0) / safe + d * distinct / safe * lower
        return np.where(seen, p, lower)


def _continuation_counts(
    hashes: list[np.ndarray], pos: np.ndarray, k: int, grams: np.ndarray
) -> np.ndarray:
    """Kneser-Ney count of each k-gram (sorted `grams`): distinct left neighbours plus the
    number of times it opens a sequence (where no left neighbour exists)."""
    # distinct (k+1)-grams ending on targets, each credited to its k-gram suffix
    ext = np.flatnonzero((pos >= 1) & (pos >= k))
    _, first = np.unique(hashes[k + 1][ext], return_index=True)
    suffixes = hashes[k][ext[first]]
    # k-grams that start at position 0
    opening = hashes[k][np.flatnonzero((pos == k - 1) & (pos >= 1))]
    both = np.concatenate([suffixes, opening])
    index = np.searchsorted(grams, both)
    return np.bincount(index, minlength=len(grams)).astype(np.float64)


@dataclass
class OrderChoice:
    """What `fit_order` decided: the model refitted on all training sequences at `order`,
    and the held-out nats per token of each order tried (empty if nothing was held out)."""

    model: NGramModel
    order: int
    heldout_nll: dict[int, float]


def fit_order(
    train: Sequence[np.ndarray | Sequence[int]],
    vocab_size: int,
    *,
    orders: Iterable[int] = range(1, 9),
    holdout_fraction: float = 0.1,
    seed: int = 0,
    default_order: int = 3,
) -> OrderChoice:
    """Pick the order by held-out likelihood on a slice of the TRAINING sequences.

    About `holdout_fraction` of the training sequences (at least one, chosen with a seeded
    generator) are held out, a model is fitted on the rest, and the order with the lowest
    held-out nats per token wins; the returned model is then fitted on all of `train`.
    With fewer than two training sequences nothing can be held out and `default_order`
    (clipped to `orders`) is used. Validation data never enters this choice.
    """
    orders = sorted(set(orders))
    if not orders or orders[0] < 1:
        raise ValueError("orders must be positive")
    train = list(train)
    heldout_nll: dict[int, float] = {}
    if len(train) >= 2:
        rng = np.random.default_rng(seed)
        n_held = min(len(train) - 1, max(1, round(holdout_fraction * len(train))))
        held = set(rng.choice(len(train), size=n_held, replace=False).tolist())
        fit_part = [s for i, s in enumerate(train) if i not in held]
        held_part = [s for i, s in enumerate(train) if i in held]
        probe = NGramModel.fit(fit_part, vocab_size, max_order=orders[-1])
        tokens = sum(len(s) - 1 for s in held_part)
        for k in orders:
            total = -sum(float(probe.logprob(s, order=k).sum()) for s in held_part)
            heldout_nll[k] = total / max(tokens, 1)
        best = min(heldout_nll, key=lambda k: (heldout_nll[k], k))
    else:
        best = min(orders, key=lambda k: (abs(k - default_order), k))
    model = NGramModel.fit(train, vocab_size, max_order=best)
    return OrderChoice(model, best, heldout_nll)
