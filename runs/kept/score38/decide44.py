"""Round 44 (runs/score38/RULE.md): the tracker's beats (A) against beats_open3's (B), each with round 42's bar-length
regression (triple or not) fitted out of fold within the 674 performances; then B fitted on all 674 and applied.
python runs/score38/decide44.py [--save metre.json]"""
import json, sys
from pathlib import Path
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

files = set(Path("runs/score38/eval_files.txt").read_text().split())
load = lambda fs: [r for f in fs for r in map(json.loads, open(f)) if "error" not in r and all(str(p) in r["groups"] for p in (2, 3, 4))]  # noqa: E731
A = [r for r in load(["runs/score38/metre/outer.jsonl"]) if r["file"] in files]
beat_a = {r["file"]: r for r in json.load(open("runs/score38/eval/db_r42.json"))["performances"]}
for r in A:
    r["beat_f"], r["tempo_right"] = beat_a[r["file"]]["beat_f"], beat_a[r["file"]]["tempo_right"]
B = load(["runs/score38/metre44/outer_a.jsonl", "runs/score38/metre44/outer_b.jsonl"])
common = {r["file"] for r in A} & {r["file"] for r in B}
A = [r for r in A if r["file"] in common]; B = [r for r in B if r["file"] in common]


def feats(r):
    a, g = r["accent_contrast"], r["groups"]
    return [a["2"], a["3"], a["4"], g["2"]["contrast"], g["3"]["contrast"], g["4"]["contrast"], float(r["accent_group"] == 3)]


def label(r):
    right = [p for p in (2, 3, 4) if r["groups"][str(p)]["ts_right"]]
    return right[0] if right else None


def fit(rs):
    X = np.array([feats(r) for r in rs if label(r)]); y = np.array([label(r) for r in rs if label(r)])
    sc = StandardScaler().fit(X)
    return sc, LogisticRegression(C=1.0, max_iter=2000).fit(sc.transform(X), y)


FULL = "--full" in sys.argv


def predict(m, rs, full=False):
    sc, lr = m
    ps = lr.predict(sc.transform(np.array([feats(r) for r in rs])))
    if full:
        return [int(p) for p in ps]
    return [3 if p == 3 else (4 if r["accent_group"] == 3 else r["accent_group"]) for r, p in zip(rs, ps)]


def outcome(r, p):
    g = r["groups"][str(p)]
    return {"ts": float(g["ts_right"]), "db": g["downbeat_f"] or 0.0, "beat": r["beat_f"], "tempo": float(r["tempo_right"]),
            "bd": r["beat_f"] + (g["downbeat_f"] or 0.0)}


def oof(rows, full=False):
    works = sorted({r["work"] for r in rows})
    order = np.random.default_rng(0).permutation(len(works))
    fold = {works[i]: k % 5 for k, i in enumerate(order)}
    out = {}
    for k in range(5):
        m = fit([r for r in rows if fold[r["work"]] != k])
        te = [r for r in rows if fold[r["work"]] == k]
        for r, p in zip(te, predict(m, te, full)):
            out[r["file"]] = outcome(r, p)
    return out


oa, ob = oof(A), oof(B, FULL)
work = {r["file"]: r["work"] for r in A}
by = {}
for f in oa:
    by.setdefault(work[f], []).append(f)
ws = sorted(by)
print(f"{len(oa)} performances, {len(ws)} works; out of fold")
for k in ("bd", "beat", "db", "ts", "tempo"):
    d = {f: ob[f][k] - oa[f][k] for f in oa}
    rng = np.random.default_rng(0)
    bs = [np.mean([d[f] for i in rng.choice(len(ws), len(ws)) for f in by[ws[i]]]) for _ in range(2000)]
    lo, hi = np.percentile(bs, [2.5, 97.5])
    print(f"  {k}: A {np.mean([oa[f][k] for f in oa]):.4f} B {np.mean([ob[f][k] for f in oa]):.4f} diff {np.mean(list(d.values())):+.4f} [{lo:+.4f}, {hi:+.4f}]")
    if k == "ts":
        base = {f: outcome(r, r["accent_group"])["ts"] for r in B for f in [r["file"]]}
        print(f"     (B with the accents' grouping alone: {np.mean(list(base.values())):.4f})")
m = fit(B)
for f in ("inner_tr", "heldout", "heldout_tr"):
    p = Path(f"runs/score38/metre44/{f}.jsonl")
    if not p.exists():
        continue
    rs = load([p])
    o = [outcome(r, q) for r, q in zip(rs, predict(m, rs, FULL))]
    print(f"B fitted on the 674, {f} ({len(rs)}): beat F {np.mean([x['beat'] for x in o]):.4f} downbeat F {np.mean([x['db'] for x in o]):.4f} "
          f"TS {np.mean([x['ts'] for x in o]):.4f} tempo {np.mean([x['tempo'] for x in o]):.4f}")
if "--save" in sys.argv:
    sc, lr = m
    json.dump({"mean": sc.mean_.tolist(), "scale": sc.scale_.tolist(), "classes": lr.classes_.tolist(),
               "coef": lr.coef_.tolist(), "intercept": lr.intercept_.tolist()}, open(sys.argv[sys.argv.index("--save") + 1], "w"), indent=1)
