"""accompany / infill planning: the user's notes stay, new notes only where free."""

from __future__ import annotations

import numpy as np
import pytest

from musicgen.arrange import KeepGrammar, plan_song
from musicgen.config import EncodingConfig
from musicgen.encoding.tracks import TracksEncoding, canonical_parts
from musicgen.score import DRUM_PROGRAM, Note, Part, Score

ENC = TracksEncoding(EncodingConfig(name="tracks"))
CTRL = TracksEncoding(EncodingConfig(name="tracks", controls=True))
V = ENC.velocities.values


def note(pitch, start, duration, velocity=V[8]):
    return Note(pitch, start, start + duration, velocity)


def song(bars: int = 4) -> Score:
    melody = [note(72 + (i % 5), i, 1, V[6 + i % 3]) for i in range(4 * bars)]
    bass = [note(36 + (i % 3), 2 * i, 2) for i in range(2 * bars)]
    return Score(
        parts=[Part(0, melody, "Melody"), Part(33, bass, "My bass")],
        tempos=[(0.0, 100.0), (8.0, 140.0)],
        time_signatures=[(0.0, 4, 4)],
        end=4.0 * bars,
    )


def walk(enc, plan, seed, limit=20000):
    """Sample uniformly among what the KeepGrammar allows: ids BOS..EOS."""
    rng = np.random.default_rng(seed)
    grammar = KeepGrammar(enc.grammar(len(plan.bars)), enc, plan)
    ids = []
    while not grammar.done and len(ids) < limit:
        allowed = np.flatnonzero(grammar.allowed())
        token = int(rng.choice(allowed))
        grammar.advance(token)
        ids.append(token)
    assert grammar.done, enc.describe(ids[-30:])
    return ids


def grid(part: Part, enc=ENC, drums=False):
    spq = enc.config.steps_per_quarter
    return [
        (round(n.start * spq), n.pitch, round((n.end - n.start) * spq) if not drums else 1)
        for n in part.notes
    ]


@pytest.mark.parametrize("enc", [ENC, CTRL])
def test_accompany_keeps_every_user_note_and_adds_parts(enc):
    plan = plan_song(enc, song(), [DRUM_PROGRAM, 29])
    assert plan.programs == [0, 29, 33, DRUM_PROGRAM]
    for seed in range(8):
        decoded = enc.decode(walk(enc, plan, seed))
        assert not decoded.dropped
        assert [p.program for p in decoded.parts] == plan.programs
        user = canonical_parts(song())
        assert grid(decoded.parts[0], enc) == grid(user[0], enc)
        assert grid(decoded.parts[2], enc) == grid(user[1], enc)
        assert [n.velocity for n in decoded.parts[0].notes] == [n.velocity for n in user[0].notes]
        assert decoded.length == 16.0
        assert decoded.tempos == [
            (0.0, enc.tempos.value(enc.tempos.bin(100.0))),
            (8.0, enc.tempos.value(enc.tempos.bin(140.0))),
        ]


def test_infill_rewrites_only_the_window_of_the_chosen_parts():
    s = song(6)
    plan = plan_song(ENC, s, [], window=(8.0, 16.0), rewrite=[0])
    user = canonical_parts(s)
    changed = 0
    for seed in range(8):
        decoded = ENC.decode(walk(ENC, plan, seed))
        melody = decoded.parts[0]
        outside = [n for n in melody.notes if not 8.0 <= n.start < 16.0]
        want = [n for n in user[0].notes if not 8.0 <= n.start < 16.0]
        assert [(n.pitch, n.start, n.end) for n in outside] == [
            (n.pitch, n.start, n.end) for n in want
        ]
        assert grid(decoded.parts[1]) == grid(user[1])  # the bass is kept everywhere
        inside = [n for n in melody.notes if 8.0 <= n.start < 16.0]
        changed += inside != [n for n in user[0].notes if 8.0 <= n.start < 16.0]
    assert changed  # the window really is free


def test_accompany_a_drum_groove_with_a_bass():
    hits = [note(36 if i % 4 == 0 else 42, i / 2, 0.25, V[10 + i % 2]) for i in range(16)]
    groove = Score(parts=[Part(DRUM_PROGRAM, hits, "Kit")], end=8.0)
    plan = plan_song(CTRL, groove, [33])
    added = 0
    for seed in range(6):
        decoded = CTRL.decode(walk(CTRL, plan, seed))
        assert [p.program for p in decoded.parts] == [33, DRUM_PROGRAM]
        assert [(n.pitch, n.start, n.velocity) for n in decoded.parts[1].notes] == [
            (n.pitch, n.start, n.velocity) for n in hits
        ]
        added += len(decoded.parts[0].notes)
    assert added
