"""Round 46: the outer works (round 33) that have a Mutopia score in the whole compile (687 files), left out of round
46's evaluation. Conservative (a whole sonata or collection where a movement or number is in Mutopia). Written
2026-12-07 22:45, before any number of beats_open4 exists (its run had not reached a validation row), from
data/midi/mutopia/metadata.csv read by composer (SCORE.md round 46).
python runs/score46/overlap.py > runs/score46/eval_files.txt"""
import csv, re, sys
from pathlib import Path

rows = list(csv.DictReader(open("data/midi/mutopia/metadata.csv")))
text = lambda r: " ".join((r["opus"], r["title"], r["midi"]))  # noqa: E731
bwv = {int(m) for r in rows if "bach" in r["composer"].lower() and "j" in r["composer"].lower()
       for m in re.findall(r"BWV\s*-?\s*(\d+)", text(r), re.I)}
# Beethoven's sonatas with a Mutopia score (any movement): op. 2/1 (no. 1), 10/1 (5), 10/2 (6), 27/2 (14), 31/2 (17,
# its 2nd movement), 49/1 (19), 49/2 (20), 57 (23), 78 (24), 79 (25), 90 (27)
beethoven = {1, 5, 6, 14, 17, 19, 20, 23, 24, 25, 27}
drop_prefix = ["Chopin/Ballades/1",  # op. 23
               "Chopin/Etudes_op_10/12", "Chopin/Etudes_op_25/1",
               "Liszt/Ballade_2", "Brahms/Six_Pieces_op_118/2",
               "Schubert/Impromptu_op.90_D.899", "Schubert/Impromptu_op142", "Schubert/Moment_musical_no_3",
               "Rachmaninoff/Preludes_op_23"]  # op. 23 nos. 1, 3-6, 8-10
kept, dropped = [], []
for line in Path("runs/score33/outer.txt").read_text().split():
    work = str(Path(line).parent).replace("data/asap/", "")
    m = re.match(r"Bach/(Prelude|Fugue)/bwv_(\d+)", work)
    b = re.match(r"Beethoven/Piano_Sonatas/(\d+)-", work)
    out = (m and int(m.group(2)) in bwv) or (b and int(b.group(1)) in beethoven) \
        or any(work == p or work.startswith(p + "/") or work.startswith(p + "_") for p in drop_prefix)
    (dropped if out else kept).append(line)
print(f"{len(kept)} kept, {len(dropped)} left out; Mutopia BWV {sorted(bwv)}", file=sys.stderr)
print(f"left out works: {sorted({str(Path(d).parent) for d in dropped})}", file=sys.stderr)
print("\n".join(kept))
