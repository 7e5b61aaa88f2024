"""`musicgen harmonize`: sample the other voices under a user's melody.

`harmonize()` runs these steps:

1. melody: `read_melody` reads the file and keeps one line: the highest note at each
   onset of the checkpoint's grid, each cut at the next onset (times in quarters);
2. plan: `plan_melody` encodes that line with the checkpoint's remi encoding, which
   fixes the bars (metre, tempo, count) and, per bar, each melody note's Position,
   Pitch, Velocity and Duration ids; `ceiling` holds, per grid step, the melody pitch
   the harmony must stay under (the note sounding, or the last one in a rest);
3. grammar: `HarmonyGrammar` wraps the encoding's grammar (length: the melody's bars)
   and narrows its mask. Each bar opens with the melody's TimeSig/Tempo (and, when
   the model has controls, the melody's key; the model picks each bar's density). A Position at every
   melody onset is forced: positions before it may be chosen freely, skipping past it
   is masked, and the bar cannot end while melody notes are missing. Remi lists a
   position's pitches in ascending order, so at a melody onset only pitches below the
   melody's, and no second, tritone or seventh below it (CLASHES), are allowed, then its
   own pitch is required (then its velocity and duration); after it, no more pitches
   there. Elsewhere every pitch stays under the ceiling. The model chooses the rest;
4. sample: the same network stepping as `generate` (`generate.sample_ids`), one
   Generator `default_rng([seed, piece])` per piece;
5. split: decode, take the melody's notes out (`harmonize_pieces` stops here), and
   write a MIDI file with the harmony on track 1 and the melody (its own velocities)
   on track 2 "melody".

Every melody note thus comes back exactly (pitch, onset, duration), whatever the
model, and every harmony note starts below the melody.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicgen import checkpoint as ckpt
from musicgen import generate as gen
from musicgen.config import RunConfig, SampleConfig
from musicgen.encoding.base import BOS, EOS, Grammar, NarrowedGrammar, get_encoding
from musicgen.encoding.remi import (
    BAR,
    DENSITY,
    DURATION,
    KEY,
    PITCH,
    POSITION,
    TEMPO,
    TIMESIG,
    VELOCITY,
    RemiEncoding,
)
from musicgen.errors import UsageError, UserError
from musicgen.midi_io import read_pieces, write_midi
from musicgen.score import MusicError, Note, Score

# Intervals (semitones below the melody, mod 12) that a harmony note starting together
# with a melody note may not form: seconds, the tritone and sevenths. In midi_corpus/
# they are 0.2% (m2), 1.9% (M2), 2.2% (tritone), 1.3% (m7) and 0.2% (M7) of the notes
# that start with a soprano note. The model picks an onset's lower voices before it
# reaches the melody's pitch (remi lists pitches upwards), so without this rule half
# its verticals at melody onsets were these (m2 alone 18%: its own top voice pushed
# just under the melody). Sustained notes stay free (suspensions, passing motion).
CLASHES = (1, 2, 6, 10, 11)

# ----------------------------------------------------------------------------- 1. melody


def read_melody(
    path: str | Path, encoding: RemiEncoding, on_note: Callable[[str], None] | None = None
) -> Score:
    """The melody line of a file on the encoding's grid: at each onset step its highest
    note (of those in the pitch range), cut at the next onset and at the longest
    duration. Times in quarters; the file's tempo and metre maps are kept. A file of
    several pieces (an ABC file of many tunes) gives its first, said to `on_note`.
    UserError if the file is unreadable or has no note in range."""
    try:
        pieces = read_pieces(path, include_drums=False)
    except MusicError as exc:
        raise UserError(f"cannot use melody {path}: {exc}") from None
    score = pieces[0]
    if len(pieces) > 1 and on_note is not None:
        on_note(f"{Path(path).name} holds {len(pieces)} pieces: the first is harmonized")
    config, spq = encoding.config, encoding.config.steps_per_quarter
    top: dict[int, Note] = {}
    for note in score.notes:
        onset = round(note.start * spq)
        if config.pitch_min <= note.pitch <= config.pitch_max:
            if onset not in top or note.pitch > top[onset].pitch:
                top[onset] = note
    if not top:
        raise UserError(
            f"cannot use melody {path}: no note within pitches "
            f"{config.pitch_min}..{config.pitch_max} of this model"
        )
    onsets = sorted(top)
    longest = config.max_duration_quarters * spq
    line = []
    for onset, following in zip(onsets, onsets[1:] + [None], strict=True):
        note = top[onset]
        steps = max(1, round(note.end * spq) - onset)
        steps = min(steps, longest, following - onset if following is not None else longest)
        line.append(Note(note.pitch, onset / spq, (onset + steps) / spq, note.velocity))
    return Score(
        notes=line,
        tempos=list(score.tempos),
        time_signatures=list(score.time_signatures),
        program=score.program,
    )


# ----------------------------------------------------------------------------- 2. plan


@dataclass
class MelodyNote:
    """One melody note as the ids it must be written with, in its bar."""

    position: int  # grid steps from the bar line
    pitch: int  # MIDI pitch
    pitch_id: int
    velocity_id: int
    duration_id: int


@dataclass
class PlanBar:
    """One bar of the melody: where it lies and what it must hold."""

    start: int  # grid steps from the start of the piece
    steps: int  # length in grid steps
    header: list[int]  # TimeSig / Tempo ids that open it, in order
    notes: list[MelodyNote] = field(default_factory=list)  # by position


@dataclass
class MelodyPlan:
    """What a harmonized piece must contain, from the melody's own encoding."""

    bars: list[PlanBar]
    controls: list[int]  # the melody's Key (and Density) ids, when the model has controls
    ceiling: np.ndarray  # int[total steps]: MIDI pitch the harmony stays under
    notes: list[Note]  # the melody as it will be written (quantized, binned velocity)


def plan_melody(encoding: RemiEncoding, melody: Score) -> MelodyPlan:
    """Encode `melody` and read its ids back into bars of melody notes; see MelodyPlan."""
    ids = encoding.encode(melody).ids.tolist()
    kinds, values = encoding.kinds.tolist(), encoding.values.tolist()
    bars: list[PlanBar] = []
    controls: list[int] = []
    start, steps, position = 0, 0, 0
    note: list[int] = []
    for token_id in ids[1:-1]:  # BOS ... EOS
        kind, value = kinds[token_id], values[token_id]
        if kind in (KEY, DENSITY):
            controls.append(token_id)
        elif kind == BAR:
            start += steps if bars else 0
            bars.append(PlanBar(start, steps, []))
        elif kind == TIMESIG:
            steps = encoding.bar_steps(encoding.time_signatures[value])
            bars[-1].steps = steps
            bars[-1].header.append(token_id)
        elif kind == TEMPO:
            bars[-1].header.append(token_id)
        elif kind == POSITION:
            position = value
        elif kind in (PITCH, VELOCITY):
            note.append(token_id)
        elif kind == DURATION:
            pitch_id, velocity_id = note
            pitch = values[pitch_id]
            bars[-1].notes.append(MelodyNote(position, pitch, pitch_id, velocity_id, token_id))
            note = []
    notes = encoding.decode(ids).notes
    total = bars[-1].start + bars[-1].steps
    return MelodyPlan(bars, controls, _ceiling(notes, total, encoding), notes)


def _ceiling(notes: list[Note], total: int, encoding: RemiEncoding) -> np.ndarray:
    """Per grid step, the pitch of the melody note that began last (the first note's
    before it begins): the harmony stays below it."""
    spq = encoding.config.steps_per_quarter
    onsets = np.array([round(n.start * spq) for n in notes])
    pitches = np.array([n.pitch for n in notes], dtype=np.int64)
    latest = np.searchsorted(onsets, np.arange(total), side="right") - 1
    return pitches[np.maximum(latest, 0)]


# ----------------------------------------------------------------------------- 3. grammar


class HarmonyGrammar(NarrowedGrammar):
    """A remi grammar narrowed so that the piece holds the melody of `plan` as its top
    voice (see the module docstring). `grammar` is a fresh grammar of the encoding
    with length len(plan.bars); this wrapper feeds it every id. `clashes`: intervals
    below the melody (semitones mod 12) forbidden to notes starting with it."""

    def __init__(
        self,
        grammar: Grammar,
        encoding: RemiEncoding,
        plan: MelodyPlan,
        clashes: tuple[int, ...] = CLASHES,
    ):
        super().__init__(grammar)
        self.enc, self.plan = encoding, plan
        self.clashes = np.array(sorted({c % 12 for c in clashes}), dtype=np.int64)
        self._kinds, self._values = encoding.kinds.tolist(), encoding.values.tolist()
        r = encoding.id_range
        self._pos0, self._pitch0, self._pitch_end = r[POSITION][0], r[PITCH][0], r[PITCH][1]
        self._pitch_min = encoding.config.pitch_min
        self._header = [r[TIMESIG], r[TEMPO]]
        self._key = next((i for i in plan.controls if self._kinds[i] == KEY), None)
        self.bar = -1  # index into plan.bars of the bar under way
        self.pending: list[int] = []  # header ids this bar still has to write
        self.next_note = 0  # index of the bar's next melody note
        self.position: int | None = None
        self.closed = False  # the melody note at this position is written: no more pitches
        self.forced: int | None = None  # the melody note's velocity or duration id, next

    def _melody(self) -> MelodyNote | None:
        """The next melody note of this bar, or None once they are all written."""
        notes = self.plan.bars[self.bar].notes if self.bar >= 0 else []
        return notes[self.next_note] if self.next_note < len(notes) else None

    def allowed(self) -> np.ndarray:
        mask = self.inner.allowed().copy()
        if self.forced is not None:
            return _only(mask, self.forced)
        r = self.enc.id_range
        if self._key is not None and mask[r[KEY][0] : r[KEY][1]].any():
            return _only(mask, self._key)
        if self.bar < 0:
            return mask
        if any(mask[lo:hi].any() for lo, hi in self._header):
            if self.pending:
                return _only(mask, self.pending[0])
            for lo, hi in self._header:
                mask[lo:hi] = False
        self._narrow_positions(mask)
        self._narrow_pitches(mask)
        return mask

    def _narrow_positions(self, mask: np.ndarray) -> None:
        """No skipping the next melody onset, no ending the bar before its last one, no
        free position where nothing fits under the ceiling."""
        bar, melody = self.plan.bars[self.bar], self._melody()
        room = self.plan.ceiling[bar.start : bar.start + bar.steps] > self._pitch_min
        if melody is not None:
            mask[self.enc.id_range[BAR][0]] = mask[EOS] = False
            room[melody.position + 1 :] = False
            room[melody.position] = True
        mask[self._pos0 : self._pos0 + bar.steps] &= room

    def _narrow_pitches(self, mask: np.ndarray) -> None:
        """At a melody onset: pitches up to the melody's, none of them a clash with it;
        after it: none; elsewhere: pitches under the ceiling."""
        if self.position is None:
            return
        melody = self._melody()
        if self.closed:
            top = self._pitch_min  # nothing
        elif melody is not None and melody.position == self.position:
            top = melody.pitch + 1
            below = np.arange(self._pitch_min, melody.pitch)
            clash = np.isin((melody.pitch - below) % 12, self.clashes)
            mask[self._pitch0 : self._pitch0 + below.size] &= ~clash
        else:
            top = int(self.plan.ceiling[self.plan.bars[self.bar].start + self.position])
        mask[self._pitch0 + max(top - self._pitch_min, 0) : self._pitch_end] = False

    def _observe(self, token_id: int) -> None:
        kind, value = self._kinds[token_id], self._values[token_id]
        melody = self._melody()
        if kind == BAR:
            self.bar += 1
            self.pending = list(self.plan.bars[self.bar].header)
            self.next_note, self.position, self.closed = 0, None, False
        elif kind in (TIMESIG, TEMPO) and self.pending and self.pending[0] == token_id:
            self.pending.pop(0)
        elif kind == POSITION:
            self.position, self.closed = value, False
        elif kind == PITCH and melody is not None and melody.position == self.position:
            if value == melody.pitch:
                self.forced = melody.velocity_id
        elif kind == VELOCITY and self.forced == token_id:
            self.forced = melody.duration_id if melody is not None else None
        elif kind == DURATION and self.forced == token_id:
            self.forced, self.closed, self.next_note = None, True, self.next_note + 1


def _only(mask: np.ndarray, token_id: int) -> np.ndarray:
    """A mask allowing `token_id` alone (the inner grammar must allow it)."""
    if not mask[token_id]:
        raise AssertionError(f"the grammar does not allow forced token id {token_id}")
    only = np.zeros_like(mask)
    only[token_id] = True
    return only


# ----------------------------------------------------------------------------- run


def harmonize(
    checkpoint_dir: gen.CheckpointLike,
    melody_path: str | Path,
    out_dir: str | Path,
    *,
    num: int = 1,
    sample: SampleConfig | None = None,
    force: bool = False,
    which: str = "best",
    engine: str = "auto",
    clashes: tuple[int, ...] = CLASHES,
    on_file: Callable[[Path, gen.GeneratedFile], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    verbose_tensorflow: bool = False,
) -> list[gen.GeneratedFile]:
    """Write `num` harmonizations of the melody in `melody_path` into `out_dir`, named
    f"{melody stem}-harmony-{seed}-{i:02d}.mid" (i from 1); existing files need
    `force`. The rest as for `harmonize_pieces`. Returns one GeneratedFile per piece;
    its `notes`/`lowest`/`highest` describe the harmony alone, `ids` the whole piece
    (melody included)."""
    sample = sample or gen.default_sample()
    job = _job(checkpoint_dir, melody_path, num, sample, on_note)
    paths = _paths(Path(melody_path), Path(out_dir), num, sample.seed, force)
    pieces = _sample(job, num, sample, which, engine, clashes, verbose_tensorflow)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for path, piece in zip(paths, pieces, strict=True):
        info = _write(piece, len(job.plan.bars), path)
        written.append(info)
        if on_file is not None:
            on_file(path, info)
    return written


@dataclass
class Harmonized:
    """One harmonized piece, before any file is written: track 1 `harmony` (named
    `track_name`), track 2 `melody` (the melody's own velocities and program)."""

    ids: list[int]  # the whole piece, BOS..EOS, melody included
    harmony: Score
    melody: Score
    track_name: str


def harmonize_pieces(
    checkpoint: gen.CheckpointLike,
    melody_path: str | Path,
    *,
    num: int = 1,
    sample: SampleConfig | None = None,
    which: str = "best",
    engine: str = "auto",
    clashes: tuple[int, ...] = CLASHES,
    on_note: Callable[[str], None] | None = None,
    verbose_tensorflow: bool = False,
) -> list[Harmonized]:
    """The `num` pieces `harmonize` would write, without writing anything.

    checkpoint: a remi checkpoint folder or a loaded `checkpoint.Checkpoint`.
    sample: temperature, top-k/p and seed (default the CLI's, temperature 0.8). clashes:
    intervals below the melody forbidden at its onsets (() allows any). engine: as
    for `generate`. on_note: called with remarks for the user (a melody file of
    several pieces)."""
    sample = sample or gen.default_sample()
    job = _job(checkpoint, melody_path, num, sample, on_note)
    return _sample(job, num, sample, which, engine, clashes, verbose_tensorflow)


@dataclass
class _Job:
    """What a harmonization is sampled from."""

    checkpoint: gen.CheckpointLike
    name: str  # the checkpoint folder's name
    encoding: RemiEncoding
    melody: Score  # as read (its own velocities and tempo map)
    plan: MelodyPlan


def _job(
    checkpoint: gen.CheckpointLike,
    melody_path: str | Path,
    num: int,
    sample: SampleConfig,
    on_note: Callable[[str], None] | None,
) -> _Job:
    """Check the request, read the checkpoint's config and the melody, plan the bars."""
    if num < 1:
        raise UsageError("--num must be at least 1")
    gen.check_sample(sample)
    if isinstance(checkpoint, ckpt.Checkpoint):
        folder, config = Path(checkpoint.info["path"]), checkpoint.config
        _require_remi(folder, config)
    else:
        folder = Path(checkpoint)
        config, _ = _read_remi_config(folder)
    encoding = get_encoding(config.encoding)
    melody = read_melody(melody_path, encoding, on_note)
    plan = plan_melody(encoding, melody)
    return _Job(checkpoint, folder.resolve().name, encoding, melody, plan)


def _sample(
    job: _Job,
    num: int,
    sample: SampleConfig,
    which: str,
    engine: str,
    clashes: tuple[int, ...],
    verbose_tensorflow: bool,
) -> list[Harmonized]:
    """Sample every piece under the melody (`generate.sample_ids`) and split it."""
    grammars = [_start(job.encoding, job.plan, clashes) for _ in range(num)]
    model = gen.load_model(job.checkpoint, engine, which, verbose_tensorflow)
    max_steps = gen.MAX_STEPS_PER_UNIT * len(job.plan.bars)
    new_ids = gen.sample_ids(model, grammars, [BOS], sample, max_steps)
    return [_split(job, [BOS, *ids]) for ids in new_ids]


def _read_remi_config(folder: Path) -> tuple[RunConfig, dict]:
    """The checkpoint's (RunConfig, meta); UsageError unless it is a remi checkpoint."""
    if not folder.is_dir():
        raise UsageError(f"no checkpoint folder at {folder}; pass --checkpoint")
    config, meta = ckpt.read_config(folder)
    _require_remi(folder, config)
    return config, meta


def _require_remi(folder: Path, config: RunConfig) -> None:
    if config.encoding.name != "remi":
        raise UsageError(
            f"harmonize needs a remi checkpoint; {folder} uses the {config.encoding.name} encoding"
        )


def _paths(melody_path: Path, out_dir: Path, num: int, seed: int, force: bool) -> list[Path]:
    paths = [out_dir / f"{melody_path.stem}-harmony-{seed}-{i + 1:02d}.mid" for i in range(num)]
    gen.check_free(paths, force)
    return paths


def _start(
    encoding: RemiEncoding, plan: MelodyPlan, clashes: tuple[int, ...] = CLASHES
) -> HarmonyGrammar:
    """A HarmonyGrammar that has read BOS."""
    grammar = HarmonyGrammar(encoding.grammar(len(plan.bars)), encoding, plan, clashes)
    grammar.advance(BOS)
    return grammar


def split_melody(score: Score, melody: Iterable[Note], steps_per_quarter: int) -> list[Note]:
    """The notes of `score` that are not melody notes (same onset step and pitch)."""
    spq = steps_per_quarter
    taken = {(round(n.start * spq), n.pitch) for n in melody}
    return [n for n in score.notes if (round(n.start * spq), n.pitch) not in taken]


def _split(job: _Job, ids: list[int]) -> Harmonized:
    """Decode one piece into its harmony (the melody's notes taken out) and the melody
    track (the melody's own velocities)."""
    encoding, plan, melody = job.encoding, job.plan, job.melody
    score = encoding.decode(ids)
    spq = encoding.config.steps_per_quarter
    harmony = Score(
        notes=split_melody(score, plan.notes, spq),
        tempos=list(melody.tempos),  # the melody's own tempo map, not the binned one
        time_signatures=list(score.time_signatures),
        end=score.end,
    )
    velocity = {(round(n.start * spq), n.pitch): n.velocity for n in melody.notes}
    line = [
        Note(n.pitch, n.start, n.end, velocity.get((round(n.start * spq), n.pitch), n.velocity))
        for n in plan.notes
    ]
    track = Score(notes=line, tempos=harmony.tempos, program=melody.program)
    return Harmonized(list(ids), harmony, track, f"{job.name} harmony")


def _write(piece: Harmonized, bars: int, path: Path) -> gen.GeneratedFile:
    """Write harmony + melody tracks; the piece's GeneratedFile."""
    harmony = piece.harmony
    write_midi(harmony, path, track_name=piece.track_name, melody=piece.melody)
    pitches = [n.pitch for n in harmony.notes]
    return gen.GeneratedFile(
        path=path,
        bars=bars,
        notes=len(harmony.notes),
        lowest=min(pitches, default=None),
        highest=max(pitches, default=None),
        seconds=harmony.duration_seconds,
        tokens=len(piece.ids) - 1,
        ids=list(piece.ids),
    )
