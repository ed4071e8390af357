"""Notes -> frame targets: onset, offset, frame (key down) and velocity rolls [frames, 88], one per
head of the network (:data:`HEADS`); sustain pedal spans -> pedal rolls [frames, 1], one per
pedal head (:data:`PEDAL_HEADS`, on models that have them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .notes import MIN_PITCH, N_KEYS, Notes

HEADS = ("onset", "offset", "frame", "velocity")  # what the network predicts per frame and key, in this order
PEDAL_HEADS = ("pedal", "pedal_onset", "pedal_offset")  # sustain pedal per frame [frames, 1]: down, pressed, lifted
PEDAL_MASK = "pedal_mask"  # batch key: 1 where a crop's pedal is known, 0 where it is not (loss masked)


@dataclass
class NoteFrames:
    """Notes on the frame grid: onset frame, offset frame (> onset), key index 0..87, velocity."""

    starts: np.ndarray
    ends: np.ndarray
    keys: np.ndarray
    velocities: np.ndarray

    @classmethod
    def from_notes(cls, notes: Notes, frame_rate: float) -> "NoteFrames":
        """Frame ``t`` is centred at ``t / frame_rate`` seconds; notes outside the 88 keys are dropped."""
        notes = notes.piano_range()
        starts = np.round(notes.onsets * frame_rate).astype(np.int64)
        ends = np.maximum(np.round(notes.offsets * frame_rate).astype(np.int64), starts + 1)
        return cls(starts, ends, notes.pitches - MIN_PITCH, notes.velocities)

    def rolls(self, n_frames: int, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` of the rolls of a recording of ``n_frames`` frames, computed from
        only the notes that touch those rows: equal to ``notes_to_rolls(...)[k][start:stop]``."""
        stop = n_frames if stop is None else min(stop, n_frames)
        length = max(stop - start, 0)
        onset = np.zeros((length, N_KEYS), dtype=np.float32)
        offset = np.zeros((length, N_KEYS), dtype=np.float32)
        frame = np.zeros((length, N_KEYS), dtype=np.float32)
        velocity = np.zeros((length, N_KEYS), dtype=np.float32)
        s_all, e_all = self.starts, self.ends
        touch = (s_all < min(stop, n_frames)) & (e_all > 0) & (e_all >= start)
        for s, e, k, v in zip(s_all[touch], e_all[touch], self.keys[touch], self.velocities[touch]):
            lo, hi = max(s, 0, start), min(e, stop)
            if lo < hi:
                frame[lo - start : hi - start, k] = 1
            if start <= s < stop:
                onset[s - start, k] = 1
                velocity[s - start, k] = v / 127.0
            if start <= e < stop:
                offset[e - start, k] = 1
        return {"onset": onset, "offset": offset, "frame": frame, "velocity": velocity}


def notes_to_rolls(notes: Notes, n_frames: int, frame_rate: float) -> dict[str, np.ndarray]:
    """Targets for ``n_frames`` frames at ``frame_rate`` frames/s.

    - ``onset``: 1 at the frame nearest each note's onset.
    - ``offset``: 1 at the frame nearest each note's offset.
    - ``frame``: 1 from the onset frame up to (not including) the offset frame, at least one frame.
    - ``velocity``: velocity / 127 at onset frames, else 0.

    Frame ``t`` is centred at ``t / frame_rate`` seconds (the centred CQT).
    """
    return NoteFrames.from_notes(notes, frame_rate).rolls(n_frames)


def pedal_rolls(spans: np.ndarray, n_frames: int, frame_rate: float, start: int = 0,
                stop: int | None = None) -> dict[str, np.ndarray]:
    """Rows ``start:stop`` of the pedal targets [rows, 1] of a recording of ``n_frames`` frames
    whose sustain pedal is down during ``spans`` [n, 2] (down, up seconds):

    - ``pedal``: 1 from the frame nearest the press up to (not including) the frame nearest the
      lift, at least one frame;
    - ``pedal_onset`` / ``pedal_offset``: 1 at the frame nearest each press / lift.
    """
    stop = n_frames if stop is None else min(stop, n_frames)
    length = max(stop - start, 0)
    out = {k: np.zeros((length, 1), dtype=np.float32) for k in PEDAL_HEADS}
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    downs = np.round(spans[:, 0] * frame_rate).astype(np.int64)
    ups = np.maximum(np.round(spans[:, 1] * frame_rate).astype(np.int64), downs + 1)
    for d, u in zip(downs, ups):
        lo, hi = max(d, start), min(u, stop)
        if lo < hi:
            out["pedal"][lo - start: hi - start] = 1
        if start <= d < stop:
            out["pedal_onset"][d - start] = 1
        if start <= u < stop:
            out["pedal_offset"][u - start] = 1
    return out
