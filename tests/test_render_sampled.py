"""Rendering with sampled pianos: release samples at note-offs, held-out pianos kept out of
training renders, performance folders (unique stems, the test-piece filter, a validation side)."""

from __future__ import annotations

import subprocess
import sys

import mido
import numpy as np
import pytest

from transcribe.config import compose
from transcribe.notefiles import write_midi
from transcribe.notes import Notes
from transcribe.render.sources import held_out_side, iter_sources, label_files, pianos_for
from transcribe.render.synth import TICKS_PER_BEAT, Piano, fluidsynth_binary, pianos_from_cfg, write_render_midi

from .conftest import write_tsv


def events(path):
    t, out = 0, []
    for msg in mido.MidiFile(str(path)).tracks[0]:
        t += msg.time
        if msg.type in ("note_on", "note_off", "program_change"):
            out.append((t / TICKS_PER_BEAT, msg))
    return out


def test_release_samples_are_played_at_note_offs_and_decay_with_holding(tmp_path):
    piano = Piano("p", "main.sf2", release_soundfont="rel.sf2", release_velocity=0.5, release_decay_db_per_s=4.0)
    notes = Notes([0.5, 1.0], [0.7, 3.0], [60, 64], [100, 100])  # held 0.2 s and 2 s
    write_render_midi(notes, piano, tmp_path / "x.mid")
    ev = events(tmp_path / "x.mid")
    assert [(m.channel, m.program) for _, m in ev if m.type == "program_change"] == [(0, 0), (1, 1)]
    rel = [(t, m.note, m.velocity) for t, m in ev if m.type == "note_on" and m.channel == 1]
    assert [(t, n) for t, n, _ in rel] == [(0.7, 60), (3.0, 64)]
    v60, v64 = rel[0][2], rel[1][2]
    assert v60 == round(100 * 0.5 * 10 ** (-4.0 * 0.2 / 40)) and v64 == round(100 * 0.5 * 10 ** (-4.0 * 2.0 / 40))
    plain = Piano("p", "main.sf2")  # no release font: channel 0 only, as before
    write_render_midi(notes, plain, tmp_path / "y.mid")
    assert all(m.channel == 0 for _, m in events(tmp_path / "y.mid"))


def test_sampled_presets_are_configured_with_layer_edges():
    pianos = pianos_from_cfg(compose("render"))
    assert pianos["salamander"].release_soundfont.endswith("salamander-release.sf2")
    assert pianos["splendid"].latency_velocities == (1, 40, 41, 67, 68, 84, 85, 100, 101, 127)
    assert {"headroom-close", "headroom-decca"} <= set(compose("render").held_out_pianos)


def test_held_out_pianos_never_play_training_renders():
    cfg = compose("render")
    pianos, held = pianos_from_cfg(cfg), tuple(cfg.held_out_pianos)
    for name, src in cfg.sources.items():
        for stem in ("a", "b", "c", "d"):
            assert not {p.name for p in pianos_for(src, stem, pianos, 0, held)} & set(held), name
    assert [p.name for p in pianos_for(cfg.sources.asap, "a", pianos, 0, held, render_held_out=True)] == list(held)
    leaky = cfg.sources.asap.copy()
    leaky.pianos = ["salamander", "headroom-close"]
    with pytest.raises(ValueError, match="held-out"):
        pianos_for(leaky, "a", pianos, 0, held)


TEST_PIECES = """maps_code,composer,work
chpn-e01,Chopin,Étude (MAPS chpn-e01; treat every Chopin étude op. 10 no. 1 as excluded)
"""


def performances(tmp_path):
    """An ASAP-like folder: Composer/Work/performer.mid and metadata.csv, and a test-set list
    (the format of ../shared/data/test_pieces.csv) naming one of its works."""
    (tmp_path / "test_pieces.csv").write_text(TEST_PIECES)
    root = tmp_path / "asap"
    rows = [("Chopin", "Etudes_op_10_1", "Chopin/Etudes_op_10/1", "Ana01M"),        # a test work
            ("Chopin", "Etudes_op_10_3", "Chopin/Etudes_op_10/3", "Ana01M"),        # same performer name
            ("Bach", "Fugue_bwv_846", "Bach/Fugue/bwv_846", "Ana01M"),
            ("Bach", "Fugue_bwv_848", "Bach/Fugue/bwv_848", "Lee01M")]
    lines = ["composer,title,folder,midi_performance"]
    for i, (composer, title, folder, perf) in enumerate(rows):
        (root / folder).mkdir(parents=True)
        write_midi(Notes([0.1], [0.5], [60 + i], [80]), root / folder / f"{perf}.mid")
        lines.append(f"{composer},{title},{folder},{folder}/{perf}.mid")
    (root / "unlisted.mid").write_bytes((root / "Bach/Fugue/bwv_846/Ana01M.mid").read_bytes() + b"")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_performance_folders_get_unique_stems_and_lose_the_test_works(tmp_path):
    root = performances(tmp_path)
    src = compose("render", [f"sources.asap.folder={root}", "sources.asap.dedupe=false",
                             f"sources.asap.test_pieces={tmp_path / 'test_pieces.csv'}"]).sources.asap
    stems = [s for s, _ in label_files("asap", src)]
    # Chopin op. 10 no. 1 is a test work (test_pieces.csv); unlisted files are not performances
    assert stems == ["Bach_Fugue_bwv_846_Ana01M", "Bach_Fugue_bwv_848_Lee01M", "Chopin_Etudes_op_10_3_Ana01M"]


def test_validation_side_goes_only_to_held_out_renders(tmp_path):
    root = performances(tmp_path)
    over = [f"sources.asap.folder={root}", "sources.asap.enabled=true", "sources.asap.val_percent=50",
            f"sources.asap.test_pieces={tmp_path / 'test_pieces.csv'}",
            "sources.maps.enabled=false", "sources.music21.enabled=false", "sources.generated.enabled=false"]
    train = {s for _, s, _, _ in iter_sources(compose("render", over))}
    val = {s for _, s, _, _ in iter_sources(compose("render", over + ["held_out=true"]))}
    assert train and val and not train & val and len(train | val) == 3
    src = compose("render", over).sources.asap
    for stem, path in label_files("asap", src):  # one work, one side
        assert (stem in val) == held_out_side(src, path)


@pytest.mark.skipif(fluidsynth_binary() is None, reason="FluidSynth not installed")
def test_held_out_render_command(tmp_path):
    """`transcribe-render held_out=true` renders only validation pieces, only through the held-out
    pianos (here two General MIDI presets stand in for them)."""
    root = tmp_path / "perf"
    for i, work in enumerate(["w1", "w2", "w3", "w4", "w5", "w6"]):
        (root / work).mkdir(parents=True)
        write_tsv(Notes([0.2], [0.6], [60 + i], [90]), root / work / "take.tsv")
    args = [sys.executable, "-m", "transcribe.render", "sources.maps.enabled=false", "sources.music21.enabled=false",
            "sources.generated.enabled=false", "sources.midi.enabled=true", f"sources.midi.folder={root}",
            "sources.midi.val_percent=50", "sources.midi.pianos=null", "sources.midi.test_pieces=null",
            "held_out_pianos=[timgm6mb-piano,csound-piano]", "latency.compensate=false"]
    held = subprocess.run(args + ["held_out=true", f"output_dir={tmp_path / 'val'}"], capture_output=True, text=True,
                          timeout=300)
    assert held.returncode == 0, held.stderr
    val = sorted(p.relative_to(tmp_path / "val") for p in (tmp_path / "val").rglob("*.flac"))
    assert val and {p.parts[1] for p in val} == {"timgm6mb-piano", "csound-piano"}
    works = {p.stem for p in val}
    assert all(w.endswith("_take") for w in works)
    assert len(works) < 6 and np.all([p.with_suffix(".tsv").is_file() for p in (tmp_path / "val").rglob("*.flac")])
