"""`musicgen generate`: sample new pieces from a checkpoint folder and write MIDI files.

A `GenerateRequest` holds what to generate (length, primer, steering, sampling, batch,
engine); its defaults are the CLI's. `sample_pieces(checkpoint, request)` does the
work without writing anything (`sample_scores` gives just the scores; the Python API's
`Model.generate` is built on it), `generate(checkpoint, out, request)` adds the files:

1. plan: check the request, read the checkpoint's config.json (no TensorFlow yet),
   pick the length (an encoding that `counts_bars` in bars, default 16; else in
   seconds, default 30; asking for the other unit is a UsageError); `generate` names the files
   `{prefix}-{seed}-{i:02d}.mid` and refuses any that exists without `force`;
2. primer (optional): read the file, encode it with the checkpoint's encoding,
   keep at most its last MAX_PRIMER_BARS bars (remi) or MAX_PRIMER_SECONDS seconds
   (performance), and drop its EOS; a remi primer is closed with a `Bar` so the new
   music starts on a fresh bar;
3. model and sampling (musicgen.engine, which accompany/infill/harmonize share):
   `load_model` for the chosen engine (numpy by default, keras on request; a loaded
   checkpoint's own model is reused), then `sample_ids`: all pieces advance together,
   one network step per token carrying the recurrent state (the primer is stepped
   once and its state copied to every piece). Each piece has its own grammar
   (`start_grammar`: `Encoding.grammar(length)`, narrowed to --instruments' parts - or,
   without them, to a line-up of the training files drawn per piece (`_lineup`) - each
   part held to its family's learned profile (`engine.hold_parts`), and wrapped by
   `constraints.ForcedGrammar` to impose --key/--density/--time-signature/--tempo) and
   its own Generator `default_rng([seed, piece])`, so piece i does not change when
   --num does; a piece in which a part --instruments asked for never plays is drawn
   again, while a drawn line-up's part that never plays is left out of its piece (a
   piece of a drawn band in which no pitched part plays is drawn again); a piece is
   drawn again as soon as it ends, in its row of the same batch (`sample_ids`' again),
   not in a second pass after the others;
4. decode ids -> Score and apply --tempo/--program (`Piece`); `generate` writes each
   with `midi_io.write_midi`.

The same checkpoint, request and seed give byte-identical files, and the same notes
through `sample_pieces`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicgen.atomic import check_free
from musicgen.config import ConfigError, RunConfig, SampleConfig
from musicgen.constraints import Controls, parse_key, stored_density_choices
from musicgen.encoding import BOS, REGISTRY, Encoding, Grammar
from musicgen.engine import (
    MAX_STEPS_PER_UNIT,
    CheckpointLike,
    checkpoint_settings,
    default_sample,
    load_model,
    resolve_engine,
    sample_ids,
    start_grammar,
)
from musicgen.errors import UsageError, UserError, Words, param
from musicgen.instruments import known_requests, parse_instruments, stored_programs, track_names
from musicgen.midi_io import read_pieces, read_score, write_midi
from musicgen.profiles import PartProfile, draw_lineup, stored_lineups, stored_profiles
from musicgen.score import DRUM_PROGRAM, MusicError, Note, Part, Score

DEFAULT_BARS = 16  # remi
DEFAULT_SECONDS = 30.0  # performance
MAX_PRIMER_BARS = 64  # a longer remi primer keeps only its last bars
MAX_PRIMER_SECONDS = 120.0  # a longer performance primer keeps only its last seconds
LINEUP_DRAW = 1  # the third seed word of a piece's line-up draw
SILENT_PART_DRAWS = 3  # new draws of a piece in which a part --instruments asked for never plays
TEMPO_RANGE = (10.0, 1000.0)  # beats per minute accepted by --tempo
PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass
class GenerateRequest:
    """What to generate. The defaults are `musicgen generate`'s with no options."""

    num: int = 4  # pieces, sampled together in one batch
    # Length of the new music per piece (after any primer): bars for remi checkpoints
    # (None = DEFAULT_BARS), seconds for performance ones (None = DEFAULT_SECONDS).
    bars: int | None = None
    seconds: float | None = None
    primer: str | Path | None = None  # a MIDI/score file the pieces continue (and start with)
    # Steering, imposed on every new bar by constrained decoding (musicgen.constraints);
    # None leaves it to the model. key/density need a model trained with controls.
    key: str | None = None  # e.g. "D minor", "F#", "Bb major", "Dm"
    density: str | None = None  # "low", "medium" or "high"
    time_signature: str | None = None  # e.g. "3/4"
    tempo: float | None = None  # beats per minute; replaces the written tempo map too
    program: int | None = None  # General MIDI program 0..127 of the track (default 0)
    # the parts of every piece (checkpoints with parts): an `--instruments` list of GM
    # families, program numbers and "drums"; None leaves them to the model
    instruments: str | None = None
    sample: SampleConfig = field(default_factory=default_sample)  # temperature, top-k/p, seed
    engine: str = "auto"  # "auto" (= "numpy"), "numpy" or "keras"

    def check(self) -> None:
        """UsageError (the CLI's message) for a setting out of range."""
        if self.num < 1:
            raise UsageError("{num} must be at least 1", num=param("num", self.num))
        if self.tempo is not None and not TEMPO_RANGE[0] <= self.tempo <= TEMPO_RANGE[1]:
            raise UsageError(
                f"{{tempo}} must lie in {TEMPO_RANGE[0]:g}..{TEMPO_RANGE[1]:g} bpm",
                tempo=param("tempo", self.tempo, f"{self.tempo:g}"),
            )
        if self.program is not None and not 0 <= self.program <= 127:
            raise UsageError("{program} must lie in 0..127", program=param("program", self.program))
        check_sample(self.sample)
        resolve_engine(self.engine)


@dataclass
class Piece:
    """One sampled piece, before any file is written."""

    ids: list[int]  # the whole piece as sampled, BOS..EOS, primer included
    new_tokens: int  # ids sampled after the primer, EOS included
    # decoded, with the request's tempo and program applied; a drawn line-up's parts
    # that play no note are left out (the header in `ids` still names them)
    score: Score
    track_name: str  # the name its MIDI track gets (the checkpoint folder's name)


@dataclass
class GeneratedFile:
    """One written piece. `bars` counts the primer's bars too; `seconds` is the
    length through the written tempo map."""

    path: Path
    bars: int
    notes: int
    lowest: int | None  # MIDI pitch; None when the piece has no notes
    highest: int | None
    seconds: float
    tokens: int  # ids sampled after the primer, EOS included
    ids: list[int] = field(default_factory=list, repr=False)  # the whole piece, BOS..EOS

    def summary(self) -> str:
        """One line for people, e.g. "generated/bach-0-01.mid  32 bars  412 notes  C2-A5"."""
        pitches = f"{pitch_name(self.lowest)}-{pitch_name(self.highest)}" if self.notes else "-"
        return f"{self.path}  {self.bars} bars  {self.notes} notes (drums included)  {pitches}"


def pitch_name(pitch: int | None) -> str:
    """MIDI pitch -> scientific pitch name (60 -> "C4")."""
    if pitch is None:
        return "-"
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


# ----------------------------------------------------------------------------- run


def generate(
    checkpoint_dir: CheckpointLike,
    out_dir: str | Path,
    request: GenerateRequest | None = None,
    *,
    force: bool = False,
    name_prefix: str | None = None,
    on_file: Callable[[Path, GeneratedFile], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    which: str = "best",
    verbose_tensorflow: bool = False,
    **settings: Any,
) -> list[GeneratedFile]:
    """Sample the pieces of `request` from the checkpoint and write them into `out_dir`.

    request: what to generate (GenerateRequest(); its defaults are the CLI's). Instead
             of a request, its fields may be given as keywords (`num=2, bars=4`).
    force:   overwrite existing files; without it an existing target is a UsageError
             (checked before any sampling).
    name_prefix: file names are f"{prefix}-{seed}-{i:02d}.mid", i from 1; the prefix
             defaults to the checkpoint folder's name.
    on_file(path, info): called after each file is written.
    on_note(message): called with remarks for the user (e.g. a truncated primer).
    which:   "best" or "last" weights. verbose_tensorflow: show TensorFlow's start-up log.
    Returns the files in piece order.
    """
    if request is not None and settings:
        raise TypeError("give either a GenerateRequest or its fields as keywords, not both")
    request = request if request is not None else GenerateRequest(**settings)
    request.check()
    plan = plan_request(checkpoint_dir, request)
    paths = [
        Path(out_dir) / f"{name_prefix or plan.name}-{request.sample.seed}-{i + 1:02d}.mid"
        for i in range(request.num)
    ]
    check_free(paths, force)
    pieces = _sample_pieces(plan, request, which, on_note, verbose_tensorflow)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for path, piece in zip(paths, pieces, strict=True):
        info = write_piece(piece, path)
        written.append(info)
        if on_file is not None:
            on_file(path, info)
    return written


def sample_pieces(
    checkpoint: CheckpointLike,
    request: GenerateRequest,
    *,
    which: str = "best",
    on_note: Callable[[str], None] | None = None,
    verbose_tensorflow: bool = False,
) -> list[Piece]:
    """The `request.num` pieces `generate` would write (the same ids and notes for
    the same checkpoint, request and seed), without writing anything.

    checkpoint: a folder or a loaded `checkpoint.Checkpoint` (reused when its model
    fits the request's engine). Raises UsageError/UserError with the CLI's messages."""
    request.check()
    return _sample_pieces(
        plan_request(checkpoint, request), request, which, on_note, verbose_tensorflow
    )


def sample_scores(
    checkpoint: CheckpointLike, request: GenerateRequest, **options: Any
) -> list[Score]:
    """The scores of `sample_pieces(checkpoint, request, **options)`."""
    return [piece.score for piece in sample_pieces(checkpoint, request, **options)]


def _sample_pieces(
    plan: Plan,
    request: GenerateRequest,
    which: str,
    on_note: Callable[[str], None] | None,
    verbose_tensorflow: bool,
) -> list[Piece]:
    """Steps 2-4 for a checked request and its plan."""
    encoding = plan.encoding
    controls = Controls.request(
        encoding,
        key=request.key,
        density=request.density,
        time_signature=request.time_signature,
        tempo=request.tempo,
        density_levels=plan.density_levels,
    )
    primer = request.primer
    prefix = primer_ids(encoding, Path(primer), on_note) if primer is not None else []
    asked = _instruments(plan, request, prefix)
    drawn = [None if asked else _lineup(plan, request, prefix, i) for i in range(request.num)]
    parts = [asked or drawn[i] for i in range(request.num)]

    def new_grammar(i: int) -> Grammar:
        return start_grammar(
            encoding,
            plan.length,
            prefix,
            controls,
            parts[i],
            profiles=plan.profiles,
            known=plan.programs,
        )

    grammars = [new_grammar(i) for i in range(request.num)]
    model = load_model(plan.checkpoint, request.engine, which, verbose_tensorflow)
    max_steps = int(MAX_STEPS_PER_UNIT * max(plan.length, 1.0))
    decoded: dict[int, Piece] = {}
    draws = [0] * request.num

    def again(i: int, ids: list[int]) -> tuple[Grammar, np.random.Generator] | None:
        """Decode piece i as it ends; draw it again (in the same pass) while it lacks
        what it was to have (`_lacking`), up to SILENT_PART_DRAWS times."""
        whole = [BOS, *prefix, *ids]
        decoded[i] = _piece(plan, request, whole, len(ids), drop_silent=drawn[i] is not None)
        if not parts[i] or draws[i] >= SILENT_PART_DRAWS or not _lacking(decoded[i], drawn[i]):
            return None  # parts[i] is never set with a primer (_instruments, _lineup)
        draws[i] += 1
        return new_grammar(i), np.random.default_rng([request.sample.seed, i, draws[i]])

    new_ids = sample_ids(model, grammars, [BOS, *prefix], request.sample, max_steps, again=again)
    pieces = [
        decoded.get(i)
        or _piece(plan, request, [BOS, *prefix, *ids], len(ids), drop_silent=drawn[i] is not None)
        for i, ids in enumerate(new_ids)
    ]
    _tell_lacking(pieces, drawn, on_note)
    return pieces


def _lineup(
    plan: Plan, request: GenerateRequest, prefix: list[int], piece: int
) -> list[tuple[int, ...]] | None:
    """Piece `piece`'s parts when --instruments is not given: a line-up of the training
    files (`profiles.draw_lineup`, seeded by `default_rng([seed, piece, LINEUP_DRAW])`)
    as --instruments would ask for it; None without stored line-ups or with a primer.
    A drawn part that plays no note is left out of the piece (`_piece`'s drop_silent),
    not drawn again: the line-up was the model's choice, not the user's; only a piece
    in which no pitched part plays is drawn again (`_lacking`)."""
    if prefix or not plan.lineups or not plan.encoding.has_parts:
        return None
    rng = np.random.default_rng([request.sample.seed, piece, LINEUP_DRAW])
    families = draw_lineup(plan.lineups, rng)
    if families is None:
        return None
    requests = known_requests(parse_instruments(",".join(families)), plan.programs)
    return requests[: plan.encoding.config.max_parts]


def _tell_lacking(
    pieces: list[Piece],
    drawn: list[list[tuple[int, ...]] | None],
    on_note: Callable[[str], None] | None,
) -> None:
    """Tell through on_note each piece that still lacks what it was to have after
    SILENT_PART_DRAWS new draws (`_lacking`: a part `--instruments` asked for that plays
    no note, since the grammar makes the header name every asked part, not each part
    play; or, for a drawn line-up `drawn[i]`, any pitched part that plays). Draw k of
    piece i used `default_rng([seed, i, k])`, in the same sampling pass as the others
    (`sample_ids`' again), so the other pieces stay as they were."""
    for i, piece in enumerate(pieces):
        if not _lacking(piece, drawn[i]) or on_note is None:
            continue
        what = (
            "no pitched part played a note"
            if drawn[i] is not None
            else f"{', '.join(_silent_parts(piece))} played no note"
        )
        on_note(f"piece {i + 1}: {what} in {SILENT_PART_DRAWS + 1} draws")


def _lacking(piece: Piece, drawn: list[tuple[int, ...]] | None) -> bool:
    """Whether a piece lacks what it was to have: with a drawn line-up (`drawn`, whose
    silent parts are left out, not drawn again), a pitched part that plays when the
    line-up has one (a band that came out as a groove alone); else any asked part that
    plays no note."""
    if drawn is None:
        return bool(_silent_parts(piece))
    pitched = any(program != DRUM_PROGRAM for request in drawn for program in request)
    return pitched and not any(part.notes and not part.is_drum for part in piece.score.parts)


def _silent_parts(piece: Piece) -> list[str]:
    """The names of the piece's parts that have no note (its header named them)."""
    return [part.name or f"program {part.program}" for part in piece.score.parts if not part.notes]


def _instruments(
    plan: Plan, request: GenerateRequest, prefix: list[int]
) -> list[tuple[int, ...]] | None:
    """The parts `--instruments` asks for, narrowed to those the model knows; None when
    not asked. UsageError for a checkpoint without parts, or with a primer (whose own
    parts a continuation keeps)."""
    if request.program is not None and plan.encoding.has_parts:
        raise UsageError(
            "{program} sets a one-part piece's instrument; use {instruments} here",
            program=param("program", request.program),
            instruments=param("instruments"),
        )
    if request.instruments is None:
        return None
    if not plan.encoding.has_parts:
        with_parts = " or ".join(name for name, cls in REGISTRY.items() if cls.has_parts)
        raise UsageError(
            f"{{instruments}} needs a multi-track ({with_parts}) checkpoint; {plan.name} uses "
            f"the {plan.encoding.name} encoding, which writes one part",
            instruments=param("instruments", request.instruments),
        )
    if prefix:
        raise UsageError(
            "{instruments} cannot change a primer's parts; use {accompany} to add parts",
            instruments=param("instruments", request.instruments),
            accompany=Words("Model.accompany", "`musicgen accompany`"),
        )
    requests = known_requests(parse_instruments(request.instruments), plan.programs)
    if len(requests) > plan.encoding.config.max_parts:
        raise UsageError(f"at most {plan.encoding.config.max_parts} parts can be asked for")
    return requests


def _piece(
    plan: Plan,
    request: GenerateRequest,
    ids: list[int],
    new_tokens: int,
    *,
    drop_silent: bool = False,
) -> Piece:
    """Decode one piece and apply the request's tempo, key and program. drop_silent (a
    drawn line-up): the parts that play no note are left out, no track of theirs
    written, and the others named as the parts that remain (`track_names`: "Guitar 1",
    "Guitar 2", not the header's "Guitar 2", "Guitar 5"), unless no part plays at all
    (then the piece is kept as decoded)."""
    score = plan.encoding.decode(ids)
    if drop_silent and any(part.notes for part in score.parts):
        playing = [part for part in score.parts if part.notes]
        names = track_names([part.program for part in playing])
        score.parts = [
            Part(part.program, part.notes, name) for part, name in zip(playing, names, strict=True)
        ]
    if request.tempo is not None:
        score.tempos = [(0.0, float(request.tempo))]
    if request.key is not None:  # the asked key as the file's key signature, for a DAW's score
        tonic, mode = parse_key(request.key)
        score.key_signatures = [(0.0, tonic + 12 * mode)]  # MIDI key numbers: minor 12..23
    if request.program is not None:  # a one-stream piece: its pitched part's program
        score.parts = [
            p if p.is_drum else Part(request.program, p.notes, p.name) for p in score.parts
        ]
    return Piece(ids=list(ids), new_tokens=new_tokens, score=score, track_name=plan.name)


# ----------------------------------------------------------------------------- 1. plan


@dataclass
class Plan:
    """What step 1 decides before any heavy work."""

    checkpoint: CheckpointLike  # the folder, or the loaded checkpoint given
    name: str  # the checkpoint folder's name: file prefix and track name
    config: RunConfig
    encoding: Encoding
    length: float  # bars (Encoding.counts_bars) or seconds of new music
    density_levels: dict[str, int]  # what --density's words mean (config.json data.controls)
    programs: dict[int, int] = field(default_factory=dict)  # known parts (data.programs)
    profiles: dict[str, PartProfile] | None = None  # each family's (data.profiles)
    lineups: dict[tuple[str, ...], int] = field(default_factory=dict)  # data.lineups


def plan_request(checkpoint: CheckpointLike, request: GenerateRequest) -> Plan:
    """Read the checkpoint's config (a loaded checkpoint's own) and choose the length;
    UsageError for a missing checkpoint folder or a length in the wrong unit."""
    settings = checkpoint_settings(checkpoint)
    return Plan(
        checkpoint=checkpoint,
        name=settings.folder.resolve().name,
        config=settings.config,
        encoding=settings.encoding,
        length=_length(settings.encoding, request.bars, request.seconds),
        density_levels=stored_density_choices(settings.meta),
        programs=stored_programs(settings.meta),
        profiles=stored_profiles(settings.meta),
        lineups=stored_lineups(settings.meta),
    )


def check_sample(sample: SampleConfig) -> None:
    """UsageError (the CLI's message) for sampling settings out of range."""
    if sample.seed < 0:
        raise UsageError("{seed} must be at least 0", seed=param("seed", sample.seed))
    try:
        sample.validate()
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def _length(encoding: Encoding, bars: int | None, seconds: float | None) -> float:
    """New bars (`Encoding.counts_bars`) or seconds per piece."""
    if encoding.counts_bars:
        if seconds is not None:
            raise UsageError(
                f"this checkpoint's {encoding.name} encoding counts bars: use {{bars}}, not "
                "{seconds}",
                bars=param("bars"),
                seconds=param("seconds", seconds, f"{seconds:g}"),
            )
        length = DEFAULT_BARS if bars is None else bars
        if length < 1:
            raise UsageError("{bars} must be at least 1", bars=param("bars", length))
        return float(length)
    if bars is not None:
        raise UsageError(
            f"this checkpoint's {encoding.name} encoding counts seconds: use {{seconds}}, not "
            "{bars}",
            seconds=param("seconds"),
            bars=param("bars", bars),
        )
    length = DEFAULT_SECONDS if seconds is None else seconds
    if length <= 0:
        raise UsageError(
            "{seconds} must be more than 0", seconds=param("seconds", length, f"{length:g}")
        )
    return float(length)


# ----------------------------------------------------------------------------- 2. primer


def primer_ids(encoding: Encoding, path: Path, on_note: Callable[[str], None] | None) -> list[int]:
    """The primer's ids after BOS, without EOS, truncated to its last bars/seconds;
    remi primers end with an extra `Bar` (the new music opens a bar of its own)."""
    try:
        drums_only = encoding.has_parts  # a drum groove is music with parts
        pieces = read_pieces(path, encoding.config.include_drums, allow_drums_only=drums_only)
    except MusicError as exc:
        raise UserError(f"cannot use primer {path}: {exc}") from None
    score = pieces[0]
    if len(pieces) > 1 and on_note is not None:
        on_note(f"primer {path.name} holds {len(pieces)} pieces: the first is used")
    ids = encoding.encode(score).ids
    quantized = encoding.decode(ids)
    start, why = _primer_cut(encoding, quantized)
    if start > 0:
        ids = encoding.encode(_tail(quantized, start)).ids
        if on_note is not None:
            on_note(f"primer {path.name} is long: only its last {why} are used")
    body = [int(i) for i in ids[1:-1]]  # drop BOS and EOS
    if encoding.counts_bars:
        body.append(encoding.vocab.id("Bar"))
    return body


def _primer_cut(encoding: Encoding, score: Score) -> tuple[float, str]:
    """Where (quarters) a too-long quantized primer is cut, and what is kept, in words."""
    if encoding.counts_bars:
        starts = _bar_starts(score)
        if len(starts) <= MAX_PRIMER_BARS:
            return 0.0, ""
        return starts[-MAX_PRIMER_BARS], f"{MAX_PRIMER_BARS} bars"
    total = score.duration_seconds
    if total <= MAX_PRIMER_SECONDS:
        return 0.0, ""
    return score.quarters_at(total - MAX_PRIMER_SECONDS), f"{MAX_PRIMER_SECONDS:g} seconds"


def _bar_starts(score: Score) -> list[float]:
    """Bar lines (quarters) of a score through its time-signature map, up to its length."""
    starts, now = [], 0.0
    while now < score.length - 1e-9:
        starts.append(now)
        num, den = score.time_signature_at(now)
        now += num * 4 / den
    return starts


def _tail(score: Score, start: float) -> Score:
    """The part of `score` from `start` (quarters) on, moved to begin at 0, each part
    kept apart. Notes that begin before `start` are left out; the tempo and metre in
    force at `start` open it."""
    parts = []
    for part in score.parts:
        kept = [n for n in part.notes if n.start >= start]
        moved = [Note(n.pitch, n.start - start, n.end - start, n.velocity) for n in kept]
        parts.append(Part(part.program, moved, part.name))
    tempos = [(0.0, score.tempo_at(start))]
    tempos += [(q - start, bpm) for q, bpm in score.tempos if q > start]
    signatures = [(0.0, *score.time_signature_at(start))]
    signatures += [(q - start, n, d) for q, n, d in score.time_signatures if q > start]
    return Score(parts, tempos, signatures, end=score.length - start)


# ----------------------------------------------------------------------------- 4. write


def write_piece(piece: Piece, path: Path) -> GeneratedFile:
    """Write one piece's score as a MIDI file; its GeneratedFile."""
    score = piece.score
    write_midi(score, path, track_name=piece.track_name)
    pitches = [n.pitch for n in score.notes]
    return GeneratedFile(
        path=path,
        bars=len(_bar_starts(score)),
        notes=score.note_count,
        lowest=min(pitches, default=None),
        highest=max(pitches, default=None),
        seconds=score.duration_seconds,
        tokens=piece.new_tokens,
        ids=list(piece.ids),
    )


# ----------------------------------------------------------------------------- extras


def write_companions(
    files: list[GeneratedFile],
    *,
    plot: bool = False,
    render: str | None = None,
    soundfont: str | Path | None = None,
) -> list[Path]:
    """Beside each MIDI file: a piano-roll PNG (plot) and/or a WAV (render="wav").

    Returns the paths written. Raises render.RenderUnavailableError (one line saying
    what is missing: the synthesizer or a soundfont) before rendering anything when
    audio cannot be made; the MIDI files are already written by then.
    """
    written: list[Path] = []
    if plot:
        from musicgen.plots import plot_piano_roll

        for info in files:
            score = read_score(info.path)
            written.append(plot_piano_roll(score, info.path.with_suffix(".png"), info.path.name))
    if render == "wav":
        from musicgen.render import check_available, render_wav

        check_available(soundfont)  # fail early, saying what to install
        for info in files:
            written.append(render_wav(info.path, info.path.with_suffix(".wav"), soundfont))
    return written
