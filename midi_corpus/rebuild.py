"""Rebuild midi_corpus/ from the Bach chorales that ship inside music21 (no network).

    python midi_corpus/rebuild.py            # all cores; rewrites every bwv*.mid here

Each chorale (MusicXML in music21's corpus, `corpus.getComposer("bach")`) becomes one
type-1 MIDI file named after its corpus entry (`bwv1.6.mxl` -> `bwv1.6.mid`):

- track 0: tempo (the score's metronome mark, else DEFAULT_BPM), every time-signature
  and key-signature change; tracks 1-4: Soprano, Alto, Tenor, Bass, one channel each.
- Only the four vocal parts are kept (cantata chorales also carry instrument parts);
  entries without four vocal parts (e.g. the Well-Tempered Clavier prelude bwv846) are
  skipped and counted. Repeats are written out when music21 can expand them.
- Bar lines stay on the beat grid: a chorale that starts with a pickup (anacrusis) is
  shifted right by the pickup bar's missing part, so the pickup ends a full first bar
  and the first downbeat falls on bar 2's line; whole silent bars at the start (an
  instrumental introduction whose parts were dropped) are removed, and the piece is
  padded to end on a bar line.
- Humdrum (.krn) encodings are left out: their header reserves the rights to derived
  electronic formats (see README.md).

The output is deterministic (same music21 version -> same bytes), so a rebuild shows
up in `git diff` only when something really changed.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from fractions import Fraction
from pathlib import Path

import mido

HERE = Path(__file__).resolve().parent
TPQ = 480  # ticks per quarter note
DEFAULT_BPM = 80  # the chorales carry no metronome mark; a calm singing tempo
VELOCITY = 80
VOICES = ("soprano", "alto", "tenor", "bass")
PROGRAM = 52  # General MIDI "Choir Aahs" (a DAW shows the four voices as a choir)
SOURCE_SUFFIXES = (".mxl", ".xml")  # .krn left out on purpose (licence, see README)
# mido key names by number of sharps (-7..7)
KEYS_MAJOR = "Cb Gb Db Ab Eb Bb F C G D A E B F# C#".split()
KEYS_MINOR = "Abm Ebm Bbm Fm Cm Gm Dm Am Em Bm F#m C#m G#m D#m A#m".split()


class Skip(Exception):
    """This corpus entry is not a four-voice chorale we can export."""


def sources() -> list[Path]:
    """The Bach corpus files to export, sorted by name."""
    from music21 import corpus

    found = [Path(p) for p in corpus.getComposer("bach")]
    return sorted((p for p in found if p.suffix.lower() in SOURCE_SUFFIXES), key=lambda p: p.name)


def export(source: Path) -> tuple[str, bytes | None, str]:
    """Parse one chorale and return (output name, MIDI bytes or None, note or skip reason)."""
    name = source.stem + ".mid"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return name, _export(source), ""
    except Skip as exc:
        return name, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad entry must not stop the rebuild
        return name, None, f"{type(exc).__name__}: {exc}".splitlines()[0][:120]


def _export(source: Path) -> bytes:
    from music21 import converter

    score = converter.parse(str(source))
    try:
        score = score.expandRepeats()
    except Exception:  # noqa: BLE001 - unexpandable repeat marks: keep them as written
        pass
    parts = _vocal_parts(score)
    shift = _pickup_shift(parts[0])
    voices = [_notes(part, shift) for part in parts]
    if not any(voices):
        raise Skip("no notes")
    signatures = _time_signatures(parts[0], shift)
    bar = signatures[0][1] * 4 / signatures[0][2]
    first = min(start for notes in voices for _, start, _ in notes)
    # drop whole silent bars at the start (only inside the first metre)
    drop = math.floor(first / bar) * bar if all(q == 0 for q, *_ in signatures[:1]) else 0
    if len(signatures) > 1 and signatures[1][0] <= drop:
        drop = 0
    voices = [[(p, s - drop, e - drop) for p, s, e in notes] for notes in voices]
    signatures = [(max(q - drop, 0), n, d) for q, n, d in signatures]
    end = max(e for notes in voices for _, _, e in notes)
    end = _round_up_to_bar(end, signatures)
    title = _title(score, source)
    return _midi_bytes(
        title, voices, signatures, _keys(parts[0], shift, drop), end, _tempo_bpm(score)
    )


def _vocal_parts(score) -> list:
    """Soprano, alto, tenor, bass parts in that order (by part name), else all four parts."""
    parts = list(score.parts)
    named = {}
    for part in parts:
        label = (part.partName or part.id or "").strip().lower()
        for voice in VOICES:
            if label.startswith(voice) and voice not in named:
                named[voice] = part
    if len(named) == 4:
        return [named[v] for v in VOICES]
    if len(parts) == 4:
        return parts
    raise Skip(f"{len(parts)} parts, no four vocal parts")


def _pickup_shift(part) -> float:
    """Quarters to shift right so that a pickup ends a full first bar (0 without one)."""
    measures = part.getElementsByClass("Measure")
    if not measures:
        return 0.0
    first = measures[0]
    if first.paddingLeft:
        return float(first.paddingLeft)
    bar = first.barDuration.quarterLength
    if first.number == 0 and first.duration.quarterLength < bar:
        return float(bar - first.duration.quarterLength)
    return 0.0


def _notes(part, shift: float) -> list[tuple[int, float, float]]:
    """(pitch, start, end) in quarters, ties joined, grace notes left out."""
    notes = []
    for element in part.stripTies().flatten().notes:
        length = float(element.duration.quarterLength)
        if length <= 0:
            continue
        start = float(element.getOffsetInHierarchy(part)) + shift
        for pitch in element.pitches:
            notes.append((int(pitch.midi), start, start + length))
    return sorted(set(notes), key=lambda n: (n[1], n[0]))


def _time_signatures(part, shift: float) -> list[tuple[float, int, int]]:
    """(quarters, numerator, denominator), one per change, the first at 0."""
    from music21 import meter

    found: list[tuple[float, int, int]] = []
    for ts in part.flatten().getElementsByClass(meter.TimeSignature):
        q = float(ts.getOffsetInHierarchy(part)) + shift if found else 0.0
        entry = (q, int(ts.numerator), int(ts.denominator))
        if not found or entry[1:] != found[-1][1:]:
            found.append(entry)
    return found or [(0.0, 4, 4)]


def _keys(part, shift: float, drop: float) -> list[tuple[float, str]]:
    """(quarters, mido key name), one per change, the first at 0."""
    from music21 import key

    found: list[tuple[float, str]] = []
    for ks in part.flatten().getElementsByClass(key.KeySignature):
        sharps = max(-7, min(7, int(ks.sharps)))
        names = KEYS_MINOR if getattr(ks, "mode", None) == "minor" else KEYS_MAJOR
        q = max(float(ks.getOffsetInHierarchy(part)) + shift - drop, 0.0) if found else 0.0
        if not found or found[-1][1] != names[sharps + 7]:
            found.append((q, names[sharps + 7]))
    return found


def _round_up_to_bar(end: float, signatures: list[tuple[float, int, int]]) -> float:
    """The first bar line at or after `end` (quarters)."""
    q, num, den = [s for s in signatures if s[0] <= end][-1]
    bar = Fraction(num * 4, den)
    bars = math.ceil(Fraction(end - q).limit_denominator(960) / bar)
    return float(q + bars * bar)


def _tempo_bpm(score) -> float:
    from music21 import tempo

    for mark in score.flatten().getElementsByClass(tempo.MetronomeMark):
        if mark.number:
            return float(mark.getQuarterBPM() or mark.number)
    return float(DEFAULT_BPM)


def _title(score, source: Path) -> str:
    """The score's title (ASCII), else "BWV <number>" from the file name."""
    title = (score.metadata.title or "") if score.metadata is not None else ""
    title = title.encode("ascii", "ignore").decode().strip()
    return title or "BWV " + source.stem.removeprefix("bwv")


def _midi_bytes(title, voices, signatures, keys, end: float, bpm: float) -> bytes:
    """A type-1 file: conductor track, then one named track per voice."""
    ticks = lambda q: int(round(q * TPQ))  # noqa: E731
    conductor = [
        (0, mido.MetaMessage("track_name", name=title)),
        (0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))),
    ]
    conductor += [
        (ticks(q), mido.MetaMessage("time_signature", numerator=n, denominator=d))
        for q, n, d in signatures
    ]
    conductor += [(ticks(q), mido.MetaMessage("key_signature", key=k)) for q, k in keys]
    tracks = [_track(conductor, ticks(end))]
    for channel, (voice, notes) in enumerate(zip(VOICES, voices, strict=True)):
        events = [
            (0, mido.MetaMessage("track_name", name=voice.capitalize())),
            (0, mido.Message("program_change", channel=channel, program=PROGRAM)),
        ]
        for pitch, start, stop in notes:
            events.append((ticks(stop), mido.Message("note_off", channel=channel, note=pitch)))
            events.append(
                (
                    ticks(start),
                    mido.Message("note_on", channel=channel, note=pitch, velocity=VELOCITY),
                )
            )
        tracks.append(_track(events, ticks(end)))
    mid = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    mid.tracks.extend(tracks)
    with tempfile.TemporaryFile() as handle:
        mid.save(file=handle)
        handle.seek(0)
        return handle.read()


def _track(events: list[tuple[int, mido.Message]], end_tick: int) -> mido.MidiTrack:
    """Absolute-tick events -> a track (note-offs before note-ons at equal ticks)."""
    order = {"note_off": 1, "note_on": 2}
    events = sorted(events, key=lambda e: (e[0], order.get(e[1].type, 0)))
    track, now = mido.MidiTrack(), 0
    for tick, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(end_tick - now, 0)))
    return track


def _write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".mid")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def main() -> int:
    started = time.time()
    todo = sources()
    print(f"exporting {len(todo)} Bach corpus entries on {os.cpu_count()} cores", flush=True)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(os.cpu_count()) as pool:
        results = pool.map(export, todo, chunksize=4)
    names = [name for name, _, _ in results]
    if len(set(names)) != len(names):
        raise SystemExit("two corpus entries share a name; disambiguate in export()")
    written, skipped = set(), []
    for name, data, reason in results:
        if data is None:
            skipped.append((name, reason))
            continue
        _write(HERE / name, data)
        written.add(name)
    for stale in HERE.glob("*.mid"):
        if stale.name not in written:
            stale.unlink()
    size = sum((HERE / n).stat().st_size for n in written)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    print(
        f"wrote {len(written)} files ({size / 1e6:.2f} MB), skipped {len(skipped)}, "
        f"{time.time() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
