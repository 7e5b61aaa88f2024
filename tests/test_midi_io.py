"""midi_io: files -> Score (MIDI of any type and resolution, score formats, broken
files) and Score -> DAW-ready MIDI."""

from __future__ import annotations

import os

import mido
import pytest

from musicgen.midi_io import MAX_PARTS, SUPPORTED_SUFFIXES, read_pieces, read_score, write_midi
from musicgen.score import DRUM_PROGRAM, EmptyMusicError, Note, Part, Score, UnreadableFileError
from tests.music import (
    Track,
    assert_arrangement_ready,
    assert_daw_ready,
    make_notes,
    make_score,
    write_test_midi,
)

MELODY = [(60, 0, 1, 80), (62, 1, 1, 70), (64, 2, 2, 90), (67, 4, 0.5, 100)]
CHORD = [(48, 0, 4, 60), (55, 0, 4, 60)]
BEAT = [(36, 0, 0.5, 100), (42, 0, 0.25, 90), (38, 1, 0.5, 100), (42, 1, 0.25, 90)]


def _pitches_and_times(score):
    return [(n.pitch, n.start, n.end, n.velocity) for n in score.notes]


def _layout(score):
    """(program, name, note count) per part."""
    return [(p.program, p.name, len(p.notes)) for p in score.parts]


# ----------------------------------------------------------------------------- reading


@pytest.mark.parametrize("tpq", [96, 480, 960])
def test_resolution_does_not_change_the_music(tmp_path, tpq):
    path = write_test_midi(tmp_path / "a.mid", [Track(MELODY), Track(CHORD, program=32)], tpq=tpq)
    score = read_score(path)
    assert score.notes == make_notes(MELODY + CHORD)
    assert score.tempos == [(0.0, 120.0)]
    assert score.time_signatures == [(0.0, 4, 4)]
    assert all(type(n.start) is float and type(n.pitch) is int for n in score.notes)


@pytest.mark.parametrize("midi_type", [0, 2])
def test_type_0_and_2_files(tmp_path, midi_type):
    tracks = [Track(MELODY, channel=0, program=5), Track(CHORD, channel=1, program=5)]
    path = write_test_midi(tmp_path / "zero.mid", tracks, midi_type=midi_type)
    assert mido.MidiFile(str(path)).type == midi_type
    score = read_score(path)
    assert score.notes == make_notes(MELODY + CHORD)
    assert score.program == 5


def test_multitrack_with_drums(tmp_path):
    drums = [(36, 0, 0.5, 100), (38, 1, 0.5, 100), (42, 0, 0.25, 90)]
    tracks = [Track(MELODY, program=40), Track(CHORD + [(43, 4, 1, 60)], program=33),
              Track(drums, channel=9)]  # fmt: skip
    path = write_test_midi(tmp_path / "band.MIDI", tracks)
    score = read_score(path)
    assert score.notes == make_notes(MELODY + CHORD + [(43, 4, 1, 60)])
    assert [n.pitch for n in score.drums] == [36, 42, 38]
    assert score.dropped["drum_notes"] == 3
    assert score.program == 40  # the instrument with the most notes (4 against 3)

    with_drums = read_score(path, include_drums=True)  # for a one-stream encoding
    assert len(with_drums.merged(drums=True)) == len(score.notes) + 3
    assert with_drums.notes == score.notes and with_drums.dropped["drum_notes"] == 0


def test_tempo_and_time_signature_changes_in_quarters(tmp_path):
    path = write_test_midi(
        tmp_path / "maps.mid",
        [Track([(60, 0, 1, 80), (62, 7, 1, 80), (64, 13, 2, 80)])],
        tpq=96,
        tempos=[(0, 90), (3, 150)],
        time_signatures=[(0, 3, 4), (6, 6, 8)],
    )
    score = read_score(path)
    assert score.notes == make_notes([(60, 0, 1, 80), (62, 7, 1, 80), (64, 13, 2, 80)])
    assert [q for q, _ in score.tempos] == [0.0, 3.0]
    assert [round(b, 3) for _, b in score.tempos] == [90.0, 150.0]
    assert score.time_signatures == [(0.0, 3, 4), (6.0, 6, 8)]
    assert score.seconds_at(3.0) == pytest.approx(2.0)


def test_overlapping_notes_in_one_track(tmp_path):
    # pretty_midi closes both open 60s at the first note-off; we then cut the first
    notes = [(60, 0, 2, 80), (60, 1, 2, 90), (64, 0, 1, 70), (64, 0, 2, 50), (67, 2, 0, 80)]
    path = write_test_midi(tmp_path / "overlap.mid", [Track(notes)])
    score = read_score(path)
    assert _pitches_and_times(score) == [(60, 0.0, 1.0, 80), (64, 0.0, 1.0, 70),
                                         (60, 1.0, 2.0, 90)]  # fmt: skip
    assert score.dropped["overlaps_merged"] == 2
    pitches = {n.pitch for n in score.notes}
    assert 67 not in pitches  # a zero-length note never sounds


def test_unisons_across_tracks_merge(tmp_path):
    path = write_test_midi(tmp_path / "u.mid", [Track([(60, 0, 1, 80)]), Track([(60, 0, 2, 90)])])
    score = read_score(path)
    assert _pitches_and_times(score) == [(60, 0.0, 2.0, 90)]
    assert score.dropped["overlaps_merged"] == 1


def test_empty_music(tmp_path):
    drums_only = write_test_midi(tmp_path / "d.mid", [Track([(36, 0, 1, 100)], channel=9)])
    with pytest.raises(EmptyMusicError, match="drums only"):
        read_score(drums_only)
    silent = write_test_midi(tmp_path / "s.mid", [Track([])])
    with pytest.raises(EmptyMusicError, match="no notes"):
        read_score(silent)


def _valid_bytes(tmp_path) -> bytes:
    return write_test_midi(tmp_path / "ok.mid", [Track(MELODY)]).read_bytes()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda ok: b"", id="empty"),
        pytest.param(lambda ok: ok[: len(ok) // 2], id="truncated"),
        pytest.param(lambda ok: ok[:20], id="header-only"),
        pytest.param(lambda ok: bytes(range(256)) * 8, id="random-bytes"),
        pytest.param(lambda ok: b"this is not music\n" * 10, id="text"),
        pytest.param(lambda ok: ok[:12] + b"\xe7\x28" + ok[14:], id="smpte"),
        pytest.param(lambda ok: ok[:12] + b"\x00\x00" + ok[14:], id="zero-division"),
        pytest.param(lambda ok: ok[:18] + b"\xff\xff\xff\xff" + ok[22:], id="absurd-chunk"),
    ],
)
def test_unreadable_files(tmp_path, content):
    path = tmp_path / "bad.mid"
    path.write_bytes(content(_valid_bytes(tmp_path)))
    with pytest.raises(UnreadableFileError) as info:
        read_score(path)
    assert "\n" not in str(info.value) and str(info.value)


def test_unsupported_and_missing_files(tmp_path):
    (tmp_path / "notes.txt").write_text("C D E")
    with pytest.raises(UnreadableFileError, match="unsupported"):
        read_score(tmp_path / "notes.txt")
    with pytest.raises(UnreadableFileError):
        read_score(tmp_path / "missing.mid")
    assert {".mid", ".midi", ".mxl", ".musicxml", ".xml", ".krn", ".abc"} <= SUPPORTED_SUFFIXES


def test_abc_through_music21(tmp_path):
    path = tmp_path / "tune.abc"
    path.write_text("X:1\nT:t\nM:3/4\nL:1/4\nQ:1/4=90\nK:C\nC D E- | E2 G |]\n")
    score = read_score(path)
    assert [(n.pitch, n.start, n.end) for n in score.notes] == [
        (60, 0.0, 1.0),
        (62, 1.0, 2.0),
        (64, 2.0, 5.0),  # the tie is resolved into one note
        (67, 5.0, 6.0),
    ]
    assert score.time_signatures == [(0.0, 3, 4)]
    assert score.tempos == [(0.0, 90.0)]


TUNES = (
    "X:1\nT:first\nM:3/4\nL:1/4\nK:C\nC D E | G3 |]\n\n"
    "X:2\nT:rests only\nM:4/4\nL:1/4\nK:C\nz4 |]\n\n"
    "X:3\nT:third\nM:6/8\nL:1/8\nK:G\nG A B d2 B | G3 G3 |]\n"
)


def test_an_abc_file_of_several_tunes_is_several_pieces(tmp_path):
    path = tmp_path / "tunes.abc"
    path.write_text(TUNES)
    first, third = read_pieces(path)  # the tune without notes is left out, and counted
    assert first.time_signatures == [(0.0, 3, 4)] and len(first.notes) == 4
    assert first.dropped["empty_pieces"] == 1
    assert third.time_signatures == [(0.0, 6, 8)] and len(third.notes) == 7
    assert third.notes[0].start == 0.0  # each tune starts at its own beginning
    assert read_score(path).notes == first.notes
    (tmp_path / "rests.abc").write_text("X:1\nT:r\nM:4/4\nL:1/4\nK:C\nz4 |]\n")
    with pytest.raises(EmptyMusicError):
        read_pieces(tmp_path / "rests.abc")


def test_broken_musicxml_is_unreadable(tmp_path):
    path = tmp_path / "broken.musicxml"
    path.write_text("<score-partwise><part id='P1'><measure>")
    with pytest.raises(UnreadableFileError):
        read_score(path)


# ----------------------------------------------------------------------------- parts


def test_parts_keep_instruments_apart(tmp_path):
    tracks = [Track(MELODY, program=40, name=" Violin "), Track(CHORD, program=33, name="Bass"),
              Track(BEAT, channel=9, name="Kit")]  # fmt: skip
    score = read_score(write_test_midi(tmp_path / "band.mid", tracks))
    assert _layout(score) == [(40, "Violin", 4), (33, "Bass", 2), (DRUM_PROGRAM, "Kit", 4)]
    assert score.parts[0].notes == make_notes(MELODY)
    assert score.parts[2].notes == make_notes(BEAT) and score.parts[2].is_drum
    # the merged view is what it always was
    assert score.notes == make_notes(MELODY + CHORD)
    assert score.drums == make_notes(BEAT) and score.dropped["drum_notes"] == 4
    assert score.program == 40
    # include_drums changes what is counted as dropped only
    with_drums = read_score(write_test_midi(tmp_path / "band.mid", tracks), include_drums=True)
    assert with_drums.parts == score.parts and with_drums.drums == score.drums
    assert with_drums.dropped["drum_notes"] == 0


def test_parts_sharing_a_program_stay_apart_in_order(tmp_path):
    voices = {"Soprano": [(72, 0, 2, 80)], "Alto": [(67, 0, 2, 80)],
              "Tenor": [(60, 0, 1, 80), (64, 1, 1, 80)], "Bass": [(48, 0, 2, 80)]}  # fmt: skip
    voices["Tenor"].append((67, 2, 1, 70))  # a unison with the alto below
    voices["Alto"].append((67, 2, 2, 80))
    tracks = [Track(notes, program=52, name=name) for name, notes in voices.items()]
    score = read_score(write_test_midi(tmp_path / "chorale.mid", tracks))
    assert [(p.program, p.name) for p in score.parts] == [(52, n) for n in voices]
    for part, notes in zip(score.parts, voices.values(), strict=True):
        assert part.notes == make_notes(notes)  # each voice keeps its unison note
    assert score.dropped["overlaps_merged"] == 1  # only the merged view merges it
    assert len(score.notes) == 6 and score.note_count == 7


def test_drum_tracks_become_one_drum_part(tmp_path):
    kick, hats = [(36, 0, 0.5, 100), (36, 2, 0.5, 100)], [(42, 0, 0.25, 80), (42, 1, 0.25, 80)]
    tracks = [Track(kick, channel=9, name="Kick"), Track(MELODY, program=0),
              Track(hats, channel=9, name="Hats"), Track([(36, 0, 1, 90)], channel=9)]  # fmt: skip
    score = read_score(write_test_midi(tmp_path / "kit.mid", tracks))
    assert _layout(score) == [(DRUM_PROGRAM, "Kick", 4), (0, "", 4)]
    assert [(n.pitch, n.start, n.end) for n in score.parts[0].notes] == [
        (36, 0.0, 1.0),  # two kicks at once: one note, the longer
        (42, 0.0, 0.25),
        (42, 1.0, 1.25),
        (36, 2.0, 2.5),
    ]
    assert score.dropped["drum_parts_merged"] == 2
    assert score.dropped["drum_overlaps_merged"] == 1
    assert score.drums == score.parts[0].notes and score.dropped["drum_notes"] == 5


def test_type_0_file_splits_by_channel(tmp_path):
    tracks = [Track(MELODY, channel=0, program=5), Track(CHORD, channel=1, program=32),
              Track(BEAT, channel=9)]  # fmt: skip
    path = write_test_midi(tmp_path / "zero.mid", tracks, midi_type=0)
    score = read_score(path)
    assert _layout(score) == [(5, "", 4), (32, "", 2), (DRUM_PROGRAM, "", 4)]
    assert score.parts[1].notes == make_notes(CHORD)


def test_a_program_change_in_mid_track_starts_a_part(tmp_path):
    track = Track(MELODY, program=0, name="Lead", program_changes=[(2, 40)])
    score = read_score(write_test_midi(tmp_path / "change.mid", [track]))
    assert _layout(score) == [(0, "Lead", 2), (40, "Lead", 2)]
    assert score.parts[1].notes == make_notes(MELODY[2:])
    assert score.notes == make_notes(MELODY) and score.program == 0


def test_a_melody_on_channel_10_is_a_drum_part(tmp_path):
    tracks = [Track(CHORD, program=0), Track(MELODY, channel=9, program=73, name="Flute")]
    score = read_score(write_test_midi(tmp_path / "ch10.mid", tracks))
    assert _layout(score) == [(0, "", 2), (DRUM_PROGRAM, "Flute", 4)]
    assert score.drums == make_notes(MELODY)


def test_tracks_without_notes_are_left_out(tmp_path):
    tracks = [Track([], program=10, name="empty"), Track(MELODY, name="Lead"),
              Track([(50, 1, 0, 80)], program=20, name="only a zero-length note"),
              Track([], channel=9)]  # fmt: skip
    score = read_score(write_test_midi(tmp_path / "gaps.mid", tracks))
    assert _layout(score) == [(0, "Lead", 4)]
    assert score.dropped["zero_length_notes"] == 1


def test_sixty_tracks_become_sixteen_parts(tmp_path):
    # 15 families with one track each (sizes 2..16), 44 one-note guitar tracks, drums
    others = [program for program in range(0, 128, 8) if program != 24]
    tracks = [Track([(20 + 5 * i + k % 5, k, 1, 80) for k in range(i + 2)], program=program)
              for i, program in enumerate(others)]  # fmt: skip
    tracks += [Track([(40 + k % 40, k, 1, 80)], program=25) for k in range(44)]
    tracks.append(Track(BEAT, channel=9))
    assert len(tracks) == 60
    score = read_score(write_test_midi(tmp_path / "sixty.mid", tracks))
    # the guitars merge into one; then the smallest part (piano) into the next (program 8)
    assert len(score.parts) == MAX_PARTS
    assert [p.program for p in score.parts] == others[1:] + [25, DRUM_PROGRAM]
    assert len(score.parts[0].notes) == 2 + 3 and len(score.parts[-2].notes) == 44
    assert score.dropped["parts_merged"] == 44
    assert score.note_count == sum(len(t.notes) for t in tracks)


def test_the_most_crowded_family_merges_its_smallest_parts_first(tmp_path):
    # 17 parts: 6 strings (2 notes each), 11 guitars of 3..13 notes; 15 pitched parts at most
    strings = [Track([(50 + i, 0, 1, 80), (50 + i, 1, 1, 80)], program=48) for i in range(6)]
    guitars = [Track([(60 + i, k, 1, 80) for k in range(3 + i)], program=24 + i % 8, name=str(i))
               for i in range(11)]  # fmt: skip
    score = read_score(write_test_midi(tmp_path / "crowd.mid", strings + guitars))
    assert score.dropped["parts_merged"] == 2
    assert [p.program for p in score.parts[:6]] == [48] * 6  # the strings are untouched
    # guitar 0 (3 notes) went into guitar 1 (4 notes), then guitar 2 (5) into guitar 3 (6)
    assert [(p.name, len(p.notes)) for p in score.parts[6:9]] == [("1", 7), ("3", 11), ("4", 7)]
    assert len(score.parts) == 15


def test_drums_only(tmp_path):
    path = write_test_midi(tmp_path / "d.mid", [Track(BEAT, channel=9, name="Groove")])
    with pytest.raises(EmptyMusicError, match="drums only"):
        read_score(path)
    score = read_score(path, allow_drums_only=True)
    assert score.notes == [] and score.drums == make_notes(BEAT)
    assert score.parts == [Part(DRUM_PROGRAM, make_notes(BEAT), "Groove")]
    assert score.length == 1.5 and score.note_count == 4
    assert read_pieces(path, allow_drums_only=True)[0].parts == score.parts
    write_midi(score, tmp_path / "kit.mid")
    _, layout = assert_arrangement_ready(tmp_path / "kit.mid", length_quarters=1.5)
    assert layout == [("Groove", 9, 0)]
    assert read_score(tmp_path / "kit.mid", allow_drums_only=True).parts == score.parts
    silent = write_test_midi(tmp_path / "s.mid", [Track([]), Track([], channel=9)])
    with pytest.raises(EmptyMusicError, match="no notes"):
        read_score(silent, allow_drums_only=True)


TWO_PARTS_XML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <part-list>
    <score-part id="P1"><part-name>Violin</part-name>
      <midi-instrument id="P1-I1"><midi-program>41</midi-program></midi-instrument></score-part>
    <score-part id="P2"><part-name>Cello</part-name>
      <midi-instrument id="P2-I1"><midi-program>43</midi-program></midi-instrument></score-part>
  </part-list>
  <part id="P1"><measure number="1">
    <attributes><divisions>1</divisions><time><beats>2</beats><beat-type>4</beat-type></time>
    </attributes>
    <note><pitch><step>E</step><octave>5</octave></pitch><duration>2</duration></note>
  </measure></part>
  <part id="P2"><measure number="1">
    <attributes><divisions>1</divisions><time><beats>2</beats><beat-type>4</beat-type></time>
    </attributes>
    <note><pitch><step>C</step><octave>3</octave></pitch><duration>1</duration></note>
    <note><pitch><step>G</step><octave>2</octave></pitch><duration>1</duration></note>
  </measure></part>
</score-partwise>
"""


def test_score_formats_give_a_part_per_voice(tmp_path):
    path = tmp_path / "duo.musicxml"
    path.write_text(TWO_PARTS_XML)
    score = read_score(path)
    assert _layout(score) == [(40, "Violin", 1), (42, "Cello", 2)]
    assert score.parts[1].notes == make_notes([(48, 0, 1, 64), (43, 1, 1, 64)])
    assert score.program == 42 and len(score.notes) == 3  # the program with most notes
    tune = tmp_path / "tune.abc"
    tune.write_text("X:1\nT:t\nM:3/4\nL:1/4\nK:C\nC D E | G3 |]\n")
    assert _layout(read_score(tune)) == [(0, "", 4)]


# ----------------------------------------------------------------------------- writing


def test_written_file_is_daw_ready_and_reads_back(tmp_path):
    score = make_score(MELODY + CHORD, tempo=[(0, 100), (4, 140)],
                       time_signature=[(0, 3, 4), (3, 4, 4)], program=24)  # fmt: skip
    path = tmp_path / "out.mid"
    write_midi(score, path, track_name="piano")
    mid = assert_daw_ready(path, length_quarters=score.length)
    assert len(mid.tracks) == 2
    assert mid.tracks[1][0].name == "piano"
    assert [m.program for m in mid.tracks[1] if m.type == "program_change"] == [24]

    back = read_score(path)
    assert back.notes == score.notes
    assert back.time_signatures == score.time_signatures
    assert [(q, round(b, 3)) for q, b in back.tempos] == [(0.0, 100.0), (4.0, 140.0)]
    assert back.program == 24


def test_overlaps_reattacks_and_zero_length_are_repaired(tmp_path):
    notes = [Note(60, 0, 2, 80), Note(60, 1, 3, 80), Note(62, 0, 1, 80), Note(62, 1, 2, 80),
             Note(64, 0, 1, 80), Note(64, 0, 1.5, 90), Note(65, 1, 1.0001, 80)]  # fmt: skip
    score = Score.of(notes, end=4.0)
    path = tmp_path / "fix.mid"
    write_midi(score, path)
    mid = assert_daw_ready(path, length_quarters=4.0)
    back = [(n.pitch, n.start, n.end, n.velocity) for n in read_score(path).notes]
    assert back == [(60, 0.0, 1.0, 80), (62, 0.0, 1.0, 80), (64, 0.0, 1.5, 90),
                    (60, 1.0, 3.0, 80), (62, 1.0, 2.0, 80)]  # fmt: skip
    # the re-attack of 62 at tick 480 comes out as off then on
    at_480, now = [], 0
    for m in mid.tracks[1]:
        now += m.time
        if now == 480 and m.type.startswith("note"):
            at_480.append((m.type, m.note))
    assert at_480 == [("note_off", 60), ("note_off", 62), ("note_on", 60), ("note_on", 62)]


def test_end_cuts_notes_and_sets_track_ends(tmp_path):
    score = make_score([(60, 0, 8, 80), (62, 5, 1, 80)], end=4.0)
    path = tmp_path / "cut.mid"
    write_midi(score, path)
    assert_daw_ready(path, length_quarters=4.0)
    assert [(n.pitch, n.start, n.end) for n in read_score(path).notes] == [(60, 0.0, 4.0)]


def test_melody_track_on_channel_1(tmp_path):
    score = make_score(CHORD, program=48)
    melody = make_score(MELODY, program=73)
    path = tmp_path / "harm.mid"
    write_midi(score, path, melody=melody)
    mid = assert_daw_ready(path, length_quarters=4.5)  # the melody outlasts the chords
    assert [t[0].name for t in mid.tracks[1:]] == ["musicgen", "melody"]
    channels = {m.channel for m in mid.tracks[2] if m.type.startswith("note")}
    assert channels == {1}
    assert [m.program for m in mid.tracks[2] if m.type == "program_change"] == [73]


def test_writing_is_deterministic_and_atomic(tmp_path):
    score = make_score(MELODY, tempo=97.3, time_signature=(6, 8))
    a, b = tmp_path / "a.mid", tmp_path / "b.mid"
    write_midi(score, a)
    write_midi(score, b)
    assert a.read_bytes() == b.read_bytes()
    write_midi(make_score(CHORD), a)  # replaces the file
    assert read_score(a).notes == make_notes(CHORD)
    assert sorted(os.listdir(tmp_path)) == ["a.mid", "b.mid"]  # no temporary files left


def test_program_override_and_empty_score(tmp_path):
    path = tmp_path / "empty.mid"
    write_midi(make_score(end=8.0), path, program=0)
    assert_daw_ready(path, length_quarters=8.0)
    write_midi(make_score(MELODY, program=3), path, program=11)
    mid = mido.MidiFile(str(path))
    assert [m.program for m in mid.tracks[1] if m.type == "program_change"] == [11]


PICKUP_XML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <part-list><score-part id="P1"><part-name>S</part-name></score-part></part-list>
  <part id="P1">
    <measure number="0" implicit="yes">
      <attributes><divisions>1</divisions><time><beats>3</beats><beat-type>4</beat-type></time>
      </attributes>
      <note><pitch><step>G</step><octave>4</octave></pitch><duration>1</duration></note>
    </measure>
    <measure number="1">
      <note><pitch><step>C</step><octave>5</octave></pitch><duration>2</duration>
        <tie type="start"/></note>
      <note><pitch><step>C</step><octave>5</octave></pitch><duration>1</duration>
        <tie type="stop"/></note>
    </measure>
  </part>
</score-partwise>
"""


def test_musicxml_pickup_bar_keeps_bar_lines(tmp_path):
    path = tmp_path / "pickup.musicxml"
    path.write_text(PICKUP_XML)
    score = read_score(path)
    # the one-beat pickup is shifted to the end of a full 3/4 bar
    assert [(n.pitch, n.start, n.end) for n in score.notes] == [(67, 2.0, 3.0), (72, 3.0, 6.0)]
    assert score.time_signatures == [(0.0, 3, 4)]


def test_absurd_files_are_refused(tmp_path, monkeypatch):
    import musicgen.midi_io as midi_io

    path = write_test_midi(tmp_path / "many.mid", [Track(MELODY)])
    monkeypatch.setattr(midi_io, "MAX_NOTES", 3)
    with pytest.raises(UnreadableFileError, match="too many"):
        read_score(path)
    monkeypatch.setattr(midi_io, "MAX_FILE_BYTES", 10)
    with pytest.raises(UnreadableFileError, match="too large"):
        read_score(path)


# ----------------------------------------------------------------------------- writing parts


def _band() -> Score:
    """Named and unnamed parts, a drum kit among them, on a 3/4 tempo map."""
    parts = [
        Part(0, make_notes(MELODY), "Keys"),
        Part(33, make_notes(CHORD + [(43, 4, 1, 60)])),
        Part(DRUM_PROGRAM, make_notes(BEAT)),
        Part(40, make_notes([(76, 0.5, 1, 90), (79, 1.5, 2.5, 95)]), "Solo"),
        Part(25, make_notes([(64, 0, 1, 70), (64, 1, 1, 71)])),
    ]
    score = make_score(tempo=[(0, 90), (3, 120)], time_signature=(3, 4))
    score.parts = parts
    return score


def test_parts_become_named_tracks_on_their_own_channels(tmp_path):
    score, path = _band(), tmp_path / "band.mid"
    write_midi(score, path, track_name="ignored", program=7)
    mid, layout = assert_arrangement_ready(path, length_quarters=5.0)
    assert layout == [("Keys", 0, 0), ("Bass", 1, 33), ("Drums", 9, 0), ("Solo", 2, 40),
                      ("Guitar", 3, 25)]  # fmt: skip
    assert len(mid.tracks) == 6
    back = read_score(path)
    assert [(p.program, p.name) for p in back.parts] == [
        (0, "Keys"), (33, "Bass"), (DRUM_PROGRAM, "Drums"), (40, "Solo"), (25, "Guitar")
    ]  # fmt: skip
    for written, read in zip(score.parts, back.parts, strict=True):
        assert read.notes == written.notes  # pitch, start, end, velocity
    assert back.time_signatures == [(0.0, 3, 4)]
    # a melody comes after the parts, on the next free channel
    write_midi(score, path, melody=make_score(MELODY[:2], program=73))
    _, layout = assert_arrangement_ready(path, length_quarters=5.0)
    assert layout[-1] == ("melody", 4, 73) and len(layout) == 6


def test_four_unnamed_parts_of_one_program_are_voices(tmp_path):
    score = make_score()
    score.parts = [Part(52, make_notes([(p, 0, 2, 80)])) for p in (72, 67, 60, 48)]
    write_midi(score, tmp_path / "choir.mid")
    _, layout = assert_arrangement_ready(tmp_path / "choir.mid", length_quarters=2.0)
    assert layout == [("Soprano", 0, 52), ("Alto", 1, 52), ("Tenor", 2, 52), ("Bass", 3, 52)]
    assert [p.name for p in read_score(tmp_path / "choir.mid").parts] == [n for n, _, _ in layout]


def test_fifteen_pitched_parts_and_drums_fill_every_channel(tmp_path):
    parts = [Part(8 * i, make_notes([(40 + i, i, 1, 80)])) for i in range(15)]
    parts.insert(3, Part(DRUM_PROGRAM, make_notes(BEAT)))
    score = make_score()
    score.parts = parts
    write_midi(score, tmp_path / "full.mid")
    _, layout = assert_arrangement_ready(tmp_path / "full.mid", length_quarters=15.0)
    assert [channel for _, channel, _ in layout] == [0, 1, 2, 9, 3, 4, 5, 6, 7, 8, *range(10, 16)]
    back = read_score(tmp_path / "full.mid")
    assert [p.program for p in back.parts] == [p.program for p in parts]
    assert [p.notes for p in back.parts] == [p.notes for p in parts]


def test_part_tracks_are_cleaned_cut_and_deterministic(tmp_path):
    score = make_score(end=2.0)
    overlapping = [Note(60, 0, 2, 80), Note(60, 1, 3, 90), Note(62, 0.5, 0.5001, 80)]
    score.parts = [Part(0, overlapping, "Piano"), Part(DRUM_PROGRAM, make_notes(BEAT))]
    a, b = tmp_path / "a.mid", tmp_path / "b.mid"
    write_midi(score, a)
    write_midi(score, b)
    assert a.read_bytes() == b.read_bytes()
    assert_arrangement_ready(a, length_quarters=2.0)
    back = read_score(a)
    assert [(n.pitch, n.start, n.end) for n in back.parts[0].notes] == [
        (60, 0.0, 1.0),  # cut at the re-attack
        (60, 1.0, 2.0),  # cut at the end; the zero-length 62 is gone
    ]
    assert back.parts[1].notes == make_notes(BEAT)


def test_a_read_band_writes_back_note_for_note(tmp_path):
    tracks = [Track(MELODY, program=40, name="Violin"), Track(CHORD, program=40, name="Viola"),
              Track(BEAT, channel=9, name="Kit"), Track(BEAT[:2], channel=9, name="More")]  # fmt: skip
    first = read_score(write_test_midi(tmp_path / "in.mid", tracks, tpq=96))
    write_midi(first, tmp_path / "out.mid")
    _, layout = assert_arrangement_ready(tmp_path / "out.mid", length_quarters=first.length)
    assert layout == [("Violin", 0, 40), ("Viola", 1, 40), ("Kit", 9, 0)]
    again = read_score(tmp_path / "out.mid")
    assert again.parts == first.parts
    assert again.notes == first.notes and again.drums == make_notes(BEAT)


def test_key_signatures_are_read_and_written(tmp_path):
    """A file's key signatures come into `Score.key_signatures` (MIDI key numbers:
    0..11 major, 12..23 minor) and go out again with write_midi."""
    import pretty_midi

    from musicgen.midi_io import read_score, write_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(0)
    piano.notes.append(pretty_midi.Note(80, 62, 0.0, 4.0))
    pm.instruments.append(piano)
    pm.key_signature_changes = [
        pretty_midi.KeySignature(7, 0.0),  # G major
        pretty_midi.KeySignature(16, 1.0),  # E minor, at quarter 2
    ]
    source = tmp_path / "keys.mid"
    pm.write(str(source))
    score = read_score(source)
    assert score.key_signatures == [(0.0, 7), (2.0, 16)]
    again = tmp_path / "again.mid"
    write_midi(score, again)
    back = pretty_midi.PrettyMIDI(str(again))
    assert [(k.key_number, k.time) for k in back.key_signature_changes] == [(7, 0.0), (16, 1.0)]
    assert read_score(again).key_signatures == score.key_signatures


def test_written_bytes_are_what_mido_writes_for_the_same_messages(tmp_path):
    """write_midi encodes its note events itself: mido, reading the file and saving its
    messages again, gives the same bytes (running status, delta times over 127 ticks,
    tempo, metre and key changes, drums, a chord, a note cut at the end)."""
    import io

    from musicgen.midi_io import midi_bytes

    score = make_score(end=40.0)
    score.tempos = [(0.0, 100.0), (3.0, 140.0)]
    score.time_signatures = [(0.0, 4, 4), (8.0, 3, 4)]
    score.key_signatures = [(0.0, 7), (8.0, 16)]
    chord = [Note(60, 0, 1, 80), Note(64, 0, 1, 90), Note(67, 0.5, 41, 70)]
    late = [Note(40, 30.25, 32, 100)]  # a delta time of thousands of ticks
    score.parts = [Part(0, chord, "Keys"), Part(33, late), Part(DRUM_PROGRAM, make_notes(BEAT))]
    data = midi_bytes(score, track_name="x")
    again = io.BytesIO()
    mido.MidiFile(file=io.BytesIO(data)).save(file=again)
    assert again.getvalue() == data
    write_midi(score, tmp_path / "a.mid", track_name="x")
    assert (tmp_path / "a.mid").read_bytes() == data


def test_every_key_signature_is_written_as_mido_writes_it():
    from musicgen.midi_io import KEY_NAMES, KEY_SHARPS, _meta

    for name, sharps, number in zip(KEY_NAMES, KEY_SHARPS, range(24), strict=True):
        mine = _meta(0x59, bytes([sharps & 0xFF, int(number >= 12)]))
        assert mine == bytes(mido.MetaMessage("key_signature", key=name).bytes())
