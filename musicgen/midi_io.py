"""Files <-> `Score`: the only module that imports pretty_midi, mido and music21.

Reading: `read_pieces` picks a reader by file suffix. MIDI files go through
pretty_midi (every instrument, any tick resolution, the tempo and time-signature
maps) and hold one piece; the score formats (MusicXML, kern, ABC) go through
music21, and a collection (an ABC file of many tunes, which music21 reads as an
Opus) gives one piece per tune. `read_score` is the first piece. Both readers
produce raw notes in quarter notes, and `_finish_score` applies the same clean-up
to either: drums set apart, zero-length notes dropped, same-pitch overlaps merged,
each loss counted in `Score.dropped`. Before pretty_midi sees a MIDI file, its events
are counted in the raw bytes (a huge file is refused before mido builds an object per
event) and notes never closed are closed at the end of their track. Anything
unreadable raises `UnreadableFileError`, anything without pitched notes
`EmptyMusicError`, each with a one-line reason.

Writing: `write_midi` writes what a DAW expects (SPEC.md "Output MIDI") with mido
directly, so every byte is under our control: type 1, 480 ticks per quarter, a
conductor track, a named instrument track, deterministic bytes, atomic replace;
`midi_bytes` gives those bytes and `to_pretty_midi` a `PrettyMIDI` read back from them.
"""

from __future__ import annotations

import io
import math
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mido
import numpy as np

from musicgen.atomic import atomic_write
from musicgen.score import EmptyMusicError, Note, Score, UnreadableFileError

MIDI_SUFFIXES = frozenset({".mid", ".midi"})
MUSIC21_SUFFIXES = frozenset({".mxl", ".musicxml", ".xml", ".krn", ".abc"})
SUPPORTED_SUFFIXES = MIDI_SUFFIXES | MUSIC21_SUFFIXES  # lower case; compare suffix.lower()

MAX_NOTES = 200_000  # more notes than this in one file is treated as unreadable
MAX_FILE_BYTES = 8 * 1024 * 1024  # larger files are refused before parsing (memory)
MAX_EVENTS = 4 * MAX_NOTES  # more MIDI events are refused before mido builds them (memory)
WRITE_TPQ = 480  # ticks per quarter of every file we write
DEFAULT_VELOCITY = 64  # for score formats that carry no velocity

# (pitch, start, end, velocity, program, is_drum); times in quarters
RawNote = tuple[int, float, float, int, int, bool]


# ----------------------------------------------------------------------------- reading


def read_score(path: str | Path, include_drums: bool = False) -> Score:
    """Read a MIDI or score file into a `Score` (times in quarter notes): the file's
    first piece when it holds several (see `read_pieces`).

    include_drums: merge drum notes into `Score.notes` instead of `Score.drums`.
    Raises UnreadableFileError (not parseable, unsupported type, absurd size) or
    EmptyMusicError ("no notes", "drums only").
    """
    return read_pieces(path, include_drums)[0]


def read_pieces(path: str | Path, include_drums: bool = False) -> list[Score]:
    """Every piece of a MIDI or score file, in file order: one for a MIDI file or a
    single score; one per tune of a collection (e.g. an ABC file with many X: tunes).
    Pieces without pitched notes are left out and counted in the first piece's
    `dropped["empty_pieces"]`. Raises as `read_score`; EmptyMusicError when no
    piece has pitched notes."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFileError(f"unsupported file type {path.suffix or '(none)'!r}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableFileError(f"cannot open: {exc.strerror or exc}") from None
    if size == 0:
        raise UnreadableFileError("empty file")
    if size > MAX_FILE_BYTES:
        raise UnreadableFileError(f"file too large (over {MAX_FILE_BYTES // 2**20} MiB)")
    reader = _read_midi if suffix in MIDI_SUFFIXES else _read_music21
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pieces = reader(path)
    scores: list[Score] = []
    empty: list[EmptyMusicError] = []
    for raw, tempos, time_signatures, changes in pieces:
        try:
            score = _finish_score(raw, tempos, time_signatures, include_drums)
        except EmptyMusicError as exc:
            empty.append(exc)
            continue
        score.dropped.update(changes)
        scores.append(score)
    if not scores:
        raise empty[0] if len(empty) == 1 else EmptyMusicError("no notes in any piece")
    if empty:
        scores[0].dropped["empty_pieces"] += len(empty)
    return scores


def _read_midi(path: Path) -> list[tuple[list[RawNote], list, list, Counter]]:
    """pretty_midi -> [(raw notes, tempos [(q, bpm)], time signatures [(q, n, d)], the
    changes made on the way)]: one piece (notes never closed are closed at the end of
    their track)."""
    import pretty_midi

    try:
        data = path.read_bytes()
        if count_midi_events(data, MAX_EVENTS) > MAX_EVENTS:
            raise UnreadableFileError(f"too many events (more than {MAX_EVENTS})")
        mid = mido.MidiFile(file=io.BytesIO(data))
    except UnreadableFileError:
        raise
    except Exception as exc:  # mido raises many types on corrupt data
        raise UnreadableFileError(f"not a readable MIDI file ({_reason(exc)})") from None
    if mid.ticks_per_beat <= 0:
        raise UnreadableFileError("SMPTE time division is not supported")
    if not mid.tracks:
        raise UnreadableFileError("MIDI file has no tracks")
    if any(m.type == "set_tempo" and m.tempo == 0 for track in mid.tracks for m in track):
        raise UnreadableFileError("a tempo of 0 microseconds per quarter")
    changes = _close_open_notes(mid)
    try:
        pm = pretty_midi.PrettyMIDI(mido_object=mid)
    except Exception as exc:
        raise UnreadableFileError(f"not a readable MIDI file ({_reason(exc)})") from None

    to_quarters = _seconds_to_quarters(pm)
    count = sum(len(inst.notes) for inst in pm.instruments)
    if count > MAX_NOTES:
        raise UnreadableFileError(f"too many notes ({count} > {MAX_NOTES})")
    raw: list[RawNote] = []
    for inst in pm.instruments:
        if not inst.notes:
            continue
        times = np.array([(n.start, n.end) for n in inst.notes], dtype=np.float64)
        quarters = to_quarters(times)
        program, is_drum = int(inst.program), bool(inst.is_drum)
        for note, (start, end) in zip(inst.notes, quarters.tolist(), strict=True):
            raw.append((int(note.pitch), start, end, int(note.velocity), program, is_drum))

    change_times, bpms = pm.get_tempo_changes()
    # the file stores whole microseconds per quarter: undo pretty_midi's float noise
    bpms = [60e6 / round(60e6 / bpm) for bpm in bpms]
    tempos = [(float(q), b) for q, b in zip(to_quarters(change_times).tolist(), bpms, strict=True)]
    signatures = [
        (float(to_quarters(np.array([ts.time]))[0]), ts.numerator, ts.denominator)
        for ts in pm.time_signature_changes
    ]
    return [(raw, tempos, signatures, changes)]


def count_midi_events(data: bytes, limit: int) -> int:
    """Events in the MTrk chunks of MIDI bytes, counted without building messages;
    stops early once past `limit`. Malformed data just ends the count (mido then says
    what is wrong), so this bounds memory before mido makes an object per event."""
    count, pos, end = 0, 14, len(data)
    while pos + 8 <= end and count <= limit:
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "big")
        pos += 8
        if kind == b"MTrk":
            count += _count_track(data, pos, min(pos + size, end), limit - count)
        pos += size
    return count


def _count_track(data: bytes, pos: int, end: int, limit: int) -> int:
    """Events of one track chunk data[pos:end] (delta time, status, data), at most limit + 1."""
    count, running = 0, 0
    while pos < end and count <= limit:
        while pos < end and data[pos] & 0x80:  # variable-length delta time
            pos += 1
        pos += 1
        if pos >= end:
            break
        status = data[pos]
        if status >= 0x80:
            pos += 1
            running = status if status < 0xF0 else running
        else:
            status = running
        if status in (0xFF, 0xF0, 0xF7):  # meta (type byte first) and sysex: a length
            pos += status == 0xFF
            length = 0
            while pos < end and data[pos] & 0x80:
                length = (length << 7) | (data[pos] & 0x7F)
                pos += 1
            length = (length << 7) | (data[pos] & 0x7F) if pos < end else 0
            pos += 1 + length
        elif status >= 0x80:
            pos += 1 if 0xC0 <= status < 0xE0 else 2
        else:  # data byte without any status: corrupt, mido will say so
            break
        count += 1
    return count


def _close_open_notes(mid: mido.MidiFile) -> Counter[str]:
    """Close every note never closed at the end of its track (pretty_midi would drop it).

    A never-closed note that starts at the very end of its track, or right after a
    note-off of its key at the same tick (a zero-length note written off-before-on),
    stays open and is dropped, counted as a zero-length note like those closed at the
    tick they start (pretty_midi drops all of these silently). Returns the counts."""
    changes: Counter[str] = Counter()
    for track in mid.tracks:
        now, sounding, last_off = 0, {}, {}
        for message in track:
            now += message.time
            key = (getattr(message, "channel", 0), getattr(message, "note", 0))
            if message.type == "note_on" and message.velocity > 0:
                sounding[key] = (now, last_off.get(key) == now)  # (start, right after an off)
            elif message.type in ("note_on", "note_off"):
                last_off[key] = now
                if sounding.pop(key, (None, False))[0] == now:
                    changes["zero_length_notes"] += 1
        to_close = sorted(
            key for key, (start, after) in sounding.items() if start < now and not after
        )
        changes["zero_length_notes"] += len(sounding) - len(to_close)
        if not to_close:
            continue
        changes["notes_never_closed"] += len(to_close)
        tail = track.pop() if track and track[-1].type == "end_of_track" else None
        for i, (channel, note) in enumerate(to_close):
            delay = tail.time if tail is not None and i == 0 else 0
            track.append(mido.Message("note_off", channel=channel, note=note, time=delay))
        track.append(mido.MetaMessage("end_of_track", time=0))
    return +changes


def _seconds_to_quarters(pm):
    """A vectorised `pm.time_to_tick(t) / pm.resolution` for arrays of seconds.

    Between tempo changes ticks grow linearly with seconds; the result is rounded
    to whole ticks (as time_to_tick does), so it is exact for any file.
    """
    change_times, bpms = pm.get_tempo_changes()
    change_ticks = np.array([pm.time_to_tick(t) for t in change_times], dtype=np.float64)
    ticks_per_second = bpms * pm.resolution / 60.0

    def convert(seconds: np.ndarray) -> np.ndarray:
        seconds = np.asarray(seconds, dtype=np.float64)
        i = np.clip(np.searchsorted(change_times, seconds, side="right") - 1, 0, None)
        ticks = np.rint(change_ticks[i] + (seconds - change_times[i]) * ticks_per_second[i])
        return ticks / pm.resolution

    return convert


def _read_music21(path: Path) -> list[tuple[list[RawNote], list, list, Counter]]:
    """music21 (MusicXML, kern, ABC) -> per piece (raw notes, tempos, time signatures,
    changes): each score of a collection (music21's Opus) is a piece of its own."""
    try:
        from music21 import converter, stream
    except ImportError:  # pragma: no cover - music21 is a dependency
        raise UnreadableFileError("music21 is not installed") from None
    try:
        parsed = converter.parse(str(path))
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        pieces, notes = [], 0
        for score in scores:
            piece = _music21_piece(score, MAX_NOTES - notes)
            notes += len(piece[0])
            pieces.append(piece)
    except (UnreadableFileError, EmptyMusicError):
        raise
    except Exception as exc:  # music21 raises anything from its many sub-parsers
        raise UnreadableFileError(f"not readable as a score ({_reason(exc)})") from None
    if not pieces:
        raise EmptyMusicError("no notes")
    return pieces


def _music21_piece(parsed, max_notes: int) -> tuple[list[RawNote], list, list, Counter]:
    """One music21 score -> (raw notes, tempos, time signatures, no changes);
    UnreadableFileError past `max_notes` notes."""
    from music21 import meter, note, tempo

    parsed = parsed.stripTies()
    parts = list(getattr(parsed, "parts", [])) or [parsed]
    shift = _pickup(parts[0])
    raw: list[RawNote] = []
    for part in parts:
        for element in part.flatten().notes:
            if len(raw) > max_notes:
                raise UnreadableFileError(f"too many notes (more than {MAX_NOTES})")
            start = float(element.offset) + shift
            end = start + float(element.quarterLength)
            velocity = element.volume.velocity if element.volume is not None else None
            velocity = int(velocity) if velocity else DEFAULT_VELOCITY
            pitches = element.pitches if not isinstance(element, note.Unpitched) else ()
            for pitch in pitches:
                raw.append((int(pitch.midi), start, end, velocity, 0, False))
    flat = parsed.flatten()
    tempos = [
        (float(mark.offset) + shift if mark.offset else 0.0, float(mark.getQuarterBPM()))
        for mark in flat.getElementsByClass(tempo.MetronomeMark)
        if mark.getQuarterBPM()
    ]
    signatures = [
        (float(ts.offset) + shift if ts.offset else 0.0, int(ts.numerator), int(ts.denominator))
        for ts in flat.getElementsByClass(meter.TimeSignature)
    ]
    return raw, tempos, signatures, Counter()


def _pickup(part) -> float:
    """Quarters missing from an opening pickup bar (0 if none): shifting the music
    by this much puts the bar lines where the score has them."""
    measures = part.getElementsByClass("Measure")
    padding = measures[0].paddingLeft if len(measures) else 0.0
    return float(padding) if padding and padding > 0 else 0.0


def _reason(exc: BaseException) -> str:
    """A short, one-line reason from an exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _finish_score(
    raw: list[RawNote], tempos: list, time_signatures: list, include_drums: bool
) -> Score:
    """Clean raw notes (drums apart, zero-length dropped, overlaps merged) into a Score."""
    dropped: Counter[str] = Counter()
    pitched: list[Note] = []
    drums: list[Note] = []
    notes_per_program: Counter[int] = Counter()
    for pitch, start, end, velocity, program, is_drum in raw:
        if not (0 <= pitch <= 127 and math.isfinite(start) and math.isfinite(end)):
            dropped["invalid_notes"] += 1
            continue
        if end <= start or start < 0:
            dropped["zero_length_notes"] += 1
            continue
        note = Note(pitch, start, end, min(max(int(velocity), 1), 127))
        if is_drum and not include_drums:
            drums.append(note)
            continue
        pitched.append(note)
        if not is_drum:
            notes_per_program[program] += 1
    if drums:
        dropped["drum_notes"] += len(drums)
    if not pitched:
        raise EmptyMusicError("drums only" if drums else "no notes")
    notes, merged = merge_overlaps(pitched)
    if merged:
        dropped["overlaps_merged"] += merged
    # the most used program wins; ties go to the lowest program number
    program = min(notes_per_program, key=lambda p: (-notes_per_program[p], p), default=0)
    return Score(
        notes=notes,
        tempos=_clean_tempos(tempos),
        time_signatures=_clean_time_signatures(time_signatures),
        drums=sorted(drums, key=lambda n: (n.start, n.pitch)),
        program=program,
        dropped=dropped,
    )


def merge_overlaps(notes: Iterable[Note]) -> tuple[list[Note], int]:
    """Remove same-pitch overlaps; returns (notes sorted by (start, pitch), count).

    Two notes of one pitch starting together become one (the longer end, the louder
    velocity); a note still sounding when the next of its pitch starts is cut there.
    """
    by_pitch: dict[int, list[Note]] = {}
    for note in sorted(notes, key=lambda n: (n.pitch, n.start, n.end)):
        by_pitch.setdefault(note.pitch, []).append(note)
    out: list[Note] = []
    merged = 0
    for group in by_pitch.values():
        kept: list[Note] = []
        for note in group:
            if kept and note.start < kept[-1].end:
                prev = kept[-1]
                merged += 1
                if note.start == prev.start:
                    end, velocity = max(prev.end, note.end), max(prev.velocity, note.velocity)
                    kept[-1] = Note(prev.pitch, prev.start, end, velocity)
                    continue
                kept[-1] = Note(prev.pitch, prev.start, note.start, prev.velocity)
            kept.append(note)
        out.extend(kept)
    out.sort(key=lambda n: (n.start, n.pitch))
    return out, merged


def _clean_tempos(tempos: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, valid, one per time (the last wins), no repeats of the same bpm."""
    by_time: dict[float, float] = {}
    for q, bpm in sorted(tempos, key=lambda t: t[0]):
        if math.isfinite(q) and q >= 0 and math.isfinite(bpm) and bpm > 0:
            by_time[q] = bpm
    out: list[tuple[float, float]] = []
    for q, bpm in by_time.items():
        if not out or bpm != out[-1][1]:
            out.append((q, bpm))
    return out or [(0.0, 120.0)]


def _clean_time_signatures(signatures: list) -> list[tuple[float, int, int]]:
    """Sorted, valid, one per time (the last wins), no repeats."""
    by_time: dict[float, tuple[int, int]] = {}
    for q, num, den in sorted(signatures, key=lambda t: t[0]):
        if math.isfinite(q) and q >= 0 and num >= 1 and den >= 1:
            by_time[q] = (int(num), int(den))
    out: list[tuple[float, int, int]] = []
    for q, (num, den) in by_time.items():
        if not out or (num, den) != out[-1][1:]:
            out.append((q, num, den))
    return out or [(0.0, 4, 4)]


# ----------------------------------------------------------------------------- writing


def write_midi(
    score: Score,
    path: str | Path,
    track_name: str = "musicgen",
    program: int | None = None,
    melody: Score | list[Note] | None = None,
) -> None:
    """Write `score` as a DAW-ready type-1 MIDI file, atomically (`atomic.atomic_write`:
    temporary file, fsync, rename). The bytes are `midi_bytes`'s."""
    mid = _midi_file(score, track_name, program, melody)
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        mid.save(file=handle)


def midi_bytes(
    score: Score,
    track_name: str = "musicgen",
    program: int | None = None,
    melody: Score | list[Note] | None = None,
) -> bytes:
    """The bytes `write_midi` writes for these arguments.

    Track 0 holds tempo and time-signature events, track 1 (named `track_name`)
    the notes on channel 0 with `program` (default `score.program`); `melody`, if
    given, becomes track 2 "melody" on channel 1. Times become ticks as
    round(quarters * 480). Every track ends at round(score.length * 480) ticks
    (at least the last note when `score.end` is None); notes past `score.end` are
    cut there. The same input always gives the same bytes.
    """
    buffer = io.BytesIO()
    _midi_file(score, track_name, program, melody).save(file=buffer)
    return buffer.getvalue()


def to_pretty_midi(
    score: Score,
    track_name: str = "musicgen",
    program: int | None = None,
    melody: Score | list[Note] | None = None,
) -> Any:
    """A `pretty_midi.PrettyMIDI` read back from `midi_bytes(...)`: the same notes, to
    the tick, as the file `write_midi` would write with these arguments."""
    import pretty_midi

    return pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(score, track_name, program, melody)))


def _midi_file(
    score: Score,
    track_name: str,
    program: int | None,
    melody: Score | list[Note] | None,
) -> mido.MidiFile:
    """The mido file of `midi_bytes` (see there)."""
    melody_notes = list(melody.notes if isinstance(melody, Score) else melody or [])
    end_tick = _ticks(score.length)
    if score.end is None:
        end_tick = max([end_tick] + [_ticks(n.end) for n in melody_notes])
    program = score.program if program is None else program
    if not 0 <= program <= 127:
        raise ValueError(f"program {program} outside 0..127")

    mid = mido.MidiFile(type=1, ticks_per_beat=WRITE_TPQ)
    mid.tracks.append(_conductor_track(score, end_tick))
    mid.tracks.append(_note_track(score.notes, track_name, program, 0, end_tick))
    if melody is not None:
        melody_program = melody.program if isinstance(melody, Score) else program
        mid.tracks.append(_note_track(melody_notes, "melody", melody_program, 1, end_tick))
    return mid


def _ticks(quarters: float) -> int:
    return int(round(quarters * WRITE_TPQ))


def _conductor_track(score: Score, end_tick: int) -> mido.MidiTrack:
    """Tempo and time-signature events (the first at tick 0), then end_of_track."""
    events: list[tuple[int, int, mido.MetaMessage]] = []
    for q, bpm in score.tempos:
        tick = _ticks(q)
        if tick == 0 or tick < end_tick:
            microseconds = min(max(int(round(60_000_000 / bpm)), 1), 0xFFFFFF)
            events.append((tick, 0, mido.MetaMessage("set_tempo", tempo=microseconds)))
    for q, num, den in score.time_signatures:
        tick = _ticks(q)
        if (tick == 0 or tick < end_tick) and den > 0 and den & (den - 1) == 0 and num <= 255:
            message = mido.MetaMessage("time_signature", numerator=num, denominator=den)
            events.append((tick, 1, message))
    if not any(t == 0 and order == 1 for t, order, _ in events):  # an unwritable first metre
        events.append((0, 1, mido.MetaMessage("time_signature", numerator=4, denominator=4)))
    # one event per kind and tick: the last given wins (stable sort keeps input order)
    last: dict[tuple[int, int], mido.MetaMessage] = {}
    for tick, order, message in sorted(events, key=lambda e: (e[0], e[1])):
        last[(tick, order)] = message
    timed = [(tick, message) for (tick, _), message in sorted(last.items())]
    track = mido.MidiTrack([mido.MetaMessage("track_name", name="conductor", time=0)])
    return _append_timed(track, timed, end_tick)


def _note_track(
    notes: list[Note], name: str, program: int, channel: int, end_tick: int
) -> mido.MidiTrack:
    """A named track: program change at 0, then the notes (offs before ons per tick)."""
    events: list[tuple[int, int, int, mido.Message]] = []
    for pitch, start, end, velocity in _clean_ticks(notes, end_tick):
        on = mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)
        off = mido.Message("note_off", channel=channel, note=pitch, velocity=0)
        events.append((start, 1, pitch, on))
        events.append((end, 0, pitch, off))
    events.sort(key=lambda e: e[:3])
    track = mido.MidiTrack(
        [
            mido.MetaMessage("track_name", name=name, time=0),
            mido.Message("program_change", channel=channel, program=program, time=0),
        ]
    )
    return _append_timed(track, [(tick, message) for tick, _, _, message in events], end_tick)


def _clean_ticks(notes: list[Note], end_tick: int) -> list[tuple[int, int, int, int]]:
    """Notes as (pitch, start, end, velocity) ticks: cut at end_tick, none of zero
    length, no same-pitch overlaps (the earlier note is cut at the re-attack)."""
    by_pitch: dict[int, list[list[int]]] = {}
    for n in notes:
        start, end = _ticks(n.start), min(_ticks(n.end), end_tick)
        if end > start:
            by_pitch.setdefault(n.pitch, []).append([start, end, n.velocity])
    out: list[tuple[int, int, int, int]] = []
    for pitch, group in by_pitch.items():
        group.sort()
        kept: list[list[int]] = []
        for note in group:
            if kept and note[0] < kept[-1][1]:
                if note[0] == kept[-1][0]:  # same onset: keep one, the longer
                    kept[-1][1] = max(kept[-1][1], note[1])
                    kept[-1][2] = max(kept[-1][2], note[2])
                    continue
                kept[-1][1] = note[0]
            kept.append(note)
        out.extend((pitch, s, e, min(max(v, 1), 127)) for s, e, v in kept)
    return out


def _append_timed(
    track: mido.MidiTrack, timed: list[tuple[int, mido.Message]], end_tick: int
) -> mido.MidiTrack:
    """Append (absolute tick, message) pairs as delta times, then end_of_track."""
    now = 0
    for tick, message in timed:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(end_tick - now, 0)))
    return track
