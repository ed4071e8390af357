"""Hydra entry point for training: ``transcribe-train [overrides]`` or ``python -m transcribe.train``.

Writes ``checkpoints/last.pt`` (resumable), ``checkpoints/best.pt`` (best validation note F1),
``metrics.jsonl`` and Hydra's log under the run folder (``runs/<run_name>``). Running the same
command again resumes from ``last.pt``.

Started by ``torchrun --nproc_per_node=N -m transcribe.train ...`` (one or more nodes), it trains
with DistributedDataParallel: NCCL on GPUs, gloo on CPUs; each rank draws its own random crops
(``train.batch_size`` per rank), gradients are averaged across ranks, and only rank 0 validates
and writes checkpoints, metrics and logs while the others wait (see :mod:`transcribe.distributed`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
from .decode import DecodeConfig, decode_pedal
from .distributed import (Dist, average_buffers, export_submitit_ranks, fill_cache_shared, mean_over_ranks,
                          quiet_hydra_on_other_ranks, rank_seed, setup_distributed, state_digest, wrap_ddp)
from .audio import load_audio
from .features import FeatureConfig, cqt_features
from .infer import InferConfig, run_network
from .level import level_db, level_gain
from .metrics import mean_metrics, pedal_metrics
from .model import BRANCH_PREFIX, PEDAL_PREFIX, ModelConfig, OnsetsAndFrames, build_network, loss
from .runtime import TorchRunner
from .tuning import best_thresholds, sweep_thresholds
from .widen import can_widen, widen_state

log = logging.getLogger("transcribe.train")


@dataclass
class TrainingData:
    """The training stream's data set and the validation recordings (rank 0 only)."""

    train: CropDataset
    val: CropDataset | None
    val_roots: list[str] = field(default_factory=list)  # validation_roots(cfg.data): scores per folder


@dataclass
class TrainingState:
    """Everything a checkpoint restores: the network, its optimizer and schedule, the step."""

    model: OnsetsAndFrames
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: int = 0
    best_f1: float = -1.0
    val_key: str | None = None  # what best_f1 was measured on (validation_key)
    cpu_seconds: float = 0.0  # CPU time (all threads of this process) the run had spent when it was last saved
    cpu_start: float = field(default_factory=time.process_time)  # this process's CPU clock when the state was made

    def cpu_now(self) -> float:
        """CPU seconds this run has spent training, over all its sessions (validation not counted;
        nor are loader processes: ``train.loader_workers=0`` makes them part of it, for
        comparisons at equal compute)."""
        return self.cpu_seconds + time.process_time() - self.cpu_start


def validation_key(val: CropDataset | None, max_files: int | None, thresholds: DictConfig | None,
                   decode: DecodeConfig, select_by: str = "tuned_note_f1") -> str | None:
    """A digest of what validation measures (its files, the decoder thresholds, the threshold
    grid and the metric that chooses ``best.pt``): a resumed run whose validation changed forgets
    its best score."""
    if val is None:
        return None
    what = {"files": [str(r.audio) for r in val.recordings[:max_files]],
            "decode": [decode.onset_threshold, decode.frame_threshold],
            "grid": OmegaConf.to_container(thresholds) if thresholds is not None else None}
    if select_by != "tuned_note_f1":  # keys of runs chosen by the default metric stay as they were
        what["select_by"] = select_by
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def setup_data(cfg: DictConfig, features: FeatureConfig, dist: Dist) -> TrainingData:
    """The training and validation recordings of ``cfg.data``, their features computed once
    into the feature cache (the work shared among the ranks)."""
    try:
        train_pairs, val_pairs = dataset_splits(cfg.data)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"transcribe-train: {err}") from err
    if not train_pairs and not val_pairs:
        raise SystemExit(f"transcribe-train: no audio files with labels under {cfg.data.root}")
    if not train_pairs:
        raise SystemExit(f"transcribe-train: every recording under {cfg.data.root} is in the validation split; "
                         "nothing to train on")
    workers = cfg.train.num_workers
    cache = FeatureCache(cfg.data.cache_dir, features, mmap=cfg.data.mmap)
    log.info("data: %d training and %d validation recordings under %s", len(train_pairs), len(val_pairs), cfg.data.root)
    t0 = time.time()
    fill_cache_shared(cache, [a for a, _ in train_pairs + val_pairs], workers, dist)
    data = TrainingData(CropDataset(train_pairs, features, cache, workers),
                        CropDataset(val_pairs, features, cache, workers) if val_pairs and dist.is_main else None,
                        validation_roots(cfg.data))
    log.info("features ready in %.0f s: %.2f h training audio (sustain pedal known for %.2f h), "
             "%.2f h validation audio", time.time() - t0, data.train.seconds / 3600,
             data.train.pedal_seconds / 3600, (data.val.seconds if data.val else 0) / 3600)
    return data


def _check_same_config(state: dict, stored_config: dict, path: Path, fine_tune: bool = False) -> None:
    """Refuse a checkpoint of other features or another network. Model configs are compared as
    networks (:meth:`ModelConfig.same_network`: a config written before the pedal head existed
    equals one with ``pedal_head: false``); when fine-tuning, only the note network must match
    (a pedal head the checkpoint lacks starts fresh; one the new model lacks is left out), or be a
    narrower one that :mod:`transcribe.widen` widens into ours, or ours with a harmonic branch grafted on
    (:meth:`ModelConfig.grafts_onto`)."""
    theirs, ours = ModelConfig.from_dict(state["config"]["model"]), ModelConfig.from_dict(stored_config["model"])
    both_pedal = theirs.pedal_head and ours.pedal_head
    same_model = (theirs.without_pedal() == ours.without_pedal() and (not both_pedal or theirs.same_network(ours))
                  or can_widen(theirs, ours) or ours.grafts_onto(theirs) if fine_tune else theirs.same_network(ours))
    for part, same in (("features", state["config"]["features"] == stored_config["features"]), ("model", same_model)):
        if not same:
            raise SystemExit(
                f"transcribe-train: {path} was trained with a different {part} config "
                f"({state['config'][part]}); use another run_name, delete that folder or match the config")


def _load_for_fine_tuning(model: OnsetsAndFrames, weights: dict, init: Path, theirs: ModelConfig) -> None:
    """Load ``weights`` (of a network of config ``theirs``) into ``model``; a pedal head the
    checkpoint lacks keeps its fresh weights, one the model lacks is left out; so does a grafted
    harmonic branch (its output starts at zero: the network computes what the checkpoint did). Any
    other missing or extra tensor is an error. A narrower network is widened first
    (:mod:`transcribe.widen`: the same outputs, new units free to learn)."""
    if can_widen(theirs, model.cfg):
        log.info("widening %s from %s to %s (outputs unchanged; the new units start with zero fan-out)",
                 init, theirs, model.cfg)
        weights = widen_state(weights, theirs, model)
    result = model.load_state_dict(weights, strict=False)
    grafted = model.cfg.grafts_onto(theirs)
    if grafted:
        log.info("grafting a harmonic branch (%d channels) onto %s: it starts at zero", model.cfg.harmonic_branch, init)
    other = [k for k in [*result.missing_keys, *result.unexpected_keys]
             if not (k.startswith(PEDAL_PREFIX) or grafted and k.startswith(BRANCH_PREFIX))]
    if other:
        raise SystemExit(f"transcribe-train: {init}: weights do not fit the network: {other[:5]}")
    fresh_pedal = [k for k in result.missing_keys if k.startswith(PEDAL_PREFIX)]
    if fresh_pedal:
        log.info("%s has no pedal head: the pedal head starts fresh (%d tensors)", init, len(fresh_pedal))
    if result.unexpected_keys:
        log.info("%s has a pedal head this model does not (model.pedal_head=false): left out", init)


def _read_on_rank0(path: Path, dist: Dist, device: torch.device) -> dict | None:
    """The checkpoint at ``path`` (None if absent) on every rank: rank 0 reads it and sends it,
    so other nodes need not see the run folder."""
    if not dist.enabled:
        return load_checkpoint(path, map_location=str(device)) if path.exists() else None
    return dist.broadcast(load_checkpoint(path) if dist.is_main and path.exists() else None)


TRAIN_ONLY = (None, "pedal")  # values of train.train_only


def trainable_parameters(model: OnsetsAndFrames, train_only: str | None) -> list[torch.nn.Parameter]:
    """The parameters that learn: all of them, or with ``train_only="pedal"`` only the pedal
    head's (the others get ``requires_grad=False``, so the note network's outputs stay those of
    ``train.init_from``; :func:`set_training_mode` keeps its batch norm and dropout in eval mode)."""
    if train_only not in TRAIN_ONLY:
        raise SystemExit(f"transcribe-train: train.train_only={train_only}: expected one of "
                         f"{', '.join(str(v).lower() if v is None else v for v in TRAIN_ONLY)}")
    if train_only == "pedal" and not model.cfg.pedal_head:
        raise SystemExit("transcribe-train: train.train_only=pedal needs model.pedal_head=true")
    for name, p in model.named_parameters():
        p.requires_grad_(train_only is None or name.startswith(PEDAL_PREFIX))
    return [p for p in model.parameters() if p.requires_grad]


def parameter_groups(model: torch.nn.Module, params: list[torch.nn.Parameter], t: DictConfig) -> list[dict]:
    """The optimizer's parameter groups: a grafted harmonic branch learns at ``train.branch_lr_scale``
    times the learning rate (it starts from nothing while the rest of the network fine-tunes);
    everything else at the learning rate."""
    branch = {id(p) for n, p in model.named_parameters() if n.startswith(BRANCH_PREFIX)}
    groups = [{"params": [p for p in params if id(p) not in branch]}]
    if branch:
        groups.append({"params": [p for p in params if id(p) in branch],
                       "lr": t.learning_rate * float(t.branch_lr_scale)})
    return groups


def apply_lr_drops(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                   step: int, drops: Sequence) -> float | None:
    """Multiply every parameter group's learning rate by FACTOR once ``step`` (the steps done) reaches
    STEP, for each ``[STEP, FACTOR]`` of ``train.lr_drops``: a lower rate for a run on a plateau.
    The factor lives in the optimizer's own rate, which checkpoints save, so a run resumed past STEP
    keeps it and one resumed before it applies it on the way; the step schedule (``StepLR``, which
    scales the rate it finds) goes on from the lowered rate. Returns the new rate, or None."""
    factor = 1.0
    for at, f in drops or ():
        if int(at) == step:
            factor *= float(f)
    if factor == 1.0:
        return None
    for group in optimizer.param_groups:
        group["lr"] *= factor
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports
    return optimizer.param_groups[0]["lr"]


def set_training_mode(model: OnsetsAndFrames, train_only: str | None) -> None:
    """Training mode for the modules that learn; with ``train_only="pedal"`` the frozen note
    network stays in eval mode (batch-norm statistics unchanged, no dropout), as at inference."""
    model.train()
    if train_only == "pedal":
        for name, module in model.named_children():
            if not name.startswith(PEDAL_PREFIX):
                module.eval()


def build_state(cfg: DictConfig, stored_config: dict, n_bins: int, last: Path, dist: Dist,
                device: torch.device) -> TrainingState:
    """A new network, optimizer and schedule; resumed from ``last`` when it exists, else with
    the weights of ``train.init_from`` when set (fine-tuning). Only the parameters that
    ``train.train_only`` names learn."""
    t = cfg.train
    model = build_network(n_bins, ModelConfig.from_dict(cfg.model)).to(device)
    optimizer = torch.optim.Adam(parameter_groups(model, trainable_parameters(model, t.train_only), t),
                                 lr=t.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=t.lr_decay_steps, gamma=t.lr_decay_rate)
    state = TrainingState(model, optimizer, scheduler)
    if dist.enabled:
        torch.manual_seed(rank_seed(t.seed, dist.rank))  # dropout masks differ per rank; weights come from rank 0
    saved = _read_on_rank0(last, dist, device)
    if saved is not None:
        _check_same_config(saved, stored_config, last)
        model.load_state_dict(saved["model_state"])
        optimizer.load_state_dict(saved["optimizer_state"])
        scheduler.load_state_dict(saved["scheduler_state"])
        state.step, state.best_f1 = saved["step"], saved.get("best_f1", -1.0)
        state.cpu_seconds = saved.get("cpu_seconds", 0.0)
        state.val_key = saved.get("val_key", "unknown")
        log.info("resumed from %s at step %d", last, state.step)
    elif t.init_from:
        init = Path(hydra.utils.to_absolute_path(str(t.init_from)))
        if not init.is_file():
            raise SystemExit(f"transcribe-train: train.init_from={t.init_from}: no such checkpoint")
        saved = _read_on_rank0(init, dist, torch.device("cpu"))
        _check_same_config(saved, stored_config, init, fine_tune=True)
        _load_for_fine_tuning(model, saved["model_state"], init, ModelConfig.from_dict(saved["config"]["model"]))
        log.info("initialised the weights from %s (step %s of its run)", init, saved.get("step"))
    return state


def validation_features(rec, features: FeatureConfig, infer: InferConfig) -> np.ndarray:
    """A validation recording's features as ``transcribe`` computes them: from its audio brought to
    ``infer.level_db`` (:mod:`transcribe.level`; about a second per 5 minutes), or the cached
    features where the level step is off (``infer.level_db=null``)."""
    if infer.level_db is None:
        return np.asarray(rec.features, dtype=np.float32)
    y = load_audio(rec.audio, features.sample_rate)
    gain = level_gain(level_db([y], features.sample_rate), infer.level_db, infer.level_max_gain_db)
    return cqt_features(y * np.float32(gain), features)


SET_METRICS = ("note_f1", "note_recall", "note_offset_f1", "note_offset_velocity_f1", "frame_f1")


def validation_roots(data_cfg) -> list[str]:
    """The folders validation files come from (``data.root``, then ``data.extra_val_roots``), as
    configured: :func:`validate` reports each one's scores on its own where there are several."""
    return [str(data_cfg.root), *map(str, data_cfg.extra_val_roots or [])]


def _sets_of(audio: Sequence[Path], roots: Sequence[str]) -> list[str | None]:
    """The root (of ``roots``) each file lies under, the deepest where several hold it."""
    deepest_first = sorted(((Path(r).resolve(), r) for r in roots), key=lambda x: -len(str(x[0])))
    return [next((r for path, r in deepest_first if Path(a).resolve().is_relative_to(path)), None) for a in audio]


def validate(model: OnsetsAndFrames, data: CropDataset, features: FeatureConfig, decode: DecodeConfig,
             infer: InferConfig, max_files: int | None, thresholds: DictConfig | None = None,
             roots: Sequence[str] | None = None, octave: Sequence[float] = ()) -> dict[str, float]:
    """Transcribe whole validation recordings (:func:`validation_features`) with ``model`` on the CPU
    and score them with ``decode``'s thresholds (the sustain pedal too, where the model has a
    pedal head and the recording's pedal is known); with ``thresholds`` (``train.val_thresholds``:
    onset and frame lists), also with the best pair of that grid (``tuned_*`` keys, and the
    pair as ``tuned_onset_threshold`` / ``tuned_frame_threshold``). With ``roots``
    (:func:`validation_roots`) holding more than one folder, also each folder's own scores at the
    tuned pair (at conf/decode's without a grid): ``set[ROOT]_note_f1`` and the rest of
    ``SET_METRICS`` (e.g. a held-out piano and its room version side by side). For each share in
    ``octave`` (``train.val_octave``), the same tuned and per-folder scores again with the onsets
    octave-suppressed by that share (``decode.octave_suppression``), under keys prefixed
    ``octave[SHARE]_``: the same activations decoded a second way, so both readings are logged."""
    net = copy.deepcopy(model).cpu() if next(model.parameters()).device.type != "cpu" else model
    runner = TorchRunner(net)
    modes = [(m, m.training) for m in model.modules()]  # restored exactly (a frozen part stays in eval)
    net.eval()
    recordings, pedal_rows = [], []
    for rec in data.recordings[:max_files]:
        act = run_network(runner, validation_features(rec, features, infer), *infer.chunking(features),
                          batch_chunks=infer.batch_chunks)
        recordings.append((act, rec.notes))
        if "pedal" in act and rec.pedal is not None:
            pedal_rows.append(pedal_metrics(rec.pedal, decode_pedal(act["pedal"], act["pedal_onset"],
                                                                    features.frame_rate, decode)))
    for m, training in modes:
        m.train(training)
    sets = (_sets_of([rec.audio for rec in data.recordings[:max_files]], roots)
            if roots is not None and len(roots) > 1 else None)
    out = {**_note_scores(recordings, features.frame_rate, decode, thresholds, roots, sets),
           **(mean_metrics(pedal_rows) if pedal_rows else {})}
    for share in octave:
        suppressed = replace(decode, octave_suppression=float(share))
        scores = _note_scores(recordings, features.frame_rate, suppressed, thresholds, roots, sets)
        out.update({f"octave[{float(share):g}]_{k}": v for k, v in scores.items()})
    return out


def _note_scores(recordings, frame_rate: float, decode: DecodeConfig, thresholds: DictConfig | None,
                 roots: Sequence[str] | None, sets: list[str | None] | None) -> dict[str, float]:
    """For :func:`validate`, the recordings decoded with ``decode``: the scores at its thresholds,
    the ``tuned_*`` scores (the best pair of the ``thresholds`` grid and decode's own) and each
    validation folder's scores at that pair (``set[ROOT]_*``)."""
    at_config = sweep_thresholds(recordings, frame_rate, decode, [decode.onset_threshold], [decode.frame_threshold])[0]
    out = dict(at_config.metrics)
    if thresholds is not None and thresholds.onset and thresholds.frame:
        grid = sweep_thresholds(recordings, frame_rate, decode, thresholds.onset, thresholds.frame)
        best = best_thresholds([at_config, *grid])
        out.update({f"tuned_{k}": v for k, v in best.metrics.items()},
                   tuned_onset_threshold=best.onset_threshold, tuned_frame_threshold=best.frame_threshold)
        at_config = best
    if sets is not None:
        for root in roots:
            mine = [row for row, s in zip(at_config.rows, sets) if s == root]
            if mine:
                m = mean_metrics(mine)
                out.update({f"set[{root}]_{k}": m[k] for k in SET_METRICS})
    return out


def _autocast(precision: str, device: torch.device):
    if precision not in ("fp32", "bf16"):
        raise SystemExit(f"transcribe-train: train.precision must be fp32 or bf16, not {precision!r}")
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if precision == "bf16":
        log.warning("train.precision=bf16 applies to CUDA only; training on %s in fp32", device)
    return contextlib.nullcontext()


class MetricsLog:
    """Running loss sums, written as one JSON row per ``log_every`` steps to ``metrics.jsonl``
    (rank 0), with validation rows between them."""

    def __init__(self, path: Path, frames_per_step: int, start_step: int):
        self.path, self.frames_per_step = path, frames_per_step
        self.running: dict[str, float] = {}
        self.t0, self.last_step, self.waited = time.time(), start_step, 0.0

    def add(self, losses: dict[str, torch.Tensor], waited: float = 0.0) -> None:
        """Add one step's losses and the seconds it waited for its batch (the loader's share)."""
        for k, v in losses.items():
            self.running[k] = self.running.get(k, 0.0) + v.item()
        self.waited += waited

    def flush(self, step: int, n: int, lr: float, device: torch.device, dist: Dist, cpu_s: float = 0.0) -> None:
        """Write the mean of the last ``n`` steps' losses (averaged over the ranks) and the run's CPU
        seconds so far (``cpu_s``, rank 0's)."""
        running, self.running = mean_over_ranks(self.running, device, dist), {}
        now = time.time()
        elapsed = now - self.t0  # since the last row: steps, and any validation and checkpoints between
        sec = elapsed / max(step - self.last_step, 1)
        row = {"step": step, **{f"loss_{k}": v / n for k, v in running.items()}, "lr": lr, "sec_per_step": sec,
               "frames_per_sec": self.frames_per_step / sec, "data_wait_fraction": self.waited / max(elapsed, 1e-9),
               "cpu_s": cpu_s}
        self.t0, self.last_step, self.waited = now, step, 0.0
        if dist.is_main:
            pedal = f" pedal {row['loss_pedal']:.4f}" if "loss_pedal" in row else ""
            log.info("step %d  loss %.4f (onset %.4f frame %.4f offset %.4f velocity %.4f%s)  %.2f s/step  %.0f frames/s"
                     "  %.0f%% waiting for batches", step, row["loss_total"], row["loss_onset"], row["loss_frame"],
                     row["loss_offset"], row["loss_velocity"], pedal, sec, row["frames_per_sec"],
                     100 * row["data_wait_fraction"])
            self.write(row)

    def write(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Train per ``cfg``, writing into ``run_dir``; returns the last validation metrics.

    Under torchrun this is one rank of a DistributedDataParallel job (see the module docstring).
    """
    export_submitit_ranks()
    dist = Dist.from_env()
    if cfg.train.num_threads:
        torch.set_num_threads(int(cfg.train.num_threads))
    device = setup_distributed(cfg.train, dist)
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
    features, decode = FeatureConfig.from_dict(cfg.features), DecodeConfig.from_dict(cfg.decode)
    infer = InferConfig.from_dict(cfg.infer)
    stored_config = config_dict(features, ModelConfig.from_dict(cfg.model), decode)
    data = setup_data(cfg, features, dist)
    ckpt_dir = run_dir / "checkpoints"
    st = build_state(cfg, stored_config, features.n_bins, ckpt_dir / "last.pt", dist, device)
    val_key = validation_key(data.val, t.val_max_files, t.val_thresholds, decode, t.select_by)
    if st.val_key is not None and st.val_key != val_key and st.best_f1 >= 0:
        log.warning("validation changed since best.pt was chosen (files or thresholds); its score %.4f is "
                    "forgotten, the next validation replaces best.pt", st.best_f1)
        st.best_f1 = -1.0
    st.val_key = val_key
    net, autocast = wrap_ddp(st.model, device, dist), _autocast(t.precision, device)

    def checkpoint(name: str, **extra) -> None:
        save_checkpoint(ckpt_dir / name, st.model, stored_config, step=st.step, best_f1=st.best_f1,
                        val_key=st.val_key, cpu_seconds=st.cpu_now(), **extra)

    crop_frames = int(round(t.crop_seconds * features.frame_rate))
    weights = OmegaConf.to_container(t.loss_weights)
    metrics = MetricsLog(run_dir / "metrics.jsonl", t.batch_size * crop_frames * dist.world_size, st.step)
    aug = cfg.augment if float(cfg.augment.p) > 0 else None
    context = int(round(float(t.augment_context_s) * features.frame_rate))
    stream = BatchStream(data.train, t.batch_size, crop_frames, t.seed, dist.rank, aug, context)
    if aug is not None:
        log.info("augmenting %.0f%% of the crops (conf/augment), %d loader process(es)", 100 * float(aug.p),
                 t.loader_workers)
    batches_digest, val_metrics = hashlib.sha256(), {}
    set_training_mode(st.model, t.train_only)
    fetched = time.time()
    for batch in stream.batches(st.step, t.max_steps, t.loader_workers):
        waited = time.time() - fetched
        if t.debug_rank_dump:
            batches_digest.update(batch["features"].numpy().tobytes())
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast:
            pred = net(batch["features"])
        losses = loss({k: v.float() for k, v in pred.items()}, batch, weights, t.velocity_loss,
                      float(t.soft_onset_gain))
        st.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(st.model.parameters(), t.grad_clip)
        st.optimizer.step()
        st.scheduler.step()
        st.step += 1
        dropped = apply_lr_drops(st.optimizer, st.scheduler, st.step, t.lr_drops)
        if dropped is not None:
            log.info("step %d: learning rate lowered to %.3g (train.lr_drops)", st.step, dropped)
        metrics.add({k: v.detach() for k, v in losses.items()}, waited)
        if st.step % t.log_every == 0 or st.step == t.max_steps:
            metrics.flush(st.step, t.log_every if st.step % t.log_every == 0 else st.step % t.log_every,
                          st.scheduler.get_last_lr()[0], device, dist, st.cpu_now())
        val_metrics = _validate_and_save(st, data, t, features, decode, infer, metrics, checkpoint, dist) or val_metrics
        fetched = time.time()
    if data.val is None and dist.is_main:
        checkpoint("best.pt")
    if t.debug_rank_dump:
        _dump_rank(run_dir, st, dist, batches_digest.hexdigest())
    dist.barrier()
    log.info("done: %d steps; checkpoints in %s", st.step, ckpt_dir)
    return val_metrics


def _validate_and_save(st: TrainingState, data: TrainingData, t: DictConfig, features: FeatureConfig,
                       decode: DecodeConfig, infer: InferConfig, metrics: MetricsLog, checkpoint, dist: Dist
                       ) -> dict[str, float] | None:
    """After a step: validate every ``train.val_every`` steps (keeping ``best.pt``, and with
    ``train.keep_validated`` a resumable ``step<N>.pt`` of each validated step) and write ``last.pt``
    every ``train.checkpoint_every`` steps (both at the last step). Returns the validation metrics
    when it validated."""
    last_step = st.step == t.max_steps
    validating = data.val is not None and (st.step % t.val_every == 0 or last_step)
    checkpointing = st.step % t.checkpoint_every == 0 or last_step
    if not (validating or checkpointing):
        return None
    average_buffers(st.model, dist)
    val_metrics = None
    if validating:
        cpu0 = time.process_time()
        val_metrics = validate(st.model, data.val, features, decode, infer, t.val_max_files, t.val_thresholds,
                               data.val_roots, t.get("val_octave") or ())
        st.cpu_start += time.process_time() - cpu0  # validation's CPU time is not training's
        _log_validation(st.step, val_metrics)
        if "pedal_onset_f1" in val_metrics:
            log.info("validation at step %d: pedal press F1 %.4f  lift F1 %.4f  frame F1 %.4f", st.step,
                     val_metrics["pedal_onset_f1"], val_metrics["pedal_offset_f1"], val_metrics["pedal_frame_f1"])
        metrics.write({"step": st.step, "cpu_s": st.cpu_now(), **{f"val_{k}": v for k, v in val_metrics.items()}})
        selected = _selection_score(val_metrics, t.select_by)
        if selected > st.best_f1:
            st.best_f1 = selected
            checkpoint("best.pt", val_metrics=val_metrics)
    keeping = validating and t.get("keep_validated")  # a step a branch can start from
    if dist.is_main and (checkpointing or keeping):  # batches depend on (seed, rank, step) only: no sampler state
        resumable = {"optimizer_state": st.optimizer.state_dict(), "scheduler_state": st.scheduler.state_dict(),
                     "world_size": dist.world_size}
        if checkpointing:
            checkpoint("last.pt", **resumable)
        if keeping:
            checkpoint(f"step{st.step}.pt", **resumable)
    dist.barrier()  # the others wait while rank 0 validates and writes
    return val_metrics


def _selection_score(m: dict[str, float], select_by: str) -> float:
    """The validation metric that chooses ``best.pt`` (``train.select_by``); ``tuned_note_f1``
    falls back to ``note_f1`` when no threshold grid ran."""
    if select_by == "tuned_note_f1" and select_by not in m:
        select_by = "note_f1"
    if select_by not in m:
        raise SystemExit(f"transcribe-train: train.select_by={select_by}: validation has no such metric "
                         f"(it has {', '.join(sorted(m))})")
    return m[select_by]


def _log_validation(step: int, m: dict[str, float]) -> None:
    names = (("note", "note_f1"), ("note+offset", "note_offset_f1"), ("note+offset+velocity", "note_offset_velocity_f1"),
             ("frame", "frame_f1"))
    for prefix, label in (("", "thresholds of conf/decode"), ("tuned_", "best thresholds of train.val_thresholds")):
        if f"{prefix}note_f1" not in m:
            continue
        where = (f" (onset {m['tuned_onset_threshold']:.2f}, frame {m['tuned_frame_threshold']:.2f})"
                 if prefix else "")
        log.info("validation at step %d, %s%s: %s", step, label, where,
                 "  ".join(f"{name} F1 {m[prefix + key]:.4f}" for name, key in names))
    for key in sorted(k for k in m if k.startswith("octave[") and k.endswith("]_tuned_note_f1")):
        share = key[len("octave["):key.index("]")]
        log.info("validation at step %d, octave suppression %s, best thresholds: %s", step, share,
                 "  ".join(f"{name} F1 {m[key.replace('tuned_note_f1', 'tuned_' + k)]:.4f}" for name, k in names))


def _dump_rank(run_dir: Path, st: TrainingState, dist: Dist, batches_sha256: str) -> None:
    """``debug/rank<r>.pt``: this rank's final weights and digests (checks of DDP replicas)."""
    dump = {"rank": dist.rank, "world_size": dist.world_size, "step": st.step,
            "model_state": {k: v.detach().cpu() for k, v in st.model.state_dict().items()},
            "weights_sha256": state_digest(st.model.state_dict()), "batches_sha256": batches_sha256}
    (run_dir / "debug").mkdir(parents=True, exist_ok=True)
    torch.save(dump, run_dir / "debug" / f"rank{dist.rank}.pt")


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics = train(cfg, run_dir)
    return metrics.get("note_f1", float("nan"))


def main() -> None:
    """Console-script entry point (``transcribe-train``); also what ``torchrun -m transcribe.train`` runs."""
    sys.argv = quiet_hydra_on_other_ranks(sys.argv)
    _hydra_main()


if __name__ == "__main__":
    main()
