"""Performance events: vocabulary, round trips within one time step, the grammar."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.config import EncodingConfig
from musicgen.encoding import BOS, EOS, PAD, get_encoding
from musicgen.encoding.performance import PerformanceEncoding
from musicgen.score import Score, merge_overlaps
from tests.music import make_score, random_quantized_score

ENC = PerformanceEncoding(EncodingConfig(name="performance"))
STEP = 0.01  # seconds per time step at the default 10 ms


def seconds(score: Score) -> list[tuple[int, float, float, int]]:
    """(pitch, onset s, release s, velocity bin) of every note."""
    return [
        (
            n.pitch,
            score.seconds_at(n.start),
            score.seconds_at(n.end),
            ENC.velocities.bin(n.velocity),
        )
        for n in score.notes
    ]


def assert_close(original: Score, decoded: Score, tolerance: float = STEP / 2 + 1e-9):
    a, b = seconds(original), seconds(decoded)
    assert len(a) == len(b)
    for (p1, s1, e1, v1), (p2, s2, e2, v2) in zip(a, b, strict=True):
        assert (p1, v1) == (p2, v2)
        assert s1 == pytest.approx(s2, abs=tolerance) and e1 == pytest.approx(e2, abs=tolerance)


def assert_accepted(enc, ids, length=None):
    grammar = enc.grammar(length)
    for token_id in ids:
        assert grammar.allowed()[token_id], (enc.describe(ids), token_id)
        grammar.advance(token_id)
    assert grammar.done


def test_vocabulary():
    tokens = ENC.vocab.tokens
    assert tokens[:4] == ["PAD", "BOS", "EOS", "NoteOn_21"]
    assert "TimeShift_100" in ENC.vocab and "TimeShift_101" not in ENC.vocab
    (on0, on1), (off0, off1) = ENC.pitch_id_ranges()
    assert ENC.describe([on0, on1, off0, off1]) == ["NoteOn_21", "NoteOn_108", "NoteOff_21",
                                                    "NoteOff_108"]  # fmt: skip
    assert len(ENC.vocab) == 3 + 88 * 2 + 100 + 16
    assert get_encoding(EncodingConfig(name="performance")).vocab.tokens == tokens


def test_tokens_of_a_small_piece():
    score = make_score([(60, 0, 1, 100), (64, 0.5, 0.5, 40)], tempo=120)
    assert ENC.describe(ENC.encode(score).ids) == [
        "BOS", "Velocity_12", "NoteOn_60", "TimeShift_25", "Velocity_4", "NoteOn_64",
        "TimeShift_25", "NoteOff_60", "NoteOff_64", "EOS",
    ]  # fmt: skip


def test_round_trip_through_tempo_changes():
    notes = [(60, 0, 1, 80), (64, 0, 2, 80), (67, 2.5, 0.5, 30), (72, 3, 9, 120), (40, 13, 1, 5)]
    score = make_score(notes, tempo=[(0, 100), (2, 140), (6, 63)])
    encoded = ENC.encode(score)
    assert_accepted(ENC, encoded.ids)
    back = ENC.decode(encoded.ids)
    assert not back.dropped and not encoded.dropped
    assert_close(score, back)
    assert back.tempos == [(0.0, 120.0)] and back.time_signatures == [(0.0, 4, 4)]
    assert back.duration_seconds == pytest.approx(score.duration_seconds, abs=STEP)
    assert "TimeShift_100" in ENC.describe(encoded.ids)  # long gaps take several shifts


def test_reattack_at_the_same_instant_is_kept():
    score = make_score([(60, 0, 1, 80), (60, 1, 1, 80)])
    encoded = ENC.encode(score)
    assert ENC.describe(encoded.ids)[3:6] == ["TimeShift_50", "NoteOff_60", "NoteOn_60"]
    assert_accepted(ENC, encoded.ids)
    assert_close(score, ENC.decode(encoded.ids))


def test_losses_are_counted():
    score = make_score([(10, 0, 1, 80), (60, 0, 2, 80), (60, 0.001, 1, 80), (62, 0, 2, 80),
                        (62, 1, 2, 80)])  # fmt: skip
    encoded = ENC.encode(score)
    assert encoded.dropped == {"pitch_out_of_range": 1, "duplicate_notes": 1, "overlaps_cut": 1}
    back = ENC.decode(encoded.ids)
    assert [(n.pitch, n.start, n.end) for n in back.notes] == [
        (60, 0.0, 2.0),
        (62, 0.0, 1.0),
        (62, 1.0, 3.0),
    ]


def test_very_short_notes_last_one_step_and_silence_is_kept():
    score = make_score([(60, 0, 0.001, 80)], end=4.0)
    encoded = ENC.encode(score)
    assert_accepted(ENC, encoded.ids)
    back = ENC.decode(encoded.ids)
    assert back.notes[0].end == pytest.approx(0.02)  # one step = 0.02 quarters at 120 bpm
    assert back.end == pytest.approx(4.0)
    assert_accepted(ENC, ENC.encode(Score()).ids)  # even nothing is a valid piece


def test_decode_skips_tokens_out_of_place_and_closes_notes():
    v = ENC.vocab.id
    ids = [BOS, v("NoteOff_60"), v("NoteOn_60"), v("NoteOn_60"), v("NoteOff_60"),
           v("TimeShift_10"), v("NoteOn_62"), v("TimeShift_5"), PAD, v("NoteOn_64"), EOS,
           v("NoteOn_65")]  # fmt: skip
    back = ENC.decode(ids)
    assert back.dropped["invalid_tokens"] == 4  # off before on, double on, zero-length off, 64
    assert [(n.pitch, n.start, n.end) for n in back.notes] == [(60, 0.0, 0.3), (62, 0.2, 0.3)]
    assert back.end == pytest.approx(0.3)


def test_decode_survives_random_ids():
    rng = np.random.default_rng(0)
    for _ in range(20):
        back = ENC.decode(rng.integers(0, len(ENC.vocab) + 5, size=300))
        assert back.end is not None


def test_transpose_shifts_on_and_off_together():
    score = make_score([(60, 0, 1, 80), (64, 1, 1, 80)])
    up = ENC.decode(ENC.transpose(ENC.encode(score).ids, -12))
    assert [n.pitch for n in up.notes] == [48, 52]


# ----------------------------------------------------------------------------- grammar


def test_grammar_rules():
    v = ENC.vocab.id
    g = ENC.grammar(length=0.5)
    assert np.flatnonzero(g.allowed()).tolist() == [BOS]
    g.advance(BOS)
    allowed = g.allowed()
    assert not allowed[EOS] and not allowed[v("NoteOff_60")] and allowed[v("NoteOn_60")]
    g.advance(v("Velocity_3"))
    assert set(ENC.describe(np.flatnonzero(g.allowed()))) == {f"NoteOn_{p}" for p in range(21, 109)}
    g.advance(v("NoteOn_60"))
    allowed = g.allowed()
    assert not allowed[v("NoteOn_60")] and not allowed[v("NoteOff_60")]
    assert allowed[v("TimeShift_50")] and not allowed[v("TimeShift_51")]
    g.advance(v("TimeShift_50"))
    assert g.elapsed == pytest.approx(0.5)
    assert ENC.describe(np.flatnonzero(g.allowed())) == ["EOS", "NoteOff_60"]
    g.advance(v("NoteOff_60"))
    g.advance(EOS)
    assert g.done and np.flatnonzero(g.allowed()).tolist() == [PAD]
    with pytest.raises(ValueError):
        g.advance(v("NoteOn_60"))


def random_walk(enc, rng, length=None, max_tokens=2000):
    g = enc.grammar(length)
    ids = []
    while not g.done and len(ids) < max_tokens:
        choices = np.flatnonzero(g.allowed())
        assert choices.size, "the grammar reached a dead end"
        shift_ids = [c for c in choices if enc.vocab.token(c).startswith("TimeShift")]
        if shift_ids and rng.random() < 0.2:  # move on in time now and then
            token = int(rng.choice(shift_ids))
        elif EOS in choices and rng.random() < (0.5 if length is not None else 0.03):
            token = EOS
        else:
            token = int(rng.choice(choices))
        g.advance(token)
        ids.append(token)
    return ids, g


@pytest.mark.parametrize("length", [0.01, 1.0, 7.5])
def test_random_walks_with_a_length_decode_cleanly(length):
    rng = np.random.default_rng(int(length * 100))
    for _ in range(10):
        ids, g = random_walk(ENC, rng, length=length)
        assert g.done and g.elapsed == pytest.approx(length)
        back = ENC.decode(ids)
        assert not back.dropped
        assert back.duration_seconds == pytest.approx(length)


def test_random_walks_without_a_length_decode_cleanly():
    rng = np.random.default_rng(5)
    for _ in range(20):
        ids, g = random_walk(ENC, rng)
        assert not ENC.decode(ids).dropped


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    tempo=st.floats(40, 240),
    shift_ms=st.sampled_from([5, 10, 20]),
)
def test_random_scores_round_trip_within_one_step(seed, tempo, shift_ms):
    enc = PerformanceEncoding(EncodingConfig(name="performance", time_shift_ms=shift_ms))
    rng = np.random.default_rng(seed)
    score = random_quantized_score(rng, velocities=list(range(1, 128)), tempo=tempo)
    score.parts[0].notes = merge_overlaps(score.notes)[0]  # overlaps are cut, not kept
    encoded = enc.encode(score)
    assert_accepted(enc, encoded.ids)
    back = enc.decode(encoded.ids)
    assert not back.dropped
    step = shift_ms / 1000
    a, b = seconds(score), seconds(back)
    assert [(p, v) for p, _, _, v in a] == [(p, v) for p, _, _, v in b]
    for (_, s1, e1, _), (_, s2, e2, _) in zip(a, b, strict=True):
        assert abs(s1 - s2) <= step and abs(e1 - e2) <= step


def test_vectorised_seconds_match_the_score():
    from musicgen.encoding.performance import seconds_at

    score = make_score(tempo=[(0, 100), (2, 140), (6.5, 63)])
    quarters = np.array([0, 1, 2, 3.3, 6.5, 7, 100.25])
    expected = [score.seconds_at(q) for q in quarters]
    assert seconds_at(score, quarters) == pytest.approx(expected, abs=1e-12)
