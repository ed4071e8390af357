"""Piano-roll pictures of a transcription: the network's frame and onset activations with
the decoded notes drawn on top (``transcribe --plot``). Needs matplotlib (``pip install
'transcribe[plot]'``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import atomic_write
from .notes import MAX_PITCH, MIN_PITCH, Notes


def matplotlib_available() -> bool:
    """Whether ``--plot`` can work on this installation."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def write_piano_roll(notes: Notes, activations: dict[str, np.ndarray], frame_rate: float, path: str | Path,
                     title: str = "") -> None:
    """Write a PNG: frame activations in grey, onset activations in red, notes as outlines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    frames = activations["frame"]
    seconds = len(frames) / frame_rate
    width = float(np.clip(seconds * 0.6, 8, 60))
    fig, ax = plt.subplots(figsize=(width, 6), dpi=100)
    extent = (0, seconds, MIN_PITCH - 0.5, MAX_PITCH + 0.5)
    ax.imshow(frames.T, origin="lower", aspect="auto", extent=extent, cmap="Greys", vmin=0, vmax=1,
              interpolation="nearest")
    onset = np.ma.masked_less(activations["onset"].T, 0.05)
    ax.imshow(onset, origin="lower", aspect="auto", extent=extent, cmap="Reds", vmin=0, vmax=1,
              interpolation="nearest", alpha=0.8)
    for on, off, p in zip(notes.onsets, notes.offsets, notes.pitches):
        ax.add_patch(Rectangle((on, p - 0.5), off - on, 1.0, fill=False, edgecolor="tab:blue", linewidth=0.8))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(f"{title}  ({len(notes)} notes; grey: frame, red: onset activation, blue: notes)")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
