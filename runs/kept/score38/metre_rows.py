"""One-off (round 41): per performance, the tracker's beats, the accents' contrasts (estimate_meter's meter_scores)
and, per grouping of 2/3/4 beats, the staff model's downbeat contrast and phase and the time signature and downbeat
F that grouping gives; round 34's row as baseline.  Arguments as runs/score33/groups.py (OUT.jsonl [--transcribed
DIR --seconds S] FILES...)."""
import json, sys
from dataclasses import replace
from pathlib import Path
import numpy as np
from transcribe import beatmodel
from transcribe.beats import Beats, tempo_of
from transcribe.data.asap import annotation_path, read_annotations
from transcribe.metrics import beat_metrics
from transcribe.notefiles import read_midi
from transcribe.render.sources import render_stem
from transcribe.score import estimate_beats
import transcribe.score as S

S.configured_downbeat_phase = lambda: "accents"
args = sys.argv[1:]
transcribed = seconds = None
if "--transcribed" in args:
    i = args.index("--transcribed"); transcribed = Path(args[i + 1]); del args[i:i + 2]
if "--seconds" in args:
    i = args.index("--seconds"); seconds = float(args[i + 1]); del args[i:i + 2]
beats_model = None
if "--beats-model" in args:  # round 44: the beats of this model (as `beats: model` decodes them), not the tracker's
    i = args.index("--beats-model"); beats_model = Path(args[i + 1]).resolve(); del args[i:i + 2]
out_path, files = Path(args[0]), [Path(a) for a in args[1:]]
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
            if beats_model is None:
                b = estimate_beats(None, None, notes, method="notes")
            else:
                mb = beatmodel.estimate_beats_model(notes, path=beats_model, **dict(S.configured_model_decoding(),
                                                    note_window=S.configured_model_note_window()))
                b = S.estimate_meter(notes, Beats(mb.times, tempo_of(mb.times), source="model"))
            m = beat_metrics(rb, rd, b)
            s = beatmodel.sort_notes(notes)
            down = beatmodel.split_outputs(beatmodel.load(beatmodel.STAVES_WEIGHTS)(beatmodel.note_features(s), 128))["downbeat"]
            act = beatmodel.beat_activation(b.times, s.onsets, down)
            row = {"file": str(f), "work": str(f.parent), "ts_ref": ann.time_signature, "accent_group": b.beats_per_bar,
                   "compound": b.compound, "accent_contrast": b.meter_scores["contrast"],
                   "beat_f": m["beat_f"], "tempo_right": m["tempo_right"], "groups": {}}
            for p in (2, 3, 4):
                if len(b.times) < 2 * p:
                    continue
                prof = np.array([act[ph::p].mean() for ph in range(p)])
                ph = int(np.argmax(prof))
                if p == b.beats_per_bar:  # round 34's rule exactly: ties keep the accents' phase
                    acc = int(b.downbeat % p)
                    ph = acc if prof[ph] <= prof[acc] else ph
                num, den = (3 * p, 8) if b.compound else (p, 4)
                g = replace(b, numerator=num, denominator=den, downbeat=ph)
                row["groups"][p] = {"contrast": float(prof.max() - np.delete(prof, int(np.argmax(prof))).mean()), "phase": ph,
                                    "ts": g.time_signature, "ts_right": g.time_signature == ann.time_signature,
                                    "downbeat_f": beat_metrics(rb, rd, g)["downbeat_f"]}
        except Exception as err:
            row = {"file": str(f), "error": f"{type(err).__name__}: {err}"}
        fh.write(json.dumps(row) + "\n"); fh.flush()
