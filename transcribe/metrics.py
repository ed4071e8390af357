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
    n = int(np.ceil(max(ref.duration, est.duration) * frame_rate)) + 1
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


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every numeric metric over the files that have it (pedal metrics: only files whose
    pedal is known)."""
    keys = list(dict.fromkeys(k for r in rows for k, v in r.items() if isinstance(v, float)))
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
