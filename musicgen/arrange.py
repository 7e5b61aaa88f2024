"""Working on a user's own song: new parts against it (`accompany`, `harmonize`) and
new bars inside it (`infill`), with every note of the user's kept exactly.

All three are one mechanism (musicgen.songplan): a `SongPlan` of what the stream must
hold and a keep grammar of the checkpoint's encoding (musicgen.keep_steps for steps,
musicgen.keep_tracks for tracks) that lets the model write only where a part is free. This
module reads the song, opens the checkpoint (a folder, or one already loaded: the API's
`Model` passes its own; `_Context`: what the model knows), samples
through `engine.sample_ids` (the recurrent state carries the whole song, so there is
no window limit; what the plan forces before the first free choice is stepped once, at
batch 1), and writes the pieces: the user's parts are the user's own `Part`s (pitch,
onset, duration, velocity, name, program as read), never their quantized tokens; only
the added or rewritten notes come from the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicgen.atomic import check_free
from musicgen.config import SampleConfig
from musicgen.encoding import BOS
from musicgen.encoding.base import Grammar
from musicgen.encoding.steps import StepsEncoding
from musicgen.encoding.tracks import TracksEncoding, canonical_parts
from musicgen.engine import (
    MAX_STEPS_PER_UNIT,
    CheckpointLike,
    checkpoint_settings,
    default_sample,
    hold_parts,
    load_model,
    resolve_engine,
    sample_ids,
)
from musicgen.errors import UsageError, UserError, Words, param
from musicgen.instruments import (
    family,
    known_requests,
    parse_instruments,
    stored_programs,
    track_names,
)
from musicgen.keep_steps import start_steps_grammar
from musicgen.keep_tracks import start_tracks_grammar
from musicgen.midi_io import read_pieces, write_midi
from musicgen.profiles import PartProfile, stored_profiles
from musicgen.score import DRUM_PROGRAM, MusicError, Part, Score
from musicgen.songplan import (
    SongPlan,
    ceiling,
    fit_around,
    forced_prefix,
    plan_song,
    song_harmony,
    token_times,
)


@dataclass
class Arrangement:
    """One written piece: the file, the song's parts and the parts the model wrote."""

    path: Path | None  # None when nothing was written (the Python API)
    bars: int
    kept: list[str]  # track names of the user's parts, note for note
    written: list[str]  # track names of the parts (or bars) the model wrote
    notes: int  # notes the model wrote
    score: float | None = None  # infill: log-likelihood (nats) of the kept bars after the window
    music: Score | None = field(default=None, repr=False)  # what was (or would be) written
    window: str = ""  # infill: the rewritten bars, "A-B"

    def summary(self) -> str:
        """One line for people: the file, its bars, what was kept and what was written."""
        wrote = ", ".join(self.written) or "-"
        if self.score is not None:  # infill: the written parts are kept outside the window
            return (
                f"{self.path}  {self.bars} bars  rewrote bars {self.window} of {wrote} "
                f"({self.notes} new notes, drums included); every other note kept"
            )
        kept = ", ".join(self.kept) or "-"
        return (
            f"{self.path}  {self.bars} bars  kept {kept}  wrote {wrote} "
            f"({self.notes} notes, drums included)"
        )


def accompany(
    checkpoint: CheckpointLike,
    song_path: str | Path,
    add: str,
    out_dir: str | Path | None,
    *,
    num: int = 1,
    sample: SampleConfig | None = None,
    force: bool = False,
    engine: str = "auto",
    on_file: Callable[[Arrangement], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> list[Arrangement]:
    """Write `num` arrangements of the song with new parts `add` (an `--instruments`
    list: families, program numbers, "drums") into `out_dir`, named
    f"{song stem}-accompany-{seed}-{i:02d}.mid". Every part of the song comes back note
    for note. A song that has drums gets new drums only with `force` (they replace the
    song's); existing files need `force` too."""
    sample = sample or default_sample()
    context = _Context.open(checkpoint, engine)
    song = read_song(song_path, on_note)
    requests = parse_instruments(add)
    if any(DRUM_PROGRAM in r for r in requests) and any(p.is_drum for p in song.parts):
        if not force:
            raise UsageError(
                f"{Path(song_path).name} already has drums; {{force}} replaces them",
                force=param("force", True),
            )
        song.parts = [p for p in song.parts if not p.is_drum]
    added = [context.known_program(r) for r in requests]
    paths = _paths(song_path, out_dir, "accompany", num, sample.seed, force)
    plan = context.plan(song, added, on_note=on_note)
    return _sample_and_write(context, plan, paths, sample, on_file)


def harmonize(
    checkpoint: CheckpointLike,
    melody_path: str | Path,
    out_dir: str | Path | None,
    *,
    num: int = 1,
    voices: int = 3,
    sample: SampleConfig | None = None,
    force: bool = False,
    engine: str = "auto",
    on_file: Callable[[Arrangement], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> list[Arrangement]:
    """Accompany a melody with `voices` voices of the model's own voice (its most
    common program: a chorale model's choir). Files are named
    f"{melody stem}-harmony-{seed}-{i:02d}.mid".

    Every note of the melody file is kept, note for note, on its own track: all its
    pitched parts (chords, overlapping notes, a second line) and its drums. The model
    hears the pitched parts as its own voice and writes the new voices below the
    melody's lowest sounding note at each grid step (where the melody rests, below the
    last one it sounded), so that the melody stays the top of the texture and no new
    voice crosses it; a voice note that the melody comes down onto ends there."""
    sample = sample or default_sample()
    context = _Context.open(checkpoint, engine)
    song = read_song(melody_path, on_note)
    pitched = [i for i, p in enumerate(canonical_parts(song)) if not p.is_drum]
    if not pitched:
        raise UserError("the melody file has no pitched notes")
    voice = context.most_common_program()
    paths = _paths(melody_path, out_dir, "harmony", num, sample.seed, force)
    forced = dict.fromkeys(pitched, voice)
    plan = context.plan(song, [voice] * voices, stream_programs=forced, on_note=on_note)
    plan.ceiling = ceiling(plan, [h for h, part in plan.user.items() if not part.is_drum])
    return _sample_and_write(context, plan, paths, sample, on_file)


def infill(
    checkpoint: CheckpointLike,
    song_path: str | Path,
    bars: str | tuple[int, int],
    out_dir: str | Path | None,
    *,
    tracks: str | None = None,
    num: int = 1,
    candidates: int = 16,
    sample: SampleConfig | None = None,
    force: bool = False,
    engine: str = "auto",
    on_file: Callable[[Arrangement], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> list[Arrangement]:
    """Rewrite bars A..B (`bars` = "A-B" or (A, B), 1-based, inclusive) of the song's
    parts, keeping every note outside them. The parts rewritten are those named in
    `tracks` (track names or families), by default those that play in the bars (a note
    sounds there): a part that rests there keeps resting. Each rewritten part's new
    notes keep to its register in the song (`songplan.part_register`). A one-directional
    model hears only what comes before, so for each piece `candidates` versions are
    sampled and the one under which the model finds the song's following bars most
    likely is kept (see checkpoints/README.md for the measurement behind this choice).
    Files: f"{song stem}-infill-{seed}-{i:02d}.mid"."""
    sample = sample or default_sample()
    if candidates < 1:
        raise UsageError(
            "{candidates} must be at least 1", candidates=param("candidates", candidates)
        )
    context = _Context.open(checkpoint, engine)
    song = read_song(song_path, on_note)
    parts = canonical_parts(song)
    first, last = parse_bars(bars)
    starts = bar_starts(context.encoding, song)
    if last > len(starts):
        raise UsageError(
            f"{{bars}}: the song has {len(starts)} bars", bars=_bars_param(bars, first, last)
        )
    window = (
        starts[first - 1],
        starts[last] if last < len(starts) else song_end(context.encoding, song),
    )
    chosen = choose_parts(parts, tracks, window)
    if not chosen:
        raise UsageError(
            f"no part plays in bars {first}-{last}; name the parts to write there with {{tracks}}",
            tracks=param("tracks"),
        )
    bars = f"{first}-{last}"
    paths = _paths(song_path, out_dir, "infill", num, sample.seed, force)
    plan = context.plan(song, [], window=window, rewrite=chosen, on_note=on_note)
    pieces = context.sample(plan, num * candidates, sample, score_from=window[1])
    best = []
    for i in range(num):
        group = pieces[i * candidates : (i + 1) * candidates]
        best.append(max(group, key=lambda piece: piece[1]))
    rewritten = {h for h in plan.rewrite}
    return [
        _write(context, plan, ids, path, on_file, rewritten=rewritten, score=score, window=bars)
        for path, (ids, score) in zip(paths, best, strict=True)
    ]


class _Context:
    """A checkpoint opened for work on a song: config, encoding, what it knows."""

    def __init__(
        self,
        checkpoint: CheckpointLike,
        config: Any,
        meta: dict,
        encoding: TracksEncoding,
        engine: str,
    ):
        self.checkpoint, self.config, self.meta, self.encoding = checkpoint, config, meta, encoding
        self.engine = resolve_engine(engine)
        self.programs = stored_programs(meta)

    @classmethod
    def open(cls, checkpoint: CheckpointLike, engine: str) -> _Context:
        found = checkpoint_settings(checkpoint)  # a loaded checkpoint's own, or config.json
        folder, config, meta = found.folder, found.config, found.meta
        if not found.encoding.keeps_songs:
            raise UsageError(
                f"{folder} uses the {config.encoding.name} encoding, which cannot keep a "
                "song; accompany, infill and harmonize need a checkpoint trained with "
                "--encoding steps (the default) or tracks"
            )
        return cls(checkpoint, config, meta, found.encoding, engine)

    def known_program(self, request: tuple[int, ...]) -> int:
        """The program of an asked part: of the request's programs the model knows, the
        one it saw in most pieces (UsageError naming what it knows if none)."""
        (seen,) = known_requests([request], self.programs)
        return max(seen, key=lambda p: (self.programs.get(p, 0), -p))

    def stream_program(self, program: int) -> int:
        """The program a user's part takes in the token stream: its own when the model
        knows it, else the model's most common program of its family, else its most
        common pitched program (the written file keeps the part's own program)."""
        if not self.programs or program in self.programs:
            return program
        same = [p for p in self.programs if family(p) == family(program)]
        if same:
            return max(same, key=lambda p: (self.programs[p], -p))
        return self.most_common_program() if program != DRUM_PROGRAM else program

    def most_common_program(self) -> int:
        pitched = {p: n for p, n in self.programs.items() if p != DRUM_PROGRAM}
        return max(pitched, key=lambda p: (pitched[p], -p)) if pitched else 0

    def plan(
        self,
        song: Score,
        added: list[int],
        *,
        stream_programs: dict[int, int] | None = None,
        on_note: Callable[[str], None] | None = None,
        **window: Any,
    ) -> SongPlan:
        """plan_song with the user's parts under the programs the model knows; a note
        (`on_note`) for the user's notes the model cannot hear (written all the same)."""
        parts = canonical_parts(song)
        if len(parts) + len(added) > self.encoding.config.max_parts:
            raise UsageError(
                f"the song has {len(parts)} parts; with {len(added)} more that is over "
                f"this model's {self.encoding.config.max_parts}"
            )
        forced = stream_programs or {}
        stream = [
            Part(forced.get(i, self.stream_program(p.program)), p.notes, p.name)
            for i, p in enumerate(parts)
        ]
        plan = plan_song(
            self.encoding,
            _same_times(song, stream),
            added,
            **window,
        )
        index = {id(part): i for i, part in enumerate(stream)}
        plan.user = {h: parts[index[id(part)]] for h, part in plan.user.items()}
        plan.song = song
        if plan.skipped and on_note is not None:
            c = self.encoding.config
            on_note(
                f"{plan.skipped} note(s) of the song lie outside this model's pitch range "
                f"({c.pitch_min}..{c.pitch_max}): they are written as they are, but the "
                "model does not hear them"
            )
        return plan

    def sample(
        self, plan: SongPlan, count: int, sample: SampleConfig, score_from: float | None = None
    ) -> list[tuple[list[int], float]]:
        """`count` pieces under the plan: (ids BOS..EOS, log-likelihood in nats of the
        tokens from `score_from` quarters on, 0 without it). What the plan forces before
        the first free choice (the header, an infill's bars before the window) is read
        once and stepped once, at batch 1, for every piece."""
        first = _start_grammar(self.encoding, plan, stored_profiles(self.meta))
        forced = forced_prefix(first)
        grammars = [first.clone() for _ in range(count)]
        model = load_model(self.checkpoint, self.engine)
        max_steps = MAX_STEPS_PER_UNIT * len(plan.bars)
        logprobs: list[list[float]] = [[] for _ in range(count)]
        prefix = [BOS, *forced]
        new_ids = sample_ids(model, grammars, prefix, sample, max_steps, logprobs=logprobs)
        out = []
        for ids, lps in zip(new_ids, logprobs, strict=True):
            total = 0.0
            if score_from is not None:
                times = token_times(self.encoding, plan, [*prefix, *ids])[len(prefix) :]
                step = round(score_from * self.encoding.config.steps_per_quarter)
                total = float(sum(lp for lp, t in zip(lps, times, strict=True) if t >= step))
            out.append(([*prefix, *ids], total))
        return out


def read_song(path: str | Path, on_note: Callable[[str], None] | None = None) -> Score:
    """The first piece of a MIDI or score file, drums alone allowed; UserError when it
    cannot be read or holds no notes."""
    try:
        pieces = read_pieces(path, allow_drums_only=True)
    except MusicError as exc:
        raise UserError(f"cannot use {path}: {exc}") from None
    if len(pieces) > 1 and on_note is not None:
        on_note(f"{Path(path).name} holds {len(pieces)} pieces: the first is used")
    return pieces[0]


def parse_bars(bars: str | tuple[int, int]) -> tuple[int, int]:
    """ "9-12" or (9, 12) -> (9, 12); "5" -> (5, 5). Bars count from 1. UsageError
    otherwise (in the caller's words: `bars=(0, 2)` or `--bars 0-2`)."""
    if isinstance(bars, str):
        pieces = bars.replace(" ", "").split("-")
        try:
            first, last = (int(pieces[0]), int(pieces[-1])) if len(pieces) <= 2 else (0, 0)
        except ValueError:
            first = last = 0
    else:
        try:
            first, last = (int(b) for b in bars)
        except (TypeError, ValueError):
            first = last = 0
    if not 1 <= first <= last:
        raise UsageError(
            "{bars}: bars go from A to B, counted from 1, with A <= B",
            bars=_bars_param(bars, first, last),
        )
    return first, last


def _bars_param(bars: str | tuple[int, int], first: int, last: int) -> Words:
    """The bars asked for as the caller gave them (`bars=(40, 44)`, `--bars 40-44`)."""
    shown = bars if isinstance(bars, str) else f"{first}-{last}"
    return param("bars", bars, shown)


def bar_starts(encoding: TracksEncoding, song: Score) -> list[float]:
    """Start of every bar of the song, in quarters."""
    spq = encoding.config.steps_per_quarter
    return [s / spq for s, _ in _song_bars(encoding, song)]


def song_end(encoding: TracksEncoding, song: Score) -> float:
    start, steps = _song_bars(encoding, song)[-1]
    return (start + steps) / encoding.config.steps_per_quarter


def _song_bars(encoding: TracksEncoding, song: Score) -> list[tuple[int, int]]:
    """(start step, steps) of every bar of the song up to its length, as the encoding
    lays it out."""
    layout = encoding.layout(_same_times(song, canonical_parts(song)))
    end = round(song.length * encoding.config.steps_per_quarter)
    bars = [(b.start, b.steps) for b in layout.bars]
    return [b for b in bars if b[0] < end] or bars[:1]


def _same_times(song: Score, parts: list[Part]) -> Score:
    """A score of `parts` with the song's tempos, metre and length."""
    return Score(
        parts=parts,
        tempos=list(song.tempos),
        time_signatures=list(song.time_signatures),
        end=song.length,
    )


def _start_grammar(
    encoding: TracksEncoding, plan: SongPlan, profiles: dict[str, PartProfile]
) -> Grammar:
    """The keep grammar of the encoding for `plan`, having read BOS; the parts the model
    writes held to their families' `profiles` (the song's kept parts never), an added
    bass to the song's harmony (`songplan.song_harmony`)."""
    if isinstance(encoding, StepsEncoding):
        grammar = start_steps_grammar(encoding, plan)
    else:
        grammar = start_tracks_grammar(encoding, plan)
    kept = [p for p in plan.user if p not in plan.rewrite]
    harmony = song_harmony(plan, encoding.config.steps_per_quarter)
    return hold_parts(grammar, encoding, profiles, exempt=kept, harmony=harmony)


def choose_parts(
    parts: list[Part], tracks: str | None, window: tuple[float, float] | None = None
) -> list[int]:
    """Indices of the parts `tracks` names (track names or families, comma-separated);
    without it, the parts with a note sounding in `window` (quarters; every part when
    no window is given). UsageError naming the song's parts for an unknown name."""
    if tracks is None:
        if window is None:
            return list(range(len(parts)))
        start, end = window
        return [
            i for i, p in enumerate(parts) if any(n.start < end and n.end > start for n in p.notes)
        ]
    names = [p.name or track_names([q.program for q in parts])[i] for i, p in enumerate(parts)]
    chosen = []
    for raw in tracks.split(","):
        word = raw.strip().lower()
        hits = [
            i for i, p in enumerate(parts) if names[i].lower() == word or family(p.program) == word
        ]
        if not hits:
            listed = ", ".join(
                f"{n} ({family(p.program)})" for n, p in zip(names, parts, strict=True)
            )
            raise UsageError(
                f"{{tracks}}: no part {raw.strip()!r} in the song; it has {listed}",
                tracks=param("tracks", tracks),
            )
        chosen += [i for i in hits if i not in chosen]
    return chosen


def _paths(
    song_path: str | Path, out_dir: str | Path | None, kind: str, num: int, seed: int, force: bool
) -> list[Path | None]:
    """f"{song stem}-{kind}-{seed}-{i:02d}.mid" in out_dir (None each: write nothing)."""
    if out_dir is None:
        return [None] * num
    stem = Path(song_path).stem
    paths = [Path(out_dir) / f"{stem}-{kind}-{seed}-{i + 1:02d}.mid" for i in range(num)]
    check_free(paths, force)
    return paths


def _sample_and_write(
    context: _Context,
    plan: SongPlan,
    paths: list[Path | None],
    sample: SampleConfig,
    on_file: Callable[[Arrangement], None] | None,
) -> list[Arrangement]:
    """One piece per path under the plan, sampled in one batch, then written."""
    pieces = context.sample(plan, len(paths), sample)
    return [
        _write(context, plan, ids, path, on_file, rewritten=set())
        for path, (ids, _) in zip(paths, pieces, strict=True)
    ]


def _song_parts(plan: SongPlan) -> list[Part]:
    """The user's parts in the song's order (as read; drum parts merged into one)."""
    users = list(plan.user.values())
    order = [p for p in plan.song.parts if any(p is u for u in users)]
    return order + [u for u in users if not any(u is p for p in order)]


def _write(
    context: _Context,
    plan: SongPlan,
    ids: list[int],
    path: Path | None,
    on_file: Callable[[Arrangement], None] | None,
    *,
    rewritten: set[int],
    score: float | None = None,
    window: str = "",
) -> Arrangement:
    """Decode a piece and write it: the user's parts as read (a rewritten part: its
    own notes outside the window, the model's inside), then the added parts."""
    decoded = context.encoding.decode(ids)
    names = track_names(plan.programs)
    spq = context.encoding.config.steps_per_quarter
    start, end = plan.window[0] / spq, plan.window[1] / spq
    mine: dict[int, Part] = {}  # id of a user's Part -> the part written for it
    added, kept, written, new_notes = [], [], [], 0
    for h, part in enumerate(decoded.parts):
        user = plan.user.get(h)
        if user is None:
            added.append(Part(part.program, part.notes, names[h]))
            written.append(names[h])
            new_notes += len(part.notes)
        elif h in rewritten:
            outside = [n for n in user.notes if not start <= n.start < end]
            inside = fit_around(outside, [n for n in part.notes if start <= n.start < end])
            notes = sorted([*outside, *inside], key=lambda n: (n.start, n.pitch))
            mine[id(user)] = Part(user.program, notes, user.name)
            written.append(user.name or names[h])
            new_notes += len(inside)
        else:
            mine[id(user)] = user
            kept.append(user.name or names[h])
    # the user's parts in the song's own order, then the new ones
    parts = [mine.get(id(p), p) for p in _song_parts(plan)] + added
    song = plan.song
    out = Score(
        tempos=list(song.tempos),
        time_signatures=list(song.time_signatures),
        key_signatures=list(song.key_signatures),
        end=max(decoded.length, song.length),
        parts=parts,
    )
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_midi(out, path)
    bars = len(_song_bars(context.encoding, out))
    result = Arrangement(path, bars, kept, written, new_notes, score, out, window)
    if on_file is not None:
        on_file(result)
    return result
