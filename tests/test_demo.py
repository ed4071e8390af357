"""The demo clip shipped in the package and ``transcribe --demo``, as a newcomer runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from transcribe.demo import DEMO_ABOUT, DEMO_AUDIO, DEMO_LABELS, DEMO_PEDAL, about
from transcribe.metrics import transcription_metrics
from transcribe.notefiles import read_midi, read_tsv, tsv_text
from transcribe.pedal import read_pedal

from .conftest import load_script, require_dev

REPO = Path(__file__).resolve().parents[1]
# Measured with the shipped model (sampled_v1 step 2250, onnx backend): note F1 0.968
# (precision 0.947, recall 0.989), note-with-offset F1 0.849, frame F1 0.935.
NOTE_F1_FLOOR = 0.87


def transcribe(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "transcribe", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


def test_clip_is_short_small_and_labelled():
    assert DEMO_AUDIO.stat().st_size < 300_000
    info = sf.info(str(DEMO_AUDIO))
    assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
    assert 18.0 <= info.duration <= 24.0
    labels = read_tsv(DEMO_LABELS)
    a = about()
    assert len(labels) == a["notes"] and abs(info.duration - a["seconds"]) < 0.01
    assert labels.offsets.max() <= info.duration and labels.onsets.min() >= 0.0
    assert 21 <= labels.pitches.min() and labels.pitches.max() <= 108
    assert len(read_pedal(DEMO_PEDAL)) > 0
    for key in ("piece", "piano", "licence"):
        assert a[key]


def test_demo_writes_demo_mid_here_and_transcribes_the_clip(tmp_path):
    proc = transcribe("--demo", "--jobs", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    mid = tmp_path / "demo.mid"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.mid"]
    assert str(mid) in proc.stdout and "Minuet" in proc.stdout and "Splendid" in proc.stdout
    metrics = transcription_metrics(read_tsv(DEMO_LABELS), read_midi(mid))
    assert metrics["note_f1"] >= NOTE_F1_FLOOR, metrics

    # a second run keeps it, as for any output; --overwrite replaces it
    before = mid.stat().st_mtime_ns
    again = transcribe("--demo", cwd=tmp_path)
    assert again.returncode == 0 and "already there" in again.stdout and mid.stat().st_mtime_ns == before
    forced = transcribe("--demo", "--overwrite", "--jobs", "1", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert mid.stat().st_mtime_ns != before


def test_demo_output_dir_and_formats(tmp_path):
    proc = transcribe("--demo", "-o", "out", "--format", "mid,csv", "--jobs", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["demo.csv", "demo.mid"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_demo_with_input_paths_is_a_usage_error(tmp_path):
    audio = tmp_path / "mine.wav"
    sf.write(audio, [0.0] * 1600, 16000)
    proc = transcribe("--demo", audio, cwd=tmp_path)
    assert proc.returncode == 2 and "--demo" in proc.stderr and "takes no input paths" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.wav"]
    none = transcribe(cwd=tmp_path)
    assert none.returncode == 2 and "INPUT" in none.stderr and "--demo" in none.stderr


def test_the_shipped_labels_are_what_make_demo_plays():
    require_dev("hydra")
    from transcribe.config import compose
    from transcribe.render.prepare import prepare_piece

    cfg = compose("demo")
    piece = prepare_piece(load_script("make_demo").demo_piece(cfg.demo), cfg.min_duration_s, cfg.min_start_s)
    assert tsv_text(piece.notes) == DEMO_LABELS.read_text()
    assert cfg.demo.piano == "splendid" and cfg.sample_rate == 16000


def test_make_demo_renders_the_shipped_clip_exactly(tmp_path):
    """Needs FluidSynth and the splendid SoundFont (scripts/fetch_pianos.py): the pianos folder
    is paths.pianos, or TRANSCRIBE_TEST_PIANOS."""
    require_dev("hydra")
    from transcribe.config import compose
    from transcribe.fluidsynth import fluidsynth_binary

    pianos = os.environ.get("TRANSCRIBE_TEST_PIANOS") or str(REPO / compose("demo").paths.pianos)
    if fluidsynth_binary() is None or not (Path(pianos) / "sf2" / "splendid.sf2").is_file():
        pytest.skip("needs FluidSynth and the splendid SoundFont")
    out = tmp_path / "demo.flac"
    load_script("make_demo").main([f"paths.pianos={pianos}", f"demo.output={out}"])
    for shipped in (DEMO_AUDIO, DEMO_LABELS, DEMO_PEDAL, DEMO_ABOUT):
        assert (tmp_path / shipped.name).read_bytes() == shipped.read_bytes(), shipped.name
