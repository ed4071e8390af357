"""The onsets-and-frames BiLSTM network (Hawthorne et al., ISMIR 2018), sized for CPUs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .notes import N_KEYS
from .targets import HEADS

LOGIT_HEADS = ("onset", "offset", "frame")  # heads whose outputs are logits; velocity is already 0..1


@dataclass(frozen=True)
class ModelConfig:
    """Network sizes (conf/model/*.yaml); stored in every checkpoint."""

    conv_channels: Sequence[int] = field(default=(16, 16, 32))
    frontend_size: int = 256
    lstm_hidden: int = 128
    dropout: float = 0.25

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelConfig":
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "conv_channels" in kw:
            kw["conv_channels"] = tuple(int(c) for c in kw["conv_channels"])
        return cls(**kw)


class ConvFrontEnd(nn.Module):
    """[B, T, F] log-CQT -> [B, T, frontend_size]: 3x3 convolutions over time and frequency,
    pooling frequency by 2 after the second and third, then a linear projection."""

    def __init__(self, n_bins: int, channels: Sequence[int], out_size: int, dropout: float):
        super().__init__()
        c1, c2, c3 = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d((1, 2)),
            nn.Dropout(dropout),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.BatchNorm2d(c3),
            nn.ReLU(),
            nn.MaxPool2d((1, 2)),
            nn.Dropout(dropout),
        )
        self.fc = nn.Sequential(nn.Linear(c3 * (n_bins // 4), out_size), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.conv(x.unsqueeze(1))  # [B, C, T, F/4]
        h = h.permute(0, 2, 1, 3).reshape(b, t, -1)
        return self.fc(h)


class BiLSTM(nn.Module):
    def __init__(self, in_size: int, hidden: int):
        super().__init__()
        self.rnn = nn.LSTM(in_size, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class OnsetsAndFrames(nn.Module):
    """Predicts onset, offset, frame and velocity activations [B, T, 88] (logits for the
    first three, a 0..1 value for velocity) from log-CQT features [B, T, n_bins].

    The onset BiLSTM feeds the onset and offset heads; the frame BiLSTM sees the front end's
    features together with the detached onset and offset probabilities, so a frame prediction
    is conditioned on where notes start and stop. Each head reads its BiLSTM's output and,
    through a skip connection, the front end's features: without the skip, the BiLSTMs sat at
    the label prior (frame loss flat) for hundreds of steps on MAPS; with it, learning starts
    at once, which matters when training on a CPU (see weights/MODEL_CARD.md).
    """

    def __init__(self, n_bins: int, cfg: ModelConfig):
        super().__init__()
        self.cfg, self.n_bins = cfg, n_bins
        h, f = cfg.lstm_hidden, cfg.frontend_size
        self.frontend = ConvFrontEnd(n_bins, cfg.conv_channels, f, cfg.dropout)
        self.onset_rnn = BiLSTM(f, h)
        self.onset_head = nn.Linear(2 * h + f, N_KEYS)
        self.offset_head = nn.Linear(2 * h + f, N_KEYS)
        self.frame_rnn = BiLSTM(f + 2 * N_KEYS, h)
        self.frame_head = nn.Linear(2 * h + f, N_KEYS)
        self.velocity_head = nn.Linear(f, N_KEYS)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.frontend(features)
        o = torch.cat([self.onset_rnn(z), z], dim=-1)
        onset = self.onset_head(o)
        offset = self.offset_head(o)
        cond = torch.cat([z, torch.sigmoid(onset).detach(), torch.sigmoid(offset).detach()], dim=-1)
        frame = self.frame_head(torch.cat([self.frame_rnn(cond), z], dim=-1))
        velocity = torch.sigmoid(self.velocity_head(z))
        return {"onset": onset, "offset": offset, "frame": frame, "velocity": velocity}


def probabilities(pred: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's outputs as probabilities per head (:data:`~transcribe.targets.HEADS`):
    sigmoid of the logit heads, velocity as it is. Training validation, the torch runner and
    the ONNX export all go through this."""
    return {k: torch.sigmoid(pred[k]) if k in LOGIT_HEADS else pred[k] for k in HEADS}


def loss(pred: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], weights: dict) -> dict[str, torch.Tensor]:
    """Per-head losses and their weighted ``total``: binary cross-entropy of the logit heads
    against the target rolls; squared error of velocity at onset frames only."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    losses = {k: bce(pred[k], targets[k]) for k in LOGIT_HEADS}
    mask = targets["onset"]
    losses["velocity"] = (mask * (pred["velocity"] - targets["velocity"]) ** 2).sum() / mask.sum().clamp(min=1)
    losses["total"] = sum(weights[k] * losses[k] for k in HEADS)
    return losses
