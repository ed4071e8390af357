"""scripts/heldout_eval.py: shipping candidates compared file by file on whole held-out sets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "heldout_eval.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_compares_models_file_by_file_and_resumes(labelled_folder, tmp_path):
    """The shipped model against a copy that hears almost nothing (onset threshold 0.99, tuned on
    one file by its provenance): both score every file of the set, the deaf one lower on every file
    it differs on; the untuned comparison leaves the tuning file out; a second run reads the
    reports back, and a changed checkpoint is scored again."""
    from transcribe.checkpoint import Checkpoint, save_checkpoint

    import shutil

    (labelled_folder / "sub").mkdir()  # a second recording of the same name, as the two microphone positions are
    for suffix in (".wav", ".tsv"):
        shutil.copy(labelled_folder / f"piece1_train{suffix}", labelled_folder / "sub" / f"piece1_train{suffix}")
    shipped = Checkpoint()
    deaf = tmp_path / "deaf.pt"
    config = {**shipped.config, "decode": {**shipped.config["decode"], "onset_threshold": 0.99}}
    save_checkpoint(deaf, shipped.build_model(), config, provenance={"tuned_on": [str(labelled_folder / "piece0_train.wav")]})
    out = tmp_path / "eval"
    args = ("base=" + str(shipped.path), f"deaf={deaf}", "--out", str(out), "--set", f"tiny={labelled_folder}", "--sets", "tiny")
    proc = run(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reports = {n: json.loads((out / n / "tiny.json").read_text()) for n in ("base", "deaf")}
    assert [len(r["files"]) for r in reports.values()] == [5, 5]
    base = {r["file"]: r["note_f1"] for r in reports["base"]["files"]}
    low = {r["file"]: r["note_f1"] for r in reports["deaf"]["files"]}
    assert all(low[f] <= base[f] for f in base) and sum(low.values()) < sum(base.values())
    wins = sum(low[f] > base[f] for f in base)
    assert f"(better on {wins} of 5); untuned" in proc.stdout and f"of 4)" in proc.stdout
    assert "  5 files" in proc.stdout and "untuned 4:" in proc.stdout
    mean = reports["base"]["mean"]["note_f1"]
    assert abs(mean - sum(base.values()) / 5) < 1e-9 and f"{mean:.4f}" in proc.stdout

    again = run(*args)
    assert again.returncode == 0 and again.stdout.count("read back") == 2, again.stdout + again.stderr
    save_checkpoint(deaf, shipped.build_model(), {**config, "decode": {**config["decode"], "onset_threshold": 0.98}})
    third = run(*args)
    assert third.stdout.count("read back") == 1 and "deaf / tiny [5/5]" in third.stdout, third.stdout + third.stderr


def test_bad_arguments_are_named(tmp_path):
    proc = run(f"x={tmp_path / 'missing.pt'}", "--out", str(tmp_path))
    assert proc.returncode == 2 and "missing.pt: expected NAME=CHECKPOINT" in proc.stderr
    proc = run("x=transcribe/weights/model.pt", "--out", str(tmp_path), "--sets", "nowhere")
    assert proc.returncode == 2 and "unknown set(s): nowhere" in proc.stderr
