"""Note lists made playable: what is rendered is exactly what is labelled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..notes import Notes


@dataclass
class Piece:
    """A note list to render and its sustain pedal spans [n, 2] (down, up) seconds, in the same
    time frame (zero spans: no pedal; None: unknown, e.g. MAPS ``.tsv`` labels). The notes' offsets
    already hold the pedal (it is applied to them, never played as CC64)."""

    notes: Notes
    pedal: np.ndarray | None = None


def prepare_piece(piece: Piece, min_duration: float = 0.02, min_start: float = 0.05) -> Piece:
    """The piece as it will be rendered and labelled: :func:`prepare_notes`, with the pedal moved
    by the same shift (spans clipped at 0 s)."""
    notes, shift = _prepare(piece.notes, min_duration, min_start)
    pedal = piece.pedal
    if pedal is not None:
        pedal = np.maximum(np.asarray(pedal, dtype=np.float64).reshape(-1, 2) + shift, 0.0)
        pedal = pedal[pedal[:, 1] > pedal[:, 0]]
    return Piece(notes, pedal)


def prepare_notes(notes: Notes, min_duration: float = 0.02, min_start: float = 0.05) -> Notes:
    """The notes as they will be rendered and labelled.

    - only the 88 piano keys; velocities clipped to 1..127;
    - strikes of one key at the same time (within 1 ms) become one note (the longest, loudest);
    - a key struck again ends its previous note (same-key overlaps are cut at the next onset),
      as a piano (and a MIDI synthesiser) does;
    - notes shorter than ``min_duration`` are lengthened up to it where the key is free;
    - if the first onset is earlier than ``min_start`` seconds, all notes are shifted later by
      the difference (the latency compensation needs room to send note-ons earlier).
    """
    return _prepare(notes, min_duration, min_start)[0]


def _prepare(notes: Notes, min_duration: float, min_start: float) -> tuple[Notes, float]:
    """(:func:`prepare_notes`, the shift in seconds it applied)."""
    notes = notes.piano_range().sorted()
    if len(notes) == 0:
        return notes, 0.0
    on, off = notes.onsets.copy(), np.maximum(notes.offsets, notes.onsets)
    pitch, vel = notes.pitches.copy(), np.clip(notes.velocities, 1, 127)
    keep = np.ones(len(on), dtype=bool)
    for p in np.unique(pitch):
        idx = np.flatnonzero(pitch == p)
        idx = idx[np.argsort(on[idx], kind="stable")]
        prev = idx[0]
        for i in idx[1:]:
            if on[i] - on[prev] < 1e-3:  # the same strike twice
                off[prev], vel[prev] = max(off[prev], off[i]), max(vel[prev], vel[i])
                keep[i] = False
                continue
            off[prev] = min(off[prev], on[i])
            prev = i
        kept = idx[keep[idx]]
        nxt = np.append(on[kept][1:], np.inf)
        off[kept] = np.maximum(off[kept], np.minimum(on[kept] + min_duration, nxt))
    out = Notes(on[keep], off[keep], pitch[keep], vel[keep]).sorted()
    shift = min_start - out.onsets[0]
    if shift > 0:
        return Notes(out.onsets + shift, out.offsets + shift, out.pitches, out.velocities), float(shift)
    return out, 0.0
