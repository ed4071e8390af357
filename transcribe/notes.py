"""The note list: the representation shared by labels, decoding, metrics and file output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_PITCH = 21  # A0
MAX_PITCH = 108  # C8
N_KEYS = MAX_PITCH - MIN_PITCH + 1


@dataclass
class Notes:
    """Notes as parallel arrays: onset and offset in seconds, MIDI pitch, velocity (1..127)."""

    onsets: np.ndarray
    offsets: np.ndarray
    pitches: np.ndarray
    velocities: np.ndarray

    def __post_init__(self) -> None:
        self.onsets = np.asarray(self.onsets, dtype=np.float64).reshape(-1)
        self.offsets = np.asarray(self.offsets, dtype=np.float64).reshape(-1)
        self.pitches = np.asarray(self.pitches, dtype=np.int64).reshape(-1)
        self.velocities = np.asarray(self.velocities, dtype=np.int64).reshape(-1)
        n = len(self.onsets)
        if not (len(self.offsets) == len(self.pitches) == len(self.velocities) == n):
            raise ValueError("onsets, offsets, pitches and velocities must have the same length")

    @classmethod
    def empty(cls) -> "Notes":
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return len(self.onsets)

    def sorted(self) -> "Notes":
        """Sorted by onset, then pitch."""
        order = np.lexsort((self.pitches, self.onsets))
        return Notes(self.onsets[order], self.offsets[order], self.pitches[order], self.velocities[order])

    def select(self, mask: np.ndarray) -> "Notes":
        return Notes(self.onsets[mask], self.offsets[mask], self.pitches[mask], self.velocities[mask])

    def piano_range(self) -> "Notes":
        """Only the notes on the 88 piano keys."""
        return self.select((self.pitches >= MIN_PITCH) & (self.pitches <= MAX_PITCH))

    @property
    def duration(self) -> float:
        return float(self.offsets.max()) if len(self) else 0.0
