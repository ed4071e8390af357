"""Notes <-> note files: MIDI (pretty_midi), MAPS-style TSV labels, CSV and JSON note lists,
and the sustain pedal as MIDI carries it.

Every writer goes through :func:`transcribe.files.atomic_write`, so an interrupted run never
leaves a half-written output file behind.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from .files import atomic_write
from .notes import Notes

LABEL_EXTENSIONS = (".tsv", ".mid", ".midi")
MIDI_TEMPO_US = 500_000  # the tempo of the .mid outputs: 120 beats a minute (pretty_midi's default)


def notes_to_pretty_midi(notes: Notes, program: int = 0, pedal: np.ndarray | None = None):
    """A PrettyMIDI object with one Acoustic Grand Piano track holding ``notes`` and, with
    ``pedal`` spans [n, 2] (down, up s), sustain pedal control changes (CC64 127 / 0)."""
    import pretty_midi

    from .midifile import sustain_events

    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=60e6 / MIDI_TEMPO_US)  # ticks of 0.52 ms
    piano = pretty_midi.Instrument(program=program, name="Piano")
    for on, off, p, v in zip(notes.onsets, notes.offsets, notes.pitches, notes.velocities):
        piano.notes.append(pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(on), end=float(off)))
    if pedal is not None:
        piano.control_changes += [pretty_midi.ControlChange(64, v, t) for t, v in sustain_events(pedal)]
    pm.instruments.append(piano)
    return pm


def midi_bytes(notes: Notes, resolution: int = 960, tempo_us: int = MIDI_TEMPO_US, pedal: np.ndarray | None = None,
               program: int = 0, bank: int | None = None, seconds: float | None = None) -> bytes:
    """A standard MIDI file (format 1: a tempo track and one piano track, program ``program``,
    after a bank select to ``bank`` when given) of ``notes`` and the sustain pedal spans ``pedal``
    (CC64), its end at ``seconds`` when given (not before the last event); by default (Acoustic
    Grand Piano) the same bytes pretty_midi writes for :func:`notes_to_pretty_midi`, without its
    per-note objects (hundreds of MB for the notes of a 10-hour recording). Built and written by
    :mod:`transcribe.midifile`."""
    from . import midifile

    tps = resolution * 1e6 / tempo_us  # ticks a second
    on = np.round(notes.onsets * tps).astype(np.int64)
    off = np.round(notes.offsets * tps).astype(np.int64)
    events = midifile.note_events(on, off, notes.pitches, notes.velocities)
    if pedal is not None:
        events += midifile.pedal_events(pedal, tps)
    head = [(0, midifile.track_name("Piano"))]
    if bank is not None:
        head.append((0, midifile.channel(midifile.CONTROL_CHANGE, 0, bank)))
    head.append((0, midifile.channel(midifile.PROGRAM_CHANGE, program)))
    tempo = midifile.track([(0, midifile.tempo(tempo_us)), (0, midifile.time_signature(4, 4))], end_delta=1)
    end = int(round(seconds * tps)) if seconds else None
    return midifile.midi_file([tempo, midifile.track(head, events, end_tick=end, end_delta=1)], resolution)


def write_midi(notes: Notes, path: str | Path, pedal: np.ndarray | None = None) -> None:
    """Write ``notes`` as a MIDI file (Acoustic Grand Piano; see :func:`midi_bytes`), with the
    sustain pedal spans ``pedal`` as CC64 control changes (127 down, 0 up) when given. The notes
    keep their sounding (pedal-extended) offsets."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(midi_bytes(notes, pedal=pedal))


def sustain_intervals(events: list[tuple[float, int]], end: float, threshold: int = 64) -> np.ndarray:
    """Times [n, 2] (down, up) during which the sustain pedal is held.

    ``events`` are (time s, CC64 value) in file order; a value >= ``threshold`` presses the
    pedal, a smaller one releases it. A pedal still down at the end is released at ``end``.
    """
    spans, down_at = [], None
    for time, value in sorted(events, key=lambda e: e[0]):  # stable: same-time events keep file order
        if value >= threshold and down_at is None:
            down_at = time
        elif value < threshold and down_at is not None:
            spans.append((down_at, time))
            down_at = None
    if down_at is not None:
        spans.append((down_at, max(end, down_at)))
    return np.array(spans, dtype=np.float64).reshape(-1, 2)


def apply_sustain(notes: Notes, pedal: np.ndarray) -> Notes:
    """Extend offsets by the sustain pedal: a note whose key is released while the pedal is
    down (``pedal`` spans [down, up), see :func:`sustain_intervals`) sounds until the pedal
    is released or until the same key is struck again, whichever comes first. Notes are
    never shortened."""
    if len(notes) == 0 or len(pedal) == 0:
        return notes
    offsets = notes.offsets.copy()
    idx = np.searchsorted(pedal[:, 0], offsets, side="right") - 1
    held = (idx >= 0) & (offsets < pedal[np.maximum(idx, 0), 1])
    ends = np.where(held, pedal[np.maximum(idx, 0), 1], offsets)
    for pitch in np.unique(notes.pitches[held]):
        same = np.flatnonzero(notes.pitches == pitch)
        onsets = np.sort(notes.onsets[same])
        for i in same[held[same]]:
            # the next strike of this key at or after the release (and after the note's own onset)
            nxt = np.searchsorted(onsets, offsets[i], side="left" if offsets[i] > notes.onsets[i] else "right")
            if nxt < len(onsets):
                ends[i] = min(ends[i], onsets[nxt])
    return Notes(notes.onsets, np.maximum(ends, offsets), notes.pitches, notes.velocities)


def read_midi(path: str | Path, sustain: bool = True) -> Notes:
    """All non-drum notes of a MIDI file.

    With ``sustain`` (the default; it is how labels are read), offsets are extended by the
    sustain pedal (control change 64, value >= 64 = down) as in :func:`apply_sustain`. A
    piano has one pedal, so CC64 events on any non-drum channel of any track apply to all
    notes. Files without CC64 events read the same either way.
    """
    return read_midi_pedal(path, sustain)[0]


def read_midi_pedal(path: str | Path, sustain: bool = True) -> tuple[Notes, np.ndarray]:
    """(notes as :func:`read_midi` reads them, sustain pedal spans [n, 2] (down, up) seconds of
    :func:`sustain_intervals`; zero spans when the file has no CC64 events)."""
    import mido
    import pretty_midi

    mid = mido.MidiFile(str(path))
    pedal_ticks = []
    for track in mid.tracks:  # absolute ticks, before pretty_midi rewrites the event times
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "control_change" and msg.control == 64 and msg.channel != 9:
                pedal_ticks.append((tick, msg.value))
    pm = pretty_midi.PrettyMIDI(mido_object=mid)
    rows = [(n.start, n.end, n.pitch, n.velocity) for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    spans = np.zeros((0, 2), dtype=np.float64)
    if pedal_ticks:
        events = [(float(pm.tick_to_time(tick)), value) for tick, value in pedal_ticks]
        end = max(pm.get_end_time(), max(t for t, _ in events))
        spans = sustain_intervals(events, end)
    if not rows:
        return Notes.empty(), spans
    a = np.array(rows, dtype=np.float64)
    notes = Notes(a[:, 0], a[:, 1], a[:, 2], a[:, 3])
    if sustain and len(spans):
        notes = apply_sustain(notes, spans)
    return notes.sorted(), spans


def read_tsv(path: str | Path) -> Notes:
    """MAPS-format labels: ``onset<TAB>offset<TAB>pitch<TAB>velocity`` after a ``#`` header."""
    a = np.loadtxt(path, delimiter="\t", comments="#", ndmin=2, dtype=np.float64)
    if a.size == 0:
        return Notes.empty()
    if a.shape[1] < 3:
        raise ValueError(f"{path}: expected columns onset, offset, pitch[, velocity]")
    vel = a[:, 3] if a.shape[1] > 3 else np.full(len(a), 64.0)
    return Notes(a[:, 0], a[:, 1], np.round(a[:, 2]), np.round(vel)).sorted()


def tsv_text(notes: Notes) -> str:
    """The text :func:`write_tsv` writes for ``notes`` (compared byte for byte by the pedal backfill)."""
    rows = "".join(f"{a:.6f}\t{b:.6f}\t{int(p)}\t{int(v)}\n"
                   for a, b, p, v in zip(notes.onsets, notes.offsets, notes.pitches, notes.velocities))
    return "# onset,offset,note,velocity\n" + rows


def write_tsv(notes: Notes, path: str | Path) -> None:
    """MAPS-format labels (read back by :func:`read_tsv`): ``onset<TAB>offset<TAB>pitch<TAB>velocity``."""
    with atomic_write(path) as tmp:
        tmp.write_text(tsv_text(notes))


def read_labels(path: str | Path) -> Notes:
    """Read a label file by its extension (.tsv, .mid, .midi). MIDI labels get the sustain
    pedal applied to their offsets (:func:`read_midi`), as the MAPS .tsv offsets already have."""
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


def write_json(notes: Notes, path: str | Path, pedal: np.ndarray | None = None) -> None:
    """Note list as JSON: ``{"notes": [{"onset", "offset", "pitch", "velocity"}, ...]}``, and with
    ``pedal`` spans, ``"pedal": [{"down", "up"}, ...]`` (sustain pedal, seconds)."""
    doc: dict = {"notes": _note_rows(notes)}
    if pedal is not None:
        doc["pedal"] = [{"down": round(float(a), 6), "up": round(float(b), 6)} for a, b in pedal]
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1))
