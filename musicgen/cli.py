"""Command line: parse arguments, call one library function, echo the result.

This is the only module that prints to the user or exits. Library code raises
`UserError` (or one of the music errors) for anything the user can fix; here it
becomes one line on stderr and exit code 1 (the work failed) or 2 (bad usage).
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from musicgen import __version__
from musicgen.api import (
    DEFAULT_CHECKPOINT,
    DEFAULT_DATA_DIR,
    DEFAULT_TRAIN_OUT,
    existing_path,
    writable_folder,
)
from musicgen.atomic import atomic_write
from musicgen.config import ENCODINGS, EncodingConfig, TrainOption, train_options
from musicgen.errors import UsageError, UserError, cli_message


def _quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up log lines out of normal output (set before import)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def _debug() -> bool:
    """Whether `musicgen --debug` was given (tracebacks, TensorFlow's own log lines)."""
    return bool(click.get_current_context().find_root().params.get("debug"))


def load_tensorflow() -> None:
    """Import TensorFlow quietly (its start-up notices only with --debug).

    Call this at the top of a command that needs a model, before importing the module
    that holds it, so the user's first line is ours and not TensorFlow's.
    """
    from musicgen.runtime import import_tensorflow

    import_tensorflow(verbose=_debug())


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one clear line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except UsageError as exc:
            if debug:
                raise
            click.echo(f"Error: {cli_message(exc)}", err=True)
            sys.exit(2)
        except UserError as exc:
            if debug:
                raise
            click.echo(f"Error: {cli_message(exc)}", err=True)
            sys.exit(1)
        except OSError as exc:  # a full disk, a read-only folder, a vanished file
            if debug:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"Error: {where}{exc.strerror or exc}", err=True)
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - the last line of defence for users
            if debug:
                raise
            click.echo(
                f"Error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                err=True,
            )
            sys.exit(1)

    return wrapper


def echo(message: str = "", quiet: bool = False, err: bool = False) -> None:
    """Print a line, unless `quiet`. A reader that went away (`musicgen generate | head
    -1`) stops the printing, never the work: stdout goes to the null device from then
    on, and the files are written as if it had read everything."""
    if quiet:
        return
    try:
        click.echo(message, err=err)
    except BrokenPipeError:
        stream = sys.stderr if err else sys.stdout
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)


class _OneLineErrors(click.Group):
    """A click group whose usage errors (bad option, missing argument) are one line on
    stderr, "Error: ... (see 'musicgen CMD --help')", exit code 2, like ours."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line(exc) from None


def _one_line(exc: click.UsageError) -> click.UsageError:
    """Make click print `exc` as one line instead of usage + hint + message (a bare
    `musicgen` still shows the help)."""
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        return exc
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    message = " ".join(exc.format_message().split())

    def show(file: Any = None) -> None:
        click.echo(f"Error: {message}{where}", err=True)

    exc.show = show  # type: ignore[method-assign]
    return exc


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="musicgen")
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's own log lines.")
def main(debug: bool) -> None:
    """musicgen: learn the style of a folder of MIDI files with a stacked LSTM/GRU
    and write new MIDI files to drag into a DAW.

    \b
    Typical session:
      musicgen generate                 # new pieces from the bundled Bach model
      musicgen prepare my_midi/         # check what musicgen can read in a folder
      musicgen train my_midi/ --out checkpoints/mine
      musicgen generate --checkpoint checkpoints/mine --num 4 --bars 32
    """
    if debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        _quiet_tensorflow()


# ----------------------------------------------------------------------------- train, info

# train options that are settings of RunConfig (click parameter name = RunConfig.with_flat key)
_TRAIN_SETTINGS = tuple(option.name for option in train_options())


def _train_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The RunConfig options of `musicgen train`, each built from its config.py field
    (`config.setting`: default, help, range or choices), so a setting lives in one place."""
    for option in reversed(train_options()):
        func = _click_option(option)(func)
    return func


def _click_option(option: TrainOption) -> Callable[..., Any]:
    """A click option for one RunConfig setting."""
    flag = "--" + option.name.replace("_", "-")
    common = {"default": option.default, "show_default": True, "help": option.help}
    if option.kind is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", option.name, **common)
    if option.choices:
        kind: Any = click.Choice(option.choices)
    elif option.low is None and option.high is None:
        kind = option.kind
    else:
        ranged = click.IntRange if option.kind is int else click.FloatRange
        kind = ranged(option.low, option.high, min_open=option.low_open, max_open=option.high_open)
    return click.option(flag, option.name, type=kind, **common)


def _given_settings(ctx: click.Context) -> dict[str, Any]:
    """The RunConfig options given on the command line (not left at their defaults):
    they win over the --config file and the resumed checkpoint (`api.train_settings`)."""
    from click.core import ParameterSource

    return {
        name: ctx.params[name]
        for name in _TRAIN_SETTINGS
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)
    }


@main.command()
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=DEFAULT_TRAIN_OUT,
    show_default=True,
    help="Checkpoint folder to write.",
)
@_train_options
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="JSON file of settings (flat or nested, same keys as the "
    "options; a checkpoint's config.json works). Options given explicitly win.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the checkpoint in --out (only --epochs, --patience, --max-minutes, "
    "--device, --distribute may change).",
)
@click.option(
    "--from",
    "from_checkpoint",
    type=click.Path(path_type=Path),
    help="Start from this trained checkpoint (e.g. checkpoints/band): its weights, "
    "vocabulary and settings, with a lower learning rate and a budget fit for a small "
    "folder; options that would change its network or vocabulary are refused. The "
    "quick way to a model of a small folder.",
)
@click.option("--force", is_flag=True, help="Replace an existing checkpoint in --out.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Parsed-file cache (default $MUSICGEN_CACHE_DIR or ~/.cache/musicgen).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.pass_context
@handle_errors
def train(
    ctx: click.Context,
    data_dir: Path | None,
    out: Path,
    config_file: Path | None,
    resume: bool,
    from_checkpoint: Path | None,
    force: bool,
    cache_dir: Path | None,
    quiet: bool,
    **_settings: Any,
):
    """Train a model on the MIDI files in DATA_DIR (default: midi_corpus/).

    \b
    Writes a self-contained checkpoint folder (--out): config, best and last weights,
    optimizer state, history.csv, split.json, TensorBoard logs (tensorboard --logdir OUT/logs).
    Ctrl-C stops after keeping the last finished epoch; continue with --resume.
    """
    from musicgen.api import train_checkpoint

    result = train_checkpoint(
        data_dir,
        out,
        config=config_file,
        resume=resume,
        force=force,
        from_checkpoint=from_checkpoint,
        cache_dir=cache_dir,
        verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),
        log=lambda line: echo(line, quiet),
        verbose_tensorflow=_debug(),
        **_given_settings(ctx),
    )
    if result.status == "interrupted":
        sys.exit(130)


@main.command()
@click.argument("checkpoint_dir", metavar="CHECKPOINT", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@handle_errors
def info(checkpoint_dir: Path, as_json: bool) -> None:
    """What the checkpoint folder CHECKPOINT is: settings, data, metrics, versions, files."""
    from musicgen.checkpoint import describe

    if not checkpoint_dir.is_dir():
        raise UsageError(f"checkpoint folder not found: {checkpoint_dir}")
    described = describe(checkpoint_dir)
    if as_json:
        echo(json.dumps(described, indent=2, sort_keys=True))
        return
    for line in _info_lines(described):
        echo(line)


def _info_lines(d: dict[str, Any]) -> list[str]:
    """Human lines for `musicgen info` from `checkpoint.describe`'s dict."""
    cfg, state, data = d["config"], d["state"], d["data"]
    model, tr, enc = cfg["model"], cfg["train"], cfg["encoding"]
    lines = [
        f"Checkpoint: {d['path']}",
        f"Status: {state.get('status', 'unknown')}, {state.get('epoch', 0)} epoch(s) "
        f"of at most {tr['epochs']}, {state.get('train_steps', 0):,} steps",
    ]
    if state.get("best_val_loss") is not None:
        lines.append(
            f"Best validation loss: {state['best_val_loss']:.4f} nats/token "
            f"(perplexity {state.get('best_val_perplexity', 0):.2f}) at epoch "
            f"{state.get('best_epoch')}"
        )
    music = _validation_music_line(state.get("metrics") or {}, d.get("last_epoch") or {})
    if music:
        lines.append(music)
    parts = ", each token told its part" if model.get("part_programs") else ""
    lines += [
        f"Model: {model['layers']} x {model['units']} {model['cell'].upper()}, embedding "
        f"{model['embedding_dim']}{parts}, dropout {model['dropout']}; vocabulary "
        f"{d.get('vocab_size')} tokens ({enc['name']})",
        f"Training: seq_len {tr['seq_len']}, batch {tr['batch_size']}, learning rate "
        f"{tr['learning_rate']}, clip norm {tr['clip_norm']}, transpose +-{tr['transpose']}, "
        f"patience {tr['patience']}, seed {tr['seed']}",
    ]
    if data:
        files, tokens = data.get("files", {}), data.get("tokens", {})
        lines.append(
            f"Data: {data.get('data_dir')}: {files.get('train', 0)} training / "
            f"{files.get('validation', 0)} validation files, "
            f"{tokens.get('train', 0):,} / {tokens.get('validation', 0):,} tokens"
        )
    origin = d.get("started_from") or {}
    if origin:
        lines.append(
            f"Started from: {origin.get('checkpoint')} (its epoch {origin.get('epoch')}, "
            f"trained on {origin.get('data_dir')})"
        )
    if enc.get("controls"):
        from musicgen.constraints import describe_density_choices, stored_density_choices

        levels = stored_density_choices({"data": data})
        lines.append(f"Controls: --key (24 keys), --density {describe_density_choices(levels)}")
    if state.get("wall_seconds") is not None:
        minutes, seconds = divmod(int(round(state["wall_seconds"])), 60)
        lines.append(f"Time: {minutes}m {seconds:02d}s wall")
    versions = d.get("versions", {})
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    lines.append(
        "Files: " + ", ".join(f"{name} {_size(size)}" for name, size in d["files"].items())
    )
    return lines


def _validation_music_line(metrics: dict[str, Any], last_epoch: dict[str, Any]) -> str | None:
    """ "Validation: X nats/quarter note, Y nats/note (epoch N)" from state.json's metrics,
    else from the last history.csv row; None when neither has them (older checkpoints)."""
    for row in (metrics, last_epoch):
        figures = [_figure(row.get(k)) for k in ("val_nats_per_quarter", "val_nats_per_note")]
        if figures != ["n/a", "n/a"]:
            epoch = f" (epoch {row['epoch']})" if row.get("epoch") is not None else ""
            return f"Validation: {figures[0]} nats/quarter note, {figures[1]} nats/note{epoch}"
    return None


def _figure(value: Any) -> str:
    """A finite number as "1.2345", anything else (absent, empty csv cell, nan) as "n/a"."""
    finite = isinstance(value, int | float) and math.isfinite(value)
    return f"{value:.4f}" if finite else "n/a"


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1024 or unit == "MB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


# ----------------------------------------------------------------------------- evaluate, stats


def _write_json_file(path: Path, data: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


@main.command()
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@click.option(
    "--checkpoint",
    "checkpoint_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_CHECKPOINT,
    show_default=True,
    help="Checkpoint folder to evaluate.",
)
@click.option(
    "--all", "all_files", is_flag=True, help="Score every file of DATA_DIR, not only validation."
)
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="Write results here.")
@click.option("--batch-size", default=16, show_default=True, help="Files per network call.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Parsed-file cache (default $MUSICGEN_CACHE_DIR or ~/.cache/musicgen).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing (use with --json).")
@handle_errors
def evaluate(
    data_dir: Path | None,
    checkpoint_dir: Path,
    all_files: bool,
    json_file: Path | None,
    batch_size: int,
    cache_dir: Path | None,
    quiet: bool,
) -> None:
    """Held-out likelihood of a checkpoint, beside an n-gram baseline.

    \b
    Scores the checkpoint's validation files (split.json) found in DATA_DIR (default: the
    folder it was trained on, else midi_corpus/): nats per quarter note and per note of
    music (figures that compare across encodings and settings), nats and bits per token,
    perplexity and top-1 accuracy of the next token. The baseline is an interpolated
    Kneser-Ney n-gram fitted on the checkpoint's training files, its order chosen on a
    tenth of them.
    """
    if batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if not checkpoint_dir.is_dir():
        raise UsageError(f"checkpoint folder not found: {checkpoint_dir}")
    if data_dir is not None:
        existing_path(str(data_dir))
    load_tensorflow()
    from musicgen.evaluate import evaluate as run_evaluation
    from musicgen.evaluate import report_lines

    result = run_evaluation(
        checkpoint_dir,
        data_dir,
        all_files=all_files,
        cache_dir=cache_dir,
        batch_size=batch_size,
        progress=lambda line: echo(line, quiet, err=True),
    )
    if json_file is not None:
        _write_json_file(json_file, result)
    for line in report_lines(result):
        echo(line, quiet)


@main.command()
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "--reference",
    type=click.Path(path_type=Path),
    help="A second folder to compare with (overlap of each statistic, copy check).",
)
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="Write results here.")
@click.option(
    "--plot",
    type=click.Path(path_type=Path),
    help="Write histograms of every statistic: a .png file, or a folder (gets stats.png).",
)
@click.option("--no-key", is_flag=True, help="Skip key finding with music21 (faster).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or table.")
@handle_errors
def stats(
    folder: Path,
    reference: Path | None,
    json_file: Path | None,
    plot: Path | None,
    no_key: bool,
    quiet: bool,
) -> None:
    """Musical statistics of the MIDI files in DIR (searched recursively).

    \b
    Per file and as set mean +- std: pitch range, pitch classes, pitch-class entropy,
    polyphony, scale consistency, empty-beat rate, groove consistency, notes per bar,
    note-length and inter-onset histograms, key. Per instrument family (piano, bass,
    drums, ...): parts, notes, notes per bar, lowest and highest pitch, polyphony, share
    of onsets that are chords; for drums, hits per bar, the shares of kick, snare,
    hi-hat and cymbal hits and of hits outside the General MIDI kit. With --reference,
    the overlap of each statistic's distribution between the two sets (1 = same, 0 =
    disjoint; per family where both sets have it, one row per statistic) and a copy
    check: the longest stretch of each file of DIR found verbatim in the reference.
    """
    from musicgen import stats as st

    sets = []
    folders = [folder] + ([reference] if reference is not None else [])
    for path in folders:  # both checked before the slow reading starts
        existing_path(str(path))
    for path in folders:
        with _ProgressBar(f"Reading {path}", quiet) as progress:
            sets.append(st.collect(path, key=not no_key, progress=progress))
    a, b = sets[0], (sets[1] if len(sets) > 1 else None)
    comparison = st.compare(a, b) if b is not None else None
    if json_file is not None:
        data = {
            "set": a.summary(files=True),
            "reference": b.summary(files=True) if b is not None else None,
            "comparison": comparison,
        }
        _write_json_file(json_file, data)
    if plot is not None:
        from musicgen.plots import plot_stats_comparison

        target = plot if plot.suffix.lower() == ".png" else plot / "stats.png"
        plot_stats_comparison(a, b, target, labels=(str(folder), str(reference)))
        echo(f"Wrote {target}", quiet, err=True)
    for line in st.report_lines(a, b, comparison):
        echo(line, quiet)


class _ProgressBar:
    """A click progress bar on stderr fed by (done, total) calls; silent when quiet."""

    def __init__(self, label: str, quiet: bool):
        self.label, self.quiet, self.bar = label, quiet, None

    def __enter__(self) -> Callable[[int, int], None]:
        return self.update

    def update(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


# ----------------------------------------------------------------------------- generate


@main.command()
@click.option(
    "--checkpoint",
    "checkpoint_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_CHECKPOINT,
    show_default=True,
    help="Checkpoint folder to sample from (the bundled Bach model by default).",
)
@click.option(
    "--out", type=click.Path(path_type=Path), default="generated", show_default=True,
    help="Folder for the MIDI files.",
)  # fmt: skip
@click.option("--num", type=click.IntRange(1, 1024), default=4, show_default=True,
              help="Pieces to write (sampled together in one batch).")  # fmt: skip
@click.option("--bars", type=click.IntRange(1, 10_000),
              help="New bars per piece, after any primer (remi checkpoints; default 16).")  # fmt: skip
@click.option("--seconds", type=click.FloatRange(0.01, 3600),
              help="New seconds per piece (performance checkpoints; default 30).")  # fmt: skip
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=0.8,
              show_default=True, help="Below 1 is safer, above 1 wilder.")  # fmt: skip
@click.option("--top-k", type=click.IntRange(0), default=0, show_default=True,
              help="Sample only among the k most likely tokens (0 = all).")  # fmt: skip
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0,
              show_default=True, help="Sample only within this much probability (1 = all).")  # fmt: skip
@click.option("--primer", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="MIDI/MusicXML file to continue; each piece starts with it.")  # fmt: skip
@click.option("--tempo", type=click.FloatRange(10, 1000),
              help="Beats per minute for the whole piece (default: the model's choice).")  # fmt: skip
@click.option("--key", help='Key of every piece, e.g. "D minor", "F#", "Bb major", "Dm" '
              "(a model trained with --controls).")  # fmt: skip
@click.option("--time-signature", help="Metre of every bar, e.g. 3/4 or 6/8 (remi models).")
@click.option("--density", type=click.Choice(["low", "medium", "high"]),
              help="Notes per bar: low, medium and high are the 15th, 50th and 85th "
              "percentile bar of the training music (a model trained with --controls).")  # fmt: skip
@click.option("--program", type=click.IntRange(0, 127),
              help="General MIDI program of the track (default 0, piano; one-part models).")  # fmt: skip
@click.option("--instruments", metavar="LIST",
              help="The parts of every piece (multi-track models): comma-separated GM families "
                   "(piano, chromatic, organ, guitar, bass, strings, ensemble, brass, reed, pipe, "
                   "lead, pad, fx, ethnic, percussive, sfx), program numbers 0-127 or drums, "
                   "e.g. bass,drums,piano. Default: the model chooses.")  # fmt: skip
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Same checkpoint, options and seed give the same files.")  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option(
    "--plot", is_flag=True, help="Also write a piano-roll PNG beside each file (a lane per part)."
)
@click.option("--render", type=click.Choice(["wav"]),
              help="Also write each file as audio (a WAV beside it; see `musicgen render`).")  # fmt: skip
@click.option("--soundfont", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="General MIDI .sf2 for --render (default: pretty_midi's TimGM6mb.sf2).")  # fmt: skip
@click.option("--engine", type=click.Choice(["auto", "numpy", "keras"]), default="auto",
              show_default=True, help="Network step: numpy (auto; starts fast, no TensorFlow) "
              "or keras (TensorFlow; for a GPU and a very large --num).")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="Print nothing.")
@handle_errors
def generate(
    checkpoint_dir: Path,
    out: Path,
    num: int,
    bars: int | None,
    seconds: float | None,
    temperature: float,
    top_k: int,
    top_p: float,
    primer: Path | None,
    tempo: float | None,
    key: str | None,
    time_signature: str | None,
    density: str | None,
    program: int | None,
    instruments: str | None,
    seed: int,
    force: bool,
    plot: bool,
    render: str | None,
    soundfont: Path | None,
    engine: str,
    quiet: bool,
) -> None:
    """Sample new MIDI files from a checkpoint.

    \b
    Files are named OUT/NAME-SEED-NN.mid (NAME: the checkpoint folder's name); existing
    files are kept unless --force. Length: --bars for steps, tracks and remi checkpoints,
    --seconds for performance ones. A steps or tracks checkpoint (e.g. checkpoints/bach,
    checkpoints/band) writes one track per part, drums on channel 10; --instruments fixes
    the parts. With --primer, each piece starts with the primer (at most its last 64 bars
    or 120 seconds) and --bars/--seconds count the new music after it.
    --key, --density, --time-signature and --tempo are imposed on every piece; what is
    not asked is left to the model.
    """
    from musicgen.api import generate_request, load

    request = generate_request(
        num=num, bars=bars, seconds=seconds, seed=seed, temperature=temperature, top_k=top_k,
        top_p=top_p, primer=primer, key=key, density=density, time_signature=time_signature,
        tempo=tempo, program=program, instruments=instruments, engine=engine,
    )  # fmt: skip
    writable_folder(out, "out")
    # only --engine keras imports TensorFlow (quietly unless --debug)
    model = load(checkpoint_dir, engine=request.engine, verbose_tensorflow=_debug())
    files = model.write(
        out,
        request,
        force=force,
        on_file=lambda path, info: echo(info.summary(), quiet),
        on_note=lambda line: echo(f"Note: {line}", quiet, err=True),
    )
    if plot or render:
        _write_companions(files, plot, render, soundfont, quiet)


def _write_companions(
    files: list[Any], plot: bool, render: str | None, soundfont: Path | None, quiet: bool
) -> None:
    """generate's --plot and --render files (render.py imported only then)."""
    from musicgen.generate import write_companions
    from musicgen.render import RenderUnavailableError

    try:
        for path in write_companions(files, plot=plot, render=render, soundfont=soundfont):
            echo(f"  {path}", quiet)
    except RenderUnavailableError as exc:  # the MIDI files are written: say so, don't fail
        echo(f"Warning: {exc}; the MIDI files are written", err=True)


# ----------------------------------------------------------------------------- prepare

PREPARE_SKIPS_SHOWN = 20  # skipped files listed in the human report


@main.command()
@click.argument("data_dir", required=False, default=DEFAULT_DATA_DIR, type=click.Path())
@click.option("--encoding", type=click.Choice(ENCODINGS), default=EncodingConfig().name,
              show_default=True, help="Token encoding (steps: each part's sounding notes where they change; "
              "tracks: each note at its onset with its part; remi: one merged part; "
              "performance: 10 ms expressive events).")  # fmt: skip
@click.option("--steps-per-quarter", type=click.IntRange(1, 48), default=4, show_default=True,
              help="Grid resolution of steps, tracks and remi (4 = sixteenth notes).")  # fmt: skip
@click.option("--include-drums", is_flag=True,
              help="remi/performance: merge drum tracks into the one stream (steps and "
                   "tracks keep drums as their own part always).")  # fmt: skip
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1,
              show_default=True, help="Share of files the report counts as validation "
              "(split by file, as train does).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Parsed-file cache (default $MUSICGEN_CACHE_DIR or ~/.cache/musicgen).")  # fmt: skip
@click.option("--workers", type=click.IntRange(1), help="Parsing processes (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (only that).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or report.")
@handle_errors
def prepare(
    data_dir: str,
    encoding: str,
    steps_per_quarter: int,
    include_drums: bool,
    val_fraction: float,
    seed: int,
    cache_dir: Path | None,
    workers: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Scan DATA_DIR (default: midi_corpus/), parse and encode every music file on all
    cores, cache the result, and report what was used and what was skipped and why.

    \b
    DATA_DIR is searched recursively for .mid/.midi (any case) and .mxl/.musicxml/.xml/
    .krn/.abc; a single file works too. A second run on an unchanged folder reads only
    the cache. `train` does the same work, so this is the quick way to check a folder.
    """
    from musicgen.api import prepare as prepare_folder

    with _ParseBar(quiet or as_json) as progress:
        report = prepare_folder(data_dir, encoding=encoding, steps_per_quarter=steps_per_quarter,
                                include_drums=include_drums, val_fraction=val_fraction,
                                seed=seed, cache_dir=cache_dir, workers=workers,
                                progress=progress)  # fmt: skip
    summary = report.to_dict()
    if as_json:
        echo(json.dumps(summary, indent=2))
        return
    for line in _prepare_lines(summary, val_fraction, seed):
        echo(line, quiet)


def _prepare_lines(s: dict[str, Any], val_fraction: float, seed: int) -> list[str]:
    """The human report of `musicgen prepare` from `PreparedData.summary()`."""
    skipped = s["files_skipped"]
    pieces = f"{s['pieces']:,} pieces, " if s["pieces"] != s["files_ok"] else ""
    # the encoding leaves the drums out only where reading counted them as dropped
    drums = "drums left out" if s["dropped"].get("drum_notes") else "drums included"
    lines = [
        f"{s['data_dir']}: {s['files_ok']:,} file(s) used, {len(skipped):,} skipped "
        f"({s['encoding']} encoding; {s['cached']:,} from the cache, {s['parsed']:,} parsed)",
        f"  {pieces}{s['notes']:,} notes ({drums}), {s['tokens']:,} tokens, "
        f"{s['hours']:.2f} hours of music",
        f"  split by file (validation {val_fraction:g}, seed {seed}): "
        f"{s['split']['train']:,} training / {s['split']['validation']:,} validation files",
    ]
    if s["dropped"]:
        lines.append("Dropped or changed (count):")
        lines += [f"  {reason.replace('_', ' ')}: {n:,}" for reason, n in s["dropped"].items()]
    if skipped:
        lines.append("Skipped files:")
        lines += [f"  {f['path']}: {f['reason']}" for f in skipped[:PREPARE_SKIPS_SHOWN]]
        if len(skipped) > PREPARE_SKIPS_SHOWN:
            lines.append(f"  ... and {len(skipped) - PREPARE_SKIPS_SHOWN:,} more")
    return lines


class _ParseBar:
    """A click progress bar on stderr for parsing: files done, files/s, time left.

    Fed by (done, total) calls; appears only once there is parsing to do (not for a
    run answered by the cache), never when quiet or when stderr is not a terminal."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.started = quiet, None, 0.0
        self.first_done = 0

    def __enter__(self) -> Callable[[int, int], None]:
        return self.update

    def update(self, done: int, total: int) -> None:
        import time

        if self.quiet or not sys.stderr.isatty():
            return
        if self.bar is None:
            if done >= total:
                return
            self.started, self.first_done = time.monotonic(), done
            self.bar = click.progressbar(length=total, label="Parsing", file=sys.stderr,
                                         show_pos=True, show_eta=True,
                                         item_show_func=lambda _: self._rate())  # fmt: skip
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos, current_item=done)

    def _rate(self) -> str | None:
        import time

        if self.bar is None:
            return None
        elapsed = time.monotonic() - self.started
        rate = (self.bar.pos - self.first_done) / elapsed if elapsed > 0 else 0.0
        return f"{rate:.0f} files/s"

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


# ----------------------------------------------------------------------------- your own song

DEFAULT_BAND_CHECKPOINT = "checkpoints/band"  # the bundled model of accompany and infill


_AUDIO_OPTIONS = [
    click.option("--render", type=click.Choice(["wav"]),
                 help="Also write each file as audio (a WAV beside it; see `musicgen render`)."),
    click.option("--soundfont", type=click.Path(path_type=Path, dir_okay=False, exists=True),
                 help="General MIDI .sf2 for the audio (default: pretty_midi's TimGM6mb.sf2)."),
]  # fmt: skip


def _song_options(default_checkpoint: str, num_help: str) -> Callable[..., Any]:
    """The options every command that works on a user's song shares."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--checkpoint", "checkpoint_dir", type=click.Path(path_type=Path),
                         default=default_checkpoint, show_default=True,
                         help="Checkpoint folder with parts (steps or tracks) to sample from."),
            click.option("--out", type=click.Path(path_type=Path), default="generated",
                         show_default=True, help="Folder for the MIDI files."),
            click.option("--num", type=click.IntRange(1, 1024), default=1, show_default=True,
                         help=num_help),
            click.option("--temperature", type=click.FloatRange(0, min_open=True), default=0.8,
                         show_default=True, help="Below 1 is safer, above 1 wilder."),
            click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
                         help="Same checkpoint, song, options and seed give the same files."),
            click.option("--engine", type=click.Choice(["auto", "numpy", "keras"]),
                         default="auto", show_default=True,
                         help="Recurrent step engine (auto = numpy, no TensorFlow)."),
            click.option("--force", is_flag=True, help="Overwrite existing files."),
            *_AUDIO_OPTIONS,
            click.option("--quiet", "-q", is_flag=True, help="Print nothing."),
        ]  # fmt: skip
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _song_run(
    quiet: bool, temperature: float, seed: int, render: str | None, soundfont: Path | None
) -> dict[str, Any]:
    """The keyword arguments every arrange command takes from the shared options."""
    from musicgen.config import SampleConfig

    def on_file(info: Any) -> None:
        echo(info.summary(), quiet)
        if render:
            _audio_beside(info.path, soundfont, quiet)

    return {
        "sample": SampleConfig(temperature=temperature, seed=seed),
        "on_file": on_file,
        "on_note": lambda line: echo(f"Note: {line}", quiet, err=True),
    }


def _audio_beside(midi: Path, soundfont: Path | None, quiet: bool) -> None:
    """--render wav: a WAV beside the MIDI file just written; when audio cannot be made,
    a warning (the MIDI file stays)."""
    from musicgen.render import RenderUnavailableError, render_wav

    try:
        echo(f"  {render_wav(midi, midi.with_suffix('.wav'), soundfont)}", quiet)
    except RenderUnavailableError as exc:
        echo(f"Warning: {exc}; the MIDI file is written", err=True)


@main.command()
@click.argument("melody", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@_song_options(DEFAULT_CHECKPOINT, "Harmonizations to write (sampled together in one batch).")
@click.option("--voices", type=click.IntRange(1, 15), default=3, show_default=True,
              help="Voices to write under the melody.")  # fmt: skip
@handle_errors
def harmonize(
    melody: Path, checkpoint_dir: Path, out: Path, num: int, temperature: float, seed: int,
    engine: str, force: bool, render: str | None, soundfont: Path | None, quiet: bool, voices: int,
) -> None:  # fmt: skip
    """Write voices under the melody in MELODY (a MIDI or MusicXML file).

    \b
    The melody (the highest note at each onset) is kept note for note as the top part,
    on its own track, and the model writes VOICES parts of its own voice under it, each
    on a track of its own: with the bundled Bach model, Alto, Tenor and Bass under your
    Soprano. Files are OUT/MELODY-harmony-SEED-NN.mid.
    """
    from musicgen.arrange import harmonize as run

    run(checkpoint_dir, melody, out, num=num, voices=voices, engine=engine, force=force,
        **_song_run(quiet, temperature, seed, render, soundfont))  # fmt: skip


@main.command()
@click.argument("song", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--add", required=True, metavar="LIST",
              help="Parts to write: GM families (bass, guitar, piano, strings, ...), program "
                   "numbers 0-127 or drums, comma-separated, e.g. drums,bass.")  # fmt: skip
@_song_options(DEFAULT_BAND_CHECKPOINT, "Arrangements to write (sampled together in one batch).")
@handle_errors
def accompany(
    song: Path, add: str, checkpoint_dir: Path, out: Path, num: int, temperature: float,
    seed: int, engine: str, force: bool, render: str | None, soundfont: Path | None, quiet: bool,
) -> None:  # fmt: skip
    """Write new parts (--add) against your song SONG (a MIDI or MusicXML file).

    \b
    Every note of your tracks comes back as it was (pitch, onset, duration, velocity,
    name, program); each new part gets a track of its own, drums on channel 10. The
    model hears your whole song as it writes. A song with drums gets new drums only with
    --force (they replace yours). Files are OUT/SONG-accompany-SEED-NN.mid.
    """
    from musicgen.arrange import accompany as run

    run(checkpoint_dir, song, add, out, num=num, engine=engine, force=force,
        **_song_run(quiet, temperature, seed, render, soundfont))  # fmt: skip


@main.command()
@click.argument("song", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--bars", "bars", required=True, metavar="A-B",
              help="The bars to rewrite, counted from 1, e.g. 9-12.")  # fmt: skip
@click.option("--tracks", metavar="LIST",
              help="Rewrite these parts (track names or families, comma-separated; a "
                   "part resting in the bars too); default: the parts that play in them.")  # fmt: skip
@click.option("--candidates", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Versions sampled per file; the one that leads best into the following "
                   "bars is kept.")  # fmt: skip
@_song_options(DEFAULT_BAND_CHECKPOINT, "Versions to write.")
@handle_errors
def infill(
    song: Path, bars: str, tracks: str | None, candidates: int, checkpoint_dir: Path, out: Path,
    num: int, temperature: float, seed: int, engine: str, force: bool, render: str | None,
    soundfont: Path | None, quiet: bool,
) -> None:  # fmt: skip
    """Rewrite bars A-B of your song SONG, keeping every note outside them.

    \b
    The parts that play in the bars are rewritten (or those named in --tracks); a part
    that rests there keeps resting, and each rewritten part stays in its register (its
    lowest to highest note in the song, two semitones wider).
    The model hears the song up to the bars, writes them, and of --candidates versions
    the one under which the song's following bars are most likely is kept, so the new
    bars lead into what comes next. Files are OUT/SONG-infill-SEED-NN.mid.
    """
    from musicgen.arrange import infill as run

    run(checkpoint_dir, song, bars, out, tracks=tracks, num=num, candidates=candidates,
        engine=engine, force=force, **_song_run(quiet, temperature, seed, render, soundfont))  # fmt: skip


# ----------------------------------------------------------------------------- render


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder for the WAV files (default: beside each MIDI file).")  # fmt: skip
@click.option("--soundfont", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="General MIDI .sf2 to play with (default: pretty_midi's TimGM6mb.sf2).")  # fmt: skip
@click.option("--synth", type=click.Choice(["builtin", "fluidsynth"]), default="builtin",
              show_default=True, help="builtin: the synthesizer pip installed (RustySynth); "
              "fluidsynth: the FluidSynth program, where installed.")  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite existing WAV files.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@handle_errors
def render(
    files: tuple[Path, ...], out: Path | None, soundfont: Path | None, synth: str, force: bool,
    quiet: bool,
) -> None:  # fmt: skip
    """Write each MIDI file FILE as audio: FILE.wav, 16-bit stereo at 48 kHz.

    \b
    Every part plays its General MIDI program, channel 10 the drum kit; the WAV lasts the
    music plus a second for the last notes to ring. One line per file written; a file
    that cannot be rendered is one error line (the others are still written, exit 1).
    """
    from musicgen.api import existing_path
    from musicgen.generate import check_free
    from musicgen.render import check_available, render_wav, wav_seconds, wav_targets

    midis = [existing_path(f) for f in files]
    targets = wav_targets(midis, out)
    check_free(targets, force)
    check_available(soundfont, synth)
    failed = 0
    for midi, target in zip(midis, targets, strict=True):
        try:
            wav = render_wav(midi, target, soundfont, synth=synth)
        except UserError as exc:
            echo(f"Error: {cli_message(exc)}", err=True)
            failed += 1
            continue
        echo(f"{wav}  {wav_seconds(wav):.1f} s", quiet)
    if failed:
        sys.exit(1)


# ----------------------------------------------------------------------------- live


@main.command()
@click.option("--checkpoint", "checkpoint_dir", type=click.Path(path_type=Path),
              default=DEFAULT_BAND_CHECKPOINT, show_default=True,
              help="Checkpoint folder to play from (remi, tracks or steps).")  # fmt: skip
@click.option("--port", metavar="NAME|none",
              help='Output port: an existing one, else a virtual port of this name that a DAW '
                   'sees (default "musicgen"); "none" plays into the --record file alone.')  # fmt: skip
@click.option("--clock", type=click.Choice(["internal", "midi"]), default="internal",
              show_default=True, help="Tempo from --tempo, or the DAW's MIDI clock (start, "
              "stop, continue, song position) on the input port.")  # fmt: skip
@click.option("--tempo", type=click.FloatRange(10, 1000), default=120.0, show_default=True,
              help="Beats per minute (with --clock midi: until the clock is measured).")  # fmt: skip
@click.option("--mode", type=click.Choice(["continue", "answer", "accompany"]),
              default="continue", show_default=True,
              help="continue: endless music; answer: reply to each phrase played on the input "
                   "port; accompany: added parts that follow the player bar by bar.")  # fmt: skip
@click.option("--in-port", metavar="NAME",
              help='Input port (answer, accompany, --clock midi): an existing one, else a '
                   'virtual port of this name (default "musicgen in").')  # fmt: skip
@click.option("--add", metavar="LIST",
              help="accompany: the parts to add (like --instruments; default drums,bass).")  # fmt: skip
@click.option("--bars", type=click.IntRange(1, 1_000_000),
              help="Stop after this many bars (default: play until Ctrl-C).")  # fmt: skip
@click.option("--record", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write what was played (and, in answer and accompany, what the player "
                   "played) to this MIDI file.")  # fmt: skip
@click.option("--silence", type=click.FloatRange(0, min_open=True), default=1.0,
              show_default=True, help="answer: seconds without a note that end a phrase.")  # fmt: skip
@click.option("--key", help='Key of the music, e.g. "D minor" (a model trained with --controls).')
@click.option("--density", type=click.Choice(["low", "medium", "high"]),
              help="Notes per bar (a model trained with --controls).")  # fmt: skip
@click.option("--instruments", metavar="LIST",
              help="continue: the parts (as generate's); answer: the reply's instrument.")  # fmt: skip
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=0.8,
              show_default=True, help="Below 1 is safer, above 1 wilder.")  # fmt: skip
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seed of the sampling.")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@handle_errors
def live(
    checkpoint_dir: Path, port: str | None, clock: str, tempo: float, mode: str,
    in_port: str | None, add: str | None, bars: int | None, record: Path | None,
    silence: float, key: str | None, density: str | None, instruments: str | None,
    temperature: float, seed: int, quiet: bool,
) -> None:  # fmt: skip
    """Play generated music into a MIDI port that a DAW sees, in time.

    \b
    Make a MIDI track in your DAW whose input is the "musicgen" port (or --port NAME)
    and arm it. All Notes Off goes out on stop, Ctrl-C and errors. Where the machine
    cannot make MIDI ports (no python-rtmidi, a container without the ALSA sequencer,
    Windows without a loopback driver), one line says what to install; --port none
    --record FILE.mid plays into a file in real time instead.
    """
    from musicgen.config import SampleConfig
    from musicgen.live_music import LiveRequest, play

    request = LiveRequest(
        mode=mode, bars=bars, tempo=tempo, key=key, density=density, instruments=instruments,
        add=add, sample=SampleConfig(temperature=temperature, seed=seed),
    )  # fmt: skip
    report = play(checkpoint_dir, request, port=port, clock=clock, in_port=in_port,
                  record=record, silence=silence, on_ready=lambda line: echo(line, quiet))  # fmt: skip
    ended = "stopped" if report.interrupted else "done"
    echo(f"{ended}: {report.notes_played} notes (drums included)"
         + (f", recorded in {record}" if record else ""), quiet)  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    main()
