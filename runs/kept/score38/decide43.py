"""Round 43's decision: A.json (the default) against B.json (the candidate), score_eval --beats-only rows: beat F +
downbeat F with a 95 % by-work bootstrap, the time signature, tempo.  python runs/score38/decide43.py A.json B.json"""
import json, sys
from pathlib import Path
import numpy as np

a, b = ({r["file"]: r for r in json.load(open(f))["performances"]} for f in sys.argv[1:3])
fs = sorted(set(a) & set(b))
val = lambda r, k: float(r[k] or 0.0) if k != "bd" else r["beat_f"] + (r["downbeat_f"] or 0.0)  # noqa: E731
by = {}
for f in fs:
    by.setdefault(str(Path(f).parent), []).append(f)
ws = sorted(by); rng = np.random.default_rng(0)
print(f"{len(fs)} performances, {len(ws)} works")
for k in ("bd", "beat_f", "downbeat_f", "time_signature_right", "time_signature_compatible", "tempo_right"):
    d = {f: val(b[f], k) - val(a[f], k) for f in fs}
    boots = [np.mean([d[f] for i in rng.choice(len(ws), len(ws)) for f in by[ws[i]]]) for _ in range(2000)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    print(f"  {k}: A {np.mean([val(a[f], k) for f in fs]):.4f} B {np.mean([val(b[f], k) for f in fs]):.4f} "
          f"diff {np.mean(list(d.values())):+.4f} [{lo:+.4f}, {hi:+.4f}]")
