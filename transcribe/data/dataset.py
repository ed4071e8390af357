"""Training examples: random fixed-length crops of cached features with their target rolls.

Nothing per frame is held in memory for a whole data set: features stay in the (memory-mapped)
feature cache and a crop's targets are made from the notes that touch it, so data sets far
larger than memory (MAESTRO: ~200 h) train the same way as small ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..features import FeatureConfig
from ..labels import NoteFrames
from ..midi import read_labels
from ..notes import Notes
from .cache import FeatureCache

HEADS = ("onset", "offset", "frame", "velocity")


@dataclass
class Recording:
    """One labelled recording: its notes and where its cached features are."""

    audio: Path
    label: Path
    notes: Notes
    feature_file: Path
    n_frames: int
    frames: NoteFrames  # the notes on the frame grid, for crop targets
    in_memory: np.ndarray | None = None  # the features, when the cache is not memory-mapped

    @property
    def features(self) -> np.ndarray:
        """Features [frames, bins], float16: in memory, or a fresh read-only memory map (opened
        per access, so a data set of thousands of files keeps no file descriptors open)."""
        if self.in_memory is not None:
            return self.in_memory
        return np.load(self.feature_file, mmap_mode="r")

    def targets(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Target rolls [stop - start, 88] of frames ``start:stop`` (float16 values, as stored before)."""
        return {k: v.astype(np.float16) for k, v in self.frames.rolls(self.n_frames, start, stop).items()}


class CropDataset:
    """Recordings with features and targets; draws random crops weighted by length."""

    def __init__(self, pairs: list[tuple[Path, Path]], cfg: FeatureConfig, cache: FeatureCache, workers: int = 1):
        cache.fill([a for a, _ in pairs], workers)
        self.cfg = cfg
        self.recordings: list[Recording] = []
        for audio, label in pairs:
            feats = cache.load(audio)
            notes = read_labels(label)
            in_memory = None if isinstance(feats, np.memmap) else feats
            self.recordings.append(Recording(audio, label, notes, cache.path(audio), len(feats),
                                             NoteFrames.from_notes(notes, cfg.frame_rate), in_memory))
            del feats

    def __len__(self) -> int:
        return len(self.recordings)

    @property
    def seconds(self) -> float:
        return sum(r.n_frames for r in self.recordings) / self.cfg.frame_rate

    def crop(self, index: int, start: int, crop_frames: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Features [crop_frames, bins] (float32) and targets [crop_frames, 88] (float32) of
        recording ``index`` from frame ``start``; past its end, features are the log floor and
        targets zero. Only these rows are read from the feature file."""
        rec = self.recordings[index]
        source = rec.features
        stop = min(start + crop_frames, rec.n_frames)
        feats = np.full((crop_frames, source.shape[1]), np.log(self.cfg.log_floor), dtype=np.float32)
        targets = {k: np.zeros((crop_frames, 88), dtype=np.float32) for k in HEADS}
        feats[: stop - start] = source[start:stop]
        for k, v in rec.targets(start, stop).items():
            targets[k][: stop - start] = v
        return feats, targets

    def sample(self, rng: np.random.Generator, batch_size: int, crop_frames: int) -> dict[str, torch.Tensor]:
        """A batch of random crops: ``features`` [B, T, bins] and one [B, T, 88] tensor per head.
        Recordings shorter than a crop are zero-padded (targets too)."""
        lengths = np.array([r.n_frames for r in self.recordings], dtype=np.float64)
        picks = rng.choice(len(self.recordings), size=batch_size, p=lengths / lengths.sum())
        crops = []
        for j in picks:
            start = int(rng.integers(0, max(self.recordings[j].n_frames - crop_frames, 0) + 1))
            crops.append(self.crop(int(j), start, crop_frames))
        batch = {k: torch.from_numpy(np.stack([t[k] for _, t in crops])) for k in HEADS}
        batch["features"] = torch.from_numpy(np.stack([f for f, _ in crops]))
        return batch
