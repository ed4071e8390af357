"""Score-stage evaluation on held-out ASAP performance MIDI (issue 25).

For every held-out performance (the 41 of ``conf/render.yaml``'s ``sources.asap`` split, see
:mod:`transcribe.data.asap`; or the files given), its notes (sustain pedal applied, as the
transcriber writes them) go through the score stage of :mod:`transcribe.score` (beats, meter,
quantisation, key, MusicXML), and what comes out is compared with ASAP's annotations:

- beat / downbeat F-measure (``mir_eval.beat.f_measure``, ±70 ms, beats before 5 s trimmed as
  mir_eval does) of the estimated beats and bar starts;
- time signature of the written MusicXML = the annotated main one (and "compatible": the same
  after 2/2, 2/4, 4/4 are taken as one, and 6/8, 12/8);
- key signature (number of sharps) of the written MusicXML = the annotated main one;
- tempo within 8 % of the annotated beat level's (60 / median beat interval);
- redundant accidentals: notes of the MusicXML (read back by music21) whose printed accidental
  the key signature and the bar's earlier accidentals already give, and how many of those are
  cautionary (a courtesy an engraver prints: the same letter altered otherwise in another octave
  earlier in the bar, or the same pitch in the previous bar); and missing ones (an alteration not
  printed where the reader would play another pitch);
- the score stage's CPU time per minute of music.

    python scripts/score_eval.py --asap data/asap --shared-data ../shared/data --out runs/score_eval.json
    python scripts/score_eval.py --seconds 60 ...      # the first 60 s of every performance
    python scripts/score_eval.py --beats model ...     # beats from the learned model (transcribe/beatmodel.py)
    python scripts/score_eval.py --transcribed DIR ... # audio -> notes -> score: DIR holds the transcribed renders
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

COMPATIBLE = {"2/2": "duple", "2/4": "duple", "4/4": "duple", "6/8": "compound duple", "12/8": "compound duple"}


def written(xml: bytes) -> dict:
    """Time signature, key signature (sharps) and accidental counts of a MusicXML score, read
    back by music21: ``notes`` (every struck note, chords counted per note; tied-over notes
    not), ``redundant`` (an accidental
    printed that the key signature and the bar's earlier accidentals on that staff already give),
    ``missing`` (an alteration the reader would not play: none printed where the key signature and
    the bar's earlier accidentals give another) and ``cautionary``, the redundant ones an engraver
    prints as a courtesy: the first of its pitch in the bar, where the same letter in another octave
    has been altered otherwise earlier in the bar, or the same pitch was altered otherwise in the
    previous bar (Gould, *Behind Bars*, recommends both)."""
    from music21 import converter, key as m21key, meter, stream

    from transcribe.score import read_bar, written_sign

    score = converter.parse(xml, format="musicxml")
    ts = next(iter(score.recurse().getElementsByClass(meter.TimeSignature)), None)
    ks = next(iter(score.recurse().getElementsByClass(m21key.KeySignature)), None)
    n = redundant = missing = cautionary = 0
    for part in score.parts:
        sig = m21key.KeySignature(0)
        state: dict[tuple[str, int], float] = {}
        for m in part.getElementsByClass(stream.Measure):
            found = m.getElementsByClass(m21key.KeySignature)
            if found:
                sig = found[0]
            before, state = state, {}  # (step, octave) → alteration in force in the previous bar, in this one
            for p, given, first in read_bar(m, sig, state):
                n += 1
                alter, shown = written_sign(p)
                if shown and alter == given:
                    redundant += 1
                    cautionary += first and (before.get((p.step, p.octave), alter) != alter or any(
                        step == p.step and octave != p.octave and a != alter for (step, octave), a in state.items()))
                if not shown and alter != given:
                    missing += 1
    return {"time_signature": ts.ratioString if ts is not None else None,
            "key_signature": int(ks.sharps) if ks is not None else None,
            "notes": n, "redundant": redundant, "missing": missing,
            "cautionary": cautionary}


def evaluate_one(midi: Path, annotation: Path, seconds: float | None = None, beats_method: str = "auto",
                 beats_only: bool = False, notes_midi: Path | None = None, key_source: str | None = None) -> dict:
    """The metrics of one performance (see the module docstring); with ``beats_only`` the beat,
    downbeat, tempo and time-signature (the estimated metre's) ones only, without the MusicXML;
    ``notes_midi``: the notes to write come from this file (a transcription of the performance's
    render) instead of the performance MIDI; ``key_source``: as :func:`transcribe.score.notes_to_score`."""
    from transcribe.data.asap import read_annotations
    from transcribe.metrics import beat_metrics
    from transcribe.notefiles import read_midi
    from transcribe.score import estimate_beats, notes_to_score, score_bytes

    notes = read_midi(notes_midi or midi).sorted()
    ann = read_annotations(annotation)
    ref_beats, ref_down = ann.beats, ann.downbeats
    if seconds is not None:
        notes = notes.select(notes.onsets < seconds)
        ref_beats, ref_down = ref_beats[ref_beats < seconds], ref_down[ref_down < seconds]
    music_min = max(float(notes.offsets.max() - notes.onsets.min()), 1e-3) / 60.0
    t0 = time.process_time()
    beats = estimate_beats(None, None, notes, method=beats_method)
    xml = None if beats_only else score_bytes(notes_to_score(notes, beats, title=midi.stem, key_source=key_source))
    cpu = time.process_time() - t0
    m = beat_metrics(ref_beats, ref_down, beats)
    ts_ref = ann.time_signature
    row = {"file": str(midi), "minutes": round(music_min, 3), "notes": len(notes),
           "beat_f": m["beat_f"], "downbeat_f": m["downbeat_f"], "tempo": round(m["tempo"], 2),
           "tempo_ref": round(m["tempo_ref"], 2), "tempo_right": m["tempo_right"], "cpu_s": round(cpu, 3)}
    if beats_only:
        ts = beats.time_signature  # the estimated metre's: no MusicXML to read it from
    else:
        w = written(xml)
        ts = w["time_signature"]
        row.update({"key_signature": w["key_signature"], "key_signature_ref": ann.key_signature,
                    "key_signature_right": w["key_signature"] == ann.key_signature,
                    "written_notes": w["notes"], "redundant": w["redundant"], "missing": w["missing"],
                    "cautionary": w["cautionary"],
                    "cpu_s_per_min": round(cpu / music_min, 3)})
    row.update({"time_signature": ts, "time_signature_ref": ts_ref, "time_signature_right": ts == ts_ref,
                "time_signature_compatible": ts == ts_ref or COMPATIBLE.get(ts or "", "a") == COMPATIBLE.get(ts_ref, "b")})
    return row


def summarise(rows: list[dict]) -> dict:
    """Means over performances (F-measures, accuracies) and note-weighted accidental shares."""
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return {"performances": 0, "errors": len(rows)}
    mean = lambda k: round(float(np.mean([float(r[k]) for r in ok if r[k] is not None])), 4)  # noqa: E731
    if "written_notes" not in ok[0]:  # --beats-only
        return {"performances": len(ok), "errors": len(rows) - len(ok), "beat_f": mean("beat_f"),
                "downbeat_f": mean("downbeat_f"), "time_signature_right": mean("time_signature_right"),
                "time_signature_compatible": mean("time_signature_compatible"), "tempo_right": mean("tempo_right")}
    notes = sum(r["written_notes"] for r in ok)
    return {
        "performances": len(ok), "errors": len(rows) - len(ok),
        "beat_f": mean("beat_f"), "downbeat_f": mean("downbeat_f"),
        "time_signature_right": mean("time_signature_right"),
        "time_signature_compatible": mean("time_signature_compatible"),
        "key_signature_right": mean("key_signature_right"), "tempo_right": mean("tempo_right"),
        "redundant_share": round(sum(r["redundant"] for r in ok) / max(notes, 1), 4),
        "missing_share": round(sum(r["missing"] for r in ok) / max(notes, 1), 4),
        "cautionary_share": round(sum(r.get("cautionary", 0) for r in ok) / max(notes, 1), 4),  # of the redundant
        "cpu_s_per_min": round(sum(r["cpu_s"] for r in ok) / sum(r["minutes"] for r in ok), 3),
    }


def warm_up(beats_method: str = "auto") -> None:
    """Import and compile (numba) what the score stage uses, once before any timing: the stage's
    time is measured, not the imports'."""
    from transcribe.notes import Notes
    from transcribe.score import estimate_beats, notes_to_score, score_bytes

    t = np.arange(16) * 0.5
    notes = Notes(t, t + 0.4, np.full(16, 60), np.full(16, 80))
    score_bytes(notes_to_score(notes, estimate_beats(None, None, notes, method=beats_method)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="performance MIDI files (default: the held-out ASAP split)")
    ap.add_argument("--asap", type=Path, default=Path("data/asap"), help="the ASAP folder (metadata.csv, works)")
    ap.add_argument("--shared-data", type=Path, default=None, help="where test_pieces.csv is (paths.shared_data)")
    ap.add_argument("--seconds", type=float, default=None, help="evaluate the first this many seconds only")
    ap.add_argument("--beats", choices=["auto", "notes", "model"], default="auto",
                    help="estimate_beats method: notes (the tracker), model, auto (conf/score/default.yaml)")
    ap.add_argument("--side", choices=["val", "train"], default="val",
                    help="which side of the split (val: the 41 held-out performances; train: for choosing settings)")
    ap.add_argument("--limit", type=int, default=None,
                    help="a seeded sample of this many performances of the side (seed 0)")
    ap.add_argument("--beats-only", action="store_true",
                    help="beats, downbeats, tempo and the estimated metre only: no MusicXML (fast)")
    ap.add_argument("--transcribed", type=Path, default=None,
                    help="a folder of transcriptions of the performances' renders, named as transcribe-render names "
                         "the renders (Composer_Work_..._Performer.mid): audio -> notes -> score")
    ap.add_argument("--key", choices=["profile", "model"], default=None,
                    help="where the key signature comes from (default: key_source of conf/score/default.yaml)")
    ap.add_argument("--beat-model", type=Path, default=None,
                    help="an exported beat model (.onnx) in place of the shipped transcribe/weights/beats.onnx")
    ap.add_argument("--out", type=Path, default=None, help="write per-performance rows and the summary as JSON")
    args = ap.parse_args(argv)

    if args.beat_model is not None:
        from transcribe import beatmodel

        if not args.beat_model.is_file():
            ap.error(f"--beat-model {args.beat_model}: no such file")
        beatmodel.WEIGHTS = args.beat_model  # read at call time by estimate_beats_model and upper_staff

    from transcribe.data.asap import annotation_path, split
    from transcribe.render.sources import render_stem

    files = args.files or split(args.asap, args.shared_data)[args.side]
    if args.limit is not None and not args.files:
        files = [files[i] for i in sorted(np.random.default_rng(0).permutation(len(files))[: args.limit])]
    warm_up(args.beats)
    rows = []
    for f in files:
        try:
            notes_midi = None
            if args.transcribed is not None:
                notes_midi = args.transcribed / (render_stem(f, args.asap) + ".mid")
            rows.append(evaluate_one(f, annotation_path(f), args.seconds, args.beats, args.beats_only, notes_midi,
                                     args.key))
        except Exception as err:  # a bad file is reported and the batch goes on
            rows.append({"file": str(f), "error": f"{type(err).__name__}: {err}"})
            print(f"{f}: {rows[-1]['error']}", file=sys.stderr)
            continue
        r = rows[-1]
        line = (f"{f.parent.name}/{f.stem}: beat F {r['beat_f']:.3f} downbeat F {r['downbeat_f'] or 0:.3f} "
                f"ts {r['time_signature']} ({r['time_signature_ref']}) ")
        if not args.beats_only:
            line += f"key {r['key_signature']} ({r['key_signature_ref']}) "
        line += f"tempo {r['tempo']} ({r['tempo_ref']})"
        if not args.beats_only:
            line += f" redundant {r['redundant']}/{r['written_notes']} ({r['cautionary']} cautionary) cpu {r['cpu_s_per_min']} s/min"
        print(line, flush=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    if args.out:
        from transcribe.files import atomic_write

        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.out) as tmp:
            tmp.write_text(json.dumps({"summary": summary, "performances": rows}, indent=1))
    return 1 if summary.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
