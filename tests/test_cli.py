"""The `transcribe` command as a user runs it, with the checkpoint shipped in the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transcribe.checkpoint import SHIPPED_CHECKPOINT
from transcribe.metrics import transcription_metrics
from transcribe.notefiles import read_csv, read_midi

from .conftest import EIGHT_TONES_NOTE_F1, SR, eight_tones, synth


def transcribe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transcribe.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def scale_wav(tmp_path_factory) -> tuple[Path, object]:
    notes = eight_tones()
    path = tmp_path_factory.mktemp("audio") / "scale.wav"
    sf.write(path, synth(notes), SR)
    return path, notes


def test_help_explains_every_option():
    proc = transcribe("--help")
    assert proc.returncode == 0
    for option in ("--output-dir", "--model", "--format", "--onset-threshold", "--frame-threshold",
                   "--overwrite", "--threads", "--quiet", "--min-note-ms", "--pitch-range", "--notes", "--device",
                   "--sonify", "--sonify-format", "--soundfont"):
        assert option in proc.stdout


def test_shipped_checkpoint_is_small_and_carries_its_config():
    from transcribe.checkpoint import load_checkpoint

    assert SHIPPED_CHECKPOINT.is_file()
    shipped = [SHIPPED_CHECKPOINT, *SHIPPED_CHECKPOINT.parent.glob("model.onnx*")]  # + its ONNX export and record
    assert len(shipped) == 3 and sum(p.stat().st_size for p in shipped) / 2**20 < 25
    state = load_checkpoint()
    # the network's own inference chunking travels with it (ship_model.py --chunk-seconds): the harmonic
    # network's memory grows with the chunk
    assert set(state["config"]) == {"features", "model", "decode", "infer"}
    assert state["config"]["infer"]["chunk_seconds"] <= 30
    assert "optimizer_state" not in state


def test_writes_midi_next_to_input_with_shipped_model(scale_wav):
    path, notes = scale_wav
    proc = transcribe(str(path))
    assert proc.returncode == 0, proc.stderr
    est = read_midi(path.with_suffix(".mid"))
    # the synthetic tones are not a piano, but the shipped model finds every one of them
    m = transcription_metrics(notes, est)
    assert m["note_recall"] == 1.0 and m["note_f1"] >= EIGHT_TONES_NOTE_F1, m
    again = transcribe(str(path))
    assert again.returncode == 0 and "skip" in again.stdout and "1 skipped" in again.stdout


def test_several_inputs_output_dir_and_formats(scale_wav, tmp_path):
    path, _ = scale_wav
    other = tmp_path / "in" / "b.flac"
    other.parent.mkdir()
    sf.write(other, sf.read(path)[0], SR)
    out = tmp_path / "out"
    proc = transcribe(str(path), str(other), "-o", str(out), "--format", "mid,csv")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["b.csv", "b.mid", "scale.csv", "scale.mid"]
    mid, csv = read_midi(out / "scale.mid"), read_csv(out / "scale.csv")
    assert len(mid) == len(csv) > 0
    np.testing.assert_allclose(mid.onsets, csv.onsets, atol=1e-3)
    np.testing.assert_array_equal(mid.pitches, csv.pitches)


def test_folder_input_keeps_relative_paths(scale_wav, tmp_path):
    path, _ = scale_wav
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    sf.write(src / "sub" / "x.wav", sf.read(path)[0], SR)
    (src / "notes.txt").write_text("not audio, not picked up")
    proc = transcribe(str(src), "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "sub" / "x.mid").is_file()


def test_silence_gives_empty_midi_and_a_warning(tmp_path):
    sf.write(tmp_path / "quiet.wav", np.zeros(SR * 2, np.float32), SR)
    proc = transcribe(str(tmp_path / "quiet.wav"))
    assert proc.returncode == 0
    assert "no notes" in proc.stderr
    assert len(read_midi(tmp_path / "quiet.mid")) == 0


def _unprivileged_prefix() -> list[str] | None:
    """A command prefix under which file permissions apply: nothing for a normal user; for
    root, setpriv without the capabilities that bypass them (None when that is impossible)."""
    import os
    import shutil

    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"] if setpriv else None


BAD_KINDS = ["missing", "text", "empty", "truncated", "no-samples", "shorter-than-a-frame", "unreadable",
             "folder-named-wav"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_one_line_error_nonzero_exit_no_output(kind, scale_wav, tmp_path):
    bad = tmp_path / "bad.wav"
    prefix: list[str] = []
    if kind == "text":
        bad.write_text("hello, I am not a recording\n" * 10)
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "truncated":
        bad.write_bytes(scale_wav[0].read_bytes()[:30])  # a WAV header cut short
    elif kind == "no-samples":
        sf.write(bad, np.zeros(0, np.float32), SR)  # a valid header, zero frames
    elif kind == "shorter-than-a-frame":
        sf.write(bad, np.full(200, 0.1, np.float32), SR)
    elif kind == "unreadable":
        bad.write_bytes(scale_wav[0].read_bytes())
        bad.chmod(0)
        prefix = _unprivileged_prefix()
        if prefix is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
    elif kind == "folder-named-wav":
        bad.mkdir()
        (bad / "notes.txt").write_text("a folder whose name ends in .wav, with no audio inside")
    good = tmp_path / "good.wav"
    good.write_bytes(scale_wav[0].read_bytes())
    proc = subprocess.run([*prefix, sys.executable, "-m", "transcribe.cli", str(bad), str(good)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(bad) in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"failed: {bad}" in proc.stderr  # repeated in the summary at the end
    assert not bad.with_suffix(".mid").exists()
    assert good.with_suffix(".mid").is_file()  # the batch went on
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_bad_model_and_bad_format_are_usage_errors(scale_wav, tmp_path):
    path, _ = scale_wav
    junk = tmp_path / "junk.pt"
    junk.write_text("nope")
    proc = transcribe(str(path), "--model", str(junk), "--overwrite")
    assert proc.returncode == 2 and str(junk) in proc.stderr and "Traceback" not in proc.stderr
    proc = transcribe(str(path), "--format", "wav")
    assert proc.returncode == 2 and "unknown output format" in proc.stderr


def test_verbose_prints_the_effective_settings(scale_wav, tmp_path):
    path, _ = scale_wav
    proc = transcribe(str(path), "-o", str(tmp_path), "-v", "--onset-threshold", "0.45")
    assert proc.returncode == 0, proc.stderr
    assert "model_sha256: " in proc.stderr and "'onset_threshold': 0.45" in proc.stderr and "backend: " in proc.stderr
