#!/usr/bin/env python
"""Accuracy check for the inference speed levers (see scripts/SPEED_NOTES.md).

Transcribes held-out labelled recordings with the reference pipeline (librosa CQT, torch
network, one chunk at a time: inference as it was before the speed work) and with each
lever, and prints note / note-with-offset / frame F1 for each, plus the largest difference
of the activations from the reference. A lever that changes numerics must not lower the mean
note F1 by more than 0.005.

    python scripts/validate_speed_levers.py                       # 4 files, shipped model
    python scripts/validate_speed_levers.py --files 6 --out levers.json --model runs/x/checkpoints/best.pt

Variants:
  reference      librosa.cqt + torch, batch_chunks=1
  numpy_cqt      transcribe.features.cqt_features (numpy/soxr CQT) + torch, batch_chunks=1
  torch_batched  numpy CQT + torch, chunks batched (the torch backend)
  onnx           numpy CQT + onnxruntime fp32 (the default backend)
  onnx_int8      numpy CQT + onnxruntime with MatMul and LSTM weights dynamically quantised to int8
  torch_int8     numpy CQT + torch.ao.quantization.quantize_dynamic({LSTM, Linear}, qint8)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("reference", "numpy_cqt", "torch_batched", "onnx", "onnx_int8", "torch_int8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "maps"), help="labelled data folder")
    p.add_argument("--glob", default="*_SptkBGCl*", help="held-out files (default: the validation piano)")
    p.add_argument("--files", type=int, default=4, help="how many held-out files (default 4)")
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma separated, from: " + ", ".join(VARIANTS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from transcribe.audio import load_audio
    from transcribe.checkpoint import SHIPPED_CHECKPOINT, build_model, load_checkpoint, typed_configs
    from transcribe.data.pairs import find_pairs
    from transcribe.features import cqt_features, cqt_features_librosa
    from transcribe.infer import InferConfig, Transcriber, run_network
    from transcribe.metrics import mean_metrics, transcription_metrics
    from transcribe.notefiles import read_labels
    from transcribe.runtime import OnnxRunner, TorchRunner, export_onnx

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    pairs = find_pairs(args.data, args.glob)[: args.files]
    if not pairs:
        print(f"no labelled files matching {args.glob} under {args.data}", file=sys.stderr)
        return 1
    ckpt = Path(args.model) if args.model else SHIPPED_CHECKPOINT
    state = load_checkpoint(ckpt)
    model, (features, decode) = build_model(state), typed_configs(state["config"])
    tr = Transcriber(TorchRunner(model), features, decode, InferConfig.default())

    runners: dict[str, object] = {"reference": model, "numpy_cqt": model, "torch_batched": model}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        fp32.write_bytes(export_onnx(model, state["config"], features.n_bins))
        if "onnx" in variants:
            runners["onnx"] = OnnxRunner(fp32, args.threads)
        if "onnx_int8" in variants:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            int8 = Path(tmp) / "int8.onnx"
            quantize_dynamic(str(fp32), str(int8), op_types_to_quantize=["MatMul", "LSTM"],
                             weight_type=QuantType.QInt8)
            runners["onnx_int8"] = OnnxRunner(int8, args.threads)
        if "torch_int8" in variants:
            runners["torch_int8"] = torch.ao.quantization.quantize_dynamic(
                build_model(state), {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)

        rows: dict[str, list[dict]] = {v: [] for v in variants}
        diffs: dict[str, float] = {v: 0.0 for v in variants}
        seconds: dict[str, float] = {v: 0.0 for v in variants}
        for audio_path, label_path in pairs:
            ref_notes = read_labels(label_path)
            y = load_audio(audio_path, features.sample_rate)
            f_np = cqt_features(y, features)
            reference = None
            for v in variants:
                t0 = time.perf_counter()
                feats = cqt_features_librosa(y, features) if v == "reference" else f_np
                batch = 1 if v in ("reference", "numpy_cqt") else 4
                act = run_network(runners[v], feats, tr.chunk_frames, tr.context_frames, batch_chunks=batch)
                seconds[v] += time.perf_counter() - t0
                if v == "reference":
                    reference = act
                if reference is not None:
                    diffs[v] = max(diffs[v], max(float(np.abs(act[k] - reference[k]).max()) for k in act))
                m = transcription_metrics(ref_notes, tr.notes_from_activations(act))
                m["file"] = audio_path.name
                rows[v].append(m)
            print(f"{audio_path.name} ({len(y) / features.sample_rate:.0f} s): "
                  + "  ".join(f"{v} {rows[v][-1]['note_f1']:.4f}" for v in variants), flush=True)

    summary = {}
    print(f"\nmean over {len(pairs)} files ({ckpt}):")
    print(f"{'variant':<14} {'note F1':>8} {'Δ vs ref':>9} {'offset F1':>9} {'frame F1':>9} {'max |Δact|':>11} {'seconds':>8}")
    base = mean_metrics(rows[variants[0]])["note_f1"]
    for v in variants:
        mean = mean_metrics(rows[v])
        summary[v] = {"mean": mean, "max_activation_diff": diffs[v], "seconds": seconds[v], "files": rows[v]}
        print(f"{v:<14} {mean['note_f1']:8.4f} {mean['note_f1'] - base:+9.4f} {mean['note_offset_f1']:9.4f} "
              f"{mean['frame_f1']:9.4f} {diffs[v]:11.2e} {seconds[v]:8.1f}")
    if args.out:
        args.out.write_text(json.dumps({"checkpoint": str(ckpt), "files": [str(a) for a, _ in pairs],
                                        "variants": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
