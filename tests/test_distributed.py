"""Distributed data-parallel training under torchrun (gloo on CPU), on a miniature MAESTRO
folder, and the cluster launchers (submitit: SLURM config, local two-task DDP job)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transcribe.notefiles import read_midi

from .conftest import require_dev, write_maestro
from .test_end_to_end import TINY

SPLITS = {"pedal_piece": "train", "second": "train", "third": "train", "held_out": "validation", "exam": "test"}
FEW_STEPS = [*TINY, "train.batch_size=2", "train.crop_seconds=2", "train.log_every=2", "train.checkpoint_every=3",
             "train.val_every=6", "train.device=cpu", "train.debug_rank_dump=true"]


def run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def torchrun() -> list[str]:
    exe = Path(sys.executable).parent / "torchrun"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]


def rank_dumps(run_dir: Path) -> list[dict]:
    return [torch.load(run_dir / "debug" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def assert_replicas_identical(run_dir: Path, step: int) -> dict:
    """Both ranks end with the same weights (parameters and BatchNorm statistics), equal to the
    checkpoint, after drawing different crops."""
    r0, r1 = rank_dumps(run_dir)
    assert r0["world_size"] == r1["world_size"] == 2 and r0["step"] == r1["step"] == step
    assert r0["batches_sha256"] != r1["batches_sha256"]  # each rank trained on its own crops
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["step"] == step
    assert ckpt["model_state"].keys() == r0["model_state"].keys() == r1["model_state"].keys()
    for k, v in ckpt["model_state"].items():
        assert torch.equal(r0["model_state"][k], r1["model_state"][k]), f"ranks differ in {k}"
        assert torch.equal(v, r0["model_state"][k]), f"checkpoint differs from the replicas in {k}"
    return ckpt


@pytest.fixture(scope="module")
def maestro(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("maestro-v3.0.0")
    return root, write_maestro(root, SPLITS)


def test_torchrun_two_cpu_ranks_train_identical_replicas_and_resume(maestro, tmp_path):
    root, files = maestro
    run_dir = tmp_path / "run"
    cmd = [*torchrun(), "--standalone", "--nproc_per_node=2", "-m", "transcribe.train", "data=maestro",
           f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}", *FEW_STEPS]
    run([*cmd, "train.max_steps=6"])
    ckpt = assert_replicas_identical(run_dir, 6)
    assert ckpt["world_size"] == 2
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss_total" in r] == [2, 4, 6]  # one writer: rank 0
    assert [r["step"] for r in rows if "val_note_f1" in r] == [6]  # rank 0 validated on held_out
    assert (run_dir / "checkpoints" / "best.pt").is_file()

    run([*cmd, "train.max_steps=8"])  # the same command again resumes
    assert_replicas_identical(run_dir, 8)
    log = (run_dir / "train.log").read_text()
    assert log.count("resumed from") == 1 and "at step 6" in log

    wav = files["exam"][0]
    out = tmp_path / "out"
    run([sys.executable, "-m", "transcribe.cli", str(wav), "-o", str(out), "--model",
         str(run_dir / "checkpoints" / "last.pt")])
    read_midi(out / f"{wav.stem}.mid")  # the checkpoint loads and transcribes


def test_other_ranks_leave_hydra_output_to_rank_0(monkeypatch):
    from transcribe.distributed import quiet_hydra_on_other_ranks as _quiet_hydra_on_other_ranks

    argv = ["transcribe-train", "run_name=x"]
    monkeypatch.setenv("RANK", "0")
    assert _quiet_hydra_on_other_ranks(argv) == argv
    monkeypatch.setenv("RANK", "1")
    assert _quiet_hydra_on_other_ranks(argv) == [*argv, "hydra.output_subdir=null", "hydra/job_logging=stdout"]


def test_slurm_launcher_config_composes():
    require_dev("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from transcribe.config import conf_dir

    with initialize_config_dir(conf_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                                          "hydra.launcher.tasks_per_node=4", "hydra.launcher.gpus_per_node=4"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.tasks_per_node, launcher.gpus_per_node) == ("gpu", 4, 4)
    assert launcher.max_num_timeout > 0  # preempted or timed-out jobs are requeued and resume
    assert type(instantiate(launcher)).__name__ == "SlurmLauncher"  # builds; nothing is submitted


def test_submitit_job_with_two_tasks_trains_data_parallel(maestro, tmp_path):
    """The path a SLURM sweep takes with tasks_per_node=2, run by submitit's local executor."""
    require_dev("hydra_plugins.hydra_submitit_launcher")
    root, _ = maestro
    sweep = tmp_path / "sweep"
    run([sys.executable, "-m", "transcribe.train", "-m", "hydra/launcher=submitit_local",
         "hydra.launcher.tasks_per_node=2", "hydra.launcher.timeout_min=5", "data=maestro", f"data.root={root}",
         f"data.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}", *FEW_STEPS, "train.max_steps=4",
         "model.lstm_hidden=8"])
    assert "submitit_launcher.LocalLauncher" in (sweep / "multirun.yaml").read_text()
    runs = [p for p in sweep.iterdir() if p.is_dir() and "model.lstm_hidden=8" in p.name]
    assert len(runs) == 1, list(sweep.iterdir())
    assert_replicas_identical(runs[0], 4)
