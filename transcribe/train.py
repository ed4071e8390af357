"""Hydra entry point for training: ``transcribe-train [overrides]`` or ``python -m transcribe.train``.

Writes ``checkpoints/last.pt`` (resumable), ``checkpoints/best.pt`` (best validation note F1),
``metrics.jsonl`` and Hydra's log under the run folder (``runs/<run_name>``). Running the same
command again resumes from ``last.pt``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoint import config_dict, load_checkpoint, save_checkpoint
from .config import conf_dir
from .data.cache import FeatureCache
from .data.dataset import CropDataset
from .data.pairs import find_pairs, split_pairs
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


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Train per ``cfg``, writing into ``run_dir``; returns the last validation metrics."""
    t = cfg.train
    if t.num_threads:
        torch.set_num_threads(int(t.num_threads))
    torch.manual_seed(t.seed)
    device = _device(t.device)
    features = FeatureConfig.from_dict(cfg.features)
    model_cfg = ModelConfig.from_dict(cfg.model)
    decode = DecodeConfig.from_dict(cfg.decode)
    stored_config = config_dict(features, model_cfg, decode)

    pairs = find_pairs(cfg.data.root)
    if not pairs:
        raise SystemExit(f"transcribe-train: no audio files with labels under {cfg.data.root}")
    train_pairs, val_pairs = split_pairs(pairs, cfg.data.get("val_glob"))
    if not train_pairs:
        raise SystemExit(f"transcribe-train: every file under {cfg.data.root} matches val_glob; nothing to train on")
    cache = FeatureCache(cfg.data.cache_dir, features)
    log.info("data: %d training and %d validation recordings under %s", len(train_pairs), len(val_pairs), cfg.data.root)
    t0 = time.time()
    train_set = CropDataset(train_pairs, features, cache, t.num_workers)
    val_set = CropDataset(val_pairs, features, cache, t.num_workers) if val_pairs else None
    log.info("features ready in %.0f s: %.2f h training audio, %.2f h validation audio", time.time() - t0,
             train_set.seconds / 3600, (val_set.seconds if val_set else 0) / 3600)

    model = OnsetsAndFrames(features.n_bins, model_cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=t.lr_decay_steps, gamma=t.lr_decay_rate)
    rng = np.random.default_rng(t.seed)
    step, best_f1 = 0, -1.0
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.pt"
    if last.exists():
        state = load_checkpoint(last, map_location=str(device))
        for part in ("features", "model"):
            if state["config"][part] != stored_config[part]:
                raise SystemExit(
                    f"transcribe-train: {last} was trained with a different {part} config "
                    f"({state['config'][part]}); use another run_name or delete that folder")
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        scheduler.load_state_dict(state["scheduler_state"])
        rng.bit_generator.state = state["rng_state"]
        step, best_f1 = state["step"], state.get("best_f1", -1.0)
        log.info("resumed from %s at step %d", last, step)

    def checkpoint(path: Path, **extra) -> None:
        save_checkpoint(path, model, stored_config, step=step, best_f1=best_f1, **extra)

    crop_frames = int(round(t.crop_seconds * features.frame_rate))
    weights = OmegaConf.to_container(t.loss_weights)
    metrics_file = run_dir / "metrics.jsonl"
    transcriber = Transcriber(model, features, decode)
    val_metrics: dict[str, float] = {}
    model.train()
    running: dict[str, float] = {}
    t_start, step_start = time.time(), step
    while step < t.max_steps:
        batch = {k: v.to(device) for k, v in train_set.sample(rng, t.batch_size, crop_frames).items()}
        losses = compute_loss(model(batch["features"]), batch, weights)
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
            n = t.log_every if step % t.log_every == 0 else step % t.log_every
            row = {"step": step, **{f"loss_{k}": v / n for k, v in running.items()},
                   "lr": scheduler.get_last_lr()[0],
                   "sec_per_step": (time.time() - t_start) / max(step - step_start, 1)}
            log.info("step %d  loss %.4f (onset %.4f frame %.4f offset %.4f velocity %.4f)  %.2f s/step", step,
                     row["loss_total"], row["loss_onset"], row["loss_frame"], row["loss_offset"],
                     row["loss_velocity"], row["sec_per_step"])
            with open(metrics_file, "a") as f:
                f.write(json.dumps(row) + "\n")
            running = {}
        if val_set is not None and (step % t.val_every == 0 or step == t.max_steps):
            transcriber.model = model.cpu() if device.type != "cpu" else model
            val_metrics = validate(transcriber, val_set, t.val_max_files)
            model.to(device)
            log.info("validation at step %d: note F1 %.4f  note+offset F1 %.4f  note+offset+velocity F1 %.4f  frame F1 %.4f",
                     step, val_metrics["note_f1"], val_metrics["note_offset_f1"],
                     val_metrics["note_offset_velocity_f1"], val_metrics["frame_f1"])
            with open(metrics_file, "a") as f:
                f.write(json.dumps({"step": step, **{f"val_{k}": v for k, v in val_metrics.items()}}) + "\n")
            if val_metrics["note_f1"] > best_f1:
                best_f1 = val_metrics["note_f1"]
                checkpoint(ckpt_dir / "best.pt", val_metrics=val_metrics)
        if step % t.checkpoint_every == 0 or step == t.max_steps:
            checkpoint(last, optimizer_state=optimizer.state_dict(), scheduler_state=scheduler.state_dict(),
                       rng_state=rng.bit_generator.state)
    if val_set is None:
        checkpoint(ckpt_dir / "best.pt")
    log.info("done: %d steps; checkpoints in %s", step, ckpt_dir)
    return val_metrics


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics = train(cfg, run_dir)
    return metrics.get("note_f1", float("nan"))


def main() -> None:
    """Console-script entry point (``transcribe-train``)."""
    _hydra_main()


if __name__ == "__main__":
    main()
