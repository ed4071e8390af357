"""Distributed data parallel plumbing for training under torchrun (or a submitit job of several
tasks): this process's rank, the process group, the shared feature-cache fill, buffer averaging,
the DDP wrapper, and the Hydra overrides that keep other ranks quiet.

Nothing here is needed by a single-process run: every function is a no-op at world size 1.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from .data.cache import FeatureCache


def device_of(name: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
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


def export_submitit_ranks() -> None:
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
    device = device_of(t.device)
    if not dist.enabled:
        return device
    if device.type == "cuda":  # one GPU per local rank (or the one GPU a scheduler left visible)
        device = torch.device("cuda", dist.local_rank if torch.cuda.device_count() > 1 else 0)
        torch.cuda.set_device(device)
    backend = t.backend
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend, timeout=timedelta(minutes=float(t.dist_timeout_minutes)))
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


def rank_seed(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's tensors (names and exact values), for comparing replicas."""
    h = hashlib.sha256()
    for k, v in state.items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def wrap_ddp(model: torch.nn.Module, device: torch.device, dist: Dist) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel under torchrun, else ``model`` itself.

    Buffers (BatchNorm running statistics) are not used in training mode; each rank keeps its
    own and they are averaged before validation and checkpoints (:func:`average_buffers`)."""
    if not dist.enabled:
        return model
    ddp = torch.nn.parallel.DistributedDataParallel
    no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters
                      else {"broadcast_buffers": False})  # the name before torch 2.13
    return ddp(model, device_ids=[device.index] if device.type == "cuda" else None, **no_buffer_sync)


def mean_over_ranks(values: dict[str, float], device: torch.device, dist: Dist) -> dict[str, float]:
    """The mean of each value over the ranks (the values themselves at world size 1)."""
    if not dist.enabled:
        return values
    names = sorted(values)
    sums = torch.tensor([values[k] for k in names], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(sums)
    return {k: float(v) / dist.world_size for k, v in zip(names, sums.tolist())}


def quiet_hydra_on_other_ranks(argv: list[str]) -> list[str]:
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
