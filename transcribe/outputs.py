"""The note outputs of ``transcribe -f``: the formats and their writers (MIDI, CSV and JSON from
:mod:`transcribe.notefiles`, MusicXML from :mod:`transcribe.score`), so that the note-file
module does not know the score writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .notefiles import write_csv, write_json, write_midi
from .notes import Notes

OUTPUT_FORMATS = ("mid", "csv", "json", "musicxml")
PEDAL_WRITERS = ("mid", "json")  # formats that carry the sustain pedal


def write_musicxml(notes: Notes, path: str | Path) -> None:
    """A score (two staves, beats, meter and key estimated from the notes): :mod:`transcribe.score`."""
    from .score import write_musicxml as write_score

    write_score(notes, path)


WRITERS = {"mid": write_midi, "csv": write_csv, "json": write_json, "musicxml": write_musicxml}


def write_notes(notes: Notes, path: str | Path, fmt: str, pedal: np.ndarray | None = None) -> None:
    """Write ``notes`` to ``path`` in one of :data:`OUTPUT_FORMATS`; the sustain pedal spans
    ``pedal``, when given, go into MIDI (CC64) and JSON output."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown output format {fmt!r} (choose from {', '.join(OUTPUT_FORMATS)})")
    if pedal is not None and fmt in PEDAL_WRITERS:
        WRITERS[fmt](notes, path, pedal=pedal)
    else:
        WRITERS[fmt](notes, path)
