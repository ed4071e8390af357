"""Round 41 (runs/score38/RULE.md): the bar's beats (2, 3, 4) by a logistic regression over the accents' and the staff
model's contrasts; out of fold on the outer rows, then fitted on all and applied to other sets.
python runs/score38/decide41.py OUTER.jsonl [--apply SET.jsonl...] [--save coef.json]"""
import json, sys
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

args = [a for a in sys.argv[1:] if a != "--triple-only"]
save = None
if "--save" in args:
    i = args.index("--save"); save = args[i + 1]; del args[i:i + 2]
apply = []
if "--apply" in args:
    i = args.index("--apply"); apply = args[i + 1:]; args = args[:i]
load = lambda f: [r for r in map(json.loads, open(f)) if "error" not in r and all(str(p) in r["groups"] for p in (2, 3, 4))]  # noqa: E731
rows = load(args[0])


def feats(r):
    a, g = r["accent_contrast"], r["groups"]
    return [a["2"], a["3"], a["4"], g["2"]["contrast"], g["3"]["contrast"], g["4"]["contrast"], float(r["accent_group"] == 3)]


def label(r):
    right = [p for p in (2, 3, 4) if r["groups"][str(p)]["ts_right"]]
    return right[0] if right else None


def outcome(r, p):
    g = r["groups"][str(p)]
    return float(g["ts_right"]), g["downbeat_f"] or 0.0


def fit(rs):
    X = np.array([feats(r) for r in rs if label(r)]); y = np.array([label(r) for r in rs if label(r)])
    sc = StandardScaler().fit(X)
    return sc, LogisticRegression(C=1.0, max_iter=2000).fit(sc.transform(X), y)


TRIPLE_ONLY = "--triple-only" in sys.argv


def predict(m, rs):
    sc, lr = m
    ps = lr.predict(sc.transform(np.array([feats(r) for r in rs])))
    if TRIPLE_ONLY:  # round 42: only triple or not; the accents keep their 2 or 4
        ps = [3 if p == 3 else (4 if r["accent_group"] == 3 else r["accent_group"]) for r, p in zip(rs, ps)]
    return ps


def boot(rs, diff, n=2000, seed=0):
    by = {}
    for r in rs:
        by.setdefault(r["work"], []).append(diff(r))
    ws = sorted(by); rng = np.random.default_rng(seed)
    b = [np.mean([v for i in rng.choice(len(ws), len(ws)) for v in by[ws[i]]]) for _ in range(n)]
    return float(np.mean([diff(r) for r in rs])), *np.percentile(b, [2.5, 97.5])


works = sorted({r["work"] for r in rows})
order = np.random.default_rng(0).permutation(len(works))
fold = {works[i]: k % 5 for k, i in enumerate(order)}
oof = {}
for k in range(5):
    m = fit([r for r in rows if fold[r["work"]] != k])
    te = [r for r in rows if fold[r["work"]] == k]
    for r, p in zip(te, predict(m, te)):
        oof[r["file"]] = int(p)
print(f"outer: {len(rows)} performances, {len(works)} works, {sum(label(r) is not None for r in rows)} with a grouping that is right")
for i, key in enumerate(("ts_right", "downbeat_f")):
    base = np.mean([outcome(r, r["accent_group"])[i] for r in rows])
    new = np.mean([outcome(r, oof[r["file"]])[i] for r in rows])
    mean, lo, hi = boot(rows, lambda r: outcome(r, oof[r["file"]])[i] - outcome(r, r["accent_group"])[i])
    print(f"  out of fold {key}: round 34 {base:.4f} learned {new:.4f} diff {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]")
print(f"  changed {np.mean([oof[r['file']] != r['accent_group'] for r in rows]):.3f}")
by = {}
for r in rows:
    by.setdefault(r["ts_ref"], []).append((outcome(r, r["accent_group"])[0], outcome(r, oof[r["file"]])[0]))
print("  by reference signature (n, before, out of fold):",
      {k: (len(v), round(np.mean([a for a, _ in v]), 3), round(np.mean([b for _, b in v]), 3)) for k, v in sorted(by.items(), key=lambda x: -len(x[1]))[:8]})
m = fit(rows)
print("  coefficients (standardised features a2 a3 a4 c2 c3 c4 acc3), classes", m[1].classes_.tolist())
print(np.round(m[1].coef_, 3))
for f in apply:
    rs = load(f)
    ps = predict(m, rs)
    b = np.array([outcome(r, r["accent_group"]) for r in rs]); n = np.array([outcome(r, p) for r, p in zip(rs, ps)])
    print(f"{f}: {len(rs)} performances; TS {b[:, 0].mean():.4f} -> {n[:, 0].mean():.4f}, downbeat F {b[:, 1].mean():.4f} -> "
          f"{n[:, 1].mean():.4f}, changed {np.mean([p != r['accent_group'] for r, p in zip(rs, ps)]):.3f}")
if save:
    sc, lr = m
    json.dump({"features": ["accent_contrast_2", "accent_contrast_3", "accent_contrast_4", "model_contrast_2",
                            "model_contrast_3", "model_contrast_4", "accents_triple"],
               "mean": sc.mean_.tolist(), "scale": sc.scale_.tolist(), "classes": lr.classes_.tolist(),
               "coef": lr.coef_.tolist(), "intercept": lr.intercept_.tolist()}, open(save, "w"), indent=1)
