"""Transcriber: checkpoint -> notes for a waveform, chunked so long audio fits in memory.

The network runs on chunks of ``chunk_seconds`` with ``context_seconds`` of extra audio on
each side (discarded after the network), and chunks of equal length go through it together,
``batch_chunks`` at a time, so the BiLSTMs step through a long recording a few chunks abreast
instead of one chunk after another. Batching changes no result: every chunk sees exactly the
frames it saw alone (activations agree to float32 rounding, see tests/test_speed_paths.py).
These settings, and the backend, are :class:`InferConfig` (``conf/infer/default.yaml``).

The network is run by onnxruntime when it is installed (``backend="auto"``; the export is
made once per checkpoint and cached, see :mod:`transcribe.runtime`), else by PyTorch.
Neither torch nor librosa is imported by this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from .audio import load_audio
from .checkpoint import Checkpoint, typed_configs
from .config import conf_dir
from .decode import DecodeConfig, decode_notes
from .features import FeatureConfig, cqt_features
from .notes import N_KEYS, Notes
from .runtime import HEADS, NetworkRunner, TorchRunner, make_runner


@dataclass(frozen=True)
class InferConfig:
    """How the network is run over a recording (``conf/infer/default.yaml``)."""

    chunk_seconds: float
    context_seconds: float
    batch_chunks: int
    backend: str
    threads: int | None
    int8: bool

    @classmethod
    def from_dict(cls, d: Mapping) -> "InferConfig":
        """From a mapping with every field (a Hydra ``infer`` group, or the YAML file)."""
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise ValueError(f"infer config lacks {', '.join(missing)}")
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    @classmethod
    def default(cls) -> "InferConfig":
        """``conf/infer/default.yaml``."""
        return _default_infer()

    def with_overrides(self, **overrides) -> "InferConfig":
        """A copy with the given fields changed (``None`` values leave a field as it is)."""
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown inference setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def chunking(self, features: FeatureConfig) -> tuple[int, int]:
        """(chunk frames, context frames) at the feature frame rate."""
        return max(int(self.chunk_seconds * features.frame_rate), 1), int(self.context_seconds * features.frame_rate)


@lru_cache(maxsize=1)
def _default_infer() -> InferConfig:
    import yaml  # PyYAML: read the group file without composing a Hydra config (fast CLI start)

    with open(Path(conf_dir()) / "infer" / "default.yaml") as f:
        return InferConfig.from_dict(yaml.safe_load(f))


def chunk_spans(n_frames: int, chunk_frames: int, context_frames: int) -> list[tuple[int, int, int, int]]:
    """``(start, stop, lo, hi)`` for each chunk: frames ``start:stop`` are kept from a network
    run over ``lo:hi`` (the chunk with up to ``context_frames`` on each side)."""
    spans = []
    for start in range(0, n_frames, chunk_frames):
        stop = min(start + chunk_frames, n_frames)
        spans.append((start, stop, max(start - context_frames, 0), min(stop + context_frames, n_frames)))
    return spans


def run_network(
    model: Any,
    features: np.ndarray,
    chunk_frames: int,
    context_frames: int,
    *,
    batch_chunks: int = 1,
) -> dict[str, np.ndarray]:
    """Activations (probabilities) [frames, 88] for features [frames, bins].

    ``model`` is an :class:`~transcribe.model.OnsetsAndFrames` module (run by torch, in the
    mode and on the device it is in) or a :class:`~transcribe.runtime.NetworkRunner`.
    Long inputs go through the network in chunks of ``chunk_frames`` with ``context_frames``
    of extra audio on each side, which is discarded, so the BiLSTM sees context at the seams.
    Chunks of equal length are stacked into batches of up to ``batch_chunks``
    (``batch_chunks=1``: one chunk at a time; the results are the same).
    """
    runner = model if isinstance(model, NetworkRunner) else TorchRunner(model)
    features = np.ascontiguousarray(features, dtype=np.float32)
    n = len(features)
    out = {k: np.zeros((n, N_KEYS), dtype=np.float32) for k in HEADS}
    groups: dict[int, list[tuple[int, int, int, int]]] = {}
    for span in chunk_spans(n, chunk_frames, context_frames):
        groups.setdefault(span[3] - span[2], []).append(span)
    for spans in groups.values():
        for i in range(0, len(spans), max(batch_chunks, 1)):
            batch = spans[i : i + max(batch_chunks, 1)]
            if len(batch) == 1:
                x = features[batch[0][2] : batch[0][3]][np.newaxis]
            else:
                x = np.stack([features[lo:hi] for _, _, lo, hi in batch])
            pred = runner(x)
            for b, (start, stop, lo, _) in enumerate(batch):
                for k in HEADS:
                    out[k][start:stop] = pred[k][b, start - lo : stop - lo]
    return out


class Transcriber:
    """A network runner with the feature, decoder and inference settings to use it: transcribes
    waveforms or files. Made by :meth:`from_checkpoint`, or from a runner (training validation
    runs a :class:`~transcribe.runtime.TorchRunner` of the network being trained)."""

    def __init__(self, runner: NetworkRunner, features: FeatureConfig, decode: DecodeConfig, infer: InferConfig):
        self.runner, self.features, self.decode, self.infer = runner, features, decode, infer
        self.chunk_frames, self.context_frames = infer.chunking(features)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Checkpoint | str | Path | None = None,
        decode: Mapping | None = None,
        infer: InferConfig | None = None,
        **infer_overrides,
    ) -> "Transcriber":
        """Load ``checkpoint`` (default: the shipped model). ``decode`` overrides decoder
        settings stored in the checkpoint, e.g. ``{"onset_threshold": 0.4}``. ``infer``: how to
        run the network (default ``conf/infer/default.yaml``); keyword arguments override its
        fields, e.g. ``backend="torch"``, ``threads=1``, ``int8=True``, ``chunk_seconds=30``.
        """
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
        infer = (infer or InferConfig.default()).with_overrides(**infer_overrides)
        runner, config = make_runner(ckpt, infer.backend, infer.threads, infer.int8)
        features, stored = typed_configs(config)
        if decode:
            unknown = set(decode) - set(DecodeConfig.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown decoder setting(s): {', '.join(sorted(unknown))}")
            stored = replace(stored, **dict(decode))
        return cls(runner, features, stored, infer)

    @property
    def backend(self) -> str:
        """``"onnx"``, ``"onnx-int8"`` or ``"torch"``: what runs the network."""
        return self.runner.name

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    def run_network(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Activations [frames, 88] per head for log-CQT features [frames, bins]."""
        return run_network(self.runner, features, self.chunk_frames, self.context_frames,
                           batch_chunks=self.infer.batch_chunks)

    def activations(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """Onset, offset, frame and velocity activations [frames, 88] for a mono waveform."""
        return self.run_network(cqt_features(audio, self.features))

    def notes_from_activations(self, act: dict[str, np.ndarray]) -> Notes:
        return decode_notes(act["onset"], act["frame"], self.features.frame_rate, self.decode, act["velocity"])

    def transcribe(self, audio: np.ndarray) -> Notes:
        """Notes for a mono float32 waveform at :attr:`sample_rate`."""
        return self.notes_from_activations(self.activations(audio))

    def transcribe_file(self, path: str | Path) -> Notes:
        """Notes for an audio file (any supported format, rate and channel count)."""
        return self.transcribe(load_audio(path, self.sample_rate))


def transcribe_file(path: str | Path, checkpoint: Checkpoint | str | Path | None = None,
                    decode: Mapping | None = None, **infer_overrides) -> Notes:
    """Notes of an audio file, with the shipped model unless ``checkpoint`` is given; ``decode``
    and keyword arguments as for :meth:`Transcriber.from_checkpoint`. To transcribe many files,
    make one :class:`Transcriber` and call its :meth:`~Transcriber.transcribe_file`."""
    return Transcriber.from_checkpoint(checkpoint, decode, **infer_overrides).transcribe_file(path)
