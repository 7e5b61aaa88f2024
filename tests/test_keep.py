"""The keep grammars (musicgen.keep_steps, musicgen.keep_tracks) on random songs: what
`encode` writes is accepted, a random walk among the allowed ids always ends in EOS,
and the kept parts decode to exactly the song's notes on the grid. No network: the
walks pick any allowed id."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicgen.config import EncodingConfig
from musicgen.encoding.remi import BAR, POSITION
from musicgen.encoding.steps import StepsEncoding
from musicgen.encoding.tracks import TracksEncoding
from musicgen.keep_steps import start_steps_grammar
from musicgen.keep_tracks import start_tracks_grammar
from musicgen.score import DRUM_PROGRAM, Note, Part, Score
from musicgen.songplan import ceiling, forced_prefix, plan_song

ENCODINGS = {
    "steps": StepsEncoding(EncodingConfig(name="steps", controls=True)),
    "tracks": TracksEncoding(EncodingConfig(name="tracks")),
}
SPQ = 4


def start(enc, plan):
    if isinstance(enc, StepsEncoding):
        return start_steps_grammar(enc, plan)
    return start_tracks_grammar(enc, plan)


def walk(enc, plan, seed: int, limit: int = 50_000) -> list[int]:
    """Ids BOS..EOS picked at random among what the keep grammar allows (what moves
    on in time - Position, Bar, EOS - half of the time when allowed, to keep walks
    short)."""
    rng = np.random.default_rng(seed)
    grammar = start(enc, plan)
    moves = np.zeros(len(enc.vocab), dtype=bool)
    lo, hi = enc.id_range[POSITION]
    moves[lo:hi] = moves[enc.first_id[BAR]] = moves[2] = True
    ids = [1]
    while not grammar.done:
        allowed = grammar.allowed()
        choices = np.flatnonzero(allowed)
        assert choices.size, enc.describe(ids[-40:])
        if (allowed & moves).any() and rng.random() < 0.5:
            choices = np.flatnonzero(allowed & moves)
        token = int(rng.choice(choices))
        grammar.advance(token)
        ids.append(token)
        assert len(ids) < limit
    assert ids[-1] == 2  # EOS
    return ids


# ----------------------------------------------------------------------------- songs


@st.composite
def songs(draw) -> Score:
    """2-5 bars of 1-3 pitched parts (chords, overlaps, notes off the grid, same
    programs) and maybe drums, with tempo and metre changes."""
    metre = draw(st.sampled_from([(4, 4), (3, 4), (6, 8)]))
    later = draw(st.sampled_from([None, (3, 4), (2, 4), (5, 8)]))
    length = draw(st.integers(6, 16))
    parts = []
    for i in range(draw(st.integers(1, 3))):
        program = draw(st.sampled_from([0, 0, 29, 33]))
        notes = []
        for _ in range(draw(st.integers(1, 10))):
            start = draw(st.integers(0, length * 12 - 1)) / 12  # off the 16th grid too
            duration = draw(st.integers(1, 40)) / 12
            pitch = draw(st.integers(40, 90))
            notes.append(Note(pitch, start, start + duration, draw(st.integers(1, 127))))
            if draw(st.booleans()):  # a chord
                notes.append(Note(pitch - draw(st.integers(3, 9)), start, start + duration, 70))
        parts.append(Part(program, notes, f"P{i}"))
    if draw(st.booleans()):
        hits = [
            Note(draw(st.sampled_from([36, 38, 42])), q / 2, q / 2 + 0.25, 100)
            for q in sorted(set(draw(st.lists(st.integers(0, length * 2 - 1), max_size=12))))
        ]
        if hits:
            parts.append(Part(DRUM_PROGRAM, hits, "Kit"))
    tempos = [(0.0, draw(st.integers(60, 180)))]
    if draw(st.booleans()):
        tempos.append((float(draw(st.integers(1, length - 1))), draw(st.integers(60, 180))))
    signatures = [(0.0, *metre)]
    if later is not None:
        signatures.append((float(draw(st.integers(2, length - 1))), *later))
    return Score(parts=parts, tempos=tempos, time_signatures=signatures, end=float(length))


@st.composite
def windows(draw, song: Score):
    """(start, end) quarters anywhere in the song, and the parts rewritten."""
    a = draw(st.integers(0, int(song.end * 4) - 1)) / 4
    b = draw(st.integers(int(a * 4) + 1, int(song.end * 4))) / 4
    parts = len([p for p in song.parts if p.notes])
    chosen = draw(st.lists(st.integers(0, parts - 1), min_size=1, max_size=parts, unique=True))
    return (a, b), sorted(chosen)


def expected_parts(enc, song: Score, plan, window=None, rewrite=()) -> list[list[tuple]]:
    """The kept parts as the model must hear them: the song without the rewritten
    notes, encoded and decoded; notes from a rewritten window's onsets left out, the
    rest ending at the plan's end."""
    layout = enc.layout(song)
    parts = []
    for i, part in enumerate(layout.parts):
        notes = part.notes
        if window is not None and i in rewrite:
            a, b = (round(q * SPQ) for q in window)
            notes = [n for n in notes if not a <= round(n.start * SPQ) < b]
        parts.append(Part(part.program, notes, part.name))
    end = plan.end / SPQ
    out = []
    for part in parts:  # each alone: the parts of these encodings do not meet
        alone = Score(
            parts=[part], tempos=song.tempos, time_signatures=song.time_signatures, end=song.end
        )
        decoded = enc.decode(enc.encode(alone).ids).parts
        notes = decoded[0].notes if decoded else []
        out.append(
            [(n.pitch, n.start, min(n.end, end), n.velocity) for n in notes if n.start < end]
        )
    return out


def _inside(note: Note, window: tuple[float, float]) -> bool:
    a, b = (round(q * SPQ) for q in window)
    return a <= round(note.start * SPQ) < b


def kept_parts(enc, plan, ids, window=None, rewrite=()) -> list[list[tuple]]:
    """The decoded walk's user parts, in the song's canonical order, ending at the
    plan's end (a tracks note keeps its whole duration past an infill's last read bar;
    steps ends it there, at EOS)."""
    decoded = enc.decode(ids)
    assert not decoded.dropped, decoded.dropped
    users = sorted(plan.user)
    end = plan.end / SPQ
    out = []
    for i, h in enumerate(users):
        notes = decoded.parts[h].notes
        out.append(
            [
                (n.pitch, n.start, min(n.end, end), n.velocity)
                for n in notes
                if not (window is not None and i in rewrite and _inside(n, window))
            ]
        )
    return out


FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", ["steps", "tracks"])
@FAST
@given(song=songs())
def test_encode_is_accepted_by_the_keep_grammar(name, song):
    enc = ENCODINGS[name]
    plan = plan_song(enc, song, [])
    grammar = start(enc, plan)
    ids = enc.encode(song).ids.tolist()
    for token in ids[1:]:
        grammar.advance(token)
    assert grammar.done


@pytest.mark.parametrize("name", ["steps", "tracks"])
@FAST
@given(song=songs(), added=st.lists(st.sampled_from([0, 29, 33, DRUM_PROGRAM]), max_size=2))
def test_accompany_walks_keep_every_note(name, song, added):
    enc = ENCODINGS[name]
    if DRUM_PROGRAM in added and any(p.is_drum for p in song.parts):
        added = [p for p in added if p != DRUM_PROGRAM]
    added = sorted(set(added))
    plan = plan_song(enc, song, added)
    want = expected_parts(enc, song, plan)
    for seed in range(2):
        assert kept_parts(enc, plan, walk(enc, plan, seed)) == want


@pytest.mark.parametrize("name", ["steps", "tracks"])
@FAST
@given(data=st.data())
def test_infill_walks_keep_every_note_outside_the_window(name, data):
    enc = ENCODINGS[name]
    song = data.draw(songs())
    window, rewrite = data.draw(windows(song))
    plan = plan_song(enc, song, [], window=window, rewrite=rewrite)
    want = expected_parts(enc, song, plan, window, rewrite)
    for seed in range(2):
        got = kept_parts(enc, plan, walk(enc, plan, seed), window, rewrite)
        assert got == want


@FAST
@given(song=songs())
def test_steps_infill_holds_what_sounds_into_the_window_and_ends_its_own(song):
    """A rewritten part: the song's notes that sound into the window are held to their
    own end; what the model writes inside ends by the window's end."""
    enc = ENCODINGS["steps"]
    parts = [p for p in enc.layout(song).parts]
    window = (1.0, min(song.end, 5.0))
    plan = plan_song(enc, song, [], window=window, rewrite=list(range(len(parts))))
    for seed in range(2):
        decoded = enc.decode(walk(enc, plan, seed))
        for h in plan.user:
            for n in decoded.parts[h].notes:
                if window[0] <= n.start < window[1]:
                    assert n.end <= window[1]


@pytest.mark.parametrize("name", ["steps", "tracks"])
@FAST
@given(song=songs(), voices=st.integers(1, 3))
def test_harmonize_walks_keep_the_melody_and_stay_under_it(name, song, voices):
    enc = ENCODINGS[name]
    song.parts = [p for p in song.parts if not p.is_drum]
    plan = plan_song(enc, song, [0] * voices)
    plan.ceiling = ceiling(plan, list(plan.user))
    want = expected_parts(enc, song, plan)
    for seed in range(2):
        ids = walk(enc, plan, seed)
        assert kept_parts(enc, plan, ids) == want
        decoded = enc.decode(ids)
        for h, part in enumerate(decoded.parts):
            if h in plan.user:
                continue
            for n in part.notes:
                first = round(n.start * SPQ)
                sounding = range(first, round(n.end * SPQ)) if name == "steps" else [first]
                assert all(n.pitch < plan.ceiling[min(t, plan.end - 1)] for t in sounding)


def test_the_ceiling_is_the_lowest_sounding_melody_note_or_the_last():
    melody = [Note(72, 1.0, 2.0, 80), Note(65, 1.0, 1.5, 80), Note(70, 3.0, 4.0, 80)]
    song = Score(parts=[Part(0, melody, "M")], end=4.0)
    plan = plan_song(ENCODINGS["steps"], song, [0])
    got = ceiling(plan, [0]).tolist()
    assert got == [65] * 4 + [65, 65, 72, 72] + [72] * 4 + [70] * 4


def test_candidates_share_no_state():
    enc = ENCODINGS["steps"]
    song = Score(parts=[Part(0, [Note(60 + i, i, i + 1, 80) for i in range(8)], "M")], end=8.0)
    plan = plan_song(enc, song, [], window=(2.0, 6.0), rewrite=[0])
    first = start(enc, plan)
    prefix = forced_prefix(first)
    assert prefix and enc.describe(prefix)[0] == "Program_0"
    a, b = first.clone(), first.clone()
    before = b.allowed().copy()
    rng = np.random.default_rng(0)
    while not a.done:
        a.advance(int(rng.choice(np.flatnonzero(a.allowed()))))
    assert (b.allowed() == before).all() and not b.done
    assert not first.done


@pytest.mark.parametrize("name", ["steps", "tracks"])
@FAST
@given(data=st.data())
def test_infill_walks_keep_each_rewritten_part_in_its_register(name, data):
    """What a rewritten pitched part writes in the window lies within its register in
    the song (`SongPlan.register`: its own lowest..highest note, a little wider)."""
    enc = ENCODINGS[name]
    song = data.draw(songs())
    window, rewrite = data.draw(windows(song))
    plan = plan_song(enc, song, [], window=window, rewrite=rewrite)
    for h, (low, high) in plan.register.items():
        pitches = [n.pitch for n in plan.user[h].notes]
        assert low <= max(min(pitches) - 2, enc.config.pitch_min)
        assert high >= min(max(pitches) + 2, enc.config.pitch_max)
    for seed in range(2):
        decoded = enc.decode(walk(enc, plan, seed))
        for h, (low, high) in plan.register.items():
            for n in decoded.parts[h].notes:
                if window[0] <= n.start < window[1]:
                    assert low <= n.pitch <= high, (h, n, low, high)


def test_a_register_is_the_parts_own_range_a_little_wider():
    from musicgen.songplan import REGISTER_MARGIN, part_register

    enc = ENCODINGS["steps"]
    voice = Part(52, [Note(p, i, i + 1, 80) for i, p in enumerate([64, 67, 72, 69])], "Vocal")
    assert part_register(enc, voice) == (64 - REGISTER_MARGIN, 72 + REGISTER_MARGIN)
    low = Part(33, [Note(enc.config.pitch_min, 0, 1, 80)], "Bass")
    assert part_register(enc, low) == (enc.config.pitch_min, enc.config.pitch_min + 2)
    song = Score(parts=[voice, Part(33, [Note(40, 0, 4, 80)], "Bass")], end=8.0)
    plan = plan_song(enc, song, [], window=(4.0, 8.0), rewrite=[0, 1])
    assert sorted(plan.register.values()) == [(38, 42), (62, 74)]
    assert plan_song(enc, song, []).register == {}  # accompany holds no part to one
