"""Learning curves of training runs against the CPU time they spent (issue 26's bake-off).

Reads each run's ``metrics.jsonl`` (validation rows carry ``cpu_s``, the run's training CPU
seconds) and draws validation note F1 (tuned thresholds), frame F1 and note+offset+velocity F1
against CPU hours, one line per run, into one figure; prints the table of the points.

    python scripts/plot_bakeoff.py A=runs/bake_A B=runs/bake_B C=runs/bake_C --out docs/bakeoff.png

A run forked from another run's checkpoint (``train.init_from``) counts its CPU time from zero;
``--start NAME=HOURS`` puts it where its parent was (``C1lo=4.15``: forked at 4.15 CPU h).
``--bar LABEL=F1`` draws a level to beat on the note-F1 panel (the shipped model's validation row):

    python scripts/plot_bakeoff.py D=runs/longrun_D --bar "stage 7 (shipped)=0.794" --out docs/longrun_D.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRICS = (("tuned_note_f1", "note F1 (tuned)"), ("tuned_frame_f1", "frame F1 (tuned)"),
           ("tuned_note_offset_velocity_f1", "note+offset+velocity F1 (tuned)"))


def validation_rows(run: Path) -> list[dict]:
    """The validation rows of ``run/metrics.jsonl`` that know their CPU time, in step order."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return sorted((r for r in rows if "val_note_f1" in r and "cpu_s" in r), key=lambda r: r["step"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR")
    ap.add_argument("--out", type=Path, default=None, help="the figure (PNG); none: the table only")
    ap.add_argument("--start", action="append", default=[], metavar="NAME=HOURS",
                    help="CPU hours a run's starting checkpoint had already trained (a fork of another run)")
    ap.add_argument("--bar", action="append", default=[], metavar="LABEL=F1",
                    help="a horizontal line on the note-F1 panel: a level to beat (e.g. the shipped model's)")
    args = ap.parse_args()
    bars = [(label, float(value)) for label, value in (item.rsplit("=", 1) for item in args.bar)]
    start = {name: float(hours) * 3600 for name, hours in (item.split("=", 1) for item in args.start)}
    curves = {}
    for item in args.runs:
        name, run = item.split("=", 1)
        curves[name] = [dict(r, cpu_s=r["cpu_s"] + start.get(name, 0.0)) for r in validation_rows(Path(run))]
        print(f"## {name} ({run})")
        print("| step | CPU h | " + " | ".join(label for _, label in METRICS) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in METRICS) + " |")
        for r in curves[name]:
            print(f"| {r['step']} | {r['cpu_s'] / 3600:.2f} | "
                  + " | ".join(f"{r.get('val_' + k, float('nan')):.4f}" for k, _ in METRICS) + " |")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 4), constrained_layout=True)
        for ax, (key, label) in zip(axes, METRICS):
            for name, rows in curves.items():
                ax.plot([r["cpu_s"] / 3600 for r in rows], [r.get("val_" + key) for r in rows], marker="o", label=name)
            ax.set_xlabel("training CPU hours")
            ax.set_title(label)
            ax.grid(alpha=0.3)
        for i, (label, value) in enumerate(bars):
            axes[0].axhline(value, color=f"C{len(curves) + i}", linestyle="--", label=label)
        axes[0].legend()
        fig.savefig(args.out, dpi=110)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
