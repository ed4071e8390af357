"""CQT-domain pitch shifting of training crops: a crop shifted by s semitones looks like the same
music played s semitones higher (its features and its targets), and runs without it draw the
same batches as before it existed."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from transcribe.data.pitch_shift import draw_semitones, shift_crop
from transcribe.features import FeatureConfig, cqt_features
from transcribe.notes import Notes
from transcribe.targets import HEADS, NoteFrames

from .conftest import SR, synth


def crop_of(pitches: list[int], cfg: FeatureConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    notes = Notes(np.array([0.2, 0.9]), np.array([0.8, 1.6]), np.array(pitches), np.array([80, 80]))
    feats = cqt_features(synth(notes, seed=1), cfg)
    rolls = NoteFrames.from_notes(notes, cfg.frame_rate).rolls(len(feats))
    return feats, {k: rolls[k].astype(np.float32) for k in HEADS}


@pytest.mark.parametrize("semitones", [2, -3])
def test_a_shifted_crop_is_the_music_played_higher_or_lower(semitones):
    cfg = FeatureConfig()
    (feats, targets), (played, played_targets) = crop_of([57, 64], cfg), crop_of([57 + semitones, 64 + semitones], cfg)
    shifted, shifted_targets = shift_crop(feats, targets, semitones, cfg.bins_per_semitone, float(np.log(cfg.log_floor)))
    for k in HEADS:
        np.testing.assert_array_equal(shifted_targets[k], played_targets[k])
    sounding = played_targets["frame"].any(axis=1)
    # the spectrum of each sounding frame peaks in the bins of the key played there
    assert (shifted[sounding].argmax(axis=1) == played[sounding].argmax(axis=1)).mean() > 0.9
    corr = np.corrcoef(shifted[sounding].ravel(), played[sounding].ravel())[0, 1]
    unshifted = np.corrcoef(feats[sounding].ravel(), played[sounding].ravel())[0, 1]
    assert corr > 0.9 and corr > unshifted + 0.2, (corr, unshifted)


def test_edges_get_silence_and_keys_leave_the_range():
    cfg = FeatureConfig()
    floor = float(np.log(cfg.log_floor))
    feats = np.zeros((4, cfg.n_bins), dtype=np.float32)
    targets = {k: np.zeros((4, 88), dtype=np.float32) for k in HEADS}
    targets["frame"][:, 87] = 1  # C8
    targets["onset"][:, 0] = 1   # A0
    pedal = np.ones((4, 1), dtype=np.float32)
    up, t_up = shift_crop(feats, {**targets, "pedal": pedal}, 1, cfg.bins_per_semitone, floor)
    assert (up[:, :3] == floor).all() and (up[:, 3:] == 0).all()
    assert t_up["frame"].sum() == 0 and t_up["onset"][:, 1].all()
    assert t_up["pedal"] is pedal  # the pedal does not move
    down, t_down = shift_crop(feats, targets, -1, cfg.bins_per_semitone, floor)
    assert (down[:, -3:] == floor).all() and t_down["frame"][:, 86].all() and t_down["onset"].sum() == 0


def test_drawing_shifts():
    cfg = OmegaConf.create({"p": 0.5, "semitones": [-2, 2]})
    draws = [draw_semitones(np.random.default_rng(i), cfg) for i in range(400)]
    assert set(draws) == {-2, -1, 0, 1, 2}
    assert 0.4 < np.mean(np.array(draws) == 0) < 0.6
    rng = np.random.default_rng(3)
    before = rng.bit_generator.state
    assert draw_semitones(rng, OmegaConf.create({"p": 0.0, "semitones": [-2, 2]})) == 0
    assert rng.bit_generator.state == before  # off: nothing drawn, batches as before


def test_batches_are_shifted_when_asked(labelled_folder, tmp_path):
    """Through the data set: with pitch_shift p=1 every crop of a batch has its targets moved."""
    from transcribe.config import compose
    from transcribe.data.cache import FeatureCache
    from transcribe.data.dataset import CropDataset
    from transcribe.data.pairs import find_pairs

    cfg = FeatureConfig()
    data = CropDataset(find_pairs(labelled_folder), cfg, FeatureCache(tmp_path / "cache", cfg))
    aug = compose("train", ["augment.pitch_shift.p=1", "augment.pitch_shift.semitones=[2,2]"]).augment
    for seed in range(3):  # one crop per batch: the shift is drawn after the crop's own draws
        plain = data.sample(np.random.default_rng(seed), 1, 64)
        shifted = data.sample(np.random.default_rng(seed), 1, 64, aug, p_aug=0.0)
        assert plain["frame"].sum() > 0
        np.testing.assert_array_equal(shifted["frame"][..., 2:], plain["frame"][..., :-2])
        assert (shifted["frame"][..., :2] == 0).all()
        np.testing.assert_array_equal(shifted["features"][..., 6:], plain["features"][..., :-6])
