"""Beats: beat times and what they mean (tempo, meter, first downbeat), shared by the score stage
(:mod:`transcribe.score`, which estimates them) and the learned beat model
(:mod:`transcribe.beatmodel`), so neither imports the other's module."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Beats:
    """Beat times (s, increasing) and what they mean.

    ``tempo`` is beats per minute of ``times`` (60 / the median interval). The meter is
    ``numerator/denominator``; in a compound meter (6/8, 9/8, 12/8) a beat is a dotted quarter.
    ``downbeat`` is the index in ``times`` of a beat that starts a bar (others follow every
    :attr:`beats_per_bar` beats). ``source`` says where the beats came from (``notes``,
    ``audio``, ``notes+audio``, ``fixed`` or ``given``) and ``reason`` why, for a fixed grid.
    """

    times: np.ndarray
    tempo: float
    numerator: int = 4
    denominator: int = 4
    downbeat: int = 0
    source: str = "given"
    reason: str = ""
    meter_scores: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        if len(self.times) < 2 or np.any(np.diff(self.times) <= 0):
            raise ValueError("beat times must be at least two, strictly increasing")

    @classmethod
    def fixed(cls, tempo: float, start: float, end: float, reason: str = "") -> "Beats":
        """A steady grid at ``tempo`` BPM from ``start`` covering ``end``."""
        period = 60.0 / tempo
        n = max(2, int(np.ceil((end - start) / period)) + 2)
        return cls(start + period * np.arange(n), tempo, source="fixed", reason=reason)

    @property
    def compound(self) -> bool:
        """6/8, 9/8, 12/8: the beat is a dotted quarter divided in three."""
        return self.denominator == 8 and self.numerator % 3 == 0

    @property
    def beat_ql(self) -> float:
        """Length of one beat in quarter notes (1 in x/4, 1.5 in compound x/8)."""
        return 1.5 if self.compound else 4.0 / self.denominator

    @property
    def beats_per_bar(self) -> int:
        return self.numerator // 3 if self.compound else self.numerator

    @property
    def time_signature(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    def position(self, t: np.ndarray | float) -> np.ndarray:
        """Beat position (fractional index into ``times``) of times ``t``; before the first and
        after the last beat the grid goes on at the first / last interval."""
        t = np.asarray(t, dtype=np.float64)
        times = self.times
        pos = np.interp(t, times, np.arange(len(times), dtype=np.float64))
        first, last = times[1] - times[0], times[-1] - times[-2]
        pos = np.where(t < times[0], (t - times[0]) / first, pos)
        return np.where(t > times[-1], len(times) - 1 + (t - times[-1]) / last, pos)

    def time(self, pos: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`position`."""
        pos = np.asarray(pos, dtype=np.float64)
        times, n = self.times, len(self.times)
        first, last = times[1] - times[0], times[-1] - times[-2]
        t = np.interp(pos, np.arange(n, dtype=np.float64), times)
        t = np.where(pos < 0, times[0] + pos * first, t)
        return np.where(pos > n - 1, times[-1] + (pos - (n - 1)) * last, t)


def _librosa():
    """librosa (the ``[score]`` extra), or :class:`~transcribe.deps.MissingDependency` saying so."""
    from .deps import require

    return require("librosa", "beat tracking (--format musicxml, --midi-tempo)", extra="score")


def tempo_of(times: np.ndarray, span: int = 8) -> float:
    """BPM of beat times: the median over windows of ``span`` beats of their mean interval
    (robust to a stray beat, and finer than the tracker's 10 ms frames)."""
    span = min(span, len(times) - 1)
    return 60.0 * span / float(np.median(times[span:] - times[:-span]))


def subdivision_shares(onsets: np.ndarray, beats: Beats, tolerance: float = 0.06) -> tuple[float, float]:
    """(binary, ternary): the shares of the distinct ``onsets`` whose place inside their beat is
    within ``tolerance`` (of a beat) of its halves and quarters (1/4, 1/2, 3/4), and of its
    thirds (1/3, 2/3). Read by the score stage's tracker (:func:`transcribe.score.subdivision`)
    and the beat model's decoder (:func:`transcribe.beatmodel.onsets_on_thirds`)."""
    on = np.unique(np.asarray(onsets, dtype=np.float64))
    if len(on) == 0:
        return 0.0, 0.0
    frac = np.mod(beats.position(on), 1.0)

    def near(points: list[float]) -> float:
        return float(np.any(np.abs(frac[:, None] - np.array(points)[None]) < tolerance, axis=1).mean())

    return near([0.25, 0.5, 0.75]), near([1 / 3, 2 / 3])


TEMPO_LAGS = ("windowed", "unbiased")  # how global_tempo weighs the autocorrelation's lags
TEMPOGRAM_STRIDE = 4  # frames between the windows of the tempo estimate's tempogram (librosa's: 1)


def global_tempo(envelope: np.ndarray, fps: int, start_bpm: float, prior_octaves: float = 1.0,
                 lags: str = "windowed") -> float:
    """The tempo (BPM) librosa's beat tracker would estimate from ``envelope`` (its
    ``feature.tempo`` defaults: 8 s Hann windows, autocorrelation, mean over the windows,
    a log-normal prior around ``start_bpm`` of ``prior_octaves`` standard deviation), from every
    :data:`TEMPOGRAM_STRIDE`-th window only.
    Written here because librosa's tempogram takes a window at every frame, and that was a
    quarter of the score stage's CPU time (measured on held-out ASAP performances); a mean over
    every fourth window gives the same tempo (docs/SCORE.md, round 4).

    ``lags``: ``windowed`` (librosa's autocorrelation of the windowed frames, which weighs a lag
    by how much of the 8-s Hann window overlaps itself there: a 1.7-s beat counts about half as
    much as a 0.9-s one) or ``unbiased`` (each lag divided by the window's own autocorrelation,
    lags where that is under a fifth of its peak, beyond about 4 s, left out): slow beats, such as
    the dotted quarters of a 6/8 ballade, are not pushed to a faster level (docs/SCORE.md, round 10)."""
    librosa = _librosa()

    if lags not in TEMPO_LAGS:
        raise ValueError(f"unknown tempo lags {lags!r}: windowed or unbiased")
    win = int(librosa.time_to_frames(8.0, sr=fps, hop_length=1))  # librosa's ac_size
    env = np.asarray(envelope, dtype=np.float64)
    n = env.shape[-1]
    padded = np.pad(env, (win // 2, win // 2), mode="linear_ramp", end_values=(0, 0))
    frames = librosa.util.frame(padded, frame_length=win, hop_length=TEMPOGRAM_STRIDE)
    frames = frames[:, : (n + TEMPOGRAM_STRIDE - 1) // TEMPOGRAM_STRIDE]
    window = librosa.filters.get_window("hann", win, fftbins=True)[:, None]
    tg = librosa.autocorrelate(frames * window, axis=0)
    if lags == "unbiased":
        own = librosa.autocorrelate(window[:, 0])
        tg = np.where((own > 0.2 * own[0])[:, None], tg / np.maximum(own, 1e-12)[:, None], 0.0)
    tg = librosa.util.normalize(tg, norm=np.inf, axis=0)
    return float(librosa.feature.tempo(tg=tg, sr=fps, hop_length=1, start_bpm=start_bpm,
                                       std_bpm=prior_octaves)[0])
