"""Find (audio, labels) pairs in a folder: labels share the audio file's stem and sit beside
it, or in a sibling ``labels/`` folder of an ``audio/`` folder (the MAPS layout)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from ..audio import find_audio_files
from ..midi import LABEL_EXTENSIONS


def label_for(audio: Path) -> Path | None:
    """The label file of ``audio``, or None."""
    folders = [audio.parent]
    if audio.parent.name == "audio":
        folders.append(audio.parent.parent / "labels")
    for folder in folders:
        for ext in LABEL_EXTENSIONS:
            candidate = folder / f"{audio.stem}{ext}"
            if candidate.is_file():
                return candidate
    return None


def find_pairs(root: str | Path, glob: str | None = None) -> list[tuple[Path, Path]]:
    """All (audio, label) pairs under ``root``, sorted; audio without labels is skipped.

    ``glob`` keeps only files whose path relative to ``root`` matches it.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such data folder")
    pairs = []
    for audio in find_audio_files(root):
        if glob and not fnmatch.fnmatch(str(audio.relative_to(root)), glob):
            continue
        label = label_for(audio)
        if label is not None:
            pairs.append((audio, label))
    return pairs


def split_pairs(pairs: list[tuple[Path, Path]], val_glob: str | None) -> tuple[list, list]:
    """Split into (train, validation): validation holds files whose name matches ``val_glob``."""
    if not val_glob:
        return pairs, []
    val = [p for p in pairs if fnmatch.fnmatch(p[0].name, val_glob)]
    train = [p for p in pairs if not fnmatch.fnmatch(p[0].name, val_glob)]
    return train, val
