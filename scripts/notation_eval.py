"""Notation against the score, on ASAP (issue 25): where does :func:`transcribe.score.quantise` put a
performance's notes, given the *annotated* beats, and on which staff does
:func:`transcribe.score.assign_staves` (``hands: split``: the split point with the staff model's prior as
``conf/score`` sets it) put them: is that where the score has them?

For every performance of a side of the split (:func:`transcribe.data.asap.split`) in a simple
metre, its notes are quantised on its annotated beats and metre (``Beats`` from
``*_annotations.txt``), so the beat tracker's errors are left out and only the grid and the staves
are measured. The score's notes (``midi_score.mid``: its first track the upper staff, its second
the lower) are placed on the score's annotated beats (``midi_score_annotations.txt``, beat for
beat the performance's). A performance note counts when a score note of the same pitch lies within
a quarter of a beat of its unquantised position (its counterpart: ornaments, wrong notes and
repeats the score MIDI does not hold are left out). Its **position** is right when the quantised
position equals the counterpart's; its **staff** is right when it is the counterpart's. Reported
per triplet cost (``--costs``, runs of ``triplet_run`` as configured; ``inf``: no triplets): the share of positions
right over all counted notes, over the notes the score puts on a third or sixth of a beat (triplets), and
over the others; and the share of staves right.

    python scripts/notation_eval.py --asap data/asap --shared-data ../shared/data --side train --sample 150 \\
        --costs inf,0.3,0.2,0.1,0.05,0.02,0 --seconds 60 --out runs/notation_train.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

def beats_of(ann) -> "Beats":  # noqa: F821
    """``Beats`` from an ASAP annotation: its beats, its main metre, its first downbeat (ASAP's
    beats of compound x/8 metres are dotted quarters, as ``Beats`` has them)."""
    from transcribe.beats import Beats

    num, den = (int(x) for x in ann.time_signature.split("/"))
    beats = Beats(ann.beats, ann.tempo, num, den)
    first = int(np.argmin(np.abs(ann.beats - ann.downbeats[0]))) if len(ann.downbeats) else 0
    beats.downbeat = first % max(beats.beats_per_bar, 1)
    return beats


def evaluate_one(midi: Path, costs: list[float], divisions: int, seconds: float | None,
                 model: Path | None = None, note_window: int = 0, voice_gains: tuple[float, ...] = ()) -> dict | None:
    """Counts of one performance: staves right (``staff_split``: :func:`transcribe.score.assign_staves`, ``split``;
    ``staff_model``: the beat model at ``model``, when given, run over windows of ``note_window``
    notes as the score stage runs it) over ``staff_counted`` notes, and, in a
    simple metre, per triplet cost the positions right (all; on thirds of a beat). None when the
    score's and the performance's beat annotations do not correspond one to one."""
    from transcribe.beatmodel import upper_staff
    from transcribe.beats import Beats
    from transcribe.data.asap import annotation_path, read_annotations, read_score_midi, score_counterparts
    from transcribe.notefiles import read_midi
    from transcribe.score import assign_staves, configured_triplet_run, quantise

    ann = read_annotations(annotation_path(midi))
    score_ann = read_annotations(midi.parent / "midi_score_annotations.txt")
    if len(ann.beats) != len(score_ann.beats):
        return None  # repeats taken or left out: no beat-for-beat correspondence
    beats = beats_of(ann)
    notes = read_midi(midi).sorted()
    if seconds is not None:
        notes = notes.select(notes.onsets < seconds)
    if len(notes) < 8:
        return None
    score, upper = read_score_midi(midi.parent / "midi_score.mid")
    match = score_counterparts(notes, ann, score, score_ann)
    score_pos = Beats(score_ann.beats, 60.0).position(score.onsets)
    target = np.where(match >= 0, score_pos[match], np.nan)
    staff = upper[match] & (match >= 0)  # the counterpart's staff: True = upper
    q = quantise(notes, beats, divisions)
    split = np.zeros(len(notes), dtype=bool)
    split[q.index] = assign_staves(notes, q, "split")
    counted = np.isfinite(target) & np.isin(np.arange(len(notes)), q.index)
    out = {"performance": str(midi), "metre": beats.time_signature, "staff_counted": int(counted.sum()),
           "staff_split": int(np.sum(counted & (split == staff)))}
    if model is not None:
        out["staff_model"] = int(np.sum(counted & (upper_staff(notes, model, note_window) == staff)))
    if beats.compound:
        return out  # the triplet grid is for simple metres; compound beats already divide in three
    third = np.isfinite(target) & _thirds(np.nan_to_num(target))
    out.update({"counted": int(np.isfinite(target).sum()), "thirds": int(third.sum())})
    for cost in costs:
        q = quantise(notes, beats, divisions, triplet_cost=cost, triplet_run=configured_triplet_run())
        qpos = np.full(len(notes), np.nan)
        qpos[q.index] = q.origin + q.onsets / beats.beat_ql
        right = np.isfinite(target) & np.isfinite(qpos) & (np.abs(qpos - target) < 1e-3)
        out[f"{cost:g}"] = {"right": int(right.sum()), "right_thirds": int((right & third).sum()),
                            "triplet_notes": int(np.sum(_thirds(q.onsets / beats.beat_ql)))}
    out.update(_note_values(notes, beats, divisions, score, score_ann, match, model, note_window, voice_gains))
    return out


def _note_values(notes, beats, divisions: int, score, score_ann, match: np.ndarray, model: Path | None = None,
                 note_window: int = 0, voice_gains: tuple[float, ...] = ()) -> dict:
    """Note values as written (the configured triplet cost, staves by ``hands: split``), against
    the counterparts' in the score, in beats: ``values_counted`` notes whose counterpart's position
    is right, ``values_right`` of them written with the score's value, ``values_cut`` written
    shorter than their quantised duration (held past the next onset on their staff: one voice per
    staff cuts them), ``values_cut_score`` of those whose quantised duration is the score's (what
    a second voice would write right); with a ``model`` that has the note-value output,
    ``values_right_model``: written with the score's value from the model's values
    (``note_values: model``); per ``voice_gains`` (quarter notes, :func:`transcribe.score.second_voice`),
    ``voices``: the values right and the notes written in a second voice when bars get one."""
    from transcribe.beats import Beats
    from transcribe.score import (assign_staves, configured_triplet_cost, configured_triplet_run, configured_voice_gain,
                                  quantise, staff_voices, written_lengths)

    q = quantise(notes, beats, divisions, triplet_cost=configured_triplet_cost(), triplet_run=configured_triplet_run())
    score_beats = Beats(score_ann.beats, 60.0)
    m = match[q.index]
    has = m >= 0
    target_on = np.where(has, score_beats.position(score.onsets[np.maximum(m, 0)]), np.nan)
    target_len = np.where(has, score_beats.position(score.offsets[np.maximum(m, 0)]), np.nan) - target_on
    on = q.origin + q.onsets / beats.beat_ql
    ok = has & (np.abs(on - target_on) < 1e-3)  # position right: its value can be judged
    upper = assign_staves(notes, q, "split")
    written = written_lengths(q, upper, second=staff_voices(q, upper, configured_voice_gain())) / beats.beat_ql
    held = q.durations / beats.beat_ql
    cut = ok & (written < held - 1e-6)
    # the score MIDI's notes end a little before their value (0.248 beats for 0.25): its value is
    # the length on a twelfth of a beat (sixteenths and triplet sixteenths) nearest to it
    target_len = np.round(target_len * 12) / 12
    same = lambda a: np.abs(a - target_len) < 1e-3  # noqa: E731
    out = {"values_counted": int(ok.sum()), "values_right": int(np.sum(ok & same(written))),
           "values_cut": int(cut.sum()), "values_cut_score": int(np.sum(cut & same(held)))}
    out["voices"] = {}
    for gain in voice_gains:
        second = staff_voices(q, upper, gain)
        by_voices = written_lengths(q, upper, second=second) / beats.beat_ql
        out["voices"][f"{gain:g}"] = {"right": int(np.sum(ok & same(by_voices))), "second": int(second.sum()),
                                      "notes": len(q)}
    if model is not None:
        from transcribe.beatmodel import note_values

        try:
            values = note_values(notes, model, note_window)[q.index] * beats.beat_ql
        except ValueError:  # a model without the note-value output: its staves only
            return out
        by_model = written_lengths(q, upper, values) / beats.beat_ql
        out["values_right_model"] = int(np.sum(ok & same(by_model)))
    return out


def _thirds(pos: np.ndarray) -> np.ndarray:
    """Beat positions on a sixth of a beat (thirds included) and not on a quarter of one: where
    only a triplet grid puts a note."""
    frac = pos - np.floor(pos + 1e-6)
    return (np.abs(frac * 6 - np.round(frac * 6)) < 1e-3) & (np.abs(frac * 4 - np.round(frac * 4)) > 1e-3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path,
                    help="performance MIDI files (default: the --side of the split; e.g. the inner works' list)")
    ap.add_argument("--asap", default="data/asap")
    ap.add_argument("--shared-data", default=None)
    ap.add_argument("--side", choices=("train", "val"), default="val")
    ap.add_argument("--sample", type=int, default=None, help="a seeded sample of this many performances")
    ap.add_argument("--costs", default="inf,0.2,0.1", help="comma-separated triplet costs (beats)")
    ap.add_argument("--divisions", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=None, help="the first this many seconds of each")
    ap.add_argument("--model", type=Path, default=None,
                    help="also score the staves of this beat model (one with the staff output)")
    ap.add_argument("--note-window", type=int, default=None,
                    help="run --model over windows of this many notes (0: one pass; default: conf/score's "
                         "model_note_window, as the score stage runs it)")
    ap.add_argument("--voice-gains", default="",
                    help="comma-separated score.second_voice gains (quarter notes; inf: one voice per staff) "
                         "whose note values to report beside the configured writing")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from transcribe.data.asap import split
    from transcribe.score import configured_model_note_window, configured_triplet_cost

    note_window = configured_model_note_window() if args.note_window is None else args.note_window

    costs = [float(c) for c in args.costs.split(",")]
    gains = tuple(float(g) for g in args.voice_gains.split(",") if g.strip())
    files = sorted(args.files) if args.files else sorted(split(args.asap, args.shared_data)[args.side])
    if args.sample is not None and args.sample < len(files):
        rng = np.random.default_rng(0)
        files = sorted(rng.choice(files, args.sample, replace=False).tolist())
    rows, skipped = [], 0
    for i, f in enumerate(files, 1):
        try:
            row = evaluate_one(Path(f), costs, args.divisions, args.seconds, args.model, note_window, gains)
        except (OSError, ValueError) as err:
            print(f"{f}: skipped: {err}", file=sys.stderr)
            row = None
        if row is None:
            skipped += 1
            continue
        rows.append(row)
        line = f"[{i}/{len(files)}] {Path(f).parent.relative_to(args.asap)}/{Path(f).name}: staff split " \
               f"{row['staff_split'] / max(row['staff_counted'], 1):.3f}"
        if "staff_model" in row:
            line += f" model {row['staff_model'] / max(row['staff_counted'], 1):.3f}"
        if "counted" in row:
            line += "  positions " + " ".join(f"{c:g}:{row[f'{c:g}']['right'] / max(row['counted'], 1):.3f}"
                                              for c in costs)
        print(line, flush=True)
    summary = {"side": args.side, "seconds": args.seconds, "performances": len(rows), "skipped": skipped}
    staff_n = sum(r["staff_counted"] for r in rows)
    summary["staff_split"] = sum(r["staff_split"] for r in rows) / max(staff_n, 1)
    print(f"{len(rows)} performances ({skipped} skipped: score beats not one to one), {staff_n} notes with a "
          f"counterpart; staves right: split {summary['staff_split']:.3f}", end="")
    if args.model is not None:
        summary["staff_model"] = sum(r["staff_model"] for r in rows) / max(staff_n, 1)
        print(f", model {summary['staff_model']:.3f} ({args.model})", end="")
    print()
    simple = [r for r in rows if "counted" in r]
    counted = sum(r["counted"] for r in simple)
    thirds = sum(r["thirds"] for r in simple)
    summary.update({"simple_metre_performances": len(simple), "counted": counted, "thirds": thirds, "costs": {}})
    print(f"Positions: {len(simple)} performances in simple metres, {counted} notes with a counterpart, "
          f"{thirds} of them on a third or sixth of a beat")
    print("| triplet cost | positions right | on thirds | elsewhere | notes written in triplets |")
    print("| --- | --- | --- | --- | --- |")
    for c in costs:
        k = f"{c:g}"
        right = sum(r[k]["right"] for r in simple)
        rt = sum(r[k]["right_thirds"] for r in simple)
        trip = sum(r[k]["triplet_notes"] for r in simple)
        s = {"right": right / max(counted, 1), "right_thirds": rt / max(thirds, 1),
             "right_elsewhere": (right - rt) / max(counted - thirds, 1), "triplet_notes": trip}
        summary["costs"][k] = s
        print(f"| {k} | {s['right']:.3f} | {s['right_thirds']:.3f} | {s['right_elsewhere']:.3f} | {trip} |")
    vc = sum(r["values_counted"] for r in simple)
    summary["values"] = {k: sum(r[k] for r in simple) for k in ("values_counted", "values_right", "values_cut",
                                                                "values_cut_score") + (
        ("values_right_model",) if simple and all("values_right_model" in r for r in simple) else ())}
    print(f"Note values (triplet cost {configured_triplet_cost():g}, notes whose position is right: {vc}): written as the "
          f"score writes them {summary['values']['values_right'] / max(vc, 1):.3f}; cut at the next onset on their "
          f"staff {summary['values']['values_cut'] / max(vc, 1):.3f}, of all such notes "
          f"{summary['values']['values_cut_score'] / max(vc, 1):.3f} with the score's value before the cut")
    if "values_right_model" in summary["values"]:
        print(f"Note values from the model's output ({args.model}): written as the score writes them "
              f"{summary['values']['values_right_model'] / max(vc, 1):.3f}")
    for g in gains:
        k = f"{g:g}"
        right = sum(r["voices"][k]["right"] for r in simple)
        second = sum(r["voices"][k]["second"] for r in simple)
        total = sum(r["voices"][k]["notes"] for r in simple)
        summary.setdefault("voices", {})[k] = {"values_right": right / max(vc, 1), "second_voice": second / max(total, 1)}
        print(f"Second voice where a note gains {k} quarter notes: values as the score writes them "
              f"{right / max(vc, 1):.3f}, notes in a second voice {second / max(total, 1):.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
