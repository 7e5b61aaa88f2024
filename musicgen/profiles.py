"""What each part of the training music plays, learned from the data and kept in the
checkpoint: per General MIDI family (program // 8) and for the drum kit, a `PartProfile`
(register, the span one part covers, how long a note is held, notes struck together,
notes per bar, a part's pace where it plays and its busiest bar, the kit and how much
of a kit part's hits its cymbals take), and the
line-up (families and drums) of every training file.

`train` stores both in config.json beside `data.programs`: `data.profiles`
({family: profile dict}) and `data.lineups` ({"guitar,bass,drums": files}); the
sampler (`musicgen.part_rules.PartsGrammar`) holds each part to its family's profile,
and `generate` without `--instruments` draws a line-up per piece (`draw_lineup`).

A checkpoint trained before profiles existed has neither: `stored_profiles` then gives
`DEFAULT_PROFILES` (a bass in MIDI 23-67 playing single notes, drums in the General
MIDI kit 35-81) and every other family is free; `stored_lineups` gives none, so such a
model writes the line-ups it likes.

Pure Python and NumPy; reads Scores (decoded from a file's ids by `learn`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from musicgen.encoding import BOS, Encoding
from musicgen.instruments import DRUM_GROUPS, DRUMS, GM_KIT, family, family_order
from musicgen.score import Part, Score

REGISTER_PERCENTILES = (0.5, 99.5)  # a family's register leaves stray notes out
CAP_COVERAGE = 0.98  # the cap covers this share of a family's onsets
KIT_SHARE = 0.005  # a drum note is in the kit with at least this share of the hits
SPAN_PERCENTILE = 90  # a part's span covers this share of the family's parts
SUSTAIN_PERCENTILE = 90  # a part's longest note: this share of the family's parts ...
SUSTAIN_NOTES = 99.9  # ... and this share of its notes (a few parts or notes mislead one)
BURST_PERCENTILE = 99  # notes one part strikes in one bar: this share of the family's bars
PACE_PERCENTILE = 90  # a part's notes per bar where it plays: this share of the family's parts
CYMBAL_PERCENTILE = 75  # the cymbals' share of a kit part's hits: this share of the parts
REST_PERCENTILE = 90  # the longest a kit part rests, in bars: this share of the parts
PART_NOTES = 20  # parts with fewer notes say nothing about a part's span or longest note
MIN_NOTES = 50  # fewer notes of a family teach no profile
KIT_NOTES = tuple(range(GM_KIT[0], GM_KIT[1] + 1))  # every note of the General MIDI kit


@dataclass(frozen=True)
class PartProfile:
    """What one family's parts play in the training data.

    low, high:      register, MIDI pitches (inclusive); the kit's range for drums
    span:           semitones from one part's lowest to its highest note in a piece
                    (SPAN_PERCENTILE of the family's parts; 0: no limit, and drums)
    sustain:        quarter notes one note is held at most: the shorter of
                    SUSTAIN_PERCENTILE of the family's parts' longest notes in a piece
                    and SUSTAIN_NOTES of its notes' lengths (0: no limit, and drums)
    cap:            notes struck together at one onset (the smallest n covering
                    CAP_COVERAGE of the family's onsets)
    notes_per_bar:  10th, 50th and 90th percentile of a part's notes per bar (in a piece)
    pace:           a part's notes per bar in the bars where it strikes any (its notes
                    over those bars; PACE_PERCENTILE of the family's parts)
    burst:          notes one part strikes in one bar at most (BURST_PERCENTILE of the
                    family's bars in which a part strikes any; 0: no limit)
    kit:            drums: the drum notes with a real share of the hits (in GM_KIT)
    cymbals:        drums: the most of a part's hits its crashes, rides, chinas and
                    splashes take (CYMBAL_PERCENTILE of the family's parts; 1: no limit)
    rest:           drums: bars in a row a part rests at most, a bar in which it strikes
                    fewer times than the bar has quarter-note beats counting as a rest,
                    its lead-in and ending included (REST_PERCENTILE of the family's
                    parts; -1: no limit, and every pitched family, whose held notes
                    sound in bars they strike nothing in)
    notes:          notes counted
    """

    low: int
    high: int
    cap: int
    notes_per_bar: tuple[float, float, float] = (0.0, 0.0, 0.0)
    kit: tuple[int, ...] = ()
    notes: int = 0
    span: int = 0
    sustain: float = 0.0
    pace: float = 0.0
    burst: int = 0
    cymbals: float = 1.0
    rest: int = -1

    def to_dict(self) -> dict:
        out = asdict(self)
        out["notes_per_bar"] = list(self.notes_per_bar)
        out["kit"] = list(self.kit)
        if self.cymbals >= 1.0:  # no limit (every pitched family): left out, as old profiles
            del out["cymbals"]
        if self.rest < 0:
            del out["rest"]
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> PartProfile:
        return cls(
            low=int(raw["low"]),
            high=int(raw["high"]),
            cap=max(1, int(raw["cap"])),
            notes_per_bar=tuple(float(x) for x in raw.get("notes_per_bar", (0, 0, 0))),
            kit=tuple(int(x) for x in raw.get("kit", ())),
            notes=int(raw.get("notes", 0)),
            span=int(raw.get("span", 0)),
            sustain=float(raw.get("sustain", 0.0)),
            pace=float(raw.get("pace", 0.0)),
            burst=int(raw.get("burst", 0)),
            cymbals=float(raw.get("cymbals", 1.0)),
            rest=int(raw.get("rest", -1)),
        )


# for checkpoints without data.profiles: a bass plays single notes in a bass register
# (band_corpus's bass parts: 98.2% in MIDI 23-64), drums stay in the General MIDI kit
DEFAULT_PROFILES = {
    "bass": PartProfile(low=23, high=67, cap=1),
    DRUMS: PartProfile(low=GM_KIT[0], high=GM_KIT[1], cap=4, kit=KIT_NOTES),
}


# ----------------------------------------------------------------------------- learning


class _Tally:
    """One family's notes, onset sizes, per-part densities (per piece and per bar), spans
    and longest notes, gathered piece by piece."""

    def __init__(self) -> None:
        self.pitches: Counter[int] = Counter()
        self.onsets: Counter[int] = Counter()  # notes struck together -> onsets
        self.per_bar: list[float] = []
        self.spans: list[int] = []  # highest - lowest pitch of each part with PART_NOTES
        self.longest: list[float] = []  # the longest note (quarters) of each such part
        self.lengths: Counter[float] = Counter()  # a note's length in quarters -> notes
        self.in_bar: Counter[int] = Counter()  # notes a part strikes in one bar -> bars
        self.paces: list[float] = []  # each part's notes per bar where it plays
        self.cymbals: list[float] = []  # each kit part's share of cymbal hits
        self.rests: list[int] = []  # each kit part's longest run of bars under a hit a beat

    def add(self, part: Part, bars: float, bar_quarters: float) -> None:
        pitches = [n.pitch for n in part.notes]
        in_bar = Counter(int(n.start // bar_quarters) for n in part.notes)
        self.in_bar.update(in_bar.values())
        self.paces.append(len(part.notes) / len(in_bar))
        lengths = [n.end - n.start for n in part.notes]
        self.pitches.update(pitches)
        self.onsets.update(Counter(n.start for n in part.notes).values())
        self.lengths.update(round(length, 3) for length in lengths)
        self.per_bar.append(len(part.notes) / max(bars, 1.0))
        if len(pitches) >= PART_NOTES:
            self.spans.append(max(pitches) - min(pitches))
            self.longest.append(max(lengths))
            if part.is_drum:
                self.cymbals.append(float(np.isin(pitches, DRUM_GROUPS["cymbal_share"]).mean()))
                self.rests.append(_longest_rest(in_bar, math.ceil(bars), bar_quarters))

    def profile(self, drums: bool) -> PartProfile | None:
        total = sum(self.pitches.values())
        if total < MIN_NOTES:
            return None
        cap = _covering(self.onsets, CAP_COVERAGE)
        density = tuple(round(float(x), 2) for x in np.percentile(self.per_bar, [10, 50, 90]))
        if drums:
            kit = (
                tuple(
                    sorted(
                        p
                        for p, n in self.pitches.items()
                        if GM_KIT[0] <= p <= GM_KIT[1] and n >= KIT_SHARE * total
                    )
                )
                or KIT_NOTES
            )
            cymbals = (
                round(_part_percentile(self.cymbals, CYMBAL_PERCENTILE), 3) if self.cymbals else 1.0
            )
            rest = int(_part_percentile(self.rests, REST_PERCENTILE)) if self.rests else -1
            return PartProfile(
                kit[0],
                kit[-1],
                cap,
                density,
                kit,
                total,
                **self._pace(),
                cymbals=cymbals,
                rest=rest,
            )
        low, high = _percentiles(self.pitches, REGISTER_PERCENTILES)
        span = int(_part_percentile(self.spans, SPAN_PERCENTILE))
        sustain = _at(self.lengths, SUSTAIN_NOTES)
        if self.longest:
            sustain = min(sustain, _part_percentile(self.longest, SUSTAIN_PERCENTILE))
        return PartProfile(
            low, high, cap, density, (), total, span, round(sustain, 3), **self._pace()
        )

    def _pace(self) -> dict[str, float | int]:
        """{"pace", "burst"}: notes per bar where a part plays, and at most in one bar."""
        pace = round(_part_percentile(self.paces, PACE_PERCENTILE), 2)
        return {"pace": pace, "burst": int(_at(self.in_bar, BURST_PERCENTILE))}


def _longest_rest(in_bar: Counter[int], count: int, beats: float) -> int:
    """The longest run of bars, of `count`, in which a part strikes fewer times than the
    bar has beats (`in_bar`: bar index from 0 -> notes struck in it)."""
    longest = run = 0
    for bar in range(max(count, max(in_bar, default=-1) + 1)):
        run = run + 1 if in_bar.get(bar, 0) < beats else 0
        longest = max(longest, run)
    return longest


def _covering(counts: Counter[int], share: float) -> int:
    """The smallest key n whose keys <= n hold at least `share` of the counts."""
    total, running = sum(counts.values()), 0
    for n in sorted(counts):
        running += counts[n]
        if running >= share * total:
            return max(1, n)
    return max(counts, default=1)


def _percentiles(counts: Counter[int], at: tuple[float, float]) -> tuple[int, int]:
    """(low, high) pitches at the two percentiles of the counted pitches."""
    return int(_at(counts, at[0])), int(_at(counts, at[1]))


def _at(counts: Counter, percent: float) -> float:
    """The smallest counted value whose values up to it hold `percent` of the counts."""
    values = np.array(sorted(counts))
    cumulative = np.cumsum([counts[v] for v in values]) / sum(counts.values())
    return float(values[min(int(np.searchsorted(cumulative, percent / 100)), values.size - 1)])


def _part_percentile(values: list[float], percent: float) -> float:
    """A percentile of per-part values, one of the values themselves (0 without any)."""
    return float(np.percentile(values, percent, method="inverted_cdf")) if values else 0.0


def bar_quarters(score: Score) -> float:
    """Quarter notes in a bar of the score's first time signature."""
    _, num, den = score.time_signatures[0]
    return num * 4 / den


def lineup(score: Score) -> tuple[str, ...]:
    """The score's parts as family names, in the canonical order (pitched by family, the
    drums last); a family with two parts appears twice."""
    names = [family(part.program) for part in score.parts if part.notes]
    return tuple(sorted(names, key=family_order))


def learn_scores(files: Iterable[Sequence[Score]]) -> dict:
    """{"profiles": {family: profile dict}, "lineups": {"bass,drums": files}} of the
    training files, each given as its pieces (Scores). A file's line-up is its first
    piece's with the most parts."""
    tallies: dict[str, _Tally] = {}
    lineups: Counter[str] = Counter()
    for pieces in files:
        best: tuple[str, ...] = ()
        for score in pieces:
            quarters = bar_quarters(score)
            bars = score.length / quarters  # in bars of the first time signature
            for part in score.parts:
                if part.notes:
                    tallies.setdefault(family(part.program), _Tally()).add(part, bars, quarters)
            parts = lineup(score)
            if len(parts) > len(best):
                best = parts
        if best:
            lineups[",".join(best)] += 1
    profiles = {}
    for name in sorted(tallies, key=family_order):
        profile = tallies[name].profile(drums=name == DRUMS)
        if profile is not None:
            profiles[name] = profile.to_dict()
    return {"profiles": profiles, "lineups": dict(sorted(lineups.items()))}


def learn(encoding: Encoding, arrays: Iterable[np.ndarray]) -> dict:
    """`learn_scores` of training files given as their token ids (BOS..EOS pieces back to
    back, as `dataset` writes them), decoded by `encoding`."""

    def pieces(ids: np.ndarray) -> list[Score]:
        ids = np.asarray(ids)
        starts = np.flatnonzero(ids == BOS).tolist() or [0]
        ends = [*starts[1:], ids.size]
        return [encoding.decode(ids[a:b]) for a, b in zip(starts, ends, strict=True)]

    return learn_scores(pieces(ids) for ids in arrays)


# ----------------------------------------------------------------------------- reading


def stored_profiles(meta: dict) -> dict[str, PartProfile]:
    """config.json `data.profiles` as {family: PartProfile}; DEFAULT_PROFILES for a
    checkpoint that has none."""
    raw = (meta.get("data") or {}).get("profiles")
    if raw is None:
        return dict(DEFAULT_PROFILES)
    return {name: PartProfile.from_dict(p) for name, p in raw.items()}


def stored_lineups(meta: dict) -> dict[tuple[str, ...], int]:
    """config.json `data.lineups` as {families: files} ({} when absent)."""
    raw = (meta.get("data") or {}).get("lineups") or {}
    return {tuple(k.split(",")): int(v) for k, v in raw.items() if k}


def draw_lineup(
    lineups: dict[tuple[str, ...], int], rng: np.random.Generator
) -> tuple[str, ...] | None:
    """One training file's line-up, drawn in proportion to the files that have it: from
    the multi-part line-ups when there are any (single-part files, drum grooves and
    loops, teach their instrument but set no line-up), else from the single-part ones.
    None when there are no line-ups."""
    multi = {k: n for k, n in lineups.items() if len(k) > 1}
    pool = multi or lineups
    if not pool:
        return None
    keys = sorted(pool)
    weights = np.array([pool[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=weights / weights.sum()))]
