"""A folder of music -> token ids per file, parsed on all cores and cached; the split.

`prepare(data_dir, encoding_config)` is the one entry point. It runs four steps:

1. `scan` walks the folder (recursively, following symlinked folders but never
   around a loop, skipping hidden folders and the cache) for the suffixes
   `midi_io.SUPPORTED_SUFFIXES` knows, in sorted order.
2. Each file's bytes are hashed (sha256); a second file with the same bytes is a
   skipped "duplicate of ...".
3. The cache is asked for each (content digest, encoding settings) pair. An entry
   holds either the file's ids and stats or the reason it is unusable, so a second
   run on an unchanged folder reads only the cache: no parsing, no process pool.
4. The misses are parsed and encoded by `_parse_file` in a pool of worker processes
   (never forked: the caller may hold TensorFlow), a bounded number in flight. A file
   that raises is skipped with a one-line reason; a worker that dies takes no file
   with it unnoticed (its files are retried one by one, a file that kills its own
   worker again is skipped).

5. The usable files are packed into token shards (`shards.py`) beside the cache
   entries, keyed by the folder's (path, digest) pairs: what training reads.
   `find_shards` finds an unchanged folder's set by scanning and hashing alone, without
   loading a single file's ids (what each worker of a multi-machine run does);
   `load_shards` (what `train` calls) does that and, for a new or changed folder, goes
   on to prepare it on the same scan.

`PreparedData.summary()` is the `musicgen prepare --json` report; `split_files`
splits by file (never by token), reproducibly from a seed.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import hashlib
import json
import multiprocessing
import os
import stat
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicgen import __version__, shards
from musicgen.atomic import atomic_write
from musicgen.config import EncodingConfig, TrainConfig
from musicgen.encoding import BOS, Encoding, get_encoding
from musicgen.errors import UsageError, UserError
from musicgen.midi_io import SUPPORTED_SUFFIXES
from musicgen.score import EmptyMusicError, MusicError, UnreadableFileError

CACHE_FORMAT = 6  # bump when the cache entry layout or what a file parses to changes
CACHE_ENV = "MUSICGEN_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/musicgen")
IN_PROCESS_MAX = 4  # this many misses or fewer are parsed without starting a pool
IN_FLIGHT_PER_WORKER = 4  # files submitted ahead per worker (bounds memory on huge folders)
SKIP_LIST_IN_ERRORS = 3  # reasons quoted when no file is usable

Progress = Callable[[int, int], None]  # (files done, files in total)
# what `_parse_file` returns: ("ok", ids, notes, seconds, dropped) or ("skip", reason)
ParseResult = tuple


# ----------------------------------------------------------------------------- results


@dataclass
class PreparedFile:
    """One usable file, encoded."""

    path: str  # relative to the data folder, POSIX separators
    digest: str  # sha256 of the file's bytes (hex)
    ids: np.ndarray  # int32 token ids, BOS ... EOS (once per piece of the file)
    notes: int  # notes encoded
    seconds: float  # length of the music in seconds
    dropped: dict[str, int]  # what reading and encoding left out, by reason


@dataclass
class PreparedData:
    """Every usable file of a folder (sorted by path) and every skipped one with why."""

    root: Path
    files: list[PreparedFile]
    skipped: list[tuple[str, str]]  # (path relative to root, one-line reason)
    encoding: str = EncodingConfig.name  # EncodingConfig.name the ids are in
    cached: int = 0  # files answered by the cache (usable or not)
    parsed: int = 0  # files parsed in this run
    data_dir: str = ""  # the folder (or file) as the caller named it
    shards: shards.ShardSet | None = None  # the files packed as token shards (on disk)

    def summary(
        self, val_fraction: float = TrainConfig.val_fraction, seed: int = TrainConfig.seed
    ) -> dict[str, Any]:
        """The `prepare --json` report. `split` counts files as `split_files` would
        split them with these settings."""
        dropped: Counter[str] = Counter()
        for f in self.files:
            dropped.update(f.dropped)
        seconds = float(sum(f.seconds for f in self.files))
        train, validation = split_files(self.files, val_fraction, seed)
        return {
            "data_dir": printable(self.data_dir or str(self.root)),
            "files_ok": len(self.files),
            "pieces": int(sum(np.count_nonzero(f.ids == BOS) for f in self.files)),
            "files_skipped": [{"path": printable(p), "reason": r} for p, r in self.skipped],
            "notes": int(sum(f.notes for f in self.files)),
            "tokens": int(sum(len(f.ids) for f in self.files)),
            "seconds": round(seconds, 3),
            "hours": round(seconds / 3600, 3),
            "dropped": dict(sorted(dropped.items())),
            "cached": self.cached,
            "parsed": self.parsed,
            "encoding": self.encoding,
            "split": {"train": len(train), "validation": len(validation)},
        }


def printable(path: str) -> str:
    """A file name for people: bytes that are not UTF-8 (kept by os as surrogates, which
    cannot be printed) become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


def split_files(
    files: Iterable[PreparedFile], val_fraction: float, seed: int
) -> tuple[list[PreparedFile], list[PreparedFile]]:
    """Split by file into (train, validation), each sorted by path.

    Files are ordered by content digest (so renaming a file does not move it) and
    permuted with `np.random.default_rng(seed)`; the first round(val_fraction * n)
    go to validation, at least one when n >= 2 and val_fraction > 0, and at least
    one file always stays for training.
    """
    ordered = sorted(files, key=lambda f: (f.digest, f.path))
    n = len(ordered)
    n_val = round(val_fraction * n) if val_fraction > 0 else 0
    if val_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(n - 1, 0))
    order = np.random.default_rng(seed).permutation(n)
    val_idx = set(order[:n_val].tolist())
    train = [f for i, f in enumerate(ordered) if i not in val_idx]
    validation = [f for i, f in enumerate(ordered) if i in val_idx]
    return sorted(train, key=lambda f: f.path), sorted(validation, key=lambda f: f.path)


# ----------------------------------------------------------------------------- prepare


def prepare(
    data_dir: str | Path,
    encoding_config: EncodingConfig,
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    tokens_per_shard: int | None = None,
) -> PreparedData:
    """Scan, hash, look up the cache, parse the misses on `workers` processes (default:
    every core), write the token shards and return the folder's encoded files.

    data_dir: a folder (searched recursively) or a single music file.
    cache_dir: default $MUSICGEN_CACHE_DIR, else ~/.cache/musicgen.
    progress: called as progress(files done, files in total) while it works.
    tokens_per_shard: shard size (default $MUSICGEN_SHARD_TOKENS, else 1 << 20).
    Raises UsageError (no such path, no music file in it), UserError (no usable file).
    """
    survey = _survey(data_dir, encoding_config, cache_dir)
    return _prepare(survey, data_dir, encoding_config, workers, progress, tokens_per_shard)


@dataclass
class _Survey:
    """A folder scanned and hashed: its cache, root, unique (path, digest) pairs and the
    files already skipped (links, duplicates, unreadable)."""

    cache: Cache
    root: Path
    unique: list[tuple[str, str]]
    skipped: list[tuple[str, str]]


def _survey(
    data_dir: str | Path, encoding_config: EncodingConfig, cache_dir: str | Path | None
) -> _Survey:
    """Scan and hash `data_dir`; UsageError for a missing folder or one without music."""
    cache = Cache(resolve_cache_dir(cache_dir), encoding_config)
    root, found, skipped = _find_music(Path(data_dir), cache.root)
    if not found and not skipped:
        raise UsageError(f"no music files ({_suffix_list()}) in {data_dir}")
    unique, skipped = _hash_and_dedupe(root, found, skipped)
    return _Survey(cache, root, unique, skipped)


def _prepare(
    survey: _Survey,
    data_dir: str | Path,
    encoding_config: EncodingConfig,
    workers: int | None,
    progress: Progress | None,
    tokens_per_shard: int | None,
) -> PreparedData:
    """`prepare`'s work after the survey: cache look-ups, parsing, shards."""
    cache, root, unique, skipped = survey.cache, survey.root, survey.unique, survey.skipped
    total = len(unique)
    report = progress or (lambda _done, _total: None)
    results: dict[str, ParseResult] = {}
    for rel, digest in unique:
        hit = cache.load(digest)
        if hit is not None:
            results[rel] = hit
    cached = len(results)
    report(cached, total)
    misses = [(rel, digest) for rel, digest in unique if rel not in results]

    unwritable = []  # entries the cache could not store (then no shards are written)

    def done(index: int, result: ParseResult) -> None:
        rel, digest = misses[index]
        results[rel] = result
        if not cache.store(digest, result):
            unwritable.append(rel)
        report(len(results), total)

    _parse_all([root / rel for rel, _ in misses], encoding_config, workers, done)
    data = _collect(root, unique, results, skipped, encoding_config.name)
    data.cached, data.parsed, data.data_dir = cached, len(misses), str(data_dir)
    if not data.files:
        raise UserError(_nothing_usable(data_dir, data.skipped))
    if not unwritable:  # a cache that cannot be written gets no shards either
        data.shards = _write_shards(cache, unique, data, tokens_per_shard)
    return data


def find_shards(
    data_dir: str | Path,
    encoding_config: EncodingConfig,
    *,
    cache_dir: str | Path | None = None,
    tokens_per_shard: int | None = None,
) -> shards.ShardSet | None:
    """The shard set `prepare` wrote for this folder as it is now, or None (never
    prepared with these settings, or changed since). Scans and hashes the folder but
    loads no file's ids. Raises UsageError like `prepare` for a missing/empty folder."""
    survey = _survey(data_dir, encoding_config, cache_dir)
    return shards.ShardSet.load(_shard_folder(survey.cache, survey.unique, tokens_per_shard))


def load_shards(
    data_dir: str | Path,
    encoding_config: EncodingConfig,
    *,
    cache_dir: str | Path | None = None,
    tokens_per_shard: int | None = None,
) -> shards.ShardSet:
    """The folder's shard set: `find_shards`'s when the folder is unchanged (no file's
    ids loaded), else what `prepare` writes (or holds in memory). The folder is scanned
    and hashed once either way. Raises as `prepare`."""
    survey = _survey(data_dir, encoding_config, cache_dir)
    found = shards.ShardSet.load(_shard_folder(survey.cache, survey.unique, tokens_per_shard))
    if found is not None:
        return found
    data = _prepare(survey, data_dir, encoding_config, None, None, tokens_per_shard)
    return shard_set(data, tokens_per_shard)


def shard_set(data: PreparedData, tokens_per_shard: int | None = None) -> shards.ShardSet:
    """`data`'s shard set: the one `prepare` wrote, else (the cache could not be written)
    the same set held in memory."""
    if data.shards is not None:
        return data.shards
    size = shards.tokens_per_shard(tokens_per_shard)
    return shards.ShardSet.in_memory(data.files, data.skipped, size)


def _shard_folder(cache: Cache, unique: list[tuple[str, str]], tokens: int | None) -> Path:
    size = shards.tokens_per_shard(tokens)
    return cache.folder / f"shards-{shards.folder_key(unique, size)}"


def _write_shards(
    cache: Cache, unique: list[tuple[str, str]], data: PreparedData, tokens: int | None
) -> shards.ShardSet | None:
    """Write (or reuse) the folder's shard set; None when the cache cannot be written."""
    folder = _shard_folder(cache, unique, tokens)
    try:
        return shards.write(folder, data.files, data.skipped, shards.tokens_per_shard(tokens))
    except OSError:
        return None


def _collect(
    root: Path,
    unique: list[tuple[str, str]],
    results: dict[str, ParseResult],
    skipped: list[tuple[str, str]],
    encoding: str,
) -> PreparedData:
    """Results per file -> PreparedData (usable files and all skips, sorted by path)."""
    files = []
    skipped = list(skipped)
    for rel, digest in unique:
        result = results[rel]
        if result[0] == "ok":
            _, ids, notes, seconds, dropped = result
            files.append(PreparedFile(rel, digest, ids, notes, seconds, dropped))
        else:
            skipped.append((rel, result[1]))
    return PreparedData(root=root, files=files, skipped=sorted(skipped), encoding=encoding)


def _nothing_usable(data_dir: str | Path, skipped: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{p}: {r}" for p, r in skipped[:SKIP_LIST_IN_ERRORS])
    more = len(skipped) - SKIP_LIST_IN_ERRORS
    tail = f" (and {more} more)" if more > 0 else ""
    return f"no usable music file in {data_dir}: {shown}{tail}"


def _suffix_list() -> str:
    return " ".join(sorted(SUPPORTED_SUFFIXES))


# ----------------------------------------------------------------------------- scanning


def _find_music(path: Path, cache_root: Path) -> tuple[Path, list[str], list[tuple[str, str]]]:
    """(root folder, music files relative to it, skipped entries) for a folder or a file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"no such file or folder: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot open {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        found, skipped = scan(path, exclude=[cache_root])
        return path, found, skipped
    if stat.S_ISREG(mode) and path.suffix.lower() in SUPPORTED_SUFFIXES:
        return path.parent, [path.name], []
    raise UsageError(f"not a folder or a music file ({_suffix_list()}): {path}")


def scan(
    data_dir: str | Path, exclude: Iterable[str | Path] = ()
) -> tuple[list[str], list[tuple[str, str]]]:
    """Music files under `data_dir`, as sorted POSIX paths relative to it.

    Follows symlinked folders, visiting each real folder once (so a link loop ends);
    skips hidden entries (".name") and the folders in `exclude` (e.g. the cache).
    Returns (files, skipped) where skipped holds (relative path, reason) for folders
    or links that could not be read.
    """
    root = Path(data_dir)
    seen = {_identity(Path(p)) for p in exclude} - {None}
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    queue = deque([(root, "")])  # breadth first: the shortest path to a folder wins
    while queue:
        folder, rel = queue.popleft()
        ident = _identity(folder)
        if ident is None or ident in seen:
            continue
        seen.add(ident)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skipped.append((rel or ".", f"unreadable folder: {exc.strerror or exc}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child = f"{rel}{entry.name}"
            kind, reason = _entry_kind(entry)
            if kind == "dir":
                queue.append((Path(entry.path), child + "/"))
            elif kind == "file" and Path(entry.name).suffix.lower() in SUPPORTED_SUFFIXES:
                files.append(child)
            elif reason and Path(entry.name).suffix.lower() in SUPPORTED_SUFFIXES:
                skipped.append((child, reason))
    return sorted(files), sorted(skipped)


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the real folder behind `path`; None if it cannot be stat'ed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _entry_kind(entry: os.DirEntry) -> tuple[str, str]:
    """("dir" | "file" | "other", reason when it cannot be read), links followed."""
    try:
        if entry.is_dir():
            return "dir", ""
        if entry.is_file():
            return "file", ""
        if entry.is_symlink():
            return "other", "broken link"
        return "other", "not a regular file"
    except OSError as exc:
        return "other", f"unreadable: {exc.strerror or exc}"


def _hash_and_dedupe(
    root: Path, found: list[str], skipped: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Digest each file; the first file (by path) of each content is kept, later ones
    and unreadable ones are skipped. Returns ([(path, digest)], skipped)."""
    first_with: dict[str, str] = {}
    unique: list[tuple[str, str]] = []
    skipped = list(skipped)
    for rel in found:
        try:
            digest = file_digest(root / rel)
        except OSError as exc:
            skipped.append((rel, f"unreadable: {exc.strerror or exc}"))
            continue
        if digest in first_with:
            skipped.append((rel, f"duplicate of {first_with[digest]}"))
            continue
        first_with[digest] = rel
        unique.append((rel, digest))
    return unique, skipped


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- cache


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: `cache_dir`, else $MUSICGEN_CACHE_DIR, else ~/.cache/musicgen."""
    chosen = cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
    return Path(chosen).expanduser()


class Cache:
    """Parsed files keyed by (content digest, encoding settings).

    Layout: <root>/prepared-<settings key>/<digest[:2]>/<digest>.npz, holding either
    `ids` (int32) and `meta` (JSON: notes, seconds, dropped) or `error` (the reason the
    file is unusable). Written atomically; an entry that cannot be read is a miss.
    A cache that cannot be written is silently skipped (the run still works).
    """

    def __init__(self, root: Path, config: EncodingConfig):
        self.root = root
        key = json.dumps(
            {"format": CACHE_FORMAT, "musicgen": __version__, "encoding": config.to_dict()},
            sort_keys=True,
        )
        self.folder = root / f"prepared-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    def path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npz"

    def load(self, digest: str) -> ParseResult | None:
        """The stored result for this content, or None (absent or unreadable)."""
        try:
            with np.load(self.path(digest), allow_pickle=False) as entry:
                if "error" in entry.files:
                    return ("skip", str(entry["error"]))
                ids = np.asarray(entry["ids"])
                meta = json.loads(str(entry["meta"]))
                if ids.dtype != np.int32 or ids.ndim != 1 or len(ids) < 2:
                    return None
                dropped = {str(k): int(v) for k, v in meta["dropped"].items()}
                return ("ok", ids, int(meta["notes"]), float(meta["seconds"]), dropped)
        except Exception:  # noqa: BLE001 - missing, truncated, garbled: all a miss
            return None

    def store(self, digest: str, result: ParseResult) -> bool:
        """Write one entry atomically (temp file + rename); False when it could not be
        written (errors are otherwise ignored)."""
        if result[0] == "ok":
            _, ids, notes, seconds, dropped = result
            meta = json.dumps({"notes": notes, "seconds": seconds, "dropped": dropped})
            arrays = {"ids": np.asarray(ids, np.int32), "meta": np.array(meta)}
        else:
            arrays = {"error": np.array(result[1])}
        target = self.path(digest)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(target, durable=False) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        except OSError:
            return False
        return True


# ----------------------------------------------------------------------------- parsing


def _parse_file(path: str, config_json: str) -> ParseResult:
    """Worker: read and encode one file. Never raises: ("ok", ids, notes, seconds,
    dropped) or ("skip", one-line reason). A file of several pieces (an ABC file of
    many tunes) gives their sequences back to back, each BOS ... EOS; a piece left
    with no note after encoding is counted as "empty_pieces". Runs in a worker
    process; imports no TensorFlow."""
    from musicgen.midi_io import read_pieces

    try:
        config = EncodingConfig.from_dict(json.loads(config_json))
        sequences, notes, seconds, dropped = [], 0, 0.0, Counter()
        # a part encoding (steps, tracks) trains on the drum part: its drums are kept, and
        # a drum groove is music with parts
        has_parts = _encoding(config_json).has_parts
        for score in read_pieces(path, config.include_drums, allow_drums_only=has_parts):
            encoded = _encoding(config_json).encode(score)
            ids = np.asarray(encoded.ids, dtype=np.int32)
            read = Counter(score.dropped)
            if has_parts:
                read.pop("drum_notes", None)
            dropped.update(read)
            piece_notes = int(np.isin(ids, _note_ids(config_json)).sum())
            if piece_notes == 0:
                dropped["empty_pieces"] += 1
                continue
            dropped.update(encoded.dropped)
            sequences.append(ids)
            notes += piece_notes
            seconds += float(score.duration_seconds)
        if notes == 0:
            return ("skip", "no notes left after encoding (all out of range?)")
        counts = {str(k): int(v) for k, v in sorted(dropped.items()) if v}
        return ("ok", np.concatenate(sequences), notes, seconds, counts)
    except UnreadableFileError as exc:
        return ("skip", _one_line(f"unreadable: {exc}"))
    except (EmptyMusicError, MusicError) as exc:
        return ("skip", _one_line(str(exc)))
    except MemoryError:
        return ("skip", "unreadable: out of memory")
    except Exception as exc:  # noqa: BLE001 - one odd file must not stop the folder
        return ("skip", _one_line(f"unreadable: {type(exc).__name__}: {exc}"))


@functools.lru_cache(maxsize=4)
def _encoding(config_json: str) -> Encoding:
    return get_encoding(EncodingConfig.from_dict(json.loads(config_json)))


@functools.lru_cache(maxsize=4)
def _note_ids(config_json: str) -> np.ndarray:
    """Ids of the tokens that start a note (Pitch_*, tracks' Drum_*, performance NoteOn_*)."""
    vocab = _encoding(config_json).vocab
    return np.concatenate([vocab.ids_with_prefix(p) for p in ("Pitch_", "Drum_", "NoteOn_")])


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_all(
    paths: list[Path],
    config: EncodingConfig,
    workers: int | None,
    done: Callable[[int, ParseResult], None],
    worker: Callable[[str, str], ParseResult] = _parse_file,
) -> None:
    """Parse every path, calling done(index, result) once per path (any order).

    Few files (or workers=1) are parsed in this process; the rest in a pool of
    `workers` processes (default: every core). When a worker dies, the files it may
    have held are retried one per fresh pool, and a file that kills its own worker is
    skipped; if no pool can run here at all, the rest is parsed in this process.
    """
    config_json = json.dumps(config.to_dict(), sort_keys=True)
    workers = max(1, workers or os.cpu_count() or 1)
    queue = deque(range(len(paths)))
    if workers > 1 and len(paths) > IN_PROCESS_MAX:
        pass_ = functools.partial(
            _pool_pass, paths, config_json=config_json, done=done, worker=worker
        )
        while queue:
            broken, worked = pass_(queue, workers=workers)
            if not broken:
                continue
            if not worked and not _pools_work():
                queue.extendleft(reversed(broken))
                break
            for i in broken:  # alone in a fresh pool, a suspect either parses or dies alone
                if pass_(deque([i]), workers=1)[0]:
                    done(i, ("skip", "unreadable: the parser crashed on this file"))
    for i in queue:  # in this process: few files, one worker, or no working pool
        done(i, worker(str(paths[i]), config_json))


def _pool_pass(
    paths: list[Path],
    queue: deque[int],
    *,
    config_json: str,
    workers: int,
    done: Callable[[int, ParseResult], None],
    worker: Callable[[str, str], ParseResult],
) -> tuple[list[int], bool]:
    """Run the indices in `queue` through one process pool, a bounded number in flight.

    Returns (indices in flight when a worker died, whether any result came back). After
    a death the pool is abandoned and the unsubmitted rest stays in `queue`."""
    limit = workers * IN_FLIGHT_PER_WORKER
    in_flight: dict[cf.Future, int] = {}
    broken: list[int] = []
    worked = False
    with cf.ProcessPoolExecutor(
        max_workers=min(workers, len(queue)), mp_context=_safe_context()
    ) as pool:
        while (queue or in_flight) and not broken:
            while queue and len(in_flight) < limit:
                try:
                    future = pool.submit(worker, str(paths[queue[0]]), config_json)
                except BrokenProcessPool:  # died before its turn: count it as a suspect
                    broken.append(queue.popleft())
                    break
                in_flight[future] = queue.popleft()
            if broken or not in_flight:
                break
            finished, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                i = in_flight.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken.append(i)
                    continue
                except Exception as exc:  # noqa: BLE001 - e.g. a result that will not unpickle
                    result = ("skip", _one_line(f"unreadable: {type(exc).__name__}: {exc}"))
                worked = True
                done(i, result)
        broken += in_flight.values()  # the pool is broken: nothing else will finish
    return sorted(broken), worked


def _ping() -> bool:
    return True


def _pools_work() -> bool:
    """Whether a one-worker pool can run a trivial task here (it cannot when, e.g., the
    main module cannot be re-imported by a worker)."""
    try:
        with cf.ProcessPoolExecutor(max_workers=1, mp_context=_safe_context()) as pool:
            return pool.submit(_ping).result(timeout=120)
    except Exception:  # noqa: BLE001 - any failure means: parse in this process
        return False


def _safe_context() -> multiprocessing.context.BaseContext:
    """A start method that never forks this process (which may hold TensorFlow)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
