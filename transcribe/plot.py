"""Piano-roll pictures of a transcription: the network's frame and onset activations with
the decoded notes drawn on top (``transcribe --plot``). Needs matplotlib (``pip install
'transcribe-piano[plot]'``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pretty_midi import note_number_to_name

from .files import atomic_write
from .notes import MAX_PITCH, MIN_PITCH, Notes


def matplotlib_available() -> bool:
    """Whether ``--plot`` can work on this installation."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


ROW_SECONDS = 60.0  # one row of the picture per minute


def piano_roll_figure(notes: Notes, activations: dict[str, np.ndarray], frame_rate: float, title: str = "",
                      total_seconds: float | None = None, *, onset_threshold: float):
    """A :class:`matplotlib.figure.Figure` (no pyplot, no global backend change) of a
    transcription: frame activations in grey, onset peaks as red ticks at the start of a key's
    cell (so they never hide the frame activations of held notes), notes as outlines filled by
    velocity, the pitch axis labelled by note names with a line at every C.

    ``onset_threshold`` is the decoder's (``DecodeConfig.onset_threshold``, what the notes were
    decoded with): a peak is ticked where the decoder would start a note, so every note has its tick.

    ``activations`` may cover only the start of a recording of ``total_seconds`` (the
    ``transcribe`` command passes at most 10 minutes): the picture then says how much it
    shows. Recordings longer than a minute are drawn one minute per row, so every second
    keeps the same width (about 26 pixels) however long the recording."""
    from matplotlib.figure import Figure

    seconds = len(activations["frame"]) / frame_rate
    rows = max(int(np.ceil(seconds / ROW_SECONDS)), 1)
    row_len = min(seconds, ROW_SECONDS) if rows == 1 else ROW_SECONDS
    width = float(np.clip(row_len * 0.27, 8, 16))
    fig = Figure(figsize=(width, 1.0 + 3.2 * rows), dpi=100)
    axes = fig.subplots(rows, 1, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        _draw_row(ax, notes, activations, frame_rate, i * row_len, min((i + 1) * row_len, seconds), row_len,
                  onset_threshold)
    shown = "" if total_seconds is None or total_seconds <= seconds + 1e-6 else (
        f"; the first {seconds / 60:.0f} of {total_seconds / 60:.0f} minutes shown")
    axes[0, 0].set_title(f"{title}  ({len(notes)} notes{shown}; grey: frame activation, red: onset peaks, "
                         "boxes: notes, darker = louder)", fontsize=9)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def write_piano_roll(notes: Notes, activations: dict[str, np.ndarray], frame_rate: float, path: str | Path,
                     title: str = "", total_seconds: float | None = None, *, onset_threshold: float) -> None:
    """Write :func:`piano_roll_figure` as a PNG (atomically)."""
    fig = piano_roll_figure(notes, activations, frame_rate, title, total_seconds, onset_threshold=onset_threshold)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png")


def comparison_figure(est: Notes, ref: Notes, start: float = 0.0, seconds: float = 30.0, title: str = ""):
    """A :class:`matplotlib.figure.Figure` of a transcription against reference notes, as a MIDI
    editor would show both: notes found (onset within 50 ms, same pitch) filled green, false
    notes filled red, reference notes missed outlined blue; seconds ``start`` to ``start +
    seconds``; the title gives the counts and note F1 of the whole pieces."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    from .metrics import error_breakdown, note_matches

    pairs = note_matches(ref, est)
    found = np.zeros(len(est), bool)
    hit = np.zeros(len(ref), bool)
    for i, j in pairs:
        hit[i], found[j] = True, True
    b = error_breakdown(ref, est)
    n_true = b["matched@50ms"]
    f1 = 2 * n_true / (len(ref) + len(est)) if len(ref) + len(est) else 1.0
    t1 = start + seconds
    fig = Figure(figsize=(float(np.clip(seconds * 0.4, 8, 16)), 4.5), dpi=100)
    ax = fig.subplots()
    drawn = []
    for notes, mask, style in ((est, found, dict(facecolor="tab:green", alpha=0.6, edgecolor="darkgreen")),
                               (est, ~found, dict(facecolor="tab:red", alpha=0.7, edgecolor="darkred")),
                               (ref, ~hit, dict(facecolor="none", edgecolor="tab:blue", linewidth=1.4))):
        show = mask & (notes.onsets < t1) & (notes.offsets > start)
        for on, off, p in zip(notes.onsets[show], notes.offsets[show], notes.pitches[show]):
            ax.add_patch(Rectangle((on, p - 0.45), off - on, 0.9, **style))
        drawn.append(notes.pitches[show])
    used = np.concatenate(drawn)
    lo, hi = (int(used.min()) - 3, int(used.max()) + 3) if used.size else (MIN_PITCH, MAX_PITCH)
    cs = np.arange(24, MAX_PITCH + 1, 12)
    ax.set_yticks(cs, [note_number_to_name(int(c)) for c in cs])
    for c in cs:
        ax.axhline(c - 0.5, color="grey", linewidth=0.4, alpha=0.6)
    ax.set_xlim(start, t1)
    ax.set_ylim(lo - 0.5, hi + 0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    ax.legend(handles=[Patch(facecolor="tab:green", alpha=0.6, label=f"found ({n_true})"),
                       Patch(facecolor="tab:red", alpha=0.7, label=f"false ({len(est) - n_true})"),
                       Patch(facecolor="none", edgecolor="tab:blue", label=f"missed ({len(ref) - n_true})")],
              loc="upper right", fontsize=8)
    ax.set_title(f"{title}  (whole piece: {len(est)} notes transcribed, {len(ref)} in the reference, "
                 f"note F1 {f1:.3f})", fontsize=9)
    fig.tight_layout()
    return fig


def _draw_row(ax, notes: Notes, activations: dict[str, np.ndarray], frame_rate: float, t0: float, t1: float,
              row_len: float, onset_threshold: float) -> None:
    """One row of the piano roll: seconds ``t0`` to ``t1``."""
    from matplotlib.cm import Blues
    from matplotlib.patches import Rectangle

    a, b = int(round(t0 * frame_rate)), int(round(t1 * frame_rate))
    extent = (t0, t0 + (b - a) / frame_rate, MIN_PITCH - 0.5, MAX_PITCH + 0.5)
    ax.imshow(activations["frame"][a:b].T, origin="lower", aspect="auto", extent=extent, cmap="Greys", vmin=0,
              vmax=1, interpolation="nearest")
    onset = activations["onset"][a:b]
    # the peak of each onset bump above the decoder's threshold (decode_notes starts a note at onset > threshold)
    peak = (onset > onset_threshold) & (onset == _running_max(onset, 5))
    frames, keys = np.nonzero(peak)
    ax.vlines(t0 + frames / frame_rate, keys + MIN_PITCH - 0.5, keys + MIN_PITCH + 0.5, colors="tab:red",
              linewidth=1.2)
    show = (notes.onsets < t1) & (notes.offsets > t0)
    for on, off, p, v in zip(notes.onsets[show], notes.offsets[show], notes.pitches[show], notes.velocities[show]):
        ax.add_patch(Rectangle((on, p - 0.5), off - on, 1.0, facecolor=Blues(0.25 + 0.75 * v / 127), alpha=0.45,
                               edgecolor="tab:blue", linewidth=0.8))
    cs = np.arange(24, MAX_PITCH + 1, 12)  # C1 .. C8
    ax.set_yticks(cs, [note_number_to_name(int(c)) for c in cs])
    for c in cs:
        ax.axhline(c - 0.5, color="tab:green", linewidth=0.4, alpha=0.6)
    ax.set_xlim(t0, t0 + row_len)
    ax.set_ylim(*_pitch_span(notes, activations["frame"]))
    ax.set_ylabel("pitch")


def _running_max(x: np.ndarray, width: int) -> np.ndarray:
    """The maximum over ``width`` frames centred on each frame (edges mirrored), along axis 0:
    ``scipy.ndimage.maximum_filter1d(x, width, axis=0)`` in numpy (scipy is not in the base
    install or the ``[plot]`` extra)."""
    if len(x) == 0:
        return x
    half = width // 2
    padded = np.pad(x, [(half, width - 1 - half)] + [(0, 0)] * (x.ndim - 1), mode="symmetric")
    return np.lib.stride_tricks.sliding_window_view(padded, width, axis=0).max(axis=-1)


def _pitch_span(notes: Notes, frame: np.ndarray, margin: int = 3, least: int = 24) -> tuple[float, float]:
    """The pitch axis: the keys that sound (notes, or frame activations above 0.3) plus a margin,
    at least two octaves, within the piano."""
    keys = np.flatnonzero((frame >= 0.3).any(axis=0)) + MIN_PITCH
    used = np.concatenate([notes.pitches, keys])
    if used.size == 0:
        return MIN_PITCH - 0.5, MAX_PITCH + 0.5
    lo, hi = int(used.min()) - margin, int(used.max()) + margin
    if hi - lo < least:
        lo, hi = (lo + hi) // 2 - least // 2, (lo + hi) // 2 + least // 2
    return max(lo, MIN_PITCH) - 0.5, min(hi, MAX_PITCH) + 0.5
