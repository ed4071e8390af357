"""Hydra entry point for training: ``transcribe-train [overrides]`` or ``python -m transcribe.train``.

Writes ``checkpoints/last.pt`` (resumable), ``checkpoints/best.pt`` (best validation note F1),
``metrics.jsonl`` and Hydra's log under the run folder (``runs/<run_name>``). Running the same
command again resumes from ``last.pt``.

Started by ``torchrun --nproc_per_node=N -m transcribe.train ...`` (one or more nodes), it trains
with DistributedDataParallel: NCCL on GPUs, gloo on CPUs; each rank draws its own random crops
(``train.batch_size`` per rank), gradients are averaged across ranks, and only rank 0 validates
and writes checkpoints, metrics and logs while the others wait.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoint import config_dict, load_checkpoint, save_checkpoint
from .config import conf_dir
from .data.cache import FeatureCache
from .data.dataset import BatchStream, CropDataset
from .data.pairs import dataset_splits
from .decode import DecodeConfig
from .features import FeatureConfig
from .infer import Transcriber
from .metrics import mean_metrics, transcription_metrics
from .model import ModelConfig, OnsetsAndFrames

log = logging.getLogger("transcribe.train")


def compute_loss(pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], weights: dict) -> dict[str, torch.Tensor]:
    """Binary cross-entropy for onset, offset and frame; squared error of velocity at onsets."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    losses = {k: bce(pred[k], batch[k]) for k in ("onset", "offset", "frame")}
    mask = batch["onset"]
    losses["velocity"] = (mask * (pred["velocity"] - batch["velocity"]) ** 2).sum() / mask.sum().clamp(min=1)
    losses["total"] = sum(weights[k] * losses[k] for k in ("onset", "offset", "frame", "velocity"))
    return losses


def validate(transcriber: Transcriber, data: CropDataset, max_files: int | None) -> dict[str, float]:
    """Transcribe whole validation recordings (from cached features) and score them."""
    from .infer import run_network

    rows = []
    transcriber.model.eval()
    for rec in data.recordings[:max_files]:
        feats = np.asarray(rec.features, dtype=np.float32)
        act = run_network(transcriber.model, feats, transcriber.chunk_frames, transcriber.context_frames)
        rows.append(transcription_metrics(rec.notes, transcriber.notes_from_activations(act)))
    transcriber.model.train()
    return mean_metrics(rows)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (world_size 1: a plain single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls) -> "Dist":
        """Read the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE)."""
        env = os.environ
        world = int(env.get("WORLD_SIZE", "1"))
        return cls(int(env.get("RANK", "0")), world, int(env.get("LOCAL_RANK", "0")),
                   int(env.get("LOCAL_WORLD_SIZE", str(world))))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.enabled:
            nccl = torch.distributed.get_backend() == "nccl"
            torch.distributed.barrier(device_ids=[torch.cuda.current_device()] if nccl else None)

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if not self.enabled:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


def _export_submitit_ranks() -> None:
    """In a job of several tasks started by submitit (hydra-submitit-launcher with
    ``tasks_per_node`` > 1), set the variables torchrun would set, so each task is one rank."""
    if "RANK" in os.environ or "SUBMITIT_EXECUTOR" not in os.environ:
        return
    import submitit

    if submitit.JobEnvironment().num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def setup_distributed(t: DictConfig, dist: Dist) -> torch.device:
    """The device of this rank; under torchrun also joins the process group (NCCL on GPUs,
    gloo on CPUs, or ``train.backend``)."""
    device = _device(t.device)
    if not dist.enabled:
        return device
    if device.type == "cuda":  # one GPU per local rank (or the one GPU a scheduler left visible)
        device = torch.device("cuda", dist.local_rank if torch.cuda.device_count() > 1 else 0)
        torch.cuda.set_device(device)
    backend = t.get("backend", "auto")
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend, timeout=timedelta(minutes=float(t.get("dist_timeout_minutes", 120))))
    return device


def fill_cache_shared(cache: FeatureCache, audios: list[Path], workers: int, dist: Dist) -> None:
    """Compute the missing cached features, the work shared among the ranks: first split over
    all ranks (a cache folder shared by the nodes), then whatever a node still lacks split over
    its local ranks (a cache folder per node)."""
    if not dist.enabled:
        return
    cache.fill(cache.missing(audios)[dist.rank :: dist.world_size], workers)
    dist.barrier()
    cache.fill(cache.missing(audios)[dist.local_rank :: dist.local_world_size], workers)
    dist.barrier()


def average_buffers(model: torch.nn.Module, dist: Dist) -> None:
    """Average the floating-point buffers (BatchNorm running mean and variance) over the ranks,
    so every replica, and the checkpoint, holds statistics of all ranks' batches."""
    if not dist.enabled:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            torch.distributed.all_reduce(buf)
            buf.div_(dist.world_size)


def _autocast(precision: str, device: torch.device):
    if precision not in ("fp32", "bf16"):
        raise SystemExit(f"transcribe-train: train.precision must be fp32 or bf16, not {precision!r}")
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if precision == "bf16":
        log.warning("train.precision=bf16 applies to CUDA only; training on %s in fp32", device)
    return contextlib.nullcontext()


def _check_same_config(state: dict, stored_config: dict, path: Path) -> None:
    for part in ("features", "model"):
        if state["config"][part] != stored_config[part]:
            raise SystemExit(
                f"transcribe-train: {path} was trained with a different {part} config "
                f"({state['config'][part]}); use another run_name, delete that folder or match the config")


def _rank_seed(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's tensors (names and exact values), for comparing replicas."""
    h = hashlib.sha256()
    for k, v in state.items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Train per ``cfg``, writing into ``run_dir``; returns the last validation metrics.

    Under torchrun this is one rank of a DistributedDataParallel job (see the module docstring).
    """
    _export_submitit_ranks()
    dist = Dist.from_env()
    t = cfg.train
    if t.num_threads:
        torch.set_num_threads(int(t.num_threads))
    device = setup_distributed(t, dist)
    try:
        return _train(cfg, run_dir, dist, device)
    finally:
        if dist.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(cfg: DictConfig, run_dir: Path, dist: Dist, device: torch.device) -> dict[str, float]:
    t = cfg.train
    if not dist.is_main:
        log.setLevel(logging.WARNING)  # rank 0 reports; the others only warn
    run_dir = Path(dist.broadcast(str(run_dir)))  # rank 0's run folder, whatever the others' Hydra chose
    torch.manual_seed(t.seed)
    features = FeatureConfig.from_dict(cfg.features)
    model_cfg = ModelConfig.from_dict(cfg.model)
    decode = DecodeConfig.from_dict(cfg.decode)
    stored_config = config_dict(features, model_cfg, decode)

    try:
        train_pairs, val_pairs = dataset_splits(cfg.data)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"transcribe-train: {err}") from err
    if not train_pairs and not val_pairs:
        raise SystemExit(f"transcribe-train: no audio files with labels under {cfg.data.root}")
    if not train_pairs:
        raise SystemExit(f"transcribe-train: every recording under {cfg.data.root} is in the validation split; "
                         "nothing to train on")
    cache = FeatureCache(cfg.data.cache_dir, features, mmap=cfg.data.get("mmap", True))
    log.info("data: %d training and %d validation recordings under %s", len(train_pairs), len(val_pairs), cfg.data.root)
    t0 = time.time()
    fill_cache_shared(cache, [a for a, _ in train_pairs + val_pairs], t.num_workers, dist)
    train_set = CropDataset(train_pairs, features, cache, t.num_workers)
    val_set = CropDataset(val_pairs, features, cache, t.num_workers) if val_pairs and dist.is_main else None
    log.info("features ready in %.0f s: %.2f h training audio, %.2f h validation audio", time.time() - t0,
             train_set.seconds / 3600, (val_set.seconds if val_set else 0) / 3600)

    model = OnsetsAndFrames(features.n_bins, model_cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=t.lr_decay_steps, gamma=t.lr_decay_rate)
    step, best_f1 = 0, -1.0
    if dist.enabled:
        torch.manual_seed(_rank_seed(t.seed, dist.rank))  # dropout masks differ per rank; weights come from rank 0
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.pt"
    if dist.enabled:  # rank 0 reads the checkpoint and sends it: other nodes need not see run_dir
        state = dist.broadcast(load_checkpoint(last) if dist.is_main and last.exists() else None)
    else:
        state = load_checkpoint(last, map_location=str(device)) if last.exists() else None
    if state is not None:
        _check_same_config(state, stored_config, last)
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        scheduler.load_state_dict(state["scheduler_state"])
        step, best_f1 = state["step"], state.get("best_f1", -1.0)
        log.info("resumed from %s at step %d", last, step)
        del state
    elif t.get("init_from"):  # a new run that starts from another run's weights (fine-tuning)
        init = Path(hydra.utils.to_absolute_path(str(t.init_from)))
        if not init.is_file():
            raise SystemExit(f"transcribe-train: train.init_from={t.init_from}: no such checkpoint")
        state = dist.broadcast(load_checkpoint(init, map_location="cpu") if dist.is_main else None)
        _check_same_config(state, stored_config, init)
        model.load_state_dict(state["model_state"])
        log.info("initialised the weights from %s (step %s of its run)", init, state.get("step"))
        del state

    net = model
    if dist.enabled:
        # Buffers (BatchNorm running statistics) are not used in training mode; each rank keeps its
        # own and they are averaged before validation and checkpoints (average_buffers).
        ddp = torch.nn.parallel.DistributedDataParallel
        no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters
                          else {"broadcast_buffers": False})  # the name before torch 2.13
        net = ddp(model, device_ids=[device.index] if device.type == "cuda" else None, **no_buffer_sync)

    def checkpoint(path: Path, **extra) -> None:
        save_checkpoint(path, model, stored_config, step=step, best_f1=best_f1, **extra)

    crop_frames = int(round(t.crop_seconds * features.frame_rate))
    weights = OmegaConf.to_container(t.loss_weights)
    metrics_file = run_dir / "metrics.jsonl"
    transcriber = Transcriber(model, features, decode)
    autocast = _autocast(t.get("precision", "fp32"), device)
    has_val = bool(val_pairs)
    batches_digest = hashlib.sha256()
    val_metrics: dict[str, float] = {}
    model.train()
    running: dict[str, float] = {}
    t_start, step_start = time.time(), step
    aug = cfg.get("augment") if cfg.get("augment") is not None and float(cfg.augment.get("p", 0)) > 0 else None
    context = int(round(float(t.get("augment_context_s", 1.0)) * features.frame_rate))
    stream = BatchStream(train_set, t.batch_size, crop_frames, t.seed, dist.rank, aug, context)
    workers = int(t.get("loader_workers", 0))
    if aug is not None:
        log.info("augmenting %.0f%% of the crops (conf/augment), %d loader process(es)", 100 * float(aug.p), workers)
    for batch in stream.batches(step, t.max_steps, workers):
        if t.get("debug_rank_dump"):
            batches_digest.update(batch["features"].numpy().tobytes())
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast:
            pred = net(batch["features"])
        losses = compute_loss({k: v.float() for k, v in pred.items()}, batch, weights)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        losses = {k: v.detach() for k, v in losses.items()}
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + v.item()
        if step % t.log_every == 0 or step == t.max_steps:
            if dist.enabled:  # the mean over ranks
                names = sorted(running)
                sums = torch.tensor([running[k] for k in names], dtype=torch.float64, device=device)
                torch.distributed.all_reduce(sums)
                running = {k: float(v) / dist.world_size for k, v in zip(names, sums.tolist())}
            n = t.log_every if step % t.log_every == 0 else step % t.log_every
            sec_per_step = (time.time() - t_start) / max(step - step_start, 1)
            row = {"step": step, **{f"loss_{k}": v / n for k, v in running.items()},
                   "lr": scheduler.get_last_lr()[0], "sec_per_step": sec_per_step,
                   "frames_per_sec": t.batch_size * crop_frames * dist.world_size / sec_per_step}
            if dist.is_main:
                log.info("step %d  loss %.4f (onset %.4f frame %.4f offset %.4f velocity %.4f)  %.2f s/step  "
                         "%.0f frames/s", step, row["loss_total"], row["loss_onset"], row["loss_frame"],
                         row["loss_offset"], row["loss_velocity"], row["sec_per_step"], row["frames_per_sec"])
                with open(metrics_file, "a") as f:
                    f.write(json.dumps(row) + "\n")
            running = {}
        validating = has_val and (step % t.val_every == 0 or step == t.max_steps)
        checkpointing = step % t.checkpoint_every == 0 or step == t.max_steps
        if validating or checkpointing:
            average_buffers(model, dist)
        if validating and val_set is not None:
            transcriber.model = copy.deepcopy(model).cpu() if device.type != "cpu" else model
            val_metrics = validate(transcriber, val_set, t.val_max_files)
            transcriber.model = model
            log.info("validation at step %d: note F1 %.4f  note+offset F1 %.4f  note+offset+velocity F1 %.4f  frame F1 %.4f",
                     step, val_metrics["note_f1"], val_metrics["note_offset_f1"],
                     val_metrics["note_offset_velocity_f1"], val_metrics["frame_f1"])
            with open(metrics_file, "a") as f:
                f.write(json.dumps({"step": step, **{f"val_{k}": v for k, v in val_metrics.items()}}) + "\n")
            if val_metrics["note_f1"] > best_f1:
                best_f1 = val_metrics["note_f1"]
                checkpoint(ckpt_dir / "best.pt", val_metrics=val_metrics)
        if checkpointing and dist.is_main:  # batches depend on (seed, rank, step) only: no sampler state
            checkpoint(last, optimizer_state=optimizer.state_dict(), scheduler_state=scheduler.state_dict(),
                       world_size=dist.world_size)
        if validating or checkpointing:
            dist.barrier()  # the others wait while rank 0 validates and writes
    if not has_val and dist.is_main:
        checkpoint(ckpt_dir / "best.pt")
    if t.get("debug_rank_dump"):
        dump = {"rank": dist.rank, "world_size": dist.world_size, "step": step,
                "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "weights_sha256": state_digest(model.state_dict()), "batches_sha256": batches_digest.hexdigest()}
        (run_dir / "debug").mkdir(parents=True, exist_ok=True)
        torch.save(dump, run_dir / "debug" / f"rank{dist.rank}.pt")
    dist.barrier()
    log.info("done: %d steps; checkpoints in %s", step, ckpt_dir)
    return val_metrics


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics = train(cfg, run_dir)
    return metrics.get("note_f1", float("nan"))


def _quiet_hydra_on_other_ranks(argv: list[str]) -> list[str]:
    """Overrides for ranks other than 0 of a torchrun job: all ranks share rank 0's run folder,
    so they write no ``.hydra/`` record and no ``train.log`` of their own (logs go to stdout)."""
    if Dist.from_env().is_main:
        return argv
    extra = []
    if not any(a.startswith(("hydra.output_subdir=", "++hydra.output_subdir=")) for a in argv):
        extra.append("hydra.output_subdir=null")
    if not any(a.startswith("hydra/job_logging=") for a in argv):
        extra.append("hydra/job_logging=stdout")
    return argv + extra


def main() -> None:
    """Console-script entry point (``transcribe-train``); also what ``torchrun -m transcribe.train`` runs."""
    sys.argv = _quiet_hydra_on_other_ranks(sys.argv)
    _hydra_main()


if __name__ == "__main__":
    main()
