"""Fixtures the tests make themselves: piano-like tones at known pitches and times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transcribe.notes import Notes

SR = 16000


def synth(notes: Notes, sr: int = SR, tail: float = 0.5, seed: int = 0) -> np.ndarray:
    """Harmonic tones with a fast attack and exponential decay (a crude piano), plus a little noise."""
    n = int((notes.duration + tail) * sr)
    y = np.zeros(n, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for on, off, p, v in zip(notes.onsets, notes.offsets, notes.pitches, notes.velocities):
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        s, e = int(on * sr), min(int(off * sr), n)
        t = np.arange(e - s) / sr
        tone = sum((0.6**h) * np.sin(2 * np.pi * f0 * (h + 1) * t) for h in range(6) if f0 * (h + 1) < sr / 2)
        env = np.exp(-t * 2.5) * np.minimum(t / 0.004, 1.0)
        release = np.minimum((e - s - np.arange(e - s)) / (0.03 * sr), 1.0)  # 30 ms release at note off
        y[s:e] += (v / 127) * 0.3 * tone * env * release
    y += rng.normal(0, 1e-4, n)
    return (y / max(1.0, np.abs(y).max())).astype(np.float32)


def random_notes(seed: int, seconds: float = 6.0, n: int = 16, low: int = 40, high: int = 84) -> Notes:
    """Random notes over ``seconds``, each on a different key (no same-key overlaps)."""
    rng = np.random.default_rng(seed)
    onsets = np.sort(rng.uniform(0.2, seconds - 1.0, n))
    durations = rng.uniform(0.2, 0.8, n)
    pitches = rng.choice(np.arange(low, high + 1), size=n, replace=False)
    velocities = rng.integers(40, 120, n)
    return Notes(onsets, onsets + durations, pitches, velocities).sorted()


def write_tsv(notes: Notes, path: Path) -> None:
    rows = "".join(f"{a:.6f}\t{b:.6f}\t{p}\t{v}\n" for a, b, p, v in
                   zip(notes.onsets, notes.offsets, notes.pitches, notes.velocities))
    path.write_text("# onset,offset,note,velocity\n" + rows)


@pytest.fixture
def scale_notes() -> Notes:
    """A C major scale, one note every 0.5 s, each 0.4 s long."""
    pitches = [60, 62, 64, 65, 67, 69, 71, 72]
    onsets = 0.5 + 0.5 * np.arange(len(pitches))
    return Notes(onsets, onsets + 0.4, pitches, np.full(len(pitches), 90))


@pytest.fixture
def labelled_folder(tmp_path: Path) -> Path:
    """A folder of four synthetic recordings with .tsv labels beside them (and one .mid)."""
    from transcribe.midi import write_midi

    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(4):
        notes = random_notes(i)
        sf.write(folder / f"piece{i}_{'val' if i == 3 else 'train'}.wav", synth(notes, seed=i), SR)
        if i == 2:
            write_midi(notes, folder / f"piece{i}_train.mid")
        else:
            write_tsv(notes, folder / f"piece{i}_{'val' if i == 3 else 'train'}.tsv")
    return folder
