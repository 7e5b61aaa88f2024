"""Atomic file writes: every file musicgen writes goes through `atomic_write`.

A writer fills a temporary file beside the target; only a complete file is renamed
over the target (`os.replace`, atomic on one file system), so a run killed at any
moment leaves either the old file or the new one, never half of one. The temporary
name is `.tmp-<random>-<target name>`: it ends as the target does (Keras insists on
`.weights.h5`, matplotlib and FluidSynth read the suffix) and starts with `.tmp-`,
which is how `checkpoint.remove_stale_temporaries` finds what a killed writer left.
`check_free` refuses, before any work, to overwrite files without --force.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from musicgen.errors import UsageError, param

_UMASK = os.umask(0o022)
os.umask(_UMASK)
TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_write(path: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; when the block ends without an
    error, the file gets the usual permissions (0o666 less the umask) and is renamed
    over `path`.

    durable: fsync the file before the rename and the folder after it (checkpoints,
    MIDI files); False skips both (caches and shards, which can be rebuilt).
    On any error the temporary file is removed and the error re-raised; an OSError
    then names `path`, not the temporary file. The folder must exist.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix="-" + path.name)
        os.close(fd)
    except OSError as exc:
        raise _naming(exc, path) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise
    if durable:
        _fsync_dir(folder)


def _naming(exc: OSError, path: Path) -> OSError:
    """`exc` as an OSError of the same kind whose filename is `path`."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be fsynced)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_free(paths: list[Path], force: bool) -> None:
    """UsageError when one of `paths` exists and `force` is not set: the commands that
    write pieces refuse to overwrite before any work starts."""
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(
            f"{existing[0]} exists{more}; use {{force}} to overwrite", force=param("force", True)
        )
