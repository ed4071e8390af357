"""Sustain-pedal labels: the sidecar beside a render's labels (written, read, in the labels' time
frame), MIDI pedal spans, and the backfill of sidecars for renders made before they existed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transcribe.data.pairs import find_pairs
from transcribe.notefiles import apply_sustain, read_midi_pedal, read_tsv
from transcribe.notes import Notes
from transcribe.pedal import PEDAL_SUFFIX, labels_and_pedal, pedal_for, pedal_sidecar, read_pedal, write_pedal
from transcribe.render.prepare import Piece, prepare_notes, prepare_piece
from transcribe.render.sources import label_piece
from transcribe.render.synth import fluidsynth_binary

from .conftest import PEDAL_EVENTS, pedal_notes, write_pedal_midi, write_tsv

needs_fluidsynth = pytest.mark.skipif(fluidsynth_binary() is None,
                                      reason="FluidSynth not installed (apt-get install fluidsynth; .ci/run does)")


def test_sidecar_round_trip_empty_and_absent(tmp_path):
    label = tmp_path / "piece.tsv"
    write_tsv(Notes([0.5], [1.0], [60], [80]), label)
    assert pedal_sidecar(label) == tmp_path / f"piece{PEDAL_SUFFIX}"
    assert pedal_for(label) is None  # no sidecar: unknown
    spans = np.array([[2.0, 3.25], [0.5, 1.5]])
    write_pedal(spans, pedal_sidecar(label))
    np.testing.assert_allclose(pedal_for(label), [[0.5, 1.5], [2.0, 3.25]])  # sorted by press
    write_pedal(np.zeros((0, 2)), pedal_sidecar(label))
    text = pedal_sidecar(label).read_text()
    assert text.startswith("#") and text.count("\n") == 1  # a header only: the piece has no pedal
    got = pedal_for(label)
    assert got is not None and got.shape == (0, 2)
    assert [p[0].name for p in find_pairs(tmp_path)] == []  # a sidecar is never taken for audio or labels


def test_midi_pedal_spans_and_labels(tmp_path):
    midi = tmp_path / "p.mid"
    write_pedal_midi(pedal_notes(False), PEDAL_EVENTS, midi)
    notes, spans = read_midi_pedal(midi)
    # CC64 >= 64 down, < 64 up; the last press is never lifted: it ends with the file (6.0 s)
    np.testing.assert_allclose(spans, [[1.0, 3.0], [4.0, 4.5], [5.1, 6.0]], atol=1e-3)
    np.testing.assert_allclose(notes.offsets, pedal_notes(True).offsets, atol=1e-3)
    np.testing.assert_allclose(pedal_for(midi), spans)  # a MIDI label carries its own pedal
    both = labels_and_pedal(midi)  # what the dataset reads: one parse for notes and pedal
    np.testing.assert_array_equal(both[0].offsets, notes.offsets)
    np.testing.assert_array_equal(both[1], spans)
    write_pedal(np.array([[0.5, 0.7]]), pedal_sidecar(midi))  # a sidecar wins over the file's CC64
    np.testing.assert_allclose(labels_and_pedal(midi)[1], [[0.5, 0.7]])
    write_pedal_midi(pedal_notes(False), [], tmp_path / "q.mid")
    assert pedal_for(tmp_path / "q.mid").shape == (0, 2)  # no CC64: no pedal
    assert label_piece(tmp_path / "q.mid").pedal.shape == (0, 2)


def test_prepare_moves_the_pedal_with_the_notes():
    notes = Notes([0.01, 0.3], [0.2, 0.9], [60, 64], [80, 80])
    piece = prepare_piece(Piece(notes, np.array([[0.0, 0.5], [0.6, 1.2]])), min_duration=0.02, min_start=0.05)
    assert np.array_equal(piece.notes.onsets, prepare_notes(notes).onsets)
    np.testing.assert_allclose(piece.pedal, [[0.04, 0.54], [0.64, 1.24]])  # shifted by 0.05 - 0.01
    assert prepare_piece(Piece(notes, None)).pedal is None  # unknown stays unknown


def render_args(out: Path, midi_folder: Path, maps_folder: Path) -> list[str]:
    return [sys.executable, "-m", "transcribe.render", f"output_dir={out}", "latency.compensate=false",
            "sources.midi.enabled=true", f"sources.midi.folder={midi_folder}", "sources.midi.test_pieces=null",
            "sources.midi.pianos=[timgm6mb-piano]", "sources.midi.pianos_per_piece=null",
            f"sources.maps.folder={maps_folder}", "sources.maps.pianos=[timgm6mb-piano]",
            "sources.music21.enabled=false", "sources.generated.count=1", "sources.generated.seconds=8",
            "sources.generated.pianos=[csound-piano]", "sources.generated.pianos_per_piece=1"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """A MIDI piece with pedal starting at 0 s (so the render shifts it), a MAPS-style .tsv and a
    generated piece, rendered by the command."""
    tmp = tmp_path_factory.mktemp("pedal_render")
    midi_folder, maps_folder = tmp / "midi", tmp / "labels"
    midi_folder.mkdir()
    maps_folder.mkdir()
    played = pedal_notes(False)
    played = Notes(played.onsets - 0.5, played.offsets - 0.5, played.pitches, played.velocities)  # first onset 0 s
    events = [(t - 0.5, v) for t, v in PEDAL_EVENTS]
    write_pedal_midi(played, events, midi_folder / "perf.mid")
    write_tsv(Notes([0.3, 0.8], [0.7, 1.5], [48, 60], [60, 80]), maps_folder / "MAPS_MUS-a_AkPnBcht.tsv")
    out = tmp / "renders"
    args = render_args(out, midi_folder, maps_folder)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return {"out": out, "args": args, "played": played, "events": events, "midi": midi_folder / "perf.mid"}


@needs_fluidsynth
def test_render_writes_pedal_sidecars_in_the_label_time_frame(rendered):
    out = rendered["out"]
    label = out / "midi/timgm6mb-piano/perf.tsv"
    labels, pedal = read_tsv(label), read_pedal(pedal_sidecar(label))
    shift = 0.05  # the first onset (0 s) moves to min_start_s
    _, spans = read_midi_pedal(rendered["midi"])
    np.testing.assert_allclose(pedal, spans + shift, atol=1e-6)
    # the labels are the played notes with this pedal applied, in the same (shifted) time frame
    played = rendered["played"]
    shifted = Notes(played.onsets + shift, played.offsets + shift, played.pitches, played.velocities)
    expect = prepare_notes(apply_sustain(shifted, pedal))
    np.testing.assert_allclose(labels.offsets, expect.offsets, atol=2e-6)
    assert not pedal_sidecar(out / "maps/timgm6mb-piano/MAPS_MUS-a_AkPnBcht.tsv").exists()  # .tsv source: unknown
    gen = next((out / "generated").glob(f"*/*{PEDAL_SUFFIX}"))  # generated pieces know their pedal (maybe none)
    assert gen.read_text().startswith("#")


@needs_fluidsynth
def test_backfill_recreates_sidecars_and_refuses_changed_labels(rendered, tmp_path):
    import shutil

    out = tmp_path / "renders"
    shutil.copytree(rendered["out"], out)
    sidecars = {p: p.read_bytes() for p in out.rglob(f"*{PEDAL_SUFFIX}")}
    assert len(sidecars) == 2  # midi + generated
    for p in sidecars:
        p.unlink()
    flac_times = {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}
    args = [a if not a.startswith("output_dir=") else f"output_dir={out}" for a in rendered["args"]]
    proc = subprocess.run(args + ["pedal_only=true"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert '"written": 2' in proc.stdout and '"unknown": 1' in proc.stdout
    assert {p: p.read_bytes() for p in out.rglob(f"*{PEDAL_SUFFIX}")} == sidecars  # byte-identical
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")} == flac_times  # no audio touched
    again = subprocess.run(args + ["pedal_only=true"], capture_output=True, text=True, timeout=300)
    assert '"exists": 2' in again.stdout
    # labels that the source no longer gives (e.g. rendered with other settings): no sidecar
    label = out / "midi/timgm6mb-piano/perf.tsv"
    pedal_sidecar(label).unlink()
    label.write_text(label.read_text().replace("\t60\t", "\t61\t", 1))
    bad = subprocess.run(args + ["pedal_only=true"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "MISMATCH" in bad.stdout and '"mismatch": 1' in bad.stdout
    assert not pedal_sidecar(label).exists()
