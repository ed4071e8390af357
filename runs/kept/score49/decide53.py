"""Round 53 (runs/score49/RULE.md): round 52's switch, guarded (one level apart; the model's beat divides the
tracker's bar).  python runs/score49/decide53.py"""
import runpy, sys
import numpy as np

sys.argv = ["decide52.py"]
D = runpy.run_path("runs/score49/decide52.py", run_name="lib")


def per_bar(ts: str) -> int:
    num, den = map(int, ts.split("/"))
    return num // 3 if den == 8 and num % 3 == 0 else num


def guarded(r) -> bool:
    t, m = r["T"], r["M"]
    ratio = m["tempo"] / t["tempo"]
    if not (1.25 < max(ratio, 1 / ratio) < 2.5):
        return False
    k = (per_bar(t["ts"]) * 60.0 / t["tempo"]) / (60.0 / m["tempo"])
    return k >= 0.9 and abs(k - round(k)) <= 0.1 * round(k)


def load(*fs):
    rs = D["load"](*fs)
    for r in rs:
        r["H"] = r["M"] if guarded(r) else r["T"]
    return rs


R = D["R"]
D["report"]("602", load(R + "r52_o602.jsonl", R + "r52_o602.jsonl.b"))
D["report"]("inner 60 transcribed", load(R + "r52_inner_tr.jsonl"))
D["report"]("held-out 41", load(R + "r52_heldout.jsonl"), boot=False)
D["report"]("held-out 41 transcribed", load(R + "r52_heldout_tr.jsonl"), boot=False)
