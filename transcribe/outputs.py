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


def write_outputs(result, outputs: list[Path], title: str, frame_rate: float, onset_threshold: float,
                  sonify=None, midi_tempo: bool = False) -> None:
    """Every output file of one transcription ``result`` (notes, pedal, activations, audio
    seconds: :class:`transcribe.infer.TranscribeResult`), chosen by name: ``NAME.sonified.wav`` /
    ``.flac`` played through FluidSynth (``sonify``, a :class:`transcribe.sonify.SonifyConfig`),
    ``.png`` the piano roll (onset ticks at the decoder's ``onset_threshold``), ``.mid`` on the beat
    grid with ``midi_tempo``, else the note formats of :func:`write_notes`. The one writer of the
    ``transcribe`` command and the studio's downloads."""
    from .sonify import is_sonified

    for out in outputs:
        ext = out.suffix.lstrip(".")
        if is_sonified(out):
            from .sonify import sonify as play

            play(result.notes, out, sonify, pedal=result.pedal, seconds=result.audio_seconds)
        elif ext == "png":
            from .plot import write_piano_roll

            write_piano_roll(result.notes, result.activations, frame_rate, out, title=title,
                             total_seconds=result.audio_seconds, onset_threshold=onset_threshold)
        elif ext == "mid" and midi_tempo:
            from .score import beat_aligned_midi, estimate_beats

            beat_aligned_midi(result.notes, estimate_beats(None, None, result.notes), out, pedal=result.pedal)
        else:
            write_notes(result.notes, out, ext, pedal=result.pedal)
