"""Add part profiles and line-ups to a checkpoint trained before `train` wrote them.

    python checkpoints/add_profiles.py CHECKPOINT [DATA_DIR]

Computes `data.profiles` and `data.lineups` (musicgen.profiles.learn) from the
checkpoint's own training files (split.json's "train" list, encoded with the
checkpoint's encoding; DATA_DIR defaults to config.json's `data.data_dir`) and writes
them into CHECKPOINT/config.json, as `musicgen train` now does itself. Reproducible:
the same folder and files give the same config.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from musicgen import checkpoint as ckpt
from musicgen.dataset import load_shards
from musicgen.encoding import get_encoding
from musicgen.profiles import learn


def main(folder: Path, data_dir: Path | None) -> dict:
    config, meta = ckpt.read_config(folder)
    data_dir = data_dir or Path(meta["data"]["data_dir"])
    shard_set = load_shards(data_dir, config.encoding)
    train = set(ckpt.read_split(folder)["train"])
    files = [f for f in shard_set.files if f.path in train]
    learned = learn(get_encoding(config.encoding), (shard_set.ids(f) for f in files))
    path = folder / "config.json"
    payload = json.loads(path.read_text())
    payload["data"].update(learned)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return learned


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    if not 1 <= len(args) <= 2:
        sys.exit(__doc__)
    out = main(args[0], args[1] if len(args) > 1 else None)
    print(json.dumps(out, indent=1))
