"""The Kneser-Ney baseline: hand-computed probabilities, normalisation, order choice."""

import math

import numpy as np
import pytest

from musicgen.ngram import NGramModel, fit_order

# A toy corpus over V = 5 ids (1 = BOS, 2 = EOS, 3 and 4 are "notes", 0 = PAD never seen).
TOY = [[1, 3, 4, 3, 2], [1, 3, 3, 2], [1, 4, 2]]
V = 5

# Hand computation (targets are every id after the first of each sequence):
#
# bigram raw counts: (1,3):2 (1,4):1 (3,4):1 (3,3):1 (3,2):2 (4,3):1 (4,2):1
#   n1 = 5, n2 = 2  ->  D2 = 5 / (5 + 2*2) = 5/9
#   context 1: total 3, distinct 2;  context 3: total 4, distinct 3;  context 4: total 2, distinct 2
#
# unigram continuation counts (distinct left neighbours):
#   3 <- {1, 4, 3} = 3;  4 <- {3, 1} = 2;  2 <- {3, 4} = 2;  total 7, distinct 3
#   n1 = 0 -> no count-of-counts estimate, the fallback discount D1 = 0.5 is used
#
# P1(w) = max(c - 0.5, 0)/7 + 0.5 * 3/7 * 1/5
P1 = {
    3: 2.5 / 7 + 0.3 / 7,  # = 2.8/7 = 0.4
    4: 1.5 / 7 + 0.3 / 7,  # = 1.8/7
    2: 1.5 / 7 + 0.3 / 7,  # = 1.8/7
    0: 0.3 / 7,  # unseen: only the uniform share
    1: 0.3 / 7,  # BOS is never a target
}
D2 = 5 / 9
# P2(w | 3) = max(c(3 w) - 5/9, 0)/4 + (5/9) * 3/4 * P1(w)
P2_AFTER_3 = {
    4: (1 - D2) / 4 + D2 * 3 / 4 * P1[4],  # = 1/9 + (5/12)(1.8/7) = 0.218254
    2: (2 - D2) / 4 + D2 * 3 / 4 * P1[2],  # = 13/36 + (5/12)(1.8/7) = 0.468254
    3: (1 - D2) / 4 + D2 * 3 / 4 * P1[3],  # = 1/9 + (5/12)(0.4) = 0.277778
    0: D2 * 3 / 4 * P1[0],  # = 0.017857
    1: D2 * 3 / 4 * P1[1],  # = 0.017857
}
# P2(3 | 1) = (2 - 5/9)/3 + (5/9) * 2/3 * 0.4 = 13/27 + 4/27 = 17/27
P2_3_AFTER_1 = 17 / 27
# P2(3 | 4) = (1 - 5/9)/2 + (5/9) * 2/2 * 0.4 = 2/9 + 2/9 = 4/9
P2_3_AFTER_4 = 4 / 9


@pytest.fixture(scope="module")
def toy_model():
    return NGramModel.fit(TOY, V, max_order=2)


def test_lower_order_uses_continuation_counts(toy_model):
    # context 0 was never seen, so the bigram model falls back to P1 entirely
    dist = toy_model.distribution([0], order=2)
    assert dist == pytest.approx([P1[w] for w in range(V)])
    assert P1[3] == pytest.approx(0.4)


def test_highest_order_uses_raw_counts(toy_model):
    # As a unigram model (order 1) the raw target counts are used: 3:4, 4:2, 2:3 (total 9,
    # distinct 3, n1 = 0 -> D = 0.5): P(w) = max(c - 0.5, 0)/9 + 0.5 * 3/9 * 1/5
    expected = [0.3 / 9, 0.3 / 9, 2.8 / 9, 3.8 / 9, 1.8 / 9]  # ids 0, 1, 2, 3, 4
    assert toy_model.distribution([], order=1) == pytest.approx(expected)


def test_bigram_matches_hand_computation(toy_model):
    dist = toy_model.distribution([1, 3], order=2)
    assert dist == pytest.approx([P2_AFTER_3[w] for w in range(V)])
    assert P2_AFTER_3[4] == pytest.approx(0.218254, abs=1e-6)
    assert P2_AFTER_3[2] == pytest.approx(0.468254, abs=1e-6)


def test_logprob_follows_the_network_targets(toy_model):
    # seq [1, 3, 4, 3, 2]: P(3|1), P(4|3), P(3|4), P(2|3)
    expected = [P2_3_AFTER_1, P2_AFTER_3[4], P2_3_AFTER_4, P2_AFTER_3[2]]
    got = toy_model.logprob(TOY[0])
    assert got.shape == (4,)
    assert np.exp(got) == pytest.approx(expected)
    unigram = {2: 2.8 / 9, 3: 3.8 / 9, 4: 1.8 / 9}  # see test_highest_order_uses_raw_counts
    assert np.exp(toy_model.logprob(TOY[0], order=1)) == pytest.approx(
        [unigram[w] for w in TOY[0][1:]]
    )


def test_unseen_ids_keep_a_finite_logprob(toy_model):
    assert np.isfinite(toy_model.logprob([1, 0, 0, 2])).all()


def _patterned_corpus(rng, files=20, vocab=12):
    """Sequences built from a few fixed motifs, so longer contexts predict better."""
    motifs = [rng.integers(3, vocab, size=6) for _ in range(3)]
    seqs = []
    for _ in range(files):
        body = np.concatenate([motifs[i] for i in rng.integers(0, 3, size=15)])
        seqs.append(np.concatenate([[1], body, [2]]).astype(np.int32))
    return seqs


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_distributions_sum_to_one(order):
    rng = np.random.default_rng(0)
    corpus = _patterned_corpus(rng)
    model = NGramModel.fit(corpus, 12, max_order=5)
    contexts = [[1], [1, 5], list(corpus[0][:7]), list(corpus[3][:20]), [1, 11, 11, 11, 0]]
    for context in contexts:
        dist = model.distribution(context, order=order)
        assert dist.sum() == pytest.approx(1.0, abs=1e-9)
        assert (dist > 0).all()


def test_distribution_agrees_with_logprob():
    rng = np.random.default_rng(1)
    corpus = _patterned_corpus(rng)
    model = NGramModel.fit(corpus, 12, max_order=4)
    seq = corpus[2][:30]
    lp = model.logprob(seq, order=4)
    for i in (1, 2, 3, 10, 29):
        assert lp[i - 1] == pytest.approx(math.log(model.distribution(seq[:i], order=4)[seq[i]]))


def test_fit_order_prefers_context_on_patterned_music():
    rng = np.random.default_rng(2)
    choice = fit_order(_patterned_corpus(rng, files=30), 12, orders=range(1, 7))
    assert choice.order >= 3
    assert set(choice.heldout_nll) == set(range(1, 7))
    assert choice.heldout_nll[choice.order] < choice.heldout_nll[1]
    assert choice.model.order == choice.order


def test_fit_order_with_one_sequence_uses_the_default():
    choice = fit_order([TOY[0]], V, orders=range(1, 9))
    assert choice.order == 3 and choice.heldout_nll == {}


def test_ids_outside_the_vocabulary_are_rejected():
    with pytest.raises(ValueError):
        NGramModel.fit([[1, 7, 2]], 5)


def test_distributions_for_every_position_agree():
    rng = np.random.default_rng(4)
    corpus = _patterned_corpus(rng)
    model = NGramModel.fit(corpus, 12, max_order=4)
    seq = corpus[5][:40]
    table = model.distributions(seq, order=3, chunk=7)
    assert table.shape == (39, 12)
    for i in (1, 2, 8, 39):
        assert table[i - 1] == pytest.approx(model.distribution(seq[:i], order=3))
    assert np.log(table[np.arange(39), seq[1:]]) == pytest.approx(model.logprob(seq, order=3))
