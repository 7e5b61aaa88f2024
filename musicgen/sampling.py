"""Logits -> next token ids: grammar mask, temperature, top-k, top-p, one draw per piece.

`sample_next` is the whole sampler. For a batch of pieces it takes the network's
logits for the next token, the grammar's masks of the ids allowed there, the
`SampleConfig`, and one `np.random.Generator` per piece, and returns one id per
piece. The steps, per row:

1. mask: ids outside the grammar get -inf; NaN logits count as -inf; a row whose
   allowed logits are all -inf/NaN falls back to uniform over the allowed ids, and
   +inf logits share the row's probability equally;
2. temperature: logits (shifted so the largest is 0) are divided by it;
3. top-k: only the k most likely ids stay (ties broken by the lower id);
4. top-p: only the smallest most-likely-first set whose probability reaches p stays
   (always at least one id);
5. softmax in float64 and one uniform draw from the piece's own Generator.

Every piece draws exactly one number per call, so a piece's tokens depend only on
its own Generator and logits, never on its neighbours in the batch. A masked id
is never returned. NumPy only: no TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musicgen.config import SampleConfig


def sample_next(
    logits: np.ndarray,
    masks: np.ndarray,
    config: SampleConfig,
    rngs: Sequence[np.random.Generator],
) -> np.ndarray:
    """Draw the next id of each piece.

    logits: float[b, vocab], the network's scores for the next token.
    masks:  bool[b, vocab], True where the grammar allows the id.
    config: temperature, top_k (0 = off), top_p (1 = off).
    rngs:   b Generators, one per piece; each is advanced by exactly one draw.
    Returns int64[b]: ids with masks[i, ids[i]] True. ValueError when a mask
    allows nothing or the shapes disagree.
    """
    logits = np.asarray(logits, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    if logits.ndim != 2 or logits.shape != masks.shape or len(rngs) != logits.shape[0]:
        raise ValueError(
            f"logits {logits.shape}, masks {masks.shape} and {len(rngs)} generators disagree"
        )
    if not masks.any(axis=1).all():
        raise ValueError("a grammar mask allows no token")
    # Only the ids some row allows take part: the rest have probability 0 in every row,
    # and leaving them out (in id order, so ties still go to the lower id) changes no
    # draw while sparing the sort and sums most of the vocabulary.
    used = masks.any(axis=0)
    columns = None if used.all() else np.flatnonzero(used)
    if columns is not None:
        logits, masks = logits[:, columns], masks[:, columns]
    probs = _distribution(logits, masks, config)
    draws = np.array([1.0 - rng.random() for rng in rngs])  # in (0, 1]
    ids = _draw(probs, draws)
    return ids if columns is None else columns[ids].astype(np.int64)


def distribution(logits: np.ndarray, masks: np.ndarray, config: SampleConfig) -> np.ndarray:
    """The probabilities `sample_next` draws from: float64[b, vocab], each row sums to
    1 and is 0 wherever masks is False (steps 1-4 of the module docstring)."""
    return _distribution(
        np.asarray(logits, dtype=np.float64), np.asarray(masks, dtype=bool), config
    )


def _distribution(logits: np.ndarray, masks: np.ndarray, config: SampleConfig) -> np.ndarray:
    """`distribution` of float64 logits and bool masks of the same shape."""
    scores = _masked_scores(logits, masks)  # a new array
    if config.temperature != 1.0:
        scores /= config.temperature  # max is 0, so no overflow; -inf stays -inf
    if not 0 < config.top_k < scores.shape[1] and config.top_p >= 1.0:
        # nothing to cut: no need to rank; each row's maximum is already 0
        probs = np.exp(scores, out=scores)
        probs /= probs.sum(axis=1, keepdims=True)
        return probs
    # Most likely first; a stable sort breaks ties by the lower id.
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=1)
    if 0 < config.top_k < ranked.shape[1]:
        ranked[:, config.top_k :] = -np.inf
    if config.top_p < 1.0:
        ranked_probs = _softmax(ranked)
        before = np.cumsum(ranked_probs, axis=1) - ranked_probs  # probability of better ids
        ranked[before >= config.top_p] = -np.inf  # the first id always has before == 0
    probs = np.zeros_like(ranked)
    np.put_along_axis(probs, order, _softmax(ranked), axis=1)
    return probs


def _masked_scores(logits: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Logits with masked ids at -inf and each row's maximum at 0 (float64[b, vocab]).

    NaN counts as -inf. Rows with a +inf logit keep only their +inf ids (at 0); rows
    with no finite allowed logit become uniform over the allowed ids. Finite logits
    (every token of a sound network) take a shorter way to the same scores.
    """
    if np.isfinite(logits).all():
        scores = np.where(masks, logits, -np.inf)
        scores -= scores.max(axis=1, keepdims=True)
        return scores
    scores = np.where(masks & ~np.isnan(logits), logits, -np.inf)
    infinite = scores == np.inf
    has_infinite = infinite.any(axis=1, keepdims=True)
    scores = np.where(has_infinite, np.where(infinite, 0.0, -np.inf), scores)
    hopeless = ~np.isfinite(scores).any(axis=1, keepdims=True)
    scores = np.where(hopeless, np.where(masks, 0.0, -np.inf), scores)
    return scores - scores.max(axis=1, keepdims=True)


def _softmax(scores: np.ndarray) -> np.ndarray:
    """Row softmax of float64 scores whose rows each hold a finite maximum."""
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _draw(probs: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: per row, the first id whose cumulative probability
    reaches draws[i] * total. With draws in (0, 1] that id has probability > 0."""
    cumulative = probs.cumsum(axis=1)
    threshold = draws * cumulative[:, -1]
    ids = (cumulative < threshold[:, None]).sum(axis=1, dtype=np.int64)
    np.minimum(ids, probs.shape[1] - 1, out=ids)
    unlikely = probs[np.arange(len(ids)), ids] <= 0
    if unlikely.any():  # cannot happen; never return an excluded id anyway
        ids[unlikely] = probs[unlikely].argmax(axis=1)
    return ids
