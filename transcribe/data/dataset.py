"""Training examples: random fixed-length crops of cached features with their target rolls.

Nothing per frame is held in memory for a whole data set: features stay in the (memory-mapped)
feature cache and a crop's targets are made from the notes that touch it, so data sets far
larger than memory (MAESTRO: ~200 h) train the same way as small ones.

With augmentation (``conf/augment``), a crop drawn for augmentation is instead read as audio
(with some context either side, so the CQT's long low-frequency filters see real signal at the
crop's edges), passed through :func:`transcribe.data.augment.augment` (mixing in a render of the
same notes through another piano where one exists) and transformed; the others come from the
cache. Batch ``s`` is drawn from a generator seeded by (seed, rank, s) alone, so any number of
loader processes, and a resumed run, produce the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import read_segment
from ..features import FeatureConfig, cqt_features
from ..targets import HEADS, PEDAL_HEADS, PEDAL_MASK, NoteFrames, pedal_rolls
from ..notes import N_KEYS, Notes
from ..pedal import labels_and_pedal
from .cache import FeatureCache
from .layout import partners_of
from .pitch_shift import draw_semitones, shift_crop



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
    partners: tuple[Path, ...] = ()  # renders of the same notes through other pianos (augmentation mix)
    pedal: np.ndarray | None = None  # sustain pedal spans [n, 2] (down, up s); None: unknown (pedal loss masked)

    @property
    def features(self) -> np.ndarray:
        """Features [frames, bins], float16: in memory, or a fresh read-only memory map (opened
        per access, so a data set of thousands of files keeps no file descriptors open)."""
        if self.in_memory is not None:
            return self.in_memory
        return np.load(self.feature_file, mmap_mode="r")

    def targets(self, start: int, stop: int, frame_rate: float | None = None) -> dict[str, np.ndarray]:
        """Target rolls [stop - start, 88] of frames ``start:stop`` (float16 values, as stored before);
        with ``frame_rate``, also the pedal rolls [stop - start, 1] when the pedal is known."""
        out = {k: v.astype(np.float16) for k, v in self.frames.rolls(self.n_frames, start, stop).items()}
        if frame_rate is not None and self.pedal is not None:
            out.update(pedal_rolls(self.pedal, self.n_frames, frame_rate, start, stop))
        return out

    def warped_targets(self, start: int, stop: int, frame_rate: float, origin: float,
                       scale: float) -> dict[str, np.ndarray]:
        """Like :meth:`targets` (with the pedal), for audio whose events moved from ``t`` to
        ``origin + (t - origin) * scale`` seconds (a detuned crop: ``origin`` is where the
        resampled segment starts, ``scale`` the ``time_scale`` that detune reports)."""
        def warp(t: np.ndarray) -> np.ndarray:
            return origin + (t - origin) * scale

        n = self.notes
        moved = Notes(warp(n.onsets), warp(n.offsets), n.pitches, n.velocities)
        rolls = NoteFrames.from_notes(moved, frame_rate).rolls(self.n_frames, start, stop)
        out = {k: v.astype(np.float16) for k, v in rolls.items()}
        if self.pedal is not None:
            out.update(pedal_rolls(warp(np.asarray(self.pedal, dtype=np.float64)), self.n_frames, frame_rate,
                                   start, stop))
        return out


class CropDataset:
    """Recordings with features and targets; draws random crops weighted by length."""

    def __init__(self, pairs: list[tuple[Path, Path]], cfg: FeatureConfig, cache: FeatureCache, workers: int = 1):
        cache.fill([a for a, _ in pairs], workers)
        self.cfg = cfg
        self.rooms: list[np.ndarray] | None = None  # room impulse responses for augmentation (BatchStream sets them)
        self.measured_rooms: list[np.ndarray] | None = None  # recorded ones (augment.room.measured_dir)
        self.recordings: list[Recording] = []
        for audio, label in pairs:
            feats = cache.load(audio)
            notes, pedal = labels_and_pedal(label)
            in_memory = None if isinstance(feats, np.memmap) else feats
            self.recordings.append(Recording(audio, label, notes, cache.path(audio), len(feats),
                                             NoteFrames.from_notes(notes, cfg.frame_rate), in_memory,
                                             partners_of(audio), pedal))
            del feats

    def __len__(self) -> int:
        return len(self.recordings)

    @property
    def seconds(self) -> float:
        return sum(r.n_frames for r in self.recordings) / self.cfg.frame_rate

    @property
    def pedal_seconds(self) -> float:
        """Seconds of the recordings whose sustain pedal is known (the rest is masked)."""
        return sum(r.n_frames for r in self.recordings if r.pedal is not None) / self.cfg.frame_rate

    def crop(self, index: int, start: int, crop_frames: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Features [crop_frames, bins] (float32) and targets [crop_frames, 88] (float32) of
        recording ``index`` from frame ``start``; past its end, features are the log floor and
        targets zero. Only these rows are read from the feature file."""
        rec = self.recordings[index]
        source = rec.features
        stop = min(start + crop_frames, rec.n_frames)
        feats = np.full((crop_frames, source.shape[1]), np.log(self.cfg.log_floor), dtype=np.float32)
        feats[: stop - start] = source[start:stop]
        return feats, self._targets(rec, start, crop_frames)

    def _targets(self, rec: Recording, start: int, crop_frames: int,
                 warp: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
        """Note and pedal targets of a crop, and ``pedal_mask`` [crop_frames, 1]: 1 where the
        recording's pedal is known (its pedal targets count), else 0. ``warp`` = (origin s,
        time scale): the label times moved as a detuned crop's audio was (:meth:`Recording.warped_targets`)."""
        stop = min(start + crop_frames, rec.n_frames)
        targets = {k: np.zeros((crop_frames, N_KEYS), dtype=np.float32) for k in HEADS}
        targets.update({k: np.zeros((crop_frames, 1), dtype=np.float32) for k in PEDAL_HEADS})
        targets[PEDAL_MASK] = np.full((crop_frames, 1), float(rec.pedal is not None), dtype=np.float32)
        rolls = (rec.targets(start, stop, self.cfg.frame_rate) if warp is None
                 else rec.warped_targets(start, stop, self.cfg.frame_rate, *warp))
        for k, v in rolls.items():
            targets[k][: stop - start] = v
        return targets

    def augmented_crop(self, index: int, start: int, crop_frames: int, rng: np.random.Generator, aug,
                       context_frames: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Like :meth:`crop`, but the features are computed from the crop's audio (and
        ``context_frames`` either side) after :func:`~transcribe.data.augment.augment` with the
        config ``aug``; a partner render, when the recording has one, is drawn for mixing.
        A detuned crop's events move by the ``time_scale`` detune reports, and so do its targets."""
        from .augment import augment, detune_headroom
        from .resonance import pedal_down_mask

        rec, hop, sr = self.recordings[index], self.cfg.hop_length, self.cfg.sample_rate
        first, n = (start - context_frames) * hop, (crop_frames + 2 * context_frames) * hop
        n += detune_headroom(aug, n)  # so that audio detuned upward (shorter) still covers the crop
        y = read_segment(rec.audio, first, n, sr)
        partner = None
        if rec.partners:
            partner = read_segment(rec.partners[int(rng.integers(len(rec.partners)))], first, n, sr)
        down = pedal_down_mask(rec.pedal, first / sr, len(y), sr)
        y, params = augment(y, sr, rng, aug, partner=partner, rooms=self.rooms, measured=self.measured_rooms,
                            return_params=True, pedal_down=down)
        feats = cqt_features(y, self.cfg)[context_frames: context_frames + crop_frames]
        warp = (first / sr, params["detune"]["time_scale"]) if "detune" in params else None
        return np.ascontiguousarray(feats, dtype=np.float32), self._targets(rec, start, crop_frames, warp)

    def sample(self, rng: np.random.Generator, batch_size: int, crop_frames: int, aug=None, p_aug: float = 0.0,
               context_frames: int = 0) -> dict[str, torch.Tensor]:
        """A batch of random crops: ``features`` [B, T, bins], one [B, T, 88] tensor per note head,
        one [B, T, 1] per pedal head and ``pedal_mask`` [B, T, 1].
        Recordings shorter than a crop are zero-padded (targets too). Each crop is augmented with
        probability ``p_aug`` through the chain of ``aug`` (whose own ``p`` should be 1: the draw
        is made here; see :meth:`augmented_crop` and :func:`always`); then, augmented or not, it
        is pitch-shifted as ``aug.pitch_shift`` says (:mod:`~transcribe.data.pitch_shift`)."""
        lengths = np.array([r.n_frames for r in self.recordings], dtype=np.float64)
        picks = rng.choice(len(self.recordings), size=batch_size, p=lengths / lengths.sum())
        crops = []
        for j in picks:
            start = int(rng.integers(0, max(self.recordings[j].n_frames - crop_frames, 0) + 1))
            if p_aug > 0 and rng.random() < p_aug:
                crop_rng = np.random.default_rng(rng.integers(2**63))
                crops.append(self.augmented_crop(int(j), start, crop_frames, crop_rng, aug, context_frames))
            else:
                crops.append(self.crop(int(j), start, crop_frames))
            shift = draw_semitones(rng, aug.get("pitch_shift") if aug is not None else None)
            if shift:
                crops[-1] = shift_crop(*crops[-1], shift, self.cfg.bins_per_semitone, float(np.log(self.cfg.log_floor)))
        batch = {k: torch.from_numpy(np.stack([t[k] for _, t in crops])) for k in crops[0][1]}
        batch["features"] = torch.from_numpy(np.stack([f for f, _ in crops]))
        return batch


def always(aug):
    """``aug`` with its overall probability set to 1 (for :meth:`CropDataset.sample`, which
    draws whether a crop is augmented itself)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OmegaConf.to_container(aug, resolve=True) if OmegaConf.is_config(aug) else dict(aug))
    cfg.p = 1.0
    return cfg


class BatchStream(torch.utils.data.Dataset):
    """Training batches indexed by step: batch ``s`` is drawn with the generator seeded by
    ``(seed, rank, s)``, so loader processes (``torch.utils.data.DataLoader`` workers) can
    make them in any order and a resumed run draws exactly the batches it would have."""

    def __init__(self, data: CropDataset, batch_size: int, crop_frames: int, seed: int, rank: int = 0,
                 aug=None, context_frames: int = 0):
        """``aug``: an augmentation config (``conf/augment``); ``aug.p`` of the crops are augmented."""
        self.data, self.batch_size, self.crop_frames = data, batch_size, crop_frames
        self.seed, self.rank, self.context_frames = seed, rank, context_frames
        self.p_aug = float(aug.get("p", 1.0)) if aug is not None else 0.0
        self.aug = always(aug) if self.p_aug > 0 else None  # converted once, not per batch
        if self.aug is not None and self.aug.get("room") is not None and float(self.aug.room.p) > 0 and data.rooms is None:
            from .rooms import measured_irs, room_bank

            data.rooms = room_bank(self.aug.room, data.cfg.sample_rate)
            if self.aug.room.get("measured_dir"):
                data.measured_rooms = measured_irs(self.aug.room.measured_dir, data.cfg.sample_rate)

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, int(step)])
        return self.data.sample(rng, self.batch_size, self.crop_frames, self.aug, self.p_aug, self.context_frames)

    def batches(self, first_step: int, last_step: int, workers: int = 0):
        """Batches for steps ``first_step .. last_step - 1``, in order, made by ``workers``
        processes (0: in this process)."""
        if workers <= 0:
            return (self[s] for s in range(first_step, last_step))
        import multiprocessing

        # fork where there is one: no pickling of the data set, and it works inside joblib's (loky) workers
        context = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        return iter(torch.utils.data.DataLoader(self, batch_size=None, sampler=range(first_step, last_step),
                                                num_workers=workers, prefetch_factor=2,
                                                worker_init_fn=_quiet_worker, multiprocessing_context=context))


def _quiet_worker(_: int) -> None:
    """Loader processes run one torch thread each (the training process has the others)."""
    torch.set_num_threads(1)
