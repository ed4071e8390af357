"""A checkpoint through training's own validation (``transcribe.train.validate``): the files, level,
thresholds and threshold grid a run of the same config validates with, printed as one
``metrics.jsonl`` row. The bake-off (issue 26) uses it for the step-0 point of runs that start
from a checkpoint, so their curves begin where the checkpoint is.

    python scripts/validate_checkpoint.py transcribe/weights/model.pt --step 0 >> runs/bake_A/metrics.jsonl
    python scripts/validate_checkpoint.py runs/x/checkpoints/best.pt data.extra_val_roots=[data/rooms/sptk]
    python scripts/validate_checkpoint.py transcribe/weights/model.pt 'train.val_octave=[0.5]'   # also octave-suppressed
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from transcribe.checkpoint import Checkpoint  # noqa: E402
from transcribe.config import compose  # noqa: E402
from transcribe.decode import DecodeConfig  # noqa: E402
from transcribe.distributed import Dist  # noqa: E402
from transcribe.features import FeatureConfig  # noqa: E402
from transcribe.infer import InferConfig  # noqa: E402
from transcribe.train import setup_data, validate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("overrides", nargs="*", help="overrides of the train config (the run's data and train keys)")
    ap.add_argument("--step", type=int, default=None, help="the step to write in the row (default: the checkpoint's)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_intermixed_args()  # overrides may follow --step
    torch.set_num_threads(args.threads)
    cfg = compose("train", args.overrides)
    ckpt = Checkpoint(args.checkpoint)
    features = FeatureConfig.from_dict(ckpt.config["features"])
    data = setup_data(cfg, features, Dist.from_env())
    if data.val is None:
        sys.exit(f"validate_checkpoint: no validation files under {cfg.data.root}")
    m = validate(ckpt.build_model(), data.val, features, DecodeConfig.from_dict(cfg.decode), InferConfig.from_dict(cfg.infer),
                 cfg.train.val_max_files, cfg.train.val_thresholds, data.val_roots, cfg.train.val_octave)
    step = args.step if args.step is not None else ckpt.state.get("step")
    print(json.dumps({"step": step, "cpu_s": float(ckpt.state.get("cpu_seconds", 0.0)) if args.step is None else 0.0,
                      "checkpoint": str(args.checkpoint), **{f"val_{k}": v for k, v in m.items()}}))


if __name__ == "__main__":
    main()
