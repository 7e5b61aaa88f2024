"""`musicgen generate`: sample new pieces from a checkpoint folder and write MIDI files.

`generate()` runs these steps:

1. plan: check the options, read the checkpoint's config.json (no TensorFlow yet),
   pick the length (remi counts bars, default 16; performance counts seconds,
   default 30; asking for the other unit is a UsageError), name the files
   `{prefix}-{seed}-{i:02d}.mid` and refuse any that exists without `force`;
2. primer (optional): read the file, encode it with the checkpoint's encoding,
   keep at most its last MAX_PRIMER_BARS bars (remi) or MAX_PRIMER_SECONDS seconds
   (performance), and drop its EOS; a remi primer is closed with a `Bar` so the new
   music starts on a fresh bar;
3. model: `checkpoint.load_checkpoint` (best weights) for the chosen engine:
   - "numpy" (the default; --engine auto): `npmodel.NumpyRNN` reads the weights
     with h5py and steps in NumPy on one BLAS thread. TensorFlow is never
     imported, so the command starts in well under a second, and a step at
     batch 1..16 costs tens to hundreds of microseconds instead of TensorFlow's
     ~1 ms dispatch;
   - "keras": `MusicRNN` and one compiled `tf.function(model.step)` with a fixed
     [num] batch shape - worth its start-up only on a GPU with a very large --num;
   both give the same logits to float rounding (~1e-6), hence the same files;
4. sample: all pieces advance together, one network step per token carrying the
   recurrent state (the primer is fed the same way; NumPy steps it once at
   batch 1 and copies the state to every piece). Each piece has its own
   grammar (`Encoding.grammar(length)`, wrapped by `constraints.ForcedGrammar` to
   impose --key/--density/--time-signature/--tempo) and its own Generator
   `default_rng([seed, piece])`, so piece i does not change when --num does.
   Finished pieces are fed PAD and leave the sampling; a hard cap on steps raises
   a UserError;
5. write: decode ids -> Score, apply --tempo/--program, `midi_io.write_midi`.

The same checkpoint, options and seed give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicgen import checkpoint as ckpt
from musicgen.config import ConfigError, RunConfig, SampleConfig
from musicgen.constraints import Controls, stored_density_choices
from musicgen.encoding.base import BOS, PAD, Encoding, Grammar, get_encoding
from musicgen.errors import UsageError, UserError
from musicgen.midi_io import read_pieces, read_score, write_midi
from musicgen.npmodel import NumpyRNN, one_blas_thread
from musicgen.runtime import import_tensorflow
from musicgen.score import MusicError, Note, Score

DEFAULT_BARS = 16  # remi
DEFAULT_SECONDS = 30.0  # performance
MAX_PRIMER_BARS = 64  # a longer remi primer keeps only its last bars
MAX_PRIMER_SECONDS = 120.0  # a longer performance primer keeps only its last seconds
MAX_STEPS_PER_UNIT = 2000  # safety net: tokens per bar (remi) or per second (performance)
TEMPO_RANGE = (10.0, 1000.0)  # beats per minute accepted by --tempo
ENGINES = ("auto", "numpy", "keras")  # --engine values; auto = numpy
PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


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
        return f"{self.path}  {self.bars} bars  {self.notes} notes  {pitches}"


def pitch_name(pitch: int | None) -> str:
    """MIDI pitch -> scientific pitch name (60 -> "C4")."""
    if pitch is None:
        return "-"
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass
class _Plan:
    """What step 1 decides before any heavy work."""

    config: RunConfig
    length: float  # bars (remi) or seconds (performance) of new music
    paths: list[Path]
    track_name: str
    density_levels: dict[str, int]  # what --density's words mean (config.json data.controls)


def generate(
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    *,
    num: int = 4,
    bars: int | None = None,
    seconds: float | None = None,
    sample: SampleConfig | None = None,
    primer: str | Path | None = None,
    tempo: float | None = None,
    program: int | None = None,
    force: bool = False,
    name_prefix: str | None = None,
    on_file: Callable[[Path, GeneratedFile], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    which: str = "best",
    verbose_tensorflow: bool = False,
    engine: str = "auto",
    key: str | None = None,
    density: str | None = None,
    time_signature: str | None = None,
) -> list[GeneratedFile]:
    """Sample `num` pieces from the checkpoint in `checkpoint_dir` into `out_dir`.

    bars:    remi checkpoints: new bars per piece (after the primer), default 16.
    seconds: performance checkpoints: new seconds per piece, default 30.
    sample:  temperature, top-k, top-p and the seed (default SampleConfig()).
    primer:  a MIDI/score file the pieces continue; the output starts with it.
    tempo:   beats per minute replacing the whole tempo map (a performance piece's
             length in seconds then scales by 120 / tempo).
    program: General MIDI program 0..127 of the written track (default 0).
    force:   overwrite existing files; without it an existing target is a UsageError.
    name_prefix: file names are f"{prefix}-{seed}-{i:02d}.mid", i from 1; the prefix
             defaults to the checkpoint folder's name.
    on_file(path, info): called after each file is written.
    on_note(message): called with remarks for the user (e.g. a truncated primer).
    which:   "best" or "last" weights. verbose_tensorflow: show TensorFlow's start-up log.
    engine:  "auto" (= "numpy"), "numpy" (NumpyRNN, no TensorFlow) or "keras"
             (tf.function(MusicRNN.step); worth it on a GPU with a very large `num`).
    key, density, time_signature: controls imposed on every new bar of every piece by
             constrained decoding (musicgen.constraints), e.g. "D minor", "low", "3/4"
             (a primer's own bars keep theirs); key and density need a checkpoint
             trained with controls, the metre and --tempo (as the opening Tempo
             token) work on any remi checkpoint.
    Returns the files in piece order.
    """
    sample = sample or SampleConfig()
    _check_options(num, sample, tempo, program)
    engine = _engine(engine)
    plan = _plan(checkpoint_dir, out_dir, num, bars, seconds, sample.seed, name_prefix, force)
    encoding = get_encoding(plan.config.encoding)
    controls = Controls.request(
        encoding,
        key=key,
        density=density,
        time_signature=time_signature,
        tempo=tempo,
        density_levels=plan.density_levels,
    )
    prefix = _primer_ids(encoding, Path(primer), on_note) if primer is not None else []
    grammars = [_start_grammar(encoding, plan.length, prefix, controls) for _ in range(num)]

    if engine == "keras":
        import_tensorflow(verbose=verbose_tensorflow)  # before checkpoint.py imports Keras
    loaded = ckpt.load_checkpoint(checkpoint_dir, which=which, engine=engine)
    rngs = [np.random.default_rng([sample.seed, i]) for i in range(num)]
    max_steps = int(MAX_STEPS_PER_UNIT * max(plan.length, 1.0))
    new_ids = _sample(loaded.model, grammars, [BOS, *prefix], sample, rngs, max_steps)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, ids in zip(plan.paths, new_ids, strict=True):
        info = _write(encoding, [BOS, *prefix, *ids], path, tempo, program, plan.track_name)
        info.tokens = len(ids)  # the new ones
        written.append(info)
        if on_file is not None:
            on_file(path, info)
    return written


# ----------------------------------------------------------------------------- 1. plan


def _check_options(
    num: int, sample: SampleConfig, tempo: float | None, program: int | None
) -> None:
    """UsageError for an option out of range."""
    if num < 1:
        raise UsageError("--num must be at least 1")
    if tempo is not None and not TEMPO_RANGE[0] <= tempo <= TEMPO_RANGE[1]:
        raise UsageError(f"--tempo must lie in {TEMPO_RANGE[0]:g}..{TEMPO_RANGE[1]:g} bpm")
    if program is not None and not 0 <= program <= 127:
        raise UsageError("--program must lie in 0..127")
    try:
        sample.validate()
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def _engine(engine: str) -> str:
    """The engine an --engine value names: "numpy" ("auto" too) or "keras"; else UsageError."""
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    return "numpy" if engine == "auto" else engine


def _plan(
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    num: int,
    bars: int | None,
    seconds: float | None,
    seed: int,
    name_prefix: str | None,
    force: bool,
) -> _Plan:
    """Read the checkpoint's config, choose the length and the file names; UsageError
    for a missing checkpoint, a length in the wrong unit, or files in the way."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise UsageError(
            f"no checkpoint folder at {folder}; train one with "
            f"`musicgen train DATA_DIR --out {folder}` or pass --checkpoint"
        )
    config, meta = ckpt.read_config(folder)
    length = _length(config.encoding.name, bars, seconds)
    prefix = name_prefix or folder.resolve().name
    paths = [Path(out_dir) / f"{prefix}-{seed}-{i + 1:02d}.mid" for i in range(num)]
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(f"{existing[0]} exists{more}; use --force to overwrite")
    levels = stored_density_choices(meta)
    return _Plan(config, length, paths, folder.resolve().name, levels)


def _length(encoding_name: str, bars: int | None, seconds: float | None) -> float:
    """New bars (remi) or seconds (performance) per piece."""
    if encoding_name == "remi":
        if seconds is not None:
            raise UsageError(
                "this checkpoint's remi encoding counts bars: use --bars, not --seconds"
            )
        length = DEFAULT_BARS if bars is None else bars
        if length < 1:
            raise UsageError("--bars must be at least 1")
        return float(length)
    if bars is not None:
        raise UsageError(
            "this checkpoint's performance encoding counts seconds: use --seconds, not --bars"
        )
    length = DEFAULT_SECONDS if seconds is None else seconds
    if length <= 0:
        raise UsageError("--seconds must be more than 0")
    return float(length)


# ----------------------------------------------------------------------------- 2. primer


def _primer_ids(encoding: Encoding, path: Path, on_note: Callable[[str], None] | None) -> list[int]:
    """The primer's ids after BOS, without EOS, truncated to its last bars/seconds;
    remi primers end with an extra `Bar` (the new music opens a bar of its own)."""
    try:
        pieces = read_pieces(path, include_drums=encoding.config.include_drums)
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
    if encoding.name == "remi":
        body.append(encoding.vocab.id("Bar"))
    return body


def _primer_cut(encoding: Encoding, score: Score) -> tuple[float, str]:
    """Where (quarters) a too-long quantized primer is cut, and what is kept, in words."""
    if encoding.name == "remi":
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
    """The part of `score` from `start` (quarters) on, moved to begin at 0. Notes that
    begin before `start` are left out; the tempo and metre in force at `start` open it."""
    notes = [
        Note(n.pitch, n.start - start, n.end - start, n.velocity)
        for n in score.notes
        if n.start >= start
    ]
    tempos = [(0.0, score.tempo_at(start))]
    tempos += [(q - start, bpm) for q, bpm in score.tempos if q > start]
    signatures = [(0.0, *score.time_signature_at(start))]
    signatures += [(q - start, n, d) for q, n, d in score.time_signatures if q > start]
    return Score(notes, tempos, signatures, program=score.program, end=score.length - start)


def _start_grammar(
    encoding: Encoding, length: float, prefix: list[int], controls: Controls | None = None
) -> Grammar:
    """A grammar that has read BOS and the primer, wrapped to impose `controls`. The
    length counts the primer too: its bars begun (remi, the closing Bar excluded) or
    its seconds (performance)."""
    probe = encoding.grammar()
    for token_id in [BOS, *prefix]:
        probe.advance(token_id)
    already = probe.elapsed - 1 if encoding.name == "remi" and prefix else probe.elapsed
    grammar = encoding.grammar(length + already)
    for token_id in [BOS, *prefix]:
        grammar.advance(token_id)
    return grammar if controls is None else controls.wrap(grammar, [BOS, *prefix])


# ----------------------------------------------------------------------------- 3-4. sample


def _sample(
    model: Any,
    grammars: list[Grammar],
    prefix: list[int],
    config: SampleConfig,
    rngs: list[np.random.Generator],
    max_steps: int,
) -> list[list[int]]:
    """Step the network (a `NumpyRNN` or a keras `MusicRNN`) over `prefix` (shared by
    every piece), then sample until every grammar is done. Returns each piece's new
    ids (EOS included)."""
    with one_blas_thread():  # the NumPy step's small products run best on one thread
        return _sample_loop(model, grammars, prefix, config, rngs, max_steps)


def _sample_loop(
    model: Any,
    grammars: list[Grammar],
    prefix: list[int],
    config: SampleConfig,
    rngs: list[np.random.Generator],
    max_steps: int,
) -> list[list[int]]:
    """`_sample`'s work: one step for the whole batch, then per live piece its mask,
    its draw and its grammar's advance; finished pieces drop out of the sampling."""
    from musicgen.sampling import sample_next

    num = len(grammars)
    step = _step_function(model, num, prefix[:-1])  # the last one is fed by the loop below
    last = np.full(num, prefix[-1], dtype=np.int32)
    new_ids: list[list[int]] = [[] for _ in range(num)]
    masks = np.zeros((num, len(grammars[0].allowed())), dtype=bool)
    active = [i for i, g in enumerate(grammars) if not g.done]
    for _ in range(max_steps):
        if not active:
            return new_ids
        logits = step(last)
        for row, i in enumerate(active):
            masks[row] = grammars[i].allowed()
        rows = len(active)
        chosen = sample_next(logits[active], masks[:rows], config, [rngs[i] for i in active])
        for i, token_id in zip(active, chosen.tolist(), strict=True):
            grammars[i].advance(token_id)
            new_ids[i].append(token_id)
            last[i] = token_id
        finished = [i for i in active if grammars[i].done]
        if finished:
            last[finished] = PAD  # finished pieces are fed PAD and ignored
            active = [i for i in active if i not in finished]
    if not active:
        return new_ids
    raise UserError(
        f"generation did not finish within {max_steps} tokens (the model keeps adding "
        "notes); try a lower --temperature, --top-k or --top-p"
    )


def _step_function(model: Any, batch: int, prefix: list[int]) -> Callable[[np.ndarray], np.ndarray]:
    """A function ids int32[batch] -> logits float32[batch, vocab] that carries the
    recurrent state from call to call, after feeding it `prefix` (the same ids for
    every piece). A `NumpyRNN` steps directly (the prefix once, at batch 1, its state
    then copied to every piece); a keras `MusicRNN` steps through one compiled
    `tf.function(model.step)` with a fixed [batch] shape."""
    if isinstance(model, NumpyRNN):
        states = model.initial_states(1)
        for token_id in prefix:
            _, states = model.step(np.array([token_id]), states)
        states = [np.repeat(s, batch, axis=0) for s in states]

        def numpy_step(ids: np.ndarray) -> np.ndarray:
            nonlocal states
            logits, states = model.step(ids, states)
            return logits

        return numpy_step

    tf = import_tensorflow()
    compiled = tf.function(model.step, reduce_retracing=True)
    tf_states = model.initial_states(batch)
    for token_id in prefix:
        _, tf_states = compiled(tf.fill([batch], tf.constant(token_id, tf.int32)), tf_states)

    def keras_step(ids: np.ndarray) -> np.ndarray:
        nonlocal tf_states
        logits, tf_states = compiled(tf.constant(ids), tf_states)
        return logits.numpy()

    return keras_step


# ----------------------------------------------------------------------------- 5. write


def _write(
    encoding: Encoding,
    ids: list[int],
    path: Path,
    tempo: float | None,
    program: int | None,
    track_name: str,
) -> GeneratedFile:
    """Decode one piece, apply --tempo/--program, write it; its GeneratedFile."""
    score = encoding.decode(ids)
    if tempo is not None:
        score.tempos = [(0.0, float(tempo))]
    if program is not None:
        score.program = program
    write_midi(score, path, track_name=track_name)
    pitches = [n.pitch for n in score.notes]
    return GeneratedFile(
        path=path,
        bars=len(_bar_starts(score)),
        notes=len(score.notes),
        lowest=min(pitches, default=None),
        highest=max(pitches, default=None),
        seconds=score.duration_seconds,
        tokens=0,
        ids=list(ids),
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

    Returns the paths written. Raises render.RenderUnavailableError (one line saying how
    to install FluidSynth) before rendering anything when audio cannot be made; the MIDI
    files are already written by then.
    """
    written: list[Path] = []
    if plot:
        from musicgen.plots import plot_piano_roll

        for info in files:
            score = read_score(info.path)
            written.append(plot_piano_roll(score, info.path.with_suffix(".png"), info.path.name))
    if render == "wav":
        from musicgen.render import find_fluidsynth, find_soundfont, render_wav

        find_fluidsynth(), find_soundfont(soundfont)  # fail early, with the install hint
        for info in files:
            written.append(render_wav(info.path, info.path.with_suffix(".wav"), soundfont))
    return written
