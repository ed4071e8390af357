"""Network runtimes: the same checkpoint run by PyTorch or by ONNX Runtime.

A runner maps a batch of feature chunks, float32 [chunks, frames, bins], to probabilities
[chunks, frames, 88] for each head (onset, offset, frame, velocity), and [chunks, frames, 1] for
each pedal head of a model that has one. :func:`run_network
<transcribe.infer.run_network>` feeds it; :class:`~transcribe.infer.Transcriber` picks one.

- :class:`TorchRunner` runs an :class:`~transcribe.model.OnsetsAndFrames` module (training
  and validation use it, and it is the fallback).
- :class:`OnnxRunner` runs the same network exported to ONNX with onnxruntime: the same
  arithmetic to float32 rounding (activations agree to about 1e-6), faster on a CPU (fused
  convolution + batch norm + ReLU, leaner LSTM), and it needs no ``import torch`` (about 1 s)
  once the export is cached. The export is made once per checkpoint (a few seconds) and kept
  in the cache folder (``$TRANSCRIBE_CACHE_DIR``, else ``$XDG_CACHE_HOME/transcribe``, else
  ``~/.cache/transcribe``) under the SHA-256 of the checkpoint file, so a changed checkpoint
  is never served by a stale export; the stored feature and decoder configuration and the
  checkpoint's SHA-256 travel in the ONNX file's metadata, and the export's own SHA-256 is
  kept beside it (``NAME.onnx.sha256``): an entry that fails either check is rebuilt.

Nothing heavy is imported at module level: torch only by the torch path and the export,
onnxruntime only by the ONNX path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .targets import HEADS

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

EXPORT_VERSION = 2  # bump when the exported graph changes, so old cache entries are not used
ONNX_OPSET = 17
BACKENDS = ("auto", "onnx", "torch")


class NetworkRunner:
    """Probabilities for a batch of feature chunks: ``runner(x)`` with x float32
    [chunks, frames, bins] returns ``{head: float32 [chunks, frames, 88]}``."""

    name = "?"

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError


class TorchRunner(NetworkRunner):
    """Runs a torch :class:`~transcribe.model.OnsetsAndFrames` (in whatever mode and on
    whatever device it is) under ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, model: Any):
        self.model = model

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        from .model import probabilities

        device = next(self.model.parameters()).device
        with torch.inference_mode():
            prob = probabilities(self.model(torch.from_numpy(np.ascontiguousarray(x)).to(device)))
            return {k: v.float().cpu().numpy() for k, v in prob.items()}


class OnnxRunner(NetworkRunner):
    """Runs an exported network with onnxruntime (CPU)."""

    name = "onnx"

    def __init__(self, model: str | Path | bytes, threads: int | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.inter_op_num_threads = 1
        if threads:
            so.intra_op_num_threads = int(threads)
        so.log_severity_level = 3  # errors only
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.heads = tuple(o.name for o in self.session.get_outputs())  # HEADS, then the pedal heads if exported

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = self.session.run(list(self.heads), {"features": np.ascontiguousarray(x, dtype=np.float32)})
        return dict(zip(self.heads, out))


def onnx_available() -> bool:
    """Whether the ONNX path can run here (onnxruntime importable)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def cache_dir() -> Path:
    """Where exported networks are kept (see the module docstring)."""
    if os.environ.get("TRANSCRIBE_CACHE_DIR"):
        return Path(os.environ["TRANSCRIBE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "transcribe"


def onnx_cache_path(checkpoint: "Checkpoint | str | Path", int8: bool = False) -> Path:
    """The cache file of the export of ``checkpoint`` (named by its content)."""
    from .checkpoint import Checkpoint

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    suffix = "-int8" if int8 else ""
    return cache_dir() / "onnx" / f"{ckpt.digest[:24]}-v{EXPORT_VERSION}{suffix}.onnx"


def export_onnx(model: Any, config: dict[str, dict], n_bins: int, metadata: dict[str, str] | None = None) -> bytes:
    """The ONNX serialisation of ``model`` (eval mode) returning probabilities, one output per
    head of the model (:data:`HEADS`, then the pedal heads where it has them), with
    ``config`` (features/model/decode dicts, as in a checkpoint) and ``metadata`` in its metadata."""
    import io
    import warnings

    import onnx
    import torch

    from .model import probabilities

    heads = tuple(getattr(model, "heads", HEADS))

    class Probabilities(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            p = probabilities(self.net(x))
            return tuple(p[k] for k in heads)

    if any(p.device.type != "cpu" for p in model.parameters()):
        import copy

        model = copy.deepcopy(model).cpu()  # export on the CPU without moving the caller's model
    was_training = model.training
    model.eval()
    buf = io.BytesIO()
    axes = {0: "chunks", 1: "frames"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and LSTM batch notes
            torch.onnx.export(
                Probabilities(model), (torch.zeros(1, 64, n_bins),), buf,
                input_names=["features"], output_names=list(heads),
                dynamic_axes={"features": axes, **{k: axes for k in heads}},
                opset_version=ONNX_OPSET, dynamo=False,
            )
    finally:
        model.train(was_training)
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in {"transcribe_config": json.dumps(config), **(metadata or {})}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def quantize_int8(fp32: bytes) -> bytes:
    """Dynamic int8 quantisation of the MatMul and LSTM weights of an exported network
    (onnxruntime.quantization.quantize_dynamic; activations quantised on the fly)."""
    import logging
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        logging.disable(logging.WARNING)  # its advice to run shape-inference pre-processing first
        try:
            quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "LSTM"],
                             weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        return dst.read_bytes()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _cached_runner(path: Path, threads: int | None, checkpoint: "Checkpoint") -> tuple[OnnxRunner, dict] | None:
    """The cached export at ``path``, if it is intact and belongs to ``checkpoint``: its bytes
    must match the SHA-256 written beside it (``NAME.onnx.sha256``) and its metadata must name
    the checkpoint's digest. A damaged or foreign entry is deleted (and then rebuilt)."""
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
        if _sidecar(path).read_text().strip() != hashlib.sha256(data).hexdigest():
            raise ValueError("digest mismatch")
        runner = OnnxRunner(data, threads)
        if runner.metadata.get("transcribe_checkpoint_sha256") != checkpoint.digest:
            raise ValueError("export of another checkpoint")
        return runner, json.loads(runner.metadata["transcribe_config"])
    except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt
        for p in (path, _sidecar(path)):
            with contextlib.suppress(OSError):
                p.unlink()
        return None


def _store(path: Path, data: bytes) -> None:
    """Cache ``data`` at ``path`` with its digest beside it (the digest last, so an entry without
    one is incomplete)."""
    try:
        from .files import atomic_write

        with atomic_write(path) as tmp:
            tmp.write_bytes(data)
        with atomic_write(_sidecar(path)) as tmp:
            tmp.write_text(hashlib.sha256(data).hexdigest() + "\n")
    except OSError:
        pass  # read-only cache: run from memory this time


def load_or_export_onnx(
    checkpoint: Checkpoint, threads: int | None = None, int8: bool = False
) -> tuple[OnnxRunner, dict[str, dict]]:
    """An :class:`OnnxRunner` for ``checkpoint`` and the configuration stored with it.

    Uses the cached export when there is one; otherwise loads the checkpoint with torch,
    exports it, and caches the export (when the cache folder is writable). ``int8``: the
    export with MatMul and LSTM weights quantised to int8 (:func:`quantize_int8`; changes
    the numerics slightly, see scripts/SPEED_NOTES.md).
    Raises :class:`~transcribe.checkpoint.CheckpointError` for a bad checkpoint.
    """
    name = "onnx-int8" if int8 else "onnx"
    wanted = onnx_cache_path(checkpoint, int8)
    found = _cached_runner(wanted, threads, checkpoint)
    if found:
        found[0].name = name
        return found
    fp32_path = onnx_cache_path(checkpoint)
    data = fp32_path.read_bytes() if int8 and _cached_runner(fp32_path, 1, checkpoint) else None
    if data is None:
        model = checkpoint.build_model()
        data = export_onnx(model, checkpoint.config, model.n_bins, {"transcribe_checkpoint_sha256": checkpoint.digest})
        _store(fp32_path, data)
    if int8:
        data = quantize_int8(data)
        _store(wanted, data)
    runner = OnnxRunner(data, threads)
    runner.name = name
    return runner, json.loads(runner.metadata["transcribe_config"])


def make_runner(checkpoint: Checkpoint, backend: str = "auto", threads: int | None = None,
                int8: bool = False) -> tuple[NetworkRunner, dict[str, dict]]:
    """What runs ``checkpoint``'s network, and the configuration stored with it.

    ``backend``: ``"onnx"`` (onnxruntime, export cached per checkpoint), ``"torch"``, or
    ``"auto"`` (onnx when onnxruntime is installed and the export works, else torch, with a
    warning). ``threads``: CPU threads for the network (None: the runtime's choice). ``int8``:
    the ONNX export with int8 weights (onnx backend only; with torch a warning says it is ignored).
    """
    import warnings

    from .checkpoint import CheckpointError

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "onnx" or (backend == "auto" and onnx_available()):
        try:
            return load_or_export_onnx(checkpoint, threads, int8=int8)
        except CheckpointError:
            raise
        except Exception as err:  # noqa: BLE001 - no exporter, unsupported graph...: torch still works
            if backend == "onnx":
                raise
            warnings.warn(f"transcribe: ONNX runtime not usable ({type(err).__name__}: {err}); using torch",
                          stacklevel=2)
    if int8:
        warnings.warn("transcribe: int8 needs the onnx backend; running the float32 network with torch", stacklevel=2)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return TorchRunner(checkpoint.build_model()), checkpoint.config
