"""The folder layout of rendered training data: ``<root>/<source>/<piano>/<stem>.<ext>``.

``transcribe-render`` writes it; the datasets read it. The same notes rendered through another
piano sit at the same name in a sibling piano folder (a *partner*, mixed in by augmentation).
"""

from __future__ import annotations

from pathlib import Path


def render_path(root: str | Path, source: str, piano: str, stem: str, ext: str) -> Path:
    """Where the render of piece ``stem`` of ``source`` through ``piano`` is written."""
    return Path(root) / source / piano / f"{stem}.{ext}"


def partners_of(audio: Path) -> tuple[Path, ...]:
    """Renders of the same notes through other pianos: ``<source>/<other piano>/<same name>``
    beside ``<source>/<piano>/<name>``; none for other layouts (MAPS: ``audio/`` and ``labels/``)."""
    if audio.parent.name == "audio":
        return ()
    return tuple(sorted(p for p in audio.parent.parent.glob(f"*/{audio.name}") if p != audio and p.is_file()))
