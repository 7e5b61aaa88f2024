"""Token shards: a prepared folder's encoded files packed into fixed-size int32 files.

`dataset.prepare` writes a shard set beside its cache entries, and training reads it:

    <cache>/prepared-<encoding key>/shards-<folder key>/
        shard-00000.npy ...   int32 token ids of whole files back to back (BOS ... EOS each)
        index.json            per shard: its files' path, digest, offset, length (written last)

The folder key hashes the folder's (path, content digest) pairs and the shard size, so a
changed folder gets a new set and an unchanged one reuses its set. `pack` orders the
files by digest (which spreads a folder's sub-folders over all shards and does not move
a renamed file) and fills shards greedily up to `tokens_per_shard` tokens; a file is
never split (a longer one is a shard of its own). Every file is written atomically and
the index last, so a set whose index loads is complete.

`ShardSet` reads a set through memory maps (a shard costs nothing until its tokens are
touched), or holds one in memory when the cache cannot be written. `assign` gives input
pipeline p of P (one per worker) its part of a file list: the files of the shards s with
s % P == p, or, when that would leave a pipeline without a file, every P-th file.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicgen.atomic import atomic_write

SHARD_FORMAT = 1  # bump when the index or shard layout changes
INDEX_FILE = "index.json"
SHARD_TOKENS_ENV = "MUSICGEN_SHARD_TOKENS"  # overrides DEFAULT_TOKENS_PER_SHARD (tests)
DEFAULT_TOKENS_PER_SHARD = 1 << 20  # 4 MiB of int32 per shard


def tokens_per_shard(value: int | None = None) -> int:
    """The shard size in tokens: `value`, else $MUSICGEN_SHARD_TOKENS, else 1 << 20."""
    chosen = value or int(os.environ.get(SHARD_TOKENS_ENV) or DEFAULT_TOKENS_PER_SHARD)
    if chosen < 2:
        raise ValueError(f"tokens per shard must be >= 2, not {chosen}")
    return chosen


def folder_key(pairs: Iterable[tuple[str, str]], shard_tokens: int) -> str:
    """16 hex digits naming the shard set of a folder whose files are (path, digest) pairs."""
    text = json.dumps(
        {"format": SHARD_FORMAT, "tokens": shard_tokens, "files": sorted(map(list, pairs))}
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ShardFile:
    """Where one encoded file lies in a shard set. `dataset.split_files` reads only
    `path` and `digest`, so it splits these as it splits `PreparedFile`s."""

    path: str  # relative to the data folder, POSIX separators
    digest: str  # sha256 of the file's bytes (hex)
    shard: int  # index of the shard that holds it
    offset: int  # first token's position in the shard
    length: int  # tokens, BOS ... EOS


def pack(files: Sequence[Any], shard_tokens: int) -> list[list[ShardFile]]:
    """Files (anything with path, digest, ids) -> shards of ShardFile, in shard order.

    Files go in (digest, path) order; a shard takes files while it holds at most
    `shard_tokens` tokens (a single longer file makes a shard alone)."""
    shards: list[list[ShardFile]] = []
    filled = shard_tokens  # start a new shard at the first file
    for f in sorted(files, key=lambda f: (f.digest, f.path)):
        length = len(f.ids)
        if filled + length > shard_tokens:
            shards.append([])
            filled = 0
        shards[-1].append(ShardFile(f.path, f.digest, len(shards) - 1, filled, length))
        filled += length
    return shards


class ShardSet:
    """The encoded files of a folder, packed into shards.

    `files` lists every file in shard order; `ids(file)` reads one file's tokens and
    `shard(s)` a whole shard (int32, memory-mapped when the set is on disk)."""

    def __init__(
        self,
        shards: list[list[ShardFile]],
        skipped: Sequence[tuple[str, str]] = (),
        *,
        folder: Path | None = None,
        arrays: list[np.ndarray] | None = None,
    ):
        self.shards = shards
        self.files = [f for shard in shards for f in shard]
        self.skipped = [tuple(s) for s in skipped]
        self.folder = folder  # None: held in memory (`arrays`)
        self._arrays = arrays
        self._maps: dict[int, np.ndarray] = {}

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def tokens(self) -> int:
        return sum(f.length for f in self.files)

    def shard(self, index: int) -> np.ndarray:
        """int32[tokens of shard `index`]."""
        if self._arrays is not None:
            return self._arrays[index]
        if index not in self._maps:
            self._maps[index] = np.load(_shard_path(self.folder, index), mmap_mode="r")
        return self._maps[index]

    def ids(self, file: ShardFile) -> np.ndarray:
        """int32[length]: one file's token ids, BOS ... EOS (a copy, safe to keep)."""
        return np.array(self.shard(file.shard)[file.offset : file.offset + file.length])

    def concatenated(self, files: Sequence[ShardFile]) -> np.ndarray:
        """int32[sum of lengths]: `files`' ids back to back, in the order given."""
        parts = [self.ids(f) for f in files]
        return np.concatenate(parts) if parts else np.zeros(0, np.int32)

    @classmethod
    def in_memory(
        cls, files: Sequence[Any], skipped: Sequence[tuple[str, str]], shard_tokens: int
    ) -> ShardSet:
        """The set `write` would write, held in memory (files: path, digest, ids)."""
        shards = pack(files, shard_tokens)
        by_path = {f.path: f for f in files}
        arrays = [_shard_array(shard, by_path) for shard in shards]
        return cls(shards, skipped, arrays=arrays)

    @classmethod
    def load(cls, folder: Path) -> ShardSet | None:
        """The set in `folder`, or None when its index is missing, unreadable or does
        not match its shard files."""
        try:
            index = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8"))
            if index.get("format") != SHARD_FORMAT:
                return None
            shards = [
                [
                    ShardFile(f["path"], f["digest"], s, int(f["offset"]), int(f["length"]))
                    for f in entry["files"]
                ]  # fmt: skip
                for s, entry in enumerate(index["shards"])
            ]
            found = cls(shards, [tuple(x) for x in index["skipped"]], folder=folder)
            for s, entry in enumerate(index["shards"]):
                array = found.shard(s)
                if array.dtype != np.int32 or array.shape != (int(entry["tokens"]),):
                    return None
            return found
        except (OSError, ValueError, KeyError, TypeError):
            return None


def write(
    folder: Path, files: Sequence[Any], skipped: Sequence[tuple[str, str]], shard_tokens: int
) -> ShardSet:
    """Write the shard set of `files` (path, digest, ids) into `folder`, reusing a complete
    one already there. Every file atomically, index.json last. Raises OSError."""
    existing = ShardSet.load(folder)
    if existing is not None:
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    shards = pack(files, shard_tokens)
    by_path = {f.path: f for f in files}
    for s, shard in enumerate(shards):
        array = _shard_array(shard, by_path)
        _atomic(_shard_path(folder, s), lambda handle, a=array: np.save(handle, a))
    index = {
        "format": SHARD_FORMAT,
        "tokens_per_shard": shard_tokens,
        "files": sum(len(shard) for shard in shards),
        "tokens": sum(f.length for shard in shards for f in shard),
        "skipped": [list(s) for s in skipped],
        "shards": [
            {
                "name": _shard_path(folder, s).name,
                "tokens": sum(f.length for f in shard),
                "files": [
                    {"path": f.path, "digest": f.digest, "offset": f.offset, "length": f.length}
                    for f in shard
                ],
            }
            for s, shard in enumerate(shards)
        ],
    }
    text = json.dumps(index, indent=1).encode()
    _atomic(folder / INDEX_FILE, lambda handle: handle.write(text))
    return ShardSet(shards, skipped, folder=folder)


def assign(
    files: Sequence[ShardFile], pipeline: int, pipelines: int, *, duplicate: bool = False
) -> tuple[list[ShardFile], str]:
    """Input pipeline `pipeline`'s part of `files` (of `pipelines`), and how it was cut.

    "shards": the files of the shards s with s % pipelines == pipeline, when every
    pipeline gets at least one file that way; else "files": files[i] for i % pipelines
    == pipeline (in shard order), when there are at least as many files as pipelines;
    else "all" (every pipeline gets every file) if `duplicate`, or "files" (some
    pipelines get none). The same on every worker: it depends on the arguments only."""
    if pipelines == 1:
        return list(files), "shards"
    by_shard = [[f for f in files if f.shard % pipelines == p] for p in range(pipelines)]
    if all(by_shard):
        return by_shard[pipeline], "shards"
    if len(files) >= pipelines or not duplicate:
        return [f for i, f in enumerate(files) if i % pipelines == pipeline], "files"
    return list(files), "all"


# ----------------------------------------------------------------------------- helpers


def _shard_path(folder: Path | None, index: int) -> Path:
    return Path(folder or ".") / f"shard-{index:05d}.npy"


def _shard_array(shard: Sequence[ShardFile], by_path: dict[str, Any]) -> np.ndarray:
    parts = [np.asarray(by_path[f.path].ids, np.int32).ravel() for f in shard]
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def _atomic(target: Path, write: Any) -> None:
    """Call write(handle) on a temporary file beside `target`, then rename it over
    (`atomic.atomic_write`; not fsynced: shards can be rebuilt from the cache)."""
    with atomic_write(target, durable=False) as tmp, open(tmp, "wb") as handle:
        write(handle)
