"""User-level tests: a short real training run, resume, evaluation, and the CLI on its checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transcribe.notefiles import read_midi

from .conftest import SR, require_dev, synth

TINY = ["model.conv_channels=[4,4,8]", "model.frontend_size=32", "model.lstm_hidden=16", "model.dropout=0.0",
        "train.batch_size=4", "train.crop_seconds=3", "train.learning_rate=3e-3", "train.log_every=10",
        "train.checkpoint_every=20", "train.num_workers=1", "train.num_threads=1",
        "augment.room.bank_size=3", "augment.room.n_rays=500",  # a small bank of rooms: seconds, not minutes
        "augment.room.cache_dir=${oc.env:TRANSCRIBE_CACHE_DIR}/rooms"]  # the session's temp cache (conftest), not .cache/


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


# The learning run: 300 steps without augmentation at a high learning rate (halved every 100
# steps), the onset loss weighted up: the tiny network learns the notes of the fixture in about
# 30 s of CPU. Validation also tries onset threshold 0.1: this early the onsets are right but weak.
LEARN = ["augment.p=0", "train.learning_rate=1e-2", "train.lr_decay_steps=100", "train.lr_decay_rate=0.5",
         "train.loss_weights.onset=4", "train.val_thresholds.onset=[0.1,0.2,0.3,0.5]"]
# What shows the notes were learned, on the held-out recording: a silent network, and the
# base-rate one (each key at its rate in the training labels: below every threshold), find no
# note (F1 0); one that fired every key of the fixture at each chord, right in time but not in
# pitch, would have precision 3/8. Measured at step 300 on this fixture: note F1 0.233, precision
# 0.778 (recall 0.137, onset threshold 0.1); on other draws of the chords and seeds, F1 0.30-0.48
# and precision 0.78-1.0. Early in the run (step 100) precision is near the 3/8 of timing alone.
LEARNED_NOTE_F1, LEARNED_PRECISION = 0.15, 0.6
KEYS = (48, 52, 55, 60, 64, 67, 72, 76)


def chords(seed: int, seconds: float = 6.0) -> "Notes":
    """Three of :data:`KEYS` struck together every 0.3 s, each held 0.15-0.25 s."""
    from transcribe.notes import Notes

    rng = np.random.default_rng(seed)
    starts = np.arange(0.2, seconds - 0.7, 0.3) + rng.uniform(-0.02, 0.02, len(np.arange(0.2, seconds - 0.7, 0.3)))
    onsets = np.repeat(starts, 3)
    pitches = np.concatenate([rng.choice(KEYS, 3, replace=False) for _ in starts])
    return Notes(onsets, onsets + rng.uniform(0.15, 0.25, len(onsets)), pitches,
                 rng.integers(40, 120, len(onsets))).sorted()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request) -> dict[str, Path]:
    """Train a tiny model for 300 steps on synthetic recordings, then resume it to 320 with another
    validation (module-scoped: done once)."""
    tmp = tmp_path_factory.mktemp("train")
    folder = request.getfixturevalue("labelled_folder_module")
    run_dir = tmp / "run"
    common = ["transcribe.train", f"data.root={folder}", "data.val_glob=*_val*", f"data.cache_dir={tmp / 'cache'}",
              "train.val_every=100", f"hydra.run.dir={run_dir}", *TINY, *LEARN]
    first = run(*common, "train.max_steps=300")
    second = run(*common, "train.max_steps=320", "train.val_thresholds.onset=[0.1,0.3]",  # validation changed
                 "train.lr_drops=[[310,0.1]]",  # and the learning rate lowered for its last 10 steps
                 "train.keep_validated=true")  # its validated step kept, resumable
    return {"folder": folder, "run_dir": run_dir, "first": first, "second": second}


@pytest.fixture(scope="module")
def labelled_folder_module(tmp_path_factory) -> Path:
    from .conftest import write_tsv

    folder = tmp_path_factory.mktemp("data")
    for i in range(4):
        notes = chords(i)
        name = f"piece{i}_{'val' if i == 3 else 'train'}"
        sf.write(folder / f"{name}.wav", synth(notes, seed=i), SR)
        write_tsv(notes, folder / f"{name}.tsv")
    return folder


def metrics_rows(run_dir: Path) -> list[dict]:
    """The rows of a training run's ``metrics.jsonl``."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_training_lowers_loss_and_writes_checkpoints(trained):
    rows = metrics_rows(trained["run_dir"])
    losses = [r["loss_total"] for r in rows if "loss_total" in r]
    assert len(losses) >= 4
    assert losses[-1] < 0.5 * losses[0], losses
    waits = [r["data_wait_fraction"] for r in rows if "loss_total" in r]
    assert all(0.0 <= w <= 1.0 for w in waits), waits  # the share of time spent waiting for batches
    val = [r for r in rows if "val_note_f1" in r]
    assert [r["step"] for r in val] == [100, 200, 300, 320]  # validation ran on the held-out file
    # ... and also decoded with the best pair of train.val_thresholds, which best.pt is chosen by
    grids = {300: [0.1, 0.2, 0.3, 0.5], 320: [0.1, 0.3]}  # the LEARN run's, then the resumed run's
    for r in val[2:]:
        assert r["val_tuned_onset_threshold"] in grids[r["step"]] + [0.5]  # or conf/decode's
        assert r["val_tuned_frame_threshold"] in [0.2, 0.3, 0.4, 0.5]
    ckpts = trained["run_dir"] / "checkpoints"
    assert (ckpts / "last.pt").is_file() and (ckpts / "best.pt").is_file()
    assert (trained["run_dir"] / ".hydra" / "config.yaml").is_file()


def held_out_note_scores(checkpoint: Path, folder: Path, onset: float, frame: float) -> dict[str, float]:
    """Note scores of ``checkpoint`` on the held-out recording, decoded at the given thresholds
    (transcribe-eval's scoring, in this process)."""
    from transcribe.data.pairs import find_pairs
    from transcribe.evaluate import evaluate_pairs
    from transcribe.infer import Transcriber

    model = Transcriber.from_checkpoint(checkpoint, backend="torch",
                                        decode={"onset_threshold": onset, "frame_threshold": frame})
    return evaluate_pairs(model, find_pairs(folder, "*_val*"), progress=lambda _: None)["mean"]


def test_training_learns_the_notes_a_silent_or_base_rate_network_cannot(trained, tmp_path):
    """The learning check: after its 300 steps, and 20 more, the run's validation finds the held-out
    notes (note F1 and precision above the floors); scored again here the last network does as
    well, and the same network zeroed, or set to the base rate of the training labels, does not."""
    import torch

    from transcribe.checkpoint import Checkpoint, save_checkpoint
    from transcribe.data.pairs import find_pairs
    from transcribe.notefiles import read_labels
    from transcribe.targets import notes_to_rolls

    val = {r["step"]: r for r in metrics_rows(trained["run_dir"]) if "val_note_f1" in r}
    for step in (300, 320):
        assert val[step]["val_tuned_note_f1"] >= LEARNED_NOTE_F1, val[step]
        assert val[step]["val_tuned_note_precision"] >= LEARNED_PRECISION, val[step]
    at = (val[320]["val_tuned_onset_threshold"], val[320]["val_tuned_frame_threshold"])
    ckpt = Checkpoint(trained["run_dir"] / "checkpoints" / "last.pt")
    assert ckpt.state["step"] == 320
    learned = held_out_note_scores(ckpt.path, trained["folder"], *at)
    assert learned["note_f1"] == pytest.approx(val[320]["val_tuned_note_f1"], abs=0.02), (learned, val[320])
    assert learned["note_f1"] >= LEARNED_NOTE_F1 and learned["note_precision"] >= LEARNED_PRECISION, learned

    zeroed, base_rate = ckpt.build_model(), ckpt.build_model()
    with torch.no_grad():
        for net in (zeroed, base_rate):
            for p in net.parameters():
                p.zero_()
        # the base rate: each key's share of onset / offset / frame-on in the training labels, as bias
        from transcribe.checkpoint import typed_configs

        features, _ = typed_configs(ckpt.config)
        rolls = [notes_to_rolls(read_labels(label), int(read_labels(label).end * features.frame_rate) + 20,
                                features.frame_rate) for _, label in find_pairs(trained["folder"], "*_train*")]
        for head in ("onset", "offset", "frame"):
            rate = np.concatenate([r[head] for r in rolls]).mean(axis=0).clip(1e-4, 1 - 1e-4)
            getattr(base_rate, f"{head}_head").bias.copy_(torch.from_numpy(np.log(rate / (1 - rate))))
    for name, net in (("zeroed", zeroed), ("base_rate", base_rate)):
        path = tmp_path / f"{name}.pt"
        save_checkpoint(path, net.eval(), ckpt.config)
        scores = held_out_note_scores(path, trained["folder"], *at)
        assert scores["note_f1"] < LEARNED_NOTE_F1 or scores["note_precision"] < LEARNED_PRECISION, (name, scores)


def test_restart_resumes_from_last_checkpoint(trained):
    import torch

    log = (trained["run_dir"] / "train.log").read_text()
    assert "resumed from" in log and "at step 300" in log
    state = torch.load(trained["run_dir"] / "checkpoints" / "last.pt", weights_only=False)
    assert state["step"] == 320
    assert state["config"]["model"]["lstm_hidden"] == 16  # the config travels with the weights
    # train.lr_drops: 1e-2 halved at 100, 200 and 300 steps is 1.25e-3; a tenth of it from step 310,
    # in the log, the metrics and the optimizer state the checkpoint keeps for the next resume
    assert "step 310: learning rate lowered to 0.000125" in log
    assert state["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(1.25e-4)
    assert [r["lr"] for r in metrics_rows(trained["run_dir"]) if r.get("step") in (300, 320) and "lr" in r] == \
        pytest.approx([1.25e-3, 1.25e-4])
    # the second run validates differently (another threshold grid): the first run's best score
    # is forgotten, so best.pt is the second run's, whatever the scores
    assert log.count("validation changed since best.pt was chosen") == 1
    assert torch.load(trained["run_dir"] / "checkpoints" / "best.pt", weights_only=False)["step"] == 320
    # train.keep_validated (the second run only): its validated step kept as a resumable checkpoint
    ckpts = trained["run_dir"] / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step*.pt")) == ["step320.pt"]
    kept = torch.load(ckpts / "step320.pt", weights_only=False)
    assert kept["step"] == 320 and kept["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(1.25e-4)


def test_restart_with_other_model_config_is_refused(trained, tmp_path):
    proc = run("transcribe.train", f"data.root={trained['folder']}", "data.val_glob=*_val*",
               f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={trained['run_dir']}", *TINY, "model.lstm_hidden=8", "train.max_steps=330",
               check=False)
    assert proc.returncode != 0
    assert "different model config" in proc.stderr


def test_fine_tuning_starts_from_another_runs_weights(trained, tmp_path):
    import torch

    init = trained["run_dir"] / "checkpoints" / "last.pt"
    common = ["transcribe.train", f"data.root={trained['folder']}", "data.val_glob=*_val*",
              f"data.cache_dir={tmp_path / 'cache'}", f"train.init_from={init}", *TINY]
    run(*common, f"hydra.run.dir={tmp_path / 'tuned'}", "train.max_steps=1", "train.learning_rate=0")
    assert "initialised the weights from" in (tmp_path / "tuned" / "train.log").read_text()
    start = torch.load(init, weights_only=False)["model_state"]
    tuned = torch.load(tmp_path / "tuned" / "checkpoints" / "last.pt", weights_only=False)
    assert tuned["step"] == 1
    params = [k for k in start if "running" not in k and "num_batches" not in k]
    assert params and all(torch.equal(tuned["model_state"][k], start[k]) for k in params)  # lr 0: unchanged
    proc = run(*common, f"hydra.run.dir={tmp_path / 'other'}", "train.max_steps=1", "model.lstm_hidden=8", check=False)
    assert proc.returncode != 0 and "different model config" in proc.stderr


def test_cli_uses_trained_checkpoint(trained, tmp_path):
    ckpt = trained["run_dir"] / "checkpoints" / "last.pt"
    audio = trained["folder"] / "piece3_val.wav"
    proc = run("transcribe.cli", str(audio), "-o", str(tmp_path), "--model", str(ckpt), "--format", "mid,json")
    assert (tmp_path / "piece3_val.mid").is_file() and (tmp_path / "piece3_val.json").is_file()
    read_midi(tmp_path / "piece3_val.mid")  # a valid MIDI file
    assert "1 done" in proc.stdout


def test_eval_writes_json_report(trained, tmp_path):
    """transcribe-eval scores what training's validation scored: on the held-out file, the last
    checkpoint gets the note F1 its run logged for it at that step."""
    ckpt = trained["run_dir"] / "checkpoints" / "last.pt"
    out = tmp_path / "scores.json"
    proc = run("transcribe.evaluate", f"data.root={trained['folder']}", "split=all", f"checkpoint={ckpt}",
               f"output_json={out}", f"hydra.run.dir={tmp_path / 'evalrun'}")
    report = json.loads(out.read_text())
    assert len(report["files"]) == 4
    for k in ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1"):
        assert k in report["mean"] and k in proc.stdout
    val = {Path(f["file"]).stem: f for f in report["files"]}["piece3_val"]
    logged = [r for r in metrics_rows(trained["run_dir"]) if "val_note_f1" in r][-1]
    assert logged["step"] == 320
    for k in ("note_f1", "frame_f1"):
        assert val[k] == pytest.approx(logged[f"val_{k}"], abs=0.02), (k, val, logged)


def test_eval_scores_a_known_pair(tmp_path):
    """transcribe-eval on a recording whose labels are exactly what the model transcribes from it
    scores 1.0; the same labels 80 ms late (past the 50 ms onset tolerance) score no note."""
    from transcribe.infer import Transcriber
    from transcribe.notes import Notes

    from .conftest import random_notes, write_tsv

    notes = random_notes(5, seconds=5.0, n=10)
    for name in ("exact", "late"):
        (tmp_path / name).mkdir()
        sf.write(tmp_path / name / "clip.wav", synth(notes, seed=5), SR)
    est = Transcriber.from_checkpoint(decode={"pedal": True}).transcribe_file(tmp_path / "exact" / "clip.wav")
    assert len(est) >= 8  # the pair is worth scoring: the shipped model hears most of the 10 tones
    write_tsv(est, tmp_path / "exact" / "clip.tsv")
    write_tsv(Notes(est.onsets + 0.08, est.offsets + 0.08, est.pitches, est.velocities), tmp_path / "late" / "clip.tsv")
    out = tmp_path / "scores.json"
    run("transcribe.evaluate", f"data.root={tmp_path}", "split=all", f"output_json={out}",
        f"hydra.run.dir={tmp_path / 'evalrun'}")
    rows = {Path(f["file"]).parent.name: f for f in json.loads(out.read_text())["files"]}
    exact, late = rows["exact"], rows["late"]
    assert exact["n_ref"] == exact["n_est"] == len(est)
    for k in ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1"):
        assert exact[k] == pytest.approx(1.0), (k, exact)
    assert late["note_f1"] == late["note_offset_f1"] == late["note_offset_velocity_f1"] == 0.0, late
    assert 0.5 < late["frame_f1"] < 0.95  # the frames still overlap, less the 80 ms at each end


@pytest.mark.parametrize("launcher", [
    pytest.param([], id="basic"),  # Hydra's basic launcher: one run after the other
    pytest.param(["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"], id="joblib"),
])
def test_multirun_sweep_leaves_one_run_folder_per_value(labelled_folder_module, tmp_path, launcher):
    if launcher:
        require_dev("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    run("transcribe.train", "-m", *launcher, f"data.root={labelled_folder_module}", "data.val_glob=*_val*",
        f"data.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}", *TINY, "train.max_steps=3",
        "model.lstm_hidden=8,16")
    if launcher:  # the sweep really went through the joblib launcher
        assert "JoblibLauncher" in (sweep / "multirun.yaml").read_text()
    # augmented runs: their room bank is in the session's temp cache (TINY), not the checkout's .cache/
    assert list((Path(os.environ["TRANSCRIBE_CACHE_DIR"]) / "rooms").glob("rooms-*.npz"))
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len([r for r in runs if "model.lstm_hidden=" in r]) == 2, runs
    for r in runs:
        if "model.lstm_hidden=" in r:
            assert (sweep / r / "checkpoints" / "last.pt").is_file()
