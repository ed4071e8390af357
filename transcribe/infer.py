"""Transcriber: checkpoint -> notes for a waveform, chunked so long audio fits in memory.

The network runs on chunks of ``chunk_seconds`` with ``context_seconds`` of extra audio on
each side (discarded after the network), and chunks of equal length go through it together,
``batch_chunks`` at a time, so the BiLSTMs step through a long recording a few chunks abreast
instead of one chunk after another. Batching changes no result: every chunk sees exactly the
frames it saw alone (activations agree to float32 rounding, see tests/test_speed_paths.py).
Each recording is first brought to the level the model was trained at (``level_db``, see
:mod:`transcribe.level`). These settings, and the backend, are :class:`InferConfig`
(``conf/infer/default.yaml``).

The network is run by onnxruntime when it is installed (``backend="auto"``): the shipped model
from its shipped ONNX export, another checkpoint from the export beside it or one made once and
cached (see :mod:`transcribe.runtime`); else by PyTorch. Neither torch nor librosa is imported
by this module, and with the default model neither is imported at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any
from functools import lru_cache
from pathlib import Path

import numpy as np

from .audio import AudioError, AudioStream, load_audio
from .checkpoint import Checkpoint, typed_configs
from .config import complete, from_group
from .decode import DecodeConfig, StreamingDecoder, decode_notes, decode_pedal, finish_notes
from .features import FeatureConfig, cqt_features, cqt_plan
from .level import level_db, level_gain
from .notes import N_KEYS, Notes
from .runtime import DEVICES, HEADS, NetworkRunner, TorchRunner, make_runner


_NONE_IS_A_VALUE = ("level_db",)  # with_overrides: None means "off" here, not "unchanged"


@dataclass(frozen=True)
class InferConfig:
    """How the network is run over a recording (``conf/infer/default.yaml``)."""

    chunk_seconds: float
    context_seconds: float
    batch_chunks: int
    model_chunking: bool  # a checkpoint's own chunking (its config's ``infer``, from ship_model) replaces the two above
    backend: str
    threads: int | None
    int8: bool
    device: str  # auto | cpu | cuda (transcribe.runtime.make_runner)
    level_db: float | None  # bring each recording's level (transcribe.level) to this dBFS; None: as it is
    level_max_gain_db: float  # at most this much gain or attenuation

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")

    @classmethod
    def from_dict(cls, d: Mapping) -> "InferConfig":
        """From a mapping with every field (a Hydra ``infer`` group, or the YAML file)."""
        return complete(cls, d, "infer")

    @classmethod
    def default(cls) -> "InferConfig":
        """``conf/infer/default.yaml``."""
        return _default_infer()

    def with_overrides(self, **overrides) -> "InferConfig":
        """A copy with the given fields changed. ``None`` leaves a field as it is, except for
        ``level_db``, where it turns the level step off (``level_db=None``)."""
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown inference setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None or k in _NONE_IS_A_VALUE})

    def chunking(self, features: FeatureConfig) -> tuple[int, int]:
        """(chunk frames, context frames) at the feature frame rate."""
        return max(int(self.chunk_seconds * features.frame_rate), 1), int(self.context_seconds * features.frame_rate)


def with_model_chunking(infer: InferConfig, config: Mapping, given: Sequence[str] = ()) -> InferConfig:
    """``infer`` with the chunking stored in a checkpoint's ``config`` (``config["infer"]``:
    ``chunk_seconds`` and ``batch_chunks``, written by ``scripts/ship_model.py`` for a network whose
    memory needs shorter chunks) where ``infer.model_chunking`` allows it and neither setting is
    among the ``given`` arguments; otherwise ``infer`` as it is."""
    own = config.get("infer") if infer.model_chunking else None
    if not own or {"chunk_seconds", "batch_chunks"} & set(given):
        return infer
    return replace(infer, chunk_seconds=float(own["chunk_seconds"]), batch_chunks=int(own["batch_chunks"]))


@lru_cache(maxsize=1)
def _default_infer() -> InferConfig:
    return from_group("infer", InferConfig.from_dict)


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
    """Activations (probabilities) [frames, 88] for features [frames, bins] (pedal heads, where
    the network has them: [frames, 1]).

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
            for k in pred:
                if k not in out:
                    out[k] = np.zeros((n, pred[k].shape[-1]), dtype=np.float32)
            for b, (start, stop, lo, _) in enumerate(batch):
                for k in pred:
                    out[k][start:stop] = pred[k][b, start - lo : stop - lo]
    return out


def cqt_margin_frames(features: FeatureConfig) -> tuple[int, int]:
    """(margin, alignment) in frames for computing the CQT of a stretch of a recording: frames
    at least ``margin`` from a cut equal the whole-file CQT to float32 rounding (the longest
    filter, twice), and a stretch starting on a multiple of ``alignment`` frames puts every
    octave's downsampled grid where the whole-file transform has it."""
    plan = cqt_plan(features)
    factor, reach = plan.early_factor, 0
    for octave in plan.octaves:
        factor *= 2 if octave.halve else 1
        reach = max(reach, octave.n_fft // 2 * factor)
    hop = features.hop_length
    return -(-2 * reach // hop), math.lcm(hop, factor) // hop


class _AudioWindow:
    """Samples ``[start, end)`` of a stream of blocks, read on demand and dropped when done."""

    def __init__(self, blocks: Iterable[np.ndarray]):
        self._blocks = iter(blocks)
        self._parts: list[np.ndarray] = []
        self.data = np.zeros(0, dtype=np.float32)
        self.start, self.finished = 0, False

    @property
    def end(self) -> int:
        return self.start + len(self.data) + sum(len(p) for p in self._parts)

    def need(self, end: int) -> None:
        """Read until sample ``end`` is held or the stream is finished."""
        while not self.finished and self.end < end:
            block = next(self._blocks, None)
            if block is None:
                self.finished = True
            else:
                self._parts.append(np.asarray(block, dtype=np.float32))

    def get(self, a: int, b: int) -> np.ndarray:
        """Samples ``a:b`` (``a >= start``; cut at the end of what was read)."""
        if self._parts:
            self.data = np.concatenate([self.data, *self._parts])
            self._parts = []
        return self.data[a - self.start: b - self.start]

    def drop_before(self, a: int) -> None:
        self.get(self.start, self.start)
        if a > self.start:
            self.data = self.data[a - self.start:].copy()
            self.start = a


@dataclass
class StreamResult:
    """A recording transcribed as a stream: its notes (as written, see
    :func:`~transcribe.decode.finish_notes`), its length, the activations of its first
    ``keep_seconds`` (for a plot), what the audio decoder said about it, its sustain pedal
    spans [n, 2] (down, up s; None when the model has no pedal head or ``decode.pedal`` is off)
    and the share of its samples that are clipped (:attr:`~transcribe.audio.AudioStream.clipped_share`)."""

    notes: Notes
    audio_seconds: float
    activations: dict[str, np.ndarray]
    decoder_messages: list[str]
    pedal: np.ndarray | None = None
    clipped_share: float = 0.0


class Transcriber:
    """A network runner with the feature, decoder and inference settings to use it: transcribes
    waveforms or files. Made by :meth:`from_checkpoint`, or from a runner (training validation
    runs a :class:`~transcribe.runtime.TorchRunner` of the network being trained)."""

    def __init__(self, runner: NetworkRunner, features: FeatureConfig, decode: DecodeConfig, infer: InferConfig):
        self.runner, self.features, self.decode, self.infer = runner, features, decode, infer
        self.chunk_frames, self.context_frames = infer.chunking(features)
        if decode.notes == "key" and "pedal" not in runner.heads:
            raise ValueError("key-release notes (--notes key, notes='key') are estimated from the sustain pedal, and "
                             "this model has no pedal head (model.pedal_head=true in training): use --notes sounding")
        if decode.notes == "key" and not decode.pedal:
            raise ValueError("key-release notes (--notes key, notes='key') are estimated from the sustain pedal, which "
                             "--no-pedal (pedal=False) turns off: leave one of them out")

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
        fields, e.g. ``backend="torch"``, ``threads=1``, ``int8=True``, ``chunk_seconds=30``,
        ``level_db=None`` (the recording's own level), ``device="cuda"`` (a :class:`~transcribe.runtime.DeviceError`, a ValueError, where there is no GPU).
        """
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
        infer = (infer or InferConfig.default()).with_overrides(**infer_overrides)
        runner, config = make_runner(ckpt, infer.backend, infer.threads, infer.int8, infer.device)
        infer = with_model_chunking(infer, config, given=[k for k, v in infer_overrides.items() if v is not None])
        features, stored = typed_configs(config, str(ckpt.path))
        if decode:
            unknown = set(decode) - set(DecodeConfig.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown decoder setting(s): {', '.join(sorted(unknown))}")
            stored = replace(stored, **dict(decode))
        try:
            return cls(runner, features, stored, infer)
        except ValueError as err:
            raise ValueError(f"{ckpt.path}: {err}") from None

    @property
    def backend(self) -> str:
        """``"onnx"``, ``"onnx-int8"`` or ``"torch"``: what runs the network."""
        return self.runner.name

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda"``: where the network runs."""
        return self.runner.device

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    def run_network(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Activations [frames, 88] per head for log-CQT features [frames, bins]."""
        return run_network(self.runner, features, self.chunk_frames, self.context_frames,
                           batch_chunks=self.infer.batch_chunks)

    def level_gain(self, blocks: Iterable[np.ndarray]) -> float:
        """The gain that brings a recording (its mono blocks at :attr:`sample_rate`) to
        ``infer.level_db`` (:mod:`transcribe.level`); 1 where that is off."""
        if self.infer.level_db is None:
            return 1.0
        return level_gain(level_db(blocks, self.sample_rate), self.infer.level_db, self.infer.level_max_gain_db)

    def activations(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """Onset, offset, frame and velocity activations [frames, 88] for a mono waveform (first
        brought to ``infer.level_db``)."""
        gain = self.level_gain([audio])
        return self.run_network(cqt_features(audio * np.float32(gain) if gain != 1.0 else audio, self.features))

    def notes_from_activations(self, act: dict[str, np.ndarray]) -> Notes:
        """The notes as written (:func:`~transcribe.decode.finish_notes`) of whole-recording activations."""
        notes = decode_notes(act["onset"], act["frame"], self.features.frame_rate, self.decode, act["velocity"])
        return self.finish_notes(notes, self.pedal_from_activations(act))

    def finish_notes(self, notes: Notes, pedal: np.ndarray | None) -> Notes:
        """The decoder's notes as written: shortest note, key range, sounding or key-release offsets
        (:func:`~transcribe.decode.finish_notes` with these decoder settings)."""
        return finish_notes(notes, pedal, self.features.frame_rate, self.decode)

    def pedal_from_activations(self, act: dict[str, np.ndarray]) -> np.ndarray | None:
        """Sustain pedal spans [n, 2] (down, up s) of activations from a model with a pedal head;
        None without one, or with ``decode.pedal`` off."""
        if "pedal" not in act or not self.decode.pedal:
            return None
        return decode_pedal(act["pedal"], act.get("pedal_onset"), self.features.frame_rate, self.decode)

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> Notes:
        """Notes for a waveform in memory: ``audio`` [samples] or [samples, channels] at
        ``sample_rate`` Hz (mixed down and resampled to :attr:`sample_rate` as files are)."""
        from .audio import to_mono_rate

        audio = to_mono_rate(audio, sample_rate, self.sample_rate)
        return self.notes_from_activations(self.activations(audio))

    def transcribe_file(self, path: str | Path) -> Notes:
        """Notes for an audio file (any supported format, rate and channel count), streamed:
        memory stays flat however long the recording (see :meth:`transcribe_stream`)."""
        return self.transcribe_stream(path).notes

    def _spans(self, window: _AudioWindow, margin: int) -> Iterator[tuple[int, int, int, int]]:
        """The chunk spans of :func:`chunk_spans`, found as the audio arrives."""
        hop, chunk, context = self.features.hop_length, self.chunk_frames, self.context_frames
        start = 0
        while True:
            window.need((start + chunk + context + margin + 1) * hop)
            n_frames = self.features.n_frames(window.end) if window.finished else math.inf
            if start >= n_frames:
                return
            stop = int(min(start + chunk, n_frames))
            yield start, stop, max(start - context, 0), int(min(stop + context, n_frames))
            start = stop

    def _network_blocks(self, window: _AudioWindow) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(first frame, activations [frames, 88] per head), chunk after chunk in order."""
        margin, align = cqt_margin_frames(self.features)
        hop, batch_size = self.features.hop_length, max(self.infer.batch_chunks, 1)
        batch: list[tuple[int, int, int, int]] = []
        spans = self._spans(window, margin)
        for span in _with_end(spans):
            if batch and (span is None or len(batch) == batch_size
                          or span[3] - span[2] != batch[0][3] - batch[0][2]):
                lo, hi = batch[0][2], batch[-1][3]
                a = max(lo - margin, 0) // align * align
                seg = window.get(a * hop, (hi + margin) * hop)
                feats = cqt_features(seg, self.features)[lo - a: hi - a]
                x = np.stack([feats[l0 - lo: h0 - lo] for _, _, l0, h0 in batch])
                pred = self.runner(x)
                for b, (s0, s1, l0, _) in enumerate(batch):
                    yield s0, {k: pred[k][b, s0 - l0: s1 - l0] for k in pred}
                window.drop_before(max(batch[-1][1] - self.context_frames - margin, 0) // align * align * hop)
                batch = []
            if span is not None:
                batch.append(span)

    def transcribe_stream(self, audio: str | Path | AudioStream, keep_seconds: float = 0.0) -> StreamResult:
        """Transcribe a file a stretch at a time: decoding, CQT, network and note decoding each
        hold a few chunks, never the whole recording, so memory is flat in its length. The notes
        equal those of :meth:`transcribe` on the whole waveform (the same chunks; the CQT of each
        stretch is cut with a margin, equal to float32 rounding). ``keep_seconds``: also return the
        activations of the first this many seconds (for a plot)."""
        stream = audio if isinstance(audio, AudioStream) else AudioStream(audio, self.sample_rate)
        # The level needs the whole recording: a first decoding pass, so memory stays flat. Decoding
        # is 0.2 s of the 2.0-2.2 s a 5-minute file takes; whole-process times with and without
        # the pass were within run-to-run noise (scripts/benchmark_speed.py, 3 repeats each).
        gain = np.float32(self.level_gain(AudioStream(stream.path, self.sample_rate, count_clipping=False)))
        window = _AudioWindow(stream if gain == 1.0 else (block * gain for block in stream))
        window.need(self.features.hop_length)
        if window.finished and window.end < self.features.hop_length:
            raise AudioError(stream.path, f"too short: {window.end} samples at {self.sample_rate} Hz, "
                             f"less than one frame ({self.features.hop_length} samples)")
        decoder = StreamingDecoder(self.decode, self.features.frame_rate)
        keep = int(keep_seconds * self.features.frame_rate)
        kept: dict[str, list[np.ndarray]] = {k: [] for k in HEADS}
        pedal: dict[str, list[np.ndarray]] = {}  # pedal activations: 8 bytes a frame, kept whole
        for start, act in self._network_blocks(window):
            decoder.feed(act["onset"], act["frame"], act["velocity"])
            for k in ("pedal", "pedal_onset"):
                if k in act and self.decode.pedal:
                    pedal.setdefault(k, []).append(act[k][:, 0])
            if start < keep:
                for k in act:
                    kept.setdefault(k, []).append(act[k][: keep - start])
        activations = {k: np.concatenate(v) if v else np.zeros((0, N_KEYS), np.float32) for k, v in kept.items()}
        spans = self.pedal_from_activations({k: np.concatenate(v) for k, v in pedal.items()}) if pedal else None
        notes = self.finish_notes(decoder.finish(), spans)
        return StreamResult(notes, window.end / self.sample_rate, activations, stream.messages, spans,
                            stream.clipped_share)


def _with_end(items: Iterable) -> Iterator:
    """``items``, then None."""
    yield from items
    yield None


def transcribe_file(path: str | Path, checkpoint: Checkpoint | str | Path | None = None,
                    decode: Mapping | None = None, **infer_overrides) -> Notes:
    """Notes of an audio file, with the shipped model unless ``checkpoint`` is given; ``decode``
    and keyword arguments as for :meth:`Transcriber.from_checkpoint`. To transcribe many files,
    make one :class:`Transcriber` and call its :meth:`~Transcriber.transcribe_file`."""
    return Transcriber.from_checkpoint(checkpoint, decode, **infer_overrides).transcribe_file(path)
