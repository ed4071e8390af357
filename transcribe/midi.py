"""Notes <-> files: MIDI (pretty_midi), MAPS-style TSV labels, CSV and JSON note lists.

Every writer goes through :func:`atomic_write`, so an interrupted run never leaves a
half-written output file behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .notes import Notes

LABEL_EXTENSIONS = (".tsv", ".mid", ".midi")
OUTPUT_FORMATS = ("mid", "csv", "json")


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the same folder; rename it to ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def notes_to_pretty_midi(notes: Notes, program: int = 0):
    """A PrettyMIDI object with one Acoustic Grand Piano track holding ``notes``."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)  # ticks of 0.52 ms
    piano = pretty_midi.Instrument(program=program, name="Piano")
    for on, off, p, v in zip(notes.onsets, notes.offsets, notes.pitches, notes.velocities):
        piano.notes.append(pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(on), end=float(off)))
    pm.instruments.append(piano)
    return pm


def write_midi(notes: Notes, path: str | Path) -> None:
    """Write ``notes`` as a MIDI file (Acoustic Grand Piano)."""
    pm = notes_to_pretty_midi(notes)
    with atomic_write(path) as tmp:
        pm.write(str(tmp))


def read_midi(path: str | Path) -> Notes:
    """All non-drum notes of a MIDI file (sustain pedal not applied)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(path))
    rows = [(n.start, n.end, n.pitch, n.velocity) for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    if not rows:
        return Notes.empty()
    a = np.array(rows, dtype=np.float64)
    return Notes(a[:, 0], a[:, 1], a[:, 2], a[:, 3]).sorted()


def read_tsv(path: str | Path) -> Notes:
    """MAPS-format labels: ``onset<TAB>offset<TAB>pitch<TAB>velocity`` after a ``#`` header."""
    a = np.loadtxt(path, delimiter="\t", comments="#", ndmin=2, dtype=np.float64)
    if a.size == 0:
        return Notes.empty()
    if a.shape[1] < 3:
        raise ValueError(f"{path}: expected columns onset, offset, pitch[, velocity]")
    vel = a[:, 3] if a.shape[1] > 3 else np.full(len(a), 64.0)
    return Notes(a[:, 0], a[:, 1], np.round(a[:, 2]), np.round(vel)).sorted()


def read_labels(path: str | Path) -> Notes:
    """Read a label file by its extension (.tsv, .mid, .midi)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".tsv":
        return read_tsv(path)
    if suffix in (".mid", ".midi"):
        return read_midi(path)
    raise ValueError(f"{path}: unsupported label format (use {', '.join(LABEL_EXTENSIONS)})")


def _note_rows(notes: Notes) -> list[dict]:
    return [
        {"onset": round(float(on), 6), "offset": round(float(off), 6), "pitch": int(p), "velocity": int(v)}
        for on, off, p, v in zip(notes.onsets, notes.offsets, notes.pitches, notes.velocities)
    ]


def write_csv(notes: Notes, path: str | Path) -> None:
    """Note list as CSV with the header ``onset,offset,pitch,velocity`` (seconds)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["onset", "offset", "pitch", "velocity"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(_note_rows(notes))
    with atomic_write(path) as tmp:
        tmp.write_text(buf.getvalue())


def read_csv(path: str | Path) -> Notes:
    """Read a note list written by :func:`write_csv`."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return Notes.empty()
    return Notes(*(np.array([float(r[k]) for r in rows]) for k in ("onset", "offset", "pitch", "velocity")))


def write_json(notes: Notes, path: str | Path) -> None:
    """Note list as JSON: ``{"notes": [{"onset", "offset", "pitch", "velocity"}, ...]}``."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps({"notes": _note_rows(notes)}, indent=1))


WRITERS = {"mid": write_midi, "csv": write_csv, "json": write_json}


def write_notes(notes: Notes, path: str | Path, fmt: str) -> None:
    """Write ``notes`` to ``path`` in one of :data:`OUTPUT_FORMATS`."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown output format {fmt!r} (choose from {', '.join(OUTPUT_FORMATS)})")
    WRITERS[fmt](notes, path)
