"""The `transcribe` options that choose the notes written (--min-note-ms, --pitch-range, --notes),
where the network runs (--device) and the sonification (--sonify), as a user runs them: the
command in a subprocess on synthesised tones, with the shipped model or a checkpoint made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transcribe.notefiles import read_csv
from transcribe.notes import Notes

from .conftest import SR, synth
from .test_cli import transcribe


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    """Notes from C2 to C7, some short, some long: a range and a minimum length both drop some."""
    pitches = [36, 43, 48, 55, 60, 64, 67, 72, 76, 79, 84, 91, 96]
    onsets = 0.4 + 0.45 * np.arange(len(pitches))
    lengths = np.where(np.arange(len(pitches)) % 3 == 0, 0.12, 0.4)
    path = tmp_path_factory.mktemp("audio") / "tones.wav"
    sf.write(path, synth(Notes(onsets, onsets + lengths, pitches, np.full(len(pitches), 100))), SR)
    return path


@pytest.fixture(scope="module")
def plain(tones, tmp_path_factory) -> Notes:
    """What the command writes with the default settings."""
    out = tmp_path_factory.mktemp("plain")
    proc = transcribe(str(tones), "-o", str(out), "-f", "csv", "-q")
    assert proc.returncode == 0, proc.stderr
    return read_csv(out / "tones.csv")


def test_min_note_ms_and_pitch_range_drop_notes_and_are_recorded(tones, plain, tmp_path):
    durations = plain.offsets - plain.onsets
    ms = float(np.median(durations) * 1000)  # about half the notes are shorter
    proc = transcribe(str(tones), "-o", str(tmp_path), "-f", "csv,json", "--min-note-ms", f"{ms:.3f}",
                      "--pitch-range", "C3:C6", "--report", str(tmp_path / "report.json"), "-v")
    assert proc.returncode == 0, proc.stderr
    got = read_csv(tmp_path / "tones.csv")
    keep = (durations >= round(ms, 3) / 1000 - 1e-9) & (plain.pitches >= 48) & (plain.pitches <= 84)
    assert 0 < keep.sum() < len(plain) and (durations < ms / 1000).any() and (plain.pitches < 48).any()
    np.testing.assert_array_equal(got.pitches, plain.pitches[keep])
    np.testing.assert_allclose(got.onsets, plain.onsets[keep])
    np.testing.assert_allclose(got.offsets, plain.offsets[keep])
    assert [n["pitch"] for n in json.loads((tmp_path / "tones.json").read_text())["notes"]] == got.pitches.tolist()
    decode = json.loads((tmp_path / "report.json").read_text())["settings"]["decode"]
    assert (decode["min_note_ms"], decode["min_pitch"], decode["max_pitch"], decode["notes"]) == (
        round(ms, 3), 48, 84, "sounding")
    assert f"'min_note_ms': {round(ms, 3)}" in proc.stderr and "'min_pitch': 48" in proc.stderr


def test_the_python_api_takes_the_same_settings(tones, plain):
    from transcribe import Transcriber, transcribe_file

    notes = transcribe_file(tones, decode={"min_pitch": "C4", "max_pitch": 84})
    inside = (plain.pitches >= 60) & (plain.pitches <= 84)
    assert 0 < inside.sum() < len(plain)
    np.testing.assert_array_equal(notes.pitches, plain.pitches[inside])
    t = Transcriber.from_checkpoint(decode={"min_note_ms": 200})
    assert t.decode.min_note_ms == 200.0
    np.testing.assert_array_equal(t.transcribe_file(tones).pitches,
                                  plain.pitches[plain.offsets - plain.onsets >= 0.2 - 1e-9])
    with pytest.raises(ValueError, match="notes must be one of sounding, key"):
        Transcriber.from_checkpoint(decode={"notes": "keys"})


@pytest.mark.parametrize("option, value, message", [
    ("--pitch-range", "C2-C7", "argument --pitch-range: invalid value 'C2-C7': expected LOW:HIGH"),
    ("--pitch-range", "C7:C2", "invalid value 'C7:C2': LOW (96) is above HIGH (36)"),
    ("--pitch-range", "A0:C9", "'C9' (MIDI 120) is not a piano key"),
    ("--pitch-range", "H1:C5", "'H1' is neither a note name"),
    ("--min-note-ms", "-5", "argument --min-note-ms: must be a finite number of milliseconds >= 0, got -5"),
    ("--min-note-ms", "nan", "argument --min-note-ms: must be a finite number"),
    ("--min-note-ms", "short", "argument --min-note-ms: expected a number of milliseconds, got 'short'"),
    ("--notes", "release", "argument --notes: invalid choice: 'release'"),
])
def test_bad_note_options_are_usage_errors_naming_the_value(tones, tmp_path, option, value, message):
    proc = transcribe(str(tones), "-o", str(tmp_path), f"{option}={value}")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


def test_key_notes_need_a_model_with_a_pedal_head(tones, tmp_path):
    from transcribe.checkpoint import SHIPPED_CHECKPOINT

    proc = transcribe(str(tones), "-o", str(tmp_path), "--notes", "key")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{SHIPPED_CHECKPOINT}: key-release notes" in proc.stderr and "no pedal head" in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def pedal_model(tmp_path_factory) -> Path:
    """The shipped note network with a pedal head that holds the sustain pedal down throughout:
    real notes, and a pedal that holds every one of them."""
    import torch

    from transcribe.checkpoint import Checkpoint, save_checkpoint
    from transcribe.features import FeatureConfig
    from transcribe.model import ModelConfig, OnsetsAndFrames

    shipped = Checkpoint()
    config = {**shipped.config, "model": {**shipped.config["model"], "pedal_head": True}}
    model = OnsetsAndFrames(FeatureConfig.from_dict(config["features"]).n_bins, ModelConfig.from_dict(config["model"]))
    missing = model.load_state_dict(shipped.state["model_state"], strict=False).missing_keys
    assert missing and all(k.startswith("pedal_") for k in missing)
    with torch.no_grad():
        model.pedal_head.weight.zero_()
        model.pedal_head.bias[:] = torch.tensor([4.0, -4.0, -4.0])  # down, never pressed anew
    path = tmp_path_factory.mktemp("pedal_model") / "pedal.pt"
    save_checkpoint(path, model.eval(), config)
    return path


@pytest.fixture(scope="module")
def ringing(tmp_path_factory) -> Path:
    """An arpeggio whose notes ring on (as under the pedal) long after the next one starts."""
    pitches = [48, 55, 60, 64, 67, 72, 76, 79]
    onsets = 0.4 + 0.5 * np.arange(len(pitches))
    path = tmp_path_factory.mktemp("ringing") / "ringing.wav"
    sf.write(path, synth(Notes(onsets, onsets + 2.0, pitches, np.full(len(pitches), 100))), SR)
    return path


def test_key_notes_shorten_pedalled_notes_and_keep_onsets_and_the_pedal(pedal_model, ringing, tmp_path):
    from transcribe.decode import DecodeConfig, key_release_offsets
    from transcribe.notefiles import read_midi_pedal

    base = [str(ringing), "--model", str(pedal_model), "--backend", "torch", "-f", "mid,csv,json", "-q"]
    sounding = transcribe(*base, "-o", str(tmp_path / "sounding"))
    key = transcribe(*base, "-o", str(tmp_path / "key"), "--notes", "key", "--report", str(tmp_path / "r.json"))
    assert sounding.returncode == 0 and key.returncode == 0, sounding.stderr + key.stderr
    s, k = read_csv(tmp_path / "sounding" / "ringing.csv"), read_csv(tmp_path / "key" / "ringing.csv")
    assert len(s) >= 5
    np.testing.assert_array_equal(k.onsets, s.onsets)
    np.testing.assert_array_equal(k.pitches, s.pitches)
    np.testing.assert_array_equal(k.velocities, s.velocities)
    assert (k.offsets < s.offsets - 0.1).sum() >= 3 and (k.offsets <= s.offsets).all()
    doc = json.loads((tmp_path / "key" / "ringing.json").read_text())
    spans = np.array([[p["down"], p["up"]] for p in doc["pedal"]])
    assert len(spans) == 1  # down throughout
    frame_rate = 16000 / 512
    expected = key_release_offsets(s, spans, frame_rate, DecodeConfig().min_note_seconds(frame_rate))
    np.testing.assert_allclose(k.offsets, expected.offsets, atol=1e-6)
    assert [n["offset"] for n in doc["notes"]] == k.offsets.tolist()
    # the MIDI holds the key releases and the same pedal (CC64) as the sounding version
    midi_key, pedal_key = read_midi_pedal(tmp_path / "key" / "ringing.mid", sustain=False)
    _, pedal_sounding = read_midi_pedal(tmp_path / "sounding" / "ringing.mid", sustain=False)
    np.testing.assert_allclose(midi_key.offsets, k.offsets, atol=1e-3)
    np.testing.assert_allclose(pedal_key, pedal_sounding)
    assert json.loads((tmp_path / "r.json").read_text())["settings"]["decode"]["notes"] == "key"
    refused = transcribe(*base, "-o", str(tmp_path / "refused"), "--notes", "key", "--no-pedal")
    assert refused.returncode == 2 and "--no-pedal" in refused.stderr and "Traceback" not in refused.stderr


# ------------------------------------------------------------------------------------------ --device

def cuda_here(backend: str) -> bool:
    """Whether ``backend`` can use a CUDA GPU on this machine (the tests expect auto to take it)."""
    if backend == "onnx":
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_device_cpu_and_auto_run_and_are_recorded(tones, plain, tmp_path, backend):
    for device in ("cpu", "auto"):
        out = tmp_path / device
        proc = transcribe(str(tones), "-o", str(out), "-f", "csv", "--backend", backend, "--device", device,
                          "--report", str(out / "report.json"), "-v")
        assert proc.returncode == 0, proc.stderr
        settings = json.loads((out / "report.json").read_text())["settings"]
        expected = "cuda" if device == "auto" and cuda_here(backend) else "cpu"
        assert settings["device"] == expected and settings["infer"]["device"] == device
        assert f"device: {expected}" in proc.stderr
        assert len(read_csv(out / "tones.csv")) == len(plain)


@pytest.mark.parametrize("backend, says", [
    ("onnx", "onnxruntime-gpu"),
    ("torch", "torch.cuda.is_available() is False"),
])
def test_device_cuda_without_a_gpu_is_a_clear_error_not_a_fallback(tones, tmp_path, backend, says):
    if cuda_here(backend):
        pytest.skip(f"{backend} has a CUDA GPU here")
    proc = transcribe(str(tones), "-o", str(tmp_path), "--backend", backend, "--device", "cuda")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("transcribe: error: --device cuda: ") and says in line, proc.stderr
    assert not list(tmp_path.iterdir())


def test_device_from_python_and_from_conf_infer(tmp_path, monkeypatch):
    from transcribe import Transcriber, config
    from transcribe.infer import InferConfig
    from transcribe.runtime import DeviceError

    assert Transcriber.from_checkpoint(device="cpu").device == "cpu"
    assert InferConfig.default().device == "auto"  # conf/infer/default.yaml
    if not cuda_here("onnx"):
        with pytest.raises(DeviceError, match="no CUDAExecutionProvider"):
            Transcriber.from_checkpoint(device="cuda")
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda, got 'gpu'"):
        InferConfig.default().with_overrides(device="gpu")
    # a bad value in the settings file is an error that names the file
    (tmp_path / "infer").mkdir()
    (tmp_path / "infer" / "default.yaml").write_text(
        config.group_file("infer").read_text().replace("device: auto", "device: gpu"))
    monkeypatch.setattr(config, "conf_dir", lambda: str(tmp_path))
    config.group_defaults.cache_clear()
    try:
        with pytest.raises(ValueError, match=f"{tmp_path / 'infer' / 'default.yaml'}: device must be one of"):
            config.from_group("infer", InferConfig.from_dict)
    finally:
        config.group_defaults.cache_clear()
