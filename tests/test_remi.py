"""REMI: vocabulary, Score -> ids -> Score round trips, counted losses, the grammar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.config import EncodingConfig
from musicgen.encoding import BOS, EOS, PAD, get_encoding
from musicgen.encoding.remi import RemiEncoding
from musicgen.midi_io import read_score
from musicgen.score import Score
from tests.music import make_score, random_quantized_score

ENC = RemiEncoding(EncodingConfig(name="remi"))
V = ENC.velocities.values  # velocities that round-trip exactly
T = ENC.tempos.values  # tempos that round-trip exactly
CORPUS = Path(__file__).resolve().parent.parent / "midi_corpus"


def roundtrip(score: Score, enc: RemiEncoding = ENC) -> Score:
    encoded = enc.encode(score)
    assert_accepted(enc, encoded.ids)
    decoded = enc.decode(encoded.ids)
    assert not decoded.dropped
    return decoded


def assert_accepted(enc, ids, length=None):
    grammar = enc.grammar(length)
    for token_id in ids:
        assert grammar.allowed()[token_id], enc.describe(ids)
        grammar.advance(token_id)
    assert grammar.done


def tokens(score: Score, enc: RemiEncoding = ENC) -> list[str]:
    return enc.describe(enc.encode(score).ids)


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary_is_a_function_of_the_config():
    assert ENC.vocab.tokens[:4] == ["PAD", "BOS", "EOS", "Bar"]
    assert RemiEncoding(EncodingConfig(name="remi")).vocab.tokens == ENC.vocab.tokens
    (first, last), = ENC.pitch_id_ranges()  # fmt: skip
    assert ENC.describe([first, last]) == ["Pitch_21", "Pitch_108"]
    assert last - first == 108 - 21
    assert "TimeSig_6/8" in ENC.vocab and "TimeSig_9/4" not in ENC.vocab  # 9 quarters > 8
    assert "Position_31" in ENC.vocab and "Position_32" not in ENC.vocab
    assert "Duration_32" in ENC.vocab and "Duration_33" not in ENC.vocab
    coarse = RemiEncoding(EncodingConfig(steps_per_quarter=1))
    assert "TimeSig_3/8" not in coarse.vocab  # 1.5 quarters is no whole number of steps
    assert get_encoding(EncodingConfig(name="remi")).vocab.tokens == ENC.vocab.tokens


def test_tokens_of_a_small_piece():
    score = make_score([(60, 0, 1, V[8]), (64, 0, 1, V[8]), (67, 4.5, 0.25, V[3])], tempo=T[10])
    assert tokens(score) == [
        "BOS", "Bar", "TimeSig_4/4", f"Tempo_{10}",
        "Position_0", "Pitch_60", "Velocity_8", "Duration_4",
        "Pitch_64", "Velocity_8", "Duration_4",
        "Bar", "Position_2", "Pitch_67", "Velocity_3", "Duration_1",
        "EOS",
    ]  # fmt: skip


# ----------------------------------------------------------------------------- round trips


def test_chords_rests_and_empty_bars_round_trip():
    notes = [(60, 0, 1, V[5]), (64, 0, 1, V[5]), (67, 0, 2, V[9]), (72, 2.75, 0.25, V[15]),
             (48, 12, 4, V[0]), (50, 13.5, 8, V[7])]  # fmt: skip
    score = make_score(notes, tempo=T[7])
    back = roundtrip(score)
    assert back.notes == score.notes
    assert back.tempos == score.tempos and back.time_signatures == score.time_signatures
    assert back.end == 24.0  # 13.5 + 8 ends inside the sixth bar
    assert tokens(score).count("Bar") == 6


@pytest.mark.parametrize("signature", [(3, 4), (6, 8), (2, 2), (7, 8), (5, 4)])
def test_other_metres_round_trip(signature):
    rng = np.random.default_rng(sum(signature))
    score = random_quantized_score(rng, time_signature=signature, velocities=V, tempo=T[20])
    back = roundtrip(score)
    assert back.notes == score.notes
    assert back.time_signatures == [(0.0, *signature)]


def test_tempo_and_time_signature_changes_at_bar_lines_round_trip():
    score = make_score(
        [(60, 0, 1, V[4]), (62, 3, 1, V[4]), (64, 6, 1.5, V[4]), (65, 9.5, 0.5, V[4])],
        tempo=[(0, T[5]), (3, T[9]), (9, T[5])],
        time_signature=[(0, 3, 4), (6, 6, 8)],
    )
    back = roundtrip(score)
    assert back.notes == score.notes
    assert back.tempos == score.tempos
    assert back.time_signatures == score.time_signatures
    assert back.end == 12.0


def test_end_keeps_trailing_empty_bars():
    score = make_score([(60, 0, 1, V[4])], end=16.0)
    back = roundtrip(score)
    assert back.end == 16.0 and back.notes == score.notes


def test_empty_score_is_one_empty_bar():
    back = roundtrip(Score())
    assert back.notes == [] and back.end == 4.0


def test_decoding_encodes_back_to_the_same_ids():
    rng = np.random.default_rng(3)
    ids = ENC.encode(random_quantized_score(rng, velocities=V, bars=6)).ids
    assert np.array_equal(ENC.encode(ENC.decode(ids)).ids, ids)


# ----------------------------------------------------------------------------- counted losses


def test_long_notes_are_clipped_and_counted():
    score = make_score([(60, 0, 20, V[4]), (62, 0, 8, V[4])])
    encoded = ENC.encode(score)
    assert encoded.dropped["durations_clipped"] == 1
    back = ENC.decode(encoded.ids)
    assert [(n.pitch, n.end) for n in back.notes] == [(60, 8.0), (62, 8.0)]


def test_losses_are_counted():
    score = make_score(
        [(10, 0, 1, 80), (60, 0.1, 0.01, 80), (60, 0, 2, 80), (64, 1, 1, 80), (64, 10.5, 1, 80)],
        tempo=[(0, 120), (1.5, 90)],
        time_signature=[(0, 4, 4), (2, 3, 4), (8, 11, 16)],  # bars at 0, 4, 7, 10
    )
    encoded = ENC.encode(score)
    assert encoded.dropped == {
        "pitch_out_of_range": 1,
        "duplicate_notes": 1,  # 60 at 0.1 lands on step 0 beside the 60 at 0
        "tempo_changes_moved": 1,
        "time_signatures_moved": 2,
        "time_signatures_changed": 1,  # 11/16 is not in the vocabulary
    }
    back = ENC.decode(encoded.ids)
    assert [(n.pitch, n.start, n.end) for n in back.notes] == [
        (60, 0.0, 2.0),
        (64, 1.0, 2.0),
        (64, 10.5, 11.5),
    ]
    # 3/4 moved to the next bar line; 11/16 became 6/8 and moved from 8 to 10
    assert back.time_signatures == [(0.0, 4, 4), (4.0, 3, 4), (10.0, 6, 8)]


def test_nearest_time_signature():
    assert ENC.nearest_time_signature(6, 8) == (6, 8)
    assert ENC.nearest_time_signature(9, 4) == (8, 4)
    assert ENC.nearest_time_signature(11, 16) == (6, 8)  # 3 quarters, the closer numerator
    assert ENC.nearest_time_signature(5, 16) == (3, 8)
    assert ENC.nearest_time_signature(0, 4) == (4, 4)


def test_decode_skips_and_counts_tokens_out_of_place():
    v = ENC.vocab.id
    ids = [BOS, v("Pitch_60"), v("Bar"), v("Position_3"), v("Pitch_60"), v("Velocity_2"),
           v("Duration_4"), v("TimeSig_3/4"), v("Velocity_1"), v("Position_20"), v("Pitch_62"),
           v("Bar"), PAD, EOS, v("Bar")]  # fmt: skip
    back = ENC.decode(ids)
    assert back.dropped["invalid_tokens"] == 5  # Pitch, TimeSig, Velocity, Position_20, Pitch_62
    assert [(n.pitch, n.start, n.end) for n in back.notes] == [(60, 0.75, 1.75)]
    assert back.end == 8.0 and back.time_signatures == [(0.0, 4, 4)]


def test_decode_survives_random_ids():
    rng = np.random.default_rng(0)
    for _ in range(20):
        back = ENC.decode(rng.integers(0, len(ENC.vocab) + 5, size=300))
        assert back.end is not None


def test_transpose_moves_pitches_only():
    score = make_score([(60, 0, 1, V[4]), (64, 1, 1, V[4])])
    ids = ENC.encode(score).ids
    up = ENC.decode(ENC.transpose(ids, 5))
    assert [n.pitch for n in up.notes] == [65, 69]
    with pytest.raises(ValueError):
        ENC.transpose(ids, 60)


# ----------------------------------------------------------------------------- grammar


def test_grammar_basics():
    g = ENC.grammar(length=2)
    assert np.flatnonzero(g.allowed()).tolist() == [BOS]
    g.advance(BOS)
    assert ENC.describe(np.flatnonzero(g.allowed())) == ["Bar"]
    g.advance(ENC.vocab.id("Bar"))
    assert all(t.startswith("TimeSig_") for t in ENC.describe(np.flatnonzero(g.allowed())))
    g.advance(ENC.vocab.id("TimeSig_3/4"))
    assert all(t.startswith("Tempo_") for t in ENC.describe(np.flatnonzero(g.allowed())))
    g.advance(ENC.vocab.id("Tempo_3"))
    allowed = ENC.describe(np.flatnonzero(g.allowed()))
    assert "EOS" not in allowed and "Bar" in allowed and "Position_11" in allowed
    assert "Position_12" not in allowed  # a 3/4 bar has 12 sixteenths
    with pytest.raises(ValueError):
        g.advance(EOS)
    for name in ["Position_4", "Pitch_60", "Velocity_1", "Duration_2"]:
        g.advance(ENC.vocab.id(name))
    allowed = ENC.describe(np.flatnonzero(g.allowed()))
    assert "Pitch_60" not in allowed and "Pitch_61" in allowed
    assert "Position_4" not in allowed and "Position_5" in allowed
    g.advance(ENC.vocab.id("Bar"))
    assert g.elapsed == 2
    allowed = ENC.describe(np.flatnonzero(g.allowed()))
    assert "Bar" not in allowed and "EOS" in allowed and "TimeSig_4/4" in allowed
    g.advance(EOS)
    assert g.done and np.flatnonzero(g.allowed()).tolist() == [PAD]


def random_walk(enc, rng, length=None, max_tokens=3000):
    """Follow allowed() with random choices; returns the ids (BOS ... EOS)."""
    g = enc.grammar(length)
    ids = []
    while not g.done and len(ids) < max_tokens:
        choices = np.flatnonzero(g.allowed())
        assert choices.size, "the grammar reached a dead end"
        eos_bias = length is None and EOS in choices and rng.random() < 0.05
        token = EOS if eos_bias else int(rng.choice(choices))
        g.advance(token)
        ids.append(token)
    return ids, g


@pytest.mark.parametrize("bars", [1, 3, 8])
def test_random_walks_with_a_length_decode_cleanly(bars):
    rng = np.random.default_rng(bars)
    for _ in range(10):
        ids, g = random_walk(ENC, rng, length=bars)
        assert g.done and g.elapsed == bars
        back = ENC.decode(ids)
        assert not back.dropped
        assert ENC.describe(ids).count("Bar") == bars
        assert back.end == pytest.approx(_bars_length(ENC, ids))


def _bars_length(enc, ids):
    """Sum of bar lengths in quarters, read straight off the tokens."""
    total, bar, sig = 0.0, 0.0, 4.0
    for name in enc.describe(ids):
        if name == "Bar":
            total += bar
            bar = sig
        elif name.startswith("TimeSig_"):
            n, d = map(int, name[8:].split("/"))
            sig = bar = n * 4 / d
    return total + bar


def test_random_walks_without_a_length_decode_cleanly():
    rng = np.random.default_rng(7)
    small = RemiEncoding(EncodingConfig(steps_per_quarter=2, max_bar_quarters=4, tempo_bins=4))
    for enc in (ENC, small):
        for _ in range(10):
            ids, g = random_walk(enc, rng)
            assert not enc.decode(ids).dropped


def test_grammar_accepts_with_the_bar_count_as_length():
    rng = np.random.default_rng(11)
    score = random_quantized_score(rng, bars=5, velocities=V)
    ids = ENC.encode(score).ids
    assert_accepted(ENC, ids, length=ENC.describe(ids).count("Bar"))


# ----------------------------------------------------------------------------- properties

SIGNATURES = [(4, 4), (3, 4), (2, 4), (6, 8), (5, 8), (2, 2), (12, 8)]


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    spq=st.sampled_from([1, 2, 3, 4, 12]),
    signature=st.sampled_from(SIGNATURES),
    tempo_bin=st.integers(0, 31),
)
def test_random_quantized_scores_round_trip_exactly(seed, spq, signature, tempo_bin):
    enc = RemiEncoding(EncodingConfig(steps_per_quarter=spq))
    if signature not in enc.time_signatures:
        signature = (4, 4)
    rng = np.random.default_rng(seed)
    score = random_quantized_score(
        rng, steps_per_quarter=spq, time_signature=signature, velocities=enc.velocities.values,
        tempo=enc.tempos.values[tempo_bin], max_duration_steps=8 * spq,
    )  # fmt: skip
    back = roundtrip(score, enc)
    assert back.notes == score.notes
    assert back.tempos == score.tempos
    assert back.time_signatures == score.time_signatures


# ----------------------------------------------------------------------------- corpus


def _corpus_files(limit: int = 5) -> list[Path]:
    return sorted(CORPUS.glob("*.mid"))[:limit] if CORPUS.is_dir() else []


@pytest.mark.skipif(not _corpus_files(), reason="no MIDI files in midi_corpus/ yet")
@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: p.name)
def test_corpus_files_round_trip(path):
    score = read_score(path)
    encoded = ENC.encode(score)
    assert_accepted(ENC, encoded.ids)
    back = ENC.decode(encoded.ids)
    assert not back.dropped
    spq, longest = 4, 8 * 4

    def quantized(note):
        onset = round(note.start * spq)
        steps = min(max(1, round(note.end * spq) - onset), longest)
        return note.pitch, onset / spq, (onset + steps) / spq

    longest_per_onset: dict[tuple[int, float], float] = {}  # duplicates keep the longest
    for pitch, start, end in (quantized(n) for n in score.notes if 21 <= n.pitch <= 108):
        longest_per_onset[pitch, start] = max(end, longest_per_onset.get((pitch, start), 0.0))
    expected = sorted(((p, s, e) for (p, s), e in longest_per_onset.items()),
                      key=lambda t: (t[1], t[0]))  # fmt: skip
    assert [(n.pitch, n.start, n.end) for n in back.notes] == expected
