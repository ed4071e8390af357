"""Round 50 (runs/score49/RULE.md): beats_open4's beats under the tracker's metre path against the default on round
46's 602, the regression out of fold by work for each (decide48's folds); then fitted on the 602 and applied.
python runs/score49/decide50.py"""
import json, sys
import numpy as np
sys.path.insert(0, "runs/score49")
from decide48 import fit, load, oof, outcome, predict  # noqa: E402

R = "runs/score49/rows/"
files = set(open("runs/score46/eval_files.txt").read().split())
old = {r["file"]: r for r in load("runs/score38/metre/outer.jsonl") if r["file"] in files}
new = {r["file"]: r for r in load(R + "o602_b50.jsonl," + R + "o602_b50.jsonl.b") if r["file"] in files}
track = {p["file"]: p for p in json.load(open("runs/score46/eval/db_new.json"))["performances"]}  # the tracker's beat F
common = sorted(set(old) & set(new) & set(track))
works = sorted({old[f]["work"] for f in common})
order = np.random.default_rng(0).permutation(len(works))
fold = {works[i]: k % 5 for k, i in enumerate(order)}
o, n = oof([old[f] for f in common], fold), oof([new[f] for f in common], fold)
val = {"beat F": (lambda f: track[f]["beat_f"], lambda f: new[f]["beat_f"]),
       "tempo right": (lambda f: float(track[f]["tempo_right"]), lambda f: float(new[f]["tempo_right"])),
       "downbeat F": (lambda f: o[f][1], lambda f: n[f][1]),
       "time signature": (lambda f: o[f][0], lambda f: n[f][0])}
val["beat F + downbeat F"] = (lambda f: val["beat F"][0](f) + o[f][1], lambda f: val["beat F"][1](f) + n[f][1])
by = {}
for f in common:
    by.setdefault(old[f]["work"], []).append(f)
print(f"{len(common)} performances of {len(works)} works")
for key, (a, b) in val.items():
    d = {f: b(f) - a(f) for f in common}
    rng = np.random.default_rng(0)
    bs = [np.mean([d[f] for j in rng.choice(len(works), len(works)) for f in by[works[j]]]) for _ in range(2000)]
    print(f"  {key}: default {np.mean([a(f) for f in common]):.4f}  beats_open4 {np.mean([b(f) for f in common]):.4f}  "
          f"diff {np.mean(list(d.values())):+.4f} [{np.percentile(bs, 2.5):+.4f}, {np.percentile(bs, 97.5):+.4f}]")
mo, mn = fit([old[f] for f in common]), fit([new[f] for f in common])
for so, sn in (("runs/score38/metre/inner_tr.jsonl", R + "inner_tr_b50.jsonl"), ("runs/score38/metre/heldout.jsonl", R + "heldout_b50.jsonl"),
               ("runs/score38/metre/heldout_tr.jsonl", R + "heldout_tr_b50.jsonl")):
    try:
        ro, rn = load(so), load(sn)
    except FileNotFoundError:
        continue
    a = np.array([outcome(r, p) for r, p in zip(ro, predict(mo, ro))]); b = np.array([outcome(r, p) for r, p in zip(rn, predict(mn, rn))])
    print(f"{sn}: {len(ro)} / {len(rn)}; TS {a[:, 0].mean():.4f} -> {b[:, 0].mean():.4f}, downbeat F {a[:, 1].mean():.4f} -> "
          f"{b[:, 1].mean():.4f}, beat F (new) {np.mean([r['beat_f'] for r in rn]):.4f}, tempo right (new) {np.mean([r['tempo_right'] for r in rn]):.3f}")
