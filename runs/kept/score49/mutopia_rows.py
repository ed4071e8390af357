"""One-off (round 49, runs/score49/RULE.md): round 41's metre rows (runs/score38/metre_rows.py's fields) for score
MIDI files played once as a performance: a smooth random tempo (train_beat_model.time_warp, warp 0.25, a knot per 10 s,
at least 4) on notes and beats, onsets jittered per chord (12 ms) and per note (8 ms), velocities + N(0, 10); seeded
by the file's name.  python runs/score49/mutopia_rows.py OUT.jsonl FILES..."""
import json, sys, zlib
from dataclasses import replace
from pathlib import Path
import numpy as np
sys.path.insert(0, "scripts")
from train_beat_model import quantised_piece, time_warp
from transcribe import beatmodel
from transcribe.data.asap import Annotation
from transcribe.metrics import beat_metrics
from transcribe.notes import Notes
from transcribe.score import estimate_beats
import transcribe.score as S

S.configured_downbeat_phase = lambda: "accents"


def played(notes: Notes, ann: Annotation, rng: np.random.Generator) -> tuple[Notes, Annotation]:
    on, off, b, d = notes.onsets, notes.offsets, ann.beats, ann.downbeats
    allt = np.concatenate([on, off, b, d])
    knots = max(4, int(np.ceil(allt.max() / 10.0)))
    w, _ = time_warp(allt, 0.0, rng, 1.0, 0.25, knots=knots)
    won, woff, wb, wd = np.split(w, np.cumsum([len(on), len(off), len(b)]))
    groups = np.unique(np.round(on, 4), return_inverse=True)[1]
    t = won + rng.normal(0, 0.012, groups.max() + 1)[groups] + rng.normal(0, 0.008, len(on))
    t = np.maximum(t, 0.0)
    end = np.maximum(woff - won + t, t + 0.03)
    vel = np.clip(np.round(notes.velocities + rng.normal(0, 10, len(on))), 1, 127)
    warp_at = lambda x: np.interp(x, np.concatenate([[0.0], allt]), np.concatenate([[0.0], w]))  # noqa: E731
    ts = [(float(warp_at(np.array([a]))[0]), s) for a, s in ann.time_signatures]
    return Notes(t, end, notes.pitches, vel).sorted(), Annotation(wb, wd, ts, ann.key_signatures)


out_path, files = Path(sys.argv[1]), [Path(a) for a in sys.argv[2:]]
with open(out_path, "a") as fh:
    for f in files:
        try:
            p = quantised_piece(f)
            if not p["ann"].time_signatures or len(p["ann"].beats) < 8:
                raise ValueError("no time signature or too few beats")
            rng = np.random.default_rng(zlib.crc32(f.name.encode()))
            notes, ann = played(p["notes"], p["ann"], rng)
            rb, rd = ann.beats, ann.downbeats
            b = estimate_beats(None, None, notes, method="notes")
            m = beat_metrics(rb, rd, b)
            s = beatmodel.sort_notes(notes)
            down = beatmodel.split_outputs(beatmodel.load(beatmodel.STAVES_WEIGHTS)(beatmodel.note_features(s), 128))["downbeat"]
            act = beatmodel.beat_activation(b.times, s.onsets, down)
            row = {"file": str(f), "work": str(f), "ts_ref": ann.time_signature, "accent_group": b.beats_per_bar,
                   "compound": b.compound, "accent_contrast": b.meter_scores["contrast"],
                   "beat_f": m["beat_f"], "tempo_right": m["tempo_right"], "groups": {}}
            for p_ in (2, 3, 4):
                if len(b.times) < 2 * p_:
                    continue
                prof = np.array([act[ph::p_].mean() for ph in range(p_)])
                ph = int(np.argmax(prof))
                if p_ == b.beats_per_bar:
                    acc = int(b.downbeat % p_)
                    ph = acc if prof[ph] <= prof[acc] else ph
                num, den = (3 * p_, 8) if b.compound else (p_, 4)
                g = replace(b, numerator=num, denominator=den, downbeat=ph)
                row["groups"][p_] = {"contrast": float(prof.max() - np.delete(prof, int(np.argmax(prof))).mean()), "phase": ph,
                                     "ts": g.time_signature, "ts_right": g.time_signature == ann.time_signature,
                                     "downbeat_f": beat_metrics(rb, rd, g)["downbeat_f"]}
        except Exception as err:
            row = {"file": str(f), "error": f"{type(err).__name__}: {err}"}
        fh.write(json.dumps(row) + "\n"); fh.flush()
