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


# ------------------------------------------------------------------ the notes as written (finish_notes)

def test_notes_end_is_the_last_offset_and_is_not_called_a_duration():
    """``Notes.end`` is where the notes end, counted from 0 (a piece from 10 s to 12 s ends at
    12 s; it does not last 12 s); the misleading name ``duration`` is gone."""
    notes = Notes([10.0, 10.5], [12.0, 11.0], [60, 64], [80, 80])
    assert notes.end == 12.0 and Notes.empty().end == 0.0
    assert not hasattr(notes, "duration")


def test_pitch_names_and_ranges():
    from transcribe.notes import parse_pitch_range, pitch_number

    assert [pitch_number(t) for t in ("A0", "C4", "c8", "F#3", "Bb5", "60", 21)] == [21, 60, 108, 54, 82, 60, 21]
    assert parse_pitch_range("A0:C8") == (21, 108) and parse_pitch_range("C2:C7") == (36, 96)
    assert parse_pitch_range("21:108") == (21, 108) and parse_pitch_range("C4:60") == (60, 60)
    for bad, message in (("H2:C5", "'H2' is neither a note name"), ("C2:C9", "'C9' (MIDI 120) is not a piano key"),
                         ("C7:C2", "LOW (96) is above HIGH (36)"), ("C4", "expected LOW:HIGH"),
                         ("20:40", "'20' (MIDI 20) is not a piano key")):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_pitch_range(bad)


def test_note_names_are_pretty_midis_both_ways():
    """Key names are pretty_midi's (no table of our own): every key's name reads back to the key,
    sharps and flats (ASCII or ♯ ♭) name the same key, the plot labels keys with the same names."""
    import pretty_midi

    from transcribe.notes import MAX_PITCH, MIN_PITCH, pitch_number

    for key in range(MIN_PITCH, MAX_PITCH + 1):
        assert pitch_number(pretty_midi.note_number_to_name(key)) == key
    assert {pitch_number(n) for n in ("C#4", "Db4", "c#4", "C♯4", "D♭4", "61")} == {61}
    for bad in ("H4", "C#", "4C", "C4.5", "Cb-2"):
        with pytest.raises(ValueError):
            pitch_number(bad)


def test_decode_config_checks_and_converts_the_note_settings():
    cfg = DecodeConfig(min_pitch="C2", max_pitch="C7", min_note_ms=50)
    assert (cfg.min_pitch, cfg.max_pitch, cfg.min_note_ms) == (36, 96, 50.0)
    for bad, message in (({"notes": "keys"}, "notes must be one of sounding, key"),
                         ({"min_note_ms": -1}, "min_note_ms must be"), ({"min_note_ms": float("nan")}, "min_note_ms"),
                         ({"min_pitch": "C7", "max_pitch": "C2"}, r"min_pitch C7 \(96\) is above max_pitch C2 \(36\)"),
                         ({"max_pitch": "X9"}, "max_pitch: 'X9' is neither a note name")):
        with pytest.raises(ValueError, match=message):
            DecodeConfig(**bad)


def test_settings_a_checkpoint_predates_come_from_conf_decode():
    """The shipped model stores no min_note_ms / pitch range / notes: conf/decode/default.yaml
    supplies them, and a bad value there is an error that names the file."""
    import yaml

    from transcribe.config import group_file

    conf = yaml.safe_load(group_file("decode").read_text())
    stored = DecodeConfig.from_stored({"onset_threshold": 0.3})
    assert stored.onset_threshold == 0.3 and stored.notes == conf["notes"] == "sounding"
    assert stored.min_note_ms == conf["min_note_ms"] and (stored.min_pitch, stored.max_pitch) == (21, 108)
    assert DecodeConfig.from_stored({}) == DecodeConfig()  # the code's defaults agree with the file
    with pytest.raises(ValueError, match="my.pt: stored decoder settings: notes must be"):
        DecodeConfig.from_stored({"notes": "held"}, "my.pt")


def test_min_note_ms_drops_shorter_notes_by_their_duration_in_seconds():
    from transcribe.decode import finish_notes

    onset, frame = act()
    for key, length in ((10, 1), (11, 2), (12, 3)):  # 32, 64 and 96 ms at 31.25 frames a second
        onset[5, key], frame[5:5 + length, key] = 0.9, 0.9
    notes = decode_notes(onset, frame, RATE)
    for ms, kept in ((0, [31, 32, 33]), (32, [31, 32, 33]), (33, [32, 33]), (64, [32, 33]), (64.5, [33]), (97, [])):
        out = finish_notes(notes, None, RATE, DecodeConfig(min_note_ms=ms))
        assert out.pitches.tolist() == kept, ms


def test_pitch_range_keeps_the_keys_inside_both_ends_included():
    from transcribe.decode import finish_notes

    notes = Notes(np.arange(6) * 0.1, np.arange(6) * 0.1 + 0.5, [21, 35, 36, 96, 97, 108], [64] * 6)
    out = finish_notes(notes, None, RATE, DecodeConfig(min_pitch="C2", max_pitch="C7"))
    assert out.pitches.tolist() == [36, 96]
    assert len(finish_notes(notes, None, RATE, DecodeConfig())) == 6


# Notes under a pedal held 0.2-2.0 s and 4.5-6.0 s (frame rate 10: a frame is 0.1 s):
# (pitch, onset, sounding offset)
FR = 10.0
PEDAL = np.array([[0.2, 2.0], [4.5, 6.0]])
UNDER_PEDAL = [(60, 0.0, 2.0),   # rings to the lift: held; the next onset later than 0.0 + a frame is 0.5
               (64, 0.05, 2.0),  # the same chord (within a frame): 60 and 64 do not end each other
               (67, 0.5, 2.1),   # ends a frame after the lift: held; next onset after 0.6 is 1.0
               (72, 1.0, 1.4),   # ends inside the span, the next onset (3.0) is later: stays 1.4
               (48, 3.0, 3.5),   # no pedal: unchanged
               (50, 4.0, 5.0),   # ends inside a span pressed after its onset, no later onset: unchanged
               (55, 1.9, 2.3),   # ends 3 frames after the lift: not held (the key was down past the lift)
               (57, 6.3, 6.4)]   # starts after every lift: not held


def under_pedal() -> Notes:
    rows = np.array(UNDER_PEDAL, dtype=float)
    return Notes(rows[:, 1], rows[:, 2], rows[:, 0], np.arange(len(rows)) + 60)


def test_key_release_offsets_shorten_pedalled_notes_and_leave_the_rest():
    from transcribe.decode import key_release_offsets

    notes = under_pedal()
    out = key_release_offsets(notes, PEDAL, FR)
    np.testing.assert_allclose(out.offsets, [0.5, 0.5, 1.0, 1.4, 3.5, 5.0, 2.3, 6.4])
    np.testing.assert_array_equal(out.onsets, notes.onsets)
    np.testing.assert_array_equal(out.pitches, notes.pitches)
    np.testing.assert_array_equal(out.velocities, notes.velocities)
    # never shorter than the minimum note length (nor longer than the sound)
    floored = key_release_offsets(notes, PEDAL, FR, min_seconds=0.8)
    np.testing.assert_allclose(floored.offsets, [0.8, 0.85, 1.3, 1.4, 3.5, 5.0, 2.3, 6.4])
    # without pedal spans nothing is held
    np.testing.assert_array_equal(key_release_offsets(notes, np.zeros((0, 2)), FR).offsets, notes.offsets)
    # the pedal spans need not come sorted
    np.testing.assert_allclose(key_release_offsets(notes, PEDAL[::-1], FR).offsets, out.offsets)


def test_finish_notes_key_mode_filters_first_and_needs_the_pedal():
    from transcribe.decode import finish_notes

    notes = under_pedal()
    key = finish_notes(notes, PEDAL, FR, DecodeConfig(notes="key"))
    np.testing.assert_allclose(key.offsets, [0.5, 0.5, 1.0, 1.4, 3.5, 5.0, 2.3, 6.4])
    # the decoder's minimum length (6 frames) is a floor of the key releases too
    longer = finish_notes(notes, PEDAL, FR, DecodeConfig(notes="key", min_note_frames=6))
    np.testing.assert_allclose(longer.offsets, [0.6, 0.65, 1.1, 1.4, 3.5, 5.0, 2.3, 6.4])
    floored = finish_notes(notes, PEDAL, FR, DecodeConfig(notes="key", min_note_ms=600))
    assert floored.pitches.tolist() == [60, 64, 67, 50]  # the shorter sounding notes are gone first
    # 600 ms at least; 67's next onset is now 50's (72 and 48 are gone)
    np.testing.assert_allclose(floored.offsets, [0.6, 0.65, 2.1, 5.0])
    # the key range applies after the key releases: a bass note outside it still ends the notes before it
    ranged = finish_notes(notes, PEDAL, FR, DecodeConfig(notes="key", min_pitch=55))
    assert ranged.pitches.tolist() == [60, 64, 67, 72, 55, 57]
    np.testing.assert_allclose(ranged.offsets, [0.5, 0.5, 1.0, 1.4, 2.3, 6.4])
    assert finish_notes(notes, PEDAL, FR, DecodeConfig()).offsets.tolist() == notes.offsets.tolist()
    with pytest.raises(ValueError, match="need the sustain pedal"):
        finish_notes(notes, None, FR, DecodeConfig(notes="key"))


def test_octave_suppression_drops_a_weak_onset_an_octave_above_a_strong_one():
    """A struck C4 (onset 0.9) with a weaker C5 in the same frame (0.5): both are notes without
    suppression; with 0.5 the C5 falls to 0.05 and is dropped; a C5 struck as hard as the C4 stays,
    and a lone C5 is untouched. A setting outside 0..1 is an error naming it."""
    from dataclasses import replace

    from transcribe.decode import suppress_octaves

    def acts(c5):
        onset, frame = np.zeros((20, 88), np.float32), np.zeros((20, 88), np.float32)
        onset[5, 60 - 21], frame[5:15, 60 - 21] = 0.9, 0.9
        onset[5, 72 - 21], frame[5:15, 72 - 21] = c5, 0.9
        return onset, frame

    cfg = DecodeConfig(onset_threshold=0.3, frame_threshold=0.5)
    on = replace(cfg, octave_suppression=0.5)
    assert sorted(decode_notes(*acts(0.5), 31.25, cfg).pitches) == [60, 72]
    assert list(decode_notes(*acts(0.5), 31.25, on).pitches) == [60]
    assert sorted(decode_notes(*acts(0.9), 31.25, on).pitches) == [60, 72]
    lone = np.zeros((3, 88), np.float32)
    lone[1, 72 - 21] = 0.5
    assert suppress_octaves(lone, 0.5)[1, 72 - 21] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="octave_suppression must be a number from 0 to 1"):
        DecodeConfig(octave_suppression=1.5)


def test_twelfth_suppression_drops_a_weak_onset_a_twelfth_above_a_strong_one():
    """The third partial: a struck C4 (0.9) with a weaker G5 (19 semitones up, 0.5) in the same frame. Octave
    suppression leaves the G5; twelfth suppression 0.5 drops it (0.05), not a G5 struck as hard, and the
    two shares subtract from the onsets as they came (a C5 and a G5 over one C4 both fall)."""
    from dataclasses import replace

    from transcribe.decode import suppress_octaves

    onset, frame = np.zeros((20, 88), np.float32), np.zeros((20, 88), np.float32)
    onset[5, 60 - 21], frame[5:15, 60 - 21] = 0.9, 0.9
    onset[5, 79 - 21], frame[5:15, 79 - 21] = 0.5, 0.9
    cfg = DecodeConfig(onset_threshold=0.3, frame_threshold=0.5, octave_suppression=0.5)
    assert sorted(decode_notes(onset, frame, 31.25, cfg).pitches) == [60, 79]
    assert list(decode_notes(onset, frame, 31.25, replace(cfg, twelfth_suppression=0.5)).pitches) == [60]
    loud = onset.copy()
    loud[5, 79 - 21] = 0.9
    assert sorted(decode_notes(loud, frame, 31.25, replace(cfg, twelfth_suppression=0.5)).pitches) == [60, 79]
    both = onset.copy()
    both[5, 72 - 21] = 0.5
    got = suppress_octaves(both, 0.5, 0.5)[5]
    assert got[72 - 21] == pytest.approx(0.05) and got[79 - 21] == pytest.approx(0.05) and got[60 - 21] == pytest.approx(0.9)
    assert suppress_octaves(both, 0.5)[5, 79 - 21] == pytest.approx(0.5)  # the default: octaves only
    with pytest.raises(ValueError, match="twelfth_suppression must be a number from 0 to 1"):
        DecodeConfig(twelfth_suppression=-0.1)
