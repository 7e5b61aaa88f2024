"""accompany, infill and harmonize on a `steps` checkpoint (the default encoding) keep
100% of the user's notes in the written MIDI - pitch, onset, duration, velocity,
program, track name - on random multi-part songs with chords, overlaps, drums, tempo
and metre changes, and infill windows anywhere."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicgen.arrange import accompany, harmonize, infill
from musicgen.config import SampleConfig
from musicgen.midi_io import read_score, write_midi
from musicgen.score import MusicError, Score
from tests.test_arrange import band
from tests.test_keep import songs

SLOW_OK = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def tracks_of(path) -> dict[str, tuple[int, list[tuple]]]:
    """Track name -> (program, notes as (pitch, start, end, velocity))."""
    return {
        p.name: (p.program, [(n.pitch, n.start, n.end, n.velocity) for n in p.notes])
        for p in read_score(path, allow_drums_only=True).parts
    }


def song_file(folder, song: Score):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "song.mid"
    write_midi(song, path)
    return path


_CHECKPOINT: dict = {}


def steps_checkpoint(tmp_path_factory):
    """The untrained steps band, its parts held to profiles that let every note go after
    half a quarter note (a sampler that cut a kept note would show here)."""
    if "steps" not in _CHECKPOINT:
        from musicgen import checkpoint as ckpt

        folder = band(tmp_path_factory.mktemp("steps") / "band", "steps")
        config, meta = ckpt.read_config(folder)
        short = {"low": 0, "high": 127, "cap": 4, "sustain": 0.5}
        profiles = {name: short for name in ("piano", "guitar", "bass")}
        data = {**meta["data"], "profiles": profiles}
        ckpt.save_config(folder, config, meta["vocab_size"], data)
        _CHECKPOINT["steps"] = folder
    return _CHECKPOINT["steps"]


@SLOW_OK
@given(song=songs(), add=st.sampled_from(["bass", "guitar,bass", "drums"]), seed=st.integers(0, 9))
def test_accompany_keeps_every_note(tmp_path_factory, song, add, seed):
    folder = tmp_path_factory.mktemp("a")
    path = song_file(folder, song)
    before = tracks_of(path)
    force = "drums" in add  # a song with drums gets new ones only with force
    if force:
        before = {k: v for k, v in before.items() if v[0] != 128}
    (out,) = accompany(
        steps_checkpoint(tmp_path_factory),
        path,
        add,
        folder / "out",
        force=force,
        sample=SampleConfig(seed=seed),
    )
    after = tracks_of(out.path)
    for name, kept in before.items():
        assert after[name] == kept


@SLOW_OK
@given(data=st.data())
def test_infill_keeps_every_note_outside_the_window(tmp_path_factory, data):
    song = data.draw(songs())
    folder = tmp_path_factory.mktemp("i")
    path = song_file(folder, song)
    before = tracks_of(path)
    read = read_score(path, allow_drums_only=True)
    from musicgen.arrange import _Context, bar_starts

    context = _Context.open(steps_checkpoint(tmp_path_factory), "auto")
    starts = bar_starts(context.encoding, read)
    first = data.draw(st.integers(1, len(starts)))
    last = data.draw(st.integers(first, len(starts)))
    names = sorted(before)
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    out = infill(
        steps_checkpoint(tmp_path_factory),
        path,
        f"{first}-{last}",
        folder / "out",
        tracks=",".join(chosen),
        candidates=2,
        sample=SampleConfig(seed=data.draw(st.integers(0, 9))),
    )[0]
    a = starts[first - 1]
    b = starts[last] if last < len(starts) else float("inf")
    try:
        after = tracks_of(out.path)
    except MusicError:  # every note was in the window and the model wrote none
        after = {}
    for name, (program, notes) in before.items():
        if name not in after:  # a rewritten part left with no note is not written
            assert name in chosen and all(a <= n[1] < b for n in notes)
            continue
        assert after[name][0] == program
        if name in chosen:
            outside = [n for n in after[name][1] if not a <= n[1] < b]
            assert outside == [n for n in notes if not a <= n[1] < b]
        else:
            assert after[name][1] == notes


@SLOW_OK
@given(song=songs(), seed=st.integers(0, 9))
def test_harmonize_keeps_every_note(tmp_path_factory, song, seed):
    folder = tmp_path_factory.mktemp("h")
    path = song_file(folder, song)
    before = tracks_of(path)
    (out,) = harmonize(
        steps_checkpoint(tmp_path_factory),
        path,
        folder / "out",
        voices=2,
        sample=SampleConfig(seed=seed),
    )
    after = tracks_of(out.path)
    for name, kept in before.items():
        assert after[name] == kept
