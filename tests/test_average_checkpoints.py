"""scripts/average_checkpoints.py: the element-wise mean of checkpoints of one network."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from transcribe.checkpoint import Checkpoint, config_dict, save_checkpoint
from transcribe.decode import DecodeConfig
from transcribe.features import FeatureConfig
from transcribe.model import ModelConfig, OnsetsAndFrames

from .conftest import far_batch_norm, load_script

FEATURES = FeatureConfig(n_keys=16)  # 48 bins
SMALL = ModelConfig(conv_channels=(4, 4, 8), frontend_size=32, lstm_hidden=16, dropout=0.0)


def saved(path, cfg: ModelConfig, seed: int, step: int) -> OnsetsAndFrames:
    torch.manual_seed(seed)
    model = far_batch_norm(OnsetsAndFrames(FEATURES.n_bins, cfg))
    save_checkpoint(path, model, config_dict(FEATURES, cfg, DecodeConfig()), step=step, cpu_seconds=10.0 * step)
    return model


def test_the_mean_of_two_steps_and_a_refusal_of_two_networks(tmp_path, capsys):
    script = load_script("average_checkpoints")
    a, b = saved(tmp_path / "a.pt", SMALL, 0, 100), saved(tmp_path / "b.pt", SMALL, 1, 200)
    assert script.main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "m.pt")]) == 0
    mean = Checkpoint(tmp_path / "m.pt")
    sa, sb, sm = a.state_dict(), b.state_dict(), mean.build_model().state_dict()
    for key, value in sm.items():
        if value.is_floating_point():
            assert torch.allclose(value, (sa[key] + sb[key]) / 2, atol=1e-6), key
    assert "running_mean" in " ".join(sm) and not torch.equal(sm["frontend.conv.1.running_mean"], sa["frontend.conv.1.running_mean"])
    assert mean.state["step"] == 200 and mean.state["provenance"]["steps"] == [100, 200]
    assert "the mean of steps 100, 200" in capsys.readouterr().out
    saved(tmp_path / "c.pt", replace(SMALL, lstm_hidden=20), 2, 300)
    with pytest.raises(SystemExit, match="c.pt: its feature or model config differs"):
        script.main([str(tmp_path / "a.pt"), str(tmp_path / "c.pt"), "--out", str(tmp_path / "x.pt")])
    assert not (tmp_path / "x.pt").exists()
