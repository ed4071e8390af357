"""Input level: how loud a recording is, and the gain that brings it to the level the model
was trained at (``infer.level_db``).

The network's features are log-CQT magnitudes with a floor (``features.log_floor``), so a
recording 40 dB quieter than the training audio loses its soft notes under the floor, and one
much louder looks unlike anything trained on. The level of a recording is the 95th percentile of
the RMS of its 100 ms frames, in dBFS: the level of its loud passages, indifferent to silence
at either end and to how much of it is soft. Training audio (MAPS and the sampled-piano renders)
has a median of -33 dBFS by this measure (MAPS -31.7, renders -33.0: docs/DATA.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

FRAME_SECONDS = 0.1
PERCENTILE = 95.0
SILENT_DB = -100.0  # below this a recording is digital silence: no gain


def frame_levels_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """dBFS RMS of the whole ``FRAME_SECONDS`` frames of a mono waveform (a short rest dropped)."""
    n = max(int(round(FRAME_SECONDS * sample_rate)), 1)
    frames = np.asarray(audio[: len(audio) // n * n], dtype=np.float64).reshape(-1, n)
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-20)


def level_db(blocks: Iterable[np.ndarray], sample_rate: int) -> float:
    """The level (dBFS) of a recording given as consecutive mono blocks (e.g. an
    :class:`~transcribe.audio.AudioStream`): the ``PERCENTILE`` of its frame levels. A recording
    shorter than one frame is measured as one frame."""
    n = max(int(round(FRAME_SECONDS * sample_rate)), 1)
    levels, rest = [], np.zeros(0, np.float32)
    for block in blocks:
        y = np.concatenate([rest, block]) if len(rest) else block
        whole = len(y) // n * n
        levels.append(frame_levels_db(y[:whole], sample_rate))
        rest = y[whole:]
    if not any(len(x) for x in levels):
        levels.append(frame_levels_db(np.pad(rest, (0, n - len(rest))), sample_rate) if len(rest) else np.array([-200.0]))
    return float(np.percentile(np.concatenate(levels), PERCENTILE))


def level_gain(measured_db: float, target_db: float | None, max_gain_db: float) -> float:
    """The linear gain from ``measured_db`` to ``target_db``, within ±``max_gain_db``; 1 where
    the target is None (off) or the recording is digital silence."""
    if target_db is None or measured_db < SILENT_DB:
        return 1.0
    return float(10.0 ** (np.clip(target_db - measured_db, -max_gain_db, max_gain_db) / 20.0))
