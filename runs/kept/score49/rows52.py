"""One-off (round 52, runs/score49/RULE.md): per performance, the default's beats and metre (T) and beats_open4's
beats with the tracker's metre path (M, score.bar_lines), each with its tempo, time signature right, beat F,
downbeat F, tempo right.  python runs/score49/rows52.py OUT.jsonl [--transcribed DIR --seconds S] FILES..."""
import json, sys
from pathlib import Path
from transcribe import beatmodel
from transcribe.beats import Beats, tempo_of
from transcribe.data.asap import annotation_path, read_annotations
from transcribe.metrics import beat_metrics
from transcribe.notefiles import read_midi
from transcribe.render.sources import render_stem
import transcribe.score as S

MODEL = Path("runs/score46/beats_open4.onnx").resolve()
args = sys.argv[1:]
transcribed = seconds = None
if "--transcribed" in args:
    i = args.index("--transcribed"); transcribed = Path(args[i + 1]); del args[i:i + 2]
if "--seconds" in args:
    i = args.index("--seconds"); seconds = float(args[i + 1]); del args[i:i + 2]
out_path, files = Path(args[0]), [Path(a) for a in args[1:]]


def scored(b, ann, rb, rd):
    m = beat_metrics(rb, rd, b)
    return {"tempo": b.tempo, "ts": b.time_signature, "ts_right": b.time_signature == ann.time_signature,
            "beat_f": m["beat_f"], "downbeat_f": m["downbeat_f"] or 0.0, "tempo_right": bool(m["tempo_right"])}


with open(out_path, "a") as fh:
    for f in files:
        try:
            src = f if transcribed is None else transcribed / (render_stem(f, Path("data/asap")) + ".mid")
            notes = read_midi(src).sorted()
            ann = read_annotations(annotation_path(f))
            rb, rd = ann.beats, ann.downbeats
            if seconds is not None:
                notes = notes.select(notes.onsets < seconds)
                rb, rd = rb[rb < seconds], rd[rd < seconds]
            t = S.estimate_beats(None, None, notes, method="notes")
            mb = beatmodel.estimate_beats_model(notes, path=MODEL, **dict(S.configured_model_decoding(),
                                                note_window=S.configured_model_note_window()))
            m = S.bar_lines(notes, Beats(mb.times, tempo_of(mb.times), source="model"))
            row = {"file": str(f), "work": str(f.parent), "ts_ref": ann.time_signature,
                   "T": scored(t, ann, rb, rd), "M": scored(m, ann, rb, rd)}
        except Exception as err:
            row = {"file": str(f), "error": f"{type(err).__name__}: {err}"}
        fh.write(json.dumps(row) + "\n"); fh.flush()
