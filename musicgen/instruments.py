"""General MIDI instruments: families, track names, and `--instruments` lists.

A part's instrument is a program number: 0..127 for General MIDI's pitched
instruments, `DRUM_PROGRAM` (128) for a drum kit on channel 10. The 128 programs come
in 16 families of 8 (0-7 piano, 8-15 chromatic percussion, ..., 32-39 bass, ...);
`--instruments` names a family, a program number or `drums`, and a family lets the
model choose any program in it.

Track names are what a DAW user reads: the family's name ("Bass", "Guitar",
"Drums"), numbered when a piece has several parts of one family ("Guitar 1",
"Guitar 2"); four parts of one program and nothing else are a choir's voices
(Soprano, Alto, Tenor, Bass, from the highest part down).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from musicgen.errors import UsageError
from musicgen.score import DRUM_PROGRAM

# the 16 General MIDI families, in program order (8 programs each)
FAMILIES = (
    "piano",
    "chromatic",
    "organ",
    "guitar",
    "bass",
    "strings",
    "ensemble",
    "brass",
    "reed",
    "pipe",
    "lead",
    "pad",
    "fx",
    "ethnic",
    "percussive",
    "sfx",
)
FAMILY_TITLES = (
    "Piano",
    "Chromatic Percussion",
    "Organ",
    "Guitar",
    "Bass",
    "Strings",
    "Ensemble",
    "Brass",
    "Reed",
    "Pipe",
    "Synth Lead",
    "Synth Pad",
    "Synth FX",
    "Ethnic",
    "Percussive",
    "Sound Effects",
)
DRUMS = "drums"
FAMILY_ORDER = (
    *FAMILIES,
    DRUMS,
)  # families in reports and line-ups: General MIDI order, drums last
GM_KIT = (35, 81)  # lowest and highest note of the General MIDI percussion key map
DRUM_GROUPS: dict[str, tuple[int, ...]] = {  # share name -> General MIDI drum notes
    "kick_share": (35, 36),
    "snare_share": (37, 38, 40),
    "hat_share": (42, 44, 46),
    "cymbal_share": (49, 51, 52, 53, 55, 57, 59),  # crash 1/2, ride 1/2, bell, china, splash
}
VOICES = ("Soprano", "Alto", "Tenor", "Bass")


def family(program: int) -> str:
    """The family name of a program ("bass" for 33, "drums" for DRUM_PROGRAM)."""
    return DRUMS if program == DRUM_PROGRAM else FAMILIES[program // 8]


def family_programs(name: str) -> tuple[int, ...]:
    """Programs of a family name, or (DRUM_PROGRAM,) for "drums"."""
    if name == DRUMS:
        return (DRUM_PROGRAM,)
    first = FAMILIES.index(name) * 8
    return tuple(range(first, first + 8))


def describe_program(program: int) -> str:
    """e.g. "bass (33)" or "drums", for messages."""
    return DRUMS if program == DRUM_PROGRAM else f"{family(program)} ({program})"


def parse_instruments(text: str) -> list[tuple[int, ...]]:
    """`--instruments` -> one tuple of allowed programs per part, in the order given.

    Items are comma-separated: a family name (any program of the family), a program
    number 0..127, or "drums". UsageError names a bad item and the valid words."""
    parts = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        if item.isdigit() and 0 <= int(item) <= 127:
            parts.append((int(item),))
        elif item in FAMILIES or item == DRUMS:
            parts.append(family_programs(item))
        else:
            words = ", ".join((*FAMILIES, DRUMS))
            raise UsageError(f"unknown instrument {raw.strip()!r}: use {words} or 0-127")
    if not parts:
        raise UsageError(f"the instrument list {text!r} names no instrument")
    return parts


def track_names(programs: Sequence[int]) -> list[str]:
    """One track name per part, in the order given (see the module docstring).

    Parts of one program that are the whole piece and exactly four are named as voices,
    in the order given (the encodings order parts of one program from high to low)."""
    if len(programs) == len(VOICES) and len(set(programs)) == 1 and programs[0] != DRUM_PROGRAM:
        return list(VOICES)
    titles = ["Drums" if p == DRUM_PROGRAM else FAMILY_TITLES[p // 8] for p in programs]
    totals, seen, names = Counter(titles), Counter(), []
    for title in titles:
        seen[title] += 1
        names.append(f"{title} {seen[title]}" if totals[title] > 1 else title)
    return names


def known_requests(
    requests: Sequence[tuple[int, ...]], known: dict[int, int] | None
) -> list[tuple[int, ...]]:
    """Each asked part narrowed to the programs a model knows (`known`: program ->
    pieces it was seen in, config.json `data.programs`; None or empty for a checkpoint
    that did not record them: then every request stands). UsageError naming what the
    model knows for a part it never saw."""
    if not known:
        return [tuple(r) for r in requests]
    out = []
    for request in requests:
        seen = tuple(p for p in request if p in known)
        if not seen:
            asked = describe_program(request[0]) if len(request) == 1 else family(request[0])
            knows = ", ".join(sorted({family(p) for p in known}, key=family_order))
            raise UsageError(f"this model never saw {asked}; it knows: {knows}")
        out.append(seen)
    return out


def family_order(name: str) -> int:
    """A family name's place in FAMILY_ORDER (a sort key)."""
    return FAMILY_ORDER.index(name)


def stored_programs(meta: dict) -> dict[int, int]:
    """config.json `data.programs` as {program: pieces} ({} when absent)."""
    raw = (meta.get("data") or {}).get("programs") or {}
    return {int(k): int(v) for k, v in raw.items()}
