"""Tiny music built in code, for every test.

`make_score` builds a `Score` from (pitch, start, duration, velocity) tuples in
quarter notes; `write_test_midi` writes a MIDI file with mido exactly as asked
(any type, resolution, tracks, drums), so readers can be tested on files that
musicgen's own writer would never produce. `random_quantized_score` makes the
on-grid scores that property tests round-trip.

    score = make_score([(60, 0, 1, 80), (64, 1, 1, 80)], tempo=100, time_signature=(3, 4))
    write_test_midi(tmp_path / "a.mid", [Track([(60, 0, 1, 80)], program=40)], tpq=96)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

from musicgen.score import Note, Score

NoteSpec = tuple[int, float, float, int]  # (pitch, start quarters, duration quarters, velocity)


def make_notes(notes: Sequence[NoteSpec]) -> list[Note]:
    """Notes from (pitch, start, duration, velocity) tuples, sorted by (start, pitch)."""
    out = [Note(p, float(s), float(s) + float(d), v) for p, s, d, v in notes]
    return sorted(out, key=lambda n: (n.start, n.pitch))


def make_score(
    notes: Sequence[NoteSpec] = (),
    tempo: float | Sequence[tuple[float, float]] = 120.0,
    time_signature: tuple[int, int] | Sequence[tuple[float, int, int]] = (4, 4),
    program: int = 0,
    end: float | None = None,
) -> Score:
    """A Score from note tuples. `tempo` is one bpm or [(quarters, bpm), ...];
    `time_signature` is (num, den) or [(quarters, num, den), ...]."""
    tempos = [(0.0, float(tempo))] if isinstance(tempo, int | float) else list(tempo)
    if len(time_signature) == 2 and isinstance(time_signature[0], int):
        signatures = [(0.0, time_signature[0], time_signature[1])]
    else:
        signatures = list(time_signature)
    return Score.of(
        make_notes(notes),
        tempos=[(float(q), float(b)) for q, b in tempos],
        time_signatures=[(float(q), int(n), int(d)) for q, n, d in signatures],
        program=program,
        end=end,
    )


@dataclass
class Track:
    """One track of a test MIDI file: notes in quarters, on one channel."""

    notes: Sequence[NoteSpec] = ()
    program: int = 0  # the program change at 0
    channel: int = 0  # 9 = GM drums
    name: str | None = None
    program_changes: Sequence[tuple[float, int]] = ()  # later (quarters, program), mid-track


@dataclass
class _Event:
    tick: int
    order: int  # offs (0) before metas (1) before ons (2) at one tick
    message: mido.Message | mido.MetaMessage = field(compare=False)


def write_test_midi(
    path: str | Path,
    tracks: Sequence[Track],
    *,
    tpq: int = 480,
    midi_type: int = 1,
    tempos: Sequence[tuple[float, float]] = ((0.0, 120.0),),
    time_signatures: Sequence[tuple[float, int, int]] = ((0.0, 4, 4),),
) -> Path:
    """Write a MIDI file with mido: type 1 (conductor track + one track per Track)
    or type 0 (everything in one track). Times in quarters, ticks = round(q * tpq)."""
    conductor: list[_Event] = []
    for q, bpm in tempos:
        message = mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))
        conductor.append(_Event(round(q * tpq), 1, message))
    for q, num, den in time_signatures:
        message = mido.MetaMessage("time_signature", numerator=num, denominator=den)
        conductor.append(_Event(round(q * tpq), 1, message))
    track_events = [_track_events(track, tpq) for track in tracks]

    mid = mido.MidiFile(type=midi_type, ticks_per_beat=tpq)
    if midi_type == 0:
        mid.tracks.append(_to_track(conductor + [e for evs in track_events for e in evs]))
    else:
        mid.tracks.append(_to_track(conductor))
        mid.tracks.extend(_to_track(events) for events in track_events)
    path = Path(path)
    mid.save(str(path))
    return path


def _track_events(track: Track, tpq: int) -> list[_Event]:
    ch = track.channel
    events = [_Event(0, 1, mido.Message("program_change", channel=ch, program=track.program))]
    for q, program in track.program_changes:
        message = mido.Message("program_change", channel=ch, program=program)
        events.append(_Event(round(q * tpq), 1, message))
    if track.name is not None:
        events.append(_Event(0, 1, mido.MetaMessage("track_name", name=track.name)))
    for pitch, start, duration, velocity in track.notes:
        on = mido.Message("note_on", channel=ch, note=pitch, velocity=velocity)
        off = mido.Message("note_off", channel=ch, note=pitch, velocity=0)
        events.append(_Event(round(start * tpq), 2, on))
        events.append(_Event(round((start + duration) * tpq), 0, off))
    return events


def _to_track(events: list[_Event]) -> mido.MidiTrack:
    track = mido.MidiTrack()
    now = 0
    for event in sorted(events, key=lambda e: (e.tick, e.order)):
        track.append(event.message.copy(time=event.tick - now))
        now = event.tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def random_quantized_score(
    rng: np.random.Generator,
    *,
    steps_per_quarter: int = 4,
    bars: int = 4,
    time_signature: tuple[int, int] = (4, 4),
    max_notes: int = 30,
    pitch_range: tuple[int, int] = (21, 108),
    velocities: Sequence[int] = (64,),
    tempo: float = 120.0,
    max_duration_steps: int = 32,
) -> Score:
    """Random on-grid notes inside `bars` bars: distinct (onset, pitch), durations of
    1..max_duration_steps steps, velocities drawn from `velocities`."""
    num, den = time_signature
    bar_steps = num * 4 * steps_per_quarter // den
    total = bars * bar_steps
    seen: set[tuple[int, int]] = set()
    notes: list[Note] = []
    for _ in range(int(rng.integers(1, max_notes + 1))):
        onset = int(rng.integers(0, total))
        pitch = int(rng.integers(pitch_range[0], pitch_range[1] + 1))
        if (onset, pitch) in seen:
            continue
        seen.add((onset, pitch))
        steps = int(rng.integers(1, max_duration_steps + 1))
        velocity = int(rng.choice(np.asarray(velocities)))
        start, end = onset / steps_per_quarter, (onset + steps) / steps_per_quarter
        notes.append(Note(pitch, start, end, velocity))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return Score.of(notes, tempos=[(0.0, tempo)], time_signatures=[(0.0, num, den)])


def assert_daw_ready(path: str | Path, length_quarters: float | None = None) -> mido.MidiFile:
    """Assert SPEC.md "Output MIDI" on a written file and return it (read by mido):
    type 1, 480 tpq, tempo and time signature at tick 0, named tracks with a program
    change, no channel 10 (9 from zero), every note closed, none zero-length, no
    same-pitch overlaps per channel, every track ending at `length_quarters` exactly."""
    mid = _assert_midi_basics(path, length_quarters)
    for track in mid.tracks[1:]:
        messages = _absolute(track)
        assert any(m.type == "track_name" for _, m in messages)
        assert any(m.type == "program_change" for _, m in messages)
        assert all(m.channel != 9 for _, m in messages if m.type.startswith("note")), (
            "pitched notes on the drum channel"
        )
        _assert_notes_clean(messages)
    return mid


def assert_arrangement_ready(
    path: str | Path, length_quarters: float | None = None
) -> tuple[mido.MidiFile, list[tuple[str, int, int]]]:
    """Assert SPEC.md "Output MIDI" and "Arrangements in the output" on a written
    multi-track file: after the conductor track, one track per part, each named, its
    channel messages on one channel of its own, a program change at tick 0 before its
    notes; channel 10 (9 from zero) is the drum track's alone; notes closed, none
    zero-length, no same-pitch overlaps; every track ending at `length_quarters`.
    Returns the file (read by mido) and (name, channel, program) per part track."""
    mid = _assert_midi_basics(path, length_quarters)
    layout = []
    for track in mid.tracks[1:]:
        messages = _absolute(track)
        names = [m.name for _, m in messages if m.type == "track_name"]
        assert len(names) == 1 and names[0].strip(), "a part track without a name"
        channels = {m.channel for _, m in messages if hasattr(m, "channel")}
        assert len(channels) == 1, f"track {names[0]!r} uses channels {sorted(channels)}"
        tick, first = next((t, m) for t, m in messages if hasattr(m, "channel"))
        assert first.type == "program_change" and tick == 0, f"{names[0]!r}: no program at 0"
        layout.append((names[0], channels.pop(), first.program))
        _assert_notes_clean(messages)
    channels = [channel for _, channel, _ in layout]
    assert len(set(channels)) == len(channels), f"tracks share channels: {channels}"
    return mid, layout


def _assert_midi_basics(path: str | Path, length_quarters: float | None) -> mido.MidiFile:
    """Type 1, 480 tpq, tempo and time signature at tick 0, every track ending at
    `length_quarters` (when given)."""
    mid = mido.MidiFile(str(path))
    assert mid.type == 1 and mid.ticks_per_beat == 480
    first = [m for m in _absolute(mid.tracks[0]) if m[0] == 0]
    assert any(m.type == "set_tempo" for _, m in first)
    assert any(m.type == "time_signature" for _, m in first)
    if length_quarters is not None:
        for track in mid.tracks:
            tick, last = _absolute(track)[-1]
            assert last.type == "end_of_track" and tick == round(length_quarters * 480)
    return mid


def _assert_notes_clean(messages: list[tuple[int, mido.Message]]) -> None:
    """Every note closed, none zero-length, no same-pitch overlaps per channel."""
    sounding: dict[tuple[int, int], int] = {}
    for tick, m in messages:
        if m.type not in ("note_on", "note_off"):
            continue
        key = (m.channel, m.note)
        if m.type == "note_on" and m.velocity > 0:
            assert key not in sounding, f"overlapping notes {key} at tick {tick}"
            sounding[key] = tick
        else:
            assert key in sounding, f"note-off without note-on {key} at tick {tick}"
            assert tick > sounding.pop(key), f"zero-length note {key} at tick {tick}"
    assert not sounding, f"notes never closed: {sorted(sounding)}"


def _absolute(track: mido.MidiTrack) -> list[tuple[int, mido.Message]]:
    """(absolute tick, message) pairs of a track."""
    out, now = [], 0
    for message in track:
        now += message.time
        out.append((now, message))
    return out


def untrained_checkpoint(folder, encoding=None, cell: str = "lstm"):
    """A checkpoint folder holding an untrained 1x16 network (logits near 0, so sampling
    is close to uniform over what the grammar allows). `encoding`: an EncodingConfig
    (default remi). Imports TensorFlow (quietly) on first use."""
    from musicgen import checkpoint as ckpt
    from musicgen.config import EncodingConfig, ModelConfig, RunConfig
    from musicgen.encoding import get_encoding
    from musicgen.runtime import import_tensorflow

    import_tensorflow()
    from musicgen.model import build_model

    config = RunConfig(
        encoding=encoding or EncodingConfig(name="remi"),
        model=ModelConfig(cell=cell, layers=1, units=16, embedding_dim=8),
    )
    vocab_size = len(get_encoding(config.encoding).vocab)
    ckpt.save_config(folder, config, vocab_size, {"data_dir": "none"})
    ckpt.save_weights(folder, build_model(config.model, vocab_size), "best")
    return folder
