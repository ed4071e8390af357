"""The training losses' options (issue 26): quiet notes weighted in the onset loss, velocity as BCE."""

from __future__ import annotations

import pytest
import torch

from transcribe.model import loss

WEIGHTS = {"onset": 1.0, "offset": 0.5, "frame": 1.0, "velocity": 0.5}


def batch(velocities: tuple[float, float]) -> tuple[dict, dict]:
    """Two notes' onsets on keys 10 and 20 of a [1, 8, 88] roll, with these velocities (0..1); the
    predictions hit every target except both onsets, which they miss by the same margin."""
    t = {k: torch.zeros(1, 8, 88) for k in ("onset", "offset", "frame", "velocity")}
    for key, v in zip((10, 20), velocities):
        t["onset"][0, 2, key] = 1.0
        t["velocity"][0, 2, key] = v
    pred = {k: torch.full((1, 8, 88), -6.0) for k in ("onset", "offset", "frame")}
    pred["velocity"] = t["velocity"].clone()
    return pred, t


def test_without_gain_the_onset_loss_is_plain_bce():
    pred, t = batch((0.2, 0.9))
    plain = torch.nn.functional.binary_cross_entropy_with_logits(pred["onset"], t["onset"])
    assert torch.allclose(loss(pred, t, WEIGHTS)["onset"], plain)


def test_quiet_notes_count_more_with_the_soft_onset_gain():
    pred, t = batch((0.2, 0.9))
    miss_quiet = {**pred, "onset": pred["onset"].clone()}
    miss_quiet["onset"][0, 2, 20] = 6.0  # the loud onset found, the quiet one missed
    miss_loud = {**pred, "onset": pred["onset"].clone()}
    miss_loud["onset"][0, 2, 10] = 6.0  # the quiet onset found, the loud one missed
    plain = [loss(p, t, WEIGHTS)["onset"] for p in (miss_quiet, miss_loud)]
    assert torch.allclose(plain[0], plain[1])  # without the gain both misses cost the same
    soft = [loss(p, t, WEIGHTS, soft_onset_gain=2.0)["onset"] for p in (miss_quiet, miss_loud)]
    assert soft[0] > 1.5 * soft[1]  # with it, missing the quiet note costs more
    # normalised: two equally loud notes weigh as much as without the gain
    pred2, t2 = batch((0.5, 0.5))
    assert torch.allclose(loss(pred2, t2, WEIGHTS, soft_onset_gain=2.0)["onset"], loss(pred2, t2, WEIGHTS)["onset"])


def test_velocity_bce_is_least_at_the_target_and_only_at_onsets():
    pred, t = batch((0.3, 0.8))
    at_target = loss(pred, t, WEIGHTS, velocity_loss="bce")["velocity"]
    for delta in (-0.1, 0.1):
        off = {**pred, "velocity": (pred["velocity"] + delta).clamp(0, 1)}
        assert loss(off, t, WEIGHTS, velocity_loss="bce")["velocity"] > at_target
    elsewhere = {**pred, "velocity": pred["velocity"].clone()}
    elsewhere["velocity"][0, 5, 40] = 0.9  # a frame with no onset: not scored
    assert torch.equal(loss(elsewhere, t, WEIGHTS, velocity_loss="bce")["velocity"], at_target)
    with pytest.raises(ValueError, match="velocity_loss"):
        loss(pred, t, WEIGHTS, velocity_loss="l1")
