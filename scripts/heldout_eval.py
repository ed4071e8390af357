"""Shipping candidates against each other on every file of the held-out sets (issue 26's ship rule).

Training validates on 16 files; a step that leads there by less than the row-to-row spread ships only
after this: each model, with the decoder settings stored in it (thresholds, octave suppression,
chunking: what ``scripts/ship_model.py`` wrote), on all files of the four held-out sets: the 19 MAPS
SptkBGCl recordings, the 82 renders through the held-out Headroom piano, and both through the fixed
bank of rooms (docs/DATA.md). Per file and set it writes JSON under ``--out`` (one file per model and
set, resumable: a set already scored with the same checkpoint bytes is read back, not redone), then
prints each set's means and a paired comparison with the first model (the files where the others
are better, the mean difference and its standard error), over all files and over the files neither
model tuned its thresholds on.

    python scripts/heldout_eval.py stage7=transcribe/weights/model.pt cand=runs/ship/model.pt \\
        --out runs/heldout_eval
    python scripts/heldout_eval.py stage7=transcribe/weights/model.pt cand=runs/ship/model.pt \\
        --out runs/heldout_eval --sets sptk,headroom        # the dry sets only
    python scripts/heldout_eval.py a=A.pt b=B.pt --out runs/quick --set quick=data/renders_heldout:*Mozart* --sets quick

Notes are scored as ``transcribe-eval`` scores them (sounding notes, the pedal not decoded).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcribe.checkpoint import Checkpoint, file_digest  # noqa: E402
from transcribe.data.pairs import find_pairs  # noqa: E402
from transcribe.evaluate import evaluate_pairs  # noqa: E402
from transcribe.files import atomic_write  # noqa: E402
from transcribe.infer import Transcriber  # noqa: E402

# name: (folder, glob) -- the sets training validates on (scripts/longrun.sh), in full
SETS = {
    "sptk": ("../shared/data/maps", "*_SptkBGCl*"),
    "headroom": ("data/renders_heldout", None),
    "sptk_rooms": ("data/rooms/sptk", None),
    "headroom_rooms": ("data/rooms/headroom", None),
}


def score_set(name: str, path: Path, digest: str, set_name: str, out: Path, threads: int) -> dict:
    """Every file of one set through one model (``digest``: its checkpoint's SHA-256): the JSON report
    (read back when already there for the same checkpoint bytes)."""
    dest = out / name / f"{set_name}.json"
    if dest.exists():
        report = json.loads(dest.read_text())
        if report.get("checkpoint_sha256") == digest:
            print(f"{name} / {set_name}: read back {dest}")
            return report
    root, glob = SETS[set_name]
    pairs = find_pairs(root, glob)
    transcriber = Transcriber.from_checkpoint(path, decode={"pedal": False}, threads=threads)
    t0 = time.time()
    result = evaluate_pairs(transcriber, pairs, progress=lambda line: print(f"{name} / {set_name} {line}", flush=True),
                            where=root)
    report = {"checkpoint": str(path), "checkpoint_sha256": digest, "set": set_name, "root": root, "glob": glob,
              "seconds": time.time() - t0, **result}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(dest) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    return report


def tuned_on(path: Path) -> set[Path]:
    """The files a shipped checkpoint's thresholds were chosen on (its provenance), resolved."""
    prov = Checkpoint(path).state.get("provenance") or {}
    return {Path(f).resolve() for f in prov.get("tuned_on", [])}


def by_file(report: dict) -> dict[str, float]:
    """Note F1 by audio path relative to the set's folder (renders of two microphone positions share
    their names)."""
    root = Path(report["root"]).resolve()
    return {str(Path(r["file"]).resolve().relative_to(root)): r["note_f1"] for r in report["files"]}


def paired(base: dict[str, float], other: dict[str, float]) -> str:
    """``other`` against ``base`` file by file: wins, mean difference and its standard error."""
    common = sorted(set(base) & set(other))
    if not common:
        return "no files in common"
    d = [other[f] - base[f] for f in common]
    mean = sum(d) / len(d)
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d)) if len(d) > 1 else float("nan")
    wins = sum(x > 0 for x in d)
    return f"{mean:+.4f} ± {se:.4f} (better on {wins} of {len(d)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="NAME=CHECKPOINT; the first is the one the others are compared with")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of: {', '.join(SETS)}")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=FOLDER[:GLOB]",
                    help="add a set (or replace one of the four), e.g. --set quick=data/renders_heldout:*Mozart*")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    for spec in args.set:
        name, sep, where = spec.partition("=")
        root, _, glob = where.partition(":")
        if not sep or not Path(root).is_dir():
            ap.error(f"--set {spec}: expected NAME=FOLDER[:GLOB] with an existing folder")
        SETS[name] = (root, glob or None)
    models = []
    for spec in args.models:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            ap.error(f"{spec}: expected NAME=CHECKPOINT with an existing checkpoint file")
        models.append((name, Path(path)))
    sets = args.sets.split(",")
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        ap.error(f"unknown set(s): {', '.join(unknown)} (known: {', '.join(SETS)})")
    tuning = set().union(*(tuned_on(p) for _, p in models))

    digests = {n: file_digest(p) for n, p in models}
    reports = {(n, s): score_set(n, p, digests[n], s, args.out, args.threads) for s in sets for n, p in models}
    failed = [f for r in reports.values() for f in r["failed"]]
    print(f"\nnote F1 (P / R), note+offset, note+offset+velocity, frame F1; mean over files; "
          f"'untuned': without the {len(tuning)} files a model's thresholds were chosen on")
    for s in sets:
        print(f"\n{s} ({SETS[s][0]}{', ' + SETS[s][1] if SETS[s][1] else ''})")
        base = None
        for n, _ in models:
            report = reports[(n, s)]
            scores = by_file(report)
            root = Path(report["root"]).resolve()
            untuned = {f: v for f, v in scores.items() if root / f not in tuning}
            m = report["mean"]
            line = (f"  {n:<12} {len(scores):3d} files  {m['note_f1']:.4f} ({m['note_precision']:.3f} / {m['note_recall']:.3f})"
                    f"  {m['note_offset_f1']:.4f}  {m['note_offset_velocity_f1']:.4f}  {m['frame_f1']:.4f}")
            if len(untuned) < len(scores) and untuned:
                line += f"  untuned {len(untuned)}: {sum(untuned.values()) / len(untuned):.4f}"
            if base is None:
                base = (n, scores, untuned)
            else:
                line += f"\n  {'':<12} against {base[0]}: {paired(base[1], scores)}"
                if len(untuned) < len(scores):
                    line += f"; untuned {paired(base[2], untuned)}"
            print(line)
    if failed:
        print(f"\n{len(failed)} file(s) failed:", file=sys.stderr)
        for f in failed:
            print(f"  {f['file']}: {f['error']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
