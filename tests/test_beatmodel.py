"""The beat model (transcribe/beatmodel.py, weights/beats.onnx): features, loading, inference and
the beats it gives, on synthetic material."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from transcribe import beatmodel
from transcribe.beats import Beats
from transcribe.notes import Notes


def _march(bpm: float = 100.0, bars: int = 16, meter: int = 4) -> tuple[Notes, np.ndarray]:
    """A loud bass on every downbeat, soft chords on the other beats, eighths in the melody."""
    period = 60.0 / bpm
    beats = 1.0 + period * np.arange(bars * meter)
    rows = []
    for k, t in enumerate(beats):
        rows.append((t, t + (meter - 0.2) * period, 43, 100) if k % meter == 0 else (t, t + 0.8 * period, 55, 50))
        rows += [(t, t + 0.45 * period, [72, 74, 76, 77][k % 4], 85),
                 (t + period / 2, t + 0.95 * period, [71, 79, 81, 76][k % 4], 60)]
    a = np.array(rows)
    return Notes(a[:, 0], a[:, 1], a[:, 2].astype(int), a[:, 3].astype(int)), beats


def test_features_are_per_note_in_onset_then_pitch_order():
    notes = beatmodel.sort_notes(Notes(np.array([1.0, 0.0, 0.0]), np.array([1.5, 0.5, 2.0]),
                                       np.array([60, 64, 48]), np.array([80, 90, 100])))
    assert list(notes.pitches) == [48, 64, 60]
    f = beatmodel.note_features(notes)
    assert f.shape == (3, beatmodel.N_FEATURES) and f.dtype == np.float32
    assert f[:, 0].tolist() == [0.0, 0.0, 1.0]  # time since the previous onset
    assert f[:, 6].tolist() == [1.0, 0.0, 1.0]  # lowest of its chord
    assert f[:, 7].tolist() == pytest.approx([0.25, 0.25, 0.125])  # chord size / 8
    assert f[:, 8:].argmax(axis=1).tolist() == [0, 4, 0] and f[:, 8:].sum(axis=1).tolist() == [1, 1, 1]  # pitch class
    assert beatmodel.note_features(Notes.empty()).shape == (0, beatmodel.N_FEATURES)


def test_lowest_of_a_spread_chord_is_its_bass_not_its_first_note():
    """A chord rolled from the top (the melody 20 ms before its bass): the bass is the lowest."""
    notes = beatmodel.sort_notes(Notes(np.array([0.0, 0.01, 0.02, 1.0]), np.array([1.0, 1.0, 1.0, 2.0]),
                                       np.array([76, 60, 43, 72]), np.array([80, 70, 90, 80])))
    assert list(notes.pitches) == [76, 60, 43, 72]
    assert beatmodel.note_features(notes)[:, 6].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_ibi_classes_round_trip():
    c = beatmodel.ibi_centres()
    assert len(c) == beatmodel.IBI_BINS and c[0] == pytest.approx(beatmodel.IBI_MIN)
    assert beatmodel.ibi_class(c).tolist() == list(range(beatmodel.IBI_BINS))
    assert beatmodel.ibi_class(np.array([0.01, 10.0])).tolist() == [0, beatmodel.IBI_BINS - 1]


def test_missing_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.onnx"):
        beatmodel.BeatModel(tmp_path / "nothing.onnx")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained network of the training script, exported to ONNX as the script exports it."""
    import torch

    from .conftest import load_script

    train = load_script("train_beat_model")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("beats") / "beats.onnx"
    net = train.build_net(hidden=8)
    train.export(net, path, {"note": "test"})
    return path, net


def test_exported_model_loads_once_and_matches_torch(tiny_model):
    import torch

    path, net = tiny_model
    notes, _ = _march()
    feats = beatmodel.note_features(beatmodel.sort_notes(notes))
    model = beatmodel.load(path)
    assert beatmodel.load(path) is model  # loaded once per process
    logits = model(feats)
    assert logits.shape == (len(notes), beatmodel.OUTPUTS)
    with torch.no_grad():
        want = net.eval()(torch.from_numpy(feats)[None])[0].numpy()
    assert logits == pytest.approx(want, abs=1e-4)  # onnxruntime runs what torch trained
    out = beatmodel.split_outputs(logits)
    assert out["ibi"].sum(axis=1) == pytest.approx(np.ones(len(notes)), abs=1e-5)
    assert out["per_bar"].shape == (len(notes), len(beatmodel.PER_BAR))
    assert np.all((out["beat"] >= 0) & (out["beat"] <= 1))


def test_one_run_of_the_model_serves_the_staves_values_key_and_beats_of_the_same_notes(tiny_model, monkeypatch):
    """The score stage asks the model four times about the same notes: it runs once; other notes,
    or another window, run it again, and a caller changing the answer does not change the next one."""
    path, _ = tiny_model
    model = beatmodel.load(path)
    runs = []
    real = model.session.run
    monkeypatch.setattr(model.session, "run", lambda *a, **k: runs.append(1) or real(*a, **k))
    notes, _ = _march(bpm=93.0, bars=9)  # notes no other test asks the (per-process) model about
    staves = beatmodel.upper_staff(notes, path)
    values = beatmodel.note_values(notes, path)
    key = beatmodel.key_signature_class(notes, path)
    beatmodel.estimate_beats_model(notes, path)
    assert len(runs) == 1
    assert beatmodel.upper_staff(notes, path).tolist() == staves.tolist()
    assert beatmodel.note_values(notes, path).tolist() == values.tolist()
    assert beatmodel.key_signature_class(notes, path) == key and len(runs) == 1
    feats = beatmodel.note_features(beatmodel.sort_notes(notes))
    first = model(feats)
    first[:] = 0.0  # the caller's copy
    assert np.abs(model(feats)).sum() > 0 and len(runs) == 1
    model(feats, note_window=32)  # another window: windowed runs
    assert len(runs) > 1
    n = len(runs)
    beatmodel.upper_staff(notes.select(notes.onsets > 2.0), path)  # other notes
    assert len(runs) == n + 1


def test_windowed_runs_each_note_in_its_most_central_window():
    """beatmodel.windowed: one pass when the sequence fits; otherwise windows half a window apart,
    each note's output from the window where it sits farthest from an edge, the sequence's own ends
    no edge. The stand-in network outputs each row's position inside the window it was given."""
    calls = []

    def where(f: np.ndarray) -> np.ndarray:
        calls.append((int(f[0, 0]), len(f)))
        return np.stack([np.arange(len(f), dtype=np.float64), f[:, 0]], axis=1)

    feats = np.arange(100, dtype=np.float64)[:, None]
    assert beatmodel.windowed(where, feats, 0)[:, 0].tolist() == list(range(100))  # 0: one pass
    assert beatmodel.windowed(where, feats, 100)[:, 0].tolist() == list(range(100))  # fits: one pass
    calls.clear()
    out = beatmodel.windowed(where, feats, 32)
    assert calls == [(0, 32), (16, 32), (32, 32), (48, 32), (64, 32), (68, 32)]  # the last window ends at the end
    assert out[:, 1].tolist() == list(range(100))  # every note gets its own row back
    pos = out[:, 0]
    assert pos[:8].tolist() == list(range(8))  # the start: from the first window
    assert pos[-8:].tolist() == list(range(24, 32))  # the end: from the last
    inner = pos[24:76]
    assert inner.min() >= 8 and inner.max() <= 23  # elsewhere at least a quarter window from either edge
    rows = np.random.default_rng(0).normal(size=(77, 3))
    assert np.array_equal(beatmodel.windowed(lambda f: f * 2.0, rows, 16), rows * 2.0)  # a per-note network: unchanged


def test_the_exported_model_runs_over_note_windows_as_torch_does(tiny_model):
    """BeatModel(features, note_window): the ONNX model on each window, as the torch network on it."""
    import torch

    path, net = tiny_model
    notes, _ = _march(bars=40)
    feats = beatmodel.note_features(beatmodel.sort_notes(notes))
    model = beatmodel.load(path)
    whole, windows = model(feats), model(feats, 64)
    assert len(feats) > 64 and whole.shape == windows.shape
    assert not np.allclose(whole, windows, atol=1e-4)  # a recurrent network: the context changes the outputs
    with torch.no_grad():
        want = beatmodel.windowed(lambda f: net.eval()(torch.from_numpy(f)[None])[0].numpy(), feats, 64)
    assert windows == pytest.approx(want, abs=1e-4)
    assert model(feats[:50], 64) == pytest.approx(model(feats[:50]), abs=1e-6)  # shorter than a window: one pass


def test_configured_note_window_reads_the_score_group_and_names_the_file(monkeypatch):
    from transcribe import config, score

    monkeypatch.setattr(config, "group_defaults", lambda group: {"model_note_window": 256})
    assert score.configured_model_note_window() == 256
    for bad in (-1, 2.5, "512", True):
        monkeypatch.setattr(config, "group_defaults", lambda group, bad=bad: {"model_note_window": bad})
        with pytest.raises(ValueError, match=r"score/default.yaml: model_note_window"):
            score.configured_model_note_window()


def test_beats_from_outputs_follow_the_beat_probabilities():
    """Outputs that say "beat" on the notes at the true beats, 3 beats per bar, the downbeats on
    the bass, and a 0.6 s interval give those beats, 3/4 and the first downbeat."""
    notes, truth = _march(meter=3)
    notes = beatmodel.sort_notes(notes)
    n = len(notes)
    on_beat = np.isin(np.round(notes.onsets, 6), np.round(truth, 6))
    ibi = np.zeros((n, beatmodel.IBI_BINS))
    ibi[:, beatmodel.ibi_class(np.array([0.6]))[0]] = 1.0
    per_bar = np.tile([0.0, 1.0, 0.0], (n, 1))
    out = {"beat": on_beat * 0.9 + 0.05, "downbeat": (on_beat & (notes.pitches == 43)) * 0.9 + 0.05,
           "ibi": ibi, "per_bar": per_bar, "ternary": np.full(n, 0.1)}
    beats = beatmodel.beats_from_outputs(notes, out)
    import mir_eval

    assert mir_eval.beat.f_measure(truth, beats.times, 0.07) > 0.95
    assert beats.time_signature == "3/4" and beats.tempo == pytest.approx(100.0, rel=0.03)
    first_bar = beats.times[beats.downbeat % 3]
    assert np.min(np.abs(truth[::3] - first_bar)) < 0.07  # bars start on the bass notes


def test_configured_beats_reads_the_score_group_and_names_the_file_on_a_bad_value(monkeypatch):
    from transcribe import config, score

    monkeypatch.setattr(config, "group_defaults", lambda group: {"beats": "model"})
    assert score.configured_beats() == "model"
    monkeypatch.setattr(config, "group_defaults", lambda group: {"beats": "oracle"})
    with pytest.raises(ValueError, match=r"score/default.yaml: beats: 'oracle'"):
        score.configured_beats()


def test_estimate_beats_model_method_gives_a_score(tmp_path, tiny_model, monkeypatch):
    from music21 import converter

    from transcribe.score import estimate_beats, write_musicxml

    monkeypatch.setattr(beatmodel, "WEIGHTS", tiny_model[0])
    notes, truth = _march(meter=3)
    beats = estimate_beats(None, None, notes, method="model")  # an untrained model: any beats, or a fixed grid
    assert beats.source in ("model", "fixed") and beats.beats_per_bar in (1, 2, 3, 4)
    write_musicxml(notes, tmp_path / "m.musicxml", beats=beats)
    parsed = converter.parse(str(tmp_path / "m.musicxml"))
    assert len(parsed.parts) == 2 and len(parsed.flatten().notes) > 0


def test_training_can_start_from_an_exported_model(tiny_model):
    """load_onnx_weights puts an exported model's weights (the GRU's gates reordered from ONNX's
    update-reset-new to torch's reset-update-new) back into a fresh network of the script."""
    import torch

    from .conftest import load_script

    train = load_script("train_beat_model")
    path, net = tiny_model
    torch.manual_seed(1)
    fresh = train.build_net(hidden=8)
    x = torch.from_numpy(beatmodel.note_features(beatmodel.sort_notes(_march()[0])))[None]
    with torch.no_grad():
        want = net.eval()(x)
        assert not torch.allclose(fresh.eval()(x), want, atol=1e-3)
        train.load_onnx_weights(fresh, path)
        assert torch.allclose(fresh.eval()(x), want, atol=1e-5)


def test_selection_keeps_the_row_its_rule_names():
    """--select: the lowest loss, the best beat F, the best beat F + downbeat F (the downbeats
    are what separates runs of one recipe, docs/SCORE.md round 10), or that of the decoded beats
    (round 11: the per-note downbeat F does not predict the decoded one)."""
    from .conftest import load_script

    train = load_script("train_beat_model")
    rows = [{"loss": 1.0, "beat_f": 0.80, "downbeat_f": 0.30, "decoded_beat_f": 0.7, "decoded_downbeat_f": 0.4},
            {"loss": 1.1, "beat_f": 0.75, "downbeat_f": 0.50, "decoded_beat_f": 0.6, "decoded_downbeat_f": 0.4},
            {"loss": 0.9, "beat_f": 0.70, "downbeat_f": 0.30, "decoded_beat_f": 0.7, "decoded_downbeat_f": 0.5}]
    kept = {rule: min(range(len(rows)), key=lambda i: score(rows[i])) for rule, score in train.SELECT.items()}
    assert kept == {"loss": 2, "beat_f": 0, "beat_downbeat_f": 1, "decoded_beat_downbeat_f": 2}


def test_time_warp_changes_the_tempo_smoothly_and_the_beat_labels_with_it():
    from .conftest import load_script

    train = load_script("train_beat_model")
    t = np.linspace(2.0, 12.0, 101)
    plain, rate = train.time_warp(t, 2.0, np.random.default_rng(0), 1.1, 0.0)
    assert np.allclose(plain, 1.1 * (t - 2.0)) and np.allclose(rate(t), 1.1)
    warped, rate = train.time_warp(t, 2.0, np.random.default_rng(0), 1.0, 0.2)
    steps = np.diff(warped) / np.diff(t)
    assert np.all(steps > np.exp(-0.2) - 1e-6) and np.all(steps < np.exp(0.2) + 1e-6)  # monotone, bounded
    assert steps.max() / steps.min() > 1.05  # the tempo does change inside the crop
    assert np.allclose(np.diff(warped), rate((t[1:] + t[:-1]) / 2) * np.diff(t), rtol=0.02)  # the rate is its slope


def test_batches_leave_notes_out_when_asked():
    from .conftest import load_script

    train = load_script("train_beat_model")
    notes, truth = _march(bars=24)
    notes = beatmodel.sort_notes(notes)
    ann_beats = truth
    labels = {"beat": np.isin(np.round(notes.onsets, 6), np.round(ann_beats, 6)).astype(np.float32),
              "downbeat": np.zeros(len(notes), np.float32), "ibi": np.full(len(notes), 10),
              "per_bar": np.full(len(notes), 2), "ternary": np.zeros(len(notes), np.int64),
              "upper": np.full(len(notes), -1)}
    pieces = [{"notes": notes, "labels": labels}]
    x, y = train.make_batch(pieces, np.random.default_rng(0), 8, 128)
    assert int((y["beat"] >= 0).sum()) == 8 * 128  # every note of every crop
    x, y = train.make_batch(pieces, np.random.default_rng(0), 8, 128, warp=0.2, drop=0.5)
    kept = int((y["beat"] >= 0).sum())
    assert 0.5 * 8 * 128 < kept < 8 * 128
    assert set(np.unique(y["beat"][y["beat"] >= 0].numpy())) == {0.0, 1.0}


def _outputs(notes: Notes, truth: np.ndarray, per_bar_head: int, bar: int, ibi: np.ndarray | float) -> dict:
    """Per-note outputs: "beat" on the notes at the true beats, "downbeat" on every ``bar``-th of
    them, the beats-per-bar head leaning to ``per_bar_head`` (0.6), the interval ``ibi`` (s, per note or one)."""
    n = len(notes)
    k = np.searchsorted(np.round(truth, 6), np.round(notes.onsets, 6))
    on_beat = np.isin(np.round(notes.onsets, 6), np.round(truth, 6))
    onehot = np.zeros((n, beatmodel.IBI_BINS))
    onehot[np.arange(n), beatmodel.ibi_class(np.broadcast_to(np.asarray(ibi, dtype=float), (n,)))] = 1.0
    head = np.full((n, 3), 0.2)
    head[:, beatmodel.PER_BAR.index(per_bar_head)] = 0.6
    return {"beat": on_beat * 0.9 + 0.05, "downbeat": (on_beat & (k % bar == 0)) * 0.9 + 0.05, "ibi": onehot,
            "per_bar": head, "ternary": np.full(n, 0.1)}


def test_metre_from_the_downbeat_spacing():
    """Downbeats every 3 beats while the beats-per-bar head says 4: ``metre="head"`` writes 4/4,
    ``"downbeats"`` 3/4 with the bars on the downbeats; ``"both"`` follows a clear spacing."""
    notes, truth = _march(meter=3)
    notes = beatmodel.sort_notes(notes)
    out = _outputs(notes, truth, per_bar_head=4, bar=3, ibi=0.6)
    assert beatmodel.beats_from_outputs(notes, out, metre="head").time_signature == "4/4"
    for metre in ("downbeats", "both"):
        beats = beatmodel.beats_from_outputs(notes, out, metre=metre)
        assert beats.time_signature == "3/4"
        assert np.min(np.abs(truth[::3] - beats.times[beats.downbeat % 3])) < 0.07
    with pytest.raises(ValueError, match="unknown metre method 'x'"):
        beatmodel.beats_from_outputs(notes, out, metre="x")


def _jig(bars: int = 16) -> tuple[Notes, np.ndarray]:
    """6/8 at a dotted quarter of 0.9 s: a bass on every beat, the melody in three eighths a beat."""
    beats = 1.0 + 0.9 * np.arange(bars * 2)
    rows = []
    for k, t in enumerate(beats):
        rows.append((t, t + 0.8, 43 if k % 2 == 0 else 50, 100 if k % 2 == 0 else 60))
        rows += [(t + j * 0.3, t + j * 0.3 + 0.25, [72, 74, 76][j], 80) for j in range(3)]
    a = np.array(rows)
    return Notes(a[:, 0], a[:, 1], a[:, 2].astype(int), a[:, 3].astype(int)), beats


def test_a_compound_metre_from_where_the_onsets_fall_between_the_beats():
    """A jig whose model says "not ternary" (0.1): by its output it is written 2/4; by its onsets on
    the thirds of the beats (``subdivision="onsets"``) 6/8. A march's eighths stay on halves: 4/4."""
    notes, truth = _jig()
    notes = beatmodel.sort_notes(notes)
    out = _outputs(notes, truth, per_bar_head=2, bar=2, ibi=0.9)
    assert beatmodel.beats_from_outputs(notes, out, metre="downbeats").time_signature == "2/4"
    jig = beatmodel.beats_from_outputs(notes, out, metre="downbeats", subdivision="onsets")
    assert jig.time_signature == "6/8" and jig.beat_ql == 1.5
    assert beatmodel.onsets_on_thirds(notes.onsets, Beats(truth, 66.7))
    march, march_truth = _march()
    march = beatmodel.sort_notes(march)
    march_out = _outputs(march, march_truth, per_bar_head=4, bar=4, ibi=0.6)
    assert beatmodel.beats_from_outputs(march, march_out, metre="downbeats", subdivision="onsets").time_signature == "4/4"
    assert not beatmodel.onsets_on_thirds(march.onsets, Beats(march_truth, 100.0))
    with pytest.raises(ValueError, match="unknown subdivision method 'x'"):
        beatmodel.beats_from_outputs(notes, out, subdivision="x")


def test_local_tempo_follows_a_slowing_piece():
    """16 bars at 120 BPM, then 16 at 70: with the model's local interval the beats follow both
    halves; one tempo for the piece (``tempo="global"``) cannot."""
    import mir_eval

    a, ta = _march(bpm=120.0, bars=16)
    b, tb = _march(bpm=70.0, bars=16)
    shift = ta[-1] + 0.5 - tb[0] + 60.0 / 70.0
    notes = beatmodel.sort_notes(Notes(np.r_[a.onsets, b.onsets + shift], np.r_[a.offsets, b.offsets + shift],
                                       np.r_[a.pitches, b.pitches], np.r_[a.velocities, b.velocities]))
    truth = np.r_[ta, tb + shift]
    ibi = np.where(notes.onsets < tb[0] + shift - 0.01, 0.5, 60.0 / 70.0)
    out = _outputs(notes, truth, per_bar_head=4, bar=4, ibi=ibi)
    local = beatmodel.beats_from_outputs(notes, out, tempo="local")
    glob = beatmodel.beats_from_outputs(notes, out, tempo="global")
    f = lambda beats: mir_eval.beat.f_measure(truth, beats.times, 0.07)  # noqa: E731
    assert f(local) > 0.95 and f(glob) < f(local) - 0.1


def test_training_reads_each_midi_file_once_through_the_cache(tmp_path):
    """read_notes keeps the notes it read in the .npz cache: a second call gives the same notes
    without the MIDI files, and a new file is read and added."""
    from transcribe.notefiles import write_midi

    from .conftest import load_script

    train = load_script("train_beat_model")
    notes, _ = _march(bars=2)
    files = [tmp_path / "a.mid", tmp_path / "b.mid"]
    for i, f in enumerate(files):
        write_midi(Notes(notes.onsets + i, notes.offsets + i, notes.pitches, notes.velocities).sorted(), f)
    cache = tmp_path / "cache.npz"
    first = train.read_notes(files, cache)
    assert cache.is_file() and set(np.load(cache).files) == {str(f) for f in files}
    for f in files:
        f.unlink()
    again = train.read_notes(files, cache)
    for f in files:
        assert again[str(f)].onsets == pytest.approx(first[str(f)].onsets)
        assert list(again[str(f)].pitches) == list(first[str(f)].pitches)
    assert first[str(files[1])].onsets[0] == pytest.approx(first[str(files[0])].onsets[0] + 1, abs=0.01)
    with pytest.raises(OSError):
        train.read_notes([tmp_path / "gone.mid"], cache)  # not in the cache: read, and missing


def test_staff_output_only_from_a_model_that_has_it(tiny_model, tmp_path):
    """split_outputs gives ``upper`` from a model with the staff output, none from an older one;
    upper_staff returns it per note in the caller's order, and names an older model's file."""
    import torch

    from .conftest import load_script

    path, net = tiny_model
    notes, _ = _march()
    shuffled = Notes(notes.onsets[::-1].copy(), notes.offsets[::-1].copy(), notes.pitches[::-1].copy(),
                     notes.velocities[::-1].copy())
    sorted_notes = beatmodel.sort_notes(notes)
    logits = beatmodel.load(path)(beatmodel.note_features(sorted_notes))
    out = beatmodel.split_outputs(logits)
    assert out["upper"].shape == (len(notes),)
    up = beatmodel.upper_staff(shuffled, path)
    order = np.lexsort((shuffled.pitches, shuffled.onsets))
    assert list(up[order]) == list(out["upper"] > 0.5)
    assert "key" in out and out["key"].shape == (len(notes), beatmodel.KEY_CLASSES)
    assert "value" in out and out["value"].shape == (len(notes), len(beatmodel.VALUES))
    before_value = logits[:, : beatmodel.VALUE_COLS.start]
    assert "key" in beatmodel.split_outputs(before_value) and "value" not in beatmodel.split_outputs(before_value)
    before_key = logits[:, : beatmodel.KEY_COLS.start]
    assert "upper" in beatmodel.split_outputs(before_key) and "key" not in beatmodel.split_outputs(before_key)
    assert "upper" not in beatmodel.split_outputs(before_key[:, :-1])
    train = load_script("train_beat_model")
    torch.manual_seed(0)
    old = tmp_path / "old.onnx"
    train.export(train.build_net(hidden=8, outputs=beatmodel.STAFF_COL), old,
                 {"note": "before the staff"})
    with pytest.raises(ValueError, match="old.onnx: this beat model has no staff output"):
        beatmodel.upper_staff(notes, old)


def test_training_starts_from_a_model_without_the_staff_output(tmp_path):
    """An exported model with fewer outputs (before the staff and key outputs) starts the new
    network: its rows of the head are copied, the new ones keep their initial weights."""
    import torch

    from .conftest import load_script

    train = load_script("train_beat_model")
    torch.manual_seed(0)
    n_old = beatmodel.STAFF_COL  # before the staff, key and value outputs
    old_net = train.build_net(hidden=8, outputs=n_old)
    train.export(old_net, tmp_path / "old.onnx", {})
    torch.manual_seed(1)
    new = train.build_net(hidden=8)
    before = new.head.weight[n_old:].detach().clone()
    train.load_onnx_weights(new, tmp_path / "old.onnx")
    x = torch.from_numpy(beatmodel.note_features(beatmodel.sort_notes(_march()[0])))[None]
    with torch.no_grad():
        assert torch.allclose(new.eval()(x)[..., :n_old], old_net.eval()(x), atol=1e-5)
    assert torch.equal(new.head.weight[n_old:], before)


def test_staff_and_value_labels_from_the_score_counterparts(tmp_path):
    """A performance note takes the staff and the note value (in beats) of the score note of its
    pitch nearest in beats (within a quarter beat); notes the score does not hold, and a score
    whose beats do not correspond, get -1."""
    import pretty_midi

    from .conftest import load_script
    from transcribe.data.asap import read_annotations

    train = load_script("train_beat_model")
    folder = tmp_path / "work"
    folder.mkdir()
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    upper, lower = pretty_midi.Instrument(0), pretty_midi.Instrument(0)
    for k in range(8):  # score: a beat every 0.5 s; right hand C5/E5 on every beat, left hand C3 every other
        # (ending a little early, as ASAP's score MIDI does: quarters, halves, an eighth)
        upper.notes.append(pretty_midi.Note(velocity=80, pitch=72 if k % 2 else 76, start=0.5 * k, end=0.5 * k + 0.495))
        if k % 2 == 0:
            lower.notes.append(pretty_midi.Note(velocity=80, pitch=48, start=0.5 * k, end=0.5 * k + 0.99))
    lower.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=1.0, end=1.245))  # middle C, left hand
    pm.instruments += [upper, lower]
    pm.write(str(folder / "midi_score.mid"))
    beat_lines = "\n".join(f"{0.5 * k}\t{0.5 * k}\t{'db,4/4,0' if k == 0 else ('db' if k % 4 == 0 else 'b')}"
                            for k in range(8))
    (folder / "midi_score_annotations.txt").write_text(beat_lines + "\n")
    # the performance: 20 % slower, 1 s later, plus a wrong note (D4) the score does not hold
    perf_lines = "\n".join(f"{1 + 0.6 * k}\t{1 + 0.6 * k}\t{'db,4/4,0' if k == 0 else ('db' if k % 4 == 0 else 'b')}"
                            for k in range(8))
    (folder / "p_annotations.txt").write_text(perf_lines + "\n")
    notes = Notes(np.array([1.0, 1.0, 1.62, 2.2, 2.21, 2.5]), np.array([1.4, 1.9, 2.0, 2.6, 2.6, 2.7]),
                  np.array([76, 48, 72, 76, 60, 62]), np.full(6, 80))
    staff, value = train.score_labels(notes, read_annotations(folder / "p_annotations.txt"), folder, {})
    assert staff.tolist() == [1, 0, 1, 1, 0, -1]
    quarter, half, eighth = (beatmodel.VALUES.index(v) for v in (1.0, 2.0, 0.5))
    assert value.tolist() == [quarter, half, quarter, quarter, eighth, -1]
    (folder / "q_annotations.txt").write_text("\n".join(perf_lines.splitlines()[:6]) + "\n")
    short = read_annotations(folder / "q_annotations.txt")
    assert [a.tolist() for a in train.score_labels(notes, short, folder, {})] == [[-1] * 6] * 2


def test_the_training_works_score_midi_read_as_deadpan_performances(tmp_path):
    """train_beat_model.score_files: each work's score MIDI once, only where its annotations are
    beside it; load_side reads it as a performance whose notes are their own counterparts."""
    import pretty_midi

    from .conftest import load_script

    train = load_script("train_beat_model")
    work, bare = tmp_path / "Composer" / "Work", tmp_path / "Composer" / "Other"
    work.mkdir(parents=True)
    bare.mkdir()
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    upper, lower = pretty_midi.Instrument(0), pretty_midi.Instrument(0)
    for k in range(12):  # 3/4 at a beat every 0.5 s: a melody on every beat, the bass on each bar's first
        upper.notes.append(pretty_midi.Note(velocity=80, pitch=72 + k % 3, start=0.5 * k, end=0.5 * k + 0.49))
        if k % 3 == 0:
            lower.notes.append(pretty_midi.Note(velocity=80, pitch=43, start=0.5 * k, end=0.5 * k + 1.49))
    pm.instruments += [upper, lower]
    pm.write(str(work / "midi_score.mid"))
    pm.write(str(bare / "midi_score.mid"))  # no annotations beside it: left out
    (work / "midi_score_annotations.txt").write_text("\n".join(
        f"{0.5 * k}\t{0.5 * k}\t{'db,3/4,0' if k == 0 else ('db' if k % 3 == 0 else 'b')}" for k in range(12)) + "\n")
    performances = [work / "p1.mid", work / "p2.mid", bare / "p1.mid"]
    assert train.score_files(performances) == [work / "midi_score.mid"]
    (piece,) = train.load_side(train.score_files(performances))
    labels = piece["labels"]
    assert len(piece["notes"]) == 16 and labels["beat"].tolist() == [1.0] * 16
    assert labels["downbeat"].tolist() == [float(p == 43 or o % 1.5 == 0) for o, p in
                                           zip(piece["notes"].onsets, piece["notes"].pitches)]
    assert labels["upper"].tolist() == [int(p != 43) for p in piece["notes"].pitches]  # every staff known
    quarter, dotted_half = (beatmodel.VALUES.index(v) for v in (1.0, 3.0))
    assert labels["value"].tolist() == [quarter if p != 43 else dotted_half for p in piece["notes"].pitches]
    assert labels["per_bar"].tolist() == [beatmodel.PER_BAR.index(3)] * 16


def test_transcriptions_of_performances_labelled_from_their_annotations(tmp_path):
    """train_beat_model.transcribed_side: the MIDI transcribed from a performance's render (named as
    the render is) is read as a piece with the performance's beat labels and no staff or value
    labels; a performance without a transcription is left out."""
    import pretty_midi

    from .conftest import load_script

    train = load_script("train_beat_model")
    asap, heard = tmp_path / "asap", tmp_path / "transcribed"
    work = asap / "Composer" / "Work"
    work.mkdir(parents=True)
    heard.mkdir()
    # the performance's annotations: 2/4, a beat every 0.5 s from 1 s
    (work / "p1_annotations.txt").write_text("\n".join(
        f"{1 + 0.5 * k}\t{1 + 0.5 * k}\t{'db,2/4,0' if k == 0 else ('db' if k % 2 == 0 else 'b')}" for k in range(8)) + "\n")
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    # what the transcriber heard: a note on each beat 12 ms late, a false note between two beats
    for k in range(8):
        inst.notes.append(pretty_midi.Note(velocity=70, pitch=60 + k, start=1.012 + 0.5 * k, end=1.3 + 0.5 * k))
    inst.notes.append(pretty_midi.Note(velocity=30, pitch=84, start=1.25, end=1.4))
    pm.instruments.append(inst)
    pm.write(str(heard / "Composer_Work_p1.mid"))
    performances = [work / "p1.mid", work / "p2.mid"]  # p2 was not transcribed
    (piece,) = train.transcribed_side(performances, heard, asap)
    labels = piece["labels"]
    on = piece["notes"].onsets
    assert len(on) == 9 and piece["file"] == str(heard / "Composer_Work_p1.mid")
    assert labels["beat"].tolist() == [float(abs(t - 1.25) > 0.01) for t in on]
    assert labels["downbeat"].tolist() == [float(round((t - 1.012) / 0.5) % 2 == 0 and abs(t - 1.25) > 0.01) for t in on]
    assert labels["per_bar"].tolist() == [beatmodel.PER_BAR.index(2)] * 9
    assert labels["upper"].tolist() == labels["value"].tolist() == [-1] * 9


def test_synthetic_accompaniment_pieces_are_labelled_at_their_written_beat():
    """train_beat_model.patterns_side: seeded pieces of every metre and texture; a note on a beat of
    the piece's metre is labelled a beat (a downbeat on a bar's first), the bar's beats and the
    compound beat follow the metre, and every note has its staff and written value."""
    from .conftest import load_script

    train = load_script("train_beat_model")
    pieces = train.patterns_side(24, seed=3)
    assert [p["file"] for p in pieces] == [p["file"] for p in train.patterns_side(24, seed=3)]
    assert {p["file"].split(":")[3] for p in pieces} == {"2/4", "3/4", "4/4", "6/8"}
    assert {p["file"].split(":")[2] for p in pieces} == {"bass-chords", "alberti", "block", "broken"}
    for p in pieces:
        notes, labels, ann = p["notes"], p["labels"], p["ann"]
        metre = p["file"].split(":")[3]
        per_bar = {"2/4": 2, "3/4": 3, "4/4": 4, "6/8": 2}[metre]
        assert np.all(np.diff(notes.onsets) >= 0)
        beat = np.diff(ann.beats).mean()
        pos = (notes.onsets - ann.beats[0]) / beat  # in beats, with the timing noise
        near = np.abs(pos - np.round(pos)) * beat <= 0.05
        assert np.array_equal(labels["beat"] == 1, near)
        assert np.all(labels["downbeat"] <= labels["beat"])
        assert set(labels["per_bar"].tolist()) == {beatmodel.PER_BAR.index(per_bar)}
        assert set(labels["ternary"].tolist()) == {int(metre == "6/8")}
        assert np.all(labels["value"] >= 0) and set(labels["upper"].tolist()) == {0, 1}


def test_a_model_exported_with_its_first_outputs_only(tmp_path, monkeypatch):
    """train_beat_model.keep_outputs: the exported model's outputs are exactly the network's first
    ones, and the stage reads it as a model without the outputs left out (asking for the note values
    is the error naming its file)."""
    import torch

    from .conftest import load_script
    from transcribe.score import Beats, notes_to_score

    train = load_script("train_beat_model")
    torch.manual_seed(0)
    net = train.build_net(16)
    small = train.keep_outputs(net, beatmodel.STAFF_COL + 1, hidden=16)
    x = torch.from_numpy(beatmodel.note_features(beatmodel.sort_notes(_march()[0])))[None]
    with torch.no_grad():
        assert torch.equal(small.eval()(x), net.eval()(x)[..., : beatmodel.STAFF_COL + 1])
    train.export(small, tmp_path / "small.onnx", {"note": "test"})
    notes, truth = _march(bars=4)
    monkeypatch.setattr(beatmodel, "WEIGHTS", tmp_path / "small.onnx")
    assert len(beatmodel.upper_staff(notes)) == len(notes)
    with pytest.raises(ValueError, match="small.onnx: this beat model has no note-value output"):
        notes_to_score(notes, Beats(truth, 100.0), key="C major", note_values="model")


def test_score_staves_from_the_model(tiny_model, monkeypatch):
    """hands="model": every note goes to the staff the model's staff output gives it."""
    from music21 import converter

    from transcribe.score import Beats, notes_to_score, score_bytes

    monkeypatch.setattr(beatmodel, "WEIGHTS", tiny_model[0])
    notes, truth = _march(bars=4)
    up = beatmodel.upper_staff(notes)
    parsed = converter.parseData(score_bytes(notes_to_score(notes, Beats(truth, 100.0), key="C major",
                                                            hands="model")).decode())
    staves = [sorted(p.midi for el in part.flatten().notes for p in el.pitches) for part in parsed.parts]
    assert staves[0] == sorted(notes.pitches[up].tolist())
    assert staves[1] == sorted(notes.pitches[~up].tolist())


def test_inner_validation_holds_out_whole_works():
    from pathlib import Path

    from .conftest import load_script

    train = load_script("train_beat_model")
    files = [Path(f"asap/Composer/Work_{w}/perf_{k}.mid") for w in range(200) for k in range(3)]
    kept, held = train.works_fold(files, 15.0)
    assert sorted(kept + held) == sorted(files) and not set(kept) & set(held)
    held_works = {f.parent for f in held}
    assert held_works.isdisjoint({f.parent for f in kept})  # every performance of a work on one side
    assert 15 <= len(held_works) <= 45  # about 15 % of 200 works
    assert train.works_fold(files, 15.0) == (kept, held)  # the same split every time
    assert train.works_fold(files, 0.0) == (files, [])


def _sequenced_six_eight(path, bars: int = 8, sec_per_eighth: float = 0.2) -> None:
    """A sequenced 6/8 piece as piano-midi.de writes them: a melody track on every eighth and a
    bass track on every dotted quarter, a tempo change halfway (the beats follow the tempo map)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=60.0 / (2 * sec_per_eighth))
    pm.time_signature_changes.append(pretty_midi.TimeSignature(6, 8, 0.0))
    # a tempo change after half the bars: pretty_midi writes tempi from _tick_scales
    half = bars * 6 // 2
    pm._tick_scales = [(0, sec_per_eighth * 2 / 480), (half * 240, sec_per_eighth * 2 * 1.5 / 480)]
    pm._update_tick_to_time(bars * 6 * 240 + 480)
    melody, bass = pretty_midi.Instrument(0), pretty_midi.Instrument(0)
    for e in range(bars * 6):
        t0, t1 = pm.tick_to_time(e * 240), pm.tick_to_time(e * 240 + 200)
        melody.notes.append(pretty_midi.Note(80, 72 + e % 5, t0, t1))
        if e % 3 == 0:
            bass.notes.append(pretty_midi.Note(70, 40 + e % 2, t0, pm.tick_to_time(e * 240 + 700)))
    pm.instruments += [melody, bass]
    pm.write(str(path))


def test_a_sequenced_file_gives_its_own_beats_metre_and_staves(tmp_path):
    """piano-midi.de-like training data (--extra-midi): beats from the tempo map (a 6/8 beat is a
    dotted quarter, two per bar, ternary), the melody's track the upper staff."""
    from .conftest import load_script

    train = load_script("train_beat_model")
    path = tmp_path / "jig.mid"
    _sequenced_six_eight(path)
    piece = train.quantised_piece(path)
    lab, notes = piece["labels"], piece["notes"]
    assert len(piece["ann"].beats) >= 16 and len(piece["ann"].downbeats) == 8
    assert np.all(np.diff(piece["ann"].beats)[:6] == pytest.approx(0.6, abs=1e-3))  # a dotted quarter at 0.2 s/eighth
    assert np.diff(piece["ann"].beats)[-2] == pytest.approx(0.9, abs=1e-3)  # after the tempo change
    bass = notes.pitches < 60
    assert np.all(lab["beat"][bass] == 1)  # every bass note on a dotted-quarter beat
    assert lab["beat"][~bass].sum() == bass.sum()  # the melody on a beat only where the bass is
    assert set(lab["per_bar"][lab["per_bar"] >= 0].tolist()) == {beatmodel.PER_BAR.index(2)}
    assert set(lab["ternary"][lab["ternary"] >= 0].tolist()) == {1}
    assert np.all(lab["upper"][~bass] == 1) and np.all(lab["upper"][bass] == 0)


def test_sequenced_files_of_test_works_are_left_out(tmp_path):
    """--extra-midi keeps the test set out: by MAPS code, by composer and title, and by name."""
    from .conftest import load_script

    train = load_script("train_beat_model")
    (tmp_path / "midis" / "Chopin").mkdir(parents=True)
    for stem in ("chpn_op66", "chpn_op25_e4x", "chpn-p7", "held_out_work"):
        _sequenced_six_eight(tmp_path / "midis" / "Chopin" / f"{stem}.mid", bars=2)
    (tmp_path / "metadata.csv").write_text(
        "composer,title,year,midi,duration\n"
        "Chopin,Fantaisie-Impromptu_Opus_66,1834,midis/Chopin/chpn_op66.mid,1\n"
        "Chopin,Etudes_Opus_25_4,1836,midis/Chopin/chpn_op25_e4x.mid,1\n"
        "Chopin,Preludes_Opus_28_7,1838,midis/Chopin/chpn-p7.mid,1\n", encoding="utf-8")
    pieces = tmp_path / "test_pieces.csv"
    pieces.write_text("maps_code,composer,work\nchpn_op66,Chopin,Fantaisie-Impromptu op. 66\n"
                      "chpn_op25_e4,Chopin,Étude op. 25 no. 4\n", encoding="utf-8")
    kept, dropped = train.quantised_files(tmp_path / "midis", pieces, ("held_out_work",))
    assert [f.stem for f in kept] == ["chpn-p7"]
    assert len(dropped) == 3 and all(str(tmp_path) in d for d in dropped)
    assert any("chpn_op25_e4x" in d and "op" in d for d in dropped)  # by title: its name is no MAPS code


def test_key_signature_classes_follow_transposition():
    assert beatmodel.signature_class(np.array([0, 1, -1, 7, -5, 6, -6])).tolist() == [0, 1, 11, 7, 7, 6, 6]
    assert [beatmodel.class_sharps(c) for c in range(12)] == [0, 1, 2, 3, 4, 5, -6, -5, -4, -3, -2, -1]
    # C major (0) up a semitone is D flat major (5 flats), up two D major (2 sharps)
    assert [beatmodel.class_sharps((0 + 7 * s) % 12) for s in (1, 2, -1)] == [-5, 2, 5]


def test_key_labels_from_annotations_and_sequenced_files_and_transposed_in_batches(tmp_path):
    """The key head's labels: ASAP's key-signature annotations where they change, a sequenced
    file's key-signature events (a minor key by its relative major), moved with the pitches."""
    import pretty_midi

    from transcribe.data.asap import Annotation

    from .conftest import load_script

    train = load_script("train_beat_model")
    notes, beats = _march(bars=8)
    notes = beatmodel.sort_notes(notes)
    ann = Annotation(beats, beats[::4], [(0.0, "4/4")], [(0.0, 2), (float(beats[16]), -3)])
    key = train.note_labels(notes, ann)["key"]
    assert set(key[notes.onsets < beats[16] - 0.01]) == {2} and set(key[notes.onsets >= beats[16]]) == {9}
    path = tmp_path / "minor.mid"
    _sequenced_six_eight(path, bars=4)
    pm = pretty_midi.PrettyMIDI(str(path))
    pm.key_signature_changes.append(pretty_midi.KeySignature(pretty_midi.key_name_to_key_number("E minor"), 0.0))
    pm.write(str(path))
    piece = train.quantised_piece(path)
    assert set(piece["labels"]["key"]) == {1}  # E minor: one sharp
    _, y = train.make_batch([piece], np.random.default_rng(3), 16, 32)
    shifted = y["key"][y["key"] >= 0].numpy()
    assert len(set(shifted)) > 1 and set(shifted) <= {(1 + 7 * s) % 12 for s in range(-3, 4)}


def test_a_model_of_the_first_eight_features_still_runs_and_starts_a_new_one(tmp_path):
    """Models trained before the pitch-class inputs (8 features) get the first 8 columns at
    inference; a new network started from one keeps its outputs (the new inputs start at zero)."""
    import torch

    from .conftest import load_script

    train = load_script("train_beat_model")
    n_old = beatmodel.STAFF_COL
    torch.manual_seed(0)
    old_net = train.build_net(hidden=8, outputs=n_old)
    old_net.conv[0] = torch.nn.Conv1d(8, 8, 5, padding=2)  # the first models' input width
    path = tmp_path / "eight.onnx"
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(old_net.eval(), (torch.zeros(1, 16, 8),), buf, input_names=["features"],
                          output_names=["logits"], dynamic_axes={"features": {1: "notes"}, "logits": {1: "notes"}},
                          opset_version=17, dynamo=False)
    path.write_bytes(buf.getvalue())
    notes = beatmodel.sort_notes(_march()[0])
    feats = beatmodel.note_features(notes)
    model = beatmodel.BeatModel(path)
    assert model.n_features == 8
    with torch.no_grad():
        expect = old_net(torch.from_numpy(feats[:, :8])[None])[0].numpy()
    assert np.allclose(model(feats), expect, atol=1e-4)
    new = train.build_net(hidden=8)
    train.load_onnx_weights(new, path)
    with torch.no_grad():
        assert np.allclose(new.eval()(torch.from_numpy(feats)[None])[0, :, :n_old].numpy(), expect, atol=1e-4)


def test_value_classes_hold_the_plain_values_and_refuse_the_rest():
    v = beatmodel.VALUES
    got = beatmodel.value_class(np.array([1.0, 0.99, 1.5, 2.5, 1 / 3, 0.1, 4.0, 5.0]))
    assert got.tolist() == [v.index(1.0), v.index(1.0), v.index(1.5), -1, v.index(1 / 3), -1, v.index(4.0), -1]


def test_score_note_values_from_the_model(tiny_model, monkeypatch):
    """note_values="model": every note is written with the value the model's note-value output
    gives it (in beats), cut at the next chord on its staff, as notation_eval measures it; the
    shipped model, which has no such output, is an error naming its file."""
    from music21 import converter

    from transcribe.score import Beats, notes_to_score, quantise, score_bytes, split_hands, written_lengths

    notes, truth = _march(bars=4)
    beats = Beats(truth, 100.0)
    with pytest.raises(ValueError, match="beats.onnx: this beat model has no note-value output"):
        notes_to_score(notes, beats, key="C major", note_values="model")
    monkeypatch.setattr(beatmodel, "WEIGHTS", tiny_model[0])
    values = beatmodel.note_values(notes)
    assert set(np.unique(values)) <= set(beatmodel.VALUES)
    q = quantise(notes, beats, 4, triplet_cost=0.05)
    upper = split_hands(q)
    expected = written_lengths(q, upper, values[q.index] * beats.beat_ql)
    assert not np.allclose(expected, written_lengths(q, upper))  # the model's values are not the played ones
    parsed = converter.parseData(score_bytes(notes_to_score(notes, beats, key="C major", triplet_cost=0.05,
                                                            note_values="model")).decode())
    lengths = {}  # per staff and pitch, the quarter notes written (tied pieces summed)
    for part, staff in zip(parsed.parts, (True, False)):
        for el in part.flatten().notes:
            for p in el.pitches:
                lengths[(staff, p.midi)] = lengths.get((staff, p.midi), 0.0) + float(el.quarterLength)
    want = {}
    for k in range(len(q)):
        want[(bool(upper[k]), int(q.pitches[k]))] = want.get((bool(upper[k]), int(q.pitches[k])), 0.0) + expected[k]
    assert lengths == pytest.approx(want)


def test_beat_metrics_score_beats_bars_and_tempo():
    """transcribe.metrics.beat_metrics: the annotated beats found is beat F 1; bars that start one
    beat late lose the downbeats; beats at twice the tempo keep every annotated beat but are wrong
    on the tempo."""
    from transcribe.metrics import beat_metrics

    ref = 1.0 + 0.5 * np.arange(48)  # 120 BPM, 4/4, bars on every fourth beat from the first
    down = ref[::4]
    right = beat_metrics(ref, down, Beats(ref, 120.0, downbeat=0))
    assert right["beat_f"] == pytest.approx(1.0) and right["downbeat_f"] == pytest.approx(1.0) and right["tempo_right"]
    late = beat_metrics(ref, down, Beats(ref, 120.0, downbeat=1))
    assert late["beat_f"] == pytest.approx(1.0) and late["downbeat_f"] == 0.0
    double = np.sort(np.r_[ref, ref + 0.25])
    fast = beat_metrics(ref, down, Beats(double, 240.0, downbeat=0))
    assert fast["beat_f"] == pytest.approx(2 / 3, abs=0.02) and not fast["tempo_right"] and fast["tempo_ref"] == pytest.approx(120.0)
    assert beat_metrics(ref, np.array([]), Beats(ref, 120.0))["downbeat_f"] is None


def test_decoded_validation_scores_what_the_score_stage_would_write():
    """train_beat_model.validate_decoded: the shipped model's weights in the training network
    decode a clean 3/4 march (its first 60 s) the way the score stage decodes (conf/score), and score
    it as beat_decoding_eval.py does from the ONNX model: the same numbers."""
    import torch

    from transcribe.data.asap import Annotation
    from transcribe.score import configured_model_decoding, configured_model_note_window

    from .conftest import load_script

    train = load_script("train_beat_model")
    notes, truth = _march(bpm=100.0, bars=40, meter=3)
    ann = Annotation(truth, truth[::3], [(float(truth[0]), "3/4")], [(float(truth[0]), 0)])
    net = train.build_net(64)
    train.load_onnx_weights(net, beatmodel.WEIGHTS)
    torch.set_num_threads(1)
    got = train.validate_decoded(net, [{"notes": notes, "ann": ann}], seconds=60.0)
    assert net.training  # handed back in training mode
    n, ref, ref_down = train.first_seconds(notes, ann, 60.0)
    assert n.onsets.max() < 60.0 <= notes.onsets.max() and ref.max() < 60.0
    out = beatmodel.split_outputs(beatmodel.load()(beatmodel.note_features(n), configured_model_note_window()))
    want = train.decoded_scores(n, ref, ref_down, "3/4", out, **configured_model_decoding())
    assert [got[k] for k in ("decoded_beat_f", "decoded_downbeat_f", "decoded_ts_acc", "decoded_tempo_acc")] == \
        pytest.approx(list(want), abs=1e-3)
    assert got["decoded_beat_f"] > 0.5  # beats found (the shipped model reads this march in eighths: every beat, F 0.67)


def _tiny_asap(root, works: range = range(100, 140)):
    """An ASAP-like folder: the ``works`` (numbers; 124 hashes into the held-out side), one performance
    each (a 4/4 march, annotated), with metadata.csv, and a test_pieces.csv that names none of them;
    returns (asap, shared_data)."""
    from transcribe.data.asap import annotation_path, split
    from transcribe.notefiles import write_midi

    asap, shared = root / "asap", root / "shared"
    shared.mkdir(parents=True)
    (shared / "test_pieces.csv").write_text("maps_code,composer,work\nx_test,Nobody,Sonata op. 999\n")
    notes, beats = _march(bars=8)
    rows = ["composer,title,folder,midi_performance"]
    for w in works:
        folder = f"Haydn/Marches/m{w}"
        (asap / folder).mkdir(parents=True)
        midi = asap / folder / "p.mid"
        # no two files identical (the split keeps one of byte-identical files)
        write_midi(Notes(notes.onsets, notes.offsets, notes.pitches + w % 5, notes.velocities - w % 40), midi)
        annotation_path(midi).write_text("".join(f"{t}\t{t}\t{'db' if k % 4 == 0 else 'b'}{',4/4,2' if k == 0 else ''}\n"
                                                 for k, t in enumerate(beats)))
        rows.append(f"Haydn,March {w},{folder},{folder}/p.mid")
    (asap / "metadata.csv").write_text("\n".join(rows) + "\n")
    assert split(asap, shared)["val"], "no work of the fixture on the held-out side: add works"
    return asap, shared


def test_a_beat_model_trained_on_no_asap_performance(tmp_path, capsys, monkeypatch):
    """--no-asap-training: a real (tiny) run trains on the synthetic pieces only, ASAP still
    validating; without the flag the ASAP training performances are trained on as well; the
    flag refuses the ASAP-made sides."""
    from .conftest import load_script

    train = load_script("train_beat_model")
    monkeypatch.chdir(tmp_path)  # relative paths: the inner fold hashes the work's path as given
    asap, shared = _tiny_asap(Path("."))
    common = ["--asap", str(asap), "--shared-data", str(shared), "--patterns", "3", "--minutes", "0.02",
              "--val-every", "2", "--hidden", "8", "--batch", "2", "--length", "32", "--inner-val", "15"]

    def run(*extra) -> dict:
        assert train.main(common + ["--out", f"m{len(extra)}.onnx", *extra]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    open_meta = run("--no-asap-training")
    assert open_meta["train_performances"] == 3 and open_meta["asap_training"] is False
    assert open_meta["data"].startswith("no ASAP performance") and open_meta["val_performances"] > 0
    assert (tmp_path / "m1.onnx").is_file()
    full = run()
    asap_train = full["train_performances"] - 3
    assert asap_train > 0 and asap_train + full["val_performances"] < 40  # the held-out works neither
    assert full["asap_training"] is True
    with pytest.raises(SystemExit):
        train.main(common + ["--no-asap-training", "--score-midi"])
    assert "excludes --score-midi" in capsys.readouterr().err


@pytest.mark.parametrize("weights", ["beats.onnx", "staves.onnx"])
def test_the_shipped_staff_outputs_put_a_march_melody_and_bass_on_their_staves(weights):
    """weights/staves.onnx (the split point's prior) has a staff output like weights/beats.onnx (hands: model): a
    march's melody (C5 and up) is upper-staff and its bass (G2, G3) lower-staff for nearly every note."""
    notes, _ = _march()
    path = beatmodel.WEIGHTS.parent / weights
    p = beatmodel.staff_probability(notes, path)
    assert ((p >= 0) & (p <= 1)).all() and ((p > 0.5) == beatmodel.upper_staff(notes, path)).all()
    assert (p[notes.pitches >= 71] > 0.5).mean() > 0.9
    assert (p[notes.pitches <= 55] < 0.5).mean() > 0.9


def test_the_default_staves_write_the_demo_minuets_left_hand_better_than_the_split_point(monkeypatch):
    """conf/score's default (the split point with the staff model's prior, round 24) against the split point alone
    (staff_prior 0, continuity 0.3: before), on the demo minuet's notes and its hands as make_demo writes them: more
    notes on their hand's staff (the left hand's C4 of bar 8 and D4 of bar 7 go down), every melody note from G4 up
    still in the treble and every note from B3 down in the bass; with staff_prior 0 the model is not run."""
    from transcribe import config
    from transcribe.notefiles import read_tsv
    from transcribe.score import assign_staves, configured_triplet_cost, estimate_beats, quantise

    from .conftest import load_script

    demo = load_script("make_demo")
    left = {(bar * demo.BEATS_PER_BAR + beat, p) for bar, text in enumerate(demo.LEFT)
            for beat, _, pitches in demo.parse_bar(text) for p in pitches}
    notes = read_tsv(Path(beatmodel.__file__).parent / "demo" / "demo.tsv").sorted()
    q = quantise(notes, estimate_beats(None, None, notes), 4, triplet_cost=configured_triplet_cost())
    truth = np.array([(float(o), int(p)) not in left for o, p in zip(q.onsets, q.pitches)])
    assert (~truth).sum() == sum(len(ps) for text in demo.LEFT for _, _, ps in demo.parse_bar(text))  # all found
    default = assign_staves(notes, q)
    assert default[q.pitches >= 67].all() and not default[q.pitches <= 59].any()
    monkeypatch.setattr(config, "group_defaults", lambda group: {"staff_prior": 0.0, "hand_continuity": 0.3})
    monkeypatch.setattr(beatmodel, "STAVES_WEIGHTS", Path("/nonexistent/staves.onnx"))  # not read at 0
    plain = assign_staves(notes, q)
    assert (default == truth).sum() > (plain == truth).sum()
    assert not default[(q.onsets == 23.0) & (q.pitches == 60)].any() and plain[(q.onsets == 23.0) & (q.pitches == 60)].all()


def test_sequenced_files_from_several_folders_each_read_with_its_own_metadata(tmp_path, capsys, monkeypatch):
    """--extra-midi A B (piano-midi.de's and Mutopia's folders): a real tiny run trains on the files of both, each
    folder's test works left out by its own metadata.csv (a file named harmlessly whose metadata names a test work)."""
    from .conftest import load_script

    train = load_script("train_beat_model")
    monkeypatch.chdir(tmp_path)
    asap, shared = _tiny_asap(Path("."))
    for name, stems, rows in (("cpm", ("a1", "a2"), ""),
                              ("mutopia", ("b1", "sneaky"), "midis/sneaky.mid,Chopin,Prelude op. 28 no. 4\n")):
        (tmp_path / name / "midis").mkdir(parents=True)
        for stem in stems:
            _sequenced_six_eight(tmp_path / name / "midis" / f"{stem}.mid", bars=4)
        (tmp_path / name / "metadata.csv").write_text("midi,composer,title\n" + rows, encoding="utf-8")
    with open(shared / "test_pieces.csv", "a", encoding="utf-8") as fh:
        fh.write("chpn-p4,Chopin,Prelude op. 28 no. 4\n")
    assert train.main(["--asap", str(asap), "--shared-data", str(shared), "--no-asap-training", "--minutes", "0.02",
                       "--val-every", "2", "--hidden", "8", "--batch", "2", "--length", "32", "--inner-val", "15",
                       "--extra-midi", "cpm/midis", "mutopia/midis", "--out", "m.onnx"]) == 0
    out = capsys.readouterr().out
    assert "3 sequenced pieces from cpm/midis, mutopia/midis (1 left out" in out
    meta = json.loads(out.strip().splitlines()[-1])
    assert meta["train_performances"] == 3 and meta["extra_midi"] == ["cpm/midis", "mutopia/midis"]
