"""Evaluation: ``transcribe-eval [overrides]`` (``conf/evaluate.yaml``).

Transcribes every recording of a split of a ``data`` config (by default the validation split:
MAPS's held-out piano) and prints note, note-with-offset, note-with-offset-and-velocity and
frame precision/recall/F1 per file and as means; for a model with a pedal head, on recordings
whose sustain pedal is known (render sidecars, MIDI labels' CC64), also pedal press / lift
(within 100 ms) and pedal-frame precision/recall/F1 (:func:`~transcribe.metrics.pedal_metrics`),
optionally at several pedal thresholds (``pedal_thresholds``: choose one on validation data).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .config import conf_dir
from .metrics import mean_metrics, transcription_metrics

SUMMARY = ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1")
PEDAL_SUMMARY = ("pedal_onset_f1", "pedal_offset_f1", "pedal_frame_f1")


def evaluate_folder(transcriber, data_dir: str | Path, glob: str | None = None, progress=print,
                    metadata: str | Path | None = None, split: str = "test") -> dict:
    """Score ``transcriber`` on every labelled file under a folder, or, with ``metadata`` (a
    split table such as MAESTRO's ``maestro-v3.0.0.csv``), on the rows of ``split`` of that table
    (see :func:`evaluate_pairs`)."""
    from .data.pairs import find_pairs, pairs_from_table

    pairs = pairs_from_table(data_dir, metadata, split) if metadata else find_pairs(data_dir, glob)
    return evaluate_pairs(transcriber, pairs, progress, where=f"{data_dir}" + (f" ({metadata}: {split})" if metadata else ""))


def evaluate_pairs(transcriber, pairs: list[tuple[Path, Path]], progress=print, where: str = "",
                   pedal_thresholds: list[float] | None = None) -> dict:
    """Score ``transcriber`` (an :class:`~transcribe.infer.Transcriber`) on (audio, label) pairs.

    Files whose sustain pedal is known (:func:`~transcribe.pedal.pedal_for`) also get pedal
    metrics when the model has a pedal head; with ``pedal_thresholds``, at each of them too
    (keys ``pedal_onset_f1@0.4`` ...), for choosing ``decode.pedal_threshold`` on validation data.
    Returns ``{"files": [per-file rows], "mean": {...}, "failed": [{"file", "error"}]}``.
    """
    from dataclasses import replace

    from .audio import AudioError
    from .decode import decode_pedal
    from .metrics import pedal_metrics
    from .notefiles import read_labels
    from .pedal import pedal_for

    if not pairs:
        raise FileNotFoundError(f"{where}: no audio files with labels of the same stem (.tsv, .mid, .midi)")
    rows, failed = [], []
    for i, (audio, label) in enumerate(pairs, 1):
        t0 = time.time()
        try:
            res = transcriber.transcribe_stream(audio, keep_seconds=1e9 if pedal_thresholds else 0.0)
            est, ref, ref_pedal = res.notes, read_labels(label), pedal_for(label)
        except (AudioError, ValueError, OSError) as err:
            failed.append({"file": str(audio), "error": str(err)})
            progress(f"[{i}/{len(pairs)}] {audio.name}: FAILED: {err}")
            continue
        row = {"file": str(audio), "label": str(label), "n_ref": len(ref), "n_est": len(est),
               **transcription_metrics(ref, est)}
        if res.pedal is not None and ref_pedal is not None:
            row.update(pedal_metrics(ref_pedal, res.pedal))
            act, fr = res.activations, transcriber.features.frame_rate
            for thr in (pedal_thresholds or []) if "pedal" in act else []:
                spans = decode_pedal(act["pedal"], act.get("pedal_onset"), fr, replace(transcriber.decode, pedal_threshold=thr))
                row.update({f"{k}@{thr:g}": v for k, v in pedal_metrics(ref_pedal, spans).items() if k.endswith("_f1")})
        rows.append(row)
        progress(f"[{i}/{len(pairs)}] {audio.name}: " + "  ".join(f"{k} {row[k]:.4f}" for k in SUMMARY + PEDAL_SUMMARY
                                                                   if k in row) + f"  ({time.time() - t0:.1f} s)")
    return {"files": rows, "mean": mean_metrics(rows), "failed": failed}


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="evaluate")
def _hydra_main(cfg: DictConfig) -> None:
    from dataclasses import asdict

    from .checkpoint import CheckpointError
    from .data.pairs import eval_pairs
    from .files import atomic_write
    from .infer import InferConfig, Transcriber

    if str(cfg.decode.get("notes", "sounding")) != "sounding":
        sys.exit(f"transcribe-eval: decode.notes={cfg.decode.notes} cannot be scored: the labels end each note "
                 "where its sound ends (the pedal holding it), so estimated key releases would count as offset "
                 "errors; evaluate with decode.notes=sounding (the default)")
    try:
        # a pedal head is scored even where its checkpoint writes no pedal by default (decode.pedal
        # switches the output, not the head); decode.pedal=false on the command line still turns it off
        decode = {"pedal": True, **OmegaConf.to_container(cfg.decode)}
        transcriber = Transcriber.from_checkpoint(cfg.checkpoint, decode=decode, infer=InferConfig.from_dict(cfg.infer))
        pairs = eval_pairs(cfg.data, cfg.split, cfg.glob)
        where = f"{cfg.data.root} (split {cfg.split}" + (f", glob {cfg.glob})" if cfg.glob else ")")
        thresholds = [float(t) for t in cfg.pedal_thresholds] if cfg.pedal_thresholds else None
        result = evaluate_pairs(transcriber, pairs, where=where, pedal_thresholds=thresholds)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        sys.exit(f"transcribe-eval: {err}")
    mean = result["mean"]
    print(f"\nmean over {len(result['files'])} files:")
    for k in SUMMARY + PEDAL_SUMMARY:
        if k in mean:
            p, r = mean[k.replace("_f1", "_precision")], mean[k.replace("_f1", "_recall")]
            print(f"  {k:<26} {mean[k]:.4f}   (precision {p:.4f}, recall {r:.4f})")
    if "pedal_onset_f1" in mean:
        n = sum("pedal_onset_f1" in f for f in result["files"])
        print(f"  (pedal: {n} file(s) with a known pedal; presses and lifts match within 100 ms)")
    sweep = {k: v for k, v in mean.items() if "@" in k}
    if sweep:
        print("  pedal thresholds (mean F1: press / lift / frames):")
        for thr in sorted({k.split("@")[1] for k in sweep}, key=float):
            print(f"    {thr:<6} {sweep[f'pedal_onset_f1@{thr}']:.4f} / {sweep[f'pedal_offset_f1@{thr}']:.4f} / "
                  f"{sweep[f'pedal_frame_f1@{thr}']:.4f}")
    if cfg.output_json:
        report = {"checkpoint": cfg.checkpoint or "shipped", "data_root": str(cfg.data.root), "split": cfg.split,
                  "glob": cfg.glob, "decode": asdict(transcriber.decode), **result}
        with atomic_write(cfg.output_json) as tmp:
            tmp.write_text(json.dumps(report, indent=1))
        print(f"wrote {cfg.output_json}")
    if result["failed"]:
        print(f"{len(result['failed'])} file(s) failed:", file=sys.stderr)
        for f in result["failed"]:
            print(f"  {f['error']}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    """Console-script entry point (``transcribe-eval``)."""
    _hydra_main()


if __name__ == "__main__":
    main()
