"""Harmonic layers over the CQT: a filter that sees a key and its harmonics at once.

HPPNet (Wei et al., ISMIR 2022) sums eight 1x3 convolutions dilated to the harmonics' distances
over every CQT bin; that full-resolution shape costs about 6.75 s per minute of audio on two CPU
threads (issue 26's measurements), far over our inference budget. As Harmonica (Ou et al., 2026)
does, these layers first map the CQT onto one bin per semitone (a stride-3 convolution over our 3
bins per semitone), then stack each key's feature map with the maps of the keys that sound its
harmonics (offsets of round(12 log2 k) semitones: 12, 19, 24, 28, 31, 34, 36 for k = 2..8) and
mix them with one convolution: the harmonic sum at 88 bins instead of 264, with the same reach.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .notes import N_KEYS


def harmonic_offsets(n_harmonics: int) -> tuple[int, ...]:
    """Semitone distances from a fundamental to its first ``n_harmonics`` partials (itself included):
    round(12 log2 k) for k = 1..n_harmonics (8: 0, 12, 19, 24, 28, 31, 34, 36)."""
    return tuple(int(round(12 * math.log2(k))) for k in range(1, n_harmonics + 1))


class HarmonicConv(nn.Module):
    """[B, C, T, K] key-resolution maps -> [B, out, T, K]: each key sees its own map and the maps
    ``offsets`` keys above it (its harmonics; zeros beyond the top key) over ``time_kernel`` frames.
    One convolution over the stacked shifted maps, computed as the sum of one convolution per
    harmonic, each shifted after it (the same function, as the kernel spans one key: stacking the
    eight shifted maps first held eight copies of the key map, half the harmonic network's
    inference memory, MODEL_CARD)."""

    def __init__(self, channels: int, out_channels: int, offsets: tuple[int, ...], time_kernel: int = 3):
        super().__init__()
        self.offsets = offsets
        self.conv = nn.Conv2d(channels * len(offsets), out_channels, (time_kernel, 1), padding=(time_kernel // 2, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, weight = x.shape[1], self.conv.weight
        out = None
        for i, o in enumerate(self.offsets):
            y = F.conv2d(x, weight[:, i * c:(i + 1) * c], padding=self.conv.padding)
            if o:
                y = F.pad(y[..., o:], (0, o))  # the key o above, zeros beyond the top key
            out = y if out is None else out + y
        return out + self.conv.bias.view(1, -1, 1, 1)


def semitone_conv(channels_in: int, channels_out: int, bins_per_semitone: int) -> nn.Conv2d:
    """Full-resolution CQT maps -> one bin per key: a 3-frame convolution over each key's bins."""
    return nn.Conv2d(channels_in, channels_out, (3, bins_per_semitone), stride=(1, bins_per_semitone), padding=(1, 0))


def conv_block(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU())


class HarmonicBranch(nn.Module):
    """[B, T, n_bins] log-CQT -> [B, T, out_size], a residual branch for an existing front end:
    onto one bin per key, one harmonic convolution, then a linear map whose weights start at zero,
    so a network with the branch added computes exactly what it computed without it (a trained
    network is continued from where it was, and the branch learns what the harmonics add)."""

    def __init__(self, n_bins: int, channels: int, out_size: int, n_harmonics: int):
        super().__init__()
        bps = n_bins // N_KEYS
        self.conv = nn.Sequential(
            conv_block(semitone_conv(1, channels, bps), channels),
            conv_block(HarmonicConv(channels, channels, harmonic_offsets(n_harmonics)), channels),
        )
        self.fc = nn.Linear(channels * N_KEYS, out_size)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.conv(x.unsqueeze(1))  # [B, C, T, 88]
        return self.fc(h.permute(0, 2, 1, 3).reshape(b, t, -1))


class KeyTrunk(nn.Module):
    """[B, T, n_bins] log-CQT -> [B, T, 88, width] per-key features for a network shared by all keys:
    a full-resolution 3x3 convolution, onto one bin per key, a harmonic convolution over
    ``harmonic_frames`` frames (1 is HPPNet's shape and a third of the cost of 3), then
    ``time_layers`` convolutions along time (5 frames) within each key."""

    def __init__(self, n_bins: int, front_channels: int, width: int, n_harmonics: int, time_layers: int,
                 dropout: float, harmonic_frames: int = 3):
        super().__init__()
        bps = n_bins // N_KEYS
        layers = [
            conv_block(nn.Conv2d(1, front_channels, 3, padding=1), front_channels),
            conv_block(semitone_conv(front_channels, width, bps), width),
            conv_block(HarmonicConv(width, width, harmonic_offsets(n_harmonics), harmonic_frames), width),
        ]
        layers += [conv_block(nn.Conv2d(width, width, (5, 1), padding=(2, 0)), width) for _ in range(time_layers)]
        self.conv = nn.Sequential(*layers, nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.unsqueeze(1)).permute(0, 2, 3, 1)  # [B, T, 88, width]
