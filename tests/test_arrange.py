"""accompany / infill planning: the user's notes stay, new notes only where free."""

from __future__ import annotations

import numpy as np
import pytest

from musicgen.config import EncodingConfig
from musicgen.encoding.tracks import TracksEncoding, canonical_parts
from musicgen.keep_tracks import TracksKeepGrammar
from musicgen.score import DRUM_PROGRAM, Note, Part, Score
from musicgen.songplan import plan_song

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
    grammar = TracksKeepGrammar(enc.grammar(len(plan.bars)), enc, plan)
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


# ----------------------------------------------------------------------------- the commands


def band(folder, name: str):
    """An untrained checkpoint of `name` encoding that knows piano, guitar, bass, drums."""
    from musicgen import checkpoint as ckpt
    from tests.music import untrained_checkpoint

    folder = untrained_checkpoint(folder, EncodingConfig(name=name, controls=True))
    config, meta = ckpt.read_config(folder)
    known = {"0": 3, "29": 2, "33": 5, "128": 4}  # piano, guitar, bass, drums
    ckpt.save_config(folder, config, meta["vocab_size"], {"data_dir": "none", "programs": known})
    return folder


@pytest.fixture(scope="module")
def band_checkpoint(tmp_path_factory):
    return band(tmp_path_factory.mktemp("band") / "band", "tracks")


@pytest.fixture(scope="module", params=["steps", "tracks"])
def keeping_checkpoint(request, tmp_path_factory):
    """A checkpoint of each encoding that keeps songs: steps (the default) and tracks."""
    return band(tmp_path_factory.mktemp(request.param) / "band", request.param)


@pytest.fixture
def song_file(tmp_path):
    from musicgen.midi_io import write_midi

    path = tmp_path / "song.mid"
    write_midi(song(4), path)
    return path


def notes_by_track(path):
    from musicgen.midi_io import read_score

    return {
        p.name: [(n.pitch, n.start, n.end, n.velocity) for n in p.notes]
        for p in read_score(path, allow_drums_only=True).parts
    } | {f"program:{p.name}": p.program for p in read_score(path, allow_drums_only=True).parts}


def test_accompany_writes_every_user_note_and_the_new_parts(
    keeping_checkpoint, song_file, tmp_path
):
    from musicgen.arrange import accompany
    from musicgen.config import SampleConfig
    from tests.music import assert_arrangement_ready

    before = notes_by_track(song_file)
    out = accompany(
        keeping_checkpoint,
        song_file,
        "drums,bass",
        tmp_path / "out",
        num=2,
        sample=SampleConfig(seed=3),
    )
    assert [a.path.name for a in out] == ["song-accompany-3-01.mid", "song-accompany-3-02.mid"]
    for a in out:
        _, tracks = assert_arrangement_ready(a.path, 16.0)
        names = [t[0] for t in tracks]
        assert names == ["Melody", "My bass", "Bass 2", "Drums"]  # the second bass part
        assert tracks[3][1] == 9 and all(t[1] != 9 for t in tracks[:3])  # drums on channel 10 only
        after = notes_by_track(a.path)
        for name in ("Melody", "My bass"):
            assert (
                after[name] == before[name]
                and after[f"program:{name}"] == before[f"program:{name}"]
            )
    again = accompany(
        keeping_checkpoint,
        song_file,
        "drums,bass",
        tmp_path / "again",
        num=2,
        sample=SampleConfig(seed=3),
    )
    assert [a.path.read_bytes() for a in again] == [a.path.read_bytes() for a in out]


def test_accompany_bad_requests(band_checkpoint, song_file, tmp_path):
    from musicgen.arrange import accompany
    from musicgen.errors import UsageError, UserError
    from musicgen.midi_io import write_midi

    with pytest.raises(UsageError, match="never saw brass; it knows: piano, guitar, bass, drums"):
        accompany(band_checkpoint, song_file, "brass", tmp_path)
    with pytest.raises(UsageError, match="unknown instrument 'kazoo'"):
        accompany(band_checkpoint, song_file, "kazoo", tmp_path)
    drummed = tmp_path / "drummed.mid"
    s = song(2)
    s.parts.append(Part(DRUM_PROGRAM, [note(36, 0, 0.25)], "My kit"))
    write_midi(s, drummed)
    with pytest.raises(UsageError, match="already has drums; force=True replaces them"):
        accompany(band_checkpoint, drummed, "drums", tmp_path)
    (replaced,) = accompany(band_checkpoint, drummed, "drums", tmp_path, force=True)
    assert "My kit" not in notes_by_track(replaced.path)
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"MThd")
    with pytest.raises(UserError, match="cannot use"):
        accompany(band_checkpoint, empty, "bass", tmp_path)


def test_infill_keeps_everything_outside_the_bars(keeping_checkpoint, song_file, tmp_path):
    from musicgen.arrange import infill
    from musicgen.config import SampleConfig

    before = notes_by_track(song_file)
    out = infill(
        keeping_checkpoint,
        song_file,
        "2-3",
        tmp_path,
        tracks="melody",
        num=2,
        candidates=3,
        sample=SampleConfig(seed=1),
    )
    for a in out:
        after = notes_by_track(a.path)
        assert after["My bass"] == before["My bass"]  # not named: kept whole
        outside = [n for n in after["Melody"] if not 4.0 <= n[1] < 12.0]
        assert outside == [n for n in before["Melody"] if not 4.0 <= n[1] < 12.0]
        assert a.score is not None and a.score < 0
    again = infill(
        keeping_checkpoint,
        song_file,
        "2-3",
        tmp_path / "b",
        tracks="melody",
        num=2,
        candidates=3,
        sample=SampleConfig(seed=1),
    )
    assert [a.path.read_bytes() for a in again] == [a.path.read_bytes() for a in out]


def test_infill_rewrites_the_parts_that_play_in_the_bars_in_their_register(
    keeping_checkpoint, tmp_path
):
    """By default only the parts that sound in the bars are rewritten: a bass that rests
    in bars 3-4 keeps resting; the melody's new notes stay in the melody's register."""
    from musicgen.arrange import infill
    from musicgen.config import SampleConfig
    from musicgen.midi_io import write_midi

    s = song(4)
    s.parts[1] = Part(33, [n for n in s.parts[1].notes if n.end <= 8.0], "My bass")
    path = tmp_path / "resting.mid"
    write_midi(s, path)
    before = notes_by_track(path)
    out = infill(
        keeping_checkpoint, path, "3-4", tmp_path / "o", num=2, candidates=2,
        sample=SampleConfig(seed=3, temperature=1.5),
    )  # fmt: skip
    low, high = 72 - 2, 76 + 2  # the melody's own range, two semitones wider
    for a in out:
        assert a.written == ["Melody"] and a.kept == ["My bass"]
        after = notes_by_track(a.path)
        assert after["My bass"] == before["My bass"]  # rests in bars 3-4, kept resting
        assert all(low <= n[0] <= high for n in after["Melody"] if n[1] >= 8.0)
    named = infill(
        keeping_checkpoint, path, "3-4", tmp_path / "n", tracks="melody,bass", candidates=1
    )[0]
    assert sorted(named.written) == ["Melody", "My bass"]  # named: rewritten even resting


def test_infill_bad_requests(band_checkpoint, song_file, tmp_path):
    from musicgen.arrange import infill
    from musicgen.errors import UsageError
    from musicgen.midi_io import write_midi

    with pytest.raises(UsageError, match="the song has 4 bars"):
        infill(band_checkpoint, song_file, "3-9", tmp_path)
    with pytest.raises(UsageError, match="bars=.x.: bars go from A to B"):
        infill(band_checkpoint, song_file, "x", tmp_path)
    with pytest.raises(UsageError, match="no part 'violin' in the song; it has Melody"):
        infill(band_checkpoint, song_file, "1-2", tmp_path, tracks="violin")
    silent = tmp_path / "silent.mid"
    solo = Part(0, [note(60, 0, 4), note(62, 12, 4)], "Solo")
    write_midi(Score(parts=[solo], end=16.0), silent)
    with pytest.raises(UsageError, match="no part plays in bars 3-3; .* with tracks=$"):
        infill(band_checkpoint, silent, "3", tmp_path)


def test_cli_accompany_and_infill(keeping_checkpoint, song_file, tmp_path):
    from click.testing import CliRunner

    from musicgen.cli import main

    base = ["--checkpoint", str(keeping_checkpoint), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(main, ["accompany", str(song_file), "--add", "drums", *base])
    assert result.exit_code == 0, result.output
    assert "song-accompany-0-01.mid" in result.output and "wrote Drums" in result.output
    result = CliRunner().invoke(main, ["accompany", str(song_file), "--add", "tuba", *base])
    assert result.exit_code == 2 and "unknown instrument" in result.output
    result = CliRunner().invoke(
        main, ["infill", str(song_file), "--bars", "2-2", "--candidates", "2", *base]
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["infill", str(song_file), "--bars", "5-6", *base])
    assert result.exit_code == 2 and "the song has 4 bars" in result.output


def test_new_notes_leave_every_kept_note_whole():
    from musicgen.songplan import fit_around

    kept = [note(60, 0, 4), note(62, 6, 2)]
    new = [note(60, 2, 1), note(62, 4, 4), note(64, 4, 1), note(60, 4, 1)]
    got = [(n.pitch, n.start, n.end) for n in fit_around(kept, new)]
    assert got == [(62, 4.0, 6.0), (64, 4.0, 5.0), (60, 4.0, 5.0)]


def test_the_python_api_returns_arrangements_without_writing(
    keeping_checkpoint, song_file, tmp_path
):
    import musicgen

    model = musicgen.load(keeping_checkpoint)
    (song,) = model.accompany(song_file, add=["drums"], seed=2)
    assert any(i.is_drum for i in song.instruments) and len(song.instruments) == 3
    (fill,) = model.infill(song_file, bars=(2, 3), candidates=2, seed=2)
    assert len(fill.instruments) == 2
    assert list(tmp_path.iterdir()) == [song_file]


def test_generate_instruments_are_kept_and_checked(band_checkpoint, tmp_path):
    from musicgen.errors import UsageError
    from musicgen.generate import generate
    from tests.music import assert_arrangement_ready, untrained_checkpoint

    files = generate(
        band_checkpoint, tmp_path / "g", num=3, bars=2, instruments="bass,drums,guitar"
    )
    for f in files:
        _, tracks = assert_arrangement_ready(f.path)  # an untrained model picks any metre
        assert [(name, channel == 9) for name, channel, _ in tracks] == [
            ("Guitar", False),
            ("Bass", False),
            ("Drums", True),
        ]
        assert tracks[0][2] == 29 and tracks[1][2] == 33  # the only guitar and bass it knows
    with pytest.raises(UsageError, match="never saw brass; it knows: piano, guitar, bass, drums"):
        generate(band_checkpoint, tmp_path / "b", num=1, bars=1, instruments="brass")
    with pytest.raises(UsageError, match="program=5 sets .* use instruments= here"):
        generate(band_checkpoint, tmp_path / "p", num=1, bars=1, program=5)
    remi = untrained_checkpoint(tmp_path / "remi", EncodingConfig(name="remi"))
    with pytest.raises(UsageError, match="needs a multi-track"):
        generate(remi, tmp_path / "r", num=1, bars=1, instruments="bass")


def test_a_piece_whose_asked_part_is_silent_is_drawn_again(band_checkpoint, monkeypatch):
    from musicgen import generate as gen

    request = gen.GenerateRequest(num=8, bars=1, instruments="guitar,bass,drums")

    def draw(redraws):
        monkeypatch.setattr(gen, "SILENT_PART_DRAWS", redraws)
        notes: list[str] = []
        return gen.sample_pieces(band_checkpoint, request, on_note=notes.append), notes

    first, _ = draw(0)
    final, notes = draw(3)
    silent_first = [i for i, piece in enumerate(first) if gen._silent_parts(piece)]
    assert silent_first  # an untrained model leaves some asked part silent in one bar
    for i, (before, after) in enumerate(zip(first, final, strict=True)):
        if i not in silent_first:
            assert after.ids == before.ids  # the other pieces are not drawn again
        elif gen._silent_parts(after):
            assert any(line.startswith(f"piece {i + 1}: ") for line in notes)
        else:
            assert after.ids != before.ids
    assert len(notes) < len(silent_first)  # redrawing gave some of them every part


def test_a_drawn_part_that_stays_silent_is_left_out_without_a_second_pass(
    keeping_checkpoint, tmp_path, monkeypatch
):
    import shutil

    import mido

    from musicgen import checkpoint as ckpt
    from musicgen import generate as gen
    from musicgen.instruments import track_names

    folder = shutil.copytree(keeping_checkpoint, tmp_path / "drawing")
    config, meta = ckpt.read_config(folder)
    data = meta["data"] | {"lineups": {"guitar,guitar,bass,drums": 3, "drums": 9}}
    ckpt.save_config(folder, config, meta["vocab_size"], data)  # draws that band
    sample = gen.sample_ids

    def run(request):
        passes, notes = [], []

        def counted(model, grammars, *args, **kwargs):
            passes.append(len(grammars))
            return sample(model, grammars, *args, **kwargs)

        monkeypatch.setattr(gen, "sample_ids", counted)
        return gen.sample_pieces(folder, request, on_note=notes.append), passes, notes

    monkeypatch.setattr(gen, "SILENT_PART_DRAWS", 0)  # the asked line-up's first pass alone
    first, _, _ = run(gen.GenerateRequest(num=8, bars=1, instruments="guitar,guitar,bass,drums"))
    monkeypatch.setattr(gen, "SILENT_PART_DRAWS", 3)
    drawn, passes, notes = run(gen.GenerateRequest(num=8, bars=1))
    assert [i for i, piece in enumerate(first) if gen._silent_parts(piece)]  # some part silent

    def band(piece):
        return any(part.notes and not part.is_drum for part in piece.score.parts)

    # one pass for the batch, redraws included; only the pieces in which no pitched part
    # played are drawn again (a band that came out as drums alone), in their rows of the
    # same pass, and those still without one are told
    bandless = [i for i, piece in enumerate(first) if not band(piece)]
    assert bandless and passes == [8]
    unbanded = [i for i, piece in enumerate(drawn) if not band(piece)]
    assert set(unbanded) <= set(bandless) and len(notes) == len(unbanded)
    assert all("no pitched part played a note in 4 draws" in note for note in notes)
    for i, (before, after) in enumerate(zip(first, drawn, strict=True)):
        if i in bandless:
            continue
        assert after.ids == before.ids  # the same draw as the asked line-up's
        playing = [p for p in before.score.parts if p.notes] or before.score.parts
        # silent drawn parts left out (unless all are), the others named as what remains
        assert [(p.program, p.notes) for p in after.score.parts] == [
            (p.program, p.notes) for p in playing
        ]
        assert [p.name for p in after.score.parts] == track_names([p.program for p in playing])
    monkeypatch.setattr(gen, "sample_ids", sample)
    files = gen.generate(folder, tmp_path / "out", num=8, bars=1)
    for info, piece in zip(files, drawn, strict=True):
        tracks = mido.MidiFile(info.path).tracks[1:]  # after the conductor track
        assert [t.name for t in tracks] == [p.name for p in piece.score.parts]


@pytest.mark.parametrize("name", ["remi", "performance"])
def test_encodings_that_cannot_keep_a_song_are_refused_in_one_line(name, song_file, tmp_path):
    from musicgen import checkpoint as ckpt
    from musicgen.arrange import accompany, harmonize, infill
    from musicgen.config import RunConfig
    from musicgen.encoding import get_encoding
    from musicgen.errors import UsageError

    folder = tmp_path / name
    config = RunConfig(encoding=EncodingConfig(name=name))
    ckpt.save_config(folder, config, len(get_encoding(config.encoding).vocab), {})
    want = (
        f"uses the {name} encoding, which cannot keep a song; accompany, infill and harmonize "
        "need a checkpoint trained with --encoding steps \\(the default\\) or tracks"
    )
    for run in (
        lambda: accompany(folder, song_file, "bass", tmp_path / "a"),
        lambda: infill(folder, song_file, "1-2", tmp_path / "i"),
        lambda: harmonize(folder, song_file, tmp_path / "h"),
    ):
        with pytest.raises(UsageError, match=want) as caught:
            run()
        assert "\n" not in str(caught.value)


def test_every_arrangement_keeps_the_songs_keys_tempos_and_metre(keeping_checkpoint, tmp_path):
    """accompany, infill and harmonize write the song's key signatures, tempo map and
    time signatures back, as the song has them."""
    from musicgen.arrange import accompany, harmonize, infill
    from musicgen.midi_io import read_score, write_midi

    s = song(4)
    s.key_signatures = [(0.0, 2), (8.0, 21)]  # D major, then A minor
    s.time_signatures = [(0.0, 4, 4), (12.0, 3, 4)]
    path = tmp_path / "keyed.mid"
    write_midi(s, path)
    read = read_score(path)
    assert read.key_signatures == [(0.0, 2), (8.0, 21)]
    outs = [
        accompany(keeping_checkpoint, path, "drums", tmp_path / "a")[0],
        infill(keeping_checkpoint, path, "2-3", tmp_path / "i", candidates=1)[0],
        harmonize(keeping_checkpoint, path, tmp_path / "h", voices=1)[0],
    ]
    for out in outs:
        back = read_score(out.path, allow_drums_only=True)
        assert back.key_signatures == read.key_signatures
        assert back.tempos == read.tempos
        assert back.time_signatures == read.time_signatures
