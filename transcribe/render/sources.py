"""Where the notes to render come from (``sources`` in ``conf/render.yaml``): folders of label
files, music21's corpus (:mod:`.scores`), generated material (:mod:`.generate`); and which
pianos play each piece."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..notefiles import LABEL_EXTENSIONS, read_labels
from .synth import Piano


def iter_sources(cfg) -> Iterator[tuple[str, str, object]]:
    """(source name, stem, notes or a callable returning notes) for every enabled source of
    ``cfg.sources`` (``maps``/``midi``: folders of label files; ``music21``: the corpus;
    ``generated``: :mod:`transcribe.render.generate`)."""
    for name, src in cfg.sources.items():
        if not src.get("enabled", False):
            continue
        kind = src.get("kind", name)
        if kind == "files":
            folder = Path(src.folder)
            if not folder.is_dir():
                raise FileNotFoundError(f"source {name}: {folder}: no such folder")
            files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in LABEL_EXTENSIONS)
            files = [p for p in files if not any(fnmatch.fnmatch(p.name, g) for g in src.get("exclude") or [])]
            if src.get("dedupe", True):  # MAPS has byte-identical label files of one piece per piano
                seen: set[str] = set()
                unique = []
                for p in files:
                    digest = hashlib.sha1(p.read_bytes()).hexdigest()
                    if digest not in seen:
                        seen.add(digest)
                        unique.append(p)
                files = unique
            for p in files[: src.get("limit")]:
                yield name, p.stem, (lambda p=p: read_labels(p))
        elif kind == "music21":
            try:
                import music21  # noqa: F401
            except ImportError as err:
                raise ImportError(f"source {name}: needs music21 (pip install music21), "
                                  f"or sources.{name}.enabled=false") from err
            from .scores import corpus_pieces

            for stem, make in corpus_pieces(src):
                yield name, stem, make
        elif kind == "generated":
            from .generate import generate_piece

            for i in range(int(src.count)):
                yield name, f"gen_{int(src.seed):04d}_{i:04d}", (lambda i=i: generate_piece(int(src.seed) * 100003 + i, src))
        else:
            raise ValueError(f"source {name}: unknown kind {kind!r} (files, music21, generated)")


def pianos_for(source_cfg, stem: str, pianos: dict[str, Piano], seed: int) -> list[Piano]:
    """The pianos a piece of a source is rendered with: ``source.pianos`` (names; default all),
    of which ``source.pianos_per_piece`` (default all) are drawn per piece, seeded by its name."""
    names = list(source_cfg.get("pianos") or pianos)
    unknown = [n for n in names if n not in pianos]
    if unknown:
        raise ValueError(f"unknown piano(s) {unknown}; defined: {sorted(pianos)}")
    k = source_cfg.get("pianos_per_piece")
    if k and k < len(names):
        import zlib

        rng = np.random.default_rng([seed, zlib.crc32(stem.encode())])
        names = [names[i] for i in sorted(rng.choice(len(names), size=int(k), replace=False))]
    return [pianos[n] for n in names]
