"""One-off (round 43): a script (argv[2:]) run with score.estimate_beats replaced by beats_open3's beats (argv[1], as
`beats: model` decodes them) followed by the tracker's metre path on those beat times (estimate_meter, round 42's
learned bar length, round 34's bar lines by staves.onnx).

python runs/score38/model_beats_meter.py MODEL.onnx scripts/score_eval.py --beats-only ...
"""
import runpy, sys
from dataclasses import replace
from pathlib import Path

import transcribe.score as S
from transcribe import beatmodel
from transcribe.beats import Beats, tempo_of

MODEL = Path(sys.argv[1]).resolve()
real = S.estimate_beats


def estimate_beats(audio, sample_rate, notes, *, method="auto"):
    notes = notes.sorted()
    settings = dict(S.configured_model_decoding(), note_window=S.configured_model_note_window())
    try:
        mb = beatmodel.estimate_beats_model(notes, path=MODEL, **settings)
    except ValueError:
        return real(audio, sample_rate, notes, method="notes")
    beats = S.estimate_meter(notes, Beats(mb.times, tempo_of(mb.times), source="model"))
    profiles = beatmodel.downbeat_profiles(notes, beats.times, beatmodel.STAVES_WEIGHTS, S.configured_model_note_window())
    beats = S.with_bar_beats(beats, S.learned_bar_beats(beats.meter_scores.get("contrast", {}), profiles, beats.beats_per_bar))
    return replace(beats, downbeat=beatmodel.downbeat_phase(notes, beats, profile=profiles.get(beats.beats_per_bar)))


S.estimate_beats = estimate_beats
script = sys.argv[2]
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
