"""Data feed: next-token targets at every position, transposition, determinism, padding."""

import numpy as np

from musicgen.runtime import import_tensorflow

import_tensorflow()

from musicgen.encoding import PAD  # noqa: E402
from musicgen.feed import train_dataset, val_dataset, val_windows  # noqa: E402

# Two pitch ranges like the performance encoding's NoteOn/NoteOff: ids 10..21 and 30..41.
RANGES = [(10, 21), (30, 41)]


def _files(seed: int = 0, count: int = 3, length: int = 60) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        np.concatenate([[1], rng.integers(3, 45, length), [2]]).astype(np.int32)
        for _ in range(count)
    ]


def _batches(dataset, count):
    return [tuple(np.asarray(t) for t in batch) for batch in dataset.take(count)]


def test_targets_are_inputs_shifted_by_one():
    files = _files()
    stream = np.concatenate(files)
    for inputs, targets, weights in _batches(train_dataset(files, 16, 4, seed=1), 3):
        assert inputs.shape == targets.shape == weights.shape == (4, 16)
        assert inputs.dtype == np.int32
        np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
        assert np.all(weights == 1.0)
        for row_in, row_out in zip(inputs, targets, strict=True):
            window = np.concatenate([row_in, row_out[-1:]])
            starts = [
                s for s in range(len(stream) - 16) if np.array_equal(stream[s : s + 17], window)
            ]
            assert starts, "every window is a slice of the concatenated files"


def test_transposition_keeps_pitches_in_range_and_moves_them_together():
    files = _files(count=4, length=200)
    stream = np.concatenate(files)
    plain = _batches(train_dataset(files, 24, 8, seed=3), 5)
    moved = _batches(train_dataset(files, 24, 8, transpose=6, pitch_id_ranges=RANGES, seed=3), 5)
    shifts = set()
    for (inputs, _, _), (t_inputs, _, _) in zip(plain, moved, strict=True):
        for row, t_row in zip(inputs, t_inputs, strict=True):  # same starts, same seed
            pitch = np.zeros(row.shape, bool)
            for first, last in RANGES:
                inside = (row >= first) & (row <= last)
                assert np.all((t_row[inside] >= first) & (t_row[inside] <= last))
                pitch |= inside
            np.testing.assert_array_equal(row[~pitch], t_row[~pitch])
            k = set((t_row[pitch] - row[pitch]).tolist())
            assert len(k) == 1 and abs(k.pop()) <= 6
            shifts.update(set((t_row[pitch] - row[pitch]).tolist()))
    assert len(shifts) > 3, "shifts vary between windows"
    assert stream.size


def test_transposition_narrows_at_the_range_edges():
    # Every window holds the lowest and the highest pitch of range 1: only k = 0 fits.
    edge = np.array([1] + [10, 21, 5] * 30 + [2], np.int32)
    for inputs, _, _ in _batches(train_dataset([edge], 8, 16, 5, [(10, 21)], seed=0), 3):
        window_pitches = inputs[(inputs >= 10) & (inputs <= 21)]
        assert set(window_pitches.tolist()) <= {10, 21}


def test_same_seed_same_batches_other_seed_differs():
    files = _files()
    a = _batches(train_dataset(files, 16, 4, 3, RANGES, seed=7), 4)
    b = _batches(train_dataset(files, 16, 4, 3, RANGES, seed=7), 4)
    c = _batches(train_dataset(files, 16, 4, 3, RANGES, seed=8), 4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0], y[0])
    assert any(not np.array_equal(x[0], z[0]) for x, z in zip(a, c, strict=True))


def test_short_corpus_is_padded_with_zero_weights():
    tiny = [np.array([1, 5, 6, 2], np.int32)]
    inputs, targets, weights = _batches(train_dataset(tiny, 16, 2, seed=0), 1)[0]
    assert inputs.shape == (2, 16)
    np.testing.assert_array_equal(inputs[0, :4], [1, 5, 6, 2])
    np.testing.assert_array_equal(weights[0], (targets[0] != PAD).astype(np.float32))
    assert weights[0].sum() == 3
    ((v_inputs, v_targets, v_weights),) = _batches(val_dataset(tiny, 16, 4), 1)
    assert v_inputs.shape == (1, 16) and v_weights.sum() == 3


def test_validation_windows_cover_every_target_once():
    files = _files(count=2, length=40)  # 84 tokens -> 83 targets
    windows = val_windows(files, 10)
    assert windows.shape == (9, 11)
    stream = np.concatenate(files)
    targets = np.concatenate([w[1:] for w in windows])
    np.testing.assert_array_equal(targets[: stream.size - 1], stream[1:])
    assert np.all(targets[stream.size - 1 :] == PAD)
    batches = _batches(val_dataset(files, 10, 4), 10)
    assert [b[0].shape[0] for b in batches] == [4, 4, 1]
    again = _batches(val_dataset(files, 10, 4), 10)
    np.testing.assert_array_equal(batches[0][0], again[0][0])


def test_first_batch_continues_the_feed():
    files = _files()
    whole = _batches(train_dataset(files, 16, 4, 3, RANGES, seed=2), 5)
    later = _batches(train_dataset(files, 16, 4, 3, RANGES, seed=2, first_batch=3), 2)
    np.testing.assert_array_equal(whole[3][0], later[0][0])
    np.testing.assert_array_equal(whole[4][1], later[1][1])
