"""Where the Hydra configuration lives, and composing it outside a Hydra command."""

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
