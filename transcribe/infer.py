"""Transcriber: checkpoint -> notes for a waveform, chunked so long audio fits in memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .audio import load_audio
from .checkpoint import build_model, load_checkpoint
from .decode import DecodeConfig, decode_notes
from .features import FeatureConfig, cqt_features
from .model import OnsetsAndFrames
from .notes import Notes

HEADS = ("onset", "offset", "frame", "velocity")


def run_network(
    model: OnsetsAndFrames, features: np.ndarray, chunk_frames: int, context_frames: int
) -> dict[str, np.ndarray]:
    """Activations (probabilities) [frames, 88] for features [frames, bins].

    Long inputs go through the network in chunks of ``chunk_frames`` with ``context_frames``
    of extra audio on each side, which is discarded, so the BiLSTM sees context at the seams.
    """
    n = len(features)
    out = {k: np.zeros((n, 88), dtype=np.float32) for k in HEADS}
    x = torch.from_numpy(features)
    with torch.inference_mode():
        for start in range(0, n, chunk_frames):
            stop = min(start + chunk_frames, n)
            lo, hi = max(start - context_frames, 0), min(stop + context_frames, n)
            pred = model(x[lo:hi].unsqueeze(0))
            for k in HEADS:
                p = pred[k][0] if k == "velocity" else torch.sigmoid(pred[k][0])
                out[k][start:stop] = p[start - lo : stop - lo].numpy()
    return out


class Transcriber:
    """Loads a checkpoint once and transcribes waveforms or files with it."""

    def __init__(
        self,
        model: OnsetsAndFrames,
        features: FeatureConfig,
        decode: DecodeConfig,
        chunk_seconds: float = 60.0,
        context_seconds: float = 5.0,
    ):
        self.model, self.features, self.decode = model, features, decode
        self.chunk_frames = max(int(chunk_seconds * features.frame_rate), 1)
        self.context_frames = int(context_seconds * features.frame_rate)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | Path | None = None, decode: Mapping | None = None, **kwargs
    ) -> "Transcriber":
        """Load ``checkpoint`` (default: the shipped model). ``decode`` overrides decoder
        settings stored in the checkpoint, e.g. ``{"onset_threshold": 0.4}``."""
        model, features, stored = build_model(load_checkpoint(checkpoint))
        if decode:
            unknown = set(decode) - set(DecodeConfig.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown decoder setting(s): {', '.join(sorted(unknown))}")
            stored = replace(stored, **dict(decode))
        return cls(model, features, stored, **kwargs)

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    def activations(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """Onset, offset, frame and velocity activations [frames, 88] for a mono waveform."""
        return run_network(self.model, cqt_features(audio, self.features), self.chunk_frames, self.context_frames)

    def notes_from_activations(self, act: dict[str, np.ndarray]) -> Notes:
        return decode_notes(act["onset"], act["frame"], self.features.frame_rate, self.decode, act["velocity"])

    def transcribe(self, audio: np.ndarray) -> Notes:
        """Notes for a mono float32 waveform at :attr:`sample_rate`."""
        return self.notes_from_activations(self.activations(audio))

    def transcribe_file(self, path: str | Path) -> Notes:
        """Notes for an audio file (any supported format, rate and channel count)."""
        return self.transcribe(load_audio(path, self.sample_rate))
