"""Held-out likelihood of a checkpoint, beside an n-gram baseline fitted on its training files.

How the pieces relate:
- `evaluate(checkpoint_dir, data_dir)` loads the checkpoint, encodes the data folder
  with the checkpoint's own encoding (`dataset.prepare`, cached), and picks the files
  to score: the checkpoint's validation files from split.json, or every file (`all_files`).
- `network_scores` runs the model over each whole file (padded batches of files sorted by
  length, PAD positions masked) and predicts ids[1:] from ids[:-1], as in training.
- `ngram_scores` does the same with an interpolated Kneser-Ney model (`ngram.py`) fitted on
  the checkpoint's TRAINING files; its order is chosen on a held-out tenth of them.
- Both give per-file totals (nll nats, correct top-1). `FileScore` joins them with the
  file's size in tokens and in music (`Encoding.music_size`: quarter notes and notes of
  every piece the file holds), and `summarize` turns a list of them into the figures of
  SPEC.md: per token (nll_per_token in nats, bits_per_token, perplexity, accuracy) and,
  comparable across encodings, nats_per_quarter and nats_per_note; every total is the sum
  of the files' figures.

TensorFlow is imported only when the model is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicgen import checkpoint as ckpt
from musicgen.dataset import prepare
from musicgen.encoding import BOS, pack_stream
from musicgen.errors import UserError
from musicgen.ngram import fit_order

DEFAULT_DATA_DIR = "midi_corpus"
MAX_BATCH_TOKENS = 32_768  # padded tokens per network call (memory ~ this x vocab x 8 bytes)


@dataclass(frozen=True)
class FileScore:
    """One scored file: how much it holds and how well it was predicted."""

    path: str  # relative to the data folder
    tokens: int  # targets scored: len(ids) - 1
    nll_nats: float  # total negative log-likelihood of those targets, nats
    correct: int  # targets that were the top-1 prediction
    seconds: float  # length of the music, seconds
    quarters: float  # length of the music, quarter notes (every piece of the file)
    notes: int  # notes of the music (every piece of the file)

    def to_dict(self) -> dict[str, Any]:
        """The `files` entry of SPEC.md `evaluate --json`."""
        return {
            "path": self.path,
            "tokens": self.tokens,
            "nll_nats": self.nll_nats,
            "seconds": self.seconds,
            "quarters": self.quarters,
            "notes": self.notes,
        }


def evaluate(
    checkpoint_dir: str | Path,
    data_dir: str | Path | None = None,
    *,
    all_files: bool = False,
    cache_dir: str | Path | None = None,
    batch_size: int = 16,
    which: str = "best",
    ngram_orders: Sequence[int] = range(1, 9),
    baseline: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score the checkpoint (and the n-gram baseline) on held-out files of `data_dir`.

    data_dir: defaults to the folder recorded in the checkpoint's config.json, else
    `midi_corpus`. Files named in split.json but absent from the folder are listed under
    "missing"; UserError if none of the chosen files remain (or split.json is needed and
    absent). Returns the SPEC.md `evaluate --json` dict.
    """
    say = progress or (lambda _msg: None)
    folder = Path(checkpoint_dir)
    config, meta = ckpt.read_config(folder)
    split = ckpt.read_split(folder)
    data_dir = Path(data_dir or meta.get("data", {}).get("data_dir") or DEFAULT_DATA_DIR)
    if not all_files and not (split and split.get("validation")):
        raise UserError(
            f"{folder} lists no validation files (split.json missing or empty); "
            "use --all to score every file of the folder"
        )
    say(f"encoding {data_dir} with the checkpoint's {config.encoding.name} encoding")
    prepared = prepare(data_dir, config.encoding, cache_dir=cache_dir)
    by_path = {f.path: f for f in prepared.files}
    wanted = sorted(by_path) if all_files else list(split["validation"])
    chosen = [by_path[p] for p in wanted if p in by_path]
    missing = [p for p in wanted if p not in by_path]
    if not chosen:
        raise UserError(f"none of the {len(wanted)} validation files are in {data_dir}")

    say(f"scoring {len(chosen)} files with the network")
    loaded = ckpt.load_checkpoint(folder, which=which)
    vocab_size = len(loaded.encoding.vocab)
    sizes = [loaded.encoding.music_size(f.ids) for f in chosen]  # (quarters, notes) each
    net = network_token_nll(loaded.model, [f.ids for f in chosen], batch_size=batch_size)
    result: dict[str, Any] = {
        "checkpoint": str(folder),
        "weights": loaded.info.get("weights"),
        "data_dir": str(data_dir),
        "split": "all" if all_files else "validation",
        **summarize(file_scores(chosen, sizes, _totals(net))),
        "families": family_scores(loaded.encoding, chosen, net),
        "missing": missing,
        "skipped": [{"path": p, "reason": r} for p, r in prepared.skipped],
    }
    result["baseline"] = None
    if baseline:
        train_paths = set((split or {}).get("train", []))
        train = [f.ids for f in prepared.files if f.path in train_paths]
        if train:
            say(f"fitting the n-gram baseline on {len(train)} training files")
            result["baseline"] = ngram_scores(
                train, [f.ids for f in chosen], vocab_size, ngram_orders, config.train.seed
            )
            scores = result["baseline"].pop("scores")
            result["baseline"].update(summarize(file_scores(chosen, sizes, _totals(scores))))
            result["baseline"]["families"] = family_scores(loaded.encoding, chosen, scores)
        else:
            result["baseline_note"] = f"no training file of {folder} found in {data_dir}"
    return result


def network_scores(
    model: Any, sequences: Sequence[np.ndarray], batch_size: int = 16
) -> list[tuple[float, int]]:
    """(total nll in nats, correct top-1 predictions) per sequence, in input order."""
    return [
        (float(nll.sum()), correct)
        for nll, correct in network_token_nll(model, sequences, batch_size)
    ]


def network_token_nll(
    model: Any, sequences: Sequence[np.ndarray], batch_size: int = 16
) -> list[tuple[np.ndarray, int]]:
    """(nll in nats of each target ids[1:], float64[len - 1]; correct top-1 predictions)
    per sequence, in input order.

    Sequences are sorted by length and run in right-padded batches (at most `batch_size`
    sequences and MAX_BATCH_TOKENS padded tokens); the recurrent model is causal, so the
    padding never changes a real position, and padded targets are masked out.
    """
    forward = _compiled_forward(model)
    parts = getattr(model, "parts", None)  # the network reads each token's part (checkpoint.py)
    out: list[tuple[np.ndarray, int]] = [(np.zeros(0), 0)] * len(sequences)
    for batch in _batches([len(s) - 1 for s in sequences], batch_size):
        width = max(len(sequences[i]) - 1 for i in batch)
        inputs = np.zeros((len(batch), width), np.int32)  # PAD = 0
        targets = np.zeros((len(batch), width), np.int64)
        mask = np.zeros((len(batch), width), bool)
        for row, i in enumerate(batch):
            ids = np.asarray(sequences[i])
            inputs[row, : len(ids) - 1] = (ids if parts is None else pack_stream(ids, parts))[:-1]
            targets[row, : len(ids) - 1] = ids[1:]
            mask[row, : len(ids) - 1] = True
        logits = forward(inputs)
        picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
        logp = picked.astype(np.float64) - _logsumexp(logits)  # log softmax at the targets
        correct = (logits.argmax(-1) == targets) & mask
        for row, i in enumerate(batch):
            out[i] = (-logp[row][mask[row]], int(correct[row].sum()))
    return out


def _compiled_forward(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """ids int32[b, t] -> logits float32[b, t, vocab] as numpy, through one tf.function
    traced once for every shape (an eager recurrent loop is several times slower)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def run(ids: Any) -> Any:
        return model(ids, training=False)

    return lambda ids: run(tf.constant(ids, tf.int32)).numpy()


def ngram_scores(
    train: Sequence[np.ndarray],
    sequences: Sequence[np.ndarray],
    vocab_size: int,
    orders: Sequence[int] = range(1, 9),
    seed: int = 0,
) -> dict[str, Any]:
    """Fit the Kneser-Ney baseline on `train` (order chosen on a held-out tenth of it)
    and score `sequences`: {"model", "order", "heldout_nll_by_order", "train_files",
    "train_tokens", "scores": [(nll nats of each target, correct top-1) per sequence]}."""
    choice = fit_order(train, vocab_size, orders=orders, seed=seed)
    scores = []
    for ids in sequences:
        probs = choice.model.distributions(ids)
        targets = np.asarray(ids)[1:]
        nll = -np.log(probs[np.arange(len(targets)), targets])
        scores.append((nll, int((probs.argmax(-1) == targets).sum())))
    return {
        "model": "interpolated Kneser-Ney n-gram",
        "order": choice.order,
        "heldout_nll_by_order": {str(k): round(v, 6) for k, v in choice.heldout_nll.items()},
        "train_files": len(train),
        "train_tokens": int(sum(len(s) - 1 for s in train)),
        "scores": scores,  # (per-token nll nats, correct top-1) per sequence
    }


def _totals(scores: Sequence[tuple[np.ndarray, int]]) -> list[tuple[float, int]]:
    """Per-token scores -> (total nll nats, correct) per sequence."""
    return [(math.fsum(nll.tolist()), correct) for nll, correct in scores]


def family_scores(
    encoding: Any, files: Sequence[Any], scores: Sequence[tuple[np.ndarray, int]]
) -> dict[str, dict[str, Any]]:
    """Nats per note of each instrument family (tracks and steps encodings; {} otherwise): the
    nats of the tokens that write a part's notes (its Track, Velocity, Pitch, Duration
    and Drum tokens) over those notes. What the parts share (bars, positions, controls,
    the header) is under "shared", per quarter note. How well the model knows its bass
    against its drums, in units that do not depend on how many tokens a note takes."""
    if not encoding.has_parts:
        return {}
    from musicgen.encoding.tracks import token_parts
    from musicgen.instruments import family

    nats: dict[str, float] = {}
    notes: dict[str, int] = {}
    shared, quarters = 0.0, 0.0
    for f, (nll, _) in zip(files, scores, strict=True):
        owners = token_parts(f.ids, encoding)[1:]  # the target of each prediction
        for program in set(owners.tolist()) - {-1}:
            name = family(program)
            nats[name] = nats.get(name, 0.0) + float(nll[owners == program].sum())
        shared += float(nll[owners == -1].sum())
        ids = np.asarray(f.ids)
        for piece in np.split(ids, np.flatnonzero(ids == BOS)[1:]):
            piece = encoding.decode(piece)
            quarters += piece.length
            for part in piece.parts:
                notes[family(part.program)] = notes.get(family(part.program), 0) + len(part.notes)
    out = {
        name: {
            "nats": nats[name],
            "notes": notes.get(name, 0),
            "nats_per_note": nats[name] / notes[name] if notes.get(name) else None,
        }
        for name in sorted(nats)
    }
    out["shared"] = {
        "nats": shared,
        "quarters": quarters,
        "nats_per_quarter": shared / quarters if quarters else None,
    }
    return out


def file_scores(
    files: Sequence[Any],
    sizes: Sequence[tuple[float, int]],
    scores: Sequence[tuple[float, int]],
) -> list[FileScore]:
    """FileScores of PreparedFiles (path, ids, seconds), their music sizes (quarter notes,
    notes) and their scores (nll nats, correct top-1), all in the same order."""
    return [
        FileScore(
            path=f.path,
            tokens=len(f.ids) - 1,
            nll_nats=float(nll),
            correct=int(correct),
            seconds=float(f.seconds),
            quarters=float(quarters),
            notes=int(notes),
        )
        for f, (quarters, notes), (nll, correct) in zip(files, sizes, scores, strict=True)
    ]


def summarize(files: Sequence[FileScore]) -> dict[str, Any]:
    """SPEC.md figures of scored files: totals (tokens, nll_nats, quarters, notes: each
    the sum over `files`), per token (nll_per_token nats, bits_per_token, perplexity,
    accuracy), per unit of music (nats_per_quarter, nats_per_note; None when the files
    hold no music), and the per-file list."""
    tokens = sum(f.tokens for f in files)
    nll = math.fsum(f.nll_nats for f in files)
    quarters = math.fsum(f.quarters for f in files)
    notes = sum(f.notes for f in files)
    per_token = nll / max(tokens, 1)
    return {
        "nll_per_token": per_token,
        "bits_per_token": per_token / math.log(2),
        "perplexity": math.exp(per_token),
        "accuracy": sum(f.correct for f in files) / max(tokens, 1),
        "tokens": tokens,
        "nll_nats": nll,
        "quarters": quarters,
        "notes": notes,
        "nats_per_quarter": nll / quarters if quarters > 0 else None,
        "nats_per_note": nll / notes if notes > 0 else None,
        "files": [f.to_dict() for f in files],
    }


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by similar length: at most batch_size each, and at most
    MAX_BATCH_TOKENS padded tokens (a longer single sequence gets a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        fits = current is not None and len(current) < batch_size
        if fits and (len(current) + 1) * lengths[i] <= MAX_BATCH_TOKENS:
            current.append(i)
        else:
            batches.append([i])
    return batches


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    """log(sum(exp(logits))) over the last axis, as float64, shape logits.shape[:-1]."""
    top = logits.max(axis=-1, keepdims=True)
    total = np.exp(logits - top).sum(axis=-1, dtype=np.float64)
    return np.log(total) + top[..., 0].astype(np.float64)


REPORT_ROWS = (  # (label, key of the result, format); the lead figure first
    ("nats/quarter note", "nats_per_quarter", "{:.4f}"),
    ("nats/note", "nats_per_note", "{:.4f}"),
    ("nats/token", "nll_per_token", "{:.4f}"),
    ("bits/token", "bits_per_token", "{:.4f}"),
    ("perplexity", "perplexity", "{:.3f}"),
    ("accuracy (top-1)", "accuracy", "{:.2%}"),
    ("tokens", "tokens", "{:,}"),
    ("quarter notes", "quarters", "{:,.1f}"),
    ("notes (drums incl.)", "notes", "{:,}"),
)


def report_lines(result: dict[str, Any]) -> list[str]:
    """A readable side-by-side table (network vs n-gram) of an `evaluate` result, led by
    nats per quarter note and per note (the figures that compare across encodings)."""
    base = result.get("baseline")
    head = f"{'':<22}{'network':>14}"
    if base:
        head += f"{'n-gram (order ' + str(base['order']) + ')':>20}"
    lines = [
        f"Checkpoint: {result['checkpoint']} ({result.get('weights')})",
        f"Data: {result['data_dir']}, {result['split']} files: {len(result['files'])} scored"
        + (f", {len(result['missing'])} missing from the folder" if result["missing"] else ""),
        "",
        head,
    ]
    for label, key, fmt in REPORT_ROWS:
        line = f"{label:<22}{_shown(result.get(key), fmt):>14}"
        if base:
            line += f"{_shown(base.get(key), fmt):>20}"
        lines.append(line)
    if base is None:
        lines.append(f"(no n-gram baseline: {result.get('baseline_note', 'not asked for')})")
    lines += _family_lines(result.get("families") or {}, (base or {}).get("families") or {})
    return lines


def _family_lines(net: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """Nats per note of each instrument family, then what the parts share per quarter."""
    if not net:
        return []
    lines = ["", "per instrument family"]
    for name, entry in net.items():
        key, unit = (
            ("nats_per_quarter", "/quarter") if name == "shared" else ("nats_per_note", "/note")
        )
        count = (
            f"{entry['quarters']:,.0f} quarters"
            if name == "shared"
            else f"{entry['notes']:,} notes"
        )
        line = f"  {name:<12}{count:>16}{_shown(entry.get(key), '{:.4f}'):>12}"
        if name in base:
            line += f"{_shown(base[name].get(key), '{:.4f}'):>20}"
        lines.append(line + f"  nats{unit}")
    return lines


def _shown(value: Any, fmt: str) -> str:
    """A figure formatted for the table; "n/a" for None (no music to divide by)."""
    return "n/a" if value is None else fmt.format(value)
