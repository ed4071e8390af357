"""The piano roll: readable pitch axis, velocity visible, onsets drawn without hiding held notes,
and no change to the caller's matplotlib state."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .conftest import require_dev

require_dev("matplotlib")

from transcribe.notes import MIN_PITCH, Notes  # noqa: E402
from transcribe.plot import piano_roll_figure, write_piano_roll  # noqa: E402


def activations(n_frames: int = 200) -> dict[str, np.ndarray]:
    frame = np.zeros((n_frames, 88), np.float32)
    onset = np.zeros_like(frame)
    frame[10:150, 60 - MIN_PITCH] = 0.9  # a held C4 ...
    onset[10, 60 - MIN_PITCH] = 0.9      # ... struck once
    frame[40:60, 67 - MIN_PITCH] = 0.8
    onset[40, 67 - MIN_PITCH] = 0.8
    return {"frame": frame, "onset": onset, "offset": np.zeros_like(frame), "velocity": np.zeros_like(frame)}


def test_piano_roll_is_readable_and_leaves_matplotlib_alone(tmp_path):
    notes = Notes([0.32, 1.28], [4.8, 1.92], [60, 67], [30, 120])
    fig = piano_roll_figure(notes, activations(), 31.25, title="t", onset_threshold=0.5)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "C4" in labels and all(label.startswith("C") for label in labels)
    lo, hi = ax.get_ylim()
    assert lo <= 60 - 3 and hi >= 67 + 3 and hi - lo < 40  # zoomed to the keys that sound
    faces = {round(p.get_y() + 0.5): p.get_facecolor() for p in ax.patches}
    assert sum(faces[67][:3]) < sum(faces[60][:3])  # the loud note is darker
    ticks = ax.collections[0].get_segments()  # onset peaks: one tick per strike, not a painted layer
    assert len(ticks) == 2
    assert "matplotlib.pyplot" not in sys.modules  # no global backend switch
    write_piano_roll(notes, activations(), 31.25, tmp_path / "r.png", onset_threshold=0.5)
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_decoded_note_has_its_onset_tick_at_the_decoders_threshold():
    """A note decoded from an onset peak below 0.5 (the shipped model decodes at 0.3) has its
    red tick: the plot marks peaks where the decoder starts notes, not at a fixed 0.5."""
    from transcribe.decode import DecodeConfig, decode_notes

    act = activations()
    act["frame"][80:120, 64 - MIN_PITCH] = 0.6
    act["onset"][80, 64 - MIN_PITCH] = 0.4  # a soft E4: above the decoder's 0.3, below 0.5
    cfg = DecodeConfig(onset_threshold=0.3, frame_threshold=0.5)
    notes = decode_notes(act["onset"], act["frame"], 31.25, cfg, act["velocity"])
    assert sorted(notes.pitches.tolist()) == [60, 64, 67]
    fig = piano_roll_figure(notes, act, 31.25, onset_threshold=cfg.onset_threshold)
    ticks = fig.axes[0].collections[0].get_segments()
    ticked = sorted(round(seg[0][1] + 0.5) for seg in ticks)  # each tick spans its key's cell
    assert ticked == [60, 64, 67]


def test_onset_peaks_need_no_scipy():
    """The running maximum that finds onset peaks is scipy's maximum_filter1d (mirrored edges),
    in numpy: ``--plot`` needs only matplotlib on top of the base install."""
    from scipy.ndimage import maximum_filter1d

    from transcribe.plot import _running_max

    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 4, 5, 300):
        x = rng.random((n, 88)).astype(np.float32)
        assert np.array_equal(_running_max(x, 5), maximum_filter1d(x, 5, axis=0)), n


def test_plot_on_the_base_install_with_matplotlib(tmp_path):
    """``transcribe --plot`` in a process where torch, librosa and scipy cannot be imported."""
    import soundfile as sf

    from .conftest import SR, random_notes, synth
    from .test_no_torch import Blocked

    wav = tmp_path / "clip.wav"
    sf.write(wav, synth(random_notes(3, seconds=6.0, n=12), seed=3), SR)
    blocked = Blocked(tmp_path, ("torch", "librosa", "scipy"))
    proc = blocked.transcribe(wav, "--plot", "--jobs", "1")
    assert proc.returncode == 0 and blocked.attempts == [], (proc.stderr, blocked.attempts)
    assert wav.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_comparison_shows_found_false_and_missed_notes(tmp_path):
    """scripts/compare_midi.py's picture: one box per note in the window, coloured by what the
    note-F1 matching says, and the counts in the legend."""
    import subprocess

    from matplotlib.patches import Rectangle

    from transcribe.notefiles import write_midi, write_tsv
    from transcribe.plot import comparison_figure

    from .test_error_breakdown import EST, REF

    fig = comparison_figure(EST, REF, 0.0, 12.0, "piece")
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    kinds = ["missed" if p.get_facecolor()[3] == 0 else "found" if p.get_facecolor()[1] > 0.5 else "false"
             for p in boxes]
    # 2 found, 5 false (one a timing error), 2 missed reference notes (one the late one's reference)
    assert sorted(kinds) == ["false"] * 5 + ["found"] * 2 + ["missed"] * 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["found (2)", "false (5)", "missed (2)"]
    assert "note F1 0.364" in ax.get_title()
    write_midi(EST, tmp_path / "est.mid")
    write_tsv(REF, tmp_path / "ref.tsv")
    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_midi.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "est.mid"), str(tmp_path / "ref.tsv"),
                           "--seconds", "12", "--out", str(tmp_path / "cmp.png")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
