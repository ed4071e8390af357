"""Note and frame metrics (mir_eval.transcription), as defined in the project guide."""

from __future__ import annotations

import warnings

import numpy as np

from .targets import notes_to_rolls
from .notes import Notes

FRAME_RATE_FOR_METRICS = 100.0  # piano rolls for frame F1 are compared on a 10 ms grid
METRIC_NAMES = ("note", "note_offset", "note_offset_velocity", "frame")


def _mir_eval_args(notes: Notes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from mir_eval.util import midi_to_hz

    # mir_eval requires positive durations
    intervals = np.stack([notes.onsets, np.maximum(notes.offsets, notes.onsets + 1e-3)], axis=1)
    return intervals.reshape(-1, 2), midi_to_hz(notes.pitches.astype(np.float64)), notes.velocities.astype(np.float64)


def _prf(tp: float, n_est: float, n_ref: float) -> tuple[float, float, float]:
    p = tp / n_est if n_est else float(n_ref == 0)
    r = tp / n_ref if n_ref else float(n_est == 0)
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def frame_prf(ref: Notes, est: Notes, frame_rate: float = FRAME_RATE_FOR_METRICS) -> tuple[float, float, float]:
    """Precision, recall, F1 of piano-roll frames (10 ms grid) between two note lists."""
    n = int(np.ceil(max(ref.end, est.end) * frame_rate)) + 1
    r = notes_to_rolls(ref, n, frame_rate)["frame"] > 0
    e = notes_to_rolls(est, n, frame_rate)["frame"] > 0
    return _prf(float(np.sum(r & e)), float(e.sum()), float(r.sum()))


def transcription_metrics(ref: Notes, est: Notes) -> dict[str, float]:
    """Precision/recall/F1 for notes (50 ms onset tolerance), notes with offsets (20% of the
    note or 50 ms), notes with offsets and velocity, and frames. Keys like ``note_f1``."""
    from mir_eval import transcription, transcription_velocity

    out: dict[str, float] = {}
    if len(ref) == 0 or len(est) == 0:  # mir_eval warns and returns 0; keep the empty/empty case exact
        for name in METRIC_NAMES[:3]:
            out[f"{name}_precision"], out[f"{name}_recall"], out[f"{name}_f1"] = _prf(0, len(est), len(ref))
    else:
        ri, rp, rv = _mir_eval_args(ref)
        ei, ep, ev = _mir_eval_args(est)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, r, f, _ = transcription.precision_recall_f1_overlap(ri, rp, ei, ep, offset_ratio=None)
            out.update(note_precision=p, note_recall=r, note_f1=f)
            p, r, f, _ = transcription.precision_recall_f1_overlap(ri, rp, ei, ep)
            out.update(note_offset_precision=p, note_offset_recall=r, note_offset_f1=f)
            p, r, f, _ = transcription_velocity.precision_recall_f1_overlap(ri, rp, rv, ei, ep, ev)
            out.update(note_offset_velocity_precision=p, note_offset_velocity_recall=r, note_offset_velocity_f1=f)
    out["frame_precision"], out["frame_recall"], out["frame_f1"] = frame_prf(ref, est)
    return {k: float(v) for k, v in out.items()}


PEDAL_TOLERANCE_S = 0.1  # a pedal press or lift matches within 100 ms (mir_eval.onset.f_measure's window)


def pedal_metrics(ref: np.ndarray, est: np.ndarray, window: float = PEDAL_TOLERANCE_S,
                  frame_rate: float = FRAME_RATE_FOR_METRICS) -> dict[str, float]:
    """Precision/recall/F1 of sustain pedal spans [n, 2] (down, up s): presses
    (``pedal_onset_*``) and lifts (``pedal_offset_*``) matched one to one within ``window``
    seconds by :func:`mir_eval.onset.f_measure`, and pedal-down frames on a 10 ms grid
    (``pedal_frame_*``)."""
    from mir_eval.onset import f_measure

    ref, est = np.asarray(ref, float).reshape(-1, 2), np.asarray(est, float).reshape(-1, 2)
    out: dict[str, float] = {}
    for name, col in (("pedal_onset", 0), ("pedal_offset", 1)):
        r, e = np.sort(ref[:, col]), np.sort(est[:, col])
        if len(r) and len(e):
            f, p, rc = f_measure(r, e, window=window)
        else:
            p, rc, f = _prf(0, len(e), len(r))
        out[f"{name}_precision"], out[f"{name}_recall"], out[f"{name}_f1"] = float(p), float(rc), float(f)
    n = int(np.ceil(max(ref.max(initial=0.0), est.max(initial=0.0)) * frame_rate)) + 1

    def roll(spans: np.ndarray) -> np.ndarray:
        down = np.zeros(n, dtype=bool)
        for a, b in np.round(spans * frame_rate).astype(np.int64):
            down[a:b] = True
        return down

    r, e = roll(ref), roll(est)
    out["pedal_frame_precision"], out["pedal_frame_recall"], out["pedal_frame_f1"] = _prf(
        float(np.sum(r & e)), float(e.sum()), float(r.sum()))
    return out


def beat_metrics(ref_beats: np.ndarray, ref_downbeats: np.ndarray, beats) -> dict:
    """Estimated :class:`~transcribe.beats.Beats` against annotated beat and bar-start times:
    ``beat_f`` and ``downbeat_f`` (``mir_eval.beat.f_measure``: ±70 ms, beats before 5 s trimmed;
    ``downbeat_f`` None without annotated downbeats; the estimated bar starts are every
    ``beats_per_bar``-th beat from ``downbeat``), ``tempo`` and ``tempo_ref`` (BPM; the annotated
    beat level's is 60 / its median interval) and ``tempo_right`` (within 8 %)."""
    import mir_eval

    trim = mir_eval.beat.trim_beats
    est_down = beats.times[beats.downbeat % beats.beats_per_bar::beats.beats_per_bar]
    ref_tempo = 60.0 / float(np.median(np.diff(ref_beats)))
    return {"beat_f": float(mir_eval.beat.f_measure(trim(ref_beats), trim(beats.times))),
            "downbeat_f": float(mir_eval.beat.f_measure(trim(ref_downbeats), trim(est_down))) if len(ref_downbeats) else None,
            "tempo": float(beats.tempo), "tempo_ref": ref_tempo, "tempo_right": bool(abs(beats.tempo / ref_tempo - 1.0) <= 0.08)}


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every numeric metric over the files that have it (pedal metrics: only files whose
    pedal is known)."""
    keys = list(dict.fromkeys(k for r in rows for k, v in r.items() if isinstance(v, float)))
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}


VELOCITY_BANDS = ((0, 40, "soft (< 40)"), (40, 80, "medium (40-79)"), (80, 128, "loud (>= 80)"))
REGISTERS = ((21, 48, "bass (< C3)"), (48, 84, "middle (C3-B5)"), (84, 109, "treble (>= C6)"))
TIMING_WINDOW_S = 0.15  # a same-pitch note this close but outside the 50 ms tolerance: a timing error


def note_matches(ref: Notes, est: Notes, onset_tolerance: float = 0.05) -> list[tuple[int, int]]:
    """(reference index, estimate index) of the notes matched as note F1 matches them: the
    same pitch, onsets within ``onset_tolerance`` seconds, one to one (mir_eval)."""
    from mir_eval.transcription import match_notes

    if len(ref) == 0 or len(est) == 0:
        return []
    ri, rp, _ = _mir_eval_args(ref)
    ei, ep, _ = _mir_eval_args(est)
    return list(match_notes(ri, rp, ei, ep, onset_tolerance=onset_tolerance, offset_ratio=None))


def error_breakdown(ref: Notes, est: Notes) -> dict:
    """Where the note errors of one transcription are, as counts (sum them over files, then
    :func:`breakdown_rates`): notes matched at 25/50/100 ms onset tolerance; reference notes and
    their matches by velocity band and register; estimated notes and their matches by register;
    each unmatched estimate (at 50 ms) classed as ``timing`` (a same-pitch reference within
    150 ms that is itself unmatched), ``octave`` (a reference note 12 or 24 semitones away sounds
    at its onset), ``semitone`` (1 away), ``repeat`` (the same pitch sounds: a re-struck held
    note) or ``other``; each unmatched reference as ``timing`` (the same test) or ``missed``; and
    the matched notes' velocities (for the spread of the estimates against the truth)."""
    out: dict = {"ref": len(ref), "est": len(est)}
    pairs = note_matches(ref, est)
    for tol in (0.025, 0.05, 0.1):
        out[f"matched@{int(tol * 1000)}ms"] = len(pairs) if tol == 0.05 else len(note_matches(ref, est, tol))
    ref_hit = np.zeros(len(ref), bool)
    est_hit = np.zeros(len(est), bool)
    for i, j in pairs:
        ref_hit[i], est_hit[j] = True, True
    for lo, hi, name in VELOCITY_BANDS:
        sel = (ref.velocities >= lo) & (ref.velocities < hi)
        out[f"ref {name}"], out[f"hit {name}"] = int(sel.sum()), int((sel & ref_hit).sum())
    for lo, hi, name in REGISTERS:
        r = (ref.pitches >= lo) & (ref.pitches < hi)
        e = (est.pitches >= lo) & (est.pitches < hi)
        out[f"ref {name}"], out[f"hit {name}"] = int(r.sum()), int((r & ref_hit).sum())
        out[f"est {name}"], out[f"true {name}"] = int(e.sum()), int((e & est_hit).sum())

    def near_same_pitch(onset: float, pitch: int, other: Notes, free: np.ndarray) -> bool:
        return bool(np.any(free & (other.pitches == pitch) & (np.abs(other.onsets - onset) <= TIMING_WINDOW_S)))

    def sounding(onset: float, pitches: np.ndarray) -> bool:
        on = (ref.onsets <= onset + 0.05) & (ref.offsets >= onset)
        return bool(np.any(on & np.isin(ref.pitches, pitches)))

    fp = {"timing": 0, "octave": 0, "semitone": 0, "repeat": 0, "other": 0}
    for j in np.flatnonzero(~est_hit):
        t, p = float(est.onsets[j]), int(est.pitches[j])
        if near_same_pitch(t, p, ref, ~ref_hit):
            fp["timing"] += 1
        elif sounding(t, np.array([p - 24, p - 12, p + 12, p + 24])):
            fp["octave"] += 1
        elif sounding(t, np.array([p - 1, p + 1])):
            fp["semitone"] += 1
        elif sounding(t, np.array([p])):
            fp["repeat"] += 1
        else:
            fp["other"] += 1
    fn = {"timing": 0, "missed": 0}
    for i in np.flatnonzero(~ref_hit):
        fn["timing" if near_same_pitch(float(ref.onsets[i]), int(ref.pitches[i]), est, ~est_hit) else "missed"] += 1
    out.update({f"false {k}": v for k, v in fp.items()})
    out.update({f"miss {k}": v for k, v in fn.items()})
    out["velocity pairs"] = [(float(ref.velocities[i]), float(est.velocities[j])) for i, j in pairs]
    return out


def breakdown_rates(total: dict) -> dict[str, float]:
    """Rates from summed :func:`error_breakdown` counts: note F1 at each tolerance, recall per
    velocity band and register, precision per register, the share of each kind of false and
    missed note, and the matched velocities' 5-95 % ranges (truth and estimate)."""
    out: dict[str, float] = {}
    for key in [k for k in total if k.startswith("matched@")]:
        out[f"note F1 {key[8:]}"] = _prf(total[key], total["est"], total["ref"])[2]
    for lo, hi, name in VELOCITY_BANDS + REGISTERS:
        if total.get(f"ref {name}"):
            out[f"recall {name}"] = total[f"hit {name}"] / total[f"ref {name}"]
        if total.get(f"est {name}"):
            out[f"precision {name}"] = total[f"true {name}"] / total[f"est {name}"]
    n_fp = sum(v for k, v in total.items() if k.startswith("false "))
    n_fn = sum(v for k, v in total.items() if k.startswith("miss "))
    for k, v in total.items():
        if k.startswith("false ") and n_fp:
            out[f"share of false notes: {k[6:]}"] = v / n_fp
        if k.startswith("miss ") and n_fn:
            out[f"share of missed notes: {k[5:]}"] = v / n_fn
    pairs = np.asarray(total.get("velocity pairs", []), float).reshape(-1, 2)
    if len(pairs) > 1:
        for col, who in ((0, "truth"), (1, "estimate")):
            lo, hi = np.percentile(pairs[:, col], [5, 95])
            out[f"velocity 5% {who}"], out[f"velocity 95% {who}"] = float(lo), float(hi)
        out["velocity correlation"] = float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])
    return out


def sum_breakdowns(parts: list[dict]) -> dict:
    """Add the counts (and concatenate the velocity pairs) of several :func:`error_breakdown`\\ s."""
    total: dict = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, [] if isinstance(v, list) else 0) + v
    return total
