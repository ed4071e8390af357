"""The note list: the representation shared by labels, decoding, metrics and file output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_PITCH = 21  # A0
MAX_PITCH = 108  # C8
N_KEYS = MAX_PITCH - MIN_PITCH + 1

def pitch_number(text: str | int) -> int:
    """A piano key as a MIDI number: ``60``, ``"60"``, or a note name in scientific pitch
    notation, ``"C4"`` (= 60, middle C), ``"A0"`` (21), ``"F#3"``, ``"Db4"``, ``"C♯4"`` (names
    read by pretty_midi's ``note_name_to_number``, ♯ and ♭ too). Raises ValueError for anything
    else and for keys off the piano (A0 = 21 to C8 = 108)."""
    name = str(text).strip()
    if name.isdigit():
        n = int(name)
    else:
        from pretty_midi import note_name_to_number

        try:
            n = note_name_to_number(name.replace("♯", "#").replace("♭", "b"))
        except ValueError:
            raise ValueError(f"{name!r} is neither a note name (e.g. A0, C4, F#3, Bb5) nor a MIDI number") from None
    if not MIN_PITCH <= n <= MAX_PITCH:
        raise ValueError(f"{name!r} (MIDI {n}) is not a piano key: the keys run from A0 ({MIN_PITCH}) to C8 ({MAX_PITCH})")
    return n


def as_spans(spans) -> np.ndarray:
    """Sustain pedal spans as float64 [n, 2] (down, up seconds), sorted by down, empty and
    reversed spans dropped: the pedal's shared form (:mod:`transcribe.pedal`, MIDI CC64)."""
    a = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    a = a[a[:, 1] > a[:, 0]]
    return a[np.argsort(a[:, 0], kind="stable")]


def parse_pitch_range(text: str) -> tuple[int, int]:
    """``"LOW:HIGH"`` (note names or MIDI numbers, e.g. ``"A0:C8"``, ``"C2:C7"``, ``"21:108"``) ->
    (low, high) MIDI numbers, both keys included. Raises ValueError saying what is wrong (the
    caller names ``text``)."""
    parts = str(text).split(":")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ValueError("expected LOW:HIGH, e.g. A0:C8, C2:C7 or 21:108")
    low, high = (pitch_number(p) for p in parts)
    if low > high:
        raise ValueError(f"LOW ({low}) is above HIGH ({high})")
    return low, high


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

    def piano_range(self, low: int = MIN_PITCH, high: int = MAX_PITCH) -> "Notes":
        """Only the notes on the keys ``low`` to ``high`` (MIDI numbers, both included; default
        all 88 piano keys)."""
        return self.select((self.pitches >= low) & (self.pitches <= high))

    @property
    def end(self) -> float:
        """The last offset in seconds (0 without notes): where the notes end, counted from time 0
        (not how long they last from the first onset)."""
        return float(self.offsets.max()) if len(self) else 0.0
