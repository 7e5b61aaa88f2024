"""The Python API: what the command line does, for notebooks and scripts.

    import musicgen
    model = musicgen.load("checkpoints/bach")          # any checkpoint folder
    pieces = model.generate(num=4, bars=16, seed=1)    # list of pretty_midi.PrettyMIDI
    pieces[0].write("one.mid")
    model = musicgen.train("my_midi/", out="checkpoints/mine", epochs=5)
    report = musicgen.prepare("my_midi/")              # PrepareReport
    scores = model.evaluate("my_midi/")                # the `evaluate --json` dict
    samples, rate = model.render(pieces[0])            # audio: float32 [frames, 2], Hz
    musicgen.write_wav("one.wav", samples, rate)       # 16-bit stereo WAV

Each function is the library call behind a command (`load` + `Model.generate` behind
`musicgen generate`, `prepare` behind `musicgen prepare`, ...), with the command's
defaults, so the same checkpoint, settings and seed give the same notes here and
there. Errors are musicgen's own (`UserError`, `UsageError`) with the message the
command would print. Generation steps the network in NumPy: TensorFlow is imported
only by `train` and `Model.evaluate`.

This module imports nothing heavy at the top (cli.py imports its path checks and
defaults); the work is imported when called.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicgen.errors import UsageError, param, setting_refusal

if TYPE_CHECKING:
    import numpy as np

    from musicgen.checkpoint import Checkpoint
    from musicgen.config import RunConfig
    from musicgen.generate import GeneratedFile, GenerateRequest
    from musicgen.trainer import TrainResult

DEFAULT_DATA_DIR = "midi_corpus"  # prepare, train and evaluate read this folder by default
DEFAULT_CHECKPOINT = "checkpoints/bach"  # the bundled model: generate and harmonize
DEFAULT_TRAIN_OUT = "checkpoints/my-model"  # where train writes by default
SAMPLE_OPTIONS = ("temperature", "top_k", "top_p", "seed")  # generate's SampleConfig options


# ----------------------------------------------------------------------------- paths


def existing_path(value: str | Path) -> Path:
    """`value` as a Path; UsageError "path does not exist: VALUE" when it does not."""
    path = Path(value)
    if not path.exists():
        raise UsageError(f"path does not exist: {value}")
    return path


def writable_folder(path: Path, option: str) -> None:
    """UsageError unless `path` is, or could be made, a folder we may write in; checked
    before slow work starts (nothing is created). `option` is the setting's keyword
    ("out"), named in the message in the caller's words (`out='x'`, `--out x`)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    named = param(option.lstrip("-").replace("-", "_"), str(path))
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"cannot write to {{out}}: {probe} is not a folder", out=named)
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {{out}}: {probe} is not writable", out=named)


# ----------------------------------------------------------------------------- prepare


@dataclass
class PrepareReport:
    """What `musicgen prepare` reports about a folder (the `prepare --json` figures)."""

    data_dir: str
    files_ok: int  # files with usable music
    pieces: int  # pieces in them (an ABC collection holds several)
    files_skipped: list[dict[str, str]]  # {"path": ..., "reason": one line}
    notes: int
    tokens: int
    seconds: float  # of music
    hours: float
    dropped: dict[str, int]  # what encoding dropped or changed, by reason
    cached: int  # files read from the cache
    parsed: int  # files parsed this time
    encoding: str
    split: dict[str, int]  # {"train": files, "validation": files}
    summary: dict[str, Any] = field(repr=False)  # the whole `prepare --json` dict

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> PrepareReport:
        """A report of `dataset.PreparedData.summary()`'s dict."""
        names = [f.name for f in fields(cls) if f.name != "summary"]
        return cls(**{name: summary[name] for name in names}, summary=dict(summary))

    def to_dict(self) -> dict[str, Any]:
        """The `prepare --json` dict."""
        return dict(self.summary)


def prepare(
    data_dir: str | Path = DEFAULT_DATA_DIR,
    *,
    encoding: str | None = None,
    steps_per_quarter: int | None = None,
    include_drums: bool | None = None,
    val_fraction: float | None = None,
    seed: int | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PrepareReport:
    """Scan `data_dir`, parse and encode every music file on all cores, cache the
    result, and report what was used and what was skipped and why.

    encoding ("steps", "tracks", "remi" or "performance"), steps_per_quarter and include_drums default
    to EncodingConfig's; val_fraction and seed (the split the report counts) to
    TrainConfig's, as `musicgen prepare` does. cache_dir: default $MUSICGEN_CACHE_DIR
    or ~/.cache/musicgen. workers: parsing processes (default: all cores).
    progress(done, total): called as files are parsed.
    Raises UsageError (missing or empty folder, bad setting), UserError (no usable file).
    """
    from musicgen.config import ConfigError, EncodingConfig, TrainConfig
    from musicgen.dataset import prepare as prepare_folder
    from musicgen.encoding import check_config

    enc, tr = EncodingConfig(), TrainConfig()
    try:
        config = EncodingConfig(
            name=enc.name if encoding is None else encoding,
            steps_per_quarter=enc.steps_per_quarter
            if steps_per_quarter is None
            else steps_per_quarter,
            include_drums=enc.include_drums if include_drums is None else include_drums,
        )
        check_config(config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    data = prepare_folder(data_dir, config, cache_dir=cache_dir, workers=workers, progress=progress)
    summary = data.summary(
        val_fraction=tr.val_fraction if val_fraction is None else val_fraction,
        seed=tr.seed if seed is None else seed,
    )
    return PrepareReport.from_summary(summary)


# ----------------------------------------------------------------------------- load, Model


def load(
    path: str | Path = DEFAULT_CHECKPOINT,
    *,
    which: str = "best",
    engine: str = "numpy",
    verbose_tensorflow: bool = False,
) -> Model:
    """Load the checkpoint folder `path` (the bundled Bach model by default) for
    generation. which: "best" or "last" weights (the other when that one is missing).
    engine: "numpy" (no TensorFlow; "auto" too) or "keras" (imports TensorFlow, quietly
    unless verbose_tensorflow). UsageError for a missing folder or an unknown engine,
    UserError for a folder that is not a loadable checkpoint."""
    from musicgen.engine import open_checkpoint

    return Model(open_checkpoint(path, engine, which, verbose_tensorflow))


def generate_request(**options: Any) -> GenerateRequest:
    """The `GenerateRequest` of `musicgen generate`'s options, named as
    `Model.generate`'s keywords (num, bars, seconds, seed, temperature, top_k, top_p,
    primer, key, time_signature, density, tempo, program, instruments: a string or a
    list, engine); what is not given keeps the command's default. Checked: UsageError
    with the command's message for a value out of range; TypeError for an unknown name."""
    from musicgen.engine import default_sample
    from musicgen.generate import GenerateRequest

    sample = {name: options.pop(name) for name in SAMPLE_OPTIONS if name in options}
    instruments = options.get("instruments")
    if instruments is not None and not isinstance(instruments, str):
        options["instruments"] = ",".join(str(i) for i in instruments)
    request = GenerateRequest(**options, sample=replace(default_sample(), **sample))
    request.check()
    return request


class Model:
    """A loaded checkpoint: generate, harmonize, accompany, infill and evaluate with it.

    `path` is its folder, `config` its RunConfig (encoding, model, train settings),
    `info` what else is known (versions, data, state). `training` holds the
    `train.TrainResult` when the model comes from `musicgen.train`, else None.
    """

    def __init__(self, checkpoint: Checkpoint, training: Any = None):
        self._checkpoint = checkpoint
        self.training = training

    @property
    def path(self) -> Path:
        return Path(self._checkpoint.info["path"])

    @property
    def config(self) -> RunConfig:
        return self._checkpoint.config

    @property
    def info(self) -> dict[str, Any]:
        return self._checkpoint.info

    @property
    def engine(self) -> str:
        """The engine its network steps on: "numpy" (the default) or "keras"."""
        from musicgen.npmodel import NumpyRNN

        return "numpy" if isinstance(self._checkpoint.model, NumpyRNN) else "keras"

    def __repr__(self) -> str:
        model = self.config.model
        return (
            f"Model({str(self.path)!r}: {model.layers} x {model.units} {model.cell.upper()}, "
            f"{self.config.encoding.name} encoding)"
        )

    def generate(
        self,
        num: int = 4,
        bars: int | None = None,
        seed: int = 0,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        primer: str | Path | None = None,
        key: str | None = None,
        time_signature: str | None = None,
        density: str | None = None,
        tempo: float | None = None,
        program: int | None = None,
        seconds: float | None = None,
        instruments: str | list[str] | None = None,
    ) -> list[Any]:
        """Sample `num` new pieces; a list of `pretty_midi.PrettyMIDI`, the same notes
        as the files `musicgen generate` writes with the same options and seed.

        bars: new bars per piece after any primer (remi checkpoints; default 16).
        seconds: new seconds per piece (performance checkpoints; default 30).
        seed: piece i depends on (seed, i) only. temperature: below 1 is safer, above 1
        wilder; top_k: sample among the k most likely tokens (0 = all); top_p: within
        this much probability (1 = all).
        primer: a MIDI/MusicXML file each piece continues (and starts with; at most its
        last 64 bars or 120 seconds). key ("D minor", "F#", "Bb major", "Dm"),
        density ("low", "medium", "high"; both need a model trained with controls),
        time_signature ("3/4") and tempo (beats per minute) are imposed on every new
        bar; program: General MIDI program 0..127 of the track (default 0, piano;
        one-part models). instruments: the parts of every piece for a multi-track
        (tracks) model, e.g. "bass,drums,piano" or ["bass", "drums", 0].
        Remarks (a long primer cut) come as warnings. UsageError/UserError as the CLI's.
        """
        from musicgen.generate import sample_pieces
        from musicgen.midi_io import to_pretty_midi

        request = generate_request(
            num=num, bars=bars, seconds=seconds, seed=seed, temperature=temperature,
            top_k=top_k, top_p=top_p, primer=primer, key=key, density=density,
            time_signature=time_signature, tempo=tempo, program=program,
            instruments=instruments, engine=self.engine,
        )  # fmt: skip
        pieces = sample_pieces(self._checkpoint, request, on_note=_warn)
        return [to_pretty_midi(p.score, track_name=p.track_name) for p in pieces]

    def write(
        self,
        out: str | Path,
        request: GenerateRequest | None = None,
        *,
        force: bool = False,
        on_file: Callable[[Path, GeneratedFile], None] | None = None,
        on_note: Callable[[str], None] | None = None,
        **options: Any,
    ) -> list[GeneratedFile]:
        """Sample and write MIDI files as `musicgen generate` does: OUT/NAME-SEED-NN.mid
        (NAME: the checkpoint folder's name); a `generate.GeneratedFile` per file.
        request: what to generate, else `generate_request(**options)` (Model.generate's
        keywords). force: overwrite existing files (else UsageError before sampling).
        on_file(path, info) after each file; on_note(remark), default a warning."""
        from musicgen.generate import generate

        if request is None:
            request = generate_request(**{"engine": self.engine, **options})
        elif options:
            raise TypeError("give either a GenerateRequest or its fields as keywords, not both")
        return generate(
            self._checkpoint, out, request, force=force, on_file=on_file, on_note=on_note or _warn
        )

    def harmonize(
        self,
        melody: str | Path,
        num: int = 1,
        seed: int = 0,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        voices: int = 3,
    ) -> list[Any]:
        """Write `voices` voices under the melody in the file `melody` (MIDI or
        MusicXML; its highest note at each onset); a list of `pretty_midi.PrettyMIDI`,
        the same notes as `musicgen harmonize` writes: the melody kept note for note on
        its own instrument, each voice on one of its own. Needs a checkpoint with parts
        (steps or tracks; the bundled Bach model is one). Settings as for `generate`."""
        from musicgen.arrange import harmonize

        return self._arranged(
            harmonize, existing_path(melody), num=num, voices=voices,
            sample=_sample(seed, temperature, top_k, top_p),
        )  # fmt: skip

    def accompany(
        self,
        song: str | Path,
        add: str | list[str],
        num: int = 1,
        seed: int = 0,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        force: bool = False,
    ) -> list[Any]:
        """New parts against your song: `add` lists them (GM families such as "bass",
        program numbers, "drums"; a list or a comma-separated string). Returns
        `pretty_midi.PrettyMIDI`s, the same notes as `musicgen accompany` writes: every
        instrument of the song note for note, plus one instrument per new part (drums
        on the drum channel). force: replace the song's own drums when "drums" is
        added. Needs a checkpoint with parts (steps or tracks; the bundled band model
        is one)."""
        from musicgen.arrange import accompany

        add = add if isinstance(add, str) else ",".join(str(a) for a in add)
        return self._arranged(
            accompany, existing_path(song), add, num=num, force=force,
            sample=_sample(seed, temperature, top_k, top_p),
        )  # fmt: skip

    def infill(
        self,
        song: str | Path,
        bars: tuple[int, int] | str,
        tracks: str | list[str] | None = None,
        num: int = 1,
        candidates: int = 16,
        seed: int = 0,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
    ) -> list[Any]:
        """Rewrite bars (first, last) (counted from 1) of your song, of every part or
        of `tracks` (track names or families), keeping every note outside them; of
        `candidates` versions the one that leads best into the following bars is kept.
        Returns `pretty_midi.PrettyMIDI`s, the same notes as `musicgen infill` writes."""
        from musicgen.arrange import infill

        names = tracks if tracks is None or isinstance(tracks, str) else ",".join(tracks)
        return self._arranged(
            infill, existing_path(song), bars, tracks=names, num=num, candidates=candidates,
            sample=_sample(seed, temperature, top_k, top_p),
        )  # fmt: skip

    def _arranged(self, command: Any, *args: Any, **options: Any) -> list[Any]:
        """Run an arrange command on this loaded checkpoint (nothing is loaded again)
        without writing files; the pieces as PrettyMIDI."""
        from musicgen.midi_io import to_pretty_midi

        pieces = command(
            self._checkpoint, *args, None, engine=self.engine, on_note=_warn, **options
        )
        return [to_pretty_midi(piece.music) for piece in pieces]

    def render(self, piece: Any, soundfont: str | Path | None = None) -> tuple[np.ndarray, int]:
        """A piece as audio, as `musicgen.synthesize` makes it: (samples float32
        [frames, 2] in -1..1, sample rate Hz)."""
        return synthesize(piece, soundfont)

    def evaluate(
        self,
        data_dir: str | Path | None = None,
        *,
        all_files: bool = False,
        cache_dir: str | Path | None = None,
        batch_size: int = 16,
    ) -> dict[str, Any]:
        """Held-out likelihood of this checkpoint beside an n-gram baseline: the
        `musicgen evaluate --json` dict (nll_per_token in nats, bits_per_token,
        perplexity, accuracy, nats_per_quarter, ..., per-file figures, `baseline`).

        data_dir: default the folder the checkpoint was trained on, else midi_corpus/;
        its validation files (split.json) are scored, or every file with all_files.
        Imports TensorFlow."""
        if batch_size < 1:
            raise UsageError(
                "{batch_size} must be >= 1", batch_size=param("batch_size", batch_size)
            )
        if data_dir is not None:
            existing_path(data_dir)
        from musicgen.runtime import import_tensorflow

        import_tensorflow()
        from musicgen.evaluate import evaluate

        return evaluate(
            self.path, data_dir, all_files=all_files, cache_dir=cache_dir, batch_size=batch_size
        )


def _sample(seed: int, temperature: float, top_k: int, top_p: float) -> Any:
    from musicgen.config import SampleConfig

    return SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)


def _warn(message: str) -> None:
    """A remark for the user (the CLI prints it as "Note: ..."), as a warning."""
    warnings.warn(message, stacklevel=4)


# ----------------------------------------------------------------------------- train


def train(
    data_dir: str | Path | None = None,
    out: str | Path = DEFAULT_TRAIN_OUT,
    *,
    config: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    from_checkpoint: str | Path | None = None,
    cache_dir: str | Path | None = None,
    verbose: int = 1,
    log: Callable[[str], None] | None = None,
    **settings: Any,
) -> Model:
    """Train a model on the music in `data_dir` and write the checkpoint folder `out`,
    as `musicgen train` does; the trained checkpoint, loaded (`Model.training`: the
    run's best validation loss, epochs, tokens/s, status).

    settings: the train command's settings as keywords (epochs=5, units=128,
    cell="gru", seq_len=64, encoding="performance", ...); the rest keep the CLI's
    defaults. Precedence as on the command line (`config.resolve_settings`):
    defaults < the checkpoint's settings (resume; from_checkpoint: its fine-tuning
    settings) < the JSON file `config` < settings.
    data_dir: default midi_corpus/ (on resume: the folder the run was trained on).
    resume: continue the checkpoint in `out`; force: replace one there.
    from_checkpoint: a trained checkpoint folder to start from (`musicgen train --from`):
    its weights, vocabulary and settings, with a lower learning rate and a budget for a
    small folder (`config.fine_tune_settings`); settings that would change its network
    or vocabulary are refused. The source folder is only read.
    verbose: 1 Keras's progress bar, 2 one line per epoch, 0 nothing.
    log(line): receives the run's report lines (e.g. `log=print`).
    Raises UsageError (bad setting or folder), UserError (no data, diverged). Imports
    TensorFlow.
    """
    result = train_checkpoint(
        data_dir, out, config=config, resume=resume, force=force,
        from_checkpoint=from_checkpoint, cache_dir=cache_dir, verbose=verbose, log=log,
        **settings,
    )  # fmt: skip
    model = load(out, which="best")
    model.training = result
    return model


def train_checkpoint(
    data_dir: str | Path | None = None,
    out: str | Path = DEFAULT_TRAIN_OUT,
    *,
    config: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    from_checkpoint: str | Path | None = None,
    cache_dir: str | Path | None = None,
    verbose: int = 1,
    log: Callable[[str], None] | None = None,
    verbose_tensorflow: bool = False,
    **settings: Any,
) -> TrainResult:
    """`train`'s work without loading the result: write the checkpoint folder `out` and
    return the run's `trainer.TrainResult` (status "interrupted" after Ctrl-C, the last
    finished epoch kept). The settings (`train_settings`) and the folders are checked
    before TensorFlow is imported (quietly unless verbose_tensorflow)."""
    out = Path(out)
    run_config = train_settings(
        out, resume=resume, from_checkpoint=from_checkpoint, config=config, **settings
    )
    if data_dir is not None:
        existing_path(data_dir)
    writable_folder(out, "out")
    if data_dir is None:
        data_dir = _stored_data_dir(out) if resume else DEFAULT_DATA_DIR

    from musicgen.runtime import import_tensorflow

    import_tensorflow(verbose=verbose_tensorflow)
    from musicgen.trainer import train as run_training

    return run_training(
        run_config,
        data_dir,
        out,
        resume=resume,
        force=force,
        from_checkpoint=from_checkpoint,
        cache_dir=cache_dir,
        verbose=verbose,
        log=log or (lambda line: None),
    )


def train_settings(
    out: str | Path = DEFAULT_TRAIN_OUT,
    *,
    resume: bool = False,
    from_checkpoint: str | Path | None = None,
    config: str | Path | None = None,
    **settings: Any,
) -> RunConfig:
    """The settings of a training run (`config.resolve_settings`): the defaults, or the
    checkpoint's in `out` when resuming, or `config.fine_tune_settings` of the checkpoint
    `from_checkpoint`, < the JSON file `config` < `settings` (flat names as `musicgen
    train`'s options). UsageError for an unknown setting, a value out of range, an
    unreadable file, settings the encoding cannot take, or (from_checkpoint) settings
    that would change the source's network or vocabulary."""
    from musicgen import checkpoint
    from musicgen.config import (
        ConfigError,
        FineTuneError,
        check_fine_tune,
        fine_tune_settings,
        read_settings_file,
        resolve_settings,
    )
    from musicgen.encoding import check_config, encoding_class

    out = Path(out)
    stored = checkpoint.read_config(out)[0] if resume and checkpoint.is_checkpoint(out) else None
    source = None
    if from_checkpoint is not None:
        source = checkpoint.read_config(existing_path(from_checkpoint))[0]
        stored = fine_tune_settings(source)
    try:
        from_file = read_settings_file(config) if config is not None else None
    except ConfigError as exc:
        raise UsageError(f"{{config}}: {exc}", config=param("config", str(config))) from exc
    try:
        run_config = resolve_settings(checkpoint=stored, config_file=from_file, flags=settings)
        check_config(run_config.encoding)
        if not encoding_class(run_config.encoding.name).has_parts:  # nothing to tell apart
            run_config = run_config.replace(model=run_config.model.replace(part_programs=False))
        if source is not None:
            check_fine_tune(source, run_config, str(from_checkpoint))
    except FineTuneError as exc:
        raise setting_refusal(str(exc), exc.settings) from exc
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    return run_config


def _stored_data_dir(out: Path) -> str:
    """The data folder a checkpoint was trained on (config.json), else midi_corpus."""
    from musicgen import checkpoint

    if checkpoint.is_checkpoint(out):
        return checkpoint.read_config(out)[1].get("data", {}).get("data_dir", DEFAULT_DATA_DIR)
    return DEFAULT_DATA_DIR


# ----------------------------------------------------------------------------- audio


def synthesize(
    piece: Any, soundfont: str | Path | None = None, *, synth: str = "builtin"
) -> tuple[np.ndarray, int]:
    """A piece as audio: (samples float32 [frames, 2] in -1..1, sample rate in Hz).

    piece: a `pretty_midi.PrettyMIDI` (what `Model.generate` and the others return) or
    a MIDI file's path. Each part plays its General MIDI program, the drum channel the
    drum kit; the audio lasts the music plus a second's release tail (48 kHz with the
    builtin synthesizer, pip-installed). soundfont: a .sf2 file (default: pretty_midi's
    General MIDI TimGM6mb.sf2). synth: "builtin", or "fluidsynth" (the program, where
    installed). Raises `render.RenderUnavailableError` (a UserError) when a synthesizer
    or soundfont is missing, UserError for a file that is not MIDI.
    """
    import io

    from musicgen.render import synthesize as run

    if isinstance(piece, str | Path):
        path = existing_path(piece)
        return run(path.read_bytes(), soundfont, synth=synth, name=path.name)
    if not hasattr(piece, "write"):
        raise UsageError(f"cannot render a {type(piece).__name__}: give a PrettyMIDI or a path")
    buffer = io.BytesIO()
    piece.write(buffer)
    return run(buffer.getvalue(), soundfont, synth=synth)


def write_wav(path: str | Path, samples: Any, sample_rate: int) -> Path:
    """Write audio (float [frames] or [frames, channels] in -1..1, e.g. `synthesize`'s)
    to `path` as a 16-bit PCM WAV at `sample_rate` Hz; the path written."""
    from musicgen.render import write_wav as write

    return write(path, samples, sample_rate)
