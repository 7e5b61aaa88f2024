"""Files <-> `Score`: the only module that imports pretty_midi, mido and music21.

Reading: `read_pieces` picks a reader by file suffix. MIDI files go through
pretty_midi (every instrument, any tick resolution, the tempo and time-signature
maps) and hold one piece; the score formats (MusicXML, kern, ABC) go through
music21, and a collection (an ABC file of many tunes, which music21 reads as an
Opus) gives one piece per tune. `read_score` is the first piece. Both readers
produce raw notes in quarter notes, each tagged with its part, and `_finish_score`
applies the same clean-up to either: zero-length notes dropped, same-pitch overlaps
merged, each loss counted in `Score.dropped`. Before pretty_midi sees a MIDI file,
its events are counted in the raw bytes (a huge file is refused before mido builds
an object per event), notes never closed are closed at the end of their track, and a
track of several channels (a type-0 file) is split into one track per channel.
Anything unreadable raises `UnreadableFileError`, anything without pitched notes
`EmptyMusicError` (drums alone are a piece with `allow_drums_only`), each with a
one-line reason.

A piece is its parts, `Score.parts`, in file order: one per pretty_midi instrument
(its track, channel and program; channel 10 is the drum kit, `DRUM_PROGRAM`) or
music21 part (its instrument's program, its name); empty ones left out, all drum
parts merged into one, at most `MAX_PARTS` (the smallest parts of the most crowded
instrument family merge first), each merge counted. `Score.notes` (every pitched note,
overlaps merged across parts) and `Score.drums` are views of them.

Writing: `write_midi` writes what a DAW expects (SPEC.md "Output MIDI", "Arrangements
in the output"), every byte encoded here as mido's `MidiFile.save` would write it (mido
is imported only to read), so every byte is under our control: type 1, 480
ticks per quarter, a conductor track, then one named track per part (pitched parts
on channels of their own, the drum kit on channel 10; a one-stream piece's part named
as the caller says); deterministic bytes, atomic replace; `midi_bytes`
gives those bytes and `to_pretty_midi` a `PrettyMIDI` read back from them.
"""

from __future__ import annotations

import heapq
import io
import itertools
import math
import struct
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import mido

from musicgen.atomic import atomic_write
from musicgen.instruments import family, track_names
from musicgen.score import (
    DRUM_PROGRAM,
    EmptyMusicError,
    Note,
    Part,
    Score,
    UnreadableFileError,
    merge_overlaps,
)

MIDI_SUFFIXES = frozenset({".mid", ".midi"})
MUSIC21_SUFFIXES = frozenset({".mxl", ".musicxml", ".xml", ".krn", ".abc"})
SUPPORTED_SUFFIXES = MIDI_SUFFIXES | MUSIC21_SUFFIXES  # lower case; compare suffix.lower()

MAX_NOTES = 200_000  # more notes than this in one file is treated as unreadable
MAX_FILE_BYTES = 8 * 1024 * 1024  # larger files are refused before parsing (memory)
MAX_EVENTS = 4 * MAX_NOTES  # more MIDI events are refused before mido builds them (memory)
WRITE_TPQ = 480  # ticks per quarter of every file we write
DEFAULT_VELOCITY = 64  # for score formats that carry no velocity
MAX_PARTS = 16  # parts a piece keeps; beyond that the smallest of one family merge
MAX_PITCHED_PARTS = 15  # MIDI has 15 channels besides the drums' channel 10
DRUM_CHANNEL = 9  # General MIDI channel 10, counted from 0
PITCHED_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)

# (pitch, start, end, velocity, is_drum, part): times in quarters; is_drum as the
# `dropped` counts see it (a MIDI drum channel; never for the score formats); part: an
# index into the piece's `RawPiece.parts`
RawNote = tuple[int, float, float, int, bool, int]

# Extended-kit drum notes outside General MIDI's kit (35-81) -> their GM equivalent:
# electronic kits (Roland TD-11, as in the Groove dataset) send the hi-hat's edge on
# 22 (closed) and 26 (open). Mapped when a file is read, counted in `dropped` as
# `drum_notes_mapped_to_gm_kit` (kept, changed).
GM_KIT_EQUIVALENT = {22: 42, 26: 46}


class RawPiece(NamedTuple):
    """What a reader gives per piece, before `_finish_score` cleans it."""

    notes: list[RawNote]
    parts: list[tuple[int, str]]  # (program 0..127 or DRUM_PROGRAM, name) per part
    tempos: list[tuple[float, float]]  # (quarters, bpm)
    time_signatures: list[tuple[float, int, int]]  # (quarters, numerator, denominator)
    changes: Counter[str]  # what the reader changed on the way
    key_signatures: tuple[tuple[float, int], ...] = ()  # (quarters, key number 0..23)


# ----------------------------------------------------------------------------- reading


def read_score(
    path: str | Path, include_drums: bool = False, *, allow_drums_only: bool = False
) -> Score:
    """Read a MIDI or score file into a `Score` (times in quarter notes): the file's
    first piece when it holds several (see `read_pieces`).

    include_drums: the drums are to be encoded in the one stream too
    (`Score.merged(drums=True)`): only what `dropped` counts changes (see
    `_finish_score`); `Score.parts` keeps the drum part apart either way.
    allow_drums_only: a piece whose only notes are drums is a Score (no `notes`)
    instead of EmptyMusicError("drums only").
    Raises UnreadableFileError (not parseable, unsupported type, absurd size) or
    EmptyMusicError ("no notes", "drums only").
    """
    return read_pieces(path, include_drums, allow_drums_only=allow_drums_only)[0]


def read_pieces(
    path: str | Path, include_drums: bool = False, *, allow_drums_only: bool = False
) -> list[Score]:
    """Every piece of a MIDI or score file, in file order: one for a MIDI file or a
    single score; one per tune of a collection (e.g. an ABC file with many X: tunes).
    Pieces without pitched notes (without any notes, with allow_drums_only) are left
    out and counted in the first piece's `dropped["empty_pieces"]`. Raises as
    `read_score`; EmptyMusicError when no piece is left."""
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
    for piece in pieces:
        try:
            score = _finish_score(piece, include_drums, allow_drums_only)
        except EmptyMusicError as exc:
            empty.append(exc)
            continue
        score.dropped.update(piece.changes)
        scores.append(score)
    if not scores:
        raise empty[0] if len(empty) == 1 else EmptyMusicError("no notes in any piece")
    if empty:
        scores[0].dropped["empty_pieces"] += len(empty)
    return scores


def _read_midi(path: Path) -> list[RawPiece]:
    """pretty_midi -> one piece (notes never closed are closed at the end of their
    track). A part per pretty_midi instrument with notes: pretty_midi tells them apart
    by track, channel and program, so a type-0 file splits by channel and a program
    change in mid-track starts a new part; channel 10 is the drum kit. Parts come in
    (track, channel) order, and by first note-off within one channel."""
    import pretty_midi

    try:
        data = path.read_bytes()
    except Exception as exc:
        raise UnreadableFileError(f"not a readable MIDI file ({_reason(exc)})") from None
    mid = _parse_midi(data)
    if mid.ticks_per_beat <= 0:
        raise UnreadableFileError("SMPTE time division is not supported")
    if not mid.tracks:
        raise UnreadableFileError("MIDI file has no tracks")
    if any(m.type == "set_tempo" and m.tempo == 0 for track in mid.tracks for m in track):
        raise UnreadableFileError("a tempo of 0 microseconds per quarter")
    changes = _close_open_notes(mid)
    _split_channels(mid)
    try:
        pm = pretty_midi.PrettyMIDI(mido_object=mid)
    except Exception as exc:
        raise UnreadableFileError(f"not a readable MIDI file ({_reason(exc)})") from None

    to_quarters = _seconds_to_quarters(pm)
    count = sum(len(inst.notes) for inst in pm.instruments)
    if count > MAX_NOTES:
        raise UnreadableFileError(f"too many notes ({count} > {MAX_NOTES})")
    raw: list[RawNote] = []
    parts: list[tuple[int, str]] = []
    for inst in pm.instruments:
        if not inst.notes:
            continue
        times = np.array([(n.start, n.end) for n in inst.notes], dtype=np.float64)
        quarters = to_quarters(times)
        program, is_drum, part = int(inst.program), bool(inst.is_drum), len(parts)
        parts.append((DRUM_PROGRAM if is_drum else program, (inst.name or "").strip()))
        for note, (start, end) in zip(inst.notes, quarters.tolist(), strict=True):
            pitch, velocity = int(note.pitch), int(note.velocity)
            if is_drum and pitch in GM_KIT_EQUIVALENT:
                pitch = GM_KIT_EQUIVALENT[pitch]
                changes["drum_notes_mapped_to_gm_kit"] += 1
            raw.append((pitch, start, end, velocity, is_drum, part))

    change_times, bpms = pm.get_tempo_changes()
    # the file stores whole microseconds per quarter: undo pretty_midi's float noise
    bpms = [60e6 / round(60e6 / bpm) for bpm in bpms]
    tempos = [(float(q), b) for q, b in zip(to_quarters(change_times).tolist(), bpms, strict=True)]
    signatures = [
        (float(to_quarters(np.array([ts.time]))[0]), ts.numerator, ts.denominator)
        for ts in pm.time_signature_changes
    ]
    keys = tuple(
        (float(to_quarters(np.array([ks.time]))[0]), int(ks.key_number))
        for ks in pm.key_signature_changes
    )
    return [RawPiece(raw, parts, tempos, signatures, changes, keys)]


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
    import mido  # here, not at the top: writing needs none of it (~40 ms to import)

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


def _split_channels(mid: mido.MidiFile) -> None:
    """Give every channel with notes of a track a track of its own, in channel order,
    so that pretty_midi's instruments come in (track, channel) order. The file becomes
    type 1 (pretty_midi reads tempos from the first track, which keeps them)."""
    tracks = []
    for track in mid.tracks:
        channels = sorted({m.channel for m in track if m.type == "note_on"})
        tracks.extend(_track_per_channel(track, channels) if len(channels) > 1 else [track])
    if mid.type == 0 and len(tracks) > 1:
        mid.type = 1
    mid.tracks[:] = tracks


def _track_per_channel(track: mido.MidiTrack, channels: list[int]) -> list[mido.MidiTrack]:
    """One track per channel given (sorted): the first keeps the meta events and the
    other channels' messages, each of the rest starts with a copy of the track's name.
    Messages are moved, not copied (speed); every track ends where `track` did."""
    import mido

    first, names = channels[0], [m for m in track if m.type == "track_name"][:1]
    timed = {c: [] if c == first else [(0, m.copy()) for m in names] for c in channels}
    now = 0
    for message in track:
        now += message.time
        if message.type != "end_of_track":
            channel = getattr(message, "channel", first)
            timed[channel if channel in timed else first].append((now, message))
    out = []
    for channel in channels:
        piece, last = mido.MidiTrack(), 0
        for tick, message in timed[channel]:
            message.time, last = tick - last, tick
            piece.append(message)
        piece.append(mido.MetaMessage("end_of_track", time=now - last))
        out.append(piece)
    return out


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


def _read_music21(path: Path) -> list[RawPiece]:
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
            notes += len(piece.notes)
            pieces.append(piece)
    except (UnreadableFileError, EmptyMusicError):
        raise
    except Exception as exc:  # music21 raises anything from its many sub-parsers
        raise UnreadableFileError(f"not readable as a score ({_reason(exc)})") from None
    if not pieces:
        raise EmptyMusicError("no notes")
    return pieces


def _music21_piece(parsed, max_notes: int) -> RawPiece:
    """One music21 score -> a piece with a part per music21 part (no changes);
    UnreadableFileError past `max_notes` notes. The parts carry their programs
    (`_music21_part_info`); `dropped` counts no note as a drum note."""
    from music21 import key, meter, note, tempo

    parsed = parsed.stripTies()
    parts = list(getattr(parsed, "parts", [])) or [parsed]
    shift = _pickup(parts[0])
    raw: list[RawNote] = []
    infos = [_music21_part_info(part) for part in parts]
    for index, part in enumerate(parts):
        for element in part.flatten().notes:
            if len(raw) > max_notes:
                raise UnreadableFileError(f"too many notes (more than {MAX_NOTES})")
            start = float(element.offset) + shift
            end = start + float(element.quarterLength)
            velocity = element.volume.velocity if element.volume is not None else None
            velocity = int(velocity) if velocity else DEFAULT_VELOCITY
            pitches = element.pitches if not isinstance(element, note.Unpitched) else ()
            for pitch in pitches:
                raw.append((int(pitch.midi), start, end, velocity, False, index))
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
    keys = tuple(
        (float(ks.offset) + shift if ks.offset else 0.0, _key_number(ks))
        for ks in flat.getElementsByClass(key.KeySignature)
    )
    return RawPiece(raw, infos, tempos, signatures, Counter(), keys)


def _key_number(signature) -> int:
    """A music21 KeySignature (or Key) as a MIDI key number: the tonic's pitch class,
    plus 12 for minor; a bare signature of sharps or flats reads as its major key."""
    from music21 import key

    found = signature if isinstance(signature, key.Key) else signature.asKey("major")
    return found.tonic.pitchClass + (12 if found.mode == "minor" else 0)


def _music21_part_info(part) -> tuple[int, str]:
    """(program, name) of a music21 part: the instrument's MIDI program (0 when it
    has none), DRUM_PROGRAM for unpitched percussion; the part's name or ""."""
    from music21 import instrument, note

    inst = part.getInstrument(returnDefault=False)
    unpitched = isinstance(inst, instrument.UnpitchedPercussion) or any(
        isinstance(element, note.Unpitched) for element in part.recurse().notes
    )
    program = getattr(inst, "midiProgram", None)
    if unpitched:
        program = DRUM_PROGRAM
    elif program is None or not 0 <= program <= 127:
        program = 0
    return int(program), str(getattr(part, "partName", None) or "").strip()


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


def _finish_score(piece: RawPiece, include_drums: bool, allow_drums_only: bool) -> Score:
    """Clean a raw piece (zero-length and invalid notes dropped, same-pitch overlaps
    merged) into a Score of its parts. `include_drums` (the drums are to be encoded
    in the one stream too) only changes what `dropped` counts: drum notes are not
    `drum_notes`, and their overlaps with pitched notes count as `overlaps_merged`."""
    dropped: Counter[str] = Counter()
    pitched: list[Note] = []
    drums = 0
    by_part: list[list[Note]] = [[] for _ in piece.parts]
    for pitch, start, end, velocity, is_drum, part in piece.notes:
        if not (0 <= pitch <= 127 and math.isfinite(start) and math.isfinite(end)):
            dropped["invalid_notes"] += 1
            continue
        if end <= start or start < 0:
            dropped["zero_length_notes"] += 1
            continue
        note = Note(pitch, start, end, min(max(int(velocity), 1), 127))
        by_part[part].append(note)
        if is_drum and not include_drums:
            drums += 1
        else:
            pitched.append(note)
    if drums:
        dropped["drum_notes"] += drums
    if not pitched and not (drums and allow_drums_only):
        raise EmptyMusicError("drums only" if drums else "no notes")
    merged = merge_overlaps(pitched)[1]
    if merged:
        dropped["overlaps_merged"] += merged
    parts = [Part(p, ns, name) for (p, name), ns in zip(piece.parts, by_part, strict=True) if ns]
    return Score(
        parts=_tidy_parts(parts, dropped, count_drum_overlaps=bool(drums)),
        tempos=_clean_tempos(piece.tempos),
        time_signatures=_clean_time_signatures(piece.time_signatures),
        key_signatures=_clean_key_signatures(piece.key_signatures),
        dropped=dropped,
    )


def _tidy_parts(parts: list[Part], dropped: Counter[str], count_drum_overlaps: bool) -> list[Part]:
    """Parts with notes, in file order: the drum parts merged into one, at most
    MAX_PARTS (MAX_PITCHED_PARTS pitched), each part's same-pitch overlaps merged.

    Counts parts merged away (`drum_parts_merged`, `parts_merged`) in `dropped`, and
    the drum part's overlaps (`drum_overlaps_merged`) when count_drum_overlaps (a
    pitched part's overlaps are counted over all pitched notes, as overlaps_merged)."""
    parts = _merge_drum_parts(parts, dropped)
    parts = _limit_parts(parts, dropped)
    out = []
    for part in parts:
        notes, merged = merge_overlaps(part.notes)
        if part.is_drum and count_drum_overlaps and merged:
            dropped["drum_overlaps_merged"] += merged
        out.append(Part(part.program, notes, part.name))
    return out


def _merge_drum_parts(parts: list[Part], dropped: Counter[str]) -> list[Part]:
    """All drum parts as one, where the first was (named as the first named one)."""
    drums = [part for part in parts if part.is_drum]
    if len(drums) < 2:
        return parts
    dropped["drum_parts_merged"] += len(drums) - 1
    name = next((part.name for part in drums if part.name), "")
    kit = Part(DRUM_PROGRAM, [n for part in drums for n in part.notes], name)
    first = next(i for i, part in enumerate(parts) if part.is_drum)
    return [kit if i == first else p for i, p in enumerate(parts) if not p.is_drum or i == first]


def _limit_parts(parts: list[Part], dropped: Counter[str]) -> list[Part]:
    """At most MAX_PARTS parts, MAX_PITCHED_PARTS of them pitched (one drum part at
    most is expected). While there are more, the two smallest pitched parts (fewest
    notes; of equal ones, the later) of the family with the most parts merge; once
    no family has two, the two smallest of any family. The larger keeps its place,
    program and name (of equal ones, the earlier). Counts `parts_merged`."""
    alive = {i: Part(p.program, list(p.notes), p.name) for i, p in enumerate(parts)}
    pitched = sum(not p.is_drum for p in parts)

    def too_many() -> bool:
        return len(alive) > MAX_PARTS or pitched > MAX_PITCHED_PARTS

    def merge(small: int, large: int) -> None:
        nonlocal pitched
        alive[large].notes.extend(alive.pop(small).notes)
        pitched -= 1
        dropped["parts_merged"] += 1

    heaps: dict[str, list[tuple[int, int]]] = {}  # family -> [(notes, -place)]
    for i, part in alive.items():
        if not part.is_drum:
            heaps.setdefault(family(part.program), []).append((len(part.notes), -i))
    for heap in heaps.values():
        heapq.heapify(heap)
    while too_many() and heaps and max(len(h) for h in heaps.values()) > 1:
        crowd = max(heaps.values(), key=len)  # of equal families, the first in file order
        (_, small), (_, large) = heapq.heappop(crowd), heapq.heappop(crowd)
        merge(-small, -large)
        heapq.heappush(crowd, (len(alive[-large].notes), large))
    while too_many():  # every family has one part left
        small, large = sorted(
            (i for i, p in alive.items() if not p.is_drum), key=lambda i: (len(alive[i].notes), -i)
        )[:2]
        merge(small, large)
    return [alive[i] for i in sorted(alive)]


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


def _clean_key_signatures(keys) -> list[tuple[float, int]]:
    """Sorted, valid (0..23), one per time (the last wins), no repeats."""
    by_time: dict[float, int] = {}
    for q, number in sorted(keys, key=lambda k: k[0]):
        if math.isfinite(q) and q >= 0 and 0 <= number < 24:
            by_time[q] = int(number)
    out: list[tuple[float, int]] = []
    for q, number in by_time.items():
        if not out or number != out[-1][1]:
            out.append((q, number))
    return out


# ----------------------------------------------------------------------------- writing

# a MIDI key number (0..11 major, 12..23 minor on tonic n - 12) as mido names it
KEY_NAMES = (
    *("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    *("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm"),
)
# the key signature's sharps (+) or flats (-) of each KEY_NAMES entry
KEY_SHARPS = (0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5, -3, 4, -1, -6, 1, -4, 3, -2, 5, 0, -5, 2)


def write_midi(
    score: Score,
    path: str | Path,
    track_name: str = "musicgen",
    program: int | None = None,
    melody: Score | list[Note] | None = None,
) -> None:
    """Write `score` as a DAW-ready type-1 MIDI file, atomically (`atomic.atomic_write`:
    temporary file, fsync, rename). The bytes are `midi_bytes`'s."""
    data = midi_bytes(score, track_name, program, melody)
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def midi_bytes(
    score: Score,
    track_name: str = "musicgen",
    program: int | None = None,
    melody: Score | list[Note] | None = None,
) -> bytes:
    """The bytes `write_midi` writes for these arguments.

    Track 0 holds tempo and time-signature events; one track per part follows, in
    order (see `_part_tracks`). The pitched part of a one-stream piece (`Score.of`,
    whose name is None) is named `track_name` and played with `program` (default its
    own); the other parts are written as they are. `melody`, if given, becomes one
    more track "melody" on the next free channel, with its own program (a Score's) or
    `program` (default `score.program`). Times become ticks as
    round(quarters * 480). Every track ends at round(score.length * 480) ticks (at
    least the last note when `score.end` is None); notes past `score.end` are cut
    there. The same input always gives the same bytes, encoded here as mido's
    `MidiFile.save` writes them (header chunk, then each track with running status).
    """
    melody_notes = list(melody.notes if isinstance(melody, Score) else melody or [])
    end_tick = _ticks(score.length)
    if score.end is None:
        end_tick = max([end_tick] + [_ticks(n.end) for n in melody_notes])
    if program is not None and not 0 <= program <= 127:
        raise ValueError(f"program {program} outside 0..127")
    parts = [_stream_track(part, track_name, program) for part in score.parts]
    if melody is not None:
        melody_program = score.program if program is None else program
        if isinstance(melody, Score):
            melody_program = melody.program
        parts.append(Part(melody_program, melody_notes, "melody"))
    tracks = [_conductor_track(score, end_tick), *_part_tracks(parts, end_tick)]
    header = struct.pack(">hhh", 1, len(tracks), WRITE_TPQ)
    return b"".join([_chunk(b"MThd", header), *tracks])


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


def _chunk(kind: bytes, data: bytes | bytearray) -> bytes:
    """A MIDI chunk: its 4-byte kind, big-endian length, data."""
    return kind + struct.pack(">I", len(data)) + bytes(data)


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity (delta times): 7 bits a byte, high bit set on
    every byte but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _track_chunk(
    head: list[tuple[int, bytes]],
    notes: Sequence[tuple[int, int, int, int]] = (),
    end: int = 0,
) -> bytes:
    """One MTrk chunk as mido's `MidiFile.save` writes it: the `head` events (delta
    ticks, a meta event's or a channel message's bytes), then `notes` as channel
    messages (delta ticks, status, note, velocity), with running status, then
    end_of_track `end` ticks after the last."""
    data = bytearray()
    running = None
    for delta, event in head:
        data += _varlen(delta)
        data += event[1:] if event[0] == running else event
        running = event[0] if event[0] < 0xF0 else None
    for delta, status, note, velocity in notes:
        data += _varlen(delta)
        if status != running:
            data.append(status)
            running = status
        data.append(note)
        data.append(velocity)
    data += _varlen(end) + b"\xff\x2f\x00"  # end_of_track
    return _chunk(b"MTrk", data)


def _stream_track(part: Part, track_name: str, program: int | None) -> Part:
    """The pitched part of a one-stream piece (name None) as the track `track_name`
    with `program` (None: its own); any other part as it is."""
    if part.name is not None or part.is_drum:
        return part
    return Part(part.program if program is None else program, part.notes, track_name)


def _part_tracks(parts: list[Part], end_tick: int) -> list[bytes]:
    """One track per part, in order: named part.name or, when it has none, by
    `instruments.track_names`; a drum part on channel 10 (9 from zero) with program
    0, pitched parts on channels 0..8, 10..15 in order, each with its program."""
    default_names = track_names([part.program for part in parts])
    channels = _part_channels(parts)
    return [
        _note_track(
            part.notes,
            part.name or default_names[i],
            0 if part.is_drum else part.program,
            channels[i],
            end_tick,
        )
        for i, part in enumerate(parts)
    ]


def _part_channels(parts: list[Part]) -> list[int]:
    """A MIDI channel per part: DRUM_CHANNEL for drums, the free pitched channels in
    order for the rest. Past 15 pitched parts (never from `read_pieces`), a part
    shares the channel of the first part with its program, else the last channel."""
    channels: list[int] = []
    by_program: dict[int, int] = {}
    free = iter(PITCHED_CHANNELS)
    for part in parts:
        if part.is_drum:
            channels.append(DRUM_CHANNEL)
            continue
        channel = next(free, None)
        if channel is None:
            channel = by_program.get(part.program, PITCHED_CHANNELS[-1])
        by_program.setdefault(part.program, channel)
        channels.append(channel)
    return channels


def _ticks(quarters: float) -> int:
    return int(round(quarters * WRITE_TPQ))


def _conductor_track(score: Score, end_tick: int) -> bytes:
    """The chunk of tempo and time-signature events (the first at tick 0), the key
    signatures, then end_of_track."""
    events: list[tuple[int, int, bytes]] = []  # (tick, kind order, meta event bytes)
    for q, bpm in score.tempos:
        tick = _ticks(q)
        if tick == 0 or tick < end_tick:
            microseconds = min(max(int(round(60_000_000 / bpm)), 1), 0xFFFFFF)
            events.append((tick, 0, _meta(0x51, microseconds.to_bytes(3, "big"))))
    for q, num, den in score.time_signatures:
        tick = _ticks(q)
        if (tick == 0 or tick < end_tick) and den > 0 and den & (den - 1) == 0 and num <= 255:
            events.append((tick, 1, _time_signature(num, den)))
    if not any(t == 0 and order == 1 for t, order, _ in events):  # an unwritable first metre
        events.append((0, 1, _time_signature(4, 4)))
    for q, number in score.key_signatures:
        tick = _ticks(q)
        if tick == 0 or tick < end_tick:
            sharps, minor = KEY_SHARPS[number], int(number >= 12)
            events.append((tick, 2, _meta(0x59, bytes([sharps & 0xFF, minor]))))
    # one event per kind and tick: the last given wins (stable sort keeps input order)
    last: dict[tuple[int, int], bytes] = {}
    for tick, order, event in sorted(events, key=lambda e: (e[0], e[1])):
        last[(tick, order)] = event
    head = [(0, _meta(0x03, b"conductor"))]  # its name
    now = 0
    for (tick, _), event in sorted(last.items()):
        head.append((tick - now, event))
        now = tick
    return _track_chunk(head, end=max(end_tick - now, 0))


def _meta(kind: int, payload: bytes) -> bytes:
    """A meta event's bytes (after its delta time): 0xFF, kind, length, payload."""
    return bytes([0xFF, kind]) + _varlen(len(payload)) + payload


def _time_signature(numerator: int, denominator: int) -> bytes:
    """A time-signature meta event as mido writes it (24 clocks per click, 8 notated
    32nd notes per beat); the denominator a power of 2."""
    return _meta(0x58, bytes([numerator, denominator.bit_length() - 1, 24, 8]))


def _note_track(notes: list[Note], name: str, program: int, channel: int, end_tick: int) -> bytes:
    """A named track's chunk: program change at 0, then the notes (offs before ons per
    tick; a note-off has velocity 0).

    The note events are encoded directly (`_track_chunk`): every value is known to be
    in range (a `Note` checks its pitch and velocity, the channel is ours), and making
    and checking a mido message per note was most of a generated file's write time.
    """
    events: list[tuple[int, int, int, int]] = []  # (tick, 0 off / 1 on, pitch, velocity)
    for pitch, start, end, velocity in _clean_ticks(notes, end_tick):
        events.append((start, 1, pitch, velocity))
        events.append((end, 0, pitch, 0))
    events.sort()  # one note per pitch at a time, so (tick, on, pitch) is never repeated
    head = [(0, _meta(0x03, name.encode("latin-1"))), (0, bytes([0xC0 | channel, program]))]
    status = (0x80 | channel, 0x90 | channel)  # note_off, note_on
    raw, now = [], 0
    for tick, on, pitch, velocity in events:
        raw.append((tick - now, status[on], pitch, velocity))
        now = tick
    return _track_chunk(head, raw, max(end_tick - now, 0))


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
        out.extend((int(pitch), s, e, min(max(int(v), 1), 127)) for s, e, v in kept)
    return out


def _parse_midi(data: bytes) -> mido.MidiFile:
    """`data` parsed by mido, refused before parsing when it holds over MAX_EVENTS events;
    UnreadableFileError with a one-line reason for anything mido cannot read."""
    import mido

    try:
        if count_midi_events(data, MAX_EVENTS) > MAX_EVENTS:
            raise UnreadableFileError(f"too many events (more than {MAX_EVENTS})")
        return mido.MidiFile(file=io.BytesIO(data))
    except UnreadableFileError:
        raise
    except Exception as exc:  # mido raises many types on corrupt data
        raise UnreadableFileError(f"not a readable MIDI file ({_reason(exc)})") from None


def with_silence_after(data: bytes, seconds: float) -> bytes:
    """The MIDI file `data` lasting `seconds` longer: the end-of-track of its longest
    track moves later by that many seconds at the tempo in force at the end, so that a
    synthesizer which stops at the file's end lets the last notes ring out.

    The file is checked as `read_score` checks one (size, tracks, tick resolution,
    tempo); UnreadableFileError with a one-line reason when it is not a usable MIDI file.
    """
    import mido

    mid = _parse_midi(data)
    if mid.ticks_per_beat <= 0 or not mid.tracks or mid.type == 2:
        raise UnreadableFileError("not a playable MIDI file (no tracks, type 2 or SMPTE time)")
    ends = [sum(m.time for m in track) for track in mid.tracks]
    tempos = sorted(
        (tick, m.tempo)
        for track in mid.tracks
        for tick, m in zip(itertools.accumulate(m.time for m in track), track, strict=True)
        if m.type == "set_tempo"
    )
    tempo = tempos[-1][1] if tempos else 500_000  # microseconds per quarter (120 bpm)
    if tempo <= 0:
        raise UnreadableFileError("a tempo of 0 microseconds per quarter")
    longest = mid.tracks[ends.index(max(ends))]
    pad = round(seconds * 1e6 / tempo * mid.ticks_per_beat)
    if not longest or longest[-1].type != "end_of_track":
        longest.append(mido.MetaMessage("end_of_track", time=0))
    longest[-1] = longest[-1].copy(time=longest[-1].time + pad)
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()
