"""Piano-roll pictures of a transcription: the network's frame and onset activations with
the decoded notes drawn on top (``transcribe --plot``). Needs matplotlib (``pip install
'transcribe-piano[plot]'``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import atomic_write
from .notes import MAX_PITCH, MIN_PITCH, Notes


def matplotlib_available() -> bool:
    """Whether ``--plot`` can work on this installation."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


ROW_SECONDS = 60.0  # one row of the picture per minute


def write_piano_roll(notes: Notes, activations: dict[str, np.ndarray], frame_rate: float, path: str | Path,
                     title: str = "", total_seconds: float | None = None) -> None:
    """Write a PNG: frame activations in grey, onset activations in red, notes as outlines.

    ``activations`` may cover only the start of a recording of ``total_seconds`` (the
    ``transcribe`` command passes at most 10 minutes): the picture then says how much it
    shows. Recordings longer than a minute are drawn one minute per row, so every second
    keeps the same width (about 26 pixels) however long the recording."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = len(activations["frame"]) / frame_rate
    rows = max(int(np.ceil(seconds / ROW_SECONDS)), 1)
    row_len = min(seconds, ROW_SECONDS) if rows == 1 else ROW_SECONDS
    width = float(np.clip(row_len * 0.27, 8, 16))
    fig, axes = plt.subplots(rows, 1, figsize=(width, 1.0 + 3.2 * rows), dpi=100, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        _draw_row(ax, notes, activations, frame_rate, i * row_len, min((i + 1) * row_len, seconds), row_len)
    shown = "" if total_seconds is None or total_seconds <= seconds + 1e-6 else (
        f"; the first {seconds / 60:.0f} of {total_seconds / 60:.0f} minutes shown")
    axes[0, 0].set_title(f"{title}  ({len(notes)} notes{shown}; grey: frame, red: onset activation, blue: notes)")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _draw_row(ax, notes: Notes, activations: dict[str, np.ndarray], frame_rate: float, t0: float, t1: float,
              row_len: float) -> None:
    """One row of the piano roll: seconds ``t0`` to ``t1``."""
    from matplotlib.patches import Rectangle

    a, b = int(round(t0 * frame_rate)), int(round(t1 * frame_rate))
    extent = (t0, t0 + (b - a) / frame_rate, MIN_PITCH - 0.5, MAX_PITCH + 0.5)
    ax.imshow(activations["frame"][a:b].T, origin="lower", aspect="auto", extent=extent, cmap="Greys", vmin=0,
              vmax=1, interpolation="nearest")
    onset = np.ma.masked_less(activations["onset"][a:b].T, 0.05)
    ax.imshow(onset, origin="lower", aspect="auto", extent=extent, cmap="Reds", vmin=0, vmax=1,
              interpolation="nearest", alpha=0.8)
    show = (notes.onsets < t1) & (notes.offsets > t0)
    for on, off, p in zip(notes.onsets[show], notes.offsets[show], notes.pitches[show]):
        ax.add_patch(Rectangle((on, p - 0.5), off - on, 1.0, fill=False, edgecolor="tab:blue", linewidth=0.8))
    ax.set_xlim(t0, t0 + row_len)
    ax.set_ylabel("MIDI pitch")
