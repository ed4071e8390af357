"""The mean of several checkpoints of one run (stochastic weight averaging over its saved steps):
a single network whose weights, and BatchNorm running statistics, are the element-wise mean of
theirs, written as a checkpoint that ``scripts/validate_checkpoint.py``, ``transcribe-eval`` and
``scripts/ship_model.py`` read like any other.

    python scripts/average_checkpoints.py runs/longrun_D/checkpoints/step{2000,2200,2400,2600}.pt \\
        --out runs/avg/D2000-2600.pt
    python scripts/validate_checkpoint.py runs/avg/D2000-2600.pt experiment=sampled ...   # as the run validates

The checkpoints must share their feature and model config (steps of one run do); the optimizer
state is dropped. Averaging is meant for steps of one trajectory at a learning rate that keeps it
moving between them (issue 26's long run: rows 0.03 apart from one 200-step row to the next).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from transcribe.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from transcribe.model import ModelConfig  # noqa: E402


def average(paths: list[Path]) -> tuple[torch.nn.Module, dict, dict, dict]:
    """(the network with the mean weights, the first checkpoint's config, provenance, the last
    checkpoint's state)."""
    ckpts = [Checkpoint(p) for p in paths]
    first = ckpts[0]
    network = ModelConfig.from_dict(first.config["model"])
    for c in ckpts[1:]:  # compared as networks, as training compares a checkpoint it resumes
        if c.config["features"] != first.config["features"] or not network.same_network(ModelConfig.from_dict(c.config["model"])):
            raise ValueError(f"{c.path}: its feature or model config differs from {first.path}'s: not one network")
    states = [c.state["model_state"] for c in ckpts]
    mean = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            mean[key] = sum(s[key].double() for s in states).div(len(states)).to(value.dtype)
        else:  # integer buffers (BatchNorm's num_batches_tracked): the last checkpoint's
            mean[key] = states[-1][key]
    model = first.build_model()
    model.load_state_dict(mean)
    steps = [c.state.get("step") for c in ckpts]
    provenance = {"averaged": [str(p) for p in paths], "steps": steps}
    return model, first.config, provenance, ckpts[-1].state


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if len(args.checkpoints) < 2:
        ap.error("give at least two checkpoints to average")
    try:
        model, config, provenance, last = average(args.checkpoints)
    except ValueError as err:
        sys.exit(f"average_checkpoints: {err}")
    save_checkpoint(args.out, model, config, step=last.get("step"), cpu_seconds=last.get("cpu_seconds", 0.0),
                    provenance=provenance)
    print(f"wrote {args.out}: the mean of steps {', '.join(map(str, provenance['steps']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
