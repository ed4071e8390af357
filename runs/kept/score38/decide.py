"""Round 38's decision (runs/score38/RULE.md): staves.onnx (old) against beats_open3 (new) on eval_files.txt.
(a) round 34's downbeat F (score_eval --beats notes --beats-only, mean over performances), (b) the staff prior's
staves right (notation_eval --seconds 60, notes pooled), each with a 95 % by-work bootstrap of new - old.
python runs/score38/decide.py runs/score38/eval"""
import json, sys
from pathlib import Path
import numpy as np

d = Path(sys.argv[1])
work = lambda f: str(Path(f).parent)  # noqa: E731


def boot(by_work, stat, n=2000, seed=0):
    ws = sorted(by_work)
    rng = np.random.default_rng(seed)
    b = [stat([x for i in rng.choice(len(ws), len(ws)) for x in by_work[ws[i]]]) for _ in range(n)]
    return np.percentile(b, [2.5, 97.5])


def rows(name):
    j = json.loads((d / name).read_text())
    return {r.get("file", r.get("performance")): r for r in j.get("performances", j.get("rows", []))}


# (a) downbeat F
o, n = rows("db_old.json"), rows("db_new.json")
files = sorted(set(o) & set(n))
by = {}
for f in files:
    by.setdefault(work(f), []).append((o[f].get("downbeat_f") or 0.0, n[f].get("downbeat_f") or 0.0))
mean = lambda xs: float(np.mean([b - a for a, b in xs]))  # noqa: E731
lo, hi = boot(by, mean)
print(f"(a) downbeat F on {len(files)} performances of {len(by)} works: old {np.mean([a for v in by.values() for a, _ in v]):.4f} "
      f"new {np.mean([b for v in by.values() for _, b in v]):.4f} diff {mean([x for v in by.values() for x in v]):+.4f} [{lo:+.4f}, {hi:+.4f}]")
for k in ("beat_f", "time_signature_right", "tempo_right"):
    print(f"    {k}: old {np.mean([float(o[f][k] or 0) for f in files]):.4f} new {np.mean([float(n[f][k] or 0) for f in files]):.4f}")
ch = [f for f in files if (o[f].get("downbeat_f") or 0) != (n[f].get("downbeat_f") or 0)]
print(f"    changed {len(ch)}: better {sum((n[f]['downbeat_f'] or 0) > (o[f]['downbeat_f'] or 0) for f in ch)}")

# (b) staves right
if (d / "nt_new.json").exists():
    o, n = rows("nt_old.json"), rows("nt_new.json")
    files = sorted(set(o) & set(n))
    by = {}
    for f in files:
        by.setdefault(work(f), []).append((o[f]["staff_split"], n[f]["staff_split"], o[f]["staff_counted"]))
    pooled = lambda xs, i: sum(x[i] for x in xs) / max(sum(x[2] for x in xs), 1)  # noqa: E731
    diff = lambda xs: pooled(xs, 1) - pooled(xs, 0)  # noqa: E731
    allx = [x for v in by.values() for x in v]
    lo, hi = boot(by, diff)
    print(f"(b) staves right on {len(files)} performances of {len(by)} works ({sum(x[2] for x in allx)} notes): "
          f"old {pooled(allx, 0):.4f} new {pooled(allx, 1):.4f} diff {diff(allx):+.4f} [{lo:+.4f}, {hi:+.4f}]")
