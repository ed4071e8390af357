"""Prepare a trained checkpoint for shipping: choose decoder thresholds on labelled tuning
files, drop optimizer state, write a small inference checkpoint, and write its ONNX export
beside it (``model.onnx`` and ``model.onnx.json``, which records the checkpoint's SHA-256), so
that inference with it needs no torch.

    python scripts/ship_model.py runs/maps_v2/checkpoints/best.pt \
        --data-dir ../shared/data/maps --glob '*_SptkBGCl*' --tune-files 8 \
        --out transcribe/weights/model.pt

    python scripts/ship_model.py --onnx-only transcribe/weights/model.pt   # re-export only (e.g. after
                                                                          # runtime.EXPORT_VERSION changed)

Thresholds are chosen on ``--tune-files`` of the matching files (spread over the name-sorted
list, taken in turn from ``--data-dir`` and each ``--extra-dir``), as training validation picks
them; report scores on files that were not used for tuning as well (see the model card).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcribe.audio import load_audio  # noqa: E402
from transcribe.checkpoint import Checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from transcribe.data.pairs import find_pairs, interleave, spread  # noqa: E402
from transcribe.infer import Transcriber  # noqa: E402
from transcribe.pedal import pedal_for  # noqa: E402
from transcribe.tuning import best_thresholds, sweep_pedal_thresholds, sweep_thresholds  # noqa: E402
from transcribe.notefiles import read_labels  # noqa: E402
from transcribe.runtime import export_beside, export_paths, write_export  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--onnx-only", action="store_true",
                    help="only (re)write the ONNX export beside CHECKPOINT (an already shipped checkpoint)")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--glob", default=None, help="only files of --data-dir whose name matches")
    ap.add_argument("--extra-dir", type=Path, action="append", default=[],
                    help="another labelled folder to tune on, all of it (e.g. renders through held-out pianos)")
    ap.add_argument("--tune-files", type=int, default=8)
    ap.add_argument("--onset", default="0.3,0.4,0.5,0.6,0.7", help="onset thresholds to try")
    ap.add_argument("--frame", default="0.3,0.4,0.5,0.6", help="frame thresholds to try")
    ap.add_argument("--octave", default="0", help="decode.octave_suppression values to try with every threshold pair "
                    "(e.g. 0,0.25,0.5; the harmonic networks gain from it)")
    ap.add_argument("--twelfth", default="0", help="decode.twelfth_suppression values to try with every octave value "
                    "and threshold pair (e.g. 0,0.25,0.5)")
    ap.add_argument("--pedal", default="0.3,0.4,0.5,0.6,0.7",
                    help="pedal thresholds to try (models with a pedal head; tuned on the files whose pedal is known)")
    ap.add_argument("--pedal-onset", default="0.3,0.5,0.7", help="pedal-onset (re-press) thresholds to try")
    ap.add_argument("--pedal-off", action="store_true",
                    help="ship with decode.pedal false: the pedal head is there (key-release notes use it) but its "
                    "pedal (CC64) is written only on request (transcribe --pedal); for a head not yet good enough")
    ap.add_argument("--chunk-seconds", type=float, default=None,
                    help="store this chunk length (s) in the shipped checkpoint: the network runs on chunks this long "
                         "unless the user asks otherwise (conf/infer model_chunking), e.g. 20 for a network whose peak "
                         "memory grows with the chunk; default: the source checkpoint's, else conf/infer's")
    ap.add_argument("--batch-chunks", type=int, default=None,
                    help="store this many chunks a batch with --chunk-seconds (default 1)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.onnx_only:
        ship_onnx(args.checkpoint)
        return
    if args.data_dir is None or args.out is None:
        ap.error("--data-dir and --out are required (unless --onnx-only)")

    state = load_checkpoint(args.checkpoint)
    transcriber = Transcriber.from_checkpoint(args.checkpoint)
    pairs = interleave([spread(find_pairs(args.data_dir, args.glob))]
                       + [spread(find_pairs(d)) for d in args.extra_dir])[: args.tune_files]
    print(f"tuning on {len(pairs)} files: {', '.join(a.name for a, _ in pairs)}")
    cached = [(transcriber.activations(load_audio(a, transcriber.sample_rate)), read_labels(lab)) for a, lab in pairs]
    found = []  # ((octave, twelfth) suppression, best threshold pair with it)
    for octave, twelfth in ((float(o), float(t)) for o in args.octave.split(",") for t in args.twelfth.split(",")):
        results = sweep_thresholds(cached, transcriber.features.frame_rate,
                                   replace(transcriber.decode, octave_suppression=octave, twelfth_suppression=twelfth),
                                   map(float, args.onset.split(",")), map(float, args.frame.split(",")))
        for r in results:
            m = r.metrics
            print(f"octave {octave:.2f} twelfth {twelfth:.2f} onset {r.onset_threshold:.2f} frame {r.frame_threshold:.2f}: "
                  f"note {m['note_f1']:.4f}  note+offset {m['note_offset_f1']:.4f}  frame {m['frame_f1']:.4f}")
        found.append(((octave, twelfth), best_thresholds(results)))
    (octave, twelfth), best = max(found, key=lambda item: item[1].score)  # the first of equals: the list's order
    on, fr, m = best.onset_threshold, best.frame_threshold, best.metrics
    decode = replace(transcriber.decode, onset_threshold=on, frame_threshold=fr, octave_suppression=octave,
                     twelfth_suppression=twelfth)
    print(f"chosen: onset_threshold={on} frame_threshold={fr} octave_suppression={octave} "
          f"twelfth_suppression={twelfth} (sum of note, note+offset and frame F1)")
    provenance = {"source": str(args.checkpoint), "step": state.get("step"),
                  "tuned_on": [str(a) for a, _ in pairs], "tuning_scores": m}
    decode = tune_pedal(decode, [(act, pedal_for(lab)) for (act, _), (_, lab) in zip(cached, pairs)],
                        transcriber.features.frame_rate, args, provenance)
    if args.pedal_off:
        decode = replace(decode, pedal=False)
        print("decode.pedal=false: the pedal is written only on request (transcribe --pedal)")
    config = dict(state["config"], decode=asdict(decode))
    if args.chunk_seconds is not None:
        config["infer"] = {"chunk_seconds": args.chunk_seconds, "batch_chunks": args.batch_chunks or 1}
        print(f"runs on chunks of {args.chunk_seconds:g} s, {args.batch_chunks or 1} a batch, unless asked otherwise")
    save_checkpoint(args.out, Checkpoint(args.checkpoint).build_model(), config, step=state.get("step"), provenance=provenance)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MB)")
    print(json.dumps(provenance, indent=1))
    ship_onnx(args.out)


def tune_pedal(decode, recordings: list, frame_rate: float, args: argparse.Namespace, provenance: dict):
    """``decode`` with the pedal thresholds that score best on the ``recordings`` whose pedal is
    known (activations, spans or None); unchanged (and said so) for a model without a pedal head
    or when no tuning file has a known pedal. The choice goes into ``provenance``."""
    known = [(act, ref) for act, ref in recordings if ref is not None and "pedal" in act]
    if not any("pedal" in act for act, _ in recordings):
        return decode
    if not known:
        print("no tuning file has a known pedal (<stem>.pedal.tsv): the pedal thresholds stay as configured")
        return decode
    results = sweep_pedal_thresholds(known, frame_rate, decode, map(float, args.pedal.split(",")),
                                     map(float, args.pedal_onset.split(",")))
    for r in results:
        m = r.metrics
        print(f"pedal {r.pedal_threshold:.2f} pedal onset {r.pedal_onset_threshold:.2f}: press {m['pedal_onset_f1']:.4f}  "
              f"lift {m['pedal_offset_f1']:.4f}  pedal frame {m['pedal_frame_f1']:.4f}")
    best = best_thresholds(results)
    print(f"chosen on {len(known)} files with a known pedal: pedal_threshold={best.pedal_threshold} "
          f"pedal_onset_threshold={best.pedal_onset_threshold} (sum of press, lift and pedal-frame F1)")
    provenance["pedal_tuning_scores"] = best.metrics
    return replace(decode, pedal_threshold=best.pedal_threshold, pedal_onset_threshold=best.pedal_onset_threshold)


def ship_onnx(checkpoint: Path) -> None:
    """Write the ONNX export of ``checkpoint`` beside it and check it: its record names the
    checkpoint's SHA-256 and its network gives the checkpoint's activations."""
    import numpy as np

    from transcribe.infer import Transcriber, run_network

    onnx_path = write_export(checkpoint)
    ckpt = Checkpoint(checkpoint)
    found = export_beside(ckpt)
    assert found is not None, f"{onnx_path}: the export just written does not verify"
    x = np.random.default_rng(0).normal(-4, 1, (300, ckpt.build_model().n_bins)).astype(np.float32)
    onnx_out = run_network(Transcriber.from_checkpoint(ckpt, backend="onnx").runner, x, 1000, 0)
    torch_out = run_network(ckpt.build_model(), x, 1000, 0)
    worst = max(float(np.abs(onnx_out[k] - torch_out[k]).max()) for k in onnx_out)
    assert worst < 1e-4, f"{onnx_path}: ONNX and torch activations differ by {worst}"
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 2**20:.1f} MB) and {export_paths(checkpoint)[1].name}: "
          f"the export of {checkpoint.name} (SHA-256 {ckpt.digest[:16]}...), activations within {worst:.1e} of torch")


if __name__ == "__main__":
    main()
