"""Evaluation: ``transcribe-eval data_dir=FOLDER [checkpoint=PATH] [output_json=FILE]``
(MAESTRO's test split: ``transcribe-eval data_dir=MAESTRO metadata=maestro-v3.0.0.csv split=test``).

Transcribes every audio file under a folder that has a label of the same stem (beside it,
or in a sibling ``labels/`` folder) and prints note, note-with-offset,
note-with-offset-and-velocity and frame precision/recall/F1 per file and as means.
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


def evaluate_folder(transcriber, data_dir: str | Path, glob: str | None = None, progress=print,
                    metadata: str | Path | None = None, split: str = "test") -> dict:
    """Score ``transcriber`` (an :class:`~transcribe.infer.Transcriber`) on a labelled folder,
    or, with ``metadata`` (a split table such as MAESTRO's ``maestro-v3.0.0.csv``), on the
    rows of ``split`` of that table.

    Returns ``{"files": [per-file rows], "mean": {...}, "failed": [{"file", "error"}]}``.
    """
    from .audio import AudioError
    from .data.pairs import find_pairs, pairs_from_table
    from .midi import read_labels

    if metadata:
        pairs = pairs_from_table(data_dir, metadata, split)
        if not pairs:
            raise FileNotFoundError(f"{data_dir}: no rows of split {split!r} in {metadata}")
    else:
        pairs = find_pairs(data_dir, glob)
    if not pairs:
        raise FileNotFoundError(f"{data_dir}: no audio files with labels of the same stem (.tsv, .mid, .midi)")
    rows, failed = [], []
    for i, (audio, label) in enumerate(pairs, 1):
        t0 = time.time()
        try:
            est = transcriber.transcribe_file(audio)
            ref = read_labels(label)
        except (AudioError, ValueError, OSError) as err:
            failed.append({"file": str(audio), "error": str(err)})
            progress(f"[{i}/{len(pairs)}] {audio.name}: FAILED: {err}")
            continue
        row = {"file": str(audio), "label": str(label), "n_ref": len(ref), "n_est": len(est),
               **transcription_metrics(ref, est)}
        rows.append(row)
        progress(f"[{i}/{len(pairs)}] {audio.name}: " + "  ".join(f"{k} {row[k]:.4f}" for k in SUMMARY)
                 + f"  ({time.time() - t0:.1f} s)")
    return {"files": rows, "mean": mean_metrics(rows), "failed": failed}


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="evaluate")
def _hydra_main(cfg: DictConfig) -> None:
    import torch

    from .checkpoint import CheckpointError
    from .infer import Transcriber

    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    try:
        transcriber = Transcriber.from_checkpoint(
            cfg.checkpoint, decode=OmegaConf.to_container(cfg.decode), chunk_seconds=cfg.chunk_seconds)
    except (CheckpointError, ValueError) as err:
        sys.exit(f"transcribe-eval: {err}")
    try:
        result = evaluate_folder(transcriber, cfg.data_dir, cfg.glob, metadata=cfg.get("metadata"),
                                 split=cfg.get("split", "test"))
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"transcribe-eval: {err}")
    mean = result["mean"]
    print(f"\nmean over {len(result['files'])} files:")
    for k in SUMMARY:
        if k in mean:
            p, r = mean[k.replace("_f1", "_precision")], mean[k.replace("_f1", "_recall")]
            print(f"  {k:<26} {mean[k]:.4f}   (precision {p:.4f}, recall {r:.4f})")
    if cfg.output_json:
        from dataclasses import asdict

        from .midi import atomic_write

        report = {"checkpoint": cfg.checkpoint or "shipped", "data_dir": str(cfg.data_dir), "glob": cfg.glob,
                  **({"metadata": str(cfg.metadata), "split": cfg.split} if cfg.get("metadata") else {}),
                  "decode": asdict(transcriber.decode), **result}
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
