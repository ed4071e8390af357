"""Notes <-> frame targets: onset, offset, frame (key down) and velocity rolls [frames, 88]."""

from __future__ import annotations

import numpy as np

from .notes import MIN_PITCH, N_KEYS, Notes


def notes_to_rolls(notes: Notes, n_frames: int, frame_rate: float) -> dict[str, np.ndarray]:
    """Targets for ``n_frames`` frames at ``frame_rate`` frames/s.

    - ``onset``: 1 at the frame nearest each note's onset.
    - ``offset``: 1 at the frame nearest each note's offset.
    - ``frame``: 1 from the onset frame up to (not including) the offset frame, at least one frame.
    - ``velocity``: velocity / 127 at onset frames, else 0.

    Frame ``t`` is centred at ``t / frame_rate`` seconds (the centred CQT).
    """
    onset = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    offset = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    frame = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    velocity = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    notes = notes.piano_range()
    starts = np.round(notes.onsets * frame_rate).astype(np.int64)
    ends = np.maximum(np.round(notes.offsets * frame_rate).astype(np.int64), starts + 1)
    keys = notes.pitches - MIN_PITCH
    for s, e, k, v in zip(starts, ends, keys, notes.velocities):
        if s >= n_frames or e <= 0:
            continue
        frame[max(s, 0) : min(e, n_frames), k] = 1
        if s >= 0:
            onset[s, k] = 1
            velocity[s, k] = v / 127.0
        if e < n_frames:
            offset[e, k] = 1
    return {"onset": onset, "offset": offset, "frame": frame, "velocity": velocity}
