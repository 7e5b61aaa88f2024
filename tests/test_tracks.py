"""TRACKS: parts in the token stream; round trips, the grammar, transposition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.config import EncodingConfig
from musicgen.encoding import BOS, EOS, get_encoding
from musicgen.encoding.remi import RemiEncoding
from musicgen.encoding.tracks import TracksEncoding, canonical_parts
from musicgen.score import DRUM_PROGRAM, Note, Part, Score, merge_overlaps
from tests.music import random_quantized_score
from tests.test_remi import roundtrip as remi_roundtrip

ENC = TracksEncoding(EncodingConfig(name="tracks"))
CTRL = TracksEncoding(EncodingConfig(name="tracks", controls=True))
V = ENC.velocities.values


def note(pitch, start, duration, velocity=V[8]):
    return Note(pitch, start, start + duration, velocity)


def band() -> Score:
    """Bass, two guitars sharing a program, drums: one bar of 4/4."""
    return Score(
        parts=[
            Part(29, [note(64, 0, 1), note(67, 1, 1)], "Lead"),
            Part(33, [note(40, 0, 2), note(43, 2, 2)], "Bass"),
            Part(29, [note(55, 0, 2), note(59, 0, 2)], "Rhythm"),
            Part(DRUM_PROGRAM, [note(36, 0, 0.25, V[12]), note(42, 0, 0.25), note(38, 1, 0.25)]),
        ],
        end=4.0,
    )


def random_band(
    rng: np.random.Generator, max_notes: int, max_duration_steps: int, overlaps: bool = True
) -> Score:
    """1-3 random pitched parts and a drum part, 4 bars; `overlaps`: a part's notes of
    one pitch may overlap (else the later cuts the earlier, as `merge_overlaps` does)."""
    parts = []
    for program in sorted(rng.choice(128, size=int(rng.integers(1, 4))).tolist()):
        score = random_quantized_score(
            rng, max_notes=max_notes, velocities=V[3:9], max_duration_steps=max_duration_steps
        )
        notes = score.notes if overlaps else merge_overlaps(score.notes)[0]
        parts.append(Part(int(program), notes))
    drums = random_quantized_score(rng, max_notes=10, pitch_range=(35, 81), velocities=V[5:7])
    hits = [Note(n.pitch, n.start, n.start + 0.25, n.velocity) for n in drums.notes]
    parts.append(Part(DRUM_PROGRAM, hits))
    return Score(parts=parts, end=16.0)


def roundtrip(score: Score, enc: TracksEncoding = ENC) -> Score:
    """remi's round trip (encode, every id accepted by the grammar, decode losslessly)."""
    return remi_roundtrip(score, enc)


def notes_of(part: Part) -> list[tuple]:
    return [(n.pitch, n.start, n.end, n.velocity) for n in part.notes]


def test_vocabulary_extends_remi_with_the_same_ids():
    remi = RemiEncoding(EncodingConfig(controls=True))
    assert CTRL.vocab.tokens[: len(remi.vocab)] == remi.vocab.tokens
    assert "Program_drums" in ENC.vocab and "Track_15" in ENC.vocab and "Track_16" not in ENC.vocab
    assert "Drum_0" in ENC.vocab and "Drum_127" in ENC.vocab
    assert get_encoding(EncodingConfig(name="tracks")).vocab.tokens == ENC.vocab.tokens


def test_parts_round_trip_note_for_note_in_canonical_order():
    score = band()
    decoded = roundtrip(score)
    assert [p.program for p in decoded.parts] == [29, 29, 33, DRUM_PROGRAM]
    expected = canonical_parts(score)
    assert [p.name for p in expected] == ["Lead", "Rhythm", "Bass", ""]
    for got, want in zip(decoded.parts, expected, strict=True):
        if want.is_drum:  # a hit lasts one grid step
            assert [(p, s, v) for p, s, _, v in notes_of(got)] == [
                (p, s, v) for p, s, _, v in notes_of(want)
            ]
            assert all(n.end - n.start == 0.25 for n in got.notes)
        else:
            assert notes_of(got) == notes_of(want)
    assert decoded.length == 4.0
    assert [p.name for p in decoded.parts] == ["Guitar 1", "Guitar 2", "Bass", "Drums"]
    assert [(n.pitch, n.start) for n in decoded.drums] == [(36, 0.0), (42, 0.0), (38, 1.0)]
    assert sorted(n.pitch for n in decoded.notes) == [40, 43, 55, 59, 64, 67]


def test_chorale_voices_come_back_as_soprano_alto_tenor_bass():
    voices = [
        Part(52, [note(60, 0, 4)], "Tenor"),
        Part(52, [note(48, 0, 4)], "Bass"),
        Part(52, [note(72, 0, 4)], "Soprano"),
        Part(52, [note(67, 0, 4)], "Alto"),
    ]
    decoded = roundtrip(Score(parts=voices, end=4.0))
    assert [p.name for p in decoded.parts] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert [p.notes[0].pitch for p in decoded.parts] == [72, 67, 60, 48]


def test_repeated_tracks_and_velocities_are_left_out():
    melody = [note(60 + i, i, 1) for i in range(4)]
    ids = ENC.encode(Score(parts=[Part(0, melody)], end=4.0)).ids
    names = ENC.describe(ids)
    assert names.count("Track_0") == 1 and sum(n.startswith("Velocity") for n in names) == 1
    # four notes: Position Pitch Duration each, plus one Track and one Velocity
    body = names[names.index("Position_0") :]
    assert len(body) == 4 * 3 + 2 + 1  # + EOS


def test_a_score_without_parts_is_one_pitched_part_plus_its_drums():
    score = Score.of([note(60, 0, 1)], drums=[note(36, 0, 0.25)], program=40, end=4.0)
    decoded = roundtrip(score)
    assert [p.program for p in decoded.parts] == [40, DRUM_PROGRAM]


def test_drums_only_pieces_encode():
    decoded = roundtrip(Score(parts=[Part(DRUM_PROGRAM, [note(36, 0, 0.25)])], end=4.0))
    assert decoded.notes == [] and len(decoded.drums) == 1


def test_transposition_moves_pitches_and_keys_never_drums():
    ids = CTRL.encode(band()).ids
    moved = CTRL.decode(CTRL.transpose(ids, 3))
    original = CTRL.decode(ids)
    for a, b in zip(original.parts, moved.parts, strict=True):
        shift = 0 if a.is_drum else 3
        assert [n.pitch + shift for n in a.notes] == [n.pitch for n in b.notes]
    keys = [t for t in CTRL.describe(CTRL.transpose(ids, 3)) if t.startswith("Key_")]
    original_keys = [t for t in CTRL.describe(ids) if t.startswith("Key_")]
    assert keys != original_keys and len(set(keys)) == 1


def test_key_comes_from_pitched_parts_only():
    c_major = [note(p, i, 1) for i, p in enumerate([60, 64, 67, 72, 67, 64, 62, 60])]
    drums = [note(37 + (i % 5), i / 2, 0.25) for i in range(16)]
    with_drums = Score(parts=[Part(0, c_major), Part(DRUM_PROGRAM, drums)])
    without = Score(parts=[Part(0, c_major)])
    key = [t for t in CTRL.describe(CTRL.encode(with_drums).ids) if t.startswith("Key_")][0]
    assert key == [t for t in CTRL.describe(CTRL.encode(without).ids) if t.startswith("Key_")][0]
    assert key == "Key_0_major"


def test_too_many_parts_merge_and_are_counted():
    enc = TracksEncoding(EncodingConfig(name="tracks", max_parts=2))
    parts = [Part(0, [note(60, 0, 1), note(64, 2, 1)]), Part(1, [note(62, 1, 1)])]
    parts.append(Part(40, [note(70, 0, 1), note(72, 1, 1)]))
    encoded = enc.encode(Score(parts=parts))
    assert encoded.dropped["parts_merged"] == 1
    decoded = enc.decode(encoded.ids)
    assert [p.program for p in decoded.parts] == [0, 40]
    assert [n.pitch for n in decoded.parts[0].notes] == [60, 62, 64]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_multi_part_scores_round_trip(seed):
    score = random_band(np.random.default_rng(seed), max_notes=12, max_duration_steps=16)
    decoded = roundtrip(score, CTRL)
    for got, want in zip(decoded.parts, canonical_parts(score), strict=True):
        assert notes_of(got) == notes_of(want)


@pytest.mark.parametrize("length", [1, 3])
def test_random_walks_of_the_grammar_decode_without_loss(length):
    assert_random_walks_decode((ENC, CTRL), length)


def assert_random_walks_decode(encodings, length: int) -> None:
    """20 random walks of each encoding's grammar (`length` bars, EOS taken half the
    times it is allowed) decode without a dropped token, to exactly their bars."""
    rng = np.random.default_rng(length)
    for enc in encodings:
        for _ in range(20):
            grammar, ids = enc.grammar(length), []
            while not grammar.done and len(ids) < 3000:
                choices = np.flatnonzero(grammar.allowed())
                if EOS in choices and rng.random() < 0.5:  # end as soon as allowed, often
                    token = EOS
                else:
                    token = int(rng.choice(choices))
                grammar.advance(token)
                ids.append(token)
            assert grammar.done and ids[0] == BOS
            decoded = enc.decode(ids)
            assert not decoded.dropped, enc.describe(ids)
            assert decoded.length == pytest.approx(
                sum(enc.bar_steps(sig) for sig in _bar_signatures(enc, ids)) / 4
            )


def _bar_signatures(enc, ids):
    """The time signature of every bar of a token sequence."""
    signatures, current = [], None
    for name in enc.describe(ids):
        if name == "Bar":
            signatures.append(current)
        elif name.startswith("TimeSig_"):
            num, den = name[len("TimeSig_") :].split("/")
            current = signatures[-1] = (int(num), int(den))
    return signatures


def test_instruments_grammar_keeps_a_piece_to_the_asked_parts():
    from musicgen.encoding.tracks import InstrumentsGrammar
    from musicgen.instruments import family, parse_instruments

    rng = np.random.default_rng(0)
    asked = parse_instruments("bass,drums,piano,5,guitar")
    for _ in range(30):
        grammar = InstrumentsGrammar(ENC.grammar(2), ENC, asked)
        ids = []
        while not grammar.done:
            token = int(rng.choice(np.flatnonzero(grammar.allowed())))
            grammar.advance(token)
            ids.append(token)
        parts = ENC.decode(ids).parts
        families = [family(p.program) for p in parts]
        assert families == ["piano", "piano", "guitar", "bass", "drums"]
        assert 5 in [p.program for p in parts]


def test_header_programs_counts_pieces_per_program():
    from musicgen.encoding.tracks import header_programs

    one = ENC.encode(band()).ids
    two = ENC.encode(Score(parts=[Part(33, [note(40, 0, 1)])])).ids
    counts = header_programs(np.concatenate([one, two]), ENC)
    assert counts == {29: 1, 33: 2, DRUM_PROGRAM: 1}
