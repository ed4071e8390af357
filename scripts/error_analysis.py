"""Where a model's note errors are, on labelled recordings: note F1 at 25/50/100 ms onset
tolerance (how much is timing), recall by velocity band and register, precision by register,
what the false notes are (timing, octave, semitone, a held note struck again, other) and what
the missed ones are, and how squeezed the velocities are. The issue's error list (#12) as a
measurement, to choose levers by.

    python scripts/error_analysis.py --checkpoint shipped --data-dir data/renders_heldout --files 12 \
        --json runs/errors_stage6_heldout.json
    python scripts/error_analysis.py --checkpoint runs/x/checkpoints/best.pt --data-dir ../shared/data/maps \
        --glob '*_SptkBGCl*'
    python scripts/error_analysis.py --checkpoint runs/leg3_C1/checkpoints/step3200.pt --onset 0.2 --frame 0.4 \
        --data-dir data/renders_heldout --files 16 --resonance -15    # a training checkpoint at its tuned thresholds

Files are spread over the name-sorted list (as validation takes them); transcribed as
``transcribe`` does (the checkpoint's decoder settings, the level step).

``--resonance DB`` first adds the ring of the undamped strings wherever a file's sustain pedal is
known and down (:mod:`transcribe.data.resonance`, at DB relative to the dry level; files whose
pedal is unknown are left out), to see what a real piano's pedal resonance does to a model trained
without it:

    python scripts/error_analysis.py --data-dir data/renders_heldout --files 16 --resonance -15
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcribe.audio import load_audio  # noqa: E402
from transcribe.data.pairs import find_pairs, spread  # noqa: E402
from transcribe.infer import Transcriber  # noqa: E402
from transcribe.metrics import breakdown_rates, error_breakdown, sum_breakdowns  # noqa: E402
from transcribe.notefiles import read_labels  # noqa: E402
from transcribe.data.resonance import pedal_down_mask, string_bank_ir, sympathetic  # noqa: E402
from transcribe.pedal import pedal_for  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="shipped", help="a .pt checkpoint, or 'shipped'")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--glob", default=None, help="only files whose name matches")
    ap.add_argument("--files", type=int, default=0, help="at most this many files (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write the counts and rates here")
    ap.add_argument("--resonance", type=float, default=None, metavar="DB",
                    help="add the strings' ring under the pedal at DB against the dry level (pedalled files only)")
    ap.add_argument("--onset", type=float, default=None,
                    help="onset threshold instead of the checkpoint's (e.g. a training run's tuned one)")
    ap.add_argument("--frame", type=float, default=None, help="frame threshold instead of the checkpoint's")
    args = ap.parse_args()

    pairs = spread(find_pairs(args.data_dir, args.glob))
    pedals = {}  # label -> its pedal spans, read once (--resonance only)
    if args.resonance is not None:
        pedals = {lab: pedal_for(lab) for _, lab in pairs}
        pairs = [(a, lab) for a, lab in pairs if pedals[lab] is not None]
    if args.files:
        pairs = pairs[: args.files]
    if not pairs:
        sys.exit(f"error_analysis: no labelled audio under {args.data_dir}" + (f" matching {args.glob}" if args.glob else ""))
    ckpt = None if args.checkpoint == "shipped" else args.checkpoint
    decode = {k: v for k, v in (("onset_threshold", args.onset), ("frame_threshold", args.frame)) if v is not None}
    transcriber = Transcriber.from_checkpoint(ckpt, decode=decode, threads=args.threads)
    parts = []
    for k, (audio, label) in enumerate(pairs, 1):
        y = load_audio(audio, transcriber.sample_rate)
        if args.resonance is not None:
            sr = transcriber.sample_rate
            y = sympathetic(y, sr, pedal_down_mask(pedals[label], 0.0, len(y), sr), args.resonance,
                            string_bank_ir(sr))
        est = transcriber.transcribe(y, transcriber.sample_rate)
        parts.append(error_breakdown(read_labels(label), est))
        print(f"[{k}/{len(pairs)}] {audio.name}: {parts[-1]['matched@50ms']} of {parts[-1]['ref']} notes found, "
              f"{parts[-1]['est']} written", flush=True)
    total = sum_breakdowns(parts)
    rates = breakdown_rates(total)
    print(f"\n{len(pairs)} files, {total['ref']} reference notes, {total['est']} transcribed:")
    for key, value in rates.items():
        kind, _, name = key.partition(" ")
        n = {"recall": total.get(f"ref {name}"), "precision": total.get(f"est {name}")}.get(kind)
        shown = f"{value:.3f}" if abs(value) <= 1.5 else f"{value:.1f}"
        print(f"  {key:<40} {shown}" + (f"   (of {n})" if n is not None else ""))
    if args.json:
        counts = {k: v for k, v in total.items() if k != "velocity pairs"}
        args.json.write_text(json.dumps({"checkpoint": args.checkpoint, "decode": decode, "data_dir": str(args.data_dir),
                                         "glob": args.glob, "resonance_db": args.resonance, "files": [str(a) for a, _ in pairs],
                                         "counts": counts, "rates": rates}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
