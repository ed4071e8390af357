"""Training examples: random fixed-length crops of cached features with their target rolls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..features import FeatureConfig
from ..labels import notes_to_rolls
from ..midi import read_labels
from ..notes import Notes
from .cache import FeatureCache

HEADS = ("onset", "offset", "frame", "velocity")


@dataclass
class Recording:
    audio: Path
    label: Path
    notes: Notes
    features: np.ndarray  # [frames, bins], float16 memory-map
    rolls: dict[str, np.ndarray]  # [frames, 88] each

    @property
    def n_frames(self) -> int:
        return len(self.features)


class CropDataset:
    """Recordings with features and targets; draws random crops weighted by length."""

    def __init__(self, pairs: list[tuple[Path, Path]], cfg: FeatureConfig, cache: FeatureCache, workers: int = 1):
        cache.fill([a for a, _ in pairs], workers)
        self.cfg = cfg
        self.recordings: list[Recording] = []
        for audio, label in pairs:
            feats = cache.load(audio)
            notes = read_labels(label)
            rolls = {k: v.astype(np.float16) for k, v in notes_to_rolls(notes, len(feats), cfg.frame_rate).items()}
            self.recordings.append(Recording(audio, label, notes, feats, rolls))

    def __len__(self) -> int:
        return len(self.recordings)

    @property
    def seconds(self) -> float:
        return sum(r.n_frames for r in self.recordings) / self.cfg.frame_rate

    def sample(self, rng: np.random.Generator, batch_size: int, crop_frames: int) -> dict[str, torch.Tensor]:
        """A batch of random crops: ``features`` [B, T, bins] and one [B, T, 88] tensor per head.
        Recordings shorter than a crop are zero-padded (targets too)."""
        lengths = np.array([r.n_frames for r in self.recordings], dtype=np.float64)
        picks = rng.choice(len(self.recordings), size=batch_size, p=lengths / lengths.sum())
        n_bins = self.recordings[0].features.shape[1]
        feats = np.full((batch_size, crop_frames, n_bins), np.log(self.cfg.log_floor), dtype=np.float32)
        targets = {k: np.zeros((batch_size, crop_frames, 88), dtype=np.float32) for k in HEADS}
        for i, j in enumerate(picks):
            rec = self.recordings[j]
            start = int(rng.integers(0, max(rec.n_frames - crop_frames, 0) + 1))
            stop = min(start + crop_frames, rec.n_frames)
            feats[i, : stop - start] = rec.features[start:stop]
            for k in HEADS:
                targets[k][i, : stop - start] = rec.rolls[k][start:stop]
        batch = {k: torch.from_numpy(v) for k, v in targets.items()}
        batch["features"] = torch.from_numpy(feats)
        return batch
