"""One-off (round 38): run a script with transcribe.beatmodel.STAVES_WEIGHTS pointed at another staff model
(score.py reads the attribute at call time), so the two models can be measured side by side.

python runs/score38/with_model.py MODEL.onnx SCRIPT.py ARGS...
"""
import runpy, sys
from pathlib import Path

from transcribe import beatmodel

beatmodel.STAVES_WEIGHTS = Path(sys.argv[1]).resolve()
script = sys.argv[2]
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
