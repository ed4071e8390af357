"""Where the Hydra configuration lives, and conversions from it to the typed configs."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_CONF = Path(__file__).parent / "conf"  # installed from a wheel (pyproject maps conf/ here)
_SOURCE_CONF = Path(__file__).resolve().parents[1] / "conf"  # a source checkout / editable install


def conf_dir() -> str:
    """Absolute path of the folder holding ``train.yaml`` and the config groups."""
    for d in (_SOURCE_CONF, _PACKAGE_CONF):
        if (d / "train.yaml").is_file():
            return str(d)
    raise FileNotFoundError("transcribe: configuration folder conf/ not found")
