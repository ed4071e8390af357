"""Round 40 (runs/score38/RULE.md): triple vs duple from the staff model's downbeat contrast, over round 35's rows.
python runs/score38/decide40.py runs/score33/g_outer_a?.jsonl --apply runs/score33/g_inner_tr.jsonl [more]"""
import itertools, json, sys
import numpy as np
sys.argv, apply = (sys.argv[:sys.argv.index("--apply")], sys.argv[sys.argv.index("--apply") + 1:]) if "--apply" in sys.argv else (sys.argv, [])
src = open("runs/score33/decide.py").read()
exec(src.split("rows = load(args)")[0].split("args = sys.argv")[0])
load = lambda fs: [r for f in fs for r in map(json.loads, open(f)) if "error" not in r and "baseline_ts_right" in r]  # noqa: E731
exec(src[src.index("def cv("):src.index("print(f\"{len(rows)}")])
rows = load(sys.argv[1:])
G = [0.0, 0.02, 0.05, 0.1, 0.2, np.inf]
P = list(itertools.product(G, G))


def pick(r, uv):
    u, v = uv
    g = {int(k): x for k, x in r["groups"].items()}
    if not all(p in g for p in (2, 3, 4)):
        return float(r["baseline_ts_right"]), r["baseline_f"] or 0.0, r["accent_group"]
    c2, c3, c4 = (g[p]["contrast"] for p in (2, 3, 4))
    if r["accent_group"] != 3 and c3 - max(c2, c4) > u:
        return float(g[3]["ts_right"]), g[3]["downbeat_f"] or 0.0, 3
    if r["accent_group"] == 3 and max(c2, c4) - c3 > v:
        return float(g[4]["ts_right"]), g[4]["downbeat_f"] or 0.0, 4
    return float(r["baseline_ts_right"]), r["baseline_f"] or 0.0, r["accent_group"]


BASE = (np.inf, np.inf)


def report(rs, name, params):
    print(f"{name}: {len(rs)} performances, {len({r['work'] for r in rs})} works")
    for p in params:
        v = np.array([pick(r, p)[:2] for r in rs], dtype=float)
        print(f"  u {p[0]} v {p[1]}: TS {v[:, 0].mean():.4f} downbeat F {v[:, 1].mean():.4f} "
              f"changed {np.mean([pick(r, p)[2] != r['accent_group'] for r in rs]):.3f}")


report(rows, "outer", [BASE] + [(u, np.inf) for u in G[:-1]] + [(np.inf, v) for v in G[:-1]])
oof, picks = cv(lambda r, p: pick(r, p)[0] + 1e-6 * pick(r, p)[1], P, rows)
print("picks by fold:", picks)
for i, key in enumerate(("ts_right", "downbeat_f")):
    mean, lo, hi = boot(rows, lambda r: float(pick(r, oof[r["file"]])[i]) - float(pick(r, BASE)[i]))
    print(f"  out of fold {key}: diff {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]")
pooled = max(P, key=lambda p: np.mean([pick(r, p)[0] + 1e-6 * pick(r, p)[1] for r in rows]))
print("pooled pick:", pooled)
refs = {}
for r in rows:
    refs.setdefault(r["ts_ref"], []).append((pick(r, BASE)[0], pick(r, pooled)[0]))
print("  by reference signature (before -> pooled):", {k: (len(v), round(np.mean([a for a, _ in v]), 3), round(np.mean([b for _, b in v]), 3)) for k, v in sorted(refs.items(), key=lambda x: -len(x[1]))})
for f in apply:
    report(load([f]), f, [BASE, pooled])
