"""Errors the user can act on. The CLI prints their message as one line.

`UserError`: the work failed (exit 1): no usable file, training diverged, ...
`UsageError`: the request itself is wrong (exit 2): missing path, bad option, ...

An error that names a setting says it in the words of whoever asked: a message may hold
`{name}` fields (only those given are filled; other braces stay) filled with `Words` (`param("bars", (40, 44), "40-44")`): `str(error)`
speaks to a Python caller (`bars=(40, 44)`, `force=True`, `checkpoint=`) and
`error.cli_message()` to a shell user (`--bars 40-44`, `--force`, `--checkpoint`);
cli.py prints the latter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from musicgen.score import EmptyMusicError, MusicError, UnreadableFileError

_UNSET: Any = object()


@dataclass(frozen=True)
class Words:
    """One thing said two ways: to a Python caller (`api`) and on the command line (`cli`)."""

    api: str
    cli: str


def param(name: str, value: Any = _UNSET, cli_value: str | None = None) -> Words:
    """A setting as each side names it: the keyword `name` (`bars=(40, 44)`, or `bars=`
    without a value) and the option `--name` with `_` as `-` (`--bars 40-44`; a flag
    set to True alone: `--force`). `cli_value`: the value as the option takes it,
    default `str(value)`."""
    option = "--" + name.replace("_", "-")
    if value is _UNSET:
        return Words(f"{name}=", option)
    if value is True and cli_value is None:
        return Words(f"{name}=True", option)
    shown = str(value) if cli_value is None else cli_value
    return Words(f"{name}={value!r}", f"{option} {shown}")


class UserError(Exception):
    """The work could not be done; the message says why in one line. `words` fill the
    message's `{name}` fields (a message without them is taken as it is)."""

    def __init__(self, message: str = "", **words: Words):
        self.template, self.words = message, words
        super().__init__(self._render("api") if words else message)

    def _render(self, side: str) -> str:
        """The template with each `{name}` of `words` filled in (nothing else is read
        as a field, so a path with braces in it stays as it is)."""
        text = self.template
        for name, words in self.words.items():
            text = text.replace("{" + name + "}", getattr(words, side))
        return text

    def cli_message(self) -> str:
        """The message in the command line's words (options, not keywords)."""
        return self._render("cli") if self.words else str(self)


class UsageError(UserError):
    """The command was asked for something impossible (bad path, bad option)."""


FROM_CHECKPOINT = Words("from_checkpoint=", "--from")  # the API's keyword, train's option


def setting_refusal(message: str, settings: list[str]) -> UsageError:
    """A UsageError whose `{setting}` fields (and `{from_checkpoint}`, `{dropout}`) name
    each side's way of giving them: `units=` / `--units`, `from_checkpoint=` / `--from`."""
    words = {setting: param(setting) for setting in settings}
    words.update(from_checkpoint=FROM_CHECKPOINT, dropout=param("dropout"))
    return UsageError(message, **words)


def cli_message(exc: BaseException) -> str:
    """An error's message for the command line: a UserError's in the options' words."""
    return exc.cli_message() if isinstance(exc, UserError) else str(exc)


__all__ = [
    "FROM_CHECKPOINT",
    "EmptyMusicError",
    "MusicError",
    "UnreadableFileError",
    "UsageError",
    "UserError",
    "Words",
    "cli_message",
    "param",
    "setting_refusal",
]
