"""Batch conversion under real operations (issue 13): signals with worker processes, kill -9,
concurrent runs on one folder, name collisions, damaged and hostile checkpoints, file modes,
output paths checked before work, truncated MP3s, number validation, streaming of long
recordings and the smaller cases (links, missing ffmpeg, glob characters). Real processes,
real signals, real files; the model shipped in the package."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transcribe.notefiles import read_midi

from .conftest import SR, random_notes, synth

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transcribe.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, **kwargs)


def start(*args: str, **kwargs) -> subprocess.Popen:
    """The CLI in its own session (so its process group is its pid), with normal signals."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "transcribe.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True, **kwargs)


def make_batch(folder: Path, n: int, seconds: float = 20.0, seed: int = 400) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(folder / f"f{i:02d}.wav", synth(random_notes(seed + i, seconds=seconds, n=30), seed=i), SR)
    return folder


def live_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are alive (not zombies)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def wait_gone(pgid: int, timeout: float = 30.0) -> list[int]:
    t0 = time.time()
    while live_in_group(pgid) and time.time() - t0 < timeout:
        time.sleep(0.1)
    return live_in_group(pgid)


def wait_for(folder: Path, count: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    t0 = time.time()
    while len(list(folder.glob("*.mid"))) < count:
        assert proc.poll() is None, "the batch finished before it could be interrupted"
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def report_sets(path: Path) -> dict[str, set[str]]:
    files = json.loads(path.read_text())["files"]
    return {s: {Path(f["audio"]).stem for f in files if f["status"] == s}
            for s in ("done", "skipped", "failed", "interrupted")}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".part", ".lock")))


# ---------------------------------------------------------------------------- 1. SIGTERM, kill -9

@pytest.mark.parametrize("jobs", [1, 2])
def test_sigterm_mid_batch_stops_everything_reports_and_resumes(tmp_path, jobs):
    src, out, report = make_batch(tmp_path / "in", 10), tmp_path / "out", tmp_path / "report.json"
    proc = start(src, "-o", out, "--jobs", jobs, "--report", report)
    wait_for(out, 2, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert wait_gone(proc.pid) == [], "worker or helper processes outlived the run"
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    first = {p.stem for p in out.glob("*.mid")}
    summary = json.loads(report.read_text())["summary"]
    sets = report_sets(report)
    assert summary["signal"] == "SIGTERM" and summary["stopped"] is True
    assert sets["done"] == first and 2 <= len(first) < 10  # nothing written after the report
    assert sets["done"] | sets["interrupted"] == {f"f{i:02d}" for i in range(10)}
    assert summary["interrupted"] == len(sets["interrupted"]) and summary["done"] == len(sets["done"])
    assert leftovers(out) == []
    for p in out.glob("*.mid"):
        read_midi(p)

    again = cli(src, "-o", out, "--jobs", 2, "--report", report)
    assert again.returncode == 0, again.stderr
    sets = report_sets(report)
    assert sets["skipped"] == first and sets["done"].isdisjoint(first)
    assert sets["done"] | sets["skipped"] == {f"f{i:02d}" for i in range(10)}
    assert sorted(p.name for p in out.iterdir()) == [f"f{i:02d}.mid" for i in range(10)]


def test_report_after_a_signal_keeps_the_count_of_interrupted_files(tmp_path, capsys):
    """The summary's "interrupted" is how many files were not finished; "stopped" says a signal
    stopped the run (the boolean once overwrote the count)."""
    import argparse

    from transcribe.cli import finish
    from transcribe.jobs import Job, Result

    jobs = [Job(tmp_path / f"f{i}.wav", [tmp_path / f"f{i}.mid"]) for i in range(5)]
    results = [Result(jobs[0].audio, "done", jobs[0].outputs)]
    report = tmp_path / "report.json"
    code = finish(results, jobs, argparse.Namespace(report=report), int(signal.SIGTERM), 1.0)
    assert code == 128 + signal.SIGTERM and "4 not finished" in capsys.readouterr().err
    summary = json.loads(report.read_text())["summary"]
    assert summary["interrupted"] == 4 and summary["done"] == 1 and summary["stopped"] is True
    assert summary["signal"] == "SIGTERM"


def test_outputs_renamed_into_place_just_before_a_signal_count_as_done(tmp_path):
    """The race the SIGTERM test met in CI: a file's last output lands, then the signal comes
    before its result is recorded. The report follows the disk: done, not interrupted; outputs
    that were there before the run, or incomplete sets, do not count. No clock is read: an output
    written with a modification time far in the past (a file server's skewed or coarse clock)
    still counts, an old one left as it was does not, an old one replaced does."""
    from transcribe.cli import finished_when_stopped, output_states
    from transcribe.jobs import Job, Result

    def job(name: str, *exts: str) -> Job:
        return Job(tmp_path / f"{name}.wav", [tmp_path / f"{name}.{e}" for e in exts])

    old, both, half, none, recorded, skewed, replaced = (
        job("old", "mid"), job("both", "mid", "csv"), job("half", "mid", "csv"), job("none", "mid"),
        job("recorded", "mid"), job("skewed", "mid"), job("replaced", "mid"))
    for name in ("old.mid", "replaced.mid"):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1e9, 1e9))
    before = output_states([old, both, half, none, recorded, skewed, replaced])
    for name in ("both.mid", "both.csv", "half.mid", "recorded.mid", "skewed.mid"):
        (tmp_path / name).write_bytes(b"x")
    os.utime(tmp_path / "skewed.mid", (1e9, 1e9))
    (tmp_path / "new.part").write_bytes(b"y")
    os.replace(tmp_path / "new.part", tmp_path / "replaced.mid")  # as atomic_write puts an output in place
    os.utime(tmp_path / "replaced.mid", (1e9, 1e9))
    results = [Result(recorded.audio, "done", recorded.outputs)]
    found = finished_when_stopped([old, both, half, none, recorded, skewed, replaced], results, before)
    assert [(r.audio.stem, r.status) for r in found] == [("both", "done"), ("skewed", "done"), ("replaced", "done")]


def test_kill_9_of_the_parent_leaves_no_live_workers(tmp_path):
    src, out = make_batch(tmp_path / "in", 8), tmp_path / "out"
    proc = start(src, "-o", out, "--jobs", 2)
    wait_for(out, 1, proc)
    assert len(live_in_group(proc.pid)) >= 3  # the parent, two workers (and the resource tracker)
    proc.kill()
    proc.communicate(timeout=60)
    assert wait_gone(proc.pid) == [], "workers outlived a parent killed with SIGKILL"
    done = {p.stem for p in out.glob("*.mid")}
    time.sleep(1.0)
    assert {p.stem for p in out.glob("*.mid")} == done  # and nobody writes any more
    again = cli(src, "-o", out, "--jobs", 2)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"f{i:02d}.mid" for i in range(8)]


# ---------------------------------------------------------------------------- 2. concurrent runs

def test_two_runs_on_one_folder_share_the_work(tmp_path):
    src, out = make_batch(tmp_path / "in", 10, seconds=15.0), tmp_path / "out"
    reports = [tmp_path / "r0.json", tmp_path / "r1.json"]
    procs = [start(src, "-o", out, "--jobs", 1, "--report", r) for r in reports]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    a, b = (report_sets(r) for r in reports)
    everything = {f"f{i:02d}" for i in range(10)}
    assert not a["failed"] and not b["failed"]
    assert a["done"].isdisjoint(b["done"])  # every file transcribed once
    assert a["done"] | b["done"] == everything  # none lost
    assert a["done"] | a["skipped"] == b["done"] | b["skipped"] == everything
    assert sorted(p.name for p in out.iterdir()) == [f"f{i:02d}.mid" for i in range(10)]
    for p in out.iterdir():
        read_midi(p)


# ---------------------------------------------------------------------------- 3. name collisions

def test_same_stem_different_extension_keeps_both(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.wav", synth(random_notes(1, seconds=4.0, n=6, low=40, high=60)), SR)
    sf.write(src / "a.flac", synth(random_notes(2, seconds=4.0, n=6, low=70, high=90)), SR)
    sf.write(src / "b.wav", synth(random_notes(3, seconds=4.0, n=6)), SR)
    out = tmp_path / "out"
    proc = cli(src, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.flac.mid", "a.wav.mid", "b.mid"]
    low, high = read_midi(out / "a.wav.mid"), read_midi(out / "a.flac.mid")
    # each from its own input (40-60 and 70-90): most of its notes in its input's range (a synthetic tone's upper
    # partial may add a false note an octave or two up)
    assert np.mean((low.pitches >= 40) & (low.pitches <= 60)) > 0.5 and np.mean(high.pitches >= 70) > 0.5
    assert np.median(low.pitches) < np.median(high.pitches)
    again = cli(src, "-o", out)
    assert again.returncode == 0 and "3 skipped" in again.stdout


def test_remaining_collisions_are_refused_before_any_work(tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        sf.write(tmp_path / d / "a.wav", synth(random_notes(4, seconds=3.0, n=4)), SR)
    out = tmp_path / "out"
    proc = cli(tmp_path / "x" / "a.wav", tmp_path / "y" / "a.wav", "-o", out)
    assert proc.returncode == 2
    assert str(out / "a.mid") in proc.stderr and str(tmp_path / "x" / "a.wav") in proc.stderr \
        and str(tmp_path / "y" / "a.wav") in proc.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------- 4. checkpoints

def damage_a_tensor(src: Path, dst: Path, n_bytes: int = 200) -> None:
    """Copy ``src`` and flip ``n_bytes`` in the middle of its largest tensor, leaving the zip
    structure intact (entries are stored uncompressed)."""
    shutil.copy(src, dst)
    with zipfile.ZipFile(dst) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(dst, "r+b") as f:
        f.seek(info.header_offset)
        header = f.read(30)
        data = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + \
            int.from_bytes(header[28:30], "little")
        f.seek(data + info.file_size // 2)
        chunk = f.read(n_bytes)
        f.seek(data + info.file_size // 2)
        f.write(bytes(b ^ 0x5A for b in chunk))


def test_damaged_checkpoint_is_a_clear_error_with_no_outputs(tmp_path):
    from transcribe.checkpoint import SHIPPED_CHECKPOINT

    bad = tmp_path / "damaged.pt"
    damage_a_tensor(SHIPPED_CHECKPOINT, bad)
    wav = tmp_path / "in" / "song.wav"
    wav.parent.mkdir()
    sf.write(wav, synth(random_notes(5, seconds=3.0, n=4)), SR)
    proc = cli(wav, "--model", bad, "-o", tmp_path / "out",
               env={**os.environ, "TRANSCRIBE_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 2, proc.stderr
    assert str(bad) in proc.stderr and "damaged" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() and not wav.with_suffix(".mid").exists()


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_crafted_pickle_does_not_run(tmp_path):
    import torch

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "transcribe-checkpoint-v1", "payload": _Payload(str(marker))}, evil)
    wav = tmp_path / "song.wav"
    sf.write(wav, synth(random_notes(6, seconds=3.0, n=4)), SR)
    proc = cli(wav, "--model", evil, env={**os.environ, "TRANSCRIBE_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 2 and str(evil) in proc.stderr, proc.stderr
    assert not marker.exists()
    assert not wav.with_suffix(".mid").exists()


def test_checkpoints_carry_a_digest_and_old_ones_load_with_a_warning(tmp_path):
    import torch

    from transcribe.checkpoint import DIGEST_KEY, SHIPPED_CHECKPOINT, load_checkpoint, tensor_digest

    shipped = torch.load(SHIPPED_CHECKPOINT, weights_only=True)
    assert shipped[DIGEST_KEY] == tensor_digest(shipped["model_state"], shipped["config"])
    old = tmp_path / "old.pt"
    torch.save({k: v for k, v in shipped.items() if k != DIGEST_KEY}, old)
    with pytest.warns(UserWarning, match="no digest"):
        state = load_checkpoint(old)
    assert all(torch.equal(state["model_state"][k], v) for k, v in shipped["model_state"].items())


def test_onnx_cache_entry_of_another_checkpoint_is_not_served(tmp_path, monkeypatch):
    import torch

    from transcribe.checkpoint import build_model, load_checkpoint, save_checkpoint
    from transcribe.infer import Transcriber
    from transcribe.runtime import onnx_cache_path

    monkeypatch.setenv("TRANSCRIBE_CACHE_DIR", str(tmp_path / "cache"))
    state = load_checkpoint()
    model = build_model(state)
    with torch.no_grad():
        model.onset_head.bias += 3.0
    changed = tmp_path / "changed.pt"
    save_checkpoint(changed, model, state["config"])
    shipped = Transcriber.from_checkpoint(backend="onnx")
    x = np.random.default_rng(0).normal(-4, 1, (1, 100, 264)).astype(np.float32)
    expected = Transcriber.from_checkpoint(changed, backend="onnx").runner(x)["onset"]
    # the shipped model's (intact) export, with its digest beside it, under the other's cache name
    a, b = onnx_cache_path(changed), shipped_path().with_suffix(".onnx")
    shutil.copy(b, a)
    Path(str(a) + ".sha256").write_text(hashlib.sha256(b.read_bytes()).hexdigest() + "\n")
    again = Transcriber.from_checkpoint(changed, backend="onnx").runner(x)["onset"]
    np.testing.assert_allclose(again, expected, atol=1e-6)
    assert np.abs(shipped.runner(x)["onset"] - expected).max() > 0.01


def test_unwritable_onnx_cache_is_said_once_not_silently_reexported(tmp_path, monkeypatch):
    """A checkpoint without an export beside it, and a cache that cannot be written (here a path
    under a file, which even root cannot create): the export runs from memory, and one warning
    names the cache and the way out; a second run in the process does not repeat it."""
    import warnings

    from transcribe.infer import Transcriber

    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("TRANSCRIBE_CACHE_DIR", str(tmp_path / "not-a-folder" / "cache"))
    mine = tmp_path / "mine.pt"
    shutil.copy(shipped_path(), mine)  # no mine.onnx beside it
    x = np.random.default_rng(0).normal(-4, 1, (1, 50, 264)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = Transcriber.from_checkpoint(mine, backend="onnx").runner(x)["onset"]
        second = Transcriber.from_checkpoint(mine, backend="onnx").runner(x)["onset"]
    said = [str(w.message) for w in caught if "ONNX export cache" in str(w.message)]
    assert len(said) == 1 and "not-a-folder" in said[0] and "TRANSCRIBE_CACHE_DIR" in said[0], said
    np.testing.assert_array_equal(first, second)


def shipped_path() -> Path:
    from transcribe.checkpoint import SHIPPED_CHECKPOINT

    return SHIPPED_CHECKPOINT


# ---------------------------------------------------------------------------- 5. file modes

@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_have_the_umask_mode(tmp_path, umask):
    wav = tmp_path / "song.wav"
    sf.write(wav, synth(random_notes(7, seconds=3.0, n=4)), SR)
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-m", "transcribe.cli", str(wav), "-o", str(out), "--format",
                           "mid,csv,json", "--plot", "--report", str(tmp_path / "report.json")],
                          capture_output=True, text=True, timeout=600, preexec_fn=lambda: os.umask(umask),
                          env={**os.environ, "TRANSCRIBE_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr
    files = [*out.iterdir(), tmp_path / "report.json"]
    assert len(files) == 5  # mid csv json png, the report
    assert not cache.exists()  # the shipped model runs from its shipped export: nothing cached
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


# ---------------------------------------------------------------------------- 6. output paths first

def _unprivileged_prefix() -> list[str] | None:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"] if setpriv else None


@pytest.mark.parametrize("case", ["o-is-a-file", "o-looks-like-a-file", "read-only-folder", "report-unwritable",
                                  "report-is-a-folder"])
def test_bad_output_paths_are_usage_errors_before_any_work(tmp_path, case):
    wav = tmp_path / "song.wav"
    sf.write(wav, synth(random_notes(8, seconds=3.0, n=4)), SR)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    prefix: list[str] = []
    args, named = {
        "o-is-a-file": (["-o", wav], wav),
        "o-looks-like-a-file": (["-o", tmp_path / "mine.mid"], tmp_path / "mine.mid"),
        "read-only-folder": (["-o", ro], ro),
        "report-unwritable": (["-o", tmp_path / "out", "--report", ro / "r.json"], ro),
        "report-is-a-folder": (["-o", tmp_path / "out", "--report", tmp_path], tmp_path),
    }[case]
    if case in ("read-only-folder", "report-unwritable"):
        prefix = _unprivileged_prefix()
        if prefix is None:
            pytest.skip("running as root without setpriv: cannot make a folder read-only")
    proc = subprocess.run([*prefix, sys.executable, "-m", "transcribe.cli", str(wav), *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("transcribe: error:") and str(named) in lines[0], proc.stderr
    assert str(wav) not in lines[0] or case == "o-is-a-file"  # the input is not blamed
    assert not list(tmp_path.rglob("*.mid")) and not (tmp_path / "out").exists() and not (tmp_path / "mine.mid").exists()


# ---------------------------------------------------------------------------- 7. truncated MP3

def test_truncated_mp3_fails_and_decoder_messages_name_the_file(tmp_path):
    y = synth(random_notes(9, seconds=20.0, n=20))
    full = tmp_path / "full.mp3"
    sf.write(full, y, SR, format="MP3")
    data = full.read_bytes()
    cut, nearly = tmp_path / "cut.mp3", tmp_path / "nearly.mp3"
    cut.write_bytes(data[: len(data) * 3 // 10])  # 30% of the file: about 6 of 20 s
    nearly.write_bytes(data[: len(data) * 95 // 100])  # 95%: decodable, but the decoder complains
    proc = cli(cut, nearly, full)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(cut) in errors[0] and "truncated" in errors[0], proc.stderr
    assert not cut.with_suffix(".mid").exists()
    assert nearly.with_suffix(".mid").is_file() and full.with_suffix(".mid").is_file()
    assert any(line.startswith(f"warning: {nearly}: decoder said:") for line in proc.stderr.splitlines())
    for line in proc.stderr.splitlines():  # nothing on stderr without a file name or from us
        assert line.startswith(("error: ", "warning: ", "transcribe: ", "  failed: ")), line


def test_mp3_with_a_large_id3_tag_is_judged_by_its_audio(tmp_path):
    """The announced length is read with mutagen (Xing/Info or VBRI header), the audio counted from
    the first frame: a 200 kB cover image does not hide a cut (refused before any audio is
    decoded, as for an untagged file), nor make a whole file look cut."""
    from mutagen.id3 import APIC, ID3

    from transcribe.audio import AudioError, AudioStream, load_audio

    full = tmp_path / "full.mp3"
    sf.write(full, synth(random_notes(9, seconds=20.0, n=20)), SR, format="MP3")
    audio = full.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(audio[: len(audio) * 6 // 10])
    for path in (full, cut):
        tags = ID3()
        tags.add(APIC(mime="image/png", type=3, desc="cover", data=os.urandom(200_000)))
        tags.save(path)
    assert full.stat().st_size > 200_000 + len(audio)
    assert len(load_audio(full, SR)) > 19 * SR
    with pytest.raises(AudioError, match="truncated: the file holds about"):
        next(iter(AudioStream(cut, SR)))


# ---------------------------------------------------------------------------- 8. numbers

@pytest.mark.parametrize("option,value", [("--onset-threshold", "1.5"), ("--onset-threshold", "nan"),
                                          ("--onset-threshold", "-1"), ("--frame-threshold", "0"),
                                          ("--frame-threshold", "inf"), ("--threads", "-2"), ("--threads", "0"),
                                          ("--jobs", "0")])
def test_invalid_numbers_are_usage_errors(tmp_path, option, value):
    wav = tmp_path / "song.wav"
    sf.write(wav, synth(random_notes(10, seconds=2.0, n=3)), SR)
    proc = cli(wav, f"{option}={value}")
    assert proc.returncode == 2 and option in proc.stderr and value in proc.stderr, proc.stderr
    assert not wav.with_suffix(".mid").exists()


def test_leading_dash_file_name_suggests_double_dash(tmp_path):
    sf.write(tmp_path / "-take.wav", synth(random_notes(11, seconds=2.0, n=3)), SR)
    proc = cli("-take.wav", cwd=tmp_path)
    assert proc.returncode == 2 and "-- -take.wav" in proc.stderr, proc.stderr
    ok = cli("--", "-take.wav", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "-take.mid").is_file()


# ---------------------------------------------------------------------------- 9. streaming

def test_streamed_transcription_equals_whole_file_inference(tmp_path, monkeypatch):
    """Decoding, CQT, network and note decoding a stretch at a time (small audio blocks, 3-s
    chunks with 2-s context, 44.1 kHz stereo) give the notes of whole-file inference."""
    import transcribe.audio as audio
    from transcribe.audio import load_audio
    from transcribe.infer import Transcriber

    notes = random_notes(12, seconds=30.0, n=44, low=21, high=108)
    y = synth(notes, sr=44100, seed=3)
    path = tmp_path / "long.flac"
    sf.write(path, np.stack([y, 0.5 * y], axis=1), 44100)
    t = Transcriber.from_checkpoint(chunk_seconds=3.0, context_seconds=2.0, batch_chunks=2)
    whole_act = t.activations(load_audio(path, t.sample_rate))
    whole = t.notes_from_activations(whole_act)
    monkeypatch.setattr(audio, "BLOCK_SECONDS", 0.7)
    res = t.transcribe_stream(path, keep_seconds=1e9)
    for k, v in whole_act.items():
        assert res.activations[k].shape == v.shape
        np.testing.assert_allclose(res.activations[k], v, atol=2e-3)
    assert len(whole) > 20 and len(res.notes) == len(whole)
    np.testing.assert_array_equal(res.notes.pitches, whole.pitches)
    np.testing.assert_allclose(res.notes.onsets, whole.onsets, atol=1.5 / t.features.frame_rate)
    np.testing.assert_allclose(res.notes.offsets, whole.offsets, atol=2.5 / t.features.frame_rate)
    assert res.audio_seconds == pytest.approx(len(y) / 44100, abs=1e-3)


@pytest.mark.parametrize("seed", range(6))
def test_streaming_decoder_equals_whole_decoder(seed):
    from transcribe.decode import DecodeConfig, decode_notes
    from transcribe.decode import StreamingDecoder

    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 600))
    onset = (rng.random((n, 88)) ** rng.uniform(2, 8)).astype(np.float32)
    frame = (rng.random((n, 88)) ** 0.5).astype(np.float32)
    velocity = rng.random((n, 88)).astype(np.float32)
    cfg = DecodeConfig(onset_threshold=rng.uniform(0.2, 0.8), frame_threshold=rng.uniform(0.2, 0.8),
                       min_note_frames=int(rng.integers(1, 4)), octave_suppression=[0.0, 0.5][seed % 2],
                       twelfth_suppression=[0.0, 0.3][seed % 3 == 0])
    whole = decode_notes(onset, frame, 31.25, cfg, velocity)
    dec, i = StreamingDecoder(cfg, 31.25), 0
    while i < n:
        k = int(rng.integers(1, 40))
        dec.feed(onset[i:i + k], frame[i:i + k], velocity[i:i + k])
        i += k
    streamed = dec.finish()
    assert len(whole) > 10
    for field in ("onsets", "offsets", "pitches", "velocities"):
        np.testing.assert_array_equal(getattr(streamed, field), getattr(whole, field))


def test_a_clipped_recording_is_transcribed_with_a_warning(tmp_path):
    """The CLI on the same music recorded at a safe level and 12 dB too loud (clipped, as a
    recorder set too hot writes it): both transcribed, only the second warned about, by name."""
    y = synth(random_notes(15, seconds=10.0, n=16), sr=44100)
    safe, hot = tmp_path / "safe.wav", tmp_path / "hot.wav"
    sf.write(safe, 0.9 * y / np.abs(y).max(), 44100, subtype="PCM_16")
    sf.write(hot, np.clip(4.0 * y / np.abs(y).max(), -1.0, 1.0), 44100, subtype="PCM_16")
    proc = cli(safe, hot)
    assert proc.returncode == 0, proc.stderr
    assert safe.with_suffix(".mid").is_file() and hot.with_suffix(".mid").is_file()
    warned = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 1 and warned[0].startswith(f"warning: {hot}: clipped: "), proc.stderr
    assert "of its samples sit flat at the peak" in warned[0]


def test_long_plot_is_capped_with_a_message(tmp_path):
    y = np.zeros(SR * 660, np.float32)  # 11 minutes, a few notes in the first and the last minute
    for k, notes in ((0, random_notes(13, seconds=30.0, n=10)), (630, random_notes(14, seconds=30.0, n=10))):
        part = synth(notes)
        y[k * SR: k * SR + len(part)] = part[: len(y) - k * SR]
    wav = tmp_path / "long.wav"
    sf.write(wav, y, SR)
    proc = cli(wav, "--plot")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {wav}: the plot shows the first 0:10:00 of 0:11:00" in proc.stderr
    from PIL import Image

    with Image.open(wav.with_suffix(".png")) as im:
        width, height = im.size
    assert height > 10 * 250 and width <= 1700  # ten one-minute rows, each readable
    assert read_midi(wav.with_suffix(".mid")).onsets.max() > 600  # the notes cover the whole file


# ---------------------------------------------------------------------------- 10. smaller cases

def test_links_inside_input_folders_are_listed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "real.wav", synth(random_notes(15, seconds=2.0, n=3)), SR)
    (src / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sf.write(elsewhere / "x.wav", synth(random_notes(16, seconds=2.0, n=3)), SR)
    (src / "linked").symlink_to(elsewhere, target_is_directory=True)
    report = tmp_path / "r.json"
    proc = cli(src, "-o", tmp_path / "out", "--report", report)
    assert proc.returncode == 1
    assert f"error: {src / 'gone.wav'}: dangling symbolic link" in proc.stderr
    assert f"warning: {src / 'linked'}: link to a folder, not followed" in proc.stderr
    sets = report_sets(report)
    assert sets["done"] == {"real"} and sets["failed"] == {"gone"} and sets["skipped"] == {"linked"}


def test_m4a_without_ffmpeg_says_to_install_it(tmp_path):
    fake = tmp_path / "song.m4a"
    fake.write_bytes(b"\x00\x00\x00\x18ftypM4A " + os.urandom(2000))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir)}
    proc = subprocess.run([sys.executable, "-m", "transcribe.cli", str(fake)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 1
    assert f"error: {fake}: cannot decode .m4a files without ffmpeg: install it" in proc.stderr, proc.stderr


@pytest.mark.parametrize("seed", range(4))
def test_midi_writer_writes_the_bytes_pretty_midi_writes(seed):
    """write_midi builds the file with numpy (a few bytes per note, not pretty_midi's objects,
    which took 350 MB for the notes of 10 hours): the same bytes as pretty_midi."""
    import io

    from transcribe.notefiles import midi_bytes, notes_to_pretty_midi
    from transcribe.notes import Notes

    rng = np.random.default_rng(seed)
    n = [0, 1, 300, 2000][seed]
    on = np.round(rng.uniform(0, [1, 10, 100, 36000][seed], n), 3)  # ties at one tick included
    notes = Notes(on, on + np.round(rng.uniform(0.01, 30, n), 3), rng.integers(21, 109, n),
                  rng.integers(1, 128, n)).sorted()
    buf = io.BytesIO()
    notes_to_pretty_midi(notes).write(buf)
    assert midi_bytes(notes) == buf.getvalue()
