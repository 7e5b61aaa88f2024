"""Score holds its music once, in its parts: `notes`, `drums`, `program`, `length` and
`note_count` are views computed from them."""

from __future__ import annotations

import pytest

from musicgen.score import DRUM_PROGRAM, Note, Part, Score
from tests.music import make_notes

SOPRANO = make_notes([(72, 0, 2, 80), (74, 2, 2, 80)])
ALTO = make_notes([(67, 0, 1, 70), (72, 1, 2, 90)])  # meets the soprano's 72 at 1
KIT = make_notes([(36, 0, 0.25, 100), (42, 0.5, 0.25, 60)])


def test_the_views_follow_the_parts():
    score = Score(parts=[Part(52, SOPRANO, "S"), Part(52, ALTO, "A"), Part(DRUM_PROGRAM, KIT)])
    # one stream: where two parts meet on a pitch, the earlier note is cut
    assert score.notes == make_notes([(67, 0, 1, 70), (72, 0, 1, 80), (72, 1, 2, 90),
                                      (74, 2, 2, 80)])  # fmt: skip
    assert score.drums == KIT
    assert score.merged(drums=True) == sorted(
        [*score.notes, *KIT], key=lambda n: (n.start, n.pitch)
    )
    assert score.note_count == 6 and score.length == 4.0
    score.parts = score.parts[1:]  # no copy to keep in step
    assert score.notes == ALTO and score.note_count == 4 and score.length == 3.0


def test_views_cannot_be_assigned():
    score = Score(parts=[Part(0, SOPRANO)])
    for view in ("notes", "drums", "program", "length", "note_count"):
        with pytest.raises(AttributeError):
            setattr(score, view, [])


def test_a_lone_part_is_its_own_stream():
    overlapping = [Note(60, 0, 2, 80), Note(60, 1, 2, 80)]
    assert Score.of(overlapping).notes == overlapping  # kept as given, in order


def test_program_is_the_one_with_most_pitched_notes():
    parts = [Part(40, SOPRANO), Part(33, ALTO + make_notes([(40, 3, 1, 80)]))]
    assert Score(parts=parts).program == 33
    assert Score(parts=[Part(40, SOPRANO), Part(33, ALTO)]).program == 33  # a tie: the lowest
    assert Score(parts=[Part(DRUM_PROGRAM, KIT)]).program == 0
    assert Score().program == 0 and Score().notes == [] and Score().length == 0.0


def test_of_makes_a_one_stream_piece():
    score = Score.of(list(reversed(SOPRANO)), drums=KIT, program=40, end=8.0)
    assert [(p.program, p.name) for p in score.parts] == [(40, None), (DRUM_PROGRAM, "")]
    assert score.parts[0].notes == SOPRANO and score.drums == KIT  # sorted
    assert score.program == 40 and score.length == 8.0 and score.note_count == 4
    empty = Score.of([], program=73)  # the program stays with no notes
    assert empty.program == 73 and [p.program for p in empty.parts] == [73]
    assert Score.of([], tempos=[(0.0, 90.0)]).tempos == [(0.0, 90.0)]


def test_notes_are_given_once():
    with pytest.raises(TypeError):
        Score(notes=SOPRANO, parts=[Part(0, SOPRANO)])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Score.of(SOPRANO, parts=[Part(0, SOPRANO)])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Score.of"):
        Score(SOPRANO)  # type: ignore[arg-type]  # notes where parts go


def test_a_long_primer_keeps_its_parts(tmp_path):
    """generate cuts a primer past MAX_PRIMER_BARS part by part (it once merged the
    parts of a tracks primer into one)."""
    from musicgen.config import EncodingConfig
    from musicgen.encoding import get_encoding
    from musicgen.generate import MAX_PRIMER_BARS, primer_ids
    from musicgen.midi_io import write_midi

    bars = MAX_PRIMER_BARS + 2
    melody = make_notes([(72 + b % 5, 4 * b, 2, 80) for b in range(bars)])
    bass = make_notes([(40, 4 * b + 2, 2, 90) for b in range(bars)])
    path = tmp_path / "long.mid"
    write_midi(Score(parts=[Part(0, melody, "Keys"), Part(33, bass, "Bass")]), path)
    encoding = get_encoding(EncodingConfig(name="tracks"))
    notes: list[str] = []
    ids = primer_ids(encoding, path, notes.append)
    names = encoding.describe(ids)
    assert notes and "64 bars" in notes[0]
    assert [n for n in names if n.startswith("Program_")] == ["Program_0", "Program_33"]
    assert names.count("Bar") == MAX_PRIMER_BARS + 1  # and the Bar the new music opens
