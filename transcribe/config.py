"""Where the Hydra configuration lives, and composing it outside a Hydra command."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_PACKAGE_CONF = Path(__file__).parent / "conf"  # installed from a wheel (pyproject maps conf/ here)
_SOURCE_CONF = Path(__file__).resolve().parents[1] / "conf"  # a source checkout / editable install


def conf_dir() -> str:
    """Absolute path of the folder holding ``train.yaml`` and the config groups."""
    for d in (_SOURCE_CONF, _PACKAGE_CONF):
        if (d / "train.yaml").is_file():
            return str(d)
    raise FileNotFoundError("transcribe: configuration folder conf/ not found")


def group_file(group: str) -> Path:
    """``conf/<group>/default.yaml``."""
    return Path(conf_dir()) / group / "default.yaml"


@lru_cache(maxsize=None)
def group_defaults(group: str) -> dict:
    """``conf/<group>/default.yaml`` as a dict, read with PyYAML (no Hydra: the ``transcribe``
    command starts fast). Raises ValueError naming the file when it cannot be read or is not a
    mapping."""
    import yaml

    path = group_file(group)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot be read: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def from_group(group: str, build: Callable[[dict], T]) -> T:
    """``build(settings of conf/<group>/default.yaml)``: a typed config; the errors it raises
    (ValueError, TypeError) come back as a ValueError that names the file."""
    data = group_defaults(group)
    try:
        return build(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{group_file(group)}: {err}") from None


def compose(config_name: str, overrides: list[str] | None = None):
    """The resolved configuration of an entry config (``train``, ``evaluate``, ``render``) with
    command-line style ``overrides``, as the command would see it, for scripts and tests."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides or []))
    OmegaConf.resolve(cfg)
    return cfg


def complete(cls: type[T], d, group: str) -> T:
    """A dataclass config built from a mapping that must give every field (a Hydra group, or its
    YAML file read by :func:`group_defaults`); a missing key is a ``ValueError`` naming them."""
    from dataclasses import fields

    missing = [f.name for f in fields(cls) if f.name not in d]
    if missing:
        raise ValueError(f"{group} config lacks {', '.join(missing)}")
    return cls(**{f.name: d[f.name] for f in fields(cls)})
