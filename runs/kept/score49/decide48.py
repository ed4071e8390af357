"""Round 48 (runs/score49/RULE.md): beats_open4 as the staff model against staves.onnx on round 46's 602, each with
round 42's regression fitted out of fold by work within the 602 (the same folds); then each fitted on the 602 and
applied to other sets.  python runs/score49/decide48.py OLD.jsonl NEW.jsonl [--apply OLD_SET.jsonl NEW_SET.jsonl ...]"""
import json, sys
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

files = set(open("runs/score46/eval_files.txt").read().split())


def load(fs):
    return [r for f in fs.split(",") for r in map(json.loads, open(f))
            if "error" not in r and all(str(p) in r["groups"] for p in (2, 3, 4))]


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


def predict(m, rs):
    sc, lr = m
    ps = lr.predict(sc.transform(np.array([feats(r) for r in rs])))
    return [3 if p == 3 else (4 if r["accent_group"] == 3 else r["accent_group"]) for r, p in zip(rs, ps)]


def oof(rows, fold):
    out = {}
    for k in range(5):
        m = fit([r for r in rows if fold[r["work"]] != k])
        te = [r for r in rows if fold[r["work"]] == k]
        out.update({r["file"]: outcome(r, p) for r, p in zip(te, predict(m, te))})
    return out


def main(argv):
    old = {r["file"]: r for r in load(argv[0]) if r["file"] in files}
    new = {r["file"]: r for r in load(argv[1]) if r["file"] in files}
    common = sorted(set(old) & set(new))
    works = sorted({old[f]["work"] for f in common})
    order = np.random.default_rng(0).permutation(len(works))
    fold = {works[i]: k % 5 for k, i in enumerate(order)}
    o, n = oof([old[f] for f in common], fold), oof([new[f] for f in common], fold)
    print(f"{len(common)} performances of {len(works)} works (of {len(files)} listed)")
    rng = np.random.default_rng(0)
    by = {}
    for f in common:
        by.setdefault(old[f]["work"], []).append(f)
    for i, key in enumerate(("time signature", "downbeat F")):
        d = {f: n[f][i] - o[f][i] for f in common}
        b = [np.mean([d[f] for j in rng.choice(len(works), len(works)) for f in by[works[j]]]) for _ in range(2000)]
        print(f"  {key}: staves.onnx {np.mean([o[f][i] for f in common]):.4f} beats_open4 {np.mean([n[f][i] for f in common]):.4f} "
              f"diff {np.mean(list(d.values())):+.4f} [{np.percentile(b, 2.5):+.4f}, {np.percentile(b, 97.5):+.4f}]")
    mo, mn = fit([old[f] for f in common]), fit([new[f] for f in common])
    if "--apply" in argv:
        rest = argv[argv.index("--apply") + 1:]
        for fo, fn in zip(rest[0::2], rest[1::2]):
            ro, rn = load(fo), load(fn)
            so = np.array([outcome(r, p) for r, p in zip(ro, predict(mo, ro))]); sn = np.array([outcome(r, p) for r, p in zip(rn, predict(mn, rn))])
            print(f"{fn}: {len(ro)} / {len(rn)}; TS {so[:, 0].mean():.4f} -> {sn[:, 0].mean():.4f}, downbeat F {so[:, 1].mean():.4f} -> {sn[:, 1].mean():.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
