"""Command line: parse arguments, call one library function, echo the result.

This is the only module that prints to the user or exits. Library code raises
`UserError` (or one of the music errors) for anything the user can fix; here it
becomes one line on stderr and exit code 1 (the work failed) or 2 (bad usage).
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from musicgen import __version__
from musicgen.errors import UsageError, UserError

DEFAULT_DATA_DIR = "midi_corpus"


def _quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up log lines out of normal output (set before import)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


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
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except UserError as exc:
            if debug:
                raise
            click.echo(f"Error: {exc}", err=True)
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
    if not quiet:
        click.echo(message, err=err)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


def existing_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise UsageError(f"path does not exist: {value}")
    return path


if __name__ == "__main__":  # pragma: no cover
    main()
