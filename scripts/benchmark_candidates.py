"""Inference cost of candidate networks (issue 26's budget check), measured in one run.

For each candidate (``conf/model`` overrides), the parameters and the time of one forward pass
over 60 s of features (our 264-bin CQT, 31.25 frames/s, in the chunks ``transcribe`` runs),
under torch and under onnxruntime, each on ``--threads`` threads, with the shipped network as the
reference in the same run (ratios). Untrained weights: the cost does not depend on them.

    python scripts/benchmark_candidates.py                     # the bake-off's candidates
    python scripts/benchmark_candidates.py --candidate wide='{"arch":"harmonic","width":64}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from transcribe.checkpoint import Checkpoint, config_dict  # noqa: E402
from transcribe.config import from_group  # noqa: E402
from transcribe.decode import DecodeConfig  # noqa: E402
from transcribe.features import FeatureConfig  # noqa: E402
from transcribe.infer import InferConfig, run_network  # noqa: E402
from transcribe.model import ModelConfig, build_network  # noqa: E402
from transcribe.runtime import OnnxRunner, TorchRunner, export_onnx  # noqa: E402

SHIPPED = ROOT / "transcribe" / "weights" / "model.pt"
CANDIDATES = {  # name: overrides of the shipped model's config
    "A shipped (stage 7)": {},
    "B shipped + harmonic branch 16": {"harmonic_branch": 16},
    "C harmonic w48 f8 lstm32": {"arch": "harmonic", "width": 48, "front_channels": 8, "key_lstm": 32},
    "C harmonic w64 f16 lstm32": {"arch": "harmonic", "width": 64, "front_channels": 16, "key_lstm": 32},
    "C harmonic w32 f8 lstm24": {"arch": "harmonic", "width": 32, "front_channels": 8, "key_lstm": 24},
}


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=JSON",
                    help="a candidate: model config overrides as JSON (repeatable; replaces the default list)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = Checkpoint(SHIPPED)
    features = FeatureConfig.from_dict(ckpt.config["features"])
    base = dict(ckpt.config["model"])
    infer = from_group("infer", InferConfig.from_dict)
    candidates = dict(c.split("=", 1) for c in args.candidate) if args.candidate else CANDIDATES
    x = np.random.default_rng(0).standard_normal((int(args.seconds * features.frame_rate), features.n_bins))
    x = (x * 2 - 6).astype(np.float32)
    rows = []
    for name, over in candidates.items():
        over = json.loads(over) if isinstance(over, str) else over
        cfg = ModelConfig.from_dict({**base, **over})
        torch.manual_seed(0)
        net = build_network(features.n_bins, cfg).eval()
        n_params = sum(p.numel() for p in net.parameters())
        chunking = infer.chunking(features)
        with torch.inference_mode():
            t_torch = best_of(lambda: run_network(TorchRunner(net), x, *chunking, batch_chunks=infer.batch_chunks),
                              args.repeats)
        onnx = OnnxRunner(export_onnx(net, config_dict(features, cfg, DecodeConfig()), features.n_bins),
                          threads=args.threads)
        t_onnx = best_of(lambda: run_network(onnx, x, *chunking, batch_chunks=infer.batch_chunks), args.repeats)
        rows.append({"name": name, "config": over, "parameters": n_params, "torch_s": t_torch, "onnx_s": t_onnx})
        ref = rows[0]
        print(f"{name:34s} {n_params / 1e6:6.2f} M  torch {t_torch:6.2f} s ({t_torch / ref['torch_s']:5.2f}x)  "
              f"onnxruntime {t_onnx:6.2f} s ({t_onnx / ref['onnx_s']:5.2f}x) per {args.seconds:.0f} s  "
              f"RTF {t_onnx / args.seconds:.4f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
