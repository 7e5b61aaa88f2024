"""STEPS: every part's sounding chord where it changes; round trips, the grammar,
transposition, and what it saves against tracks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.config import EncodingConfig
from musicgen.encoding import get_encoding
from musicgen.encoding.steps import StepsEncoding
from musicgen.encoding.tracks import TracksEncoding, canonical_parts, token_parts
from musicgen.score import DRUM_PROGRAM, Note, Part, Score
from tests.test_remi import roundtrip
from tests.test_tracks import assert_random_walks_decode, band, notes_of, random_band

ENC = StepsEncoding(EncodingConfig(name="steps"))
CTRL = StepsEncoding(EncodingConfig(name="steps", controls=True))
TRACKS = TracksEncoding(EncodingConfig(name="tracks"))
V = ENC.velocities.values


def note(pitch, start, duration, velocity=V[8]):
    return Note(pitch, start, start + duration, velocity)


def body(score: Score, enc: StepsEncoding = ENC) -> list[str]:
    """Token names after the first bar's TimeSig and Tempo."""
    names = enc.describe(enc.encode(score).ids)
    return names[names.index(next(n for n in names if n.startswith("Tempo_"))) + 1 :]


def test_vocabulary_is_tracks_plus_holds_with_the_same_ids():
    assert ENC.vocab.tokens[: len(TRACKS.vocab)] == TRACKS.vocab.tokens
    holds = ENC.vocab.tokens[len(TRACKS.vocab) :]
    assert holds == [f"Hold_{p}" for p in range(21, 109)]
    assert get_encoding(EncodingConfig(name="steps")).vocab.tokens == ENC.vocab.tokens


def test_held_and_restruck_notes_are_told_apart():
    # C held two beats under E then G; then C struck again, then silence in beat 4
    part = Part(0, [note(60, 0, 2), note(64, 0, 1), note(67, 1, 1), note(60, 2, 1)])
    assert body(Score(parts=[part], end=4.0)) == [
        "Position_0", "Track_0", "Velocity_8", "Pitch_64", "Pitch_60",
        "Position_4", "Pitch_67", "Hold_60",
        "Position_8", "Pitch_60",
        "Position_12",  # the part goes on, listed empty: everything stops
        "EOS",
    ]  # fmt: skip
    decoded = roundtrip(Score(parts=[part], end=4.0), ENC)
    assert notes_of(decoded.parts[0]) == notes_of(part)


def test_notes_over_the_bar_line_and_to_the_end_need_no_tokens():
    part = Part(0, [note(60, 2, 4), note(62, 6, 2)])  # tied over the bar, to the end
    names = body(Score(parts=[part], end=8.0))
    assert names == [
        "Position_8", "Track_0", "Velocity_8", "Pitch_60",
        "Bar", "Position_8", "Pitch_62",
        "EOS",  # ends both bars' last note
    ]  # fmt: skip
    assert notes_of(roundtrip(Score(parts=[part], end=8.0), ENC).parts[0]) == notes_of(part)


def test_parts_round_trip_note_for_note_and_only_changed_parts_are_listed():
    score = band()
    decoded = roundtrip(score, ENC)
    for got, want in zip(decoded.parts, canonical_parts(score), strict=True):
        if want.is_drum:  # a hit lasts one grid step
            assert [(n.pitch, n.start) for n in got.notes] == [
                (n.pitch, n.start) for n in want.notes
            ]
        else:
            assert notes_of(got) == notes_of(want)
    names = body(score)
    # beat 2: only the lead moves and a snare hits; the rhythm guitar and bass go on
    beat2 = names[names.index("Position_4") : names.index("Position_8")]
    assert beat2 == ["Position_4", "Track_0", "Pitch_67", "Track_3", "Velocity_8", "Drum_38"]


def test_a_silent_part_is_listed_empty_only_when_it_was_sounding():
    parts = [Part(0, [note(72, 0, 1), note(74, 2, 1)]), Part(0, [note(48, 0, 4)])]
    names = body(Score(parts=parts, end=4.0))
    assert names[names.index("Position_4") :] == [
        "Position_4", "Track_0",  # the upper part stops: listed with nothing
        "Position_8", "Pitch_74",
        "Position_12", "EOS",
    ]  # fmt: skip
    decoded = roundtrip(Score(parts=parts, end=4.0), ENC)
    assert [notes_of(p) for p in decoded.parts] == [
        notes_of(p) for p in canonical_parts(Score(parts=parts))
    ]


def test_chorales_take_fewer_tokens_than_tracks():
    # four voices moving together in quarters, the bass held for two
    voices = [
        Part(52, [note(72 - i % 2, i, 1) for i in range(8)], "Soprano"),
        Part(52, [note(67, i, 1) for i in range(8)], "Alto"),
        Part(52, [note(64 - i % 3, i, 1) for i in range(8)], "Tenor"),
        Part(52, [note(48, i, 2) for i in range(0, 8, 2)], "Bass"),
    ]
    score = Score(parts=voices, end=8.0)
    roundtrip(score, ENC)
    assert len(ENC.encode(score).ids) < 0.8 * len(TRACKS.encode(score).ids)


def test_transposition_moves_pitches_and_holds_never_drums():
    ids = CTRL.encode(band()).ids
    moved = CTRL.decode(CTRL.transpose(ids, -4))
    for a, b in zip(CTRL.decode(ids).parts, moved.parts, strict=True):
        shift = 0 if a.is_drum else -4
        assert [(n.pitch + shift, n.start, n.end) for n in a.notes] == [
            (n.pitch, n.start, n.end) for n in b.notes
        ]


def test_token_parts_give_holds_to_their_part():
    ids = ENC.encode(band()).ids
    parts = token_parts(ids, ENC)
    names = ENC.describe(ids)
    for name, program in zip(names, parts.tolist(), strict=True):
        if name.startswith("Hold_") or name.startswith("Pitch_"):
            assert program in (29, 33)
        if name.startswith("Drum_"):
            assert program == DRUM_PROGRAM


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_multi_part_scores_round_trip(seed):
    score = random_band(np.random.default_rng(seed), 14, max_duration_steps=40, overlaps=False)
    decoded = roundtrip(score, CTRL)
    for got, want in zip(decoded.parts, canonical_parts(score), strict=True):
        assert notes_of(got) == notes_of(want)


def test_overlapping_notes_of_one_pitch_are_cut_and_counted():
    part = Part(0, [note(60, 0, 4), note(60, 1, 1)])
    encoded = ENC.encode(Score(parts=[part], end=4.0))
    assert encoded.dropped["notes_cut"] == 1
    decoded = ENC.decode(encoded.ids)
    assert [(n.start, n.end) for n in decoded.parts[0].notes] == [(0.0, 1.0), (1.0, 2.0)]


@pytest.mark.parametrize("length", [1, 3])
def test_random_walks_of_the_grammar_decode_without_loss(length):
    assert_random_walks_decode((ENC, CTRL), length)


def test_the_grammar_refuses_holds_of_silent_pitches_and_empty_silences():
    grammar = ENC.grammar(1)
    for name in ["BOS", "Program_0", "Bar", "TimeSig_4/4", "Tempo_10", "Position_0", "Track_0"]:
        grammar.advance(ENC.vocab.id(name))
    mask = grammar.allowed()
    assert not mask[ENC.vocab.id("Hold_60")]  # nothing sounds yet
    assert not mask[ENC.vocab.id("Position_4")]  # an empty part that never sounded
    for name in ["Velocity_8", "Pitch_60", "Position_4"]:
        grammar.advance(ENC.vocab.id(name))
    mask = grammar.allowed()
    assert mask[ENC.vocab.id("Hold_60")] and not mask[ENC.vocab.id("Hold_62")]
    assert mask[ENC.vocab.id("Position_8")]  # silences the part


def test_a_steps_checkpoint_generates_arrangements_and_accompanies(tmp_path):
    from musicgen import checkpoint as ckpt
    from musicgen.arrange import accompany
    from musicgen.generate import generate
    from musicgen.midi_io import write_midi
    from tests.music import assert_arrangement_ready, untrained_checkpoint

    folder = untrained_checkpoint(tmp_path / "steps", EncodingConfig(name="steps", controls=True))
    config, meta = ckpt.read_config(folder)
    known = {"0": 3, "33": 5, "128": 4}  # piano, bass, drums
    ckpt.save_config(folder, config, meta["vocab_size"], {"data_dir": "none", "programs": known})
    files = generate(folder, tmp_path / "g", num=2, bars=3, instruments="bass,drums,piano")
    for f in files:
        _, tracks = assert_arrangement_ready(f.path)
        assert [(name, channel == 9) for name, channel, _ in tracks] == [
            ("Piano", False),
            ("Bass", False),
            ("Drums", True),
        ]
    song = tmp_path / "song.mid"
    write_midi(Score(parts=[Part(0, [note(60, 0, 1)])], end=4.0), song)
    (out,) = accompany(folder, song, "drums", tmp_path / "a")  # steps keeps a song
    assert [n.pitch for n in out.music.parts[0].notes] == [60]
