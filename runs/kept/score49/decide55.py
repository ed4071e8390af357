"""Round 55 (runs/score49/RULE.md): round 53's guarded switch where the tracker's beats are unsteady (CV > c).
python runs/score49/decide55.py"""
import json, runpy, sys

C = 0.0536
sys.argv = ["decide52.py"]
D = runpy.run_path("runs/score49/decide52.py", run_name="lib")


def per_bar(ts: str) -> int:
    num, den = map(int, ts.split("/"))
    return num // 3 if den == 8 and num % 3 == 0 else num


def guarded(r) -> bool:  # round 53's guards
    t, m = r["T"], r["M"]
    ratio = m["tempo"] / t["tempo"]
    if not 1.25 < max(ratio, 1 / ratio) < 2.5:
        return False
    k = per_bar(t["ts"]) * m["tempo"] / t["tempo"]
    return k >= 0.9 and abs(k - round(k)) <= 0.1 * round(k)


def load(cv_files, *fs):
    cv = {r["file"]: r["cv"] for f in cv_files for r in map(json.loads, open(f)) if "cv" in r}
    rs = D["load"](*fs)
    for r in rs:
        r["H"] = r["M"] if guarded(r) and cv[r["file"]] > C else r["T"]
    print(f"  steadiness: {sum(cv[r['file']] > C for r in rs)} of {len(rs)} above c")
    return rs


R = D["R"]
D["report"]("602", load([R + "cv_o602.jsonl", R + "cv_o602.jsonl.b"], R + "r52_o602.jsonl", R + "r52_o602.jsonl.b"))
D["report"]("inner 60 transcribed", load([R + "cv_inner_tr.jsonl"], R + "r52_inner_tr.jsonl"))
D["report"]("held-out 41", load([R + "cv_heldout.jsonl"], R + "r52_heldout.jsonl"), boot=False)
D["report"]("held-out 41 transcribed", load([R + "cv_heldout_tr.jsonl"], R + "r52_heldout_tr.jsonl"), boot=False)
