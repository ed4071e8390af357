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

from .conftest import SR, in_ci, synth
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
    from transcribe.checkpoint import Checkpoint, save_checkpoint
    from transcribe.features import FeatureConfig
    from transcribe.model import ModelConfig, build_network

    shipped = Checkpoint()  # the shipped note network without its pedal head
    config = {**shipped.config, "model": {**shipped.config["model"], "pedal_head": False}}
    model = build_network(FeatureConfig.from_dict(config["features"]).n_bins, ModelConfig.from_dict(config["model"]))
    model.load_state_dict({k: v for k, v in shipped.state["model_state"].items() if not k.startswith("pedal_")})
    plain = tmp_path / "models" / "plain.pt"
    save_checkpoint(plain, model.eval(), config)
    out = tmp_path / "out"
    proc = transcribe(str(tones), "-o", str(out), "--notes", "key", "--model", str(plain), "--backend", "torch")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{plain}: key-release notes" in proc.stderr and "no pedal head" in proc.stderr
    assert not out.exists() or not list(out.iterdir())


@pytest.fixture(scope="module")
def pedal_model(tmp_path_factory) -> Path:
    """The shipped note network with a pedal head that holds the sustain pedal down throughout:
    real notes, and a pedal that holds every one of them."""
    import torch

    from transcribe.checkpoint import Checkpoint, save_checkpoint
    from transcribe.features import FeatureConfig
    from transcribe.model import ModelConfig, build_network

    shipped = Checkpoint()
    config = {**shipped.config, "model": {**shipped.config["model"], "pedal_head": True},
              "decode": {**shipped.config["decode"], "pedal": True}}
    model = build_network(FeatureConfig.from_dict(config["features"]).n_bins, ModelConfig.from_dict(config["model"]))
    missing = model.load_state_dict(shipped.state["model_state"], strict=False).missing_keys
    assert all(k.startswith("pedal_") for k in missing)  # a shipped model without a pedal head gets a fresh one
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


def test_a_checkpoint_that_leaves_the_pedal_off_writes_it_on_request(pedal_model, ringing, tmp_path):
    """decode.pedal false in the checkpoint: no CC64 by default; --pedal and --notes key write it."""
    from transcribe.checkpoint import Checkpoint, save_checkpoint
    from transcribe.notefiles import read_midi_pedal

    ckpt = Checkpoint(pedal_model)
    off = tmp_path / "pedal_off.pt"
    save_checkpoint(off, ckpt.build_model(), {**ckpt.config, "decode": {**ckpt.config["decode"], "pedal": False}})
    base = [str(ringing), "--model", str(off), "--backend", "torch", "-f", "mid,json", "-q"]
    runs = {name: transcribe(*base, "-o", str(tmp_path / name), *extra)
            for name, extra in (("default", []), ("pedal", ["--pedal"]), ("key", ["--notes", "key"]))}
    assert all(r.returncode == 0 for r in runs.values()), [r.stderr for r in runs.values()]
    pedal = {name: read_midi_pedal(tmp_path / name / "ringing.mid", sustain=False)[1] for name in runs}
    assert len(pedal["default"]) == 0 and "pedal" not in json.loads((tmp_path / "default" / "ringing.json").read_text())
    assert len(pedal["pedal"]) == 1 and len(pedal["key"]) == 1
    both = transcribe(*base, "-o", str(tmp_path / "both"), "--pedal", "--no-pedal")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


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
        got = read_csv(out / "tones.csv")  # the notes of the default run, wherever the network ran
        np.testing.assert_array_equal(got.pitches, plain.pitches)
        np.testing.assert_allclose(got.onsets, plain.onsets, atol=1e-3)
        np.testing.assert_allclose(got.offsets, plain.offsets, atol=1e-3)
        np.testing.assert_allclose(got.velocities, plain.velocities, atol=1)


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


# ------------------------------------------------------------------------------------------ --sonify

def fluidsynth_installed() -> bool:
    """Whether the FluidSynth command is here. Only its absence skips the --sonify tests, and not
    under CI (.ci/run installs it): a SoundFont search that fails where FluidSynth is installed
    is a failure of the tests that need one, not a skip."""
    import shutil

    return shutil.which("fluidsynth") is not None


needs_fluidsynth = pytest.mark.skipif(not fluidsynth_installed() and not in_ci(),
                                      reason="needs FluidSynth (apt-get install fluidsynth fluid-soundfont-gm)")


@needs_fluidsynth
def test_sonify_writes_audio_of_the_transcription_that_transcribes_back_to_it(tones, tmp_path):
    from transcribe.metrics import transcription_metrics

    args = [str(tones), "-o", str(tmp_path), "-f", "csv", "--sonify", "--report", str(tmp_path / "report.json")]
    proc = transcribe(*args)
    assert proc.returncode == 0, proc.stderr
    sonified, notes = tmp_path / "tones.sonified.wav", read_csv(tmp_path / "tones.csv")
    info = sf.info(sonified)
    assert (info.format, info.subtype, info.samplerate) == ("WAV", "PCM_16", 44100)
    assert abs(info.duration - sf.info(tones).duration) < 1 / 44100  # as long as the recording
    audio, rate = sf.read(sonified)
    assert 0.01 < np.abs(audio).max() <= 0.95 + 1e-4
    first = audio[: int(notes.onsets.min() * rate) - int(0.02 * rate)]
    assert np.abs(first).max() < 1e-3  # silent before the first note
    report = json.loads((tmp_path / "report.json").read_text())
    assert str(sonified) in report["files"][0]["outputs"]
    assert report["settings"]["sonify"]["soundfont"].endswith(".sf2") and report["settings"]["sonify"]["format"] == "wav"
    # what it plays is what was transcribed: the model hears the same notes in it
    again = transcribe(str(sonified), "-o", str(tmp_path / "again"), "-f", "csv", "-q")
    assert again.returncode == 0, again.stderr
    assert transcription_metrics(notes, read_csv(tmp_path / "again" / "tones.sonified.csv"))["note_f1"] >= 0.8
    # an output like the others: all there -> skipped; the sonified audio missing -> done again
    assert "1 skipped" in transcribe(*args).stdout
    sonified.unlink()
    redo = transcribe(*args)
    assert redo.returncode == 0 and "1 done" in redo.stdout and sonified.is_file()


@needs_fluidsynth
def test_sonify_as_flac_with_a_given_soundfont(tones, tmp_path):
    from transcribe.sonify import SonifyConfig, checked

    font = tmp_path / "piano.sf2"
    font.symlink_to(checked(SonifyConfig.default()).soundfont)
    proc = transcribe(str(tones), "-o", str(tmp_path / "out"), "--sonify", "--sonify-format", "flac",
                      "--soundfont", str(font), "-v")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tones.mid", "tones.sonified.flac"]
    assert sf.info(tmp_path / "out" / "tones.sonified.flac").format == "FLAC"
    assert f"'soundfont': '{font}'" in proc.stderr


@needs_fluidsynth
def test_sonify_from_python(tmp_path):
    from transcribe.sonify import sonify

    notes = Notes([0.5, 1.0], [0.9, 1.5], [60, 67], [90, 90])
    sonify(notes, tmp_path / "a.flac", seconds=2.5)  # conf/sonify's settings; the format the name says
    info = sf.info(tmp_path / "a.flac")
    assert info.format == "FLAC" and abs(info.duration - 2.5) < 1e-4
    audio, rate = sf.read(tmp_path / "a.flac")
    assert np.abs(audio[: int(0.45 * rate)]).max() < 1e-3 < np.abs(audio[int(0.5 * rate): int(0.9 * rate)]).max()


def test_sonify_without_fluidsynth_says_what_to_install(tones, tmp_path):
    import os
    import subprocess
    import sys

    empty = tmp_path / "bin"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "transcribe.cli", str(tones), "-o", str(tmp_path / "out"), "--sonify"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": str(empty)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "--sonify needs FluidSynth" in proc.stderr and "apt-get install fluidsynth fluid-soundfont-gm" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_sonify_without_a_soundfont_says_what_to_install(tmp_path):
    from dataclasses import replace

    from transcribe.sonify import SonifyConfig, SonifyError, find_soundfont

    cfg = replace(SonifyConfig.default(), soundfont_search=(str(tmp_path / "none.sf2"),))
    with pytest.raises(SonifyError, match="apt-get install fluidsynth fluid-soundfont-gm, or give one with --soundfont"):
        find_soundfont(cfg)
    (tmp_path / "text.sf2").write_text("not a soundfont")
    with pytest.raises(SonifyError, match="not a SoundFont"):
        find_soundfont(replace(cfg, soundfont=str(tmp_path / "text.sf2")))
    with pytest.raises(ValueError, match="format must be one of wav, flac"):
        replace(cfg, format="mp3")


@pytest.mark.parametrize("extra, message", [
    (["--sonify", "--soundfont", "/nonexistent/piano.sf2"], "--soundfont /nonexistent/piano.sf2: no such file"),
    (["--sonify", "--soundfont", "TEXT"], "not a SoundFont"),
    (["--soundfont", "TEXT"], "--soundfont only apply with --sonify: add --sonify"),
    (["--sonify-format", "flac"], "--sonify-format only apply with --sonify"),
    (["--sonify", "--sonify-format", "mp3"], "argument --sonify-format: invalid choice: 'mp3'"),
])
def test_bad_sonify_options_are_usage_errors(tones, tmp_path, extra, message):
    if not fluidsynth_installed() and not in_ci() and "--soundfont" in extra and "--sonify" in extra:
        pytest.skip("FluidSynth is checked first")
    text = tmp_path / "text.sf2"
    text.write_text("hello")
    proc = transcribe(str(tones), "-o", str(tmp_path / "out"), *[str(text) if a == "TEXT" else a for a in extra])
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


@needs_fluidsynth
def test_a_soundfont_fluidsynth_cannot_load_fails_each_input_and_the_batch_goes_on(tones, tmp_path):
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00sfbkLIST" + bytes(64))  # a SoundFont's first bytes, then nothing
    (tmp_path / "in").mkdir()
    for name in ("a.wav", "b.wav"):
        (tmp_path / "in" / name).write_bytes(tones.read_bytes())
    out = tmp_path / "out"
    proc = transcribe(str(tmp_path / "in"), "-o", str(out), "--sonify", "--soundfont", str(broken), "--jobs", "1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("fluidsynth could not load a SoundFont") == 4  # each input: its error line and summary
    assert "0 done, 0 skipped, 2 failed" in proc.stderr
    assert not list(out.glob("*.sonified.wav")) and not list(out.glob(".*.part"))
    proc = transcribe(str(tmp_path / "in"), "-o", str(out), "--sonify", "--jobs", "2")  # the same, playable: resumes
    assert proc.returncode == 0 and "2 done" in proc.stdout, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.mid", "a.sonified.wav", "b.mid", "b.sonified.wav"]


@needs_fluidsynth
def test_sonified_outputs_beside_their_input_are_not_taken_for_inputs(tones, tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    (folder / "a.wav").write_bytes(tones.read_bytes())
    first = transcribe(str(folder), "--sonify")
    assert first.returncode == 0 and (folder / "a.sonified.wav").is_file(), first.stderr
    again = transcribe(str(folder), "--sonify")  # a resumed run finds its own output and leaves it alone
    assert again.returncode == 0 and "0 done, 1 skipped" in again.stdout, again.stdout + again.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["a.mid", "a.sonified.wav", "a.wav"]
    # given as an input beside a.wav, it would be overwritten: refused before any work
    clash = transcribe(str(folder / "a.wav"), str(folder / "a.sonified.wav"), "--sonify", "--overwrite")
    assert clash.returncode == 2 and "an output would overwrite an input" in clash.stderr, clash.stderr
    assert f"{folder / 'a.sonified.wav'} (an output of {folder / 'a.wav'}) is the input" in clash.stderr
    # a file of that name with no input beside it is a recording like any other
    (folder / "a.wav").unlink()
    alone = transcribe(str(folder), "-o", str(tmp_path / "out"))
    assert alone.returncode == 0 and (tmp_path / "out" / "a.sonified.mid").is_file(), alone.stderr
