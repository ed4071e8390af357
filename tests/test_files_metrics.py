import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transcribe.audio import AudioError, load_audio
from transcribe.features import FeatureConfig, cqt_features
from transcribe.metrics import transcription_metrics
from transcribe.files import atomic_write
from transcribe.notefiles import read_csv, read_labels, read_midi, write_csv, write_json, write_midi
from transcribe.notes import Notes

from .conftest import SR, random_notes, synth, write_tsv


def assert_same_notes(a: Notes, b: Notes, atol: float = 1e-3) -> None:
    a, b = a.sorted(), b.sorted()
    assert len(a) == len(b)
    np.testing.assert_allclose(a.onsets, b.onsets, atol=atol)
    np.testing.assert_allclose(a.offsets, b.offsets, atol=atol)
    np.testing.assert_array_equal(a.pitches, b.pitches)
    np.testing.assert_array_equal(a.velocities, b.velocities)


def test_midi_csv_json_tsv_round_trip(tmp_path: Path):
    notes = random_notes(3)
    write_midi(notes, tmp_path / "x.mid")
    write_csv(notes, tmp_path / "x.csv")
    write_json(notes, tmp_path / "x.json")
    write_tsv(notes, tmp_path / "x.tsv")
    assert_same_notes(read_midi(tmp_path / "x.mid"), notes)
    assert_same_notes(read_csv(tmp_path / "x.csv"), read_labels(tmp_path / "x.mid"))
    assert_same_notes(read_labels(tmp_path / "x.tsv"), notes)
    rows = json.loads((tmp_path / "x.json").read_text())["notes"]
    assert [r["pitch"] for r in rows] == notes.sorted().pitches.tolist()
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(tmp_path / "x.mid"))
    assert [i.program for i in pm.instruments] == [0]  # Acoustic Grand Piano


def test_empty_notes_write_a_valid_midi(tmp_path: Path):
    write_midi(Notes.empty(), tmp_path / "e.mid")
    assert len(read_midi(tmp_path / "e.mid")) == 0


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "out.mid"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_metrics_perfect_and_shifted():
    notes = random_notes(5, n=30)
    perfect = transcription_metrics(notes, notes)
    for k in ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1"):
        assert perfect[k] == pytest.approx(1.0)
    shifted = Notes(notes.onsets + 0.2, notes.offsets + 0.2, notes.pitches, notes.velocities)
    m = transcription_metrics(notes, shifted)
    assert m["note_f1"] < 0.2 and m["note_offset_f1"] < 0.2
    transposed = Notes(notes.onsets, notes.offsets, notes.pitches + 1, notes.velocities)
    m = transcription_metrics(notes, transposed)
    assert m["note_f1"] < 0.1 and m["frame_f1"] < 0.5


def test_metrics_offsets_and_empty():
    notes = random_notes(6, n=20)
    short = Notes(notes.onsets, notes.onsets + 0.05, notes.pitches, notes.velocities)
    m = transcription_metrics(notes, short)
    assert m["note_f1"] == pytest.approx(1.0)
    assert m["note_offset_f1"] < 0.2
    assert transcription_metrics(notes, Notes.empty())["note_f1"] == 0.0
    assert transcription_metrics(Notes.empty(), Notes.empty())["note_f1"] == 1.0


def test_load_audio_resamples_and_downmixes(tmp_path: Path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1) * 0.5
    for ext in ("wav", "flac", "ogg"):
        sf.write(tmp_path / f"s.{ext}", stereo, 44100)
        y = load_audio(tmp_path / f"s.{ext}", 16000)
        assert y.dtype == np.float32 and y.ndim == 1
        assert abs(len(y) - 16000) <= 16
        assert 0.3 < np.abs(y).max() < 0.7


@pytest.mark.parametrize("kind,reason", [("missing", "no such file"), ("empty", "empty file"),
                                         ("text", "not a readable audio file"), ("dir", "is a directory")])
def test_load_audio_bad_input_names_file_and_reason(tmp_path: Path, kind: str, reason: str):
    path = tmp_path / "bad.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio\n" * 20)
    elif kind == "dir":
        path.mkdir()
    with pytest.raises(AudioError) as err:
        load_audio(path, SR)
    assert str(path) in str(err.value) and reason in str(err.value)


def test_plateaus_are_runs_of_three_equal_samples_away_from_zero():
    from transcribe.audio import flat_samples

    x = np.array([0.1, 0.5, 0.5, 0.2, 0.9, 0.9, 0.9, 0.9, 0.3, 0.1, 0.1, 0.1, -0.6, -0.6, -0.6])
    assert flat_samples(x) == 4 + 3  # two equal are no plateau, nor three near zero
    stereo = np.stack([x, np.zeros_like(x)], axis=1)
    assert flat_samples(stereo) == 7 and flat_samples(x[:2]) == 0


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_the_share_of_clipped_samples_is_read_with_the_audio(tmp_path: Path, subtype: str):
    """A recording driven past full scale (stereo, 44.1 kHz, as a recorder writes it) against the
    same recording at a safe level, peak-normalised: only the first is clipped."""
    from transcribe.audio import CLIPPED_SHARE, AudioStream

    y = synth(random_notes(5, seconds=6.0, n=12), sr=44100)
    y = np.stack([y, 0.8 * y], axis=1)
    clean, hot = tmp_path / "clean.wav", tmp_path / "hot.wav"
    sf.write(clean, y / np.abs(y).max(), 44100, subtype=subtype)
    sf.write(hot, np.clip(y * 4.0 / np.abs(y).max(), -1.0, 1.0), 44100, subtype=subtype)  # 12 dB too loud
    truly = float(np.mean(np.abs(y * 4.0 / np.abs(y).max()) >= 1.0))
    for path, want in ((clean, 0.0), (hot, truly)):
        stream = AudioStream(path, SR)
        assert stream.clipped_share == 0.0  # nothing read yet
        audio = np.concatenate(list(stream))
        assert len(audio) == pytest.approx(6.5 * SR, abs=SR)
        assert stream.clipped_share == pytest.approx(want, rel=0.25, abs=1e-6)
    assert truly > 2 * CLIPPED_SHARE  # called clipped
    unread = AudioStream(hot, SR, count_clipping=False)  # a pass that only measures the level
    assert len(np.concatenate(list(unread))) == len(audio) and unread.clipped_share == 0.0


def test_cqt_shape_and_pitch_bin():
    cfg = FeatureConfig()
    notes = Notes([0.0], [1.0], [69], [100])
    f = cqt_features(synth(notes, tail=0.0), cfg)
    assert f.shape == (cfg.n_frames(SR), 88 * 3)
    peak = int(f[5:25].mean(0).argmax())
    assert peak // 3 == 69 - 21  # the loudest bin belongs to key A4
    assert cqt_features(np.zeros(100, np.float32), cfg).shape == (1, 264)
