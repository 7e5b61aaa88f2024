"""The sampler on known distributions: masks, temperature, top-k, top-p, seeds."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.config import SampleConfig
from musicgen.sampling import distribution, sample_next

LOGITS = np.log(np.array([[0.1, 0.4, 0.2, 0.3]]))  # probabilities 0.1 0.4 0.2 0.3
ALL = np.ones((1, 4), dtype=bool)


def _rngs(n, seed=0):
    return [np.random.default_rng([seed, i]) for i in range(n)]


def _counts(logits, masks, config, draws=4000, seed=0):
    """How often each id is drawn for one row over `draws` calls."""
    rng = [np.random.default_rng(seed)]
    counts = np.zeros(logits.shape[1], dtype=int)
    for _ in range(draws):
        counts[sample_next(logits, masks, config, rng)[0]] += 1
    return counts


def test_plain_distribution_is_softmax():
    probs = distribution(LOGITS, ALL, SampleConfig())
    np.testing.assert_allclose(probs, [[0.1, 0.4, 0.2, 0.3]])
    counts = _counts(LOGITS, ALL, SampleConfig())
    np.testing.assert_allclose(counts / counts.sum(), [0.1, 0.4, 0.2, 0.3], atol=0.03)


def test_top_k_one_is_argmax():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(8, 50))
    ids = sample_next(logits, np.ones_like(logits, bool), SampleConfig(top_k=1), _rngs(8))
    np.testing.assert_array_equal(ids, logits.argmax(axis=1))


def test_top_k_keeps_the_k_best():
    probs = distribution(LOGITS, ALL, SampleConfig(top_k=2))
    np.testing.assert_allclose(probs, [[0, 0.4 / 0.7, 0, 0.3 / 0.7]])


@pytest.mark.parametrize(
    ("top_p", "kept"),
    [(0.3, [1]), (0.4, [1]), (0.41, [1, 3]), (0.7, [1, 3]), (0.75, [1, 2, 3]), (1.0, [0, 1, 2, 3])],
)
def test_top_p_keeps_the_smallest_nucleus(top_p, kept):
    probs = distribution(LOGITS, ALL, SampleConfig(top_p=top_p))
    assert np.flatnonzero(probs[0]).tolist() == kept
    assert probs.sum() == pytest.approx(1.0)


def test_top_p_keeps_at_least_one():
    probs = distribution(LOGITS, ALL, SampleConfig(top_p=1e-9))
    assert np.flatnonzero(probs[0]).tolist() == [1]


def test_top_k_then_top_p():
    # top-k 3 leaves 0.4 0.2 0.3 (renormalised 4/9 2/9 3/9); top-p 0.5 then keeps ids 1 and 3
    probs = distribution(LOGITS, ALL, SampleConfig(top_k=3, top_p=0.5))
    assert np.flatnonzero(probs[0]).tolist() == [1, 3]


def test_temperature_sharpens_and_flattens():
    base = distribution(LOGITS, ALL, SampleConfig())
    cold = distribution(LOGITS, ALL, SampleConfig(temperature=0.5))
    hot = distribution(LOGITS, ALL, SampleConfig(temperature=2.0))
    assert cold.max() > base.max() > hot.max()
    np.testing.assert_allclose(cold, base**2 / (base**2).sum())
    tiny = distribution(LOGITS, ALL, SampleConfig(temperature=1e-6))
    np.testing.assert_allclose(tiny, [[0, 1, 0, 0]])


def test_masked_ids_are_never_drawn():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 30)) * 5
    masks = rng.random((16, 30)) < 0.2
    masks[np.arange(16), rng.integers(0, 30, 16)] = True
    logits[~masks] += 100  # the masked ids are by far the most likely
    for step in range(50):
        ids = sample_next(logits, masks, SampleConfig(top_p=0.9), _rngs(16, step))
        assert masks[np.arange(16), ids].all()


def test_single_allowed_id_is_taken():
    logits = np.array([[5.0, -np.inf, np.nan, 1.0], [0.0, 0.0, 0.0, 0.0]])
    masks = np.array([[False, False, True, False], [False, True, False, False]])
    for config in (SampleConfig(), SampleConfig(top_k=1), SampleConfig(top_p=0.01)):
        assert sample_next(logits, masks, config, _rngs(2)).tolist() == [2, 1]


def test_bad_logits_fall_back_to_uniform_over_allowed():
    logits = np.array([[np.nan, -np.inf, 9.0, np.nan, -np.inf]])
    masks = np.array([[True, True, False, True, False]])
    probs = distribution(logits, masks, SampleConfig())
    np.testing.assert_allclose(probs, [[1 / 3, 1 / 3, 0, 1 / 3, 0]])
    counts = _counts(logits, masks, SampleConfig(), draws=600)
    assert counts[[2, 4]].sum() == 0 and (counts[[0, 1, 3]] > 100).all()


def test_nan_is_excluded_and_inf_wins():
    logits = np.array([[np.nan, 1.0, 2.0, np.inf, np.inf]])
    np.testing.assert_allclose(distribution(logits, np.ones((1, 5), bool), SampleConfig()),
                               [[0, 0, 0, 0.5, 0.5]])  # fmt: skip
    masks = np.array([[True, True, True, False, False]])
    probs = distribution(logits, masks, SampleConfig())
    assert probs[0, 0] == 0 and probs[0, 1:3].sum() == pytest.approx(1)


def test_same_seed_same_ids_other_seed_other_ids():
    logits = np.zeros((4, 100))
    masks = np.ones_like(logits, bool)
    first = sample_next(logits, masks, SampleConfig(), _rngs(4, 7))
    again = sample_next(logits, masks, SampleConfig(), _rngs(4, 7))
    other = sample_next(logits, masks, SampleConfig(), _rngs(4, 8))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(again, other)


def test_rows_are_independent_of_the_batch():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 20))
    masks = rng.random((4, 20)) < 0.7
    masks[:, 0] = True
    rngs_all, rngs_two = _rngs(4), _rngs(2)
    for _ in range(20):
        both = sample_next(logits, masks, SampleConfig(top_k=5), rngs_all)
        two = sample_next(logits[:2], masks[:2], SampleConfig(top_k=5), rngs_two)
        np.testing.assert_array_equal(both[:2], two)


def test_empty_mask_and_bad_shapes_raise():
    with pytest.raises(ValueError, match="allows no token"):
        sample_next(np.zeros((1, 3)), np.zeros((1, 3), bool), SampleConfig(), _rngs(1))
    with pytest.raises(ValueError, match="disagree"):
        sample_next(np.zeros((2, 3)), np.ones((2, 3), bool), SampleConfig(), _rngs(1))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    temperature=st.floats(0.05, 5.0),
    top_k=st.integers(0, 12),
    top_p=st.floats(0.01, 1.0),
)
def test_any_settings_give_an_allowed_id(seed, temperature, top_k, top_p):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, 10)) * rng.choice([0.1, 10, 1000])
    logits[rng.random((3, 10)) < 0.1] = rng.choice([np.nan, np.inf, -np.inf])
    masks = rng.random((3, 10)) < 0.5
    masks[np.arange(3), rng.integers(0, 10, 3)] = True
    config = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    probs = distribution(logits, masks, config)
    assert np.all(probs[~masks] == 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    ids = sample_next(logits, masks, config, _rngs(3, seed))
    assert masks[np.arange(3), ids].all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), temperature=st.floats(0.05, 5.0))
def test_finite_logits_give_the_same_distribution_as_the_general_way(seed, temperature):
    # a NaN at an id no row allows changes nothing, but takes the way for non-finite logits
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(4, 12)) * 5
    masks = rng.random((4, 12)) < 0.5
    masks[:, 0], masks[:, -1] = True, False
    odd = logits.copy()
    odd[:, -1] = np.nan
    config = SampleConfig(temperature=temperature)
    assert np.array_equal(distribution(logits, masks, config), distribution(odd, masks, config))
