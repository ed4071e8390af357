"""Transcription without torch (``pip install transcribe-piano`` does not install it).

The package ships the ONNX export of its model (``transcribe/weights/model.onnx`` with
``model.onnx.json``). These tests check that the export is verifiably that of the shipped
checkpoint and computes what the checkpoint computes, and, in real subprocesses in which
importing torch fails and is recorded (a ``sitecustomize`` import blocker, inherited by worker
processes), that the command and the Python API transcribe with the default model without
ever trying to import torch, that what does need torch says what to install, and that an
export beside any checkpoint is used only when it belongs to that checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transcribe.checkpoint import SHIPPED_CHECKPOINT, file_digest
from transcribe.notefiles import read_csv, read_midi
from transcribe.notes import Notes

from .conftest import EIGHT_TONES_NOTE_F1, SR, eight_tones, random_notes, synth

REPO = Path(__file__).resolve().parents[1]
SHIPPED_ONNX = SHIPPED_CHECKPOINT.with_suffix(".onnx")
SHIPPED_RECORD = SHIPPED_ONNX.with_name(SHIPPED_ONNX.name + ".json")
REFRESH = "refresh it with: python scripts/ship_model.py --onnx-only transcribe/weights/model.pt"

# Installed as sitecustomize.py: importing a blocked module (TRANSCRIBE_TEST_BLOCK, comma
# separated top-level names) fails as if it were not installed, and each attempt is appended
# to TRANSCRIBE_TEST_BLOCK_LOG. Then the sitecustomize this one shadows, if any, is run.
BLOCKER = '''
import os, sys

_BLOCKED = set(filter(None, os.environ.get("TRANSCRIBE_TEST_BLOCK", "").split(",")))


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            with open(os.environ["TRANSCRIBE_TEST_BLOCK_LOG"], "a") as f:
                f.write(f"{os.getpid()} {name}\\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
_here = os.path.dirname(os.path.abspath(__file__))
for _entry in sys.path:
    _other = os.path.join(os.path.abspath(_entry or "."), "sitecustomize.py")
    if os.path.dirname(_other) != _here and os.path.isfile(_other):
        exec(compile(open(_other).read(), _other, "exec"), {"__name__": "sitecustomize", "__file__": _other})
        break
'''


class Blocked:
    """An environment for subprocesses in which ``modules`` cannot be imported; :attr:`attempts`
    lists the imports of them that were tried."""

    def __init__(self, tmp_path: Path, modules: tuple[str, ...] = ("torch",)):
        folder = tmp_path / "blocker"
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(BLOCKER)
        self.log = tmp_path / "blocked-imports.log"
        self.cache = tmp_path / "cache"  # empty: nothing exported earlier can serve
        path = [str(folder), str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "TRANSCRIBE_TEST_BLOCK": ",".join(modules),
                    "TRANSCRIBE_TEST_BLOCK_LOG": str(self.log), "TRANSCRIBE_CACHE_DIR": str(self.cache)}

    def run(self, *args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=self.env,
                              timeout=timeout, cwd=self.log.parent)

    def transcribe(self, *args: str | Path) -> subprocess.CompletedProcess:
        return self.run("-m", "transcribe", *args)

    @property
    def attempts(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture(scope="module")
def scale() -> tuple[np.ndarray, Notes]:
    notes = eight_tones()
    return synth(notes), notes


def assert_every_tone_found(notes: Notes, est: Notes) -> None:
    """The shipped model's result on the eight tones: every one found, note F1 at its measured floor."""
    from transcribe.metrics import transcription_metrics

    m = transcription_metrics(notes, est)
    assert m["note_recall"] == 1.0 and m["note_f1"] >= EIGHT_TONES_NOTE_F1, m


# ------------------------------------------------------------------ the shipped export


def test_shipped_onnx_is_the_export_of_the_shipped_checkpoint():
    from transcribe.checkpoint import load_checkpoint
    from transcribe.runtime import EXPORT_FORMAT, EXPORT_VERSION, OnnxRunner

    record = json.loads(SHIPPED_RECORD.read_text())
    assert record["format"] == EXPORT_FORMAT
    assert record["checkpoint_sha256"] == file_digest(SHIPPED_CHECKPOINT), f"model.onnx is stale: {REFRESH}"
    assert record["onnx_sha256"] == file_digest(SHIPPED_ONNX), f"model.onnx was changed after export: {REFRESH}"
    assert record["export_version"] == EXPORT_VERSION, f"model.onnx predates EXPORT_VERSION: {REFRESH}"
    state = load_checkpoint()
    assert record["config"] == state["config"]
    runner = OnnxRunner(SHIPPED_ONNX)
    assert runner.metadata["transcribe_checkpoint_sha256"] == file_digest(SHIPPED_CHECKPOINT)
    assert json.loads(runner.metadata["transcribe_config"]) == state["config"]
    shipped = [SHIPPED_CHECKPOINT, SHIPPED_ONNX, SHIPPED_RECORD]
    assert sum(p.stat().st_size for p in shipped) / 2**20 < 25


def test_shipped_onnx_computes_what_the_checkpoint_computes(scale):
    from transcribe.checkpoint import Checkpoint, typed_configs
    from transcribe.features import cqt_features
    from transcribe.infer import run_network
    from transcribe.runtime import OnnxRunner

    ckpt = Checkpoint()
    features, _ = typed_configs(ckpt.config)
    x = cqt_features(scale[0], features)
    onnx = run_network(OnnxRunner(SHIPPED_ONNX, threads=1), x, 1000, 0)
    torch_ = run_network(ckpt.build_model(), x, 1000, 0)
    assert onnx["frame"].max() > 0.5  # the comparison is of a network that hears the notes
    for head in onnx:
        np.testing.assert_allclose(onnx[head], torch_[head], atol=1e-4, err_msg=head)


def test_default_model_runs_from_the_shipped_export_and_caches_nothing(tmp_path, monkeypatch):
    from transcribe.infer import Transcriber

    monkeypatch.setenv("TRANSCRIBE_CACHE_DIR", str(tmp_path / "cache"))
    t = Transcriber.from_checkpoint(threads=1)
    assert t.backend == "onnx"
    assert not (tmp_path / "cache").exists()


# ------------------------------------------------------------------ no torch


def test_the_blocker_blocks(tmp_path):
    blocked = Blocked(tmp_path)
    proc = blocked.run("-c", "import torch")
    assert proc.returncode == 1 and "No module named 'torch'" in proc.stderr
    assert blocked.attempts and blocked.attempts[0].endswith(" torch")


def test_command_with_the_default_model_never_imports_torch(tmp_path, scale):
    """... nor librosa, which only the ``[score]`` extra installs."""
    blocked = Blocked(tmp_path, ("torch", "librosa"))
    audio, notes = scale
    inputs = [tmp_path / "in" / "a.wav", tmp_path / "in" / "b.flac"]
    inputs[0].parent.mkdir()
    for path in inputs:
        sf.write(path, audio, SR)
    out, report = tmp_path / "out", tmp_path / "report.json"
    # two files, two worker processes: the batch path, and the workers start without torch too
    proc = blocked.transcribe(*inputs, "-o", out, "--jobs", "2", "--format", "mid,csv", "--report", report)
    assert proc.returncode == 0, proc.stderr
    assert blocked.attempts == [], "torch or librosa was imported"
    assert "torch" not in proc.stderr
    settings = json.loads(report.read_text())["settings"]
    assert settings["backend"] == "onnx" and settings["model_sha256"] == file_digest(SHIPPED_CHECKPOINT)
    for name in ("a", "b"):
        assert_every_tone_found(notes, read_midi(out / f"{name}.mid"))
        assert len(read_csv(out / f"{name}.csv")) == len(read_midi(out / f"{name}.mid"))
    assert not blocked.cache.exists()  # served by the shipped export, nothing exported


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (.ci/run installs it)")
def test_m4a_is_decoded_by_ffmpeg_on_the_base_install(tmp_path, scale):
    """Formats libsndfile cannot read go to ffmpeg directly: no librosa/audioread (not in the base
    install). The m4a (AAC) gives the notes the WAV gives; a damaged one is one clear error."""
    blocked = Blocked(tmp_path, ("torch", "librosa", "audioread"))
    audio, notes = scale
    wav, m4a, bad = tmp_path / "w.wav", tmp_path / "m.m4a", tmp_path / "bad.m4a"
    sf.write(wav, np.stack([audio, audio], axis=1), SR)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(wav), "-ar", "44100", "-c:a", "aac", "-b:a", "192k",
                    str(m4a)], check=True)
    bad.write_bytes(m4a.read_bytes()[:200] + bytes(5000))
    out = tmp_path / "out"
    proc = blocked.transcribe(wav, m4a, bad, "-o", out, "--jobs", "1")
    assert proc.returncode == 1 and blocked.attempts == [], (proc.stderr, blocked.attempts)
    assert f"failed: {bad}: not a readable audio file" in proc.stderr and "Traceback" not in proc.stderr
    from transcribe.metrics import transcription_metrics

    assert sorted(p.name for p in out.iterdir()) == ["m.mid", "w.mid"]
    from_wav, from_m4a = read_midi(out / "w.mid"), read_midi(out / "m.mid")
    assert_every_tone_found(notes, from_m4a)
    assert transcription_metrics(from_wav, from_m4a)["note_f1"] >= 0.9


def test_demo_never_imports_torch(tmp_path):
    """A newcomer's first command, ``transcribe --demo``, on the base install (no torch)."""
    blocked = Blocked(tmp_path)
    proc = blocked.transcribe("--demo", "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    assert blocked.attempts == [], "torch was imported"
    from transcribe.demo import DEMO_LABELS
    from transcribe.metrics import transcription_metrics
    from transcribe.notefiles import read_tsv

    from .test_demo import NOTE_F1_FLOOR

    metrics = transcription_metrics(read_tsv(DEMO_LABELS), read_midi(tmp_path / "demo.mid"))
    assert metrics["note_f1"] >= NOTE_F1_FLOOR, metrics  # the clip's notes, as with torch installed


def test_python_api_with_the_default_model_never_imports_torch(tmp_path, scale):
    blocked = Blocked(tmp_path)
    audio, notes = scale
    wav = tmp_path / "scale.wav"
    sf.write(wav, audio, SR)
    stereo_44k = tmp_path / "stereo.npy"
    import soxr

    y = soxr.resample(audio, SR, 44100)
    np.save(stereo_44k, np.stack([y, y], axis=1))
    code = ("import json, sys, numpy as np\n"
            "from transcribe import Transcriber, transcribe_file\n"
            f"a = transcribe_file({str(wav)!r})\n"
            "t = Transcriber.from_checkpoint(threads=1)\n"
            f"b = t.transcribe(np.load({str(stereo_44k)!r}), 44100)\n"
            "rows = lambda n: np.column_stack([n.onsets, n.offsets, n.pitches, n.velocities]).tolist()\n"
            "print(json.dumps([rows(a), rows(b), t.backend, t.decode.onset_threshold, 'torch' in sys.modules]))\n")
    proc = blocked.run("-c", code)
    assert proc.returncode == 0, proc.stderr
    from_file, from_array, backend, onset_threshold, torch_loaded = json.loads(proc.stdout.splitlines()[-1])
    from transcribe.checkpoint import load_checkpoint

    assert backend == "onnx" and not torch_loaded and blocked.attempts == []
    assert onset_threshold == load_checkpoint()["config"]["decode"]["onset_threshold"]  # the stored config
    for rows in (from_file, from_array):  # the file, and the array at 44.1 kHz in stereo
        assert_every_tone_found(notes, Notes(*np.array(rows).T))


def test_without_torch_what_needs_it_says_what_to_install(tmp_path, scale):
    import shutil

    blocked = Blocked(tmp_path, ("torch", "onnx"))
    wav = tmp_path / "scale.wav"
    sf.write(wav, scale[0], SR)
    own = tmp_path / "mine.pt"
    shutil.copy(SHIPPED_CHECKPOINT, own)  # a checkpoint with no export beside it
    cases = {
        ("--backend", "torch"): ["torch backend", "transcribe-piano[train]"],
        ("--model", str(own)): [str(own), "no ONNX export", "transcribe-piano[train]",
                                f"python -m transcribe.runtime {own}"],
        ("--int8",): ["--int8", "onnx", "transcribe-piano[int8]"],
    }
    for option, words in cases.items():
        proc = blocked.transcribe(wav, *option)
        assert proc.returncode == 2, (option, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("transcribe: error: "), (option, proc.stderr)
        for word in words:
            assert word in lines[0], (option, word, lines[0])
        assert not wav.with_suffix(".mid").exists()
    proc = blocked.transcribe(wav, "--model", SHIPPED_ONNX)  # the export is not given as the model
    assert proc.returncode == 2 and "not a checkpoint" in proc.stderr and "model.pt" in proc.stderr, proc.stderr
    for missing, option in (("music21", ("--format", "musicxml")), ("librosa", ("--format", "musicxml")),
                            ("librosa", ("--midi-tempo",))):
        proc = Blocked(tmp_path, (missing,)).transcribe(wav, *option)
        assert proc.returncode == 2 and f"needs {missing}" in proc.stderr, (option, proc.stderr)
        assert "transcribe-piano[score]" in proc.stderr and "Traceback" not in proc.stderr
        assert not wav.with_suffix(".mid").exists()
    # the other commands: training needs torch; evaluation runs the ONNX network but needs mir_eval and Hydra
    for command, missing, extra in (("train", "torch", "train"), ("evaluate", "mir_eval", "train"),
                                    ("render", "hydra", "render")):
        proc = Blocked(tmp_path, (missing,)).run("-c", f"from transcribe.commands import {command}; {command}()")
        assert proc.returncode == 2, proc.stderr
        assert f"needs {missing}" in proc.stderr and f"transcribe-piano[{extra}]" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ exports beside any checkpoint


def test_an_export_beside_a_checkpoint_serves_it_only_while_it_belongs_to_it(tmp_path, scale, monkeypatch):
    import torch

    from transcribe.checkpoint import Checkpoint, build_model, load_checkpoint, save_checkpoint
    from transcribe.infer import Transcriber
    from transcribe.runtime import export_paths, write_export

    monkeypatch.setenv("TRANSCRIBE_CACHE_DIR", str(tmp_path / "cache-here"))
    state = load_checkpoint()
    model = build_model(state)
    with torch.no_grad():
        model.onset_head.bias -= 2.5  # a different network: fewer onsets
    mine = tmp_path / "mine.pt"
    save_checkpoint(mine, model, state["config"])
    onnx_path, record_path = export_paths(mine)
    assert write_export(mine) == onnx_path and record_path.is_file()

    wav = tmp_path / "scale.wav"
    sf.write(wav, scale[0], SR)
    blocked = Blocked(tmp_path)
    proc = blocked.transcribe(wav, "--model", mine, "--format", "csv", "-o", tmp_path / "out")
    assert proc.returncode == 0 and blocked.attempts == [], proc.stderr
    got = read_csv(tmp_path / "out" / "scale.csv")
    expected = Transcriber.from_checkpoint(mine, backend="torch").transcribe_file(wav)
    shipped = Transcriber.from_checkpoint(backend="torch").transcribe_file(wav)
    assert 0 < len(got) == len(expected) != len(shipped)
    np.testing.assert_allclose(np.sort(got.onsets), np.sort(expected.onsets), atol=0.033)

    # the checkpoint replaced, its old export left beside it: not used (exported afresh)
    save_checkpoint(mine, build_model(state), state["config"])
    with pytest.warns(UserWarning, match="export of another checkpoint"):
        t = Transcriber.from_checkpoint(mine, backend="onnx", threads=1)
    assert len(t.transcribe_file(wav)) == len(shipped)
    # ... and without torch it is an error saying so, not the old network
    proc = blocked.transcribe(wav, "--model", mine, "--overwrite")
    assert proc.returncode == 2 and "not used" in proc.stderr and "no ONNX export" in proc.stderr

    # an export damaged after it was written is not used either
    write_export(mine)
    data = bytearray(onnx_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="does not match the SHA-256"):
        assert Checkpoint(mine).config == state["config"]  # read from the checkpoint instead
