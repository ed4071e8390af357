"""How the beat model's outputs become beats (transcribe.beatmodel.beats_from_outputs: ``tempo``
global / local, ``metre`` head / downbeats / both, the global tempo's ``lags`` windowed / unbiased
and prior width in octaves, ``subdivision`` output / onsets), measured on ASAP training
performances the model did not see (issue 25): choose decoding settings here, never on the
held-out side.

Which performances: with ``--inner-val P`` (models trained with ``train_beat_model.py --inner-val
P``, the shipped one at 15) a seeded sample of the inner-validation works' performances (the
"inner 60" of docs/SCORE.md with ``--sample 60``); else the model was trained on a seeded subset
of the training side (``--seen N --seen-seed S``: the subset ``--limit N --seed S`` drew) and a
seeded sample of the other training performances is taken. The first ``--seconds`` of each are
decoded every way and scored as scripts/score_eval.py scores (mir_eval beat / downbeat F, the
estimated metre against the annotated main time signature, tempo within 8 %). ``--side val``
reports the same on the 41 held-out performances (report only).

    python scripts/beat_decoding_eval.py --shared-data ../shared/data --inner-val 15 --sample 60 \
        --variants global/downbeats/windowed/1/output,global/downbeats/unbiased/0.5/onsets
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
    ap.add_argument("--seen", type=int, default=None, help="how many training performances the model saw (--limit)")
    ap.add_argument("--seen-seed", type=int, default=0, help="the training run's --seed")
    ap.add_argument("--sample", type=int, default=60, help="unseen performances to decode")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--inner-val", type=float, default=None,
                    help="the model was trained with train_beat_model.py --inner-val this: decode its inner works")
    ap.add_argument("--rest", action="store_true",
                    help="with --inner-val: the inner works' performances outside the --sample ones instead (a model "
                         "selected on the decoded inner 60, train_beat_model.py --decoded-val 60, never saw how they decode)")
    ap.add_argument("--side", choices=["train", "val"], default="train",
                    help="val: the 41 held-out performances instead (to report, not to choose)")
    ap.add_argument("--note-window", type=int, default=None,
                    help="run the model over windows of this many notes (0: one pass; default: conf/score's "
                         "model_note_window, as the score stage runs it)")
    ap.add_argument("--variants", default="global/head,global/downbeats,global/both,local/head",
                    help="comma-separated tempo/metre[/lags/prior/subdivision] decodings to score "
                         "(lags windowed, prior 1, subdivision output where left out)")
    args = ap.parse_args(argv)
    if args.side == "train" and (args.seen is None) == (args.inner_val is None):
        ap.error("say which training performances the model did not see: --seen N or --inner-val P")
    if args.rest and args.inner_val is None:
        ap.error("--rest needs --inner-val")
    from transcribe import beatmodel as bm
    from transcribe.beats import TEMPO_LAGS

    variants = []
    for v in args.variants.split(","):
        parts = v.split("/")
        if not 2 <= len(parts) <= 5:
            ap.error(f"--variants: {v!r} is not tempo/metre[/lags/prior/subdivision]")
        defaults = ["windowed", "1", "output"]
        v = tuple(parts[:2]) + tuple(parts[2:] + defaults[len(parts) - 2:])
        allowed = (bm.TEMPOS, bm.METRES, TEMPO_LAGS, None, bm.SUBDIVISIONS)
        try:
            bad = [x for x, a in zip(v, allowed) if a is not None and x not in a] or ([] if float(v[3]) > 0 else [v[3]])
        except ValueError:
            bad = [v[3]]
        if bad:  # checked here: a wrong value must not read as a decoding that found too few beats
            ap.error(f"--variants: {'/'.join(v)}: {bad[0]!r} is not one of the choices (--help)")
        variants.append(v)

    from transcribe.data.asap import annotation_path, read_annotations, split
    from transcribe.notefiles import read_midi

    sys.path.insert(0, str(Path(__file__).parent))
    from train_beat_model import decoded_scores, first_seconds, seeded_sample, works_fold

    sides = split(args.asap, args.shared_data)
    if args.side == "val":
        files = sides["val"]
    elif args.inner_val is not None:
        _, inner = works_fold(sides["train"], args.inner_val)
        files = seeded_sample(inner, args.sample)
        if args.rest:  # the inner performances outside the sample: unseen by a selection on the sample
            sampled = set(files)
            files = [f for f in inner if f not in sampled]
    else:
        train = sides["train"]
        seen = set(np.random.default_rng(args.seen_seed).permutation(len(train))[: args.seen].tolist())
        unseen = [i for i in range(len(train)) if i not in seen]
        if not unseen:
            raise SystemExit("the model saw every training performance: nothing left to decode")
        files = [train[i] for i in sorted(np.random.default_rng(1).permutation(unseen)[: args.sample].tolist())]
    scores: dict[tuple[str, ...], list] = {v: [] for v in variants}
    model = bm.load(args.model or bm.WEIGHTS)
    if args.note_window is None:
        from transcribe.score import configured_model_note_window

        args.note_window = configured_model_note_window()
    for f in files:
        ann = read_annotations(annotation_path(f))
        n, ref, ref_down = first_seconds(read_midi(f), ann, args.seconds)
        out = bm.split_outputs(model(bm.note_features(n), args.note_window))
        for v in variants:
            scores[v].append(decoded_scores(n, ref, ref_down, ann.time_signature, out, tempo=v[0], metre=v[1],
                                            lags=v[2], prior_octaves=float(v[3]), subdivision=v[4]))
    what = "held-out" if args.side == "val" else "inner-validation (outside the sample)" if args.rest else "unseen training"
    print(f"{len(files)} {what} performances, first {args.seconds:g} s, the model over "
          + (f"windows of {args.note_window} notes" if args.note_window else "each whole sequence"))
    for v, rows in scores.items():
        m = np.nanmean(np.array(rows, dtype=float), axis=0)
        print(f"tempo={v[0]:<6} metre={v[1]:<9} lags={v[2]:<8} prior={v[3]:<4} subdivision={v[4]:<6} "
              f"beat F {m[0]:.3f}  downbeat F {m[1]:.3f}  "
              f"time signature {m[2]:.3f}  tempo {m[3]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
