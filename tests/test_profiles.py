"""Part profiles learned from training music (musicgen.profiles), the sampler holding
each part to them (musicgen.part_rules), line-ups drawn like the training files', and
extended-kit drum notes read as General MIDI's."""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from musicgen.config import EncodingConfig
from musicgen.encoding import EOS, NarrowedGrammar, get_encoding
from musicgen.encoding.tracks import InstrumentsGrammar
from musicgen.instruments import family, parse_instruments
from musicgen.part_rules import CYMBAL_GRACE, PartsGrammar
from musicgen.profiles import (
    DEFAULT_PROFILES,
    PartProfile,
    draw_lineup,
    learn,
    learn_scores,
    stored_lineups,
    stored_profiles,
)
from musicgen.score import DRUM_PROGRAM, Note, Part, Score
from musicgen.stats import bar_grid

STEPS = get_encoding(EncodingConfig(name="steps", controls=False))
TRACKS = get_encoding(EncodingConfig(name="tracks", controls=False))


def bass_line(bars: int, chord_at: int | None = None) -> Part:
    """Eighth notes on E1 A1 D2 G2 C3 (28-48), one two-note chord at `chord_at`."""
    notes = [Note(28 + (i * 5) % 25, i / 2, i / 2 + 0.5, 90) for i in range(bars * 8)]
    if chord_at is not None:
        notes.append(Note(60, chord_at / 2, chord_at / 2 + 0.5, 90))
    return Part(33, sorted(notes, key=lambda n: (n.start, n.pitch)), "Bass")


def groove(bars: int, stray: bool = False) -> Part:
    """Kick and snare on the beats, closed hi-hat on eighths, a crash; `stray`: a 39."""
    hits = []
    for i in range(bars * 8):
        t = i / 2
        hits.append(Note(42, t, t + 0.25, 80))
        if i % 2 == 0:
            hits.append(Note(36 if i % 4 == 0 else 38, t, t + 0.25, 100))
    hits += [Note(49, 0, 0.25, 100)] + [Note(39, 1.5, 1.75, 60)] * stray
    return Part(DRUM_PROGRAM, sorted(hits, key=lambda n: (n.start, n.pitch)))


def piano(bars: int) -> Part:
    """Three-note chords on every beat (C4 E4 G4)."""
    notes = [Note(p, b, b + 1, 70) for b in range(bars * 4) for p in (60, 64, 67)]
    return Part(0, notes, "Piano")


def band_song(bars: int = 8, chord_at: int | None = None) -> Score:
    """Piano, bass and drums; the odd bass chord and drum note go with `chord_at`."""
    parts = [piano(bars), bass_line(bars, chord_at), groove(bars, chord_at is not None)]
    return Score(parts=parts, end=bars * 4.0)


def test_profiles_learn_register_cap_density_and_kit():
    songs = [[band_song(8, chord_at=3)]] + [[band_song(8)] for _ in range(3)]
    learned = learn_scores(songs)
    bass = PartProfile.from_dict(learned["profiles"]["bass"])
    assert bass.cap == 1  # one chord in 256 onsets
    assert (bass.low, bass.high) == (28, 48)  # the stray 60 is above the 99.5th percentile
    assert bass.notes_per_bar[1] == pytest.approx(8.0, abs=0.2)
    drums = PartProfile.from_dict(learned["profiles"]["drums"])
    assert drums.kit == (36, 38, 42, 49)  # the one 39 in 393 hits is no part of the kit
    assert drums.cap == 2
    assert PartProfile.from_dict(learned["profiles"]["piano"]).cap == 3
    assert learned["lineups"] == {"piano,bass,drums": 4}
    assert bass.span == 32  # the song whose bass reaches 60 is one of 4: above 90%
    assert drums.span == 0  # a kit, not a register
    assert PartProfile.from_dict(learned["profiles"]["piano"]).span == 7  # C4-G4
    songs = [[band_song(8, chord_at=3)]] + [[band_song(8)] for _ in range(9)]
    assert learn_scores(songs)["profiles"]["bass"]["span"] == 20  # E1-C3 in 9 of 10


def test_profiles_learn_how_much_of_a_kit_part_its_cymbals_take():
    songs = [[band_song(8)] for _ in range(9)]
    washed = band_song(8)  # one song in 10 whose drummer plays the ride over every hat
    ride = [replace(n, pitch=51) if n.pitch == 42 else n for n in washed.parts[2].notes]
    washed.parts[2].notes[:] = ride
    drums = PartProfile.from_dict(learn_scores([*songs, [washed]])["profiles"]["drums"])
    # 64 hats, 32 kicks and snares, 1 crash in each song: the ride song is above 75%
    assert drums.cymbals == round(1 / 97, 3)
    assert PartProfile.from_dict(learn_scores(songs)["profiles"]["bass"]).cymbals == 1.0  # free
    assert PartProfile.from_dict({"low": 35, "high": 81, "cap": 4}).cymbals == 1.0  # old


def test_profiles_learn_how_long_a_kit_part_rests():
    songs = [[band_song(8)] for _ in range(8)]
    breaks = []
    for rest in (3, 5):  # two songs in ten whose drums rest a while: 3 bars in, 5 bars out
        song = band_song(8)
        notes = song.parts[2].notes
        kept = [n for n in notes if not 4 <= n.start < 4 + 4 * rest]
        crashes = [Note(49, 4.0 * bar, 4.0 * bar + 0.25, 90) for bar in range(1, 1 + rest)]
        song.parts[2].notes[:] = sorted(kept + crashes * (rest == 3), key=lambda n: n.start)
        breaks.append([song])  # a crash a bar is a rest: fewer hits than beats
    learned = learn_scores([*songs, *breaks])["profiles"]
    assert PartProfile.from_dict(learned["drums"]).rest == 3  # the 90th percentile of 10
    assert PartProfile.from_dict(learn_scores(songs)["profiles"]["drums"]).rest == 0
    assert PartProfile.from_dict(learned["bass"]).rest == -1  # pitched parts: no limit
    assert "rest" not in PartProfile(36, 46, cap=2).to_dict()  # as old profiles
    assert PartProfile.from_dict({"low": 35, "high": 81, "cap": 4}).rest == -1


def held_piano(bars: int, long_at: int | None = None, length: float = 16.0) -> Part:
    """Quarter-note chords (C4 E4 G4); one C4 of `length` quarters at beat `long_at`."""
    part = piano(bars)
    if long_at is None:
        return part
    notes = [n for n in part.notes if not (n.start == long_at and n.pitch == 60)]
    notes.append(Note(60, long_at, long_at + length, 70))
    return Part(0, sorted(notes, key=lambda n: (n.start, n.pitch)), "Piano")


def test_profiles_learn_how_many_notes_a_part_strikes_in_one_bar():
    songs = [[band_song(8)] for _ in range(14)]
    busy = piano(8)  # one bar of 32 notes among 120 bars of 12
    busy.notes.extend(Note(72, 4 + i / 8, 4 + (i + 1) / 8, 70) for i in range(20))
    songs.append([Score(parts=[busy, bass_line(8)], end=32.0)])
    profiles = learn_scores(songs)["profiles"]
    assert profiles["bass"]["burst"] == 8  # eighth notes
    assert profiles["bass"]["pace"] == 8.0
    assert profiles["piano"]["pace"] == 12.0  # the busy song's piano (14.5) is 1 of 15
    assert profiles["piano"]["burst"] == 12  # one bar in 120 is above the 99th percentile
    assert learn_scores(songs[:1])["profiles"]["drums"]["burst"] == 13  # the crash's bar
    assert PartProfile.from_dict({"low": 28, "high": 55, "cap": 1}).burst == 0  # old


def notes_in_bars(encoding, ids: list[int], part: int) -> list[int]:
    """New notes (Pitch tokens) of header part `part` in each bar of a token stream."""
    counts: list[int] = []
    current = None
    for token in (encoding.vocab.tokens[i] for i in ids):
        if token == "Bar":
            counts.append(0)
        elif token.startswith("Track_"):
            current = int(token.split("_")[1])
        elif token.startswith("Pitch_") and current == part and counts:
            counts[-1] += 1
    return counts


@pytest.mark.parametrize("encoding", [STEPS, TRACKS], ids=["steps", "tracks"])
def test_random_walks_strike_no_more_notes_than_the_allowance_and_never_dead_end(encoding):
    # piano: one note a bar in the long run, three in one bar at most
    sparse = {**PROFILES, "piano": PartProfile(48, 84, cap=2, pace=1.0, burst=3)}
    rng = np.random.default_rng(5)
    asked = parse_instruments("piano,bass,drums")
    seen = []
    for _ in range(8):
        inner = InstrumentsGrammar(encoding.grammar(6), encoding, asked)
        grammar = PartsGrammar(inner, encoding, sparse, known=(0, 33, DRUM_PROGRAM))
        counts = notes_in_bars(encoding, walk(encoding, grammar, rng, limit=20000), 0)
        left = 3.0
        for count in counts:  # the allowance: full at the start, +1 a bar, at most 3
            assert count <= left
            left = min(3.0, left - count + 1.0)
        seen += counts
    assert max(seen) == 3  # a bar after rests strikes up to the burst


def test_profiles_learn_how_long_a_note_is_held():
    # ten songs, one of them with a 16-quarter note: most parts' longest note is a quarter
    songs = [[Score(parts=[held_piano(8, long_at=8 if i == 0 else None), bass_line(8)],
                    end=48.0)] for i in range(10)]  # fmt: skip
    profiles = learn_scores(songs)["profiles"]
    assert profiles["piano"]["sustain"] == 1.0
    assert profiles["bass"]["sustain"] == 0.5
    # both of two songs hold a long note: so do the parts' longest (90%) and the notes
    two = [[Score(parts=[held_piano(16, long_at=8)], end=64.0)] for _ in range(2)]
    assert learn_scores(two)["profiles"]["piano"]["sustain"] == 16.0
    # 2 of 10 long songs (1,200 notes each): 20% of the parts, but 2 in 12,000 notes
    many = [[Score(parts=[held_piano(100, long_at=8 if i < 2 else None)], end=400.0)]
            for i in range(10)]  # fmt: skip
    assert learn_scores(many)["profiles"]["piano"]["sustain"] == 1.0
    drums = learn_scores([[band_song(8)]])["profiles"]["drums"]
    assert drums["sustain"] == 0.0  # drums have no length
    assert PartProfile.from_dict({"low": 28, "high": 55, "cap": 1}).sustain == 0.0  # old


def test_profiles_are_learned_from_encoded_ids_as_train_does():
    ids = np.concatenate([STEPS.encode(band_song(8)).ids, STEPS.encode(band_song(4)).ids])
    learned = learn(STEPS, [ids])
    assert learned["lineups"] == {"piano,bass,drums": 1}  # one file of two pieces
    assert learned["profiles"]["bass"]["cap"] == 1


def test_old_checkpoints_get_the_bass_and_drum_defaults_and_no_lineups():
    assert stored_profiles({"data": {}}) == DEFAULT_PROFILES
    assert stored_lineups({"data": {}}) == {}
    assert stored_profiles({"data": {"profiles": {}}}) == {}


def test_lineups_come_from_multi_part_files_when_there_are_any():
    rng = np.random.default_rng(0)
    mixed = {("drums",): 300, ("guitar", "bass", "drums"): 2, ("piano", "bass"): 1}
    drawn = Counter(draw_lineup(mixed, rng) for _ in range(300))
    assert set(drawn) == {("guitar", "bass", "drums"), ("piano", "bass")}
    assert drawn["guitar", "bass", "drums"] > drawn["piano", "bass"]
    grooves = {("drums",): 3, ("guitar",): 1}
    assert {draw_lineup(grooves, rng) for _ in range(50)} == {("drums",), ("guitar",)}
    assert draw_lineup({}, rng) is None


# ----------------------------------------------------------------------------- the grammar

PROFILES = {
    "bass": PartProfile(low=28, high=55, cap=1),
    "piano": PartProfile(low=48, high=84, cap=2),
    "drums": PartProfile(low=36, high=46, cap=2, kit=(36, 38, 42, 46)),
}


def walk(encoding, grammar, rng, limit: int = 4000) -> list[int]:
    """A random walk: every mask has an allowed id; EOS taken half the times allowed."""
    ids = []
    while not grammar.done and len(ids) < limit:
        choices = np.flatnonzero(grammar.allowed())
        assert choices.size, encoding.describe(ids[-20:])  # never a dead end
        token = EOS if EOS in choices and rng.random() < 0.5 else int(rng.choice(choices))
        grammar.advance(token)
        ids.append(token)
    assert grammar.done
    return ids


def assert_held_to_profiles(
    score: Score, single_line: bool, profiles: dict[str, PartProfile] = PROFILES
) -> None:
    """Every part in its register or kit, at most `cap` notes struck together; with
    `single_line` (steps, which lists what sounds) a cap-1 part never sounds two notes."""
    for part in score.parts:
        profile = profiles[family(part.program)]
        starts = Counter(n.start for n in part.notes)
        assert max(starts.values(), default=0) <= profile.cap
        if part.program == DRUM_PROGRAM:
            assert {n.pitch for n in part.notes} <= set(profile.kit)
            continue
        assert all(profile.low <= n.pitch <= profile.high for n in part.notes)
        if single_line and profile.cap == 1:
            notes = part.notes
            assert all(a.end <= b.start for a, b in zip(notes, notes[1:], strict=False))


@pytest.mark.parametrize("encoding", [STEPS, TRACKS], ids=["steps", "tracks"])
def test_random_walks_keep_each_part_within_its_span_and_never_dead_end(encoding):
    spans = {**PROFILES, "piano": PartProfile(low=48, high=84, cap=2, span=5)}
    rng = np.random.default_rng(2)
    for _ in range(8):
        grammar = PartsGrammar(encoding.grammar(2), encoding, spans, known=(0, 33, DRUM_PROGRAM))
        score = encoding.decode(walk(encoding, grammar, rng))
        assert_held_to_profiles(score, single_line=encoding is STEPS, profiles=spans)
        for part in score.parts:
            if part.program == 0 and part.notes:
                pitches = [n.pitch for n in part.notes]
                assert max(pitches) - min(pitches) <= 5  # the free bass and drums: no span


def drum_groups_so_far(encoding, ids: list[int], group: tuple[int, ...]) -> list[tuple[int, int]]:
    """(hits, hits in `group`) after each drum hit of a token stream with one kit part."""
    counts, out = [0, 0], []
    for token in (encoding.vocab.tokens[i] for i in ids):
        if token.startswith("Drum_"):
            counts = [counts[0] + 1, counts[1] + (int(token.split("_")[1]) in group)]
            out.append((counts[0], counts[1]))
    return out


@pytest.mark.parametrize("encoding", [STEPS, TRACKS], ids=["steps", "tracks"])
def test_random_walks_keep_the_cymbals_to_their_share_and_never_dead_end(encoding):
    kit = (36, 38, 42, 49, 51, 57)  # half the kit is cymbals: a random walk washes in them
    free = {**PROFILES, "drums": PartProfile(36, 57, cap=2, kit=kit)}
    held = {**PROFILES, "drums": PartProfile(36, 57, cap=2, kit=kit, cymbals=0.1)}
    cymbals = (49, 51, 52, 53, 55, 57, 59)
    shares = {}
    for name, profiles in (("free", free), ("held", held)):
        rng = np.random.default_rng(3)
        hits = total = 0
        for _ in range(8):
            inner = InstrumentsGrammar(encoding.grammar(4), encoding, parse_instruments("drums"))
            grammar = PartsGrammar(inner, encoding, profiles, known=(DRUM_PROGRAM,))
            ids = walk(encoding, grammar, rng, limit=20000)
            so_far = drum_groups_so_far(encoding, ids, cymbals)
            if name == "held":
                assert all(c <= 0.1 * n + CYMBAL_GRACE for n, c in so_far)
            if so_far:
                total, hits = total + so_far[-1][0], hits + so_far[-1][1]
        shares[name] = hits / total
    assert shares["free"] > 0.3 and shares["held"] < shares["free"] / 1.5, shares


def lazy_walk(encoding, grammar, rng, drum_part: int) -> list[int]:
    """A random walk that never lists the drum part or strikes a drum while the mask
    offers anything else (a network that has heard the drums rest)."""
    track = encoding.vocab.id(f"Track_{drum_part}")
    drums = encoding.vocab.ids_with_prefix("Drum_")
    velocities = encoding.vocab.ids_with_prefix("Velocity_")
    ids = []
    while not grammar.done:
        allowed = grammar.allowed().copy()
        assert allowed.any(), encoding.describe(ids[-20:])  # never a dead end
        lazy = allowed.copy()
        lazy[track] = lazy[drums] = False
        if allowed[drums].any():  # in the drum part: no Velocity before a hit either
            lazy[velocities] = False
        choices = np.flatnonzero(lazy if lazy.any() else allowed)
        token = EOS if EOS in choices else int(rng.choice(choices))
        grammar.advance(token)
        ids.append(token)
    return ids


def test_a_resting_drum_part_comes_back_on_the_beats_and_never_dead_ends():
    rests = {**PROFILES, "drums": replace(PROFILES["drums"], rest=1)}
    for seed in range(6):
        rng = np.random.default_rng(seed)
        inner = InstrumentsGrammar(STEPS.grammar(6), STEPS, parse_instruments("piano,bass,drums"))
        grammar = PartsGrammar(inner, STEPS, rests, known=(0, 33, DRUM_PROGRAM))
        score = STEPS.decode(lazy_walk(STEPS, grammar, rng, drum_part=2))
        starts = [n.start for n in score.parts[2].notes]
        bars = bar_grid(score)
        assert len(bars) == 6
        for start, length, _, _ in bars[1:]:  # one bar's rest allowed, then each bar ...
            assert any(start <= t < start + length for t in starts)
            assert any(start + length - 1 <= t < start + length for t in starts)  # last beat
    for exempt in ((2,), ()):  # a kept drum part is never forced; no rest, no drums
        profiles = rests if exempt else PROFILES
        inner = InstrumentsGrammar(STEPS.grammar(4), STEPS, parse_instruments("piano,bass,drums"))
        grammar = PartsGrammar(inner, STEPS, profiles, known=(0, 33, DRUM_PROGRAM), exempt=exempt)
        score = STEPS.decode(lazy_walk(STEPS, grammar, np.random.default_rng(0), drum_part=2))
        assert not [p for p in score.parts if p.program == DRUM_PROGRAM and p.notes]


def test_random_walks_hold_no_struck_note_past_its_sustain_and_never_dead_end():
    held = {
        **PROFILES,
        "piano": PartProfile(low=48, high=84, cap=2, sustain=0.5),  # 2 grid steps
        "bass": PartProfile(low=28, high=55, cap=1, sustain=0.75),
    }
    rng = np.random.default_rng(4)
    longest = {0: 0.0, 33: 0.0}
    for _ in range(16):
        inner = InstrumentsGrammar(STEPS.grammar(4), STEPS, parse_instruments("piano,bass,drums"))
        grammar = PartsGrammar(inner, STEPS, held, known=(0, 33, DRUM_PROGRAM))
        score = STEPS.decode(walk(STEPS, grammar, rng, limit=20000))
        assert_held_to_profiles(score, single_line=True, profiles=held)
        for part in score.parts:
            if part.program != DRUM_PROGRAM:
                length = max((n.end - n.start for n in part.notes), default=0.0)
                longest[part.program] = max(longest[part.program], length)
    assert longest == {0: 0.5, 33: 0.75}  # each part reaches its sustain, none goes past it


def test_a_sustain_ends_a_note_the_stream_would_hold_to_the_end():
    """One bar of 4/4: a bass note struck on step 0 and then only EOS (which ends notes at
    the bar's end, 4 quarters) would sound 16 steps; with a sustain of 1 quarter the
    stream must come to step 4 (or before) and let it go there, striking nothing new."""
    bass = {"bass": PartProfile(low=28, high=55, cap=1, sustain=1.0)}
    opening = ["BOS", "Program_33", "Bar", "TimeSig_4/4", "Tempo_10", "Position_0", "Track_0"]
    grammar = PartsGrammar(STEPS.grammar(1), STEPS, bass)
    for token in [*opening, "Velocity_10", "Pitch_40"]:
        grammar.advance(STEPS.vocab.id(token))
    allowed = [STEPS.vocab.tokens[i] for i in np.flatnonzero(grammar.allowed())]
    assert "EOS" not in allowed and "Position_5" not in allowed and "Position_4" in allowed
    grammar.advance(STEPS.vocab.id("Position_4"))
    allowed = [STEPS.vocab.tokens[i] for i in np.flatnonzero(grammar.allowed())]
    assert "Hold_40" not in allowed and "EOS" in allowed  # EOS here lists the bass empty
    assert not any(t.startswith(("Pitch", "Velocity")) for t in allowed)  # it rests here
    free = PartsGrammar(STEPS.grammar(1), STEPS, {"bass": PartProfile(28, 55, cap=1)})
    for token in [*opening, "Velocity_10", "Pitch_40"]:
        free.advance(STEPS.vocab.id(token))
    assert free.allowed()[EOS]  # no sustain (an old checkpoint): held to the end


class Cloneable(NarrowedGrammar):
    """A grammar that can be cloned (as infill's keep grammars can)."""

    def allowed(self) -> np.ndarray:
        return self.inner.allowed()

    def _observe(self, token_id: int) -> None:
        pass

    def clone(self) -> Cloneable:
        return copy.deepcopy(self)


def test_a_clone_keeps_its_own_span_state():
    grammar = PartsGrammar(Cloneable(STEPS.grammar(2)), STEPS, PROFILES)
    grammar.struck[0] = (60, 62)
    twin = grammar.clone()
    twin.struck[0] = (30, 62)
    assert grammar.struck[0] == (60, 62)
    grammar.onsets[0] = {60: 4}
    twin = grammar.clone()
    twin.onsets[0][60] = 8
    assert grammar.onsets[0] == {60: 4}


@pytest.mark.parametrize("encoding", [STEPS, TRACKS], ids=["steps", "tracks"])
def test_random_walks_keep_each_part_to_its_profile_and_never_dead_end(encoding):
    rng = np.random.default_rng(1)
    asked = parse_instruments("piano,bass,drums")
    for i in range(12):
        inner = encoding.grammar(2)
        if i % 2:  # --instruments, or a header the model picks among known programs
            inner = InstrumentsGrammar(inner, encoding, asked)
        grammar = PartsGrammar(inner, encoding, PROFILES, known=(0, 33, DRUM_PROGRAM))
        ids = walk(encoding, grammar, rng)
        score = encoding.decode(ids)
        assert not score.dropped
        assert {p.program for p in score.parts} <= {0, 33, DRUM_PROGRAM}
        assert_held_to_profiles(score, single_line=encoding is STEPS)


def test_wrapped_grammars_compute_the_base_mask_once_per_token_and_still_check_ids():
    base = STEPS.grammar(2)
    computed = []
    own = base.allowed
    base.allowed = lambda: computed.append(1) or own()  # counts the base grammar's masks
    inner = InstrumentsGrammar(base, STEPS, parse_instruments("piano,bass,drums"))
    grammar = PartsGrammar(inner, STEPS, PROFILES, known=(0, 33, DRUM_PROGRAM))
    ids = walk(STEPS, grammar, np.random.default_rng(3))
    assert not STEPS.decode(ids).dropped
    assert len(computed) == len(ids)  # one per token: none again to check an id inside
    refused = PartsGrammar(InstrumentsGrammar(STEPS.grammar(2), STEPS, [(33,)]), STEPS, PROFILES)
    refused.advance(ids[0])  # BOS
    with pytest.raises(ValueError, match="not allowed"):
        refused.advance(STEPS.vocab.id("Bar"))  # the header must name the bass first


def test_a_bass_is_held_to_the_harmony_where_the_song_sounds_some():
    rng = np.random.default_rng(2)

    def harmony(bar: int, position: int) -> frozenset[int] | None:
        return frozenset({0, 7}) if bar == 0 else None  # C and G in the first bar

    for _ in range(6):
        inner = InstrumentsGrammar(STEPS.grammar(2), STEPS, parse_instruments("bass"))
        grammar = PartsGrammar(inner, STEPS, PROFILES, harmony=harmony)
        ids = walk(STEPS, grammar, rng)
        second = ids.index(STEPS.vocab.id("Bar"), ids.index(STEPS.vocab.id("Bar")) + 1)
        (bass,) = STEPS.decode(ids[:second] + [EOS]).parts
        assert {n.pitch % 12 for n in bass.notes} <= {0, 7}


def test_exempt_parts_are_never_narrowed():
    # a kept bass chord high above the register: the user's part reads as it is
    song = Score(parts=[Part(33, [Note(70, 0, 1, 90), Note(74, 0, 1, 90)])], end=4.0)
    ids = STEPS.encode(song).ids.tolist()
    kept = PartsGrammar(STEPS.grammar(), STEPS, PROFILES, exempt=(0,))
    for token in ids:
        kept.advance(token)
    assert kept.done
    free = PartsGrammar(STEPS.grammar(), STEPS, PROFILES)
    pitch74 = ids.index(STEPS.vocab.id("Pitch_74"))
    for token in ids[:pitch74]:
        free.advance(token)
    assert not free.allowed()[ids[pitch74]]  # out of a free bass's register


def test_groove_extended_kit_notes_are_read_as_general_midi(tmp_path):
    from musicgen.midi_io import read_score
    from tests.music import Track, write_test_midi

    hits = [(22, 0, 0.25, 80), (26, 0.5, 0.25, 80), (36, 0, 0.25, 100)]
    write_test_midi(tmp_path / "g.mid", [Track(hits, channel=9)])
    score = read_score(tmp_path / "g.mid", include_drums=True, allow_drums_only=True)
    assert sorted(n.pitch for n in score.drums) == [36, 42, 46]
    assert score.dropped["drum_notes_mapped_to_gm_kit"] == 2


def test_song_harmony_is_what_the_kept_parts_sound_in_each_beat():
    from musicgen.songplan import plan_song, song_harmony

    chords = [Note(p, 0, 2, 80) for p in (60, 64, 67)] + [Note(62, 2, 3, 80)]
    song = Score(parts=[Part(0, chords), groove(1)], end=4.0)
    plan = plan_song(STEPS, song, [33])
    harmony = song_harmony(plan, STEPS.config.steps_per_quarter)
    assert harmony(0, 0) == harmony(0, 7) == frozenset({0, 4, 7})
    assert harmony(0, 8) == frozenset({2})
    assert harmony(0, 12) is None  # the beat sounds nothing: the bass is free


def test_accompany_puts_an_added_bass_on_the_song_harmony(tmp_path):
    from musicgen.arrange import accompany
    from musicgen.config import SampleConfig
    from musicgen.midi_io import read_score, write_midi
    from tests.test_arrange import band

    checkpoint = band(tmp_path / "band", "steps")  # untrained: close to uniform choices
    bars = 4
    chords = [(0, 4, 7), (5, 9, 0), (7, 11, 2), (0, 4, 7)]
    piano_part = Part(
        0, [Note(60 + pc, 4 * b, 4 * b + 4, 80) for b in range(bars) for pc in chords[b]]
    )
    write_midi(Score(parts=[piano_part], end=bars * 4.0), tmp_path / "song.mid")
    for seed in range(2):
        (out,) = accompany(
            checkpoint,
            tmp_path / "song.mid",
            "bass",
            tmp_path / f"o{seed}",
            sample=SampleConfig(seed=seed),
        )
        (bass,) = [p for p in read_score(out.path).parts if 32 <= p.program < 40]
        assert bass.notes
        for n in bass.notes:
            assert n.pitch % 12 in chords[int(n.start // 4)]
            assert 23 <= n.pitch <= 67  # the default bass register of a checkpoint without profiles
        assert max(Counter(n.start for n in bass.notes).values()) == 1


def test_train_stores_profiles_and_lineups_and_generate_draws_a_band(tmp_path):
    from click.testing import CliRunner

    from musicgen.checkpoint import read_config
    from musicgen.cli import main
    from musicgen.generate import GenerateRequest, sample_pieces
    from musicgen.midi_io import write_midi

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):  # files differ (a file seen twice counts once)
        write_midi(band_song(4 + i), data / f"song{i}.mid")
    for i in range(4):  # grooves: more files than songs, as in band_corpus
        write_midi(Score(parts=[groove(2 + i)], end=8.0 + 4 * i), data / f"groove{i}.mid")
    out = tmp_path / "run"
    tiny = ["--layers=1", "--units=16", "--embedding-dim=8", "--seq-len=16", "--batch-size=4"]
    tiny += ["--epochs=1", "--steps-per-epoch=2", "--val-fraction=0.15"]
    result = CliRunner().invoke(main, ["train", str(data), "--out", str(out), *tiny, "-q"])
    assert result.exit_code == 0, result.output
    _, meta = read_config(out)
    profiles = stored_profiles(meta)
    assert profiles["bass"].cap == 1 and (profiles["bass"].low, profiles["bass"].high) == (28, 48)
    assert set(profiles["drums"].kit) <= {36, 38, 42, 49}
    lineups = stored_lineups(meta)
    assert ("piano", "bass", "drums") in lineups and ("drums",) in lineups
    pieces = sample_pieces(out, GenerateRequest(num=4, bars=2))
    for piece in pieces:  # the songs' line-up, its silent parts left out; never a groove's
        programs = [p.program for p in piece.score.parts]
        assert set(programs) <= {0, 33, DRUM_PROGRAM} and len(set(programs)) == len(programs)
        assert all(p.notes for p in piece.score.parts)
        assert_held_to_profiles(piece.score, single_line=True, profiles=profiles)
    assert {p.program for piece in pieces for p in piece.score.parts} > {DRUM_PROGRAM}
