#!/usr/bin/env python
"""Where a training step's time goes, and what the step-speed levers of issue #12 buy on this CPU.

    python scripts/benchmark_train_step.py                      # the shipped network, conf/train's batch
    python scripts/benchmark_train_step.py --compile --json runs/train_step.json
    python scripts/benchmark_train_step.py --model 'model.lstm_hidden=192' ...   # another network

One training step of the network as ``transcribe-train`` runs it (forward, the loss of every
head, backward, gradient clipping, Adam) on synthetic features and sparse note targets of the
real shapes; the data side (augmentation, CQT in loader processes) is not in it: training logs
the share of time spent waiting for batches (``data_wait_fraction``; 0-5 % on 2 cores), so a
step is the network's. Variants, measured in rounds that alternate them (so a busy machine slows
all alike), each reported as the median step time and frames per second, and as a ratio to the
reference (conf/train's batch and crop, ``--threads`` threads, eager):

- ``threads 1``: one torch thread instead of ``--threads``;
- ``batch B x S s``: the same frames per step cut into more, shorter crops (the BiLSTMs run
  fewer time steps on a larger batch). This changes what the network learns from (less context
  per crop), so it is a speed measurement only: adopting it needs a training comparison;
- ``compile`` (``--compile``): ``torch.compile`` of the network (same numbers to float32
  rounding); its compile time is reported separately and not counted in the step;
- ``forward only`` and ``forward + backward``: where the step's time goes.

Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transcribe.config import compose  # noqa: E402
from transcribe.features import FeatureConfig  # noqa: E402
from transcribe.model import PEDAL_MASK, ModelConfig, build_network, loss  # noqa: E402
from transcribe.targets import N_KEYS, PEDAL_HEADS  # noqa: E402


def batch(n: int, frames: int, n_bins: int, pedal: bool, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """Synthetic features [n, frames, n_bins] and note targets with about 3 % of cells sounding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, frames, n_bins, generator=g)
    frame = (torch.rand(n, frames, N_KEYS, generator=g) < 0.03).float()
    onset = frame * (torch.rand(n, frames, N_KEYS, generator=g) < 0.1).float()
    t = {"onset": onset, "offset": onset.roll(3, dims=1), "frame": frame, "velocity": onset * 0.6}
    if pedal:
        for k in PEDAL_HEADS:
            t[k] = (torch.rand(n, frames, 1, generator=g) < 0.3).float()
        t[PEDAL_MASK] = torch.ones(n, frames, 1)
    return x, t


def make_step(model: torch.nn.Module, net, weights: dict, clip: float, part: str):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(x: torch.Tensor, t: dict) -> None:
        if part == "forward":
            with torch.no_grad():
                net(x)
            return
        pred = net(x)
        total = loss(pred, t, weights)["total"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        if part == "full":
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="rounds over all variants (median reported)")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile")
    ap.add_argument("--model", nargs="*", default=[], help="conf overrides, e.g. model.lstm_hidden=192")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    cfg = compose("train", ["model.pedal_head=true", "model.pedal_hidden=64", *args.model])
    features = FeatureConfig.from_dict(cfg.features)
    mcfg = ModelConfig.from_dict(cfg.model)
    b, crop_s = int(cfg.train.batch_size), float(cfg.train.crop_seconds)
    frames = int(round(crop_s * features.frame_rate))
    weights, clip = dict(cfg.train.loss_weights), float(cfg.train.grad_clip)
    torch.manual_seed(0)
    model = build_network(features.n_bins, mcfg)
    model.train()
    print(f"network: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; reference batch "
          f"{b} x {crop_s:g} s ({frames} frames), {args.threads} threads", flush=True)

    variants = {  # name: (threads, crops, frames per crop, part, compiled)
        "reference": (args.threads, b, frames, "full", False),
        "forward only": (args.threads, b, frames, "forward", False),
        "forward + backward": (args.threads, b, frames, "backward", False),
        "threads 1": (1, b, frames, "full", False),
        f"batch {2 * b} x {crop_s / 2:g} s": (args.threads, 2 * b, frames // 2, "full", False),
        f"batch {4 * b} x {crop_s / 4:g} s": (args.threads, 4 * b, frames // 4, "full", False),
    }
    compiled = None
    compile_s = None
    if args.compile:
        torch.set_num_threads(args.threads)
        t0 = time.perf_counter()
        compiled = torch.compile(model)
        x, t = batch(b, frames, features.n_bins, mcfg.pedal_head)
        make_step(model, compiled, weights, clip, "full")(x, t)  # compiles
        compile_s = time.perf_counter() - t0
        print(f"torch.compile: first step (compiling) {compile_s:.1f} s", flush=True)
        variants["compile"] = (args.threads, b, frames, "full", True)

    inputs = {name: batch(n, f, features.n_bins, mcfg.pedal_head) for name, (_, n, f, _, _) in variants.items()}
    steps = {name: make_step(model, compiled if comp else model, weights, clip, part)
             for name, (_, _, _, part, comp) in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for name in variants:  # warm-up
        torch.set_num_threads(variants[name][0])
        steps[name](*inputs[name])
    for r in range(args.rounds):
        for name, (threads, n, f, _, _) in variants.items():
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            steps[name](*inputs[name])
            times[name].append(time.perf_counter() - t0)
        print(f"round {r + 1}/{args.rounds}", flush=True)

    ref = statistics.median(times["reference"])
    rows = {}
    print(f"\n{'variant':<22} {'step s':>8} {'frames/s':>9} {'speed vs reference':>19}")
    for name, (threads, n, f, _, _) in variants.items():
        med = statistics.median(times[name])
        rows[name] = {"threads": threads, "crops": n, "frames_per_crop": f, "median_s": round(med, 4),
                      "frames_per_s": round(n * f / med, 1), "speed_ratio": round(ref / med, 3),
                      "all_s": [round(v, 4) for v in times[name]]}
        print(f"{name:<22} {med:8.3f} {n * f / med:9.0f} {ref / med:18.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"parameters": sum(p.numel() for p in model.parameters()),
                                         "compile_seconds": compile_s, "variants": rows}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
