"""Sustain-pedal spans: ``[n, 2]`` arrays of (down, up) seconds, and the label sidecar that holds
them beside a recording's note labels.

A render ``<stem>.tsv`` may have ``<stem>.pedal.tsv`` beside it: two tab-separated columns,
down and up in seconds, in the time frame of the ``.tsv`` (after the shift
:func:`transcribe.render.prepare.prepare_piece` applies), after a ``#`` header. An empty file
(header only) says the piece has no pedal; no file says the pedal is unknown (MAPS labels,
``.tsv`` sources), and pedal training targets are then masked. MIDI labels carry their own pedal
(control change 64), so they need no sidecar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import atomic_write
from .notes import as_spans  # noqa: F401 - also re-exported: the spans' shared form

PEDAL_SUFFIX = ".pedal.tsv"
HEADER = "# down,up (sustain pedal, seconds)\n"


def no_pedal() -> np.ndarray:
    """Known absence of pedal: zero spans."""
    return np.zeros((0, 2), dtype=np.float64)


def pedal_sidecar(label: str | Path) -> Path:
    """The pedal sidecar of a label file: ``<stem>.pedal.tsv`` beside ``<stem>.tsv``."""
    label = Path(label)
    return label.with_name(label.stem + PEDAL_SUFFIX)


def is_sidecar(path: str | Path) -> bool:
    """Whether ``path`` is a pedal sidecar (never a note label file)."""
    return Path(path).name.endswith(PEDAL_SUFFIX)


def spans_text(spans: np.ndarray) -> str:
    """The sidecar's text for ``spans`` (what :func:`write_pedal` writes)."""
    return HEADER + "".join(f"{a:.6f}\t{b:.6f}\n" for a, b in as_spans(spans))


def write_pedal(spans: np.ndarray, path: str | Path) -> None:
    """Write a pedal sidecar (atomically); zero spans give a header-only file (no pedal)."""
    with atomic_write(path) as tmp:
        tmp.write_text(spans_text(spans))


def read_pedal(path: str | Path) -> np.ndarray:
    """Spans [n, 2] of a pedal sidecar."""
    rows = [line.split("\t") for line in Path(path).read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    if any(len(r) != 2 for r in rows):
        raise ValueError(f"{path}: expected two tab-separated columns, down and up")
    return as_spans(np.array(rows, dtype=np.float64)) if rows else no_pedal()


def pedal_for(label: str | Path) -> np.ndarray | None:
    """The sustain pedal of a labelled recording: its sidecar's spans; for MIDI labels without a
    sidecar, the file's own CC64 spans (none when it has no CC64 events); None when unknown."""
    label = Path(label)
    sidecar = pedal_sidecar(label)
    if sidecar.is_file():
        return read_pedal(sidecar)
    if label.suffix.lower() in (".mid", ".midi"):
        from .notefiles import read_midi_pedal

        return read_midi_pedal(label)[1]
    return None


def labels_and_pedal(label: str | Path):
    """(notes of a label file as :func:`~transcribe.notefiles.read_labels` reads them, its pedal as
    :func:`pedal_for` finds it), a MIDI file parsed once."""
    from .notefiles import read_labels, read_midi_pedal

    label = Path(label)
    sidecar = pedal_sidecar(label)
    if label.suffix.lower() in (".mid", ".midi"):
        notes, spans = read_midi_pedal(label)
        return notes, read_pedal(sidecar) if sidecar.is_file() else spans
    return read_labels(label), read_pedal(sidecar) if sidecar.is_file() else None

