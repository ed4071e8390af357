"""Network runtimes: the same checkpoint run by PyTorch or by ONNX Runtime.

A runner maps a batch of feature chunks, float32 [chunks, frames, bins], to probabilities
[chunks, frames, 88] for each head (onset, offset, frame, velocity), and [chunks, frames, 1] for
each pedal head of a model that has one. :func:`run_network
<transcribe.infer.run_network>` feeds it; :class:`~transcribe.infer.Transcriber` picks one.

- :class:`TorchRunner` runs an :class:`~transcribe.model.OnsetsAndFrames` module (training
  and validation use it, and it is the fallback).
- :class:`OnnxRunner` runs the same network exported to ONNX with onnxruntime: the same
  arithmetic to float32 rounding (activations agree to about 1e-6), faster on a CPU (fused
  convolution + batch norm + ReLU, leaner LSTM), and it needs no torch at all.

Where the ONNX network of a checkpoint ``NAME.pt`` comes from, first found first:

1. **Its export beside it**: ``NAME.onnx`` with ``NAME.onnx.json`` (:func:`write_export`;
   ``scripts/ship_model.py`` writes them for the shipped model, ``python -m
   transcribe.runtime NAME.pt`` for any checkpoint). The JSON records the SHA-256 of the
   checkpoint file and of the ONNX file, the export version and the stored configuration; an
   export is used only when both digests and the version match, so it is verifiably the export
   of that checkpoint, and the checkpoint's configuration is read from it without torch.
2. **The cache**: an export made on first use (a few seconds, needs torch) and kept in the
   cache folder (``$TRANSCRIBE_CACHE_DIR``, else ``$XDG_CACHE_HOME/transcribe``, else
   ``~/.cache/transcribe``) under the SHA-256 of the checkpoint file, so a changed checkpoint
   is never served by a stale export; the stored feature and decoder configuration and the
   checkpoint's SHA-256 travel in the ONNX file's metadata, and the export's own SHA-256 is
   kept beside it (``NAME.onnx.sha256``): an entry that fails either check is rebuilt.

Nothing heavy is imported at module level: torch only by the torch path and the export,
onnxruntime only by the ONNX path. With an export beside the checkpoint or in the cache, torch
is not imported at all (``pip install transcribe-piano`` does not install it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import (  # noqa: F401 - the export record lives with the checkpoint; re-exported here
    EXPORT_FORMAT, EXPORT_VERSION, Checkpoint, Export, export_beside, export_paths)
from .targets import HEADS

ONNX_OPSET = 17
BACKENDS = ("auto", "onnx", "torch")
DEVICES = ("auto", "cpu", "cuda")  # auto: the GPU when the backend can use one here, else the CPU
CUDA_PROVIDER = "CUDAExecutionProvider"


class DeviceError(ValueError):
    """A device that cannot be used here (``--device cuda`` without a usable GPU); the message
    says why and what would make it work. Never answered by a silent fallback to the CPU."""


def onnx_providers(device: str) -> list[str]:
    """onnxruntime's execution providers for ``device``: ``cpu``, ``cuda`` (its
    ``CUDAExecutionProvider``, which onnxruntime-gpu has) or ``auto`` (CUDA when this onnxruntime
    has it, else the CPU). Raises :class:`DeviceError` for ``cuda`` where it is missing."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    available = ort.get_available_providers()
    if device == "cpu" or (device == "auto" and CUDA_PROVIDER not in available):
        return ["CPUExecutionProvider"]
    if CUDA_PROVIDER not in available:
        raise DeviceError(f"--device cuda: onnxruntime {ort.__version__} here has no {CUDA_PROVIDER} (it has "
                          f"{', '.join(available)}): install onnxruntime-gpu (with CUDA and cuDNN) in place of "
                          "onnxruntime, or use --backend torch with a CUDA build of torch, or --device cpu")
    return [CUDA_PROVIDER, "CPUExecutionProvider"]


def torch_device(device: str) -> str:
    """The torch device for ``device``: ``cpu``, ``cuda`` (when ``torch.cuda.is_available()``) or
    ``auto`` (cuda when it is available, else cpu). Raises :class:`DeviceError` for ``cuda``
    where torch sees no GPU."""
    from .deps import require_torch

    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    if device == "cpu":
        return "cpu"
    torch = require_torch("the torch backend")
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise DeviceError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU here "
                          "(torch.cuda.is_available() is False: no GPU, no driver, or a CPU-only build of torch): "
                          "use --device cpu, or install a CUDA build of torch on a machine with an NVIDIA GPU")
    return "cpu"


class NetworkRunner:
    """Probabilities for a batch of feature chunks: ``runner(x)`` with x float32
    [chunks, frames, bins] returns ``{head: float32 [chunks, frames, 88]}``."""

    name = "?"
    heads: tuple[str, ...] = HEADS  # what it outputs: the note heads, then the pedal heads of a model with them
    device = "cpu"  # where it runs: "cpu" or "cuda"

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError


class TorchRunner(NetworkRunner):
    """Runs a torch :class:`~transcribe.model.OnsetsAndFrames` (in whatever mode and on
    whatever device it is) under ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, model: Any):
        self.model = model
        self.heads = tuple(getattr(model, "heads", HEADS))

    @property
    def device(self) -> str:
        return next(self.model.parameters()).device.type

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        from .model import probabilities

        device = next(self.model.parameters()).device
        with torch.inference_mode():
            prob = probabilities(self.model(torch.from_numpy(np.ascontiguousarray(x)).to(device)))
            return {k: v.float().cpu().numpy() for k, v in prob.items()}


class OnnxRunner(NetworkRunner):
    """Runs an exported network with onnxruntime, on the CPU or (``device`` ``cuda`` or ``auto``,
    see :func:`onnx_providers`) an NVIDIA GPU through its CUDA execution provider."""

    name = "onnx"

    def __init__(self, model: str | Path | bytes, threads: int | None = None, device: str = "cpu"):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.inter_op_num_threads = 1
        if threads:
            so.intra_op_num_threads = int(threads)
        so.log_severity_level = 3  # errors only
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, so, providers=onnx_providers(device))
        self.device = "cuda" if CUDA_PROVIDER in self.session.get_providers() else "cpu"
        if device == "cuda" and self.device != "cuda":  # onnxruntime falls back to the CPU when CUDA fails to start
            raise DeviceError("--device cuda: onnxruntime has a CUDA provider but could not start it (CUDA or cuDNN "
                              "libraries missing or not matching; onnxruntime's log says which): use --device cpu")
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
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    suffix = "-int8" if int8 else ""
    return cache_dir() / "onnx" / f"{ckpt.digest[:24]}-v{EXPORT_VERSION}{suffix}.onnx"


def export_onnx(model: Any, config: dict[str, dict], n_bins: int, metadata: dict[str, str] | None = None) -> bytes:
    """The ONNX serialisation of ``model`` (eval mode) returning probabilities, one output per
    head of the model (:data:`HEADS`, then the pedal heads where it has them), with
    ``config`` (features/model/decode dicts, as in a checkpoint) and ``metadata`` in its metadata."""
    import io
    import warnings

    from .deps import require, require_torch

    torch = require_torch("exporting a checkpoint to ONNX")
    onnx = require("onnx", "exporting a checkpoint to ONNX")
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

    from .deps import require

    require("onnx", "--int8 (quantising the network)", extra="int8")
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


def _cached_runner(path: Path, threads: int | None, checkpoint: "Checkpoint",
                   device: str = "cpu") -> tuple[OnnxRunner, dict] | None:
    """The cached export at ``path``, if it is intact and belongs to ``checkpoint``: its bytes
    must match the SHA-256 written beside it (``NAME.onnx.sha256``) and its metadata must name
    the checkpoint's digest. A damaged or foreign entry is deleted (and then rebuilt)."""
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
        if _sidecar(path).read_text().strip() != hashlib.sha256(data).hexdigest():
            raise ValueError("digest mismatch")
        runner = OnnxRunner(data, threads, device)
        if runner.metadata.get("transcribe_checkpoint_sha256") != checkpoint.digest:
            raise ValueError("export of another checkpoint")
        return runner, json.loads(runner.metadata["transcribe_config"])
    except DeviceError:
        raise
    except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt
        for p in (path, _sidecar(path)):
            with contextlib.suppress(OSError):
                p.unlink()
        return None


_UNWRITABLE: set[Path] = set()  # cache folders already reported as not writable (said once per process)


def _store(path: Path, data: bytes) -> None:
    """Cache ``data`` at ``path`` with its digest beside it (the digest last, so an entry without
    one is incomplete). Where the cache cannot be written, the network runs from memory and a
    warning says so, once per process and folder: every run then exports again."""
    try:
        from .files import atomic_write

        with atomic_write(path) as tmp:
            tmp.write_bytes(data)
        with atomic_write(_sidecar(path)) as tmp:
            tmp.write_text(hashlib.sha256(data).hexdigest() + "\n")
    except OSError as err:
        if path.parent not in _UNWRITABLE:
            import warnings

            _UNWRITABLE.add(path.parent)
            warnings.warn(f"transcribe: the ONNX export cache {path.parent} cannot be written "
                          f"({err.strerror or err}); the export is made again on every run (torch, a few "
                          "seconds): set TRANSCRIBE_CACHE_DIR to a writable folder, or write the export beside "
                          "the checkpoint (python -m transcribe.runtime CHECKPOINT)", stacklevel=2)


def write_export(checkpoint: "Checkpoint | str | Path") -> Path:
    """Export ``checkpoint`` (``NAME.pt``) to ``NAME.onnx`` beside it, with ``NAME.onnx.json``:
    the SHA-256 of the checkpoint file and of the ONNX file, :data:`EXPORT_VERSION`, the opset,
    the stored configuration and the versions that made it. Inference then needs no torch for
    this checkpoint (see the module docstring). Needs torch and onnx. Returns the ONNX path.

    The JSON is removed first and written last, so a failed export leaves no record that
    could vouch for a stale ONNX file."""
    import contextlib

    from .files import atomic_write

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    onnx_path, info_path = export_paths(ckpt.path)
    with contextlib.suppress(FileNotFoundError):
        info_path.unlink()
    model = ckpt.build_model()
    data = export_onnx(model, ckpt.config, model.n_bins,
                       {"transcribe_checkpoint_sha256": ckpt.digest, "transcribe_export_version": str(EXPORT_VERSION)})
    with atomic_write(onnx_path) as tmp:
        tmp.write_bytes(data)
    import onnx
    import torch

    from ._version import __version__

    info = {"format": EXPORT_FORMAT, "checkpoint": ckpt.path.name, "checkpoint_sha256": ckpt.digest,
            "onnx": onnx_path.name, "onnx_sha256": hashlib.sha256(data).hexdigest(),
            "export_version": EXPORT_VERSION, "onnx_opset": ONNX_OPSET, "config": ckpt.config,
            "exported_by": {"transcribe": __version__, "torch": torch.__version__, "onnx": onnx.__version__}}
    with atomic_write(info_path) as tmp:
        tmp.write_text(json.dumps(info, indent=1) + "\n")
    return onnx_path


def _runner_beside(checkpoint: "Checkpoint", threads: int | None, device: str = "cpu") -> tuple[OnnxRunner, dict] | None:
    """An :class:`OnnxRunner` of the verified export beside ``checkpoint`` (whose ONNX
    metadata must also name the checkpoint's SHA-256), and its configuration; or None."""
    found = export_beside(checkpoint)
    if found is None:
        return None
    runner = OnnxRunner(found.data, threads, device)
    if runner.metadata.get("transcribe_checkpoint_sha256") != checkpoint.digest:
        import warnings

        warnings.warn(f"transcribe: {found.path}: not used: its ONNX metadata names another checkpoint",
                      stacklevel=3)
        return None
    return runner, found.config


def load_or_export_onnx(
    checkpoint: Checkpoint, threads: int | None = None, int8: bool = False, device: str = "cpu"
) -> tuple[OnnxRunner, dict[str, dict]]:
    """An :class:`OnnxRunner` for ``checkpoint`` and the configuration stored with it.

    Uses the verified export beside the checkpoint (:func:`export_beside`; the shipped model
    has one), else the cached export, else loads the checkpoint with torch, exports it, and
    caches the export (when the cache folder is writable). ``int8``: that network with MatMul
    and LSTM weights quantised to int8 (:func:`quantize_int8`, cached; needs the onnx package;
    changes the numerics slightly, see scripts/SPEED_NOTES.md). ``device``: see :func:`onnx_providers`.
    Raises :class:`~transcribe.checkpoint.CheckpointError` for a bad checkpoint and
    :class:`~transcribe.deps.MissingDependency` when an export is needed and torch is missing.
    """
    name = "onnx-int8" if int8 else "onnx"
    if not int8:
        found = _runner_beside(checkpoint, threads, device)
        if found:
            return found
    wanted = onnx_cache_path(checkpoint, int8)
    found = _cached_runner(wanted, threads, checkpoint, device)
    if found:
        found[0].name = name
        return found
    beside = export_beside(checkpoint) if int8 else None
    fp32_path = onnx_cache_path(checkpoint)
    if beside is not None:
        data = beside.data
    else:
        data = fp32_path.read_bytes() if int8 and _cached_runner(fp32_path, 1, checkpoint) else None
    if data is None:
        from .deps import require_torch

        require_torch(f"{checkpoint.path}: this checkpoint has no ONNX export beside it "
                      f"({export_paths(checkpoint.path)[0].name}), so running it",
                      hint=f"or write its export where torch is installed: python -m transcribe.runtime {checkpoint.path}")
        model = checkpoint.build_model()
        data = export_onnx(model, checkpoint.config, model.n_bins,
                           {"transcribe_checkpoint_sha256": checkpoint.digest,
                            "transcribe_export_version": str(EXPORT_VERSION)})
        _store(fp32_path, data)
    if int8:
        data = quantize_int8(data)
        _store(wanted, data)
    runner = OnnxRunner(data, threads, device)
    runner.name = name
    return runner, json.loads(runner.metadata["transcribe_config"])


def make_runner(checkpoint: Checkpoint, backend: str = "auto", threads: int | None = None,
                int8: bool = False, device: str = "auto") -> tuple[NetworkRunner, dict[str, dict]]:
    """What runs ``checkpoint``'s network, and the configuration stored with it.

    ``backend``: ``"onnx"`` (onnxruntime: the export beside the checkpoint, else one cached per
    checkpoint), ``"torch"``, or ``"auto"`` (onnx when onnxruntime is installed and the export
    works, else torch, with a warning). ``threads``: CPU threads for the network (None: the
    runtime's choice). ``int8``: the ONNX network with int8 weights (onnx backend only; with
    torch a warning says it is ignored). ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"`` (the GPU
    when the chosen backend can use one here: onnxruntime's CUDA provider, or torch with
    ``torch.cuda.is_available()``; else the CPU). Raises :class:`~transcribe.deps.MissingDependency`
    (with what to install) when the choice needs torch and it is not installed, and
    :class:`DeviceError` for ``"cuda"`` where the backend has none (never a silent CPU fallback).
    """
    import warnings

    from .checkpoint import CheckpointError
    from .deps import MissingDependency, require_torch

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    if backend == "onnx" or (backend == "auto" and onnx_available()):
        try:
            return load_or_export_onnx(checkpoint, threads, int8=int8, device=device)
        except (CheckpointError, MissingDependency, DeviceError):
            raise
        except Exception as err:  # noqa: BLE001 - no exporter, unsupported graph...: torch still works
            if backend == "onnx":
                raise
            try:
                require_torch("falling back to torch")
            except MissingDependency:
                raise err from None  # nothing to fall back to: the ONNX error is the one to see
            warnings.warn(f"transcribe: ONNX runtime not usable ({type(err).__name__}: {err}); using torch",
                          stacklevel=2)
    torch = require_torch("the torch backend" if backend == "torch" else "running the network without onnxruntime")
    if int8:
        warnings.warn("transcribe: int8 needs the onnx backend; running the float32 network with torch", stacklevel=2)
    where = torch_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    return TorchRunner(checkpoint.build_model().to(where)), checkpoint.config


def main(argv: list[str] | None = None) -> int:
    """``python -m transcribe.runtime CHECKPOINT.pt ...``: write each checkpoint's ONNX export
    beside it (:func:`write_export`), so it runs where torch is not installed."""
    import argparse
    import sys

    from .checkpoint import CheckpointError
    from .deps import MissingDependency

    ap = argparse.ArgumentParser(prog="python -m transcribe.runtime", description=main.__doc__)
    ap.add_argument("checkpoints", nargs="+", type=Path, metavar="CHECKPOINT.pt")
    args = ap.parse_args(argv)
    for path in args.checkpoints:
        try:
            out = write_export(path)
        except (CheckpointError, MissingDependency) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"wrote {out} and {export_paths(path)[1].name} ({out.stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
