"""Rounds 53 and 55 (4): the march at 80/100/120, the demo, the tests' 2/4 march and jig through the product's estimate_beats
(the default conf, the switch on) and with the switch off."""
from pathlib import Path
import transcribe.score as S
from transcribe.notefiles import read_labels
from tests.test_score import jig, march as tmarch
exec(open("runs/score18/deadpan_check.py").read().split("for bpm in")[0], ns2 := {})
cases = [(f"march at {bpm}", ns2["march"](bpm)) for bpm in (80, 100, 120)]
cases += [("demo (3/4 at 144)", read_labels(Path("transcribe/demo/demo.tsv"))),
          ("2/4 march at 72", tmarch(bpm=72.0, meter=2, bars=16, jitter=0.01, seed=2)[0])]
j = jig()
cases.append(("6/8 jig", j[0] if isinstance(j, tuple) else j))
orig = S.configured_level_switch
for name, notes in cases:
    on = S.estimate_beats(None, None, notes)
    S.configured_level_switch = lambda: (float("inf"), float("inf"), 0.0)
    off = S.estimate_beats(None, None, notes)
    S.configured_level_switch = orig
    print(f"{name}: switch on {on.time_signature} at {on.tempo:.0f} ({on.source}); off {off.time_signature} at {off.tempo:.0f}")
