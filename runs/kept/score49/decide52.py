"""Round 52 (runs/score49/RULE.md): the default's beats (T) unless beats_open4's (M) are at another level
(tempo ratio outside [1/1.25, 1.25]).  python runs/score49/decide52.py [RATIO]"""
import json, sys
import numpy as np

R = "runs/score49/rows/"
RATIO = float(sys.argv[1]) if len(sys.argv) > 1 else 1.25
KEYS = ("beat_f", "downbeat_f", "bd", "ts_right", "tempo_right")


def load(*fs):
    rs = []
    for f in fs:
        try:
            rs += [r for r in map(json.loads, open(f)) if "error" not in r]
        except FileNotFoundError:
            pass
    for r in rs:
        for side in ("T", "M"):
            r[side]["bd"] = r[side]["beat_f"] + r[side]["downbeat_f"]
        ratio = r["M"]["tempo"] / r["T"]["tempo"]
        r["H"] = r["M"] if (ratio > RATIO or ratio < 1 / RATIO) else r["T"]
    return rs


def report(name, rs, boot=True):
    works = sorted({r["work"] for r in rs})
    by = {}
    for r in rs:
        by.setdefault(r["work"], []).append(r)
    rng = np.random.default_rng(0)
    draws = [rng.choice(len(works), len(works)) for _ in range(2000)] if boot else []
    print(f"{name}: {len(rs)} performances, {len(works)} works, switched to M {sum(r['H'] is r['M'] for r in rs)}")
    for k in KEYS:
        t, h, m = (np.mean([float(r[s][k]) for r in rs]) for s in ("T", "H", "M"))
        line = f"  {k}: default {t:.4f}  switch {h:.4f} ({h - t:+.4f}"
        if boot:
            d = {r["file"]: float(r["H"][k]) - float(r["T"][k]) for r in rs}
            bs = [np.mean([d[r["file"]] for j in dr for r in by[works[j]]]) for dr in draws]
            line += f" [{np.percentile(bs, 2.5):+.4f}, {np.percentile(bs, 97.5):+.4f}]"
        print(line + f")  M everywhere {m:.4f}")


if __name__ == "__main__":
    report("602", load(R + "r52_o602.jsonl", R + "r52_o602.jsonl.b"))
    report("inner 60 transcribed", load(R + "r52_inner_tr.jsonl"))
    report("held-out 41", load(R + "r52_heldout.jsonl"), boot=False)
    report("held-out 41 transcribed", load(R + "r52_heldout_tr.jsonl"), boot=False)
