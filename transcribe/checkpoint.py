"""Checkpoints carry the feature, model and decoder configuration they were trained with,
so inference always computes the features the network was trained on.

:class:`Checkpoint` is the one object the inference path holds: the file is found once (the
shipped model by default), hashed once, read at most once, and its typed configs built once.
Checkpoints are read with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists
and dicts only, so a crafted file cannot run code. Every checkpoint written by
:func:`save_checkpoint` carries a SHA-256 of its weights and config (:func:`tensor_digest`),
checked on load, so a damaged file is an error instead of a model that writes garbage.

torch is imported by the methods that need it, not at module level, so that the ONNX
inference path (transcribe/runtime.py) and ``transcribe --help`` never pay for it, and it
need not be installed at all: a checkpoint with its ONNX export beside it (the shipped model
has ``weights/model.onnx``) is run, and its configuration read, without torch.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .decode import DecodeConfig
from .features import FeatureConfig
from .files import atomic_write

if TYPE_CHECKING:
    from .model import ModelConfig, OnsetsAndFrames

FORMAT = "transcribe-checkpoint-v1"
DIGEST_KEY = "tensor_sha256"  # tensor_digest() of the weights and config, checked on load
SHIPPED_CHECKPOINT = Path(__file__).parent / "weights" / "model.pt"
# The export record: a checkpoint's ONNX export beside it (NAME.onnx + NAME.onnx.json), written by
# transcribe.runtime.write_export and read here (Checkpoint.config reads it without torch).
EXPORT_VERSION = 2  # bump when the exported graph changes, so old exports (cached or beside) are not used
EXPORT_FORMAT = "transcribe-onnx-v1"  # the "format" of an export's JSON record (NAME.onnx.json)


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def config_dict(features: FeatureConfig, model: ModelConfig, decode: DecodeConfig) -> dict[str, dict]:
    """Plain-dict configuration as stored in a checkpoint."""
    m = asdict(model)
    m["conv_channels"] = list(m["conv_channels"])
    return {"features": asdict(features), "model": m, "decode": asdict(decode)}


def typed_configs(config: dict[str, dict], where: str = "checkpoint") -> tuple[FeatureConfig, DecodeConfig]:
    """The feature and decoder configs of a stored configuration (decoder settings it predates
    from ``conf/decode/default.yaml``, see :meth:`DecodeConfig.from_stored`); ``where`` names the
    checkpoint in errors."""
    return FeatureConfig.from_dict(config["features"]), DecodeConfig.from_stored(config["decode"], where)


def tensor_digest(model_state: Mapping[str, Any], config: dict[str, dict]) -> str:
    """SHA-256 over a checkpoint's configuration and every tensor of its network (names,
    dtypes, shapes and bytes, in name order): what :func:`load_checkpoint` checks."""
    from .deps import require_torch

    torch = require_torch("checking a checkpoint's digest")

    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name in sorted(model_state):
        t = model_state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: OnsetsAndFrames, config: dict[str, dict], **extra: Any) -> None:
    """Atomically write ``model``'s weights, its ``config``, the :func:`tensor_digest` of both,
    and any ``extra`` entries (step, optimizer state, metrics...)."""
    from .deps import require_torch

    torch = require_torch("writing a checkpoint")

    weights = model.state_dict()
    state = {"format": FORMAT, "config": config, "model_state": weights,
             DIGEST_KEY: tensor_digest(weights, config), **extra}
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)  # a file object: the archive's inner folder is "archive", not the temp name


def verify_digest(state: dict[str, Any], path: Path) -> None:
    """Raise :class:`CheckpointError` if the weights or config of ``state`` do not match the
    digest stored with them. A checkpoint written before digests were stored is accepted with
    a warning (it cannot be checked)."""
    stored = state.get(DIGEST_KEY)
    if stored is None:
        warnings.warn(f"{path}: this checkpoint carries no digest (written before they were stored), so damage "
                      "to it cannot be detected; re-save it with transcribe.checkpoint.save_checkpoint", stacklevel=3)
        return
    if not isinstance(stored, str) or tensor_digest(state["model_state"], state["config"]) != stored:
        raise CheckpointError(f"{path}: damaged: its weights do not match the digest stored in it "
                              "(the file was altered or corrupted after it was written)")


def load_checkpoint(path: str | Path | None = None, map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint (default: the one shipped in the package) as a dict. Needs torch
    (:class:`~transcribe.deps.MissingDependency` says how to install it)."""
    from .deps import require_torch

    path = Path(path) if path is not None else SHIPPED_CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    torch = require_torch(f"{path}: reading a PyTorch checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a transcribe checkpoint (expected format {FORMAT})")
    if not isinstance(state.get("model_state"), Mapping) or not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{path}: not a transcribe checkpoint (no weights or no config)")
    verify_digest(state, path)
    return state


def build_model(state: dict[str, Any]) -> OnsetsAndFrames:
    """The network stored in a checkpoint's ``state``, weights loaded, in eval mode."""
    from .model import ModelConfig, build_network

    cfg = state["config"]
    model = build_network(FeatureConfig.from_dict(cfg["features"]).n_bins, ModelConfig.from_dict(cfg["model"]))
    model.load_state_dict(state["model_state"])
    model.eval()
    return model


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Checkpoint:
    """A checkpoint file: ``Checkpoint()`` is the shipped model, ``Checkpoint(path)`` another.

    Raises :class:`CheckpointError` at once when the file does not exist, or is an ``.onnx``
    export (an export is found beside its checkpoint). Its contents are read (with torch) only
    when :attr:`state` is first needed, e.g. not at all when an ONNX export of it, beside it or
    cached, serves (see :mod:`transcribe.runtime`).
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else SHIPPED_CHECKPOINT
        if self.path.suffix.lower() == ".onnx":
            raise CheckpointError(f"{self.path}: an ONNX export, not a checkpoint: give the checkpoint "
                                  f"({self.path.with_suffix('.pt').name}); its export beside it is used automatically")
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such checkpoint file")

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r})"

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the file (names its cached exports)."""
        return file_digest(self.path)

    @cached_property
    def state(self) -> dict[str, Any]:
        """The checkpoint's contents (read once, on the CPU)."""
        return load_checkpoint(self.path)

    @property
    def config(self) -> dict[str, dict]:
        """The stored feature, model and decoder configuration (plain dicts). Read from the
        verified ONNX export beside the checkpoint when there is one and the checkpoint itself
        has not been read (no torch needed; see :func:`export_beside`)."""
        if "state" not in self.__dict__:
            found = export_beside(self)
            if found is not None:
                return found.config
        return self.state["config"]

    def build_model(self) -> OnsetsAndFrames:
        """A fresh copy of the network, weights loaded, in eval mode."""
        return build_model(self.state)


# ---------------------------------------------------------------------------- the export record


def export_paths(checkpoint_path: str | Path) -> tuple[Path, Path]:
    """``(NAME.onnx, NAME.onnx.json)``: where the export of checkpoint ``NAME.pt`` lies beside it."""
    onnx_path = Path(checkpoint_path).with_suffix(".onnx")
    return onnx_path, onnx_path.with_name(onnx_path.name + ".json")


@dataclass(frozen=True)
class Export:
    """An export found beside its checkpoint and verified (:func:`export_beside`)."""

    path: Path
    data: bytes
    config: dict[str, dict]


def export_beside(checkpoint: Checkpoint) -> Export | None:
    """The export of ``checkpoint`` beside it (``NAME.onnx`` and ``NAME.onnx.json``), if its
    record names this checkpoint's SHA-256 and the current :data:`EXPORT_VERSION` and the ONNX
    file matches the SHA-256 recorded for it; else None. An export that is there but fails a
    check is ignored with a warning that says why (e.g. a checkpoint replaced without
    re-exporting). Reads no torch and starts no onnxruntime session."""
    import warnings

    onnx_path, info_path = export_paths(checkpoint.path)
    if not info_path.is_file():
        return None
    try:
        info = json.loads(info_path.read_text())
        if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT:
            raise ValueError(f"{info_path.name} is not a record of a transcribe export")
        if info.get("export_version") != EXPORT_VERSION:
            raise ValueError(f"made by export version {info.get('export_version')}, this package makes "
                             f"version {EXPORT_VERSION}")
        if info.get("checkpoint_sha256") != checkpoint.digest:
            raise ValueError(f"it is the export of another checkpoint (SHA-256 {str(info.get('checkpoint_sha256'))[:12]}..., "
                             f"{checkpoint.path.name} has {checkpoint.digest[:12]}...)")
        data = onnx_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != info.get("onnx_sha256"):
            raise ValueError(f"{onnx_path.name} does not match the SHA-256 recorded for it (damaged or replaced)")
        config = info["config"]
        if not isinstance(config, dict) or not {"features", "decode"} <= set(config):
            raise ValueError("its record holds no configuration")
    except (OSError, ValueError, KeyError) as err:
        warnings.warn(f"transcribe: {onnx_path}: not used: {err}; re-export it with "
                      f"python -m transcribe.runtime {checkpoint.path}", stacklevel=3)
        return None
    return Export(onnx_path, data, config)
