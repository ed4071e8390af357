"""The folder layout of rendered training data: ``<root>/<source>/<piano>/<stem>.<ext>``.

``transcribe-render`` writes it, and ``<root>/manifest.json`` (:data:`MANIFEST`) beside it; the
datasets read it. The same notes rendered through another piano sit at the same name in a
sibling piano folder (a *partner*, mixed in by augmentation); the manifest records which renders
are partners, and only those are used (a same-named file in a sibling folder may be another
recording: per-performer or per-year folders).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

MANIFEST = "manifest.json"  # <root>/manifest.json: every render, its piece and its partners (render/run.py)


def render_path(root: str | Path, source: str, piano: str, stem: str, ext: str) -> Path:
    """Where the render of piece ``stem`` of ``source`` through ``piano`` is written."""
    return Path(root) / source / piano / f"{stem}.{ext}"


def partners_of(audio: Path) -> tuple[Path, ...]:
    """Renders of the same notes through other pianos, as the render manifest
    (``<root>/manifest.json`` for ``<root>/<source>/<piano>/<stem>.<ext>``) records them, those
    present beside ``audio`` in its format (a pack re-encoded to another format keeps its
    partners). None without a manifest (other layouts: MAPS, label folders) and none for a
    render whose record names no partners: manifests written before partners were recorded
    give none (re-running ``transcribe-render`` over the folder records them)."""
    audio = Path(audio)
    if len(audio.parents) < 3:
        return ()
    root = audio.parents[2]
    manifest = root / MANIFEST
    try:
        stamp = manifest.stat().st_mtime_ns
    except OSError:
        return ()
    partners = _partner_table(str(manifest), stamp).get(audio.relative_to(root).with_suffix("").as_posix(), ())
    found = ((root / p).with_suffix(audio.suffix) for p in partners)
    return tuple(sorted(p for p in found if p.is_file()))


@lru_cache(maxsize=4)
def _partner_table(manifest: str, stamp: int) -> dict[str, tuple[str, ...]]:
    """A manifest's partners: render (relative path, no suffix) -> its partners (the same);
    read once per manifest version (``stamp``: its mtime in ns)."""
    renders = json.loads(Path(manifest).read_text()).get("renders", {})
    return {Path(rel).with_suffix("").as_posix(): tuple(Path(p).with_suffix("").as_posix() for p in r["partners"])
            for rel, r in renders.items() if r.get("partners")}


def record_partners(renders: dict[str, dict]) -> None:
    """Set each record's ``partners`` (in place): the other renders of its ``piece`` (sorted
    relative paths). Records without a ``piece`` (older manifests) get none."""
    pieces: dict[str, list[str]] = {}
    for rel, r in renders.items():
        if "piece" in r:
            pieces.setdefault(r["piece"], []).append(rel)
    for rel, r in renders.items():
        if "piece" in r:
            r["partners"] = sorted(p for p in pieces[r["piece"]] if p != rel)
