"""Input level (transcribe.level, infer.level_db): a recording is brought to the level the model
was trained at, so the same music recorded 50 dB quieter is transcribed the same; --no-level
turns it off. Measured, not assumed: the level of a tone is its RMS, silence does not move it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transcribe.infer import InferConfig
from transcribe.level import level_db, level_gain
from transcribe.notefiles import read_csv
from transcribe.notes import Notes

from .conftest import SR, synth, write_tsv
from .test_cli import transcribe

QUIET = 0.003  # -50 dB
_ONSETS = 0.4 + 0.5 * np.arange(10)
PIECE = Notes(_ONSETS, _ONSETS + 0.4, np.array([40, 47, 52, 55, 60, 64, 67, 71, 76, 83]),
              np.array([30, 60, 90, 110, 45, 70, 100, 55, 85, 40]))


def test_the_level_of_a_tone_is_its_rms_whatever_the_silence_and_the_blocks():
    t = np.arange(3 * SR) / SR
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    rms_db = 20 * np.log10(0.2 / np.sqrt(2))
    assert abs(level_db([tone], SR) - rms_db) < 0.01
    padded = np.concatenate([np.zeros(SR, np.float32), tone, np.zeros(2 * SR, np.float32)])  # half silence
    assert abs(level_db([padded], SR) - rms_db) < 0.01
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(len(padded), 7, replace=False))
    assert level_db(np.split(padded, cuts), SR) == pytest.approx(level_db([padded], SR), abs=1e-9)
    assert level_db([tone * QUIET], SR) == pytest.approx(rms_db + 20 * np.log10(QUIET), abs=1e-6)


def test_the_gain_reaches_the_target_within_its_limit_and_leaves_silence_and_off_alone():
    assert level_gain(-50.0, -30.0, 40.0) == pytest.approx(10.0)
    assert level_gain(-90.0, -30.0, 40.0) == pytest.approx(100.0)  # +60 dB wanted, +40 given
    assert level_gain(0.0, -30.0, 40.0) == pytest.approx(10 ** -1.5)
    assert level_gain(-150.0, -30.0, 40.0) == 1.0  # digital silence
    assert level_gain(-50.0, None, 40.0) == 1.0  # off
    assert level_db([np.zeros(10, np.float32)], SR) < -150  # shorter than a frame, silent


@pytest.fixture(scope="module")
def pieces(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """The same notes at a usual level and 50 dB quieter (float WAV: no quantisation)."""
    y = synth(PIECE)
    folder = tmp_path_factory.mktemp("levels")
    sf.write(folder / "loud.wav", y, SR, subtype="FLOAT")
    sf.write(folder / "quiet.wav", y * QUIET, SR, subtype="FLOAT")
    return folder / "loud.wav", folder / "quiet.wav", y


def notes_of(path: Path, out: Path, *options: str) -> tuple[Notes, dict]:
    proc = transcribe(str(path), "-o", str(out), "-f", "csv", "-q", "--report", str(out / "report.json"), *options)
    assert proc.returncode == 0, proc.stderr
    return read_csv(out / f"{path.stem}.csv"), json.loads((out / "report.json").read_text())


def test_a_quiet_recording_transcribes_as_the_loud_one_and_no_level_keeps_its_level(pieces, tmp_path):
    loud, quiet, _ = pieces
    a, report = notes_of(loud, tmp_path / "a")
    b, _ = notes_of(quiet, tmp_path / "b")
    assert len(a) >= 8 and report["settings"]["infer"]["level_db"] == InferConfig.default().level_db < -20
    np.testing.assert_array_equal(b.pitches, a.pitches)
    np.testing.assert_allclose(b.onsets, a.onsets, atol=1e-3)
    np.testing.assert_array_equal(b.velocities, a.velocities)
    c, report = notes_of(quiet, tmp_path / "c", "--no-level")
    assert report["settings"]["infer"]["level_db"] is None
    # At its own level (-66 dBFS) soft notes sink under the features' floor (the top note here: stage 7 lost
    # two, stage 8 one), velocities squeeze.
    assert len(c) < len(a) and np.ptp(c.velocities) < np.ptp(a.velocities) - 10, (a, c)


def test_the_api_on_an_array_applies_the_same_level(pieces):
    from transcribe import Transcriber

    loud, quiet, y = pieces
    tr = Transcriber.from_checkpoint()
    whole = tr.transcribe(y * QUIET, SR)
    streamed = tr.transcribe_file(loud)
    np.testing.assert_array_equal(whole.pitches, streamed.pitches)
    np.testing.assert_allclose(whole.onsets, streamed.onsets, atol=1e-3)
    off = Transcriber.from_checkpoint(level_db=None)  # None turns it off (not "unchanged")
    assert off.infer.level_db is None and len(off.transcribe(y * QUIET, SR)) < len(whole)


def test_training_validation_sees_the_level_the_command_sees(pieces, tmp_path):
    """Validation during training scores features made as `transcribe` makes them: the quiet copy
    gives the loud copy's features; with the level step off, the cached features as they are."""
    from transcribe.data.cache import FeatureCache
    from transcribe.data.dataset import CropDataset
    from transcribe.features import FeatureConfig, cqt_features
    from transcribe.train import validation_features

    loud, quiet, y = pieces
    for path in (loud, quiet):
        write_tsv(PIECE, path.with_suffix(".tsv"))
    cfg = FeatureConfig()
    data = CropDataset([(loud, loud.with_suffix(".tsv")), (quiet, quiet.with_suffix(".tsv"))], cfg,
                       FeatureCache(tmp_path / "cache", cfg))
    on, off = InferConfig.default(), InferConfig.default().with_overrides(level_db=None)
    a, b = (validation_features(rec, cfg, on) for rec in data.recordings)
    np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(a, cqt_features(y * np.float32(10 ** ((on.level_db - level_db([y], SR)) / 20)), cfg),
                               atol=1e-3)
    cached = validation_features(data.recordings[1], cfg, off)
    assert np.array_equal(cached, np.asarray(data.recordings[1].features, dtype=np.float32))
    heard = a > np.log(cfg.log_floor) + 3  # bins well above the floor at the training level
    assert np.median((a - cached)[heard]) > 3  # the quiet copy at its own level: far lower (33 dB = 3.8 in log)
