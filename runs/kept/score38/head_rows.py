"""One-off (round 47): per performance, staves.onnx's beats-per-bar head (per_bar, 2/3/4) averaged over the notes
weighted by its beat output.  python runs/score38/head_rows.py OUT.jsonl [--transcribed DIR --seconds S] FILES..."""
import json, sys
from pathlib import Path
import numpy as np
from transcribe import beatmodel
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
        src = f if transcribed is None else transcribed / (render_stem(f, Path("data/asap")) + ".mid")
        notes = read_midi(src).sorted()
        if seconds is not None:
            notes = notes.select(notes.onsets < seconds)
        out = beatmodel.split_outputs(beatmodel.load(beatmodel.STAVES_WEIGHTS)(beatmodel.note_features(beatmodel.sort_notes(notes)), 128))
        head = (out["per_bar"] * out["beat"][:, None]).sum(axis=0)
        fh.write(json.dumps({"file": str(f), "head": (head / max(head.sum(), 1e-9)).tolist()}) + "\n")
