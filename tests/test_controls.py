"""Key and density control tokens (remi), transposition of keys, and forced decoding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from musicgen.checkpoint import read_config
from musicgen.config import ConfigError, EncodingConfig, RunConfig
from musicgen.constraints import (
    APPROACH_BARS,
    CadenceGrammar,
    Controls,
    ForcedGrammar,
    cadence_masks,
    default_density_choices,
    density_choices,
    describe_density_choices,
    key_name,
    parse_density,
    parse_key,
    parse_time_signature,
)
from musicgen.encoding import BOS, Grammar, check_config, get_encoding
from musicgen.encoding.remi import (
    DENSITY,
    DENSITY_EDGES,
    DENSITY_LEVELS,
    KEY,
    PITCH,
    RemiEncoding,
    density_level,
    density_range,
    find_key,
)
from musicgen.engine import start_grammar
from musicgen.errors import UsageError
from musicgen.instruments import parse_instruments
from musicgen.midi_io import read_score
from musicgen.profiles import PartProfile
from musicgen.score import DRUM_PROGRAM, Note, Part, Score
from tests.music import make_score, untrained_checkpoint

PLAIN = RemiEncoding(EncodingConfig(name="remi"))
ENC = RemiEncoding(EncodingConfig(name="remi", controls=True))
MAJOR_SCALE = [0, 2, 4, 5, 7, 9, 11, 12]
HARMONIC_MINOR = [0, 2, 3, 5, 7, 8, 11, 12]


def scale_score(tonic: int, steps=MAJOR_SCALE, per_bar: int = 4, **kwargs):
    """A scale from MIDI `tonic` up, then a long tonic chord, one quarter per note."""
    notes = [(tonic + s, i, 1, 80) for i, s in enumerate(steps)]
    end = len(steps)
    notes += [(tonic + s, end, 4, 80) for s in (0, steps[2], 7)]
    notes += [(tonic - 12, end, 4, 80)]
    return make_score(notes, **kwargs)


def random_walk(tonic: int, steps, sample: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    return [tonic + int(rng.choice(steps)) for _ in range(sample)]


def sample_uniformly(grammar, rng, limit: int = 5000) -> list[int]:
    """Ids drawn uniformly among those a grammar allows, until it is done."""
    ids = []
    for _ in range(limit):
        if grammar.done:
            return ids
        token_id = int(rng.choice(np.flatnonzero(grammar.allowed())))
        grammar.advance(token_id)
        ids.append(token_id)
    raise AssertionError("grammar did not finish")


# ----------------------------------------------------------------------------- vocabulary


def test_control_tokens_are_appended_after_every_other_token():
    plain, tokens = PLAIN.vocab.tokens, ENC.vocab.tokens
    assert tokens[: len(plain)] == plain  # old ids do not move
    assert len(tokens) == len(plain) + 24 + DENSITY_LEVELS
    key0 = ENC.vocab.id("Key_0_major")
    assert key0 == len(plain)
    assert ENC.vocab.id("Key_2_minor") == key0 + 1 * 12 + 2
    assert tokens[-DENSITY_LEVELS:] == [f"Density_{i}" for i in range(DENSITY_LEVELS)]
    assert PLAIN.cyclic_id_groups() == []
    assert ENC.cyclic_id_groups() == [(key0, 12), (key0 + 12, 12)]


def _without_controls(ids) -> list[int]:
    return [int(i) for i in ids if ENC.kinds[i] not in (KEY, DENSITY)]


def test_every_bar_opens_with_key_and_density_and_round_trips():
    score = scale_score(62, tempo=ENC.tempos.values[10])  # D major: 8 quarters, a chord
    ids = ENC.encode(score).ids
    names = ENC.describe(ids)
    assert names[:6] == ["BOS", "Bar", "Key_2_major", "Density_9", "TimeSig_4/4", "Tempo_10"]
    bars = [i for i, name in enumerate(names) if name == "Bar"]
    assert len(bars) == 3
    # the key of the piece at every bar; each bar's own density: 4, 4 and 4 notes
    assert [names[i + 1] for i in bars] == ["Key_2_major"] * 3
    assert [names[i + 2] for i in bars] == ["Density_9"] * 3
    assert _without_controls(ids) == list(PLAIN.encode(score).ids)  # the rest as before
    decoded = ENC.decode(ids)
    assert not decoded.dropped
    assert decoded.notes == PLAIN.decode(PLAIN.encode(score).ids).notes
    grammar = ENC.grammar()
    for token_id in ids:
        assert grammar.allowed()[token_id]
        grammar.advance(token_id)
    assert grammar.done


def test_density_levels_follow_notes_per_quarter():
    assert density_level(0, 4.0) == 0  # an empty bar
    assert density_level(1, 4.0) == 1  # one note in a 4/4 bar: 1/4 per quarter
    assert density_level(16, 4.0) == density_level(12, 3.0) == 17  # 4 per quarter
    assert density_level(10_000, 4.0) == DENSITY_LEVELS - 1
    for level in range(DENSITY_LEVELS):
        lo, hi = density_range(level)
        assert density_level(math.ceil(lo * 4000), 4000.0) == level  # lo is in the level
        assert hi == math.inf or density_level(math.ceil(hi * 4000) - 1, 4000.0) == level
    assert list(DENSITY_EDGES) == sorted(DENSITY_EDGES)
    busy = make_score([(60 + (i % 5), i / 4, 0.25, 80) for i in range(32)])  # 16 a bar
    chords = make_score([(p, i / 4, 0.25, 80) for i in range(16) for p in (48, 55, 60)])
    assert ENC.describe(ENC.encode(busy).ids)[3] == "Density_17"
    assert ENC.describe(ENC.encode(chords).ids)[3] == f"Density_{density_level(48, 4.0)}"


def test_density_words_are_measured_on_the_training_bars():
    first = ENC.first_id[DENSITY]
    bars = [first + 5] * 10 + [first + 9] * 80 + [first + 12] * 10
    choices = density_choices(ENC, [np.array(bars[:50]), np.array(bars[50:])])
    assert choices == {"low": 5, "medium": 9, "high": 12}  # moved apart to levels it has
    uneven = [first + 2] * 15 + [first + 6] * 35 + [first + 7] * 30 + [first + 8] * 20
    assert density_choices(ENC, [np.array(uneven)]) == {"low": 2, "medium": 6, "high": 8}
    assert density_choices(ENC, [np.array([first + 3] * 5)]) == {"low": 2, "medium": 3, "high": 4}
    assert density_choices(ENC, [np.array([1, 2, 3])]) == {}
    assert density_choices(PLAIN, [np.array([1, 2, 3])]) == {}
    top = [first + DENSITY_LEVELS - 1] * 5
    assert density_choices(ENC, [np.array(top)])["high"] == DENSITY_LEVELS - 1
    assert list(default_density_choices().values()) == [13, 17, 21]  # 2, 4, 8 per quarter
    text = describe_density_choices({"low": 13, "medium": 17, "high": DENSITY_LEVELS - 1})
    assert text == "low 8-9.51, medium 16-19, high 64+ notes per 4/4 bar"


def test_control_tokens_out_of_place_are_skipped_by_the_decoder():
    ids = list(ENC.encode(scale_score(60)).ids)
    ids.insert(6, ENC.vocab.id("Key_3_minor"))  # after the first bar's Tempo
    assert ENC.decode(ids).dropped["invalid_tokens"] == 1


# ----------------------------------------------------------------------------- key finding


def test_find_key_on_scales_and_edge_cases():
    for tonic in range(12):
        major = random_walk(60 + tonic, [0, 2, 4, 5, 7, 9, 11, 0, 4, 7], 200, seed=tonic)
        assert find_key(major, [1.0] * len(major)) == (tonic, 0)
        minor = random_walk(60 + tonic, [0, 2, 3, 5, 7, 8, 11, 0, 3, 7], 200, seed=tonic)
        assert find_key(minor, [1.0] * len(minor)) == (tonic, 1)
    assert find_key([], []) == (0, 0)
    assert find_key(list(range(60, 72)), [1.0] * 12) == (0, 0)  # no information


def test_find_key_moves_with_transposition():
    rng = np.random.default_rng(3)
    for _ in range(50):
        pitches = rng.integers(40, 80, size=30)
        durations = rng.integers(1, 8, size=30).astype(float)
        tonic, mode = find_key(pitches, durations)
        k = int(rng.integers(-6, 7))
        assert find_key(pitches + k, durations) == ((tonic + k) % 12, mode)


def test_duration_weights_the_histogram():
    # A minor triad held long against a short C major scale fragment
    pitches = [57, 60, 64, 62, 65, 67, 71]
    assert find_key(pitches, [8, 8, 8, 1, 1, 1, 1]) == (9, 1)


# ----------------------------------------------------------------------------- transposition


def test_transposition_moves_the_key_token():
    ids = ENC.encode(scale_score(60)).ids
    assert ENC.describe(ids[2:3]) == ["Key_0_major"]
    up = ENC.transpose(ids, 2)
    assert {n for n in ENC.describe(up) if n.startswith("Key")} == {"Key_2_major"}
    assert ENC.describe(ENC.transpose(ids, -1)[2:3]) == ["Key_11_major"]
    minor = ENC.encode(scale_score(69, HARMONIC_MINOR)).ids
    assert ENC.describe(minor[2:3]) == ["Key_9_minor"]
    assert ENC.describe(ENC.transpose(minor, 5)[2:3]) == ["Key_2_minor"]  # stays minor
    # transposing ids is encoding the transposed music
    shifted = scale_score(62)
    assert list(up) == list(ENC.encode(shifted).ids)


def test_feed_transposition_rotates_keys_like_encoding_transpose():
    from musicgen import feed
    from musicgen.runtime import import_tensorflow

    tf = import_tensorflow()
    pieces = [
        ENC.encode(scale_score(t, s)).ids for t, s in ((55, MAJOR_SCALE), (69, HARMONIC_MINOR))
    ]
    width = min(len(p) for p in pieces)
    windows = np.stack([p[:width] for p in pieces])
    key0 = ENC.vocab.id("Key_0_major")
    for seed in range(4):
        out = feed._transpose_windows(
            tf.constant(windows),
            6,
            ENC.pitch_id_ranges(),
            tf.constant([seed, 0], tf.int64),
            ENC.cyclic_id_groups(),
        ).numpy()
        for before, after in zip(windows, out, strict=True):
            pitch = np.flatnonzero(ENC.kinds[before] == PITCH)[0]
            k = int(after[pitch] - before[pitch])
            assert list(after) == list(ENC.transpose(before, k))
            assert (after[2] - key0) % 12 == (before[2] - key0 + k) % 12


# ----------------------------------------------------------------------------- grammar


def test_grammar_requires_key_then_density_after_every_bar():
    grammar = ENC.grammar(2)
    grammar.advance(BOS)
    assert ENC.describe(np.flatnonzero(grammar.allowed())) == ["Bar"]
    grammar.advance(ENC.vocab.id("Bar"))
    allowed = np.flatnonzero(grammar.allowed())
    assert ENC.describe(allowed) == [f"Key_{t}_{m}" for m in ("major", "minor") for t in range(12)]
    with pytest.raises(ValueError):  # controls are required
        _advance_all(ENC.grammar(2), [BOS, ENC.vocab.id("Bar"), ENC.vocab.id("TimeSig_4/4")])
    grammar.advance(ENC.vocab.id("Key_5_minor"))
    densities = [f"Density_{i}" for i in range(DENSITY_LEVELS)]
    assert ENC.describe(np.flatnonzero(grammar.allowed())) == densities
    grammar.advance(ENC.vocab.id("Density_3"))
    assert all(n.startswith("TimeSig") for n in ENC.describe(np.flatnonzero(grammar.allowed())))
    _advance_all(grammar, [ENC.vocab.id(n) for n in ("TimeSig_4/4", "Tempo_3", "Bar")])
    assert ENC.describe(np.flatnonzero(grammar.allowed()))[0] == "Key_0_major"
    # and a model without controls never sees them
    plain = PLAIN.grammar()
    _advance_all(plain, [BOS, PLAIN.vocab.id("Bar")])
    assert all(n.startswith("TimeSig") for n in PLAIN.describe(np.flatnonzero(plain.allowed())))


def _advance_all(grammar, ids):
    for token_id in ids:
        grammar.advance(token_id)


# ----------------------------------------------------------------------------- configs


def test_old_configs_load_without_controls(tmp_path):
    data = RunConfig(encoding=EncodingConfig(name="remi")).to_dict()
    del data["encoding"]["controls"]
    assert RunConfig.from_dict(data).encoding.controls is False
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**data, "vocab_size": len(PLAIN.vocab)}))
    config, meta = read_config(folder)
    assert config.encoding.controls is False
    assert len(get_encoding(config.encoding).vocab) == meta["vocab_size"]
    assert RunConfig().with_flat({"controls": True}).encoding.controls is True
    with pytest.raises(ConfigError, match="remi"):
        check_config(EncodingConfig(name="performance", controls=True))
    with pytest.raises(ConfigError, match="beat-grid"):
        get_encoding(EncodingConfig(name="performance", controls=True))


def test_cli_train_controls_option_reaches_the_config(tmp_path):
    from musicgen.cli import main

    result = CliRunner().invoke(
        main, ["train", str(tmp_path), "--encoding", "performance", "--controls"]
    )
    assert result.exit_code == 2
    assert "controls need a beat-grid encoding" in result.output


# ----------------------------------------------------------------------------- words


@pytest.mark.parametrize(
    "text, expected",
    [
        ("D minor", (2, 1)),
        ("Dm", (2, 1)),
        ("d min", (2, 1)),
        ("F# major", (6, 0)),
        ("f#", (6, 0)),
        ("Bb", (10, 0)),
        ("bbm", (10, 1)),
        ("B- major", (10, 0)),
        ("a minor", (9, 1)),
        ("Cb", (11, 0)),
        ("E♭ Major", (3, 0)),
        ("  C   MINOR ", (0, 1)),
        ("EM", (4, 0)),
    ],
)
def test_parse_key(text, expected):
    assert parse_key(text) == expected


@pytest.mark.parametrize("text", ["H major", "", "D dorian", "C##x", "12"])
def test_parse_key_errors_are_usage_errors(text):
    with pytest.raises(UsageError, match="key"):
        parse_key(text)


def test_key_names_read_back():
    for tonic in range(12):
        for mode in (0, 1):
            assert parse_key(key_name(tonic, mode)) == (tonic, mode)


def test_parse_time_signature_and_density():
    assert parse_time_signature("3/4", ENC) == (3, 4)
    assert parse_time_signature(" 6 / 8 ", ENC) == (6, 8)
    for bad in ("3:4", "9/4", "3/5", "x"):
        with pytest.raises(UsageError, match="time signature"):
            parse_time_signature(bad, ENC)
    assert [parse_density(w) for w in ("low", "Medium", " HIGH ")] == ["low", "medium", "high"]
    with pytest.raises(UsageError, match="density"):
        parse_density("dense")


# ----------------------------------------------------------------------------- forced grammar


def test_forced_grammar_imposes_every_control():
    levels = {"low": 4, "medium": 8, "high": 15}
    controls = Controls.request(
        ENC, key="D minor", density="high", time_signature="3/4", tempo=90, density_levels=levels
    )
    rng = np.random.default_rng(0)
    tempo = f"Tempo_{ENC.tempos.bin(90)}"
    for _ in range(20):
        grammar = controls.wrap(ENC.grammar(4))
        ids = sample_uniformly(grammar, rng)
        names = ENC.describe(ids)
        assert names[:6] == ["BOS", "Bar", "Key_2_minor", "Density_15", "TimeSig_3/4", tempo]
        assert [n for n in names if n.startswith("Key")] == ["Key_2_minor"] * 4
        assert [n for n in names if n.startswith("Density")] == ["Density_15"] * 4
        assert [n for n in names if n.startswith("TimeSig")] == ["TimeSig_3/4"]
        assert [n for n in names if n.startswith("Tempo")] == [tempo]
        score = ENC.decode(ids)
        assert score.time_signatures == [(0.0, 3, 4)] and score.length == 4 * 3


def test_forced_grammar_switches_a_primer_to_the_asked_metre():
    primer = list(PLAIN.encode(scale_score(60)).ids[1:-1]) + [PLAIN.vocab.id("Bar")]
    controls = Controls.request(PLAIN, time_signature="6/8")
    grammar = PLAIN.grammar(4)
    _advance_all(grammar, [BOS, *primer])
    forced = controls.wrap(grammar, [BOS, *primer])
    assert PLAIN.describe(np.flatnonzero(forced.allowed())) == ["TimeSig_6/8"]
    ids = sample_uniformly(forced, np.random.default_rng(1))
    score = PLAIN.decode([BOS, *primer, *ids])
    assert score.time_signatures[-1][1:] == (6, 8)
    assert sum(1 for t in PLAIN.describe(ids) if t.startswith("TimeSig")) == 1


def test_asked_controls_steer_the_bars_after_a_primer():
    primer = list(ENC.encode(scale_score(60)).ids[1:-1]) + [ENC.vocab.id("Bar")]
    controls = Controls.request(ENC, key="Eb major", density="low")
    grammar = ENC.grammar(5)
    _advance_all(grammar, [BOS, *primer])
    forced = controls.wrap(grammar, [BOS, *primer])
    assert ENC.describe(np.flatnonzero(forced.allowed())) == ["Key_3_major"]
    ids = sample_uniformly(forced, np.random.default_rng(2))
    keys = [n for n in ENC.describe(ids) if n.startswith("Key")]
    assert keys == ["Key_3_major"] * 2  # the 2 new bars; the primer's 3 keep Key_0_major
    low = default_density_choices()["low"]
    assert {n for n in ENC.describe(ids) if n.startswith("Density")} == {f"Density_{low}"}


def test_requests_a_model_cannot_meet_are_usage_errors():
    with pytest.raises(UsageError, match="trained without controls.*controls=True") as raised:
        Controls.request(PLAIN, key="C major")
    assert raised.value.cli_message().endswith(
        "--key and --density cannot steer it; retrain with `musicgen train --controls`"
    )
    with pytest.raises(UsageError, match="trained without controls"):
        Controls.request(PLAIN, density="low")
    assert not Controls.request(PLAIN, time_signature="3/4", tempo=100).empty
    perf = get_encoding(EncodingConfig(name="performance"))
    with pytest.raises(UsageError, match="remi"):
        Controls.request(perf, time_signature="3/4")
    assert Controls.request(perf, tempo=100).empty
    grammar = PLAIN.grammar()
    assert Controls().wrap(grammar) is grammar
    assert isinstance(Controls.request(PLAIN, tempo=60).wrap(grammar), ForcedGrammar)


# ----------------------------------------------------------------------------- cadence

TINY = RemiEncoding(
    EncodingConfig(
        name="remi", controls=True, pitch_min=48, pitch_max=72, max_bar_quarters=4, tempo_bins=4
    )
)
D_MINOR_TRIAD, D_HARMONIC_MINOR = {2, 5, 9}, {2, 4, 5, 7, 9, 10, 1}


def _pitch_classes_allowed(mask) -> set[int]:
    lo, hi = TINY.id_range[PITCH]
    return {int(p) % 12 for p in TINY.values[lo:hi][mask[lo:hi]]}


def test_cadence_masks_narrow_only_pitches():
    masks = cadence_masks(TINY, 2, 1)  # D minor
    assert len(masks) == APPROACH_BARS + 1
    assert all(_pitch_classes_allowed(m) == D_HARMONIC_MINOR for m in masks[:-1])
    assert _pitch_classes_allowed(masks[-1]) == D_MINOR_TRIAD
    lo, hi = TINY.id_range[PITCH]
    for mask in masks:  # every other kind (Bar, Position, drums in a tracks encoding) kept
        assert mask[:lo].all() and mask[hi:].all()
    assert _pitch_classes_allowed(cadence_masks(TINY, 9, 0)[-1]) == {9, 1, 4}  # A major


def _bars_of(ids, bars: int, quarters: float) -> list[list]:
    """The decoded notes of each bar (of `quarters` quarter notes) of a piece."""
    notes = TINY.decode(ids).notes
    return [[n for n in notes if b * quarters <= n.start < (b + 1) * quarters] for b in range(bars)]


@pytest.mark.parametrize(("metre", "quarters"), [("4/4", 4.0), ("3/4", 3.0)])
def test_cadence_grammar_closes_on_the_tonic_chord(metre, quarters):
    controls = Controls.request(TINY, key="D minor", time_signature=metre)
    rng = np.random.default_rng(3)
    for _ in range(20):
        grammar = controls.wrap(TINY.grammar(5), [])
        assert isinstance(grammar, CadenceGrammar)
        ids = sample_uniformly(grammar, rng)
        assert TINY.decode(ids).length == 5 * quarters  # still the asked length
        bars = _bars_of(ids, 5, quarters)
        last = bars[-1]
        assert last and {n.pitch % 12 for n in last} <= D_MINOR_TRIAD
        for onset in {n.start for n in last}:  # each onset's lowest note is a D
            assert min(n.pitch for n in last if n.start == onset) % 12 == 2
        for bar in bars[-1 - APPROACH_BARS : -1]:
            assert {n.pitch % 12 for n in bar} <= D_HARMONIC_MINOR


def test_cadence_grammar_after_a_primer_counts_its_bars():
    primer = list(TINY.encode(scale_score(60)).ids[1:-1]) + [TINY.vocab.id("Bar")]
    grammar = TINY.grammar(4)  # the primer's 3 bars and one new one: the last
    _advance_all(grammar, [BOS, *primer])
    steered = Controls.request(TINY, key="A major").wrap(grammar, [BOS, *primer])
    ids = sample_uniformly(steered, np.random.default_rng(4))
    new_notes = TINY.decode([BOS, *primer, *ids]).notes[len(TINY.decode(primer).notes) :]
    assert new_notes and {n.pitch % 12 for n in new_notes} <= {9, 1, 4}


class _VelocityFirst(Grammar):
    """A stand-in for an encoding that sets Velocity before Pitch (tracks): in its last
    bar, after a note at MIDI 70, a Velocity, a higher Pitch or a Position may come."""

    elapsed, done = 4.0, False

    def allowed(self):
        mask = np.zeros(len(TINY.vocab), dtype=bool)
        mask[TINY.vocab.ids_with_prefix("Velocity_")] = True
        mask[TINY.vocab.id("Pitch_71") : TINY.vocab.id("Pitch_72") + 1] = True
        mask[TINY.vocab.id("Position_15")] = True
        return mask

    def advance(self, token_id):
        pass


def test_cadence_grammar_holds_back_a_velocity_no_pitch_of_the_key_could_follow():
    controls = Controls.request(TINY, key="D minor")
    steered = CadenceGrammar(_VelocityFirst(), controls, bars=4)
    allowed = TINY.describe(np.flatnonzero(steered.allowed()))
    assert allowed == ["Position_15"]  # B and C are not in D minor's triad; no Velocity


def test_without_a_key_or_a_length_no_cadence_is_imposed():
    rng = np.random.default_rng(5)
    no_key = Controls.request(TINY, density="low", time_signature="3/4")
    assert not no_key.closing and type(no_key.wrap(TINY.grammar(4))) is ForcedGrammar
    off = Controls.request(TINY, key="D minor", cadence=False)
    assert type(off.wrap(TINY.grammar(4))) is ForcedGrammar
    unbounded = Controls.request(TINY, key="D minor").wrap(TINY.grammar())
    assert type(unbounded) is ForcedGrammar
    # with a key, the bars before the closing ones are steered by the Key tokens alone,
    # and the closing bars differ only at Pitch ids (and EOS, until the last bar's note)
    keyed = Controls.request(TINY, key="D minor").wrap(TINY.grammar(6))
    key_only = off.wrap(TINY.grammar(6))
    lo, hi = TINY.id_range[PITCH]
    while not key_only.done:
        a, b = keyed.allowed(), key_only.allowed()
        if key_only.elapsed < 6 - APPROACH_BARS:
            assert (a == b).all()
        else:
            differ = set(np.flatnonzero(a != b).tolist())
            assert differ <= set(range(lo, hi)) | {2}  # 2: EOS
        token_id = int(rng.choice(np.flatnonzero(a)))
        keyed.advance(token_id)
        key_only.advance(token_id)


# ----------------------------------------------------------------------------- cadence on steps

STEPS = get_encoding(
    EncodingConfig(
        name="steps",
        controls=True,
        pitch_min=36,
        pitch_max=72,
        max_bar_quarters=4,
        tempo_bins=4,
        max_parts=4,
        include_drums=True,
    )
)


def _sounding_at(score: Score, times) -> dict[float, list[int]]:
    """{time: the pitches sounding then, across the pitched parts} of a decoded score."""
    notes = [n for part in score.parts if part.program != DRUM_PROGRAM for n in part.notes]
    return {t: sorted(n.pitch for n in notes if n.start <= t < n.end) for t in times}


@pytest.mark.parametrize(("metre", "quarters"), [("4/4", 4.0), ("3/4", 3.0)])
def test_cadence_on_steps_holds_at_every_step_held_notes_and_silent_parts_included(metre, quarters):
    """Random walks of the grammar (any parts, drums among them, listed in any way the
    grammar allows): wherever the sounding notes change in the closing bars, and at each
    bar line, what sounds is of D harmonic minor before the last bar and of D minor's
    triad with a D lowest in it; the piece keeps its length and ends on a chord."""
    controls = Controls.request(STEPS, key="D minor", time_signature=metre)
    rng = np.random.default_rng(11)
    for _ in range(25):
        grammar = controls.wrap(STEPS.grammar(5), [])
        assert isinstance(grammar, CadenceGrammar)
        score = STEPS.decode(sample_uniformly(grammar, rng, limit=20000))
        assert score.length == 5 * quarters
        pitched = [n for p in score.parts if p.program != DRUM_PROGRAM for n in p.notes]
        closing = (5 - 1 - APPROACH_BARS) * quarters
        changes = {t for n in pitched for t in (n.start, n.end) if closing <= t < 5 * quarters}
        bar_lines = {closing + b * quarters for b in range(APPROACH_BARS + 1)}
        for t, sounding in _sounding_at(score, changes | bar_lines).items():
            if t < 4 * quarters:
                assert {p % 12 for p in sounding} <= D_HARMONIC_MINOR, (t, sounding)
            elif pitched:
                assert sounding and {p % 12 for p in sounding} <= D_MINOR_TRIAD, (t, sounding)
                assert sounding[0] % 12 == 2, (t, sounding)  # a D lowest


def test_an_asked_or_drawn_line_up_keeps_the_cadence():
    """`generate --instruments` and a line-up drawn from the training files wrap the
    grammar in an InstrumentsGrammar (and a PartsGrammar): the controls must still find
    the piece's length through them, or an asked key gets no closing cadence."""
    ensemble = parse_instruments("ensemble,ensemble,ensemble,ensemble")
    profiles = {"ensemble": PartProfile(low=41, high=78, cap=1)}
    controls = Controls.request(STEPS, key="D minor")
    grammar = start_grammar(STEPS, 6, [], controls, ensemble, profiles=profiles)
    assert isinstance(grammar, CadenceGrammar) and grammar.length == 6


CHORALE = get_encoding(EncodingConfig(name="steps", controls=True))


def _chorale(final_bass: int) -> Score:
    """Four voices (Soprano, Alto, Tenor, Bass: the steps order puts the bass last) in
    D minor, half notes, 4 bars of 4/4: i iv | iv i | iv6 V | i, the soprano's A held
    over the last bar line."""
    chords = [
        (69, 65, 62, 50),
        (70, 67, 62, 55),
        (70, 67, 62, 43),
        (69, 65, 62, 50),
        (70, 67, 62, 46),
        (69, 64, 61, 45),
        (69, 65, 62, final_bass),
    ]
    voices = [Part(52, name=name) for name in ("Soprano", "Alto", "Tenor", "Bass")]
    for i, chord in enumerate(chords):
        length = 4.0 if i == len(chords) - 1 else 2.0
        for voice, pitch in zip(voices, chord, strict=True):
            voice.notes.append(Note(pitch, 2.0 * i, 2.0 * i + length, 80))
    soprano = voices[0].notes  # the A of the V chord goes on into the last bar
    soprano[-2:] = [Note(69, 10.0, 16.0, 80)]
    return Score(parts=voices, time_signatures=[(0.0, 4, 4)], tempos=[(0.0, 90.0)])


def test_cadence_on_steps_lets_a_chorale_close_on_a_root_position_tonic():
    controls = Controls.request(CHORALE, key="D minor")
    good = CHORALE.encode(_chorale(final_bass=50)).ids
    names = CHORALE.describe(good)
    last_bar = names[len(names) - names[::-1].index("Bar") :]
    assert last_bar[2:4] == ["Position_0", "Track_1"]  # the soprano goes on, not listed
    grammar = CadenceGrammar(CHORALE.grammar(4), controls, bars=4)
    for token_id in good:
        assert grammar.allowed()[token_id], CHORALE.vocab.token(int(token_id))
        grammar.advance(token_id)
    assert grammar.done
    # the same close over an A in the bass (a six-four chord): the bass, listed last,
    # must take a D below the tenor's D instead (or cross above it, the tenor's D then
    # being the lowest note)
    bad = CHORALE.encode(_chorale(final_bass=57)).ids
    grammar = CadenceGrammar(CHORALE.grammar(4), controls, bars=4)
    for token_id in bad:
        if not grammar.allowed()[token_id]:
            break
        grammar.advance(token_id)
    assert CHORALE.vocab.token(int(token_id)) == "Pitch_57"
    lo, hi = CHORALE.id_range[PITCH]
    pitches = {int(CHORALE.values[i]) for i in np.flatnonzero(grammar.allowed()[lo:hi]) + lo}
    triad_above = {p for p in range(62, 109) if p % 12 in D_MINOR_TRIAD}
    assert pitches == {26, 38, 50} | triad_above


# ----------------------------------------------------------------------------- generate


def _checkpoint(folder: Path, controls: bool) -> Path:
    return untrained_checkpoint(folder, EncodingConfig(name="remi", controls=controls))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    return _checkpoint(root / "plain", False), _checkpoint(root / "steered", True)


def test_generate_imposes_controls(checkpoints, tmp_path):
    from musicgen.generate import generate

    _, steered = checkpoints
    files = generate(
        steered, tmp_path, num=2, bars=3, key="Bb minor", density="low", time_signature="6/8"
    )
    for f in files:
        names = ENC.describe(f.ids)
        low = default_density_choices()["low"]  # the untrained model has no measured ones
        assert names[1:4] == ["Bar", "Key_10_minor", f"Density_{low}"]
        assert [n for n in names if n.startswith("Key")] == ["Key_10_minor"] * 3
        assert {n for n in names if n.startswith("TimeSig")} == {"TimeSig_6/8"}
        assert f.bars == 3
        last_bar = [n for n in ENC.decode(f.ids).notes if n.start >= 2 * 3.0]  # 6/8: 3 quarters
        assert last_bar and {n.pitch % 12 for n in last_bar} <= {10, 1, 5}  # Bb minor's triad


def test_generate_closes_a_steps_piece_on_the_tonic_chord_over_a_tonic(tmp_path):
    from musicgen.generate import generate

    config = EncodingConfig(name="steps", controls=True)
    folder = untrained_checkpoint(tmp_path / "steps", config)
    encoding = get_encoding(config)
    files = generate(folder, tmp_path / "out", num=3, bars=3, key="Bb minor", time_signature="4/4")
    for f in files:
        score = encoding.decode(f.ids)
        assert score.length == 3 * 4.0
        pitched = [n for p in score.parts if p.program != DRUM_PROGRAM for n in p.notes]
        changes = {t for n in pitched for t in (n.start, n.end) if 8.0 <= t < 12.0} | {8.0}
        for t, sounding in _sounding_at(score, changes).items():
            assert sounding and {p % 12 for p in sounding} <= {10, 1, 5}, (t, sounding)
            assert sounding[0] % 12 == 10, (t, sounding)  # a Bb lowest
        assert read_score(f.path).key_signatures == [(0.0, 22)]  # Bb minor: a DAW shows it


def test_generate_without_controls_keeps_metre_and_refuses_key(checkpoints, tmp_path):
    from musicgen.cli import main
    from musicgen.generate import generate

    plain, _ = checkpoints
    (f,) = generate(plain, tmp_path / "a", num=1, bars=2, time_signature="3/4", tempo=100)
    assert [n for n in PLAIN.describe(f.ids) if n.startswith("TimeSig")] == ["TimeSig_3/4"]
    result = CliRunner().invoke(
        main, ["generate", "--checkpoint", str(plain), "--out", str(tmp_path), "--key", "D"]
    )
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--controls" in result.output
    result = CliRunner().invoke(
        main, ["generate", "--checkpoint", str(plain), "--out", str(tmp_path), "--key", "Q"]
    )
    assert result.exit_code == 2 and "cannot read the key" in result.output


@pytest.mark.slow
def test_train_with_controls_then_steer(tmp_path):
    """`musicgen train --controls` end to end on three tiny files, then --key/--density."""
    from musicgen.cli import main
    from tests.music import Track, write_test_midi

    data = tmp_path / "data"
    data.mkdir()
    for i, root in enumerate((60, 62, 69)):
        steps = MAJOR_SCALE if i < 2 else HARMONIC_MINOR
        notes = [(root + s, q, 1.0, 80) for q, s in enumerate(steps * 4)]
        write_test_midi(data / f"piece{i}.mid", [Track(notes)])
    out = tmp_path / "run"
    tiny = ["--layers=1", "--units=16", "--embedding-dim=8", "--seq-len=16", "--batch-size=4"]
    tiny += ["--epochs=1", "--steps-per-epoch=3", "--val-fraction=0.34", "--transpose=3"]
    result = CliRunner().invoke(
        main,
        ["train", str(data), "--out", str(out), "--encoding", "remi", "--controls", *tiny, "-q"],
    )
    assert result.exit_code == 0, result.output
    config, meta = read_config(out)
    assert config.encoding.controls and meta["vocab_size"] == len(ENC.vocab)
    levels = meta["data"]["controls"]["density"]  # measured on the training bars
    assert set(levels) == {"low", "medium", "high"}
    assert levels["low"] < levels["medium"] < levels["high"]
    info = CliRunner().invoke(main, ["info", str(out)])
    assert "Controls: --key (24 keys), --density low " in info.output
    args = ["generate", "--checkpoint", str(out), "--out", str(tmp_path / "g"), "--num", "1"]
    result = CliRunner().invoke(main, [*args, "--key", "G minor", "--density", "high", "-q"])
    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "g").glob("*.mid")
    assert written.stat().st_size > 0
    from musicgen.generate import generate

    (piece,) = generate(out, tmp_path / "h", num=1, bars=2, key="G minor", density="high")
    assert ENC.describe(piece.ids[1:4]) == ["Bar", "Key_7_minor", f"Density_{levels['high']}"]
