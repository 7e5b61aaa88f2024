"""A folder of broken and odd music files, built in code, for the robustness tests.

`build_hostile_folder(folder)` writes every case and returns what musicgen should do
with each: `USED` files are odd but legal and must be used; every other entry maps a
path to a fragment of the reason it must be skipped with. Byte-level cases are built
with `midi_bytes` (a header and raw track chunks), the rest with `tests.music`.

    expected = build_hostile_folder(tmp_path / "hostile")
    expected["good.mid"] == USED; expected["empty.mid"] == "empty file"
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import mido

from tests.music import Track, write_test_midi

USED = "used"
PHRASE = [0, 2, 4, 5, 7, 5, 4, 2]


def midi_bytes(tracks: list[bytes], *, fmt: int = 1, division: int = 480) -> bytes:
    """A MIDI file from raw track-chunk bodies (events with delta times)."""
    header = b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks), division & 0xFFFF)
    return header + b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)


def melody(root: int = 60, bars: int = 4) -> list[tuple[int, float, float, int]]:
    """A plain melody of quarter notes, `bars` 4/4 bars long."""
    return [(root + PHRASE[i % len(PHRASE)], float(i), 1.0, 80) for i in range(bars * 4)]


def good_midi(path: Path, root: int = 60, **kwargs) -> Path:
    return write_test_midi(path, [Track(melody(root))], **kwargs)


def _raw_track(events: list[tuple[int, mido.Message | mido.MetaMessage]]) -> mido.MidiTrack:
    track = mido.MidiTrack(message.copy(time=delta) for delta, message in events)
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def _save(path: Path, tracks: list[mido.MidiTrack], midi_type: int = 1) -> None:
    mid = mido.MidiFile(type=midi_type, ticks_per_beat=480)
    mid.tracks.extend(tracks)
    mid.save(str(path))


def _on(pitch: int, velocity: int = 80) -> mido.Message:
    return mido.Message("note_on", note=pitch, velocity=velocity)


def _off(pitch: int) -> mido.Message:
    return mido.Message("note_off", note=pitch, velocity=0)


def build_hostile_folder(folder: Path) -> dict[str, str]:
    """Write the hostile corpus into `folder`; {relative path: USED or reason fragment}."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}

    # --- odd but legal: used
    good = good_midi(folder / "good.mid")
    expected["good.mid"] = USED
    good_midi(folder / "format2.mid", root=62, midi_type=0)
    data = (folder / "format2.mid").read_bytes()
    (folder / "format2.mid").write_bytes(data[:8] + b"\x00\x02" + data[10:])  # type 2
    expected["format2.mid"] = USED
    zero_then_real = [(0, _on(60)), (0, _off(60))]  # on and off at the same tick
    zero_then_real += [(0, _on(64)), (480, _off(64))] * 8
    _save(folder / "zero_length.mid", [_raw_track(zero_then_real)])
    expected["zero_length.mid"] = USED
    write_test_midi(folder / "overlaps.mid", [Track([(60, 0, 4, 80), (60, 1, 2, 90)] + melody(48))])
    expected["overlaps.mid"] = USED
    never_closed = [(0, _on(60)), (480, _on(64)), (480, _on(67))]  # no note-off at all
    end = mido.MetaMessage("end_of_track", time=480)  # ...but the track goes on a beat
    _save(folder / "never_closed.mid", [mido.MidiTrack([*_raw_track(never_closed)[:-1], end])])
    expected["never_closed.mid"] = USED
    # the slowest tempo MIDI can say is 0xFFFFFF us per quarter (3.58 bpm; 1 bpm is not
    # representable); the fastest here 1000 bpm; then a tempo change on every beat
    slow = [(0, mido.MetaMessage("set_tempo", tempo=0xFFFFFF))]
    _save(folder / "tempo_slowest.mid", [_raw_track(slow + _notes(melody(65)))])
    expected["tempo_slowest.mid"] = USED
    good_midi(folder / "tempo_1000.mid", root=67, tempos=[(0.0, 1000.0)])
    expected["tempo_1000.mid"] = USED
    every_beat = [(float(q), 30.0 + (q * 97) % 900) for q in range(16)]
    good_midi(folder / "tempo_every_beat.mid", root=69, tempos=every_beat)
    expected["tempo_every_beat.mid"] = USED
    write_test_midi(folder / "silence_hour.mid", [Track([(60, 7200.0, 1.0, 80)])])  # 1 h
    expected["silence_hour.mid"] = USED
    many = [(36 + i % 60, (i // 4) * 0.25, 0.25, 80) for i in range(20_000)]
    write_test_midi(folder / "many_notes.mid", [Track(many)])
    expected["many_notes.mid"] = USED
    odd_name = os.fsdecode(b"caf\xe9-\xff.mid")  # not UTF-8: kept as surrogates by os
    good_midi(folder / odd_name, root=57)
    expected[odd_name] = USED

    # --- broken: skipped, with a reason
    (folder / "empty.mid").write_bytes(b"")
    expected["empty.mid"] = "empty file"
    (folder / "random.mid").write_bytes(bytes(range(256)) * 4)
    expected["random.mid"] = "not a readable MIDI file"
    (folder / "text.mid").write_text("This is not music.\n" * 20)
    expected["text.mid"] = "not a readable MIDI file"
    (folder / "header_only.mid").write_bytes(midi_bytes([]))
    expected["header_only.mid"] = "no tracks"
    absurd = midi_bytes([b"\x00\x90\x3c\x40"])[:-8] + b"MTrk\x7f\xff\xff\xff\x00\x90\x3c\x40"
    (folder / "absurd_chunk.mid").write_bytes(absurd)
    expected["absurd_chunk.mid"] = "not a readable MIDI file"
    data = good.read_bytes()
    (folder / "smpte.mid").write_bytes(data[:12] + b"\xe7\x28" + data[14:])  # -25 fps
    expected["smpte.mid"] = "SMPTE"
    (folder / "truncated.mid").write_bytes(data[: len(data) // 2])
    expected["truncated.mid"] = "not a readable MIDI file"
    zero_tempo = [(0, mido.MetaMessage("set_tempo", tempo=0))] + _notes(melody(70))
    _save(folder / "tempo_zero.mid", [_raw_track(zero_tempo)])
    expected["tempo_zero.mid"] = "tempo of 0"
    write_test_midi(folder / "drums.mid", [Track(melody(36), channel=9)])
    expected["drums.mid"] = "drums only"
    write_test_midi(folder / "no_notes.mid", [Track([])])
    expected["no_notes.mid"] = "no notes"
    (folder / "broken.musicxml").write_text("<?xml version='1.0'?><score-partwise><part")
    expected["broken.musicxml"] = "not readable as a score"
    (folder / "loop_a.mid").symlink_to("loop_b.mid")
    (folder / "loop_b.mid").symlink_to("loop_a.mid")
    expected["loop_a.mid"] = expected["loop_b.mid"] = "unreadable"
    (folder / "dangling.mid").symlink_to("nowhere.mid")
    expected["dangling.mid"] = "broken link"
    os.mkfifo(folder / "fifo.mid")
    expected["fifo.mid"] = "not a regular file"
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to("..")  # a folder loop: visited once
    (folder / "sub" / "copy.mid").symlink_to("../good.mid")
    expected["sub/copy.mid"] = "duplicate of good.mid"
    locked = good_midi(folder / "locked.mid", root=71)
    locked.chmod(0)  # root still reads it: tests patch open() for that case
    expected["locked.mid"] = "unreadable"
    return expected


def _notes(notes: list[tuple[int, float, float, int]]) -> list[tuple[int, mido.Message]]:
    """Sequential (delta, message) events for non-overlapping notes at 480 tpq."""
    events, now = [], 0
    for pitch, start, duration, _ in notes:
        on, off = round(start * 480), round((start + duration) * 480)
        events += [(on - now, _on(pitch)), (off - on, _off(pitch))]
        now = off
    return events
