"""Round 43 (3): the march at 80/100/120, the demo, and the tests' 2/4 march and jig through model_beats_meter's
estimate_beats (beats_open3's beats, the tracker's metre path)."""
import sys
sys.argv = ["x", "runs/score38/beats_open3.onnx", "/dev/null"]
src = open("runs/score38/model_beats_meter.py").read().split("S.estimate_beats = estimate_beats")[0]
ns = {}; exec(src, ns)
from pathlib import Path
from transcribe.notefiles import read_labels
from tests.test_score import jig, march as tmarch
exec(open("runs/score18/deadpan_check.py").read().split("for bpm in")[0], ns2 := {})
eb = ns["estimate_beats"]
for bpm in (80, 100, 120):
    b = eb(None, None, ns2["march"](bpm)); print(f"march at {bpm}: {b.time_signature} at {b.tempo:.0f}")
b = eb(None, None, read_labels(Path("transcribe/demo/demo.tsv"))); print(f"demo (3/4 at 144): {b.time_signature} at {b.tempo:.0f}")
b = eb(None, None, tmarch(bpm=72.0, meter=2, bars=16, jitter=0.01, seed=2)[0]); print(f"2/4 march at 72: {b.time_signature} at {b.tempo:.0f}")
b = eb(None, None, jig(bpm=66.0)[0]); print(f"jig 6/8 at 66: {b.time_signature} at {b.tempo:.0f}")
