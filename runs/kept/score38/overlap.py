"""Round 38: the outer works (round 33) that have a Mutopia score in the first batch, left out of round 38's
evaluation. Conservative (by collection where the numbering is unsure). Written 2026-12-07 20:25, before any
number of beats_open3 exists.  python runs/score38/overlap.py > runs/score38/eval_files.txt"""
import csv, re, sys
from pathlib import Path

rows = list(csv.DictReader(open("data/midi/mutopia/metadata.csv")))
text = lambda r: " ".join((r["opus"], r["title"], r["midi"]))  # noqa: E731
bwv = {int(m) for r in rows if "johann sebastian" in r["composer"].lower()
       for m in re.findall(r"BWV\s*(\d+)", text(r), re.I)}
# Beethoven's sonatas with a Mutopia score: op. 2/1 (no. 1), 10/2 (6), 27/2 (14, Moonlight), 49/2 (20), 57 (23),
# 78 (24), 79 (25), 90 (27)
beethoven = {1, 6, 14, 20, 23, 24, 25, 27}
drop_prefix = ["Chopin/Ballades/1",  # op. 23
               "Schubert/Impromptu_op.90_D.899", "Schubert/Impromptu_op142",  # D 899 nos. 2-3, D 935 nos. 1, 4
               "Rachmaninoff/Preludes_op_23"]  # op. 23 nos. 1, 10
kept, dropped = [], []
for line in Path("runs/score33/outer.txt").read_text().split():
    work = str(Path(line).parent).replace("data/asap/", "")
    m = re.match(r"Bach/(Prelude|Fugue)/bwv_(\d+)", work)
    b = re.match(r"Beethoven/Piano_Sonatas/(\d+)-", work)
    out = (m and int(m.group(2)) in bwv) or (b and int(b.group(1)) in beethoven) \
        or any(work.startswith(p) for p in drop_prefix)
    (dropped if out else kept).append(line)
print(f"{len(kept)} kept, {len(dropped)} left out; Mutopia BWV {sorted(bwv)}", file=sys.stderr)
print(f"left out works: {sorted({str(Path(d).parent) for d in dropped})}", file=sys.stderr)
print("\n".join(kept))
