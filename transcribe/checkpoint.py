"""Checkpoints carry the feature, model and decoder configuration they were trained with,
so inference always computes the features the network was trained on.

torch is imported by the functions that need it, not at module level, so that the ONNX
inference path (transcribe/runtime.py) and ``transcribe --help`` never pay for it.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .decode import DecodeConfig
from .features import FeatureConfig
from .midi import atomic_write

if TYPE_CHECKING:
    from .model import ModelConfig, OnsetsAndFrames

FORMAT = "transcribe-checkpoint-v1"
SHIPPED_CHECKPOINT = Path(__file__).parent / "weights" / "model.pt"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def config_dict(features: FeatureConfig, model: ModelConfig, decode: DecodeConfig) -> dict[str, dict]:
    """Plain-dict configuration as stored in a checkpoint."""
    m = asdict(model)
    m["conv_channels"] = list(m["conv_channels"])
    return {"features": asdict(features), "model": m, "decode": asdict(decode)}


def save_checkpoint(path: str | Path, model: OnsetsAndFrames, config: dict[str, dict], **extra: Any) -> None:
    """Atomically write ``model``'s weights, its ``config`` and any ``extra`` entries (step,
    optimizer state, metrics...)."""
    import torch

    state = {"format": FORMAT, "config": config, "model_state": model.state_dict(), **extra}
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path | None = None, map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint (default: the one shipped in the package) as a dict."""
    import torch

    path = Path(path) if path is not None else SHIPPED_CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a transcribe checkpoint (expected format {FORMAT})")
    return state


def build_model(state: dict[str, Any]) -> tuple[OnsetsAndFrames, FeatureConfig, DecodeConfig]:
    """The network (eval mode, weights loaded) and the configs stored in a checkpoint."""
    from .model import ModelConfig, OnsetsAndFrames

    cfg = state["config"]
    features = FeatureConfig.from_dict(cfg["features"])
    model = OnsetsAndFrames(features.n_bins, ModelConfig.from_dict(cfg["model"]))
    model.load_state_dict(state["model_state"])
    model.eval()
    return model, features, DecodeConfig.from_dict(cfg["decode"])


def checkpoint_size_mb(path: str | Path) -> float:
    return os.path.getsize(path) / 2**20
