"""How the beat model's outputs become beats (transcribe.beatmodel.beats_from_outputs: ``tempo``
global / local, ``metre`` head / downbeats / both), measured on ASAP training performances the
model did not see (issue 25): choose decoding settings here, never on the held-out side.

The shipped model was trained on a seeded subset of the training side (``--seen N --seen-seed S``:
the subset scripts/train_beat_model.py's ``--limit N --seed S`` drew); a seeded sample of the
other training performances, first ``--seconds`` each, is decoded every way and scored as
scripts/score_eval.py scores (mir_eval beat / downbeat F, the estimated metre against the
annotated main time signature, tempo within 8 %).

    python scripts/beat_decoding_eval.py --shared-data ../shared/data --seen 300 --sample 60
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--asap", type=Path, default=Path("data/asap"))
    ap.add_argument("--shared-data", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=None, help="an exported beat model (default: the shipped one)")
    ap.add_argument("--seen", type=int, required=True, help="how many training performances the model saw (--limit)")
    ap.add_argument("--seen-seed", type=int, default=0, help="the training run's --seed")
    ap.add_argument("--sample", type=int, default=60, help="unseen performances to decode")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--variants", default="global/head,global/downbeats,global/both,local/head",
                    help="comma-separated tempo/metre decodings to score")
    args = ap.parse_args(argv)

    import mir_eval

    from transcribe import beatmodel as bm
    from transcribe.data.asap import annotation_path, read_annotations, split
    from transcribe.notefiles import read_midi
    from transcribe.notes import Notes

    train = split(args.asap, args.shared_data)["train"]
    seen = set(np.random.default_rng(args.seen_seed).permutation(len(train))[: args.seen].tolist())
    unseen = [i for i in range(len(train)) if i not in seen]
    if not unseen:
        raise SystemExit("the model saw every training performance: nothing left to decode")
    pick = sorted(np.random.default_rng(1).permutation(unseen)[: args.sample].tolist())
    ap_variants = [v.split("/") for v in args.variants.split(",")]
    variants = [(t, m) for t, m in ap_variants]
    scores: dict[tuple[str, str], list] = {v: [] for v in variants}
    trim = mir_eval.beat.trim_beats
    model = bm.load(args.model or bm.WEIGHTS)
    for i in pick:
        f = train[i]
        n = read_midi(f).sorted()
        ann = read_annotations(annotation_path(f))
        keep = n.onsets < args.seconds
        n = bm.sort_notes(Notes(n.onsets[keep], n.offsets[keep], n.pitches[keep], n.velocities[keep]))
        ref, ref_down = ann.beats[ann.beats < args.seconds], ann.downbeats[ann.downbeats < args.seconds]
        out = bm.split_outputs(model(bm.note_features(n)))
        for v in variants:
            try:
                b = bm.beats_from_outputs(n, out, tempo=v[0], metre=v[1])
            except ValueError:  # too few beats: scored as all wrong
                scores[v].append((0.0, 0.0, 0.0, 0.0))
                continue
            down = b.times[b.downbeat % b.beats_per_bar::b.beats_per_bar]
            ref_tempo = 60.0 / float(np.median(np.diff(ref)))
            scores[v].append((mir_eval.beat.f_measure(trim(ref), trim(b.times)),
                              mir_eval.beat.f_measure(trim(ref_down), trim(down)) if len(ref_down) else np.nan,
                              float(b.time_signature == ann.time_signature),
                              float(abs(b.tempo / ref_tempo - 1.0) <= 0.08)))
    print(f"{len(pick)} unseen training performances, first {args.seconds:g} s")
    for v, rows in scores.items():
        m = np.nanmean(np.array(rows, dtype=float), axis=0)
        print(f"tempo={v[0]:<6} metre={v[1]:<9} beat F {m[0]:.3f}  downbeat F {m[1]:.3f}  "
              f"time signature {m[2]:.3f}  tempo {m[3]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
