"""Feature cache: the CQT of each file is computed once per feature configuration and kept
on disk as .npy (memory-mapped when read), so training never recomputes it."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..features import FeatureConfig, cqt_features
from ..files import atomic_write


class FeatureCache:
    """Features of audio files under ``cache_dir/<hash of the feature config>/``.

    With ``mmap`` (the default) :meth:`load` memory-maps the file, so a data set larger
    than memory can be trained on and a crop reads only its own rows from disk; without it
    the features are read into memory.
    """

    def __init__(self, cache_dir: str | Path, cfg: FeatureConfig, mmap: bool = True):
        self.cfg = cfg
        self.mmap = mmap
        key = hashlib.sha1(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]
        self.dir = Path(cache_dir) / key

    def path(self, audio: Path) -> Path:
        """The cache file of ``audio``, named by its path, size and modification time in
        nanoseconds (whole seconds let a same-size file replaced within a second keep the old
        features). An entry made under the old whole-second name is taken over (renamed) when
        it was written after the audio last changed, so existing caches are not recomputed."""
        st = audio.stat()
        resolved = audio.resolve()
        out = self._named(audio, f"{resolved}|{st.st_size}|ns{st.st_mtime_ns}")
        if not out.exists():
            old = self._named(audio, f"{resolved}|{st.st_size}|{int(st.st_mtime)}")
            try:
                if old.stat().st_mtime_ns > st.st_mtime_ns:
                    old.replace(out)
            except OSError:  # no old entry (or it went meanwhile): computed afresh
                pass
        return out

    def _named(self, audio: Path, ident: str) -> Path:
        return self.dir / f"{audio.stem}-{hashlib.sha1(ident.encode()).hexdigest()[:10]}.npy"

    def compute(self, audio: Path) -> Path:
        """Compute and store the features of ``audio`` unless cached; return the cache path."""
        out = self.path(audio)
        if not out.exists():
            feats = cqt_features(load_audio(audio, self.cfg.sample_rate), self.cfg)
            with atomic_write(out) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, feats.astype(np.float16))
        return out

    def load(self, audio: Path) -> np.ndarray:
        """Features [frames, bins] (float16; memory-mapped unless the cache was made with ``mmap=False``)."""
        return np.load(self.compute(audio), mmap_mode="r" if self.mmap else None)

    def missing(self, audios: list[Path]) -> list[Path]:
        """The files of ``audios`` that have no cache entry yet."""
        return [a for a in audios if not self.path(a).exists()]

    def fill(self, audios: list[Path], workers: int = 1) -> None:
        """Compute all missing entries, in ``workers`` processes."""
        missing = self.missing(audios)
        if not missing:
            return
        if workers <= 1:
            for a in missing:
                self.compute(a)
            return
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(self.compute, missing))
