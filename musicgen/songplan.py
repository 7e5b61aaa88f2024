"""What a piece written against a user's song must hold, for any encoding that keeps
songs (`Encoding.keeps_songs`: tracks and steps).

A `SongPlan` says what the token stream of a piece written against a song must hold:
the header (every part's program, the user's and the new ones, in the encoding's
canonical order), each bar's opening (the song's time signature and tempo, its key when
the model has controls, its density where a bar is wholly the song's) and the user's
kept notes as (onset, part, value, velocity bin, steps) on the encoding's grid, in
stream order. `SongPlan.free` says where the model may write: an added part everywhere,
a part being rewritten inside an infill window; harmonize adds a `ceiling` the added
parts stay under. `song_harmony` tells the pitch classes the kept parts sound in
each beat (what an added bass is held to).

`PlanGrammar` is what the encodings' keep grammars share (the header and the bar
openings as planned); `musicgen.keep_tracks` and `musicgen.keep_steps` force the notes.
`forced_prefix` reads what the plan leaves no choice about, so that it is stepped once
for every candidate; `fit_around` keeps new notes from cutting kept ones.

Pure Python and NumPy: `arrange.py` reads the song, runs the network and writes files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from musicgen.encoding.base import EOS, Grammar, NarrowedGrammar
from musicgen.encoding.remi import BAR, POSITION, TEMPO, TIMESIG
from musicgen.encoding.tracks import PROGRAM, TracksEncoding
from musicgen.score import DRUM_PROGRAM, Note, Part, Score

INFILL_HORIZON_BARS = 4  # bars after an infill window that score its candidates
# semitones a rewritten part's register reaches past its lowest and highest note in the song
REGISTER_MARGIN = 2


@dataclass(frozen=True, order=True)
class KeptNote:
    """One of the user's notes as the stream must hold it."""

    onset: int  # absolute grid step
    part: int  # index into the header
    value: int  # MIDI pitch, or drum note
    velocity: int  # velocity bin
    steps: int  # duration in grid steps (1 for drums)


@dataclass
class SongPlan:
    """What a piece written against a song must hold; see the module docstring.

    programs:   the header, in canonical order
    user:       header index -> the user's own Part it stands for
    bars:       (start step, steps) of every bar
    openings:   per bar, the Key/Density/TimeSig/Tempo ids it must open with, in order
    kept:       the user's notes in stream order
    window:     (first step, end step) where `rewrite` parts are free (infill)
    rewrite:    header indices of the parts rewritten inside `window`
    skipped:    user notes that no token can hold (out of the pitch range): they are
                still written, the model just does not hear them
    ceiling:    per grid step, the pitch added pitched parts stay below (harmonize), or None
    register:   header index -> (lowest, highest) MIDI pitch a rewritten pitched part's
                new notes may take: its own range in the whole song, REGISTER_MARGIN
                semitones wider each way, within the model's pitch range (infill)
    """

    programs: list[int]
    user: dict[int, Part]
    bars: list[tuple[int, int]]
    openings: list[list[int]]
    kept: list[KeptNote]
    window: tuple[int, int] = (0, 0)
    rewrite: frozenset[int] = frozenset()
    skipped: int = 0
    song: Score = field(default_factory=Score)
    ceiling: np.ndarray | None = None
    register: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def end(self) -> int:
        """The grid step where the plan's last bar ends."""
        return self.bars[-1][0] + self.bars[-1][1]

    def free(self, part: int, step: int) -> bool:
        """May the model write a note of `part` at absolute grid step `step`?"""
        if part not in self.user:
            return True
        return part in self.rewrite and self.window[0] <= step < self.window[1]

    def free_parts(self, step: int) -> list[int]:
        return [p for p in range(len(self.programs)) if self.free(p, step)]


def plan_song(
    encoding: TracksEncoding,
    song: Score,
    added: list[int],
    *,
    window: tuple[float, float] | None = None,
    rewrite: list[int] | None = None,
) -> SongPlan:
    """The plan for writing `added` programs against `song` (accompany), or for
    rewriting song parts `rewrite` (indices into `canonical_parts(song)`) inside
    `window` (quarters, infill). The song's parts keep their canonical order; an added
    part goes after the song's parts of the same program. A rewritten pitched part's new
    notes keep to its register in the song (`SongPlan.register`)."""
    dropped: Counter = Counter()
    layout = encoding.layout(song, dropped)
    slots = [(p.program, 0, i) for i, p in enumerate(layout.parts)]
    slots += [(program, 1, j) for j, program in enumerate(added)]
    slots.sort(key=lambda s: (s[0] == DRUM_PROGRAM, s[0], s[1], s[2]))
    header_of = {s[2]: h for h, s in enumerate(slots) if s[1] == 0}
    kept = [
        KeptNote(onset, header_of[i], value, velocity, steps)
        for i, grid in enumerate(layout.grids)
        for onset, value, velocity, steps in grid
    ]
    bars = [(b.start, b.steps) for b in layout.bars]
    spq = encoding.config.steps_per_quarter
    in_window, chosen = (0, 0), frozenset()
    counts: list[int | None] = [None] * len(bars)
    register: dict[int, tuple[int, int]] = {}
    if window is not None:
        in_window = (round(window[0] * spq), round(window[1] * spq))
        chosen = frozenset(header_of[i] for i in (rewrite or range(len(layout.parts))))
        register = {
            header_of[i]: part_register(encoding, part)
            for i, part in enumerate(layout.parts)
            if header_of[i] in chosen and not part.is_drum and part.notes
        }
        counts = _known_counts(bars, kept, in_window)
        kept = [
            n for n in kept if not (n.part in chosen and in_window[0] <= n.onset < in_window[1])
        ]
        # the bars after the window are the song's own: only the first INFILL_HORIZON_BARS
        # of them are read (they score the candidates); the rest is written from the song
        last = next((i for i, b in enumerate(bars) if b[0] >= in_window[1]), len(bars))
        bars = bars[: last + INFILL_HORIZON_BARS]
        kept = [n for n in kept if n.onset < bars[-1][0] + bars[-1][1]]
    return SongPlan(
        programs=[s[0] for s in slots],
        user={h: layout.parts[s[2]] for h, s in enumerate(slots) if s[1] == 0},
        bars=bars,
        openings=[encoding.bar_opening(layout, i, counts[i]) for i in range(len(bars))],
        kept=sorted(kept),
        window=in_window,
        rewrite=chosen,
        skipped=dropped.get("pitch_out_of_range", 0),
        song=song,
        register=register,
    )


def part_register(encoding: TracksEncoding, part: Part) -> tuple[int, int]:
    """(lowest, highest) MIDI pitch a rewritten part's new notes may take: the part's
    lowest and highest note in the song, REGISTER_MARGIN semitones wider each way, held
    within the model's pitch range (a part wholly outside it: the nearest edge)."""
    c = encoding.config
    pitches = [n.pitch for n in part.notes]
    low = min(max(min(pitches) - REGISTER_MARGIN, c.pitch_min), c.pitch_max)
    high = max(min(max(pitches) + REGISTER_MARGIN, c.pitch_max), c.pitch_min)
    return low, high


def _known_counts(
    bars: list[tuple[int, int]], kept: list[KeptNote], window: tuple[int, int]
) -> list[int | None]:
    """Per bar, its number of notes where the bar lies wholly outside the infill window
    (its notes are all the song's; its Density is known), else None."""
    starts = np.array([b[0] for b in bars])
    counts = Counter(int(np.searchsorted(starts, n.onset, side="right")) - 1 for n in kept)
    return [
        counts[i] if start + steps <= window[0] or start >= window[1] else None
        for i, (start, steps) in enumerate(bars)
    ]


def ceiling(plan: SongPlan, melody: Iterable[int]) -> np.ndarray | None:
    """Per grid step of the plan, the lowest pitch the `melody` parts (header indices)
    sound there; where none sounds, the last such pitch (before the first note: its
    pitch). harmonize's voices stay below it. None when the melody has no kept note."""
    parts = set(melody)
    total = plan.end
    unset = 1 << 30
    low = np.full(total, unset, dtype=np.int64)
    for n in plan.kept:
        if n.part in parts and n.onset < total:
            span = low[n.onset : n.onset + n.steps]
            np.minimum(span, n.value, out=span)
    sounding = low < unset
    if not sounding.any():
        return None
    latest = np.maximum.accumulate(np.where(sounding, np.arange(total), -1))
    latest[latest < 0] = int(np.argmax(sounding))
    return low[latest]


def song_harmony(
    plan: SongPlan, steps_per_quarter: int
) -> Callable[[int, int], frozenset[int] | None]:
    """The pitch classes the song's kept pitched parts (not rewritten ones) sound during
    each beat (a quarter note from the bar's start): a function (bar index from 0,
    grid position in the bar) -> pitch classes, None where the beat sounds none. What
    an added bass's new notes are held to (`part_rules.PartsGrammar`'s `harmony`)."""
    bits = np.zeros(max(plan.end, 1), dtype=np.int64)
    for note in plan.kept:
        if note.part in plan.rewrite or plan.programs[note.part] == DRUM_PROGRAM:
            continue
        bits[note.onset : note.onset + max(note.steps, 1)] |= 1 << (note.value % 12)
    cache: dict[tuple[int, int], frozenset[int] | None] = {}

    def harmony(bar: int, position: int) -> frozenset[int] | None:
        if not 0 <= bar < len(plan.bars):
            return None
        start, steps = plan.bars[bar]
        beat = position // steps_per_quarter
        if (bar, beat) not in cache:
            a = start + beat * steps_per_quarter
            b = min(a + steps_per_quarter, start + steps)
            sounding = int(np.bitwise_or.reduce(bits[a:b])) if b > a else 0
            pcs = frozenset(pc for pc in range(12) if sounding >> pc & 1)
            cache[bar, beat] = pcs or None
        return cache[bar, beat]

    return harmony


class PlanGrammar(NarrowedGrammar):
    """An encoding's grammar narrowed to a `SongPlan`'s header and bar openings; the
    encodings' keep grammars add the notes. `g` is the inner grammar (a TracksGrammar
    or one of its kind: `programs`, `bars`, `position`, `phase`)."""

    def __init__(self, inner: Grammar, encoding: TracksEncoding, plan: SongPlan):
        super().__init__(inner)
        self.g = inner
        self.enc = encoding
        self.plan = plan
        self.r = encoding.id_range
        self.pending: list[int] = []  # opening ids of this bar still to come

    def _bar_start(self) -> int:
        return self.plan.bars[self.g.bars - 1][0] if self.g.bars else 0

    def _header(self, mask: np.ndarray) -> np.ndarray:
        out = np.zeros_like(mask)
        k = len(self.g.programs)
        if k < len(self.plan.programs):
            out[self.r[PROGRAM][0] + self.plan.programs[k]] = True
        else:
            out[self.r[BAR][0]] = True
        return out & mask

    def _opening(self, mask: np.ndarray, kind: int) -> np.ndarray:
        """At a bar's Key or Density: the planned one, when planned."""
        lo, hi = self.r[kind]
        wanted = [i for i in self.pending if lo <= i < hi]
        if not wanted:
            return mask
        out = np.zeros_like(mask)
        out[wanted[0]] = mask[wanted[0]]
        return out

    def _openings_mask(self, out: np.ndarray) -> bool:
        """TimeSig and Tempo only as planned; while one is pending, nothing else.
        True when a pending one was forced."""
        for kind in (TIMESIG, TEMPO):
            lo, hi = self.r[kind]
            allowed_here = out[lo:hi].copy()
            out[lo:hi] = False
            for i in self.pending:
                if lo <= i < hi and allowed_here[i - lo]:
                    out[:] = False
                    out[i] = True
                    return True
        return False

    def _observe_opening(self, token_id: int) -> None:
        """Bookkeeping of the bar openings: a Bar sets what its opening must hold."""
        if self.enc.token_kind(token_id) == BAR:
            self.pending = list(self.plan.openings[self.g.bars - 1])
        elif token_id in self.pending:
            self.pending.remove(token_id)


def forced_prefix(grammar: Grammar) -> list[int]:
    """Advance `grammar` while it allows exactly one id (and is not done); those ids."""
    ids: list[int] = []
    while not grammar.done:
        choices = np.flatnonzero(grammar.allowed())
        if choices.size != 1 or choices[0] == EOS:
            return ids
        grammar.advance(int(choices[0]))
        ids.append(int(choices[0]))
    return ids


def token_times(encoding: TracksEncoding, plan: SongPlan, ids: list[int]) -> list[int]:
    """The grid step each id belongs to: its bar's start for bar-level tokens, its
    position for the notes (-1 before the first bar)."""
    out, bar, position = [], -1, -1
    for token in ids:
        kind = encoding.token_kind(token)
        if kind == BAR:
            bar += 1
            position = plan.bars[bar][0]
        elif kind == POSITION:
            position = plan.bars[bar][0] + encoding.token_value(token)
        out.append(position)
    return out


def fit_around(kept: list[Note], new: list[Note]) -> list[Note]:
    """The new notes that leave every kept note whole: one that starts while a kept note
    of its pitch sounds is dropped, one still sounding when a kept note of its pitch
    starts ends there (a MIDI channel cannot hold two notes of one pitch at once)."""
    by_pitch: dict[int, list[Note]] = {}
    for note in kept:
        by_pitch.setdefault(note.pitch, []).append(note)
    out = []
    for note in new:
        same = by_pitch.get(note.pitch, [])
        if any(k.start <= note.start < k.end for k in same):
            continue
        end = min([note.end, *(k.start for k in same if k.start > note.start)])
        if end > note.start:
            out.append(Note(note.pitch, note.start, end, note.velocity))
    return out
