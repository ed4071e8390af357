"""Round 55: the coefficient of variation of the tracker's inter-beat intervals (the default's beats), for the synthetic
pieces (no arguments) or per performance (OUT.jsonl [--transcribed DIR --seconds S] FILES...)."""
import json, sys
from pathlib import Path
import numpy as np
import transcribe.score as S


def cv(notes) -> float:
    d = np.diff(S.estimate_beats(None, None, notes).times)
    return float(d.std() / d.mean())


if len(sys.argv) == 1:
    from transcribe.notefiles import read_labels
    from tests.test_score import jig, march as tmarch
    exec(open("runs/score18/deadpan_check.py").read().split("for bpm in")[0], ns := {})
    for name, notes in [(f"march at {b}", ns["march"](b)) for b in (80, 100, 120)] + [
            ("demo", read_labels(Path("transcribe/demo/demo.tsv"))),
            ("2/4 march", tmarch(bpm=72.0, meter=2, bars=16, jitter=0.01, seed=2)[0]), ("jig", jig()[0])]:
        print(f"{name}: {cv(notes):.4f}")
    sys.exit()
from transcribe.data.asap import annotation_path
from transcribe.notefiles import read_midi
from transcribe.render.sources import render_stem
args = sys.argv[1:]
transcribed = seconds = None
if "--transcribed" in args:
    i = args.index("--transcribed"); transcribed = Path(args[i + 1]); del args[i:i + 2]
if "--seconds" in args:
    i = args.index("--seconds"); seconds = float(args[i + 1]); del args[i:i + 2]
with open(args[0], "a") as fh:
    for f in map(Path, args[1:]):
        try:
            src = f if transcribed is None else transcribed / (render_stem(f, Path("data/asap")) + ".mid")
            notes = read_midi(src).sorted()
            if seconds is not None:
                notes = notes.select(notes.onsets < seconds)
            row = {"file": str(f), "cv": cv(notes)}
        except Exception as err:
            row = {"file": str(f), "error": f"{type(err).__name__}: {err}"}
        fh.write(json.dumps(row) + "\n"); fh.flush()
