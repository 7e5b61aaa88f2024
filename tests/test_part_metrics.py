"""benchmarks/part_metrics.py, the figures bench_parts.py scores parts with, on tiny
music built in code whose answers are known by construction."""

import importlib.util
import math
from pathlib import Path

import pytest

from musicgen.midi_io import to_pretty_midi
from musicgen.score import DRUM_PROGRAM, Part, Score
from tests.music import make_notes

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "part_metrics.py"
_SPEC = importlib.util.spec_from_file_location("part_metrics", _PATH)
pm = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(pm)

C_MAJOR_TRIADS = [(60, 64, 67), (55, 59, 62), (57, 60, 64), (53, 57, 60)]  # C G Am F


def chords(bars: int = 4) -> list:
    """One held triad a bar (C G Am F ...), 4/4."""
    notes = [(p, 4 * b, 4, 70) for b in range(bars) for p in C_MAJOR_TRIADS[b % 4]]
    return make_notes(notes)


def song(*parts: Part, bars: int = 4) -> Score:
    return Score(list(parts), end=4.0 * bars)


def test_a_bass_on_the_chord_roots_fits_the_harmony_every_time():
    # the root and the fifth of each bar's chord, an octave or two down, on the beats
    bass = make_notes(
        [(t[0] - 24 + (7 if beat % 2 else 0), 4 * b + beat, 1, 90)
         for b, t in enumerate(C_MAJOR_TRIADS) for beat in range(4)]
    )  # fmt: skip
    kept = chords()
    figures = pm.bass_metrics(bass, kept, song(Part(48, kept)))
    assert figures["on_harmony"] == 1.0
    assert figures["chance"] == pytest.approx(3 / 12)  # a triad sounds in every beat
    assert figures["chord_onsets"] == 0.0
    assert figures["in_register"] == 1.0  # 29..43
    assert figures["notes_per_bar"] == 4.0


def test_a_chordal_high_bass_counts_its_chords_and_its_register():
    # per bar: a C major triad from 48 (one chord onset, in range), then three lone
    # notes above the range: 72 (C), 73 (C#), 74 (D)
    notes = []
    for b in range(4):
        notes += [(48, 4 * b, 1, 80), (52, 4 * b, 1, 80), (55, 4 * b, 1, 80)]
        notes += [(72 + k, 4 * b + 1 + k, 1, 80) for k in range(3)]  # 72, 73, 74
    bass = make_notes(notes)
    kept = chords()
    figures = pm.bass_metrics(bass, kept, song(Part(48, kept)))
    assert figures["chord_onsets"] == pytest.approx(1 / 4)  # 4 onsets a bar, one a chord
    assert figures["in_register"] == pytest.approx(3 / 6)  # 48, 52, 55 in; 72-74 out
    assert figures["notes_per_bar"] == 6.0
    # C E G fit C (bar 1), G in G, C E in Am, C in F; C (72) fits C, Am, F; D (74) fits G
    fits = (3 + 1) + (1 + 1) + (2 + 1) + (1 + 1)
    assert figures["on_harmony"] == pytest.approx(fits / 24)


def test_bass_notes_where_nothing_else_sounds_are_not_counted():
    kept = make_notes([(60, 0, 1, 70)])  # only beat 1 has harmony
    bass = make_notes([(36, 0, 1, 90), (38, 1, 1, 90), (40, 2, 1, 90)])
    on, chance, counted = pm.harmony_fit(bass, kept, song(Part(0, kept), bars=1))
    assert (on, chance, counted) == (1.0, pytest.approx(1 / 12), 1)
    assert math.isnan(pm.harmony_fit(bass, [], song(bars=1))[0])
    empty = pm.bass_metrics([], kept, song(Part(0, kept), bars=1))
    assert math.isnan(empty["chord_onsets"]) and empty["notes_per_bar"] == 0


def test_harmony_follows_the_beats_of_the_metre():
    # 6/8: beats are eighths; a chord held over the first beat only
    kept = make_notes([(60, 0, 0.5, 70), (64, 0, 0.5, 70)])
    bass = make_notes([(48, 0, 0.5, 90), (48, 0.5, 0.5, 90)])
    score = Score([Part(0, kept)], time_signatures=[(0.0, 6, 8)], end=3.0)
    assert len(pm.beat_grid(score)) == 7  # six beats and the end
    assert pm.harmony_fit(bass, kept, score)[:2] == (1.0, pytest.approx(2 / 12))


def test_drum_shares_and_the_kit():
    hits = [36, 38, 42, 42, 44, 46, 49, 51, 57, 27, 82, 36]
    figures = pm.drum_metrics(hits)
    assert figures["hat_share"] == pytest.approx(4 / 12)
    assert figures["cymbal_share"] == pytest.approx(3 / 12)
    assert figures["off_kit"] == 2  # 27 and 82
    assert math.isnan(pm.drum_metrics([])["hat_share"])


def test_window_keeps_the_bars_and_their_maps():
    notes = make_notes([(40 + b, 4 * b + 3.5, 2, 80) for b in range(8)])  # each over a bar line
    score = Score(
        [Part(33, notes, "Bass")], tempos=[(0.0, 100.0), (8.0, 140.0)],
        time_signatures=[(0.0, 4, 4)], end=32.0,
    )  # fmt: skip
    cut = pm.window(score, 2, 3)  # bars 3-5: quarters 8-20
    assert cut.length == 12.0 and cut.tempos == [(0.0, 140.0)]
    assert [(n.pitch, n.start, n.end) for n in cut.parts[0].notes] == [
        (42, 3.5, 5.5), (43, 7.5, 9.5), (44, 11.5, 12.0),
    ]  # fmt: skip
    assert pm.bars_playing(notes, score) == set(range(8))


def test_score_of_reads_back_what_was_written():
    drums = Part(DRUM_PROGRAM, make_notes([(36, 0, 0.25, 100), (90, 1, 0.25, 100)]), "Drums")
    bass = Part(33, make_notes([(40, 0.5, 1, 90)]), "Bass")
    score = Score([bass, drums], tempos=[(0.0, 90.0)])
    back = pm.score_of(to_pretty_midi(score))
    assert [(p.program, p.is_drum) for p in back.parts] == [(33, False), (DRUM_PROGRAM, True)]
    assert [(n.pitch, n.start, n.end) for n in back.parts[0].notes] == [(40, 0.5, 1.5)]
    assert [n.pitch for n in back.parts[1].notes] == [36, 90]  # out of the kit, kept
