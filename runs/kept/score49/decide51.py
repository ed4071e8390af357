"""Round 51 (runs/score49/RULE.md): theta of the half-beat ratio by 5-fold cross-validation by work over the 777, then
applied to the other sets.  python runs/score49/decide51.py"""
import json
import numpy as np

R = "runs/score49/rows/"
THETAS = [0.8, 1.0, 1.25, 1.5, 2.0, 3.0, float("inf")]
KEYS = ("ts_right", "beat_f", "downbeat_f", "tempo_right")


def load(*fs):
    return [r for f in fs for r in map(json.loads, open(f)) if "error" not in r]


def out(r, theta):
    return r["dotted"] if r.get("ratio", -1) > theta else r["default"]


def total(rs, theta):
    return sum(float(out(r, theta)["ts_right"]) for r in rs)


rows = load(R + "r51_outer.jsonl", R + "r51_outer.jsonl.b")
works = sorted({r["work"] for r in rows})
order = np.random.default_rng(0).permutation(len(works))
fold = {works[i]: k % 5 for k, i in enumerate(order)}
chosen, oof = [], {}
for k in range(5):
    tr = [r for r in rows if fold[r["work"]] != k]
    best = max(THETAS[::-1], key=lambda t: total(tr, t))  # ties: the larger theta (listed first)
    chosen.append(best)
    oof.update({r["file"]: out(r, best) for r in rows if fold[r["work"]] == k})
print(f"{len(rows)} performances, {len(works)} works; {sum('ratio' in r for r in rows)} written with a simple bar of 3; folds chose {chosen}")
for t in THETAS:
    print(f"  theta {t}: time signature right {total(rows, t) / len(rows):.4f}, changed {sum(r.get('ratio', -1) > t for r in rows)}")
by = {}
for r in rows:
    by.setdefault(r["work"], []).append(r)
rng = np.random.default_rng(0)
draws = [rng.choice(len(works), len(works)) for _ in range(2000)]
for key in KEYS:
    d = {r["file"]: float(oof[r["file"]][key]) - float(r["default"][key]) for r in rows}
    bs = [np.mean([d[r["file"]] for j in dr for r in by[works[j]]]) for dr in draws]
    print(f"  out of fold {key}: default {np.mean([float(r['default'][key]) for r in rows]):.4f} -> "
          f"{np.mean([float(oof[r['file']][key]) for r in rows]):.4f}, diff {np.mean(list(d.values())):+.4f} "
          f"[{np.percentile(bs, 2.5):+.4f}, {np.percentile(bs, 97.5):+.4f}]")
cand = [r for r in rows if "ratio" in r]
for ts in ("6/8", "3/4", "3/8", "9/8", "12/8", "4/4", "2/4"):
    v = sorted(round(r["ratio"], 2) for r in cand if r["ts_ref"] == ts)
    if v:
        print(f"  ratio where the reference is {ts} ({len(v)}): {v}")
theta = max(THETAS[::-1], key=lambda t: total(rows, t))
print(f"theta on all 777: {theta}")
for name in ("r51_inner_tr.jsonl", "r51_heldout.jsonl", "r51_heldout_tr.jsonl"):
    try:
        rs = load(R + name)
    except FileNotFoundError:
        continue
    print(f"{name}: {len(rs)}; " + ", ".join(f"{k} {np.mean([float(r['default'][k]) for r in rs]):.4f} -> "
                                             f"{np.mean([float(out(r, theta)[k]) for r in rs]):.4f}" for k in KEYS)
          + f"; changed {sum(r.get('ratio', -1) > theta for r in rs)}")
