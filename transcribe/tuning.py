"""Decoder thresholds chosen on labelled validation recordings: one network pass per
recording, then every (onset, frame) threshold pair decoded and scored, and for models with a
pedal head every (pedal, pedal-onset) pair. Used by training validation
(``train.val_thresholds``) and ``scripts/ship_model.py``."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

from .decode import DecodeConfig, decode_notes
from .metrics import mean_metrics, transcription_metrics
from .notes import Notes


@dataclass(frozen=True)
class ThresholdResult:
    """The mean metrics of one (onset, frame) threshold pair over the tuning recordings, and
    each recording's own (``rows``, in their order: scores of a subset need no second decode)."""

    onset_threshold: float
    frame_threshold: float
    metrics: dict[str, float]
    rows: tuple[dict[str, float], ...] = field(default=(), compare=False, repr=False)

    @property
    def score(self) -> float:
        """What the choice maximises: note F1 + note-with-offset F1 + frame F1 (one threshold
        pair serves onsets, offsets and frames alike)."""
        m = self.metrics
        return m["note_f1"] + m["note_offset_f1"] + m["frame_f1"]


def sweep_thresholds(recordings: Sequence[tuple[dict[str, np.ndarray], Notes]], frame_rate: float,
                     decode: DecodeConfig, onsets: Iterable[float], frames: Iterable[float]
                     ) -> list[ThresholdResult]:
    """Scores of every (onset, frame) pair on ``recordings`` = [(activations, reference notes)],
    decoded with ``decode`` otherwise unchanged."""
    results = []
    for on, fr in itertools.product(map(float, onsets), map(float, frames)):
        cfg = replace(decode, onset_threshold=on, frame_threshold=fr)
        rows = [transcription_metrics(ref, decode_notes(act["onset"], act["frame"], frame_rate, cfg,
                                                        act.get("velocity")))
                for act, ref in recordings]
        results.append(ThresholdResult(on, fr, mean_metrics(rows), tuple(rows)))
    return results


def best_thresholds(results: Sequence[ThresholdResult | PedalThresholdResult]):
    """The pair with the highest ``score`` (the first of equals): note thresholds from
    :func:`sweep_thresholds`, or pedal thresholds from :func:`sweep_pedal_thresholds`."""
    if not results:
        raise ValueError("no threshold pairs were tried")
    return max(results, key=lambda r: r.score)


@dataclass(frozen=True)
class PedalThresholdResult:
    """The mean pedal metrics of one (pedal, pedal-onset) threshold pair over the tuning recordings."""

    pedal_threshold: float
    pedal_onset_threshold: float
    metrics: dict[str, float]

    @property
    def score(self) -> float:
        """What the choice maximises: press F1 + lift F1 + pedal-frame F1 (CC64 events and the
        spans they hold both matter)."""
        m = self.metrics
        return m["pedal_onset_f1"] + m["pedal_offset_f1"] + m["pedal_frame_f1"]


def sweep_pedal_thresholds(recordings: Sequence[tuple[dict[str, np.ndarray], np.ndarray]], frame_rate: float,
                           decode: DecodeConfig, pedals: Iterable[float], onsets: Iterable[float]
                           ) -> list[PedalThresholdResult]:
    """Pedal scores of every (pedal, pedal-onset) threshold pair on ``recordings`` =
    [(activations with the pedal heads, reference pedal spans [n, 2])], decoded with ``decode``
    otherwise unchanged."""
    from .decode import decode_pedal
    from .metrics import pedal_metrics

    results = []
    for p, o in itertools.product(map(float, pedals), list(map(float, onsets))):
        cfg = replace(decode, pedal_threshold=p, pedal_onset_threshold=o)
        rows = [pedal_metrics(ref, decode_pedal(act["pedal"], act.get("pedal_onset"), frame_rate, cfg))
                for act, ref in recordings]
        results.append(PedalThresholdResult(p, o, mean_metrics(rows)))
    return results
