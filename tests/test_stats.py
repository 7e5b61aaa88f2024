"""Musical statistics on music built in code, with answers known by construction."""

import math
from pathlib import Path

import numpy as np
import pytest

from musicgen import stats
from musicgen.score import DRUM_PROGRAM, EmptyMusicError, Part, Score
from tests.music import Track, make_notes, make_score, write_test_midi

C_MAJOR = [60, 62, 64, 65, 67, 69, 71]


def scale_score():
    """C D E F G A B, one quarter each, in 4/4: 7 notes over 2 bars (the second one short)."""
    return make_score([(p, i, 1, 80) for i, p in enumerate(C_MAJOR)])


def test_scale_statistics():
    s = stats.file_stats(scale_score(), key=False).values
    assert s["pitch_classes"] == 7
    assert s["pitch_class_entropy"] == pytest.approx(math.log2(7))
    assert s["scale_consistency"] == 1.0
    assert s["pitch_range"] == 11
    assert s["polyphony"] == 1.0
    assert s["notes_per_bar"] == pytest.approx(7 / 2)
    assert s["empty_beat_rate"] == 0.0  # beats 0..6 all start a note; the grid ends at 7


def test_out_of_scale_notes_lower_scale_consistency():
    notes = [(p, i, 1, 80) for i, p in enumerate(C_MAJOR + [61])]  # C# is in no C-ish scale
    s = stats.file_stats(make_score(notes), key=False).values
    assert s["scale_consistency"] == pytest.approx(7 / 8)  # best scale keeps 7 of 8 notes


def test_held_chord_has_polyphony_three():
    chord = make_score([(60, 0, 4, 80), (64, 0, 4, 80), (67, 0, 4, 80)])
    values = stats.file_stats(chord, key=False).values
    assert values["polyphony"] == 3.0
    assert values["empty_beat_rate"] == pytest.approx(3 / 4)  # onsets only on beat 1


def test_polyphony_counts_only_sounding_time():
    # two notes overlap for 1 of the 3 sounding quarters, then 1 quarter of silence, then 1 note
    score = make_score([(60, 0, 2, 80), (64, 1, 2, 80), (67, 4, 1, 80)])
    assert stats.file_stats(score, key=False).values["polyphony"] == pytest.approx(5 / 4)


def test_groove_consistency():
    same = make_score([(60, q, 1, 80) for q in range(8)])  # two identical bars of quarters
    assert stats.file_stats(same, key=False).values["groove_consistency"] == 1.0
    # bar 2 drops its last onset: 1 of 48 grid steps (12 per quarter) differs
    differ = make_score([(60, q, 1, 80) for q in range(7)], end=8)
    g = stats.file_stats(differ, key=False).values["groove_consistency"]
    assert g == pytest.approx(1 - 1 / 48)
    one_bar = make_score([(60, 0, 1, 80)])
    assert math.isnan(stats.file_stats(one_bar, key=False).values["groove_consistency"])


def test_bars_and_beats_follow_the_time_signature():
    score = make_score([(60, 0, 1.5, 80), (62, 3, 1.5, 80)], time_signature=(6, 8))
    assert stats.bar_grid(score) == [(0.0, 3.0, 6, 8), (3.0, 1.5, 6, 8)]
    # six eighth-note beats in bar 1 and three in bar 2; onsets on 2 of those 9 beats
    assert stats.file_stats(score, key=False).values["empty_beat_rate"] == pytest.approx(7 / 9)
    changing = make_score(
        [(60, 0, 1, 80), (60, 5, 1, 80)], time_signature=[(0, 3, 4), (3, 2, 4)], end=7
    )
    assert stats.bar_grid(changing) == [(0.0, 3.0, 3, 4), (3.0, 2.0, 2, 4), (5.0, 2.0, 2, 4)]
    assert stats.file_stats(score, key=False).metre == "6/8"
    assert stats.file_stats(changing, key=False).metre == "3/4+2/4"
    both = [stats.file_stats(s, key=False) for s in (score, changing)]
    summary = stats.SetStats("x", both, [score, changing])
    assert summary.summary()["metres"] == {"6/8": 1, "3/4+2/4": 1}


def test_histograms_in_quarters():
    score = make_score([(60, 0, 1, 80), (62, 1, 0.5, 80), (64, 1.5, 2, 80), (65, 1.5, 2, 80)])
    fs = stats.file_stats(score, key=False)
    bins = list(stats.HISTOGRAM_CENTRES)
    lengths = dict(zip(bins, fs.histograms["note_length"].tolist(), strict=True))
    assert lengths[1.0] == 1 and lengths[0.5] == 1 and lengths[2.0] == 2
    iois = dict(zip(bins, fs.histograms["ioi"].tolist(), strict=True))  # onsets 0, 1, 1.5
    assert iois[1.0] == 1 and iois[0.5] == 1 and sum(iois.values()) == 2


def test_key_from_music21():
    cadence = [(60, 0, 2, 80), (64, 0, 2, 80), (67, 0, 2, 80), (65, 2, 1, 80), (69, 2, 1, 80)]
    cadence += [(67, 3, 1, 80), (71, 3, 1, 80), (62, 3, 1, 80), (60, 4, 4, 80), (64, 4, 4, 80)]
    assert stats.file_stats(make_score(cadence)).key == "C major"


def test_empty_score_is_an_error():
    with pytest.raises(EmptyMusicError):
        stats.file_stats(make_score([]))


# ----------------------------------------------------------------------------- parts


def band_score(kicks_per_bar=4, bass_low=36):
    """Two 4/4 bars: a piano part of one held triad (60, 64, 67; 4 quarters), a bass of
    eight quarters from `bass_low` up a semitone each, a second piano playing one note
    (72), and a drum part; per bar `kicks_per_bar` kicks (36), two snares (38) and
    eight closed hi-hats (42) on the eighths."""
    piano = Part(0, make_notes([(60, 0, 4, 80), (64, 0, 4, 80), (67, 0, 4, 80)]), "Piano")
    piano2 = Part(1, make_notes([(72, 4, 2, 80)]), "Piano 2")
    bass = Part(33, make_notes([(bass_low + i, i, 1, 80) for i in range(8)]), "Bass")
    hits = []
    for bar in (0, 4):
        hits += [(36, bar + i * 4 / kicks_per_bar, 0.25, 100) for i in range(kicks_per_bar)]
        hits += [(38, bar + 1, 0.25, 100), (38, bar + 3, 0.25, 100)]
        hits += [(42, bar + i / 2, 0.25, 60) for i in range(8)]
    drums = Part(DRUM_PROGRAM, make_notes(hits), "Drums")
    parts = [piano, bass, drums, piano2]
    return Score(parts=parts)


def test_part_statistics_per_family():
    parts = stats.part_stats(band_score())
    assert list(parts) == ["piano", "bass", "drums"]  # General MIDI order, drums last
    assert parts["piano"] == {
        "parts": 2,
        "notes": 4,
        "lowest": 60,
        "highest": 72,
        "polyphony": pytest.approx((3.0 + 1.0) / 2),  # the triad's part and the lone note's
        "chord_onsets": 0.5,  # the triad's one onset is a chord, the lone note's is not
        "notes_per_bar": 2,
        "longest": 4,  # the triad, held a whole bar
    }
    assert parts["bass"] == {
        "parts": 1,
        "notes": 8,
        "lowest": 36,
        "highest": 43,
        "polyphony": 1,
        "chord_onsets": 0,
        "notes_per_bar": 4,
        "longest": 1,
    }
    # per bar 4 kicks + 2 snares + 8 hats = 14 hits, over 2 bars
    assert parts["drums"] == pytest.approx(
        {
            "parts": 1,
            "hits": 28,
            "hits_per_bar": 14,
            "kick_share": 4 / 14,
            "snare_share": 2 / 14,
            "hat_share": 8 / 14,
            "cymbal_share": 0,
            "off_kit_share": 0,
        }
    )


def test_score_without_parts_is_one_pitched_part_plus_drums():
    drums = make_notes([(36, 0, 0.5, 100), (46, 1, 0.5, 100), (49, 1.5, 0.5, 100)])
    score = Score.of(make_notes([(60, 0, 1, 80), (67, 1, 1, 80)]), drums=drums, program=40)
    parts = stats.file_stats(score, key=False).parts
    assert list(parts) == ["strings", "drums"]
    assert parts["strings"]["notes"] == 2 and parts["strings"]["highest"] == 67
    assert parts["drums"]["hits_per_bar"] == 3  # one bar
    assert parts["drums"]["kick_share"] == pytest.approx(1 / 3)
    assert parts["drums"]["snare_share"] == 0
    assert parts["drums"]["hat_share"] == pytest.approx(1 / 3)  # 46; the crash (49) is none
    assert parts["drums"]["cymbal_share"] == pytest.approx(1 / 3)  # the crash
    assert list(stats.file_stats(make_score([(60, 0, 1, 80)]), key=False).parts) == ["piano"]


def test_drums_only_piece_has_parts_but_no_pitched_statistics():
    drums = Part(DRUM_PROGRAM, make_notes([(36, q, 0.25, 100) for q in range(8)]))
    fs = stats.file_stats(Score(parts=[drums]), "beat.mid", key=False)
    counts = {"notes": 8.0, "notes_per_bar": 4.0}  # every note counts, drums included
    assert {k: v for k, v in fs.values.items() if k in counts} == counts
    assert all(math.isnan(v) for k, v in fs.values.items() if k not in counts)
    assert fs.parts["drums"]["hits_per_bar"] == 4 and fs.parts["drums"]["kick_share"] == 1
    assert fs.metre == "4/4" and fs.key is None
    assert fs.to_dict()["pitch_range"] is None  # JSON-safe
    # the set still measures it, and the copy check has nothing pitched to find
    both = _set([band_score(), Score(parts=[drums])])
    assert both.summary()["parts"]["drums"]["files"] == 2
    assert stats.compare(both, both)["copy"]["files"][1]["copy_notes"] == 0


def test_set_summary_per_family():
    summary = _set([band_score(kicks_per_bar=4), band_score(kicks_per_bar=2, bass_low=40)])
    parts = summary.summary()["parts"]
    assert list(parts) == ["piano", "bass", "drums"]
    assert parts["bass"]["files"] == 2
    assert parts["bass"]["lowest"] == {"mean": 38.0, "std": 2.0}
    assert parts["drums"]["hits_per_bar"]["mean"] == pytest.approx((14 + 12) / 2)
    assert parts["drums"]["kick_share"]["mean"] == pytest.approx((4 / 14 + 2 / 12) / 2)
    lone = _set([make_score([(60, 0, 1, 80)])]).summary()["parts"]
    assert lone == {
        "piano": {
            "files": 1,
            **{
                k: {"mean": v, "std": 0.0}
                for k, v in {
                    "parts": 1.0,
                    "notes": 1.0,
                    "lowest": 60.0,
                    "highest": 60.0,
                    "polyphony": 1.0,
                    "chord_onsets": 0.0,
                    "notes_per_bar": 1.0,
                    "longest": 1.0,
                }.items()
            },
        }
    }


def test_compare_parts_of_two_sets():
    band = [band_score(kicks_per_bar=4, bass_low=36 + i) for i in range(4)]
    same = stats.compare(_set(band), _set(band))
    assert list(same["parts"]) == ["piano", "bass", "drums"]
    assert all(v == pytest.approx(1.0) for fam in same["parts"].values() for v in fam.values())
    assert same["parts_only"] == {"set": [], "reference": []}
    # the reference: bass two octaves higher, half the kicks, no piano, a string part
    other = []
    for i in range(4):
        score = band_score(kicks_per_bar=2, bass_low=60 + i)
        score.parts = [p for p in score.parts if p.program > 7] + [
            Part(40, make_notes([(55, 0, 8, 70)]), "Violin")
        ]
        other.append(score)
    different = stats.compare(_set(band), _set(other))
    assert list(different["parts"]) == ["bass", "drums"]  # the families both sets have
    assert different["parts_only"] == {"set": ["piano"], "reference": ["strings"]}
    bass, drums = different["parts"]["bass"], different["parts"]["drums"]
    assert bass["lowest"] < 0.05 and bass["highest"] < 0.05
    assert bass["notes"] == pytest.approx(1.0) and bass["polyphony"] == pytest.approx(1.0)
    assert drums["kick_share"] < 0.05 and drums["hits_per_bar"] < 0.05
    assert drums["parts"] == pytest.approx(1.0)


def test_report_has_a_parts_line_per_family():
    band = [band_score(kicks_per_bar=4, bass_low=36 + 2 * i) for i in range(4)]
    alone = stats.report_lines(_set(band))
    block = alone[alone.index(next(line for line in alone if line.startswith("Parts"))) :]
    piano = next(line for line in block if line.strip().startswith("piano"))
    assert "4/4" in piano and "2.0 notes/bar, pitches 60-72, polyphony 2.00, chords 50%" in piano
    bass = next(line for line in block if line.strip().startswith("bass"))
    assert "4.0 notes/bar, pitches 39-46, polyphony 1.00, chords 0%" in bass  # lowest: mean 39
    drums = next(line for line in block if line.strip().startswith("drums"))
    assert "14.0 hits/bar: kick 29%, snare 14%, hat 57%, cymbals 0%, off-kit 0%" in drums
    strings = [make_score([(55, 0, 8, 70)], program=40)]
    a, b = _set(band, "band"), _set(strings, "strings")
    lines = stats.report_lines(a, b, stats.compare(a, b))
    for fam in ("piano", "bass", "drums", "strings"):
        line = next(line for line in lines if line.strip().startswith(fam + " "))
        assert line.rstrip().endswith("-")  # no family in both sets: no overlap
    same = stats.report_lines(a, a, stats.compare(a, a))
    assert next(line for line in same if line.strip().startswith("drums")).endswith("1.00")
    # with a reference, one row per statistic of each family both sets have
    rows = {line[:28].strip(): line for line in same if line[:28].strip().count(" ") == 1}
    assert "bass chord_onsets" in rows and rows["bass chord_onsets"].endswith("1.00")
    assert "drums cymbal_share" in rows and "drums off_kit_share" in rows


# ----------------------------------------------------------------------------- comparing


def test_kde_overlap():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 200)
    assert stats.kde_overlap(a, a) == pytest.approx(1.0)
    assert stats.kde_overlap(a, a + 20) < 0.01
    assert 0.3 < stats.kde_overlap(a, a + 1) < 0.8
    assert stats.kde_overlap(np.ones(5), np.ones(3)) == pytest.approx(1.0)
    assert math.isnan(stats.kde_overlap(a, np.array([])))


def test_copy_of_a_reference_is_found_whole():
    reference = [scale_score(), make_score([(72, 0, 0.5, 80), (74, 0.5, 0.5, 80)])]
    shifted = make_score([(p, 0.5 + i, 1, 80) for i, p in enumerate(C_MAJOR)])  # off the beat
    result = stats.copy_check([scale_score(), shifted], reference, ["scale.mid", "other.mid"])
    for item in result:
        assert item["copy_notes"] == 7 == item["notes"]
        assert item["copy_bars"] == pytest.approx(7 / 4)
        assert item["source"] == "scale.mid"


def test_copy_check_finds_the_longest_shared_stretch():
    reference = [make_score([(p, i, 1, 80) for i, p in enumerate([50, 52, 53] + C_MAJOR[:4])])]
    # C D E F copied, then a different continuation, then a stray A
    piece = make_score([(p, i, 1, 80) for i, p in enumerate([60, 62, 64, 65, 40, 69])])
    (item,) = stats.copy_check([piece], reference)
    assert item["copy_notes"] == 4
    assert item["copy_bars"] == pytest.approx(1.0)
    # a different rhythm is not a copy: same pitches, halved durations and spacing
    halved = make_score([(p, i / 2, 0.5, 80) for i, p in enumerate(C_MAJOR)])
    assert stats.copy_check([halved], [scale_score()])[0]["copy_notes"] == 0


def _set(scores, root="set"):
    files = [stats.file_stats(s, f"{i}.mid", key=False) for i, s in enumerate(scores)]
    return stats.SetStats(root, files, list(scores))


def test_compare_identical_and_different_sets():
    rng = np.random.default_rng(3)
    melodies = [
        make_score([(int(rng.choice(C_MAJOR)), i, 1, 80) for i in range(16)]) for _ in range(6)
    ]
    chords = [make_score([(48 + 7 * k, 0, 8, 80) for k in range(4 + i % 2)]) for i in range(6)]
    same = stats.compare(_set(melodies), _set(melodies))
    assert all(v == pytest.approx(1.0) for v in same["overlap"].values() if v is not None)
    assert same["copy"]["max_notes"] == 16 and same["copy"]["max_bars"] == pytest.approx(4.0)
    different = stats.compare(_set(melodies), _set(chords))
    assert different["overlap"]["polyphony"] < 0.05
    assert different["overlap"]["note_length"] == 0.0  # quarters vs eight-quarter notes
    assert different["copy"]["max_notes"] == 0


def test_collect_reads_a_folder_and_reports_skips(tmp_path):
    write_test_midi(tmp_path / "a.mid", [Track([(p, i, 1, 80) for i, p in enumerate(C_MAJOR)])])
    (tmp_path / "sub").mkdir()
    write_test_midi(tmp_path / "sub" / "b.MID", [Track([(60, 0, 4, 80), (64, 0, 4, 80)])])
    (tmp_path / "junk.mid").write_bytes(b"not a midi file")
    (tmp_path / "notes.txt").write_text("ignored")
    result = stats.collect(tmp_path, key=False)
    assert [f.path for f in result.files] == ["a.mid", "sub/b.MID"]
    assert [p for p, _ in result.skipped] == ["junk.mid"]
    summary = result.summary()
    assert summary["files"] == 2
    assert summary["stats"]["polyphony"]["mean"] == pytest.approx(1.5)
    assert summary["stats"]["polyphony"]["std"] == pytest.approx(0.5)


def test_each_tune_of_an_abc_collection_is_measured(tmp_path):
    from tests.test_midi_io import TUNES

    (tmp_path / "tunes.abc").write_text(TUNES)  # three tunes, one of them rests only
    result = stats.collect(tmp_path, key=False)
    assert [f.path for f in result.files] == ["tunes.abc#1", "tunes.abc#2"]
    assert [f.values["notes"] for f in result.files] == [4.0, 7.0]


def test_collect_errors(tmp_path):
    from musicgen.errors import UsageError, UserError

    with pytest.raises(UsageError):
        stats.collect(tmp_path / "missing")
    with pytest.raises(UserError):
        stats.collect(tmp_path)


def test_stats_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, musicgen.stats, musicgen.ngram; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- command line


def _folder(path, pieces):
    path.mkdir()
    for i, notes in enumerate(pieces):
        write_test_midi(path / f"{i}.mid", [Track(notes)])
    return path


def test_stats_command_compares_two_folders(tmp_path):
    import json

    from click.testing import CliRunner

    from musicgen.cli import main

    scale = [(p, i, 1, 80) for i, p in enumerate(C_MAJOR)]
    generated = _folder(tmp_path / "gen", [scale, [(60, 0, 4, 80), (64, 0, 4, 80)]])
    reference = _folder(
        tmp_path / "ref", [[(50, 0, 1, 80)] + [(p, i + 1, 1, 80) for i, p in enumerate(C_MAJOR)]]
    )
    out = tmp_path / "stats.json"
    result = CliRunner().invoke(
        main,
        [
            "stats",
            str(generated),
            "--reference",
            str(reference),
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "plots"),
            "--no-key",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "polyphony" in result.output and "overlap" in result.output
    assert "worst: 0.mid: 1.8 bars, 7 of 7 notes, from 0.mid" in result.output
    data = json.loads(out.read_text())
    assert data["set"]["files"] == 2 and data["reference"]["files"] == 1
    assert data["comparison"]["copy"]["max_notes"] == 7
    # a row per statistic of the family both sets have (piano), with its overlap
    row = next(line for line in result.output.splitlines() if line.startswith("piano chord_onsets"))
    overlap = data["comparison"]["parts"]["piano"]["chord_onsets"]
    assert 0 <= overlap < 1 and row.endswith(f"{overlap:.2f}")  # a chord in one piece of 2
    assert [f["path"] for f in data["set"]["per_file"]] == ["0.mid", "1.mid"]
    assert (tmp_path / "plots" / "stats.png").stat().st_size > 1000


def test_stats_command_errors(tmp_path):
    from click.testing import CliRunner

    from musicgen.cli import main

    missing = CliRunner().invoke(main, ["stats", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(main, ["stats", str(tmp_path / "empty")])
    assert empty.exit_code == 1 and "no usable music file" in empty.output


# ----------------------------------------------------------------------------- pictures


def test_piano_roll_and_history_pictures(tmp_path):
    from musicgen import plots

    roll = plots.plot_piano_roll(scale_score(), tmp_path / "roll.png", "C major")
    assert roll.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    band = band_score()  # Piano, Bass, Drums, Piano 2: a colour and a legend entry each
    assert [label for label, _ in plots.roll_layers(band)] == ["Piano", "Bass", "Drums", "Piano 2"]
    unnamed = Score(parts=[Part(0, []), Part(0, make_notes([(60, 0, 1, 80)]))])
    assert [label for label, _ in plots.roll_layers(unnamed)] == ["Part 2"]  # no empty layer
    band_roll = plots.plot_piano_roll(band, tmp_path / "band.png")
    assert band_roll.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def height(png):  # the PNG header's image height, pixels
        return int.from_bytes(png.read_bytes()[20:24], "big")

    # a lane per part: four lanes stand three lanes taller than one (at least half of
    # LANE_INCHES each at 100 dpi, once the margins are cropped)
    assert height(band_roll) - height(roll) > 3 * plots.LANE_INCHES * 100 / 2
    history = tmp_path / "history.csv"
    history.write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n1,0.3,2.5,0.35,2.3\n2,0.4,2,0.4,2\n"
    )
    curves = plots.plot_history(history, tmp_path / "sub" / "curves.png")
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.read_history(history)["val_loss"].tolist() == [2.3, 2.0]
    from musicgen.errors import UserError

    with pytest.raises(UserError, match="cannot read"):
        plots.plot_history(tmp_path / "missing.csv", tmp_path / "x.png")


def test_chord_onsets_and_off_kit_notes():
    chordal = make_notes([(36, 0, 1, 80), (43, 0, 1, 80), (38, 1, 1, 80), (40, 2, 1, 80)])
    assert stats.chord_onset_share(chordal) == pytest.approx(1 / 3)  # 3 onsets, 1 a chord
    assert math.isnan(stats.chord_onset_share([]))
    assert stats.off_kit([34, 35, 81, 82, 127]) == 3
    drums = Part(DRUM_PROGRAM, make_notes([(36, 0, 1, 100), (27, 1, 1, 100), (51, 2, 1, 100)]))
    parts = stats.part_stats(Score(parts=[drums]))
    assert parts["drums"]["off_kit_share"] == pytest.approx(1 / 3)
    assert parts["drums"]["cymbal_share"] == pytest.approx(1 / 3)  # the ride


def test_stats_and_generate_count_the_same_notes_drums_included(tmp_path):
    """One note count everywhere: what `generate` reports for a piece with drums is what
    `stats` measures of its file, and both say the drums are counted."""
    from click.testing import CliRunner

    from musicgen.cli import main
    from musicgen.generate import generate
    from musicgen.midi_io import read_score
    from tests.test_arrange import band

    checkpoint = band(tmp_path / "band", "steps")
    files = generate(checkpoint, tmp_path / "out", num=2, bars=2, instruments="bass,drums")
    measured = stats.collect(tmp_path / "out")
    by_name = {Path(f.path).name: f.values["notes"] for f in measured.files}
    for f in files:
        read = read_score(f.path, allow_drums_only=True)
        assert any(p.is_drum and p.notes for p in read.parts)  # the count has drums to count
        assert f.notes == read.note_count == by_name[f.path.name]
        assert f"{f.notes} notes (drums included)" in f.summary()
    result = CliRunner().invoke(main, ["stats", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert any(x.startswith("notes (drums incl.)") for x in result.output.splitlines())
