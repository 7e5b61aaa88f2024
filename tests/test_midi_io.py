"""midi_io: files -> Score (MIDI of any type and resolution, score formats, broken
files) and Score -> DAW-ready MIDI."""

from __future__ import annotations

import os

import mido
import pytest

from musicgen.midi_io import SUPPORTED_SUFFIXES, read_pieces, read_score, write_midi
from musicgen.score import EmptyMusicError, Note, UnreadableFileError
from tests.music import Track, assert_daw_ready, make_notes, make_score, write_test_midi

MELODY = [(60, 0, 1, 80), (62, 1, 1, 70), (64, 2, 2, 90), (67, 4, 0.5, 100)]
CHORD = [(48, 0, 4, 60), (55, 0, 4, 60)]


def _pitches_and_times(score):
    return [(n.pitch, n.start, n.end, n.velocity) for n in score.notes]


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

    with_drums = read_score(path, include_drums=True)
    assert len(with_drums.notes) == len(score.notes) + 3
    assert with_drums.drums == [] and with_drums.dropped["drum_notes"] == 0


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
    score = make_score(end=4.0)
    score.notes = notes
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
