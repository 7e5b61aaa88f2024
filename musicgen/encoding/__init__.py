"""Encodings: Score <-> token ids. Pure Python and numpy.

The registry lives here, so that `base.py` (the interface every encoding implements)
imports no encoding: `encoding_class(name)` is the class an `EncodingConfig.name`
stands for (what the encoding can do, read off the class without building it:
`has_parts`, `counts_bars`, `takes_controls`, ...), `get_encoding(config)` builds one,
`check_config(config)` says whether the settings suit the named encoding;
`told_parts`, `pack_stream`, `PartTracker` and `PART_VALUES` (parts.py) give the
network each token's part.
`config.ENCODINGS` lists the same names (the settings' choices; a test keeps the two
equal).
"""

from __future__ import annotations

from musicgen.config import ConfigError, EncodingConfig
from musicgen.encoding.base import (
    BOS,
    EOS,
    PAD,
    Encoded,
    Encoding,
    Grammar,
    NarrowedGrammar,
    Vocabulary,
    allowed_id,
)
from musicgen.encoding.parts import PART_VALUES, PartTracker, pack_stream, told_parts
from musicgen.encoding.performance import PerformanceEncoding
from musicgen.encoding.remi import RemiEncoding
from musicgen.encoding.steps import StepsEncoding
from musicgen.encoding.tracks import TracksEncoding

# every encoding, by its `name` (the order of config.ENCODINGS)
REGISTRY: dict[str, type[Encoding]] = {
    cls.name: cls for cls in (RemiEncoding, TracksEncoding, StepsEncoding, PerformanceEncoding)
}


def encoding_class(name: str) -> type[Encoding]:
    """The class of the encoding called `name`; ConfigError for an unknown name."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown encoding {name!r}")
    return REGISTRY[name]


def check_config(config: EncodingConfig) -> None:
    """ConfigError when `config` is out of range (`EncodingConfig.validate`) or asks the
    named encoding for what it cannot do (controls without a beat grid)."""
    config.validate()
    if config.controls and not encoding_class(config.name).takes_controls:
        able = [name for name, cls in REGISTRY.items() if cls.takes_controls]
        raise ConfigError(
            f"controls need a beat-grid encoding ({', '.join(able[:-1])} or {able[-1]})"
        )


def get_encoding(config: EncodingConfig) -> Encoding:
    """The encoding named by `config.name`, built from `config` (checked first)."""
    check_config(config)
    return encoding_class(config.name)(config)


__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "REGISTRY",
    "Encoded",
    "Encoding",
    "Grammar",
    "NarrowedGrammar",
    "PART_VALUES",
    "PartTracker",
    "allowed_id",
    "Vocabulary",
    "check_config",
    "encoding_class",
    "get_encoding",
    "pack_stream",
    "told_parts",
]
