"""Activations -> notes: a note starts where the onset head fires and lasts while the frame
head (or its own onset) holds the key. Vectorised over keys and frames (no per-frame loop).
Pedal activations -> sustain pedal spans (:func:`decode_pedal`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .notes import MIN_PITCH, N_KEYS, Notes


@dataclass(frozen=True)
class DecodeConfig:
    """Decoder thresholds (conf/decode/*.yaml); stored in every checkpoint."""

    onset_threshold: float = 0.5
    frame_threshold: float = 0.5
    min_note_frames: int = 1
    # sustain pedal (models with a pedal head); checkpoints from before it lack these keys
    pedal: bool = True  # decode the pedal (and write it as CC64) when the model has a pedal head
    pedal_threshold: float = 0.5
    pedal_onset_threshold: float = 0.5
    min_pedal_frames: int = 2

    @classmethod
    def from_dict(cls, d: Mapping) -> "DecodeConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def decode_notes(
    onset: np.ndarray,
    frame: np.ndarray,
    frame_rate: float,
    cfg: DecodeConfig = DecodeConfig(),
    velocity: np.ndarray | None = None,
) -> Notes:
    """Turn activations [frames, 88] (probabilities in 0..1) into notes.

    Onset events are the first frames of runs where ``onset > onset_threshold``. A note
    lasts from its onset frame until the first later frame where neither ``frame`` nor
    ``onset`` is above threshold, or until the next onset on the same key, whichever
    comes first. Velocity is read from ``velocity`` (0..1) at the onset frame.
    """
    n_frames, n_keys = onset.shape
    if frame.shape != onset.shape or n_keys != N_KEYS:
        raise ValueError(f"expected matching [frames, {N_KEYS}] activations, got {onset.shape} and {frame.shape}")
    if n_frames == 0:
        return Notes.empty()
    width = n_frames + 1  # one padding column per key: runs never cross from one key to the next
    on = np.zeros((n_keys, width), dtype=bool)
    on[:, :n_frames] = (onset > cfg.onset_threshold).T
    active = np.zeros((n_keys, width), dtype=bool)
    active[:, :n_frames] = (frame > cfg.frame_threshold).T | on[:, :n_frames]
    on, active = on.ravel(), active.ravel()

    previous = np.concatenate(([False], on[:-1]))
    starts = np.flatnonzero(on & ~previous)
    if len(starts) == 0:
        return Notes.empty()
    inactive = np.flatnonzero(~active)  # never empty: the padding column
    ends = inactive[np.searchsorted(inactive, starts + 1)]
    next_starts = np.append(starts[1:], np.iinfo(np.int64).max)
    ends = np.minimum(ends, next_starts)
    keep = ends - starts >= max(cfg.min_note_frames, 1)
    starts, ends = starts[keep], ends[keep]

    keys, start_frames = np.divmod(starts, width)
    end_frames = ends - keys * width
    if velocity is not None:
        vel = np.round(velocity[start_frames, keys] * 127.0)
        vel = np.clip(vel, 1, 127).astype(np.int64)
    else:
        vel = np.full(len(starts), 64, dtype=np.int64)
    notes = Notes(start_frames / frame_rate, end_frames / frame_rate, keys + MIN_PITCH, vel)
    return notes.sorted()


def decode_pedal(pedal: np.ndarray, pedal_onset: np.ndarray | None, frame_rate: float,
                 cfg: DecodeConfig = DecodeConfig()) -> np.ndarray:
    """Sustain pedal spans [n, 2] (down, up seconds) from pedal activations [frames] or [frames, 1].

    The pedal is down while ``pedal > pedal_threshold``. A press inside a held stretch (the
    first frame of a run of ``pedal_onset > pedal_onset_threshold``, at least two frames after
    the stretch began) ends the span before it and starts a new one there: a quick re-pedal
    can lift the pedal for less than a frame. Spans shorter than ``min_pedal_frames`` are dropped.
    """
    down = np.asarray(pedal, dtype=np.float32).reshape(-1) > cfg.pedal_threshold
    n = len(down)
    if n == 0 or not down.any():
        return np.zeros((0, 2))
    edges = np.diff(np.concatenate(([0], down.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if pedal_onset is not None:
        on = np.asarray(pedal_onset, dtype=np.float32).reshape(-1) > cfg.pedal_onset_threshold
        presses = np.flatnonzero(on & ~np.concatenate(([False], on[:-1])))
        run = np.searchsorted(starts, presses, side="right") - 1  # the held stretch each press falls in
        inside = (run >= 0) & (presses < ends[np.maximum(run, 0)]) & (presses >= starts[np.maximum(run, 0)] + 2)
        cuts = presses[inside]
        starts, ends = np.sort(np.concatenate([starts, cuts])), np.sort(np.concatenate([ends, cuts]))
    keep = ends - starts >= max(cfg.min_pedal_frames, 1)
    return np.stack([starts[keep], ends[keep]], axis=1) / frame_rate
