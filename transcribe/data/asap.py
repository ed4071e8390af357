"""ASAP (Foscarin et al., ISMIR 2020; CC BY-NC-SA 4.0): performance MIDI with beat, downbeat,
time-signature and key-signature annotations, split as the renders split it.

The split is the renders' (``sources.asap`` of ``conf/render.yaml`` through
:func:`transcribe.render.sources.label_files` and :func:`~transcribe.render.sources.held_out_side`):
performances of the test set's works never, the works hashed into ``val_percent`` (41
performances) held out, the rest for training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Annotation:
    """A performance's annotations (seconds): every beat, which of them are downbeats, the
    time signatures and key signatures (number of sharps, negative = flats) where they change."""

    beats: np.ndarray
    downbeats: np.ndarray
    time_signatures: list[tuple[float, str]]
    key_signatures: list[tuple[float, int]]

    @property
    def time_signature(self) -> str:
        """The time signature that holds for the longest time (the piece's main one)."""
        return _longest(self.time_signatures, float(self.beats[-1]))

    @property
    def key_signature(self) -> int:
        """The key signature (sharps) that holds for the longest time."""
        return int(_longest(self.key_signatures, float(self.beats[-1])))

    @property
    def tempo(self) -> float:
        """BPM at the annotated beat level: 60 / the median beat interval."""
        return 60.0 / float(np.median(np.diff(self.beats)))


def _longest(changes: list, end: float):
    if not changes:
        raise ValueError("no annotation of this kind")
    spans: dict = {}
    for (t, v), nxt in zip(changes, [c[0] for c in changes[1:]] + [end]):
        spans[v] = spans.get(v, 0.0) + max(nxt - t, 0.0)
    return max(spans, key=spans.get)


def read_annotations(path: str | Path) -> Annotation:
    """An ASAP ``*_annotations.txt`` (time, time, ``b|db|bR[,time signature[,key]]`` per line);
    a malformed line is an error naming the file and the line."""
    beats, down, ts, ks = [], [], [], []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        try:
            t = float(cols[0])
            label = cols[2].split(",")
        except (IndexError, ValueError) as err:
            raise ValueError(f"{path}: line {i}: not 'time<TAB>time<TAB>label': {line!r}") from err
        if label[0] not in ("b", "db", "bR"):
            raise ValueError(f"{path}: line {i}: unknown beat type {label[0]!r}")
        beats.append(t)
        if label[0] == "db":
            down.append(t)
        if len(label) > 1 and label[1]:
            ts.append((t, label[1]))
        if len(label) > 2 and label[2]:
            ks.append((t, int(label[2])))
    if len(beats) < 2:
        raise ValueError(f"{path}: fewer than two beats annotated")
    return Annotation(np.array(beats), np.array(down), ts, ks)


def split(folder: str | Path, shared_data: str | Path | None = None) -> dict[str, list[Path]]:
    """``{"train": [...], "val": [...]}``: the performance MIDI files of an ASAP folder, test
    works left out and the held-out works on the validation side, as ``transcribe-render``
    splits them (``sources.asap`` of ``conf/render.yaml``); ``shared_data`` overrides
    ``paths.shared_data`` (where ``test_pieces.csv`` is)."""
    from ..config import compose
    from ..render.sources import held_out_side, label_files

    overrides = [f"sources.asap.folder={Path(folder)}"]
    if shared_data is not None:
        overrides.append(f"paths.shared_data={Path(shared_data)}")
    src = compose("render", overrides).sources.asap
    out: dict[str, list[Path]] = {"train": [], "val": []}
    for _, path in label_files("asap", src):
        out["val" if held_out_side(src, path) else "train"].append(path)
    return out


def annotation_path(midi: Path) -> Path:
    """The annotation file beside a performance (``X.mid`` → ``X_annotations.txt``)."""
    return midi.with_name(midi.stem + "_annotations.txt")
