"""Round 55: the score stage's CPU s per minute with the level switch on and off, paired in one process (the 14
held-out performances of scripts/benchmark_score.py --limit 14, first 60 s, alternating order, ROUNDS rounds)."""
import json, runpy, sys
from pathlib import Path
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
sys.argv = ["x"]
B = runpy.run_path("scripts/benchmark_score.py", run_name="lib")
import transcribe.score as S
from transcribe.data.asap import split
from transcribe.notefiles import read_midi
files = split(Path("data/asap"), None)["val"]
files = files[:: max(1, len(files) // 14)][:14]
pieces = [read_midi(f).sorted() for f in files]
pieces = [n.select(n.onsets < 60) for n in pieces]
minutes = sum(float(n.offsets.max() - n.onsets.min()) / 60.0 for n in pieces)
on = S.configured_level_switch
off = lambda: (float("inf"), float("inf"), 0.0)  # noqa: E731
for n in pieces[:2]:
    B["stage_cpu"](n)
cpu = {"on": 0.0, "off": 0.0}
for r in range(rounds):
    for i, n in enumerate(pieces):
        for name in (("on", "off") if (i + r) % 2 == 0 else ("off", "on")):
            S.configured_level_switch = on if name == "on" else off
            cpu[name] += B["stage_cpu"](n)
print(json.dumps({"performances": len(pieces), "minutes": round(minutes, 2), "rounds": rounds,
                  "cpu_s_per_min": {k: round(v / (minutes * rounds), 3) for k, v in cpu.items()}}))
