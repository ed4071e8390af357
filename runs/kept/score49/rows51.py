"""One-off (round 51, runs/score49/RULE.md): per performance, the default's beats (tracker, rounds 34 + 42) and, where
it writes a simple bar of 3, the half-beat ratio and the 6/8 re-reading (score.half_beat_ratio, score.dotted_beats),
each with its time signature right, beat F and downbeat F.  python runs/score49/rows51.py OUT.jsonl [--transcribed DIR
--seconds S] FILES..."""
import json, math, sys
from pathlib import Path
from transcribe.data.asap import annotation_path, read_annotations
from transcribe.metrics import beat_metrics
from transcribe.notefiles import read_midi
from transcribe.render.sources import render_stem
from dataclasses import replace
import numpy as np
from transcribe.beats import Beats, tempo_of
from transcribe.score import beat_accents, estimate_beats
# round 51's two functions, tried in transcribe/score.py and taken out again when the round was not adopted
def half_beat_ratio(notes, beats: Beats) -> float:
    """How much the middle of a bar of 3 beats (1.5 beats in) outweighs its second and third beats: the
    :func:`beat_accents` on a grid of half beats, summed over the whole bars at the bar's middle, over the mean of
    their sums at its second and third beats (0 without a whole bar; infinite where only the middle has accents).
    A 6/8 bar tracked as three quarter notes has its second dotted-quarter beat there, a 3/4 bar an off-beat."""
    n = len(beats.times)
    half = Beats(beats.time(np.arange(0.0, n - 0.75, 0.5)), 2.0 * beats.tempo)
    acc = beat_accents(notes, half)
    starts = 2 * np.arange(int(beats.downbeat % 3), n, 3)
    starts = starts[starts + 4 < len(acc)]
    if len(starts) == 0:
        return 0.0
    middle, beats_2_3 = acc[starts + 3].sum(), (acc[starts + 2].sum() + acc[starts + 4].sum()) / 2
    return float(middle / beats_2_3) if beats_2_3 > 0 else (float("inf") if middle > 0 else 0.0)


def dotted_beats(beats: Beats) -> Beats:
    """``beats`` with a simple bar of 3 re-read as 6/8: two dotted-quarter beats to the bar, at 0 and 1.5 of its
    beats (times interpolated, :meth:`~transcribe.beats.Beats.time`), the bar lines where they were."""
    n, phase = len(beats.times), int(beats.downbeat % 3)
    first = -int(np.floor(phase / 1.5))  # the first dotted beat at or after the first beat
    pos = phase + 1.5 * np.arange(first, int(np.floor((n - 1 - phase) / 1.5)) + 1)
    times = beats.time(pos)
    return replace(beats, times=times, tempo=tempo_of(times), numerator=6, denominator=8, downbeat=(-first) % 2)


args = sys.argv[1:]
transcribed = seconds = None
if "--transcribed" in args:
    i = args.index("--transcribed"); transcribed = Path(args[i + 1]); del args[i:i + 2]
if "--seconds" in args:
    i = args.index("--seconds"); seconds = float(args[i + 1]); del args[i:i + 2]
out_path, files = Path(args[0]), [Path(a) for a in args[1:]]


def scored(b, ann, rb, rd):
    m = beat_metrics(rb, rd, b)
    return {"ts": b.time_signature, "ts_right": b.time_signature == ann.time_signature, "beat_f": m["beat_f"],
            "downbeat_f": m["downbeat_f"] or 0.0, "tempo_right": bool(m["tempo_right"])}


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
            b = estimate_beats(None, None, notes, method="notes")
            row = {"file": str(f), "work": str(f.parent), "ts_ref": ann.time_signature, "default": scored(b, ann, rb, rd)}
            if not b.compound and b.beats_per_bar == 3:
                r = half_beat_ratio(notes, b)
                row["ratio"] = r if math.isfinite(r) else 1e9
                row["dotted"] = scored(dotted_beats(b), ann, rb, rd)
        except Exception as err:
            row = {"file": str(f), "error": f"{type(err).__name__}: {err}"}
        fh.write(json.dumps(row) + "\n"); fh.flush()
