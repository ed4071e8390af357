import numpy as np
import pytest

from transcribe.decode import DecodeConfig, decode_notes
from transcribe.targets import notes_to_rolls
from transcribe.notes import Notes

RATE = 31.25


def quantised(notes: Notes, rate: float) -> Notes:
    return Notes(np.round(notes.onsets * rate) / rate, np.round(notes.offsets * rate) / rate,
                 notes.pitches, notes.velocities).sorted()


def test_rolls_mark_onset_frame_offset_and_velocity():
    notes = Notes([0.32], [0.96], [69], [127])
    r = notes_to_rolls(notes, 50, RATE)
    key = 69 - 21
    assert np.flatnonzero(r["onset"][:, key]).tolist() == [10]
    assert np.flatnonzero(r["frame"][:, key]).tolist() == list(range(10, 30))
    assert np.flatnonzero(r["offset"][:, key]).tolist() == [30]
    assert r["velocity"][10, key] == pytest.approx(1.0)
    assert r["onset"].sum() == 1 and r["velocity"].sum() == pytest.approx(1.0)


def test_notes_outside_piano_and_clip_are_ignored():
    notes = Notes([0.1, 0.1, 5.0], [0.5, 0.5, 6.0], [10, 120, 60], [64, 64, 64])
    r = notes_to_rolls(notes, 20, RATE)
    assert all(v.sum() == 0 for v in r.values())


def test_round_trip_notes_rolls_notes():
    rng = np.random.default_rng(1)
    n = 200
    pitches = rng.integers(21, 109, n)
    onsets = rng.uniform(0, 60, n)
    notes = Notes(onsets, onsets + rng.uniform(0.1, 2.0, n), pitches, rng.integers(1, 128, n)).sorted()
    # keep notes that do not overlap on the same key (overlaps are merged by design)
    keep = np.ones(n, bool)
    for p in np.unique(pitches):
        idx = np.flatnonzero(notes.pitches == p)
        for a, b in zip(idx[:-1], idx[1:]):
            if notes.onsets[b] <= notes.offsets[a] + 0.1:
                keep[b] = False
    notes = notes.select(keep)
    frames = int(65 * RATE)
    r = notes_to_rolls(notes, frames, RATE)
    decoded = decode_notes(r["onset"], r["frame"], RATE, DecodeConfig(), r["velocity"])
    expected = quantised(notes, RATE)
    assert len(decoded) == len(expected)
    np.testing.assert_allclose(decoded.onsets, expected.onsets)
    np.testing.assert_allclose(decoded.offsets, expected.offsets)
    np.testing.assert_array_equal(decoded.pitches, expected.pitches)
    np.testing.assert_array_equal(decoded.velocities, expected.velocities)


def act(frames: int = 40) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((frames, 88), np.float32), np.zeros((frames, 88), np.float32)


def test_frames_without_onset_make_no_note():
    onset, frame = act()
    frame[5:20, 30] = 0.9
    assert len(decode_notes(onset, frame, RATE)) == 0


def test_note_lasts_while_frame_holds_and_a_new_onset_splits_it():
    onset, frame = act()
    onset[5:7, 30] = 0.8  # a two-frame onset run is one onset
    frame[5:30, 30] = 0.9
    onset[18, 30] = 0.9  # re-strike while held
    notes = decode_notes(onset, frame, RATE)
    assert notes.pitches.tolist() == [51, 51]
    np.testing.assert_allclose(notes.onsets, [5 / RATE, 18 / RATE])
    np.testing.assert_allclose(notes.offsets, [18 / RATE, 30 / RATE])


def test_thresholds_and_min_length_from_config():
    onset, frame = act()
    onset[5, 10] = 0.4
    frame[5:8, 10] = 0.45
    assert len(decode_notes(onset, frame, RATE)) == 0
    low = DecodeConfig(onset_threshold=0.3, frame_threshold=0.3)
    assert len(decode_notes(onset, frame, RATE, low)) == 1
    assert len(decode_notes(onset, frame, RATE, DecodeConfig(0.3, 0.3, min_note_frames=4))) == 0


def test_notes_at_the_last_frame_and_neighbouring_keys_stay_apart():
    onset, frame = act(10)
    onset[9, 0] = 1.0  # last frame of key 0
    onset[0, 1] = 1.0  # first frame of key 1
    frame[0:10, 1] = 1.0
    notes = decode_notes(onset, frame, RATE)
    assert sorted(zip(notes.pitches.tolist(), notes.onsets.tolist(), notes.offsets.tolist())) == [
        (21, 9 / RATE, 10 / RATE), (22, 0.0, 10 / RATE)]


def test_decode_velocity_and_empty_input():
    onset, frame = act()
    onset[3, 40] = 1
    vel = np.zeros_like(onset)
    vel[3, 40] = 0.5
    assert decode_notes(onset, frame, RATE, velocity=vel).velocities.tolist() == [64]
    assert len(decode_notes(np.zeros((0, 88)), np.zeros((0, 88)), RATE)) == 0
    with pytest.raises(ValueError):
        decode_notes(np.zeros((5, 80)), np.zeros((5, 80)), RATE)


def test_threshold_sweep_chooses_the_pair_that_separates_true_from_false_onsets():
    """Onsets of the true notes peak at 0.45, spurious ones at 0.35: only onset threshold 0.4
    keeps all true notes and no false one, and the sweep must find it."""
    from transcribe.data.pairs import spread
    from transcribe.tuning import best_thresholds, sweep_thresholds

    ref = Notes([0.32, 0.96, 1.6], [0.8, 1.44, 2.24], [60, 64, 67], [80, 80, 80])
    rolls = notes_to_rolls(ref, 90, RATE)
    onset = rolls["onset"] * 0.45
    frame = rolls["frame"] * 0.9
    onset[40, 10], frame[40:48, 10] = 0.35, 0.9  # a false note on another key
    recordings = [({"onset": onset, "frame": frame, "velocity": rolls["velocity"]}, ref)]
    results = sweep_thresholds(recordings, RATE, DecodeConfig(), [0.3, 0.4, 0.5], [0.5])
    scores = {r.onset_threshold: r.metrics["note_f1"] for r in results}
    assert scores[0.4] == pytest.approx(1.0)
    assert scores[0.3] < 1.0 and scores[0.5] == 0.0
    assert best_thresholds(results).onset_threshold == 0.4
    with pytest.raises(ValueError):
        best_thresholds([])
    # validation files: the first few of a name-sorted list come from across the list
    names = [f"piece{p}_take{t}" for p in range(5) for t in range(4)]
    first = spread(names)[:5]
    assert sorted(spread(names)) == sorted(names)
    assert len({n.split("_")[0] for n in first}) >= 4
