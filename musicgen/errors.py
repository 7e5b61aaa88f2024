"""Errors the user can act on. The CLI prints their message as one line.

`UserError`: the work failed (exit 1): no usable file, training diverged, ...
`UsageError`: the request itself is wrong (exit 2): missing path, bad option, ...
"""

from musicgen.score import EmptyMusicError, MusicError, UnreadableFileError


class UserError(Exception):
    """The work could not be done; the message says why in one line."""


class UsageError(UserError):
    """The command was asked for something impossible (bad path, bad option)."""


__all__ = ["EmptyMusicError", "MusicError", "UnreadableFileError", "UsageError", "UserError"]
