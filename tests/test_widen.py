"""transcribe.widen: a narrower network's weights in a wider one compute the same outputs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from transcribe.model import ModelConfig, OnsetsAndFrames
from transcribe.widen import can_widen, widen_state

from .conftest import far_batch_norm

N_BINS = 48
NARROW = ModelConfig(conv_channels=(4, 4, 8), frontend_size=32, lstm_hidden=16, dropout=0.0, pedal_head=True,
                     pedal_hidden=8)


def trained_like(cfg: ModelConfig, seed: int) -> OnsetsAndFrames:
    """A network with random weights and batch-norm statistics far from their defaults."""
    torch.manual_seed(seed)
    return far_batch_norm(OnsetsAndFrames(N_BINS, cfg))


@pytest.mark.parametrize("wider", [
    dict(conv_channels=(6, 8, 12), frontend_size=48, lstm_hidden=24),
    dict(lstm_hidden=20),
    dict(conv_channels=(4, 4, 16)),
    dict(frontend_size=40, pedal_hidden=12),
])
def test_widened_network_computes_what_the_narrow_one_did(wider):
    narrow = trained_like(NARROW, 0)
    new_cfg = replace(NARROW, **wider)
    torch.manual_seed(1)
    wide = OnsetsAndFrames(N_BINS, new_cfg)
    fresh = {k: v.clone() for k, v in wide.state_dict().items()}
    wide.load_state_dict(widen_state(narrow.state_dict(), NARROW, wide))
    wide.eval()
    x = torch.randn(3, 80, N_BINS)
    with torch.no_grad():
        a, b = narrow(x), wide(x)
    for head in a:
        assert torch.allclose(a[head], b[head], atol=1e-5), head
    # the new units are there, with their fresh fan-in (they are free to learn)
    w = wide.state_dict()["onset_rnn.rnn.weight_ih_l0"]
    h_old, h_new = NARROW.lstm_hidden, new_cfg.lstm_hidden
    if h_new > h_old:
        assert torch.equal(w[h_old:h_new], fresh["onset_rnn.rnn.weight_ih_l0"][h_old:h_new])
        assert torch.count_nonzero(wide.state_dict()["onset_head.weight"][:, h_old:h_new]) == 0


def test_only_wider_networks_can_be_widened():
    assert can_widen(NARROW, replace(NARROW, lstm_hidden=32))
    assert not can_widen(NARROW, NARROW)  # nothing to widen
    assert not can_widen(NARROW, replace(NARROW, lstm_hidden=32, frontend_size=16))
    assert not can_widen(NARROW, replace(NARROW, conv_channels=(4, 8)))
    with pytest.raises(ValueError, match="cannot widen"):
        widen_state(trained_like(NARROW, 0).state_dict(), NARROW,
                    OnsetsAndFrames(N_BINS, replace(NARROW, lstm_hidden=8)))
