"""Pitch shifting of training crops in the CQT domain: the features move by whole semitones along
the log-frequency axis and the key targets move with them, so the network hears each key's
timbre at other pitches (an instrument whose bass or treble differs from the training pianos').

A CQT with ``bins_per_semitone`` bins per key shifts exactly by moving rows; no audio is
resampled, so it costs nothing next to the audio augmentation. Bins shifted in from outside the
piano's range get the log floor (silence), keys shifted out of the range lose their notes.
"""

from __future__ import annotations

import numpy as np

from ..targets import HEADS


def shift_crop(features: np.ndarray, targets: dict[str, np.ndarray], semitones: int, bins_per_semitone: int,
               floor: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``features`` [T, bins] and the note targets [T, 88] of :data:`~transcribe.targets.HEADS`
    moved ``semitones`` up (positive) or down; other targets (pedal, mask) unchanged."""
    if semitones == 0:
        return features, targets
    feats = _shift_columns(features, semitones * bins_per_semitone, floor)
    out = dict(targets)
    for k in HEADS:
        out[k] = _shift_columns(targets[k], semitones, 0.0)
    return feats, out


def _shift_columns(x: np.ndarray, n: int, fill: float) -> np.ndarray:
    out = np.full_like(x, fill)
    if n > 0:
        out[:, n:] = x[:, :-n]
    else:
        out[:, :n] = x[:, -n:]
    return out


def draw_semitones(rng: np.random.Generator, cfg) -> int:
    """A shift for one crop from ``cfg`` (``conf/augment`` ``pitch_shift``: ``p``, ``semitones``
    [low, high]): 0 with probability 1 - p, else uniform over the non-zero whole semitones of the
    range. Draws nothing when ``p`` is 0, so batches of runs without it stay as they were."""
    if cfg is None or float(cfg.p) <= 0:
        return 0
    if rng.random() >= float(cfg.p):
        return 0
    low, high = int(cfg.semitones[0]), int(cfg.semitones[1])
    choices = [s for s in range(low, high + 1) if s != 0]
    return int(rng.choice(choices)) if choices else 0
