"""The openings of ASAP performances' sampled renders, as audio files to transcribe: what
`train_beat_model.py --transcribed` and `score_eval.py --transcribed` read back once `transcribe`
has written their MIDI (docs/SCORE.md, round 17).

    python scripts/asap_render_crops.py --side inner --files runs/metre/inner60.txt --seconds 65 --out data/asap_crops/inner
    python scripts/asap_render_crops.py --side train --sample 240 --seconds 150 --out data/asap_crops/train
    transcribe data/asap_crops/inner data/asap_crops/train -o runs/score17/transcribed --threads 1

``--side train`` takes the training side's works outside the inner fold (``train_beat_model.works_fold``,
15 %), ``--side inner`` the inner fold's: the works the beat model is selected on are never
transcribed for its training. Each crop is the render's first ``--seconds`` (the renders play the
performance MIDI from their first sample, so the performance's annotations hold), named as the
render is (``render_stem``). A performance without a render is named on stderr and skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--asap", type=Path, default=Path("data/asap"))
    ap.add_argument("--shared-data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--renders", type=Path, default=Path("data/renders_sampled/asap"),
                    help="the sampled renders (PIANO/STEM.flac)")
    ap.add_argument("--side", choices=["train", "inner"], default="train")
    ap.add_argument("--files", type=Path, default=None,
                    help="a list of performance MIDI files (one a line) instead of the side's (e.g. the inner 60)")
    ap.add_argument("--sample", type=int, default=None, help="a seeded sample of this many of the side's performances")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    import soundfile as sf

    sys.path.insert(0, str(Path(__file__).parent))
    from train_beat_model import works_fold

    from transcribe.data.asap import split
    from transcribe.files import atomic_write
    from transcribe.render.sources import render_stem

    if args.files is not None:
        files = [Path(line.strip()) for line in args.files.read_text().splitlines() if line.strip()]
    else:
        kept, inner = works_fold(split(args.asap, args.shared_data)["train"], 15)
        files = kept if args.side == "train" else inner
        if args.sample is not None:
            order = np.random.default_rng(args.seed).permutation(len(files))[: args.sample]
            files = [files[i] for i in sorted(order)]
    renders = {p.stem: p for p in args.renders.glob("*/*.flac")}
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for f in files:
        src = renders.get(render_stem(f, args.asap))
        if src is None:
            print(f"{f}: no render under {args.renders}", file=sys.stderr)
            continue
        dst = args.out / f"{src.stem}.flac"
        if not dst.exists():
            rate = sf.info(src).samplerate
            audio, _ = sf.read(src, frames=int(args.seconds * rate), dtype="float32")
            with atomic_write(dst) as tmp:
                sf.write(tmp, audio, rate, format="FLAC")
        written += 1
    print(f"{written} of {len(files)} performances' first {args.seconds:g} s in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
