"""The onsets-and-frames BiLSTM network (Hawthorne et al., ISMIR 2018), sized for CPUs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from .notes import N_KEYS
from .targets import HEADS, PEDAL_HEADS, PEDAL_MASK

LOGIT_HEADS = ("onset", "offset", "frame", *PEDAL_HEADS)  # heads whose outputs are logits; velocity is already 0..1
PEDAL_PREFIX = "pedal_"  # names of the pedal head's parameters start with it (fresh when fine-tuning without)


@dataclass(frozen=True)
class ModelConfig:
    """Network sizes (conf/model/*.yaml); stored in every checkpoint."""

    conv_channels: Sequence[int] = field(default=(16, 16, 32))
    frontend_size: int = 256
    lstm_hidden: int = 128
    dropout: float = 0.25
    pedal_head: bool = False  # checkpoints from before the pedal head have none (their config lacks the key)
    pedal_hidden: int = 32

    @property
    def heads(self) -> tuple[str, ...]:
        """The outputs of a network of this config: :data:`HEADS`, then :data:`PEDAL_HEADS` if it has them."""
        return HEADS + PEDAL_HEADS if self.pedal_head else HEADS

    def without_pedal(self) -> "ModelConfig":
        """This config with no pedal head: what the note network is (compared when fine-tuning)."""
        return replace(self, pedal_head=False, pedal_hidden=ModelConfig.pedal_hidden)

    def same_network(self, other: "ModelConfig") -> bool:
        """Whether ``other`` builds the same network (pedal sizes count only with a pedal head)."""
        norm = [c if c.pedal_head else c.without_pedal() for c in (self, other)]
        return norm[0] == norm[1]

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
    first three, a 0..1 value for velocity) from log-CQT features [B, T, n_bins]; with
    ``cfg.pedal_head``, also sustain pedal logits [B, T, 1] (:data:`~transcribe.targets.PEDAL_HEADS`:
    down, pressed, lifted) from a small BiLSTM over the front end's features and the frame
    probabilities, both detached (a lift shows as many sounding notes stopping together; the
    pedal loss never changes the note network). The pedal head's
    modules are created last, so the note network's initial weights do not depend on it.

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
        if cfg.pedal_head:
            self.pedal_rnn = BiLSTM(f + N_KEYS, cfg.pedal_hidden)
            self.pedal_head = nn.Linear(2 * cfg.pedal_hidden + f, len(PEDAL_HEADS))

    @property
    def heads(self) -> tuple[str, ...]:
        """The names of the outputs, in order."""
        return self.cfg.heads

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.frontend(features)
        o = torch.cat([self.onset_rnn(z), z], dim=-1)
        onset = self.onset_head(o)
        offset = self.offset_head(o)
        cond = torch.cat([z, torch.sigmoid(onset).detach(), torch.sigmoid(offset).detach()], dim=-1)
        frame = self.frame_head(torch.cat([self.frame_rnn(cond), z], dim=-1))
        velocity = torch.sigmoid(self.velocity_head(z))
        out = {"onset": onset, "offset": offset, "frame": frame, "velocity": velocity}
        if self.cfg.pedal_head:
            # The pedal head reads the note network and never trains it: with the front end's
            # gradients shared, fine-tuning a pedal head from the shipped weights dropped the
            # validation note F1 from 0.801 to 0.698 in 250 steps (runs/sampled_v2_pedal).
            zd = z.detach()
            p = torch.cat([zd, torch.sigmoid(frame).detach()], dim=-1)
            pedal = self.pedal_head(torch.cat([self.pedal_rnn(p), zd], dim=-1))
            out.update({k: pedal[..., i: i + 1] for i, k in enumerate(PEDAL_HEADS)})
        return out


def probabilities(pred: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's outputs as probabilities per head (:data:`~transcribe.targets.HEADS`, then the
    pedal heads where the network has them): sigmoid of the logit heads, velocity as it is.
    Training validation, the torch runner and the ONNX export all go through this."""
    return {k: torch.sigmoid(pred[k]) if k in LOGIT_HEADS else pred[k] for k in HEADS + PEDAL_HEADS if k in pred}


def loss(pred: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], weights: dict) -> dict[str, torch.Tensor]:
    """Per-head losses and their weighted ``total``: binary cross-entropy of the note logit heads
    against the target rolls; squared error of velocity at onset frames only; for a network with
    a pedal head, binary cross-entropy of the pedal heads over the frames whose pedal is known
    (``targets["pedal_mask"]``; none known: a zero loss that moves nothing)."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    losses = {k: bce(pred[k], targets[k]) for k in ("onset", "offset", "frame")}
    mask = targets["onset"]
    losses["velocity"] = (mask * (pred["velocity"] - targets["velocity"]) ** 2).sum() / mask.sum().clamp(min=1)
    if PEDAL_HEADS[0] in pred:
        known = targets.get(PEDAL_MASK)
        known = torch.ones_like(pred[PEDAL_HEADS[0]]) if known is None else known.to(pred[PEDAL_HEADS[0]].dtype)
        for k in PEDAL_HEADS:
            per_frame = bce(pred[k], targets[k], reduction="none")
            losses[k] = (known * per_frame).sum() / known.sum().clamp(min=1)
    losses["total"] = sum(weights[k] * losses[k] for k in losses)
    return losses
