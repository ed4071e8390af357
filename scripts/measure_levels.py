"""Levels of audio sets as `transcribe` measures them (transcribe/level.py: the 95th percentile of
the 100 ms RMS, dBFS), with their whole-file RMS and peak: where infer.level_db comes from.

    python scripts/measure_levels.py --set 'maps_train=../shared/data/maps/audio/*.flac~SptkBGCl' \
        --set 'sptk=../shared/data/maps/audio/*SptkBGCl.flac' --set 'renders=data/renders_sampled/**/*.flac' \
        --set 'heldout=data/renders_heldout/**/*.flac'

A set is NAME=GLOB, optionally ~TEXT to leave out paths containing TEXT (MAPS Disklavier
recordings, ENSTDk, are always left out).
Prints the 5th / 50th / 95th percentile over a seeded sample of each set's files.
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcribe.audio import load_audio  # noqa: E402
from transcribe.level import level_db  # noqa: E402

SR = 16000


def measure(path: str) -> dict[str, float]:
    y = load_audio(path, SR)
    return {"level": level_db([y], SR), "rms": float(10 * np.log10(np.mean(y.astype(np.float64) ** 2) + 1e-20)),
            "peak": float(20 * np.log10(np.abs(y).max() + 1e-20))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", action="append", required=True, metavar="NAME=GLOB[~TEXT]", help="a set of audio files")
    ap.add_argument("--files", type=int, default=25, help="files sampled per set")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for spec in args.set:
        name, _, pattern = spec.partition("=")
        pattern, _, leave_out = pattern.partition("~")
        files = sorted(p for p in glob.glob(pattern, recursive=True)
                       if "ENSTDk" not in p and not (leave_out and leave_out in p))
        if not files:
            raise SystemExit(f"--set {spec}: no files")
        pick = np.random.default_rng(args.seed).permutation(len(files))[: args.files]
        rows = [measure(files[i]) for i in pick]
        cells = "  ".join(f"{k} " + " / ".join(f"{np.percentile([r[k] for r in rows], q):.1f}" for q in (5, 50, 95))
                          for k in ("level", "rms", "peak"))
        print(f"{name} ({len(rows)} of {len(files)} files): {cells}", flush=True)


if __name__ == "__main__":
    main()
