"""Round 47 (runs/score38/RULE.md): round 42's regression (7 features, triple or not) against 10 features (+ staves.onnx's
beats-per-bar head) choosing 2, 3 or 4; out of fold on the 777 (paired), then fitted on all and applied.
python runs/score38/decide47.py [--save coef.json]"""
import json, sys
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

M = "runs/score38/metre/"
head = {r["file"]: r["head"] for f in ("head_outer", "head_inner_tr", "head_heldout") for r in map(json.loads, open(M + f + ".jsonl"))}
load = lambda f: [r for r in map(json.loads, open(f)) if "error" not in r and all(str(p) in r["groups"] for p in (2, 3, 4))]  # noqa: E731
rows = load(M + "outer.jsonl")


def feats(r, with_head):
    a, g = r["accent_contrast"], r["groups"]
    x = [a["2"], a["3"], a["4"], g["2"]["contrast"], g["3"]["contrast"], g["4"]["contrast"], float(r["accent_group"] == 3)]
    return x + (head[r["file"]] if with_head else [])


def label(r):
    right = [p for p in (2, 3, 4) if r["groups"][str(p)]["ts_right"]]
    return right[0] if right else None


def fit(rs, h):
    X = np.array([feats(r, h) for r in rs if label(r)]); y = np.array([label(r) for r in rs if label(r)])
    sc = StandardScaler().fit(X)
    return sc, LogisticRegression(C=1.0, max_iter=2000).fit(sc.transform(X), y)


def predict(m, rs, h, full):
    sc, lr = m
    ps = lr.predict(sc.transform(np.array([feats(r, h) for r in rs])))
    return [int(p) if full else (3 if p == 3 else (4 if r["accent_group"] == 3 else r["accent_group"])) for r, p in zip(rs, ps)]


def outcome(r, p):
    g = r["groups"][str(p)]
    return float(g["ts_right"]), g["downbeat_f"] or 0.0


works = sorted({r["work"] for r in rows})
order = np.random.default_rng(0).permutation(len(works))
fold = {works[i]: k % 5 for k, i in enumerate(order)}
res = {}
for name, h, full in (("r42", False, False), ("r47", True, True), ("r47 triple-only", True, False)):
    o = {}
    for k in range(5):
        m = fit([r for r in rows if fold[r["work"]] != k], h)
        te = [r for r in rows if fold[r["work"]] == k]
        for r, p in zip(te, predict(m, te, h, full)):
            o[r["file"]] = (outcome(r, p), p)
    res[name] = o
by = {}
for r in rows:
    by.setdefault(r["work"], []).append(r["file"])
ws = sorted(by)
for name in ("r47", "r47 triple-only"):
    for i, key in enumerate(("ts_right", "downbeat_f")):
        d = {f: res[name][f][0][i] - res["r42"][f][0][i] for f in res["r42"]}
        rng = np.random.default_rng(0)
        bs = [np.mean([d[f] for j in rng.choice(len(ws), len(ws)) for f in by[ws[j]]]) for _ in range(2000)]
        lo, hi = np.percentile(bs, [2.5, 97.5])
        print(f"{name} {key}: r42 {np.mean([v[0][i] for v in res['r42'].values()]):.4f} {name} "
              f"{np.mean([v[0][i] for v in res[name].values()]):.4f} diff {np.mean(list(d.values())):+.4f} [{lo:+.4f}, {hi:+.4f}]")
    refs = {}
    for r in rows:
        refs.setdefault(r["ts_ref"], []).append((res["r42"][r["file"]][0][0], res[name][r["file"]][0][0]))
    print("  by signature (n, r42, new):", {k: (len(v), round(np.mean([a for a, _ in v]), 3), round(np.mean([b for _, b in v]), 3))
                                          for k, v in sorted(refs.items(), key=lambda x: -len(x[1]))[:5]})
m = fit(rows, True)
for f in ("inner_tr", "heldout", "heldout_tr"):
    rs = [r for r in load(M + f + ".jsonl") if r["file"] in head or f == "heldout_tr"]
    if f == "heldout_tr":
        continue  # no head rows for the transcribed held-out set
    o = [outcome(r, p) for r, p in zip(rs, predict(m, rs, True, True))]
    print(f"r47 fitted on the 777, {f} ({len(rs)}): TS {np.mean([x[0] for x in o]):.4f} downbeat F {np.mean([x[1] for x in o]):.4f}")
if "--save" in sys.argv:
    sc, lr = m
    json.dump({"mean": sc.mean_.tolist(), "scale": sc.scale_.tolist(), "classes": lr.classes_.tolist(),
               "coef": lr.coef_.tolist(), "intercept": lr.intercept_.tolist()}, open(sys.argv[sys.argv.index("--save") + 1], "w"), indent=1)
