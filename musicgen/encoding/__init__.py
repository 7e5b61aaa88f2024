"""Encodings: Score <-> token ids. Pure Python and numpy."""

from musicgen.encoding.base import (
    BOS,
    EOS,
    PAD,
    Encoded,
    Encoding,
    Grammar,
    Vocabulary,
    get_encoding,
)

__all__ = ["BOS", "EOS", "PAD", "Encoded", "Encoding", "Grammar", "Vocabulary", "get_encoding"]
