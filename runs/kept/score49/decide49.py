"""Round 49 (runs/score49/RULE.md): round 42's regression fitted on Mutopia rows, applied to ASAP, against the accents
(round 34) and round 42 (fitted on ASAP's outer rows, out of fold by work).
python runs/score49/decide49.py MUTOPIA.jsonl OUTER.jsonl [--apply SET.jsonl ...] [--save metre.json]"""
import json, sys
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

args = sys.argv[1:]
save = None
if "--save" in args:
    i = args.index("--save"); save = args[i + 1]; del args[i:i + 2]
apply = []
if "--apply" in args:
    i = args.index("--apply"); apply = args[i + 1:]; args = args[:i]


def load(f):
    return [r for r in map(json.loads, open(f)) if "error" not in r and all(str(p) in r["groups"] for p in (2, 3, 4))]


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


def predict(m, rs):  # round 42: triple or not; the accents keep their 2 or 4
    sc, lr = m
    ps = lr.predict(sc.transform(np.array([feats(r) for r in rs])))
    return [3 if p == 3 else (4 if r["accent_group"] == 3 else r["accent_group"]) for r, p in zip(rs, ps)]


def boot(rs, diff, n=2000, seed=0):
    by = {}
    for r in rs:
        by.setdefault(r["work"], []).append(diff(r))
    ws = sorted(by); rng = np.random.default_rng(seed)
    b = [np.mean([v for i in rng.choice(len(ws), len(ws)) for v in by[ws[i]]]) for _ in range(n)]
    return float(np.mean([diff(r) for r in rs])), *np.percentile(b, [2.5, 97.5])


def oof_asap(rows):
    works = sorted({r["work"] for r in rows})
    order = np.random.default_rng(0).permutation(len(works))
    fold = {works[i]: k % 5 for k, i in enumerate(order)}
    out = {}
    for k in range(5):
        m = fit([r for r in rows if fold[r["work"]] != k])
        te = [r for r in rows if fold[r["work"]] == k]
        out.update({r["file"]: int(p) for r, p in zip(te, predict(m, te))})
    return out


mut = [r for f in args[0].split(",") for r in load(f)]
labelled = [r for r in mut if label(r)]
print(f"Mutopia: {len(mut)} rows, {len(labelled)} with a grouping that is right; labels",
      {p: sum(label(r) == p for r in labelled) for p in (2, 3, 4)}, "; reference signatures",
      dict(sorted({t: sum(r['ts_ref'] == t for r in mut) for t in {r['ts_ref'] for r in mut}}.items(), key=lambda x: -x[1])[:8]))
m = fit(mut)
print("  coefficients (standardised a2 a3 a4 c2 c3 c4 acc3), classes", m[1].classes_.tolist()); print(np.round(m[1].coef_, 3))
outer = load(args[1])
pm = dict(zip([r["file"] for r in outer], predict(m, outer)))
oof = oof_asap(outer)
print(f"outer: {len(outer)} performances, {len({r['work'] for r in outer})} works")
for i, key in enumerate(("ts_right", "downbeat_f")):
    base = np.mean([outcome(r, r["accent_group"])[i] for r in outer])
    a42 = np.mean([outcome(r, oof[r["file"]])[i] for r in outer])
    mu = np.mean([outcome(r, pm[r["file"]])[i] for r in outer])
    d1 = boot(outer, lambda r: outcome(r, pm[r["file"]])[i] - outcome(r, r["accent_group"])[i])
    d2 = boot(outer, lambda r: outcome(r, pm[r["file"]])[i] - outcome(r, oof[r["file"]])[i])
    print(f"  {key}: accents {base:.4f}  round 42 out of fold {a42:.4f}  Mutopia-fitted {mu:.4f}; "
          f"Mutopia - accents {d1[0]:+.4f} [{d1[1]:+.4f}, {d1[2]:+.4f}]; Mutopia - round 42 {d2[0]:+.4f} [{d2[1]:+.4f}, {d2[2]:+.4f}]")
by = {}
for r in outer:
    by.setdefault(r["ts_ref"], []).append((outcome(r, r["accent_group"])[0], outcome(r, oof[r["file"]])[0], outcome(r, pm[r["file"]])[0]))
print("  by reference signature (n, accents, round 42 oof, Mutopia):",
      {k: (len(v), *[round(np.mean([x[j] for x in v]), 3) for j in range(3)]) for k, v in sorted(by.items(), key=lambda x: -len(x[1]))[:7]})
asap = fit(outer)
for f in apply:
    rs = load(f)
    b = np.array([outcome(r, r["accent_group"]) for r in rs])
    a = np.array([outcome(r, p) for r, p in zip(rs, predict(asap, rs))])
    n = np.array([outcome(r, p) for r, p in zip(rs, predict(m, rs))])
    print(f"{f}: {len(rs)}; TS accents {b[:, 0].mean():.4f} round 42 (fitted on outer) {a[:, 0].mean():.4f} Mutopia {n[:, 0].mean():.4f}; "
          f"downbeat F {b[:, 1].mean():.4f} / {a[:, 1].mean():.4f} / {n[:, 1].mean():.4f}")
if save:
    sc, lr = m
    json.dump({"features": ["accent_contrast_2", "accent_contrast_3", "accent_contrast_4", "model_contrast_2",
                            "model_contrast_3", "model_contrast_4", "accents_triple"],
               "mean": sc.mean_.tolist(), "scale": sc.scale_.tolist(), "classes": lr.classes_.tolist(),
               "coef": lr.coef_.tolist(), "intercept": lr.intercept_.tolist()}, open(save, "w"), indent=1)
