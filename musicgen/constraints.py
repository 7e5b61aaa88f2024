"""Constrained decoding: impose a key, a density, a metre or a tempo on sampled pieces.

The sampler only ever draws ids that a `Grammar` allows, so steering a piece is a
matter of narrowing the grammar's mask at the right moments. How the pieces relate:

- `parse_key`, `parse_time_signature`, `parse_density` read the user's words
  ("D minor", "3/4", "low") into values, raising `UsageError` with a one-line hint.
- `density_choices(encoding, arrays)` measures, on a model's training data, which
  Density level each word means: "low", "medium" and "high" are the levels of the
  15th, 50th and 85th percentile bar. `train` stores them in the checkpoint's
  config.json (data.controls.density), so the words fit any corpus.
- `Controls.request(encoding, ...)` checks the request against a checkpoint's
  encoding (key and density need a model trained with `--controls`; metre and tempo
  are ordinary remi tokens) and keeps the id each control forces.
- `ForcedGrammar(grammar, controls)` wraps a grammar: for each controlled group of
  tokens (Key_*, Density_*, TimeSig_*, Tempo_*), whenever the inner grammar allows
  any of them, the wrapper allows only the forced id if the grammar requires a token
  of the group there or the piece is not yet in that state, and none of the group
  otherwise. So every bar opens `Bar Key Density` with the asked values, the first
  bar goes on `TimeSig Tempo` with the asked ones, and no later TimeSig or Tempo
  token changes them: every bar is in the asked metre.
- `CadenceGrammar` (added by `Controls.wrap` when a key is asked and the length in
  bars is known) closes the piece on a cadence in that key, as below.

Keys with their mode. A Key token tells the model the key *signature* well, but D minor
and F major share every note of their scale, and what makes a listener (and music21's
key analysis, a duration-weighted pitch-class profile) hear one rather than the other is
where the music comes to rest and how it gets there: the final chord and the cadence
before it. Forcing only the Key token, the bundled model ended minor pieces in the
relative major often enough that music21 heard the relative key in up to half of a
minor key's pieces (C# minor, F# minor, C minor; 75-91% of all pieces in the asked
key, checkpoints/README.md "Controls"). So with a key the closing bars are steered:
the last bar sounds only the tonic triad, with the tonic as the lowest note of each
onset (a root-position final chord: the tonic gets the weight a final fermata gives
it), and the two bars before it stay in the key's scale, harmonic minor in minor, so
the leading tone is raised and the subtonic (F major's dominant, C, when D minor is
asked) cannot pull the ear to the relative major. Tried and dropped: a dominant
seventh chord for the whole bar before the last (it weights the dominant key's notes).
"Lowest" depends on the order an encoding writes: remi's pitches rise within an onset,
so its first pitch is the lowest (tracks puts the first part's note there); steps lists
at each step the parts that change (header order: a chorale's bass last), each with its
whole sounding set from the top, and a part not listed goes on sounding. There the rules
hold for what sounds at every step, held notes and unlisted parts included: the bass
(or whichever part goes lowest) takes the tonic under the others, and a note carried
over a closing bar line out of the key is mended on the downbeat (`_SoundingCadence`).

Pure numpy; `generate.py` wraps each piece's grammar, `musicgen.harmonize` has a
wrapper of its own for melodies built on the same idea.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from musicgen.encoding import EOS, Encoding, Grammar, NarrowedGrammar
from musicgen.encoding.remi import (
    BAR,
    DENSITY,
    DENSITY_LEVELS,
    KEY,
    MODES,
    PITCH,
    POSITION,
    TEMPO,
    TIMESIG,
    VELOCITY,
    RemiEncoding,
    density_level,
    density_range,
)
from musicgen.encoding.tracks import DRUM, HOLD, PROGRAM, TRACK
from musicgen.errors import UsageError, Words, param
from musicgen.score import DRUM_PROGRAM

PITCH_CLASSES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ACCIDENTALS = {"#": 1, "♯": 1, "b": -1, "♭": -1, "-": -1}  # "-": music21's flat
_MODE_WORDS = {"major": 0, "maj": 0, "minor": 1, "min": 1}
_KEY_PATTERN = re.compile(r"^([a-g])([#♯b♭-]*)\s*([a-z]*)$", re.IGNORECASE)
_KEY_HINT = "write e.g. 'D minor', 'Dm', 'F# major' or 'Bb'"
DENSITY_WORDS = ("low", "medium", "high")
DENSITY_PERCENTILES = (15, 50, 85)  # the bar whose level each word means
_DEFAULT_DENSITY = (("low", 2), ("medium", 4), ("high", 8))  # notes per quarter
# The closing bars of a piece in an asked key, as semitones above the tonic per mode
# (MODES order): what the APPROACH_BARS bars before the last may sound (the key's scale;
# in minor the harmonic minor, so the leading tone is raised and the subtonic never
# sounds) and what the last bar may sound (the tonic triad). See "Keys with their mode".
APPROACH_DEGREES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 11))
FINAL_DEGREES = ((0, 4, 7), (0, 3, 7))
APPROACH_BARS = 2


# ----------------------------------------------------------------------------- reading words


def parse_key(text: str) -> tuple[int, int]:
    """A key name -> (tonic pitch class 0..11, mode index into MODES: 0 major, 1 minor).

    Lenient: the tonic letter in either case, accidentals '#', 'b', '-' (music21's
    flat) or the signs; then an optional mode, 'major'/'maj'/'M' or 'minor'/'min'/'m'
    (any case, except that a lone 'M' is major and 'm' minor); no mode means major.
    "D minor", "Dm", "f# minor", "B- major" and "Bb" all read. UsageError otherwise.
    """
    words = " ".join(str(text).split())
    match = _KEY_PATTERN.match(words)
    if not match:
        raise UsageError(f"cannot read the key {text!r}: {_KEY_HINT}")
    letter, accidentals, mode_word = match.groups()
    if mode_word in ("M", ""):
        mode = 0
    elif mode_word == "m":
        mode = 1
    elif mode_word.lower() in _MODE_WORDS:
        mode = _MODE_WORDS[mode_word.lower()]
    else:
        raise UsageError(f"cannot read the mode {mode_word!r} of key {text!r}: {_KEY_HINT}")
    tonic = PITCH_CLASSES[letter.lower()] + sum(_ACCIDENTALS[a] for a in accidentals)
    return tonic % 12, mode


def key_name(tonic: int, mode: int) -> str:
    """(2, 1) -> "D minor"."""
    return f"{KEY_NAMES[tonic % 12]} {MODES[mode]}"


def parse_time_signature(text: str, encoding: Encoding) -> tuple[int, int]:
    """ "3/4" -> (3, 4), if the encoding has a TimeSig token for it; UsageError if not."""
    match = re.fullmatch(r"\s*(\d{1,3})\s*/\s*(\d{1,3})\s*", str(text))
    if not match:
        raise UsageError(f"cannot read the time signature {text!r}: write e.g. 3/4 or 6/8")
    signature = (int(match.group(1)), int(match.group(2)))
    supported = getattr(encoding, "time_signatures", [])
    if signature not in supported:
        longest = encoding.config.max_bar_quarters
        raise UsageError(
            f"time signature {text} is not in this model's vocabulary (bars of whole grid "
            f"steps up to {longest} quarters, denominators 2, 4, 8; e.g. 4/4, 3/4, 6/8)"
        )
    return signature


def parse_density(text: str) -> str:
    """ "low" / "medium" / "high" (any case) -> the word in DENSITY_WORDS; UsageError
    otherwise."""
    word = str(text).strip().lower()
    if word not in DENSITY_WORDS:
        raise UsageError(f"density must be one of {', '.join(DENSITY_WORDS)}, not {text!r}")
    return word


def density_choices(encoding: RemiEncoding, arrays: Iterable[np.ndarray]) -> dict[str, int]:
    """{word: Density level} measured on training id arrays: the level of the bar at
    each DENSITY_PERCENTILES percentile. Where low or high falls on medium's level
    (a corpus of even bars), it moves to the nearest level below (above) that the
    data has, else one level down (up) the scale. {} when the arrays hold no Density
    token (a model without controls)."""
    lo, hi = encoding.id_range.get(DENSITY, (0, 0))
    counts = np.zeros(DENSITY_LEVELS, dtype=np.int64)
    for ids in arrays:
        ids = np.asarray(ids)
        counts += np.bincount(ids[(ids >= lo) & (ids < hi)] - lo, minlength=DENSITY_LEVELS)
    if lo == hi or not counts.any():
        return {}
    cumulative = np.cumsum(counts) / counts.sum()
    low, medium, high = (int(np.searchsorted(cumulative, q / 100)) for q in DENSITY_PERCENTILES)
    seen = np.flatnonzero(counts)
    if low == medium:
        below = seen[seen < medium]
        low = int(below[-1]) if below.size else max(medium - 1, 0)
    if high == medium:
        above = seen[seen > medium]
        high = int(above[0]) if above.size else min(medium + 1, DENSITY_LEVELS - 1)
    return dict(zip(DENSITY_WORDS, (low, medium, high), strict=True))


def stored_density_choices(meta: dict) -> dict[str, int]:
    """The {word: level} a checkpoint's config.json metadata holds (`train` writes
    them under data.controls.density), else `default_density_choices()`."""
    data = meta.get("data")
    controls = data.get("controls") if isinstance(data, dict) else None
    levels = controls.get("density") if isinstance(controls, dict) else None
    if isinstance(levels, dict) and set(levels) == set(DENSITY_WORDS):
        if all(isinstance(v, int) and 0 <= v < DENSITY_LEVELS for v in levels.values()):
            return {word: levels[word] for word in DENSITY_WORDS}
    return default_density_choices()


def describe_density_choices(levels: dict[str, int], quarters: float = 4.0) -> str:
    """ "low 8-9.5, medium 16-19, high 19-22.6 notes per 4/4 bar" for {word: level}."""
    parts = []
    for word, level in levels.items():
        lo, hi = (x * quarters for x in density_range(level))
        parts.append(f"{word} {lo:.3g}-{hi:.3g}" if hi != math.inf else f"{word} {lo:.3g}+")
    return ", ".join(parts) + f" notes per {quarters:g}/4 bar"


def default_density_choices() -> dict[str, int]:
    """The levels of 2, 4 and 8 notes per quarter: for a checkpoint that has controls
    but no measured choices in its config.json."""
    return {word: density_level(per_quarter, 1.0) for word, per_quarter in _DEFAULT_DENSITY}


# ----------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class Controls:
    """The id each asked control forces (None: left to the model), in the order the
    tokens come in a piece. Build with `Controls.request`."""

    key: int | None = None
    density: int | None = None
    time_signature: int | None = None
    tempo: int | None = None
    groups: tuple[tuple[int, int], ...] = ()  # (first, end) id range of each forced id
    # with a key: bool[vocab] masks of the closing bars, the last bar's last (`cadence_masks`)
    closing: tuple[np.ndarray, ...] = field(default=(), compare=False, repr=False)
    bar_id: int = -1  # the Bar token's id, for the closing bars
    pitch_ids: tuple[int, int] = (0, 0)  # (first, end) id range of the Pitch tokens
    position_ids: tuple[int, int] = (0, 0)  # (first, end) id range of the Position tokens
    velocity_ids: tuple[int, int] = (0, 0)  # (first, end) id range of the Velocity tokens
    # with a key: bool[vocab], False at the Pitch ids that are not the tonic
    tonic: np.ndarray | None = field(default=None, compare=False, repr=False)
    cadence_key: tuple[int, int] | None = None  # with a key: (tonic pitch class, mode)
    # the ids to follow what each part sounds by, on an encoding that lists it (steps)
    sounding: SoundingIds | None = None

    @property
    def empty(self) -> bool:
        return not self.forced()

    def forced(self) -> list[tuple[tuple[int, int], int]]:
        """[((first, end) id range, forced id)] for each asked control, in token order."""
        ids = (self.key, self.density, self.time_signature, self.tempo)
        return [(group, i) for group, i in zip(self.groups, ids, strict=False) if i is not None]

    @classmethod
    def request(
        cls,
        encoding: Encoding,
        *,
        key: str | None = None,
        density: str | None = None,
        time_signature: str | None = None,
        tempo: float | None = None,
        density_levels: dict[str, int] | None = None,
        cadence: bool = True,
    ) -> Controls:
        """Check a request against the checkpoint's encoding; UsageError if it cannot
        be met. `tempo` (bpm) is forced as a Tempo token on remi checkpoints only (a
        performance piece has no tempo token; `generate` rewrites its tempo map).
        density_levels: the checkpoint's {word: level} (`stored_density_choices`;
        default `default_density_choices()`). cadence: with a key, also close every
        piece on a cadence in it (`CadenceGrammar`); False forces the Key tokens only."""
        asked_key = parse_key(key) if key is not None else None
        asked_density = parse_density(density) if density is not None else None
        if not isinstance(encoding, RemiEncoding):
            if key is not None or density is not None or time_signature is not None:
                raise UsageError(
                    "{key}, {density} and {time_signature} need a remi checkpoint; "
                    f"this one uses the {encoding.name} encoding",
                    key=param("key"),
                    density=param("density"),
                    time_signature=param("time_signature"),
                )
            return cls()
        if (key is not None or density is not None) and not encoding.config.controls:
            raise UsageError(
                "this model was trained without controls, so {key} and {density} cannot "
                "steer it; retrain with {controls}",
                key=param("key"),
                density=param("density"),
                controls=Words("controls=True", "`musicgen train --controls`"),
            )
        r, first = encoding.id_range, encoding.first_id
        empty = (0, 0)
        groups = (r.get(KEY, empty), r.get(DENSITY, empty), r[TIMESIG], r[TEMPO])
        key_id = density_id = signature_id = tempo_id = tonic_mask = None
        closing: tuple[np.ndarray, ...] = ()
        if asked_key is not None:
            tonic, mode = asked_key
            key_id = first[KEY] + 12 * mode + tonic
            closing = cadence_masks(encoding, tonic, mode) if cadence else ()
            tonic_mask = pitch_class_mask(encoding, tonic, (0,))
        if asked_density is not None:
            levels = density_levels or default_density_choices()
            density_id = first[DENSITY] + int(levels[asked_density])
        if time_signature is not None:
            signature = parse_time_signature(time_signature, encoding)
            signature_id = first[TIMESIG] + encoding.time_signatures.index(signature)
        if tempo is not None:
            tempo_id = first[TEMPO] + encoding.tempos.bin(tempo)
        kinds = dict(
            bar_id=first[BAR],
            pitch_ids=r[PITCH],
            position_ids=r[POSITION],
            velocity_ids=r[VELOCITY],
            tonic=tonic_mask,
            cadence_key=asked_key if closing else None,
            sounding=SoundingIds.of(encoding) if closing else None,
        )
        return cls(key_id, density_id, signature_id, tempo_id, groups, closing, **kinds)

    def wrap(
        self, grammar: Grammar, history: Iterable[int] = (), bars: int | None = None
    ) -> Grammar:
        """`grammar` itself when nothing is asked, else a ForcedGrammar around it, and
        with a key a CadenceGrammar around that. `history`: the ids the grammar has
        already read (BOS, a primer); `bars`: the piece's length in bars begun, primer
        included (default: the grammar's own `length`, as remi's grammars have; without
        one the closing bars are unknown and only the Key tokens are forced)."""
        if self.empty:
            return grammar
        history = list(history)
        bars = bars if bars is not None else getattr(grammar, "length", None)
        wrapped: Grammar = ForcedGrammar(grammar, self, history)
        if self.closing and bars is not None:
            wrapped = CadenceGrammar(wrapped, self, int(bars), history)
        return wrapped


# ----------------------------------------------------------------------------- the grammar


class ForcedGrammar(NarrowedGrammar):
    """A grammar whose mask is narrowed so that the asked controls hold.

    For each controlled group, `current` is the last id of the group read so far
    (None before any). When the inner grammar allows ids of the group, and either
    `current` is not the forced id or the grammar allows nothing else (a bar's Key
    and Density), only the forced id is allowed (the piece must say it now);
    otherwise no id of the group is (nothing may change it).
    """

    def __init__(self, grammar: Grammar, controls: Controls, history: Iterable[int] = ()):
        super().__init__(grammar)
        self.forced = controls.forced()
        self.current: list[int | None] = [None] * len(self.forced)
        for token_id in history:
            self._observe(int(token_id))

    def allowed(self) -> np.ndarray:
        inner = self.inner.allowed()
        mask = inner.copy()
        for g, ((lo, hi), forced) in enumerate(self.forced):
            if not mask[lo:hi].any():
                continue
            required = not mask[:lo].any() and not mask[hi:].any()
            if (self.current[g] != forced or required) and mask[forced]:
                mask[:] = False
                mask[forced] = True
            else:
                mask[lo:hi] = False
        return mask if mask.any() else inner  # never a dead end

    def _observe(self, token_id: int) -> None:
        for g, ((lo, hi), _) in enumerate(self.forced):
            if lo <= token_id < hi:
                self.current[g] = token_id


# ----------------------------------------------------------------------------- the cadence


def cadence_masks(encoding: RemiEncoding, tonic: int, mode: int) -> tuple[np.ndarray, ...]:
    """The `Controls.closing` masks of a piece in the key (tonic pitch class 0..11, mode
    index into MODES): APPROACH_BARS masks for the bars before the last (the key's scale,
    APPROACH_DEGREES: harmonic minor in minor), then one for the last bar (the tonic
    triad, FINAL_DEGREES). Each is bool[vocab], False only at the ids that sound a pitch
    (`encoding.pitch_id_ranges()`: Pitch, and the steps encoding's Hold, so that a note
    held into the closing bars is in the key too) of the other pitch classes: tokens of
    any other kind (a tracks encoding's drums among them) are never touched."""
    ranges = [(lo, hi + 1) for lo, hi in encoding.pitch_id_ranges()]
    approach = pitch_class_mask(encoding, tonic, APPROACH_DEGREES[mode], ranges)
    final = pitch_class_mask(encoding, tonic, FINAL_DEGREES[mode], ranges)
    return (approach,) * APPROACH_BARS + (final,)


def pitch_class_mask(
    encoding: RemiEncoding,
    tonic: int,
    degrees: Iterable[int],
    ranges: Iterable[tuple[int, int]] | None = None,
) -> np.ndarray:
    """bool[vocab]: False at the ids of `ranges` ((first, end) id ranges of pitch
    tokens; default the Pitch tokens) whose pitch class is not `degrees` semitones above
    `tonic`; True at every other id."""
    mask = np.ones(len(encoding.vocab), dtype=bool)
    for lo, hi in ranges or [encoding.id_range[PITCH]]:
        pitch_classes = (np.asarray(encoding.values[lo:hi]) - tonic) % 12
        mask[lo:hi] = np.isin(pitch_classes, list(degrees))
    return mask


class CadenceGrammar(NarrowedGrammar):
    """A grammar whose closing bars cadence in the asked key (see the module's notes).

    With `bars` the piece's length in bars and `inner.elapsed` the bars begun, the bar
    `k` bars before the last ANDs `controls.closing[-1 - k]` into the inner mask (the
    key's pitch classes, at every id that sounds a pitch). The lowest note of the last
    bar's chords is a tonic, by the rule that fits the order the encoding writes:

    - onsets (remi, tracks): the first pitched note after each Position (the onset's
      lowest note in remi, whose pitches rise within an onset; in tracks, whose parts
      come in a fixed order at an onset, the first part's note) must be a tonic, and
      EOS waits for a note of the last bar;
    - sounding sets (steps, `controls.sounding`: each step lists the parts that
      change, parts in header order and each part's notes highest first, and a part
      not listed goes on sounding): `_SoundingCadence`. The notes that sound at every
      step of the last bar, held ones and those of parts not listed included, are of
      the tonic triad with a tonic lowest, and in the bars before it of the scale.

    Ids are told apart by the id ranges the controls carry, so any remi-based encoding
    works and other kinds (drums) are never narrowed. The mask never narrows to
    nothing: where it would, the inner grammar's is used (a pitch outside the key,
    only if the grammar demands a pitch that none of the key's pitches can be).
    """

    def __init__(
        self, grammar: Grammar, controls: Controls, bars: int, history: Iterable[int] = ()
    ):
        super().__init__(grammar)
        self.closing, self.bars = controls.closing, bars
        self.bar_id, (self.pitch_lo, self.pitch_hi) = controls.bar_id, controls.pitch_ids
        self.position_lo, self.position_hi = controls.position_ids
        self.velocity_lo, self.velocity_hi = controls.velocity_ids
        self.tonic = controls.tonic
        self.notes_in_bar, self.onset = 0, False
        self.sounding: _SoundingCadence | None = None
        if controls.sounding is not None and controls.cadence_key is not None:
            self.sounding = _SoundingCadence(controls.sounding, *controls.cadence_key)
        for token_id in history:
            self._observe(int(token_id))

    def allowed(self) -> np.ndarray:
        inner = self.inner.allowed()
        left = self.bars - int(round(self.inner.elapsed))  # whole bars after this one
        if self.inner.elapsed < 1 or not 0 <= left < len(self.closing):
            return inner
        mask = inner & self.closing[-1 - left]
        if self.sounding is not None:
            self.sounding.narrow(mask, len(self.closing) - 1 - left)
        else:
            self._narrow_onsets(mask, inner, last=left == 0)
        return mask if mask.any() else inner  # never a dead end

    def _narrow_onsets(self, mask: np.ndarray, inner: np.ndarray, last: bool) -> None:
        """The onset rule (remi, tracks): a tonic first after a Position, EOS after a
        note of the last bar; no Velocity where no pitch of the key could follow."""
        if last and self.onset and self.tonic is not None:
            mask &= self.tonic
        if last and self.notes_in_bar == 0:
            mask[EOS] = False
        lo, hi = self.pitch_lo, self.pitch_hi
        if inner[lo:hi].any() and not mask[lo:hi].any():
            # no pitch of the key fits here (pitches rise within an onset): then no
            # Velocity either, where an encoding sets it before a pitch (tracks), or
            # the next pitch would have to leave the key
            mask[self.velocity_lo : self.velocity_hi] = False

    def _observe(self, token_id: int) -> None:
        if self.sounding is not None:
            self.sounding.observe(token_id)
        if token_id == self.bar_id:
            self.notes_in_bar = 0
        elif self.pitch_lo <= token_id < self.pitch_hi:
            self.notes_in_bar += 1
        if self.position_lo <= token_id < self.position_hi:
            self.onset = True  # until this onset's first pitched note
        elif self.pitch_lo <= token_id < self.pitch_hi or token_id == self.bar_id:
            self.onset = False


# ----------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class SoundingIds:
    """The id ranges ((first, end)) by which a stream that lists, at each step, the
    whole sounding set of the parts that change (steps: `Track_i`, then `Hold_n` for a
    note that goes on and `Pitch_n` for one that starts) is followed. Build with
    `SoundingIds.of(encoding)`."""

    programs: tuple[int, int]
    drums_program: int  # the Program id of a drum kit
    tracks: tuple[int, int]
    holds: tuple[int, int]
    pitches: tuple[int, int]
    drums: tuple[int, int]
    velocities: tuple[int, int]
    positions: tuple[int, int]
    bar: int
    pitch_min: int  # the pitch of the first Pitch and Hold id

    @classmethod
    def of(cls, encoding: Encoding) -> SoundingIds | None:
        """The ids of an encoding whose vocabulary has Hold and Track tokens, else None
        (its notes carry their own durations)."""
        r = getattr(encoding, "id_range", {})
        if HOLD not in r or TRACK not in r or PROGRAM not in r:
            return None
        return cls(
            programs=r[PROGRAM],
            drums_program=r[PROGRAM][0] + DRUM_PROGRAM,
            tracks=r[TRACK],
            holds=r[HOLD],
            pitches=r[PITCH],
            drums=r[DRUM],
            velocities=r[VELOCITY],
            positions=r[POSITION],
            bar=encoding.first_id[BAR],
            pitch_min=encoding.config.pitch_min,
        )


class _Sounding:
    """What each part of a steps stream sounds, read id by id (steps.py's rules): a
    Position opens a step; notes right after it belong to the part the stream goes
    on with, a Track opens another part's group; a group becomes what its part sounds
    when the next Track, Position, Bar or EOS closes it (an empty one silences the
    part); a part not listed goes on sounding. Drum parts never sound on."""

    def __init__(self, ids: SoundingIds):
        self.ids = ids
        self.drum: list[bool] = []  # per part, in header order
        self.notes: list[set[int]] = []  # per part: the pitches it sounds
        self.part: int | None = None  # the part whose group is open or goes on
        self.group: set[int] | None = None  # the open group's pitches so far
        self.at_position = False  # a Position read, its first group not begun
        self.stepped = False  # a Position read in this bar

    def observe(self, token_id: int) -> None:
        ids = self.ids
        if ids.programs[0] <= token_id < ids.programs[1]:
            self.drum.append(token_id == ids.drums_program)
            self.notes.append(set())
            return
        position = ids.positions[0] <= token_id < ids.positions[1]
        track = ids.tracks[0] <= token_id < ids.tracks[1]
        if position or track or token_id in (ids.bar, EOS):
            self._close(empty=not track)
        if position:
            self.at_position = self.stepped = True
        elif token_id == ids.bar:
            self.stepped = False
        elif track:
            self.part, self.group, self.at_position = token_id - ids.tracks[0], set(), False
        elif self._in(token_id, ids.pitches, ids.holds, ids.drums, ids.velocities):
            if self.group is None:  # the part that goes on, right after a Position
                self.group, self.at_position = set(), False
            for lo, hi in (ids.pitches, ids.holds):
                if lo <= token_id < hi:
                    self.group.add(token_id - lo + ids.pitch_min)

    @staticmethod
    def _in(token_id: int, *ranges: tuple[int, int]) -> bool:
        return any(lo <= token_id < hi for lo, hi in ranges)

    def _close(self, empty: bool) -> None:
        """The open group becomes its part's notes; `empty`: a Position with no group
        after it lists the part that goes on with no notes (a Track does not)."""
        if empty and self.at_position and self.part is not None:
            self.group = set()
        if self.group is not None and self.part is not None:
            self.notes[self.part] = set() if self.drum[self.part] else self.group
        self.group, self.at_position = None, False

    def closed(self) -> list[int]:
        """The pitches that would sound if the step ended now."""
        out: list[int] = []
        for part, notes in enumerate(self.notes):
            if part == self.part and self.group is not None:
                notes = self.group
            elif part == self.part and self.at_position:
                notes = set()
            if not self.drum[part]:
                out.extend(notes)
        return out

    def settled(self, upto: int) -> list[int]:
        """The pitches the parts before part `upto` sound at this step if the stream
        lists no more of them: the open group's (as far as written) for its part."""
        out: list[int] = []
        for part in range(min(upto, len(self.notes))):
            notes = self.notes[part]
            if part == self.part and self.group is not None:
                notes = self.group
            if not self.drum[part]:
                out.extend(notes)
        return out

    def pitched_from(self, part: int) -> bool:
        """Whether a pitched part comes at or after `part` in the header."""
        return not all(self.drum[part:])


class _SoundingCadence:
    """The closing bars on a sounding-set encoding (steps). With `ok` the pitches the
    bar may sound (the scale; in the last bar the tonic triad) the masks keep, at
    every moment, a way to a step whose sounding notes are all `ok` and, in the last
    bar, whose lowest note is a tonic:

    - a step ends (Position, Bar, EOS) only then, except that the bar's first step may
      come at its downbeat (Position_0) to mend what the bar took over; EOS only with
      a note sounding;
    - a Track only if the parts it passes over (they go on as they are) are `ok`, and
      in the last bar their lowest note is a tonic or a later pitched part could still
      sound a tonic below it;
    - a note (Pitch, Hold; its Velocity) of the open part, in the last bar, only if the
      lowest of it and the notes settled before it is a tonic, or a later pitched
      part could still sound one below. In a chorale (parts highest first, the bass
      last) the upper voices are free and the bass takes the tonic under them.
    """

    def __init__(self, ids: SoundingIds, tonic: int, mode: int):
        self.state = _Sounding(ids)
        self.ok = [_pitch_table(tonic, APPROACH_DEGREES[mode])] * APPROACH_BARS
        self.ok.append(_pitch_table(tonic, FINAL_DEGREES[mode]))
        self.tonic = _pitch_table(tonic, (0,))
        in_range = np.arange(128) >= ids.pitch_min
        # tonic_below[p]: a tonic in range lies below pitch p
        self.tonic_below = np.concatenate(([False], np.cumsum(self.tonic & in_range)[:-1] > 0))

    def observe(self, token_id: int) -> None:
        self.state.observe(token_id)

    def narrow(self, mask: np.ndarray, bar: int) -> None:
        """Narrow `mask` in closing bar `bar` (0-based; the last is APPROACH_BARS)."""
        if all(self.state.drum):
            return  # no pitched part (yet): nothing sounds a key
        ok, last = self.ok[bar], bar == len(self.ok) - 1
        self._ends(mask, ok, last)
        self._tracks(mask, ok, last)
        self._notes(mask, ok, last)

    def _fits(self, notes: list[int], ok: np.ndarray, last: bool, mendable: bool) -> bool:
        """Whether settled `notes` can be part of a closing step: all `ok`, and in the
        last bar some note sounding and the lowest a tonic (or, `mendable`, later parts
        could still add a tonic below)."""
        if not all(ok[p] for p in notes):
            return False
        if not last or not notes:
            return not last or mendable
        low = min(notes)
        return bool(self.tonic[low] or (mendable and self.tonic_below[low]))

    def _ends(self, mask: np.ndarray, ok: np.ndarray, last: bool) -> None:
        state, ids = self.state, self.state.ids
        sounding = state.closed()
        if not self._fits(sounding, ok, last, mendable=False):
            lo, hi = ids.positions
            downbeat = bool(mask[lo]) and not state.stepped
            mask[lo:hi] = False
            mask[lo] = downbeat
            mask[ids.bar] = mask[EOS] = False

    def _tracks(self, mask: np.ndarray, ok: np.ndarray, last: bool) -> None:
        state, (lo, hi) = self.state, self.state.ids.tracks
        for offset in np.flatnonzero(mask[lo:hi]):
            part = int(offset)
            mendable = state.pitched_from(part)
            if not self._fits(state.settled(part), ok, last, mendable):
                mask[lo + part] = False

    def _notes(self, mask: np.ndarray, ok: np.ndarray, last: bool) -> None:
        state, ids = self.state, self.state.ids
        part = state.part
        if part is None or part >= len(state.drum):
            return
        later = state.pitched_from(part + 1)
        if state.drum[part]:  # its hits settle the parts before it
            if not self._fits(state.settled(part), ok, last, mendable=later):
                mask[ids.drums[0] : ids.drums[1]] = False
                mask[ids.velocities[0] : ids.velocities[1]] = False
            return
        settled = state.settled(part) + sorted(state.group or ())
        fine = np.ones(128, dtype=bool)
        if not all(ok[p] for p in settled):
            fine[:] = False  # the parts before this one must be listed first
        elif last:
            lowest = np.minimum(np.arange(128), min(settled, default=127))
            fine = self.tonic[lowest] | (later & self.tonic_below[lowest])
        for lo, hi in (ids.pitches, ids.holds):
            mask[lo:hi] &= fine[ids.pitch_min : ids.pitch_min + hi - lo]
        top = ids.pitch_min + ids.pitches[1] - ids.pitches[0]  # above the highest Pitch
        ceiling = min(min(state.group) if state.group else top, top)  # a group's pitches fall
        pitch = np.arange(128)
        if not (fine & ok & (pitch >= ids.pitch_min) & (pitch < ceiling)).any():
            mask[ids.velocities[0] : ids.velocities[1]] = False  # no new note could follow


def _pitch_table(tonic: int, degrees: Iterable[int]) -> np.ndarray:
    """bool[128]: True at the MIDI pitches `degrees` semitones above `tonic` (mod 12)."""
    return np.isin((np.arange(128) - tonic) % 12, list(degrees))
