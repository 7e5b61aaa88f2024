"""Each token's part as the network's second input (encoding/parts.py): the feature,
its token-by-token twin, the feed's packed windows, the model, checkpoints without it."""

import numpy as np

from musicgen.runtime import import_tensorflow

import_tensorflow()

from musicgen import checkpoint as ckpt  # noqa: E402
from musicgen.config import EncodingConfig, ModelConfig, RunConfig  # noqa: E402
from musicgen.encoding import BOS, get_encoding  # noqa: E402
from musicgen.encoding.parts import (  # noqa: E402
    PART_VALUES,
    PartTracker,
    pack,
    pack_stream,
    part_features,
    unpack,
)
from musicgen.encoding.remi import BAR, PITCH  # noqa: E402
from musicgen.encoding.tracks import DRUM, TRACK  # noqa: E402
from musicgen.feed import train_dataset, val_dataset  # noqa: E402
from musicgen.model import build_model  # noqa: E402
from musicgen.npmodel import NumpyRNN  # noqa: E402
from musicgen.score import DRUM_PROGRAM, Note, Part, Score  # noqa: E402

BASS, FLUTE = 33, 73
BASS_FAMILY, FLUTE_FAMILY, DRUMS = 5, 10, 17  # the features: General MIDI family + 1


def _score(shift: float = 0.0) -> Score:
    """A bass, a flute and drums over two bars."""
    bass = Part(BASS, [Note(36 + i % 5, i + shift, i + 1.0, 90) for i in range(8)])
    flute = Part(FLUTE, [Note(72 + i % 3, i + 0.5, i + 1.0, 70) for i in range(8)])
    drums = Part(
        DRUM_PROGRAM, [Note(36 + 2 * (i % 2), i / 2, i / 2 + 0.25, 100) for i in range(16)]
    )
    return Score(parts=[bass, flute, drums], tempos=[(0.0, 120.0)], time_signatures=[(0.0, 4, 4)])


def _encoding(name: str = "steps"):
    return get_encoding(EncodingConfig(name=name, include_drums=True))


def test_every_note_token_carries_its_parts_program():
    for name in ("steps", "tracks"):
        enc = _encoding(name)
        ids = enc.encode(_score()).ids
        features = part_features(ids, enc)
        kinds = np.array([enc.token_kind(int(i)) for i in ids])
        first_bar = int(np.flatnonzero(kinds == BAR)[0])
        assert (features[: first_bar + 1] == 0).all()  # the header and the first Bar
        pitches = {int(p) for p in features[kinds == PITCH]}
        assert pitches == {BASS_FAMILY, FLUTE_FAMILY}
        assert set(features[kinds == DRUM].tolist()) == {DRUMS}
        # a Track token already says its part
        for at in np.flatnonzero(kinds == TRACK):
            part = int(ids[at]) - enc.id_range[TRACK][0]
            assert features[at] == (BASS_FAMILY, FLUTE_FAMILY, DRUMS)[part]


def test_tracker_gives_the_streams_features_token_by_token():
    enc = _encoding()
    vocab = len(enc.vocab)
    pieces = [enc.encode(_score(s)).ids for s in (0.0, 0.5)]
    trimmed = enc.encode(Score(parts=[_score().parts[1]], tempos=[(0.0, 90.0)])).ids
    streams = [np.concatenate(pieces), np.concatenate([trimmed, pieces[1]])]
    length = min(len(s) for s in streams)
    tracker = PartTracker(enc, 2)
    got = np.stack([tracker.feed(np.array([s[t] for s in streams])) for t in range(length)], 1)
    for row, stream in enumerate(streams):
        np.testing.assert_array_equal(got[row], pack_stream(stream, enc)[:length])
    ids, features = unpack(got, vocab)
    np.testing.assert_array_equal(ids, np.stack([s[:length] for s in streams]))
    assert features.max() < PART_VALUES


def test_tracker_rows_keep_and_reset():
    enc = _encoding()
    ids = enc.encode(_score()).ids
    prefix = list(ids[:4])  # BOS and the three programs
    tracker = PartTracker(enc, 3)
    for token in prefix:
        tracker.feed(np.full(3, token))
    start = tracker.state(0)
    track = enc.id_range[TRACK][0]
    tracker.feed(np.array([track + 0, track + 1, track + 2]))
    tracker.keep([2, 0])  # the flute's row leaves; the drums' row comes first
    out = tracker.feed(np.array([track + 2, track + 0]))
    assert (unpack(out, len(enc.vocab))[1] == [DRUMS, BASS_FAMILY]).all()
    tracker.reset(1, start)
    assert unpack(tracker.feed(np.array([track + 2, BOS])), len(enc.vocab))[1].tolist() == [
        DRUMS,
        0,
    ]


def test_feed_packs_inputs_and_keeps_targets_plain():
    enc = _encoding()
    vocab = len(enc.vocab)
    files = [enc.encode(_score(s)).ids for s in (0.0, 0.5, 0.25)]
    ranges = enc.pitch_id_ranges()
    plain = train_dataset(files, 32, 4, 5, ranges, seed=3)
    packed = train_dataset(
        [pack_stream(f, enc) for f in files], 32, 4, 5, ranges, seed=3, vocab=vocab
    )
    for (pi, pt, pw), (qi, qt, qw) in zip(plain.take(3), packed.take(3), strict=True):
        ids, features = unpack(np.asarray(qi), vocab)
        np.testing.assert_array_equal(ids, np.asarray(pi))  # the same windows, transposed alike
        np.testing.assert_array_equal(np.asarray(qt), np.asarray(pt))
        np.testing.assert_array_equal(np.asarray(qw), np.asarray(pw))
        assert features.any()
    stream = np.concatenate(files)
    [(inputs, targets, _)] = list(
        val_dataset([pack_stream(stream, enc)], len(stream) - 1, 1, vocab=vocab).take(1)
    )
    np.testing.assert_array_equal(np.asarray(inputs)[0], pack_stream(stream, enc)[:-1])
    np.testing.assert_array_equal(np.asarray(targets)[0], stream[1:])


def test_the_network_hears_the_part_and_numpy_agrees(tmp_path):
    enc = _encoding()
    vocab = len(enc.vocab)
    config = ModelConfig(cell="gru", layers=1, units=8, embedding_dim=6)
    model = build_model(config, vocab)
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype("float32"))
    ids = np.asarray(enc.encode(_score()).ids, np.int32)[None, :40]
    as_bass = pack(ids, np.full_like(ids, BASS_FAMILY), vocab)
    as_flute = pack(ids, np.full_like(ids, FLUTE_FAMILY), vocab)
    assert not np.allclose(model(as_bass).numpy(), model(as_flute).numpy())
    ckpt.save_weights(tmp_path, model, "best")
    engine = NumpyRNN.from_weights_file(tmp_path / ckpt.BEST_WEIGHTS_FILE, config, vocab)
    packed = pack_stream(ids[0], enc)[None, :]
    np.testing.assert_allclose(engine.run(packed)[0], model(packed).numpy(), atol=1e-4, rtol=1e-4)


def test_a_checkpoint_from_before_parts_loads_without_them(tmp_path):
    config = RunConfig(
        encoding=EncodingConfig(name="steps"),
        model=ModelConfig(layers=1, units=8, embedding_dim=4, part_programs=False),
    )
    vocab = len(get_encoding(config.encoding).vocab)
    ckpt.save_config(tmp_path, config, vocab, {"data_dir": "none"})
    ckpt.save_weights(tmp_path, build_model(config.model, vocab), "best")
    raw = ckpt.read_config(tmp_path)[0].to_dict()
    del raw["model"]["part_programs"]  # as config.json was written before
    assert not ModelConfig.from_dict(raw["model"]).part_programs
    assert ModelConfig().part_programs  # new runs tell the network the parts
    for engine in ("numpy", "keras"):
        loaded = ckpt.load_checkpoint(tmp_path, engine=engine)
        assert loaded.model.parts is None


def test_encodings_without_parts_train_without_them(tmp_path):
    from musicgen.api import train_settings

    assert train_settings(tmp_path / "a", encoding="steps").model.part_programs
    assert not train_settings(
        tmp_path / "b", encoding="steps", part_programs=False
    ).model.part_programs
    assert not train_settings(tmp_path / "c", encoding="remi").model.part_programs


def test_feed_hides_the_parts_of_a_share_of_windows():
    enc = _encoding()
    vocab = len(enc.vocab)
    files = [pack_stream(enc.encode(_score(s)).ids, enc) for s in (0.0, 0.5, 0.25)]
    ranges = enc.pitch_id_ranges()

    def batches(hide):
        feed = train_dataset(files, 32, 16, 5, ranges, seed=3, vocab=vocab, hide_parts=hide)
        return [tuple(np.asarray(t) for t in batch) for batch in feed.take(3)]

    told, half, none = batches(0.0), batches(0.5), batches(1.0)
    hidden = []
    for (ti, tt, _), (hi, ht, _), (ni, nt, _) in zip(told, half, none, strict=True):
        np.testing.assert_array_equal(ht, tt)  # the same windows and targets
        np.testing.assert_array_equal(nt, tt)
        ids, features = unpack(hi, vocab)
        np.testing.assert_array_equal(ids, unpack(ti, vocab)[0])
        assert not unpack(ni, vocab)[1].any()
        told_features = unpack(ti, vocab)[1]
        for row in range(len(ids)):  # each window whole: told as before, or nothing
            assert (features[row] == told_features[row]).all() or not features[row].any()
            hidden.append(not features[row].any() and told_features[row].any())
    assert 0.2 < np.mean(hidden) < 0.8
