"""Run a rows script as round 41 ran it: the accents' bar length (bar_length: accents; round 42's learned length,
the default since, would put its own choice in the rows' accent_group) and no level switch (round 55).
python runs/score49/accents.py [--staves MODEL.onnx] SCRIPT.py ARGS..."""
import runpy, sys
from pathlib import Path
import transcribe.score as S
from transcribe import beatmodel

S.configured_bar_length = lambda: "accents"
S.configured_level_switch = lambda: (float("inf"), float("inf"), 0.0)
args = sys.argv[1:]
if args[0] == "--staves":
    beatmodel.STAVES_WEIGHTS = Path(args[1]).resolve(); args = args[2:]
sys.argv = args
runpy.run_path(args[0], run_name="__main__")
