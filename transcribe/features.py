"""Constant-Q transform features: the one implementation used by training and inference."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureConfig:
    """CQT parameters (conf/features/*.yaml); stored in every checkpoint."""

    sample_rate: int = 16000
    hop_length: int = 512
    fmin: float = 27.5
    n_keys: int = 88
    bins_per_semitone: int = 3
    log_floor: float = 1e-4

    @classmethod
    def from_dict(cls, d: Mapping) -> "FeatureConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def n_bins(self) -> int:
        return self.n_keys * self.bins_per_semitone

    @property
    def bins_per_octave(self) -> int:
        return 12 * self.bins_per_semitone

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def n_frames(self, n_samples: int) -> int:
        """Number of feature frames for a waveform of ``n_samples`` (librosa, centred)."""
        return 1 + n_samples // self.hop_length


def cqt_features(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Log-magnitude CQT of a mono waveform: float32 array [frames, n_bins].

    The bins start on A0 (``fmin``) and cover the 88 keys with ``bins_per_semitone``
    bins each, so bin ``k * bins_per_semitone + bins_per_semitone // 2`` is centred on key k.
    """
    import librosa

    # Centre the bins on the keys: shift fmin down by half the bins of one semitone minus one.
    offset = (cfg.bins_per_semitone - 1) / 2
    fmin = cfg.fmin * 2.0 ** (-offset / cfg.bins_per_octave)
    n = len(y)
    if n < cfg.hop_length:  # librosa needs a few samples; pad very short inputs with silence
        y = np.pad(y, (0, cfg.hop_length - n))
    with warnings.catch_warnings():  # librosa warns about its own n_fft on short inputs
        warnings.filterwarnings("ignore", message="n_fft=.* is too large")
        c = librosa.cqt(
            y,
            sr=cfg.sample_rate,
            hop_length=cfg.hop_length,
            fmin=fmin,
            n_bins=cfg.n_bins,
            bins_per_octave=cfg.bins_per_octave,
            res_type="soxr_hq",
        )
    mag = np.abs(c).T[: cfg.n_frames(n)]
    return np.log(np.maximum(mag, cfg.log_floor)).astype(np.float32)

