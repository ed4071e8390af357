"""Optional dependencies: a clear error, naming the extra to install, when one is missing.

``pip install transcribe-piano`` installs what transcription with the shipped model needs (it
runs from its ONNX export in onnxruntime). PyTorch and the rest of training come with
``transcribe-piano[train]``; see ``pyproject.toml`` for the extras.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TRAIN_EXTRA = "train"


class MissingDependency(ImportError):
    """An optional package that this use needs is not installed; the message says what needs
    it and how to install it."""


def require(module: str, purpose: str, extra: str = TRAIN_EXTRA, hint: str = "") -> ModuleType:
    """Import ``module``, or raise :class:`MissingDependency` saying that ``purpose`` needs it
    and which extra of transcribe-piano installs it (then ``hint``, if given)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top, name = module.split(".")[0], getattr(err, "name", None)
        if name is not None and name.split(".")[0] != top:
            raise  # the package is there but one of its own imports failed: show that error
        raise MissingDependency(f"{purpose} needs {top}, which is not installed: "
                                f"pip install 'transcribe-piano[{extra}]'" + (f"; {hint}" if hint else "")) from None


def require_torch(purpose: str, hint: str = "") -> ModuleType:
    """``import torch``, or :class:`MissingDependency` naming ``purpose`` and ``[train]``."""
    return require("torch", purpose, hint=hint)
