"""The onsets-and-frames BiLSTM network (Hawthorne et al., ISMIR 2018), sized for CPUs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from .harmonic import HarmonicBranch, KeyTrunk
from .notes import N_KEYS
from .targets import HEADS, PEDAL_HEADS, PEDAL_MASK

LOGIT_HEADS = ("onset", "offset", "frame", *PEDAL_HEADS)  # heads whose outputs are logits; velocity is already 0..1
PEDAL_PREFIX = "pedal_"  # names of the pedal head's parameters start with it (fresh when fine-tuning without)
BRANCH_PREFIX = "harmonic_branch."  # the grafted harmonic branch's parameters (fresh when grafted onto a checkpoint)
ARCHS = ("onsets_frames", "harmonic")  # values of ModelConfig.arch


@dataclass(frozen=True)
class ModelConfig:
    """Network sizes (conf/model/*.yaml); stored in every checkpoint. ``arch`` picks the network
    (:func:`build_network`): ``onsets_frames`` (:class:`OnsetsAndFrames`; checkpoints without the key)
    or ``harmonic`` (:class:`HarmonicKeyNet`, sized by the ``front_channels`` .. ``key_lstm`` keys)."""

    arch: str = "onsets_frames"
    conv_channels: Sequence[int] = field(default=(16, 16, 32))
    frontend_size: int = 256
    lstm_hidden: int = 128
    dropout: float = 0.25
    pedal_head: bool = False  # checkpoints from before the pedal head have none (their config lacks the key)
    pedal_hidden: int = 32
    harmonic_branch: int = 0  # onsets_frames: channels of a residual harmonic branch on the front end (0 = none)
    n_harmonics: int = 8      # partials a harmonic convolution sees (the fundamental included)
    front_channels: int = 8   # harmonic: channels of the full-resolution convolution
    width: int = 48           # harmonic: channels per key after it
    time_layers: int = 2      # harmonic: convolutions along time within each key
    key_lstm: int = 32        # harmonic: units per direction of the BiLSTMs shared by all keys
    harmonic_frames: int = 3  # harmonic: frames the harmonic convolution spans (checkpoints without the key: 3)

    @property
    def heads(self) -> tuple[str, ...]:
        """The outputs of a network of this config: :data:`HEADS`, then :data:`PEDAL_HEADS` if it has them."""
        return HEADS + PEDAL_HEADS if self.pedal_head else HEADS

    def without_pedal(self) -> "ModelConfig":
        """This config with no pedal head: what the note network is (compared when fine-tuning)."""
        return replace(self, pedal_head=False, pedal_hidden=ModelConfig.pedal_hidden)

    def grafts_onto(self, other: "ModelConfig") -> bool:
        """Whether this network is ``other``'s (pedal aside) with a harmonic branch added."""
        return (self.harmonic_branch > 0 and other.harmonic_branch == 0
                and replace(self, harmonic_branch=0).without_pedal() == other.without_pedal())

    def same_network(self, other: "ModelConfig") -> bool:
        """Whether ``other`` builds the same network (pedal sizes count only with a pedal head)."""
        norm = [c if c.pedal_head else c.without_pedal() for c in (self, other)]
        return norm[0] == norm[1]

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelConfig":
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "conv_channels" in kw:
            kw["conv_channels"] = tuple(int(c) for c in kw["conv_channels"])
        cfg = cls(**kw)
        if cfg.arch not in ARCHS:
            raise ValueError(f"model.arch={cfg.arch!r}: expected one of {', '.join(ARCHS)}")
        return cfg


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
        if cfg.harmonic_branch:  # created after everything else: the other weights' initial values do not depend on it
            self.harmonic_branch = HarmonicBranch(n_bins, cfg.harmonic_branch, f, cfg.n_harmonics)

    @property
    def heads(self) -> tuple[str, ...]:
        """The names of the outputs, in order."""
        return self.cfg.heads

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.frontend(features)
        if self.cfg.harmonic_branch:
            z = z + self.harmonic_branch(features)
        o = torch.cat([self.onset_rnn(z), z], dim=-1)
        onset = self.onset_head(o)
        offset = self.offset_head(o)
        cond = torch.cat([z, torch.sigmoid(onset).detach(), torch.sigmoid(offset).detach()], dim=-1)
        frame = self.frame_head(torch.cat([self.frame_rnn(cond), z], dim=-1))
        velocity = torch.sigmoid(self.velocity_head(z))
        out = {"onset": onset, "offset": offset, "frame": frame, "velocity": velocity}
        if self.cfg.pedal_head:
            out.update(pedal_outputs(self, z, frame))
        return out


def pedal_outputs(net: nn.Module, z: torch.Tensor, frame: torch.Tensor) -> dict[str, torch.Tensor]:
    """The pedal heads' logits [B, T, 1] from ``net.pedal_rnn`` / ``net.pedal_head`` over the
    network's features ``z`` [B, T, F] and its frame logits. The pedal head reads the note network
    and never trains it: with the front end's gradients shared, fine-tuning a pedal head from the
    shipped weights dropped the validation note F1 from 0.801 to 0.698 in 250 steps
    (runs/sampled_v2_pedal)."""
    zd = z.detach()
    p = torch.cat([zd, torch.sigmoid(frame).detach()], dim=-1)
    pedal = net.pedal_head(torch.cat([net.pedal_rnn(p), zd], dim=-1))
    return {k: pedal[..., i: i + 1] for i, k in enumerate(PEDAL_HEADS)}


class HarmonicKeyNet(nn.Module):
    """A harmonic network with pitch invariance (the shape of HPPNet-sp, Wei et al., ISMIR 2022,
    cut to a CPU budget): per-key features from :class:`~transcribe.harmonic.KeyTrunk`, then two
    small BiLSTMs shared by all 88 keys, running along time on each key's features (the keys
    folded into the batch). The onset BiLSTM feeds the onset and offset heads; the frame BiLSTM
    also sees the detached onset and offset probabilities, as in :class:`OnsetsAndFrames`. Each
    head reads its BiLSTM and, through a skip, the key's features; velocity reads the features.
    Same outputs as :class:`OnsetsAndFrames`; the pedal head (``cfg.pedal_head``) reads the key
    features pooled over the keys (mean and max) and the frame probabilities."""

    def __init__(self, n_bins: int, cfg: ModelConfig):
        super().__init__()
        self.cfg, self.n_bins = cfg, n_bins
        w, h = cfg.width, cfg.key_lstm
        self.trunk = KeyTrunk(n_bins, cfg.front_channels, w, cfg.n_harmonics, cfg.time_layers, cfg.dropout,
                              cfg.harmonic_frames)
        self.onset_rnn = BiLSTM(w, h)
        self.onset_head = nn.Linear(2 * h + w, 2)  # onset, offset
        self.frame_rnn = BiLSTM(w + 2, h)
        self.frame_head = nn.Linear(2 * h + w, 1)
        self.velocity_head = nn.Linear(w, 1)
        if cfg.pedal_head:
            self.pedal_rnn = BiLSTM(2 * w + N_KEYS, cfg.pedal_hidden)
            self.pedal_head = nn.Linear(2 * cfg.pedal_hidden + 2 * w, len(PEDAL_HEADS))

    @property
    def heads(self) -> tuple[str, ...]:
        """The names of the outputs, in order."""
        return self.cfg.heads

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t, _ = features.shape
        z = self.trunk(features)  # [B, T, 88, W]
        k = z.permute(0, 2, 1, 3).reshape(b * N_KEYS, t, -1)  # one sequence per key

        def per_key(x: torch.Tensor) -> torch.Tensor:  # [B*88, T] -> [B, T, 88]
            return x.reshape(b, N_KEYS, t).permute(0, 2, 1)

        on_off = self.onset_head(torch.cat([self.onset_rnn(k), k], dim=-1))
        cond = torch.cat([k, torch.sigmoid(on_off).detach()], dim=-1)
        frame = self.frame_head(torch.cat([self.frame_rnn(cond), k], dim=-1))
        out = {"onset": per_key(on_off[..., 0]), "offset": per_key(on_off[..., 1]), "frame": per_key(frame[..., 0]),
               "velocity": per_key(torch.sigmoid(self.velocity_head(k))[..., 0])}
        if self.cfg.pedal_head:
            pooled = torch.cat([z.mean(dim=2), z.amax(dim=2)], dim=-1)
            out.update(pedal_outputs(self, pooled, out["frame"]))
        return out


def build_network(n_bins: int, cfg: ModelConfig) -> nn.Module:
    """The network ``cfg.arch`` names, for features of ``n_bins`` bins."""
    return HarmonicKeyNet(n_bins, cfg) if cfg.arch == "harmonic" else OnsetsAndFrames(n_bins, cfg)


def probabilities(pred: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's outputs as probabilities per head (:data:`~transcribe.targets.HEADS`, then the
    pedal heads where the network has them): sigmoid of the logit heads, velocity as it is.
    Training validation, the torch runner and the ONNX export all go through this."""
    return {k: torch.sigmoid(pred[k]) if k in LOGIT_HEADS else pred[k] for k in HEADS + PEDAL_HEADS if k in pred}


VELOCITY_LOSSES = ("mse", "bce")  # values of train.velocity_loss


def loss(pred: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], weights: dict,
         velocity_loss: str = "mse", soft_onset_gain: float = 0.0) -> dict[str, torch.Tensor]:
    """Per-head losses and their weighted ``total``: binary cross-entropy of the note logit heads
    against the target rolls; for velocity at onset frames only, squared error (``mse``) or binary
    cross-entropy against velocity / 127 (``bce``, Kong et al. 2021); for a network with
    a pedal head, binary cross-entropy of the pedal heads over the frames whose pedal is known
    (``targets["pedal_mask"]``; none known: a zero loss that moves nothing).

    ``soft_onset_gain`` g > 0 weights the onset loss at each note's onset frames by
    1 + g (1 - velocity / 127), so quiet notes count up to 1 + g times as much as the loudest
    (soft notes are the ones the network misses; the weights are normalised to a mean of 1 over
    the onset frames, so the loss keeps its scale)."""
    if velocity_loss not in VELOCITY_LOSSES:
        raise ValueError(f"train.velocity_loss={velocity_loss!r}: expected one of {', '.join(VELOCITY_LOSSES)}")
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    losses = {k: bce(pred[k], targets[k]) for k in ("offset", "frame")}
    mask = targets["onset"]
    if soft_onset_gain > 0:
        quiet = mask * (1 + soft_onset_gain * (1 - targets["velocity"]))
        quiet = quiet * mask.sum().clamp(min=1) / quiet.sum().clamp(min=1e-6)  # mean 1 over onset frames
        per_frame = bce(pred["onset"], mask, reduction="none")
        losses["onset"] = (per_frame * torch.where(mask > 0, quiet, torch.ones_like(mask))).mean()
    else:
        losses["onset"] = bce(pred["onset"], mask)
    if velocity_loss == "bce":
        per_frame = torch.nn.functional.binary_cross_entropy(pred["velocity"].clamp(1e-6, 1 - 1e-6),
                                                             targets["velocity"], reduction="none")
    else:
        per_frame = (pred["velocity"] - targets["velocity"]) ** 2
    losses["velocity"] = (mask * per_frame).sum() / mask.sum().clamp(min=1)
    if PEDAL_HEADS[0] in pred:
        known = targets.get(PEDAL_MASK)
        known = torch.ones_like(pred[PEDAL_HEADS[0]]) if known is None else known.to(pred[PEDAL_HEADS[0]].dtype)
        for k in PEDAL_HEADS:
            per_frame = bce(pred[k], targets[k], reduction="none")
            losses[k] = (known * per_frame).sum() / known.sum().clamp(min=1)
    losses["total"] = sum(weights[k] * losses[k] for k in losses)
    return losses
