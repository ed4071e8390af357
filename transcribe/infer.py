"""Transcriber: checkpoint -> notes for a waveform, chunked so long audio fits in memory.

The network runs on chunks of ``chunk_seconds`` with ``context_seconds`` of extra audio on
each side (discarded after the network), and chunks of equal length go through it together,
``batch_chunks`` at a time, so the BiLSTMs step through a long recording a few chunks abreast
instead of one chunk after another. Batching changes no result: every chunk sees exactly the
frames it saw alone (activations agree to float32 rounding, see tests/test_speed_paths.py).

The network is run by onnxruntime when it is installed (``backend="auto"``; the export is
made once per checkpoint and cached, see :mod:`transcribe.runtime`), else by PyTorch.
Neither torch nor librosa is imported by this module.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .audio import load_audio
from .checkpoint import SHIPPED_CHECKPOINT, CheckpointError, build_model, load_checkpoint
from .decode import DecodeConfig, decode_notes
from .features import FeatureConfig, cqt_features
from .notes import Notes
from .runtime import BACKENDS, HEADS, NetworkRunner, TorchRunner, load_or_export_onnx, onnx_available

DEFAULT_BATCH_CHUNKS = 2  # chunks per network call: 2 x 70 s; more buys little and costs ~150 MB per chunk


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
    batch_chunks: int = DEFAULT_BATCH_CHUNKS,
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
    out = {k: np.zeros((n, 88), dtype=np.float32) for k in HEADS}
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
    """Loads a checkpoint once and transcribes waveforms or files with it."""

    def __init__(
        self,
        model: Any,
        features: FeatureConfig,
        decode: DecodeConfig,
        chunk_seconds: float = 60.0,
        context_seconds: float = 5.0,
        *,
        runner: NetworkRunner | None = None,
        batch_chunks: int = DEFAULT_BATCH_CHUNKS,
        checkpoint: str | Path | None = None,
    ):
        """``model``: the torch network (may be None when ``runner`` is given; it is then
        loaded from ``checkpoint`` on first use of :attr:`model`). ``runner``: what runs the
        network (default: torch on ``model``)."""
        self._model, self.features, self.decode = model, features, decode
        self.runner = runner
        self.batch_chunks = batch_chunks
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.chunk_frames = max(int(chunk_seconds * features.frame_rate), 1)
        self.context_frames = int(context_seconds * features.frame_rate)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path | None = None,
        decode: Mapping | None = None,
        *,
        backend: str = "auto",
        threads: int | None = None,
        int8: bool = False,
        **kwargs,
    ) -> "Transcriber":
        """Load ``checkpoint`` (default: the shipped model). ``decode`` overrides decoder
        settings stored in the checkpoint, e.g. ``{"onset_threshold": 0.4}``.

        ``backend``: ``"onnx"`` (onnxruntime, export cached per checkpoint), ``"torch"``, or
        ``"auto"`` (onnx when onnxruntime is installed, else torch). ``threads``: CPU threads
        for the network (default: the runtime's choice). ``int8``: run the ONNX export with
        int8 weights in its MatMul and LSTM nodes (faster, slightly different numerics; only
        with the onnx backend). Other keyword arguments go to the constructor
        (``chunk_seconds``, ``context_seconds``, ``batch_chunks``).
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
        path = Path(checkpoint) if checkpoint is not None else SHIPPED_CHECKPOINT
        runner, model = None, None
        if backend == "onnx" or (backend == "auto" and onnx_available()):
            try:
                runner, config = load_or_export_onnx(path, threads, int8=int8)
            except CheckpointError:
                raise
            except Exception as err:  # noqa: BLE001 - no exporter, unsupported graph...: torch still works
                if backend == "onnx":
                    raise
                warnings.warn(f"transcribe: ONNX runtime not usable ({type(err).__name__}: {err}); using torch",
                              stacklevel=2)
        if runner is None:
            if int8:
                warnings.warn("transcribe: int8 needs the onnx backend; running the float32 network with torch",
                              stacklevel=2)
            if threads:
                import torch

                torch.set_num_threads(int(threads))
            model, features, stored = build_model(load_checkpoint(path))
        else:
            features = FeatureConfig.from_dict(config["features"])
            stored = DecodeConfig.from_dict(config["decode"])
        if decode:
            unknown = set(decode) - set(DecodeConfig.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown decoder setting(s): {', '.join(sorted(unknown))}")
            stored = replace(stored, **dict(decode))
        return cls(model, features, stored, runner=runner, checkpoint=path, **kwargs)

    @property
    def model(self):
        """The torch network (loaded from the checkpoint on first use when an ONNX runner serves)."""
        if self._model is None and self.checkpoint is not None:
            self._model = build_model(load_checkpoint(self.checkpoint))[0]
        return self._model

    @model.setter
    def model(self, value) -> None:
        self._model = value

    @property
    def backend(self) -> str:
        """``"onnx"`` or ``"torch"``: what runs the network."""
        return self.runner.name if self.runner is not None else "torch"

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    def run_network(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Activations [frames, 88] per head for log-CQT features [frames, bins]."""
        net = self.runner if self.runner is not None else self.model
        return run_network(net, features, self.chunk_frames, self.context_frames, batch_chunks=self.batch_chunks)

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
