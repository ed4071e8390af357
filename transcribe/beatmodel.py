"""Beats, downbeats and metre from the note sequence by a small learned model (issue 25).

A CRNN over the notes (sorted by onset, then pitch), in the manner of PM2S (Liu et al., ISMIR
2022): per note, a few features (:func:`note_features`) → two 1-D convolutions → a two-layer
bidirectional GRU → per note: is it on a beat, on a downbeat, the local inter-beat interval
(:data:`IBI_BINS` classes), beats per bar (2, 3, 4), the beat's subdivision (binary,
ternary) and the staff a score writes the note on (upper or lower; models trained before that
output have none, see :func:`split_outputs`). Trained on ASAP's training side by
``scripts/train_beat_model.py``; shipped as ``weights/beats.onnx`` (run by onnxruntime, so no
torch at inference) with its card ``weights/BEATS_CARD.md``.

From the per-note outputs (:func:`beats_from_outputs`): the tempo is librosa's estimate from an
onset curve of the beat probabilities, its prior centred on the beat-weighted median of the
predicted intervals; librosa's dynamic-programming tracker runs at that tempo on the curve (so
the beats fill the gaps between notes, steadily); the bar is the grouping of 2, 3 or 4 beats
whose downbeat probabilities stand out most (or the bar output's mean, :func:`metre_of`), its
first downbeat the phase whose beats carry the most downbeat probability; the beat divides in
three by the subdivision output's mean or by where the onsets fall between the beats.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .notes import Notes

WEIGHTS = Path(__file__).parent / "weights" / "beats.onnx"
# The staff model: a beat model of the same shape trained on no ASAP performance (piano-midi.de and synthetic pieces,
# CC BY-SA), whose staff output is the split point's prior (score.assign_staves, staff_prior) and whose downbeat
# output places the tracker's bar lines (downbeat_phase; STAVES_CARD.md, docs/SCORE.md rounds 18, 23, 24 and 34)
STAVES_WEIGHTS = Path(__file__).parent / "weights" / "staves.onnx"
# The level model: a beat model of the same shape trained on no ASAP performance (piano-midi.de, Mutopia's scores and
# synthetic pieces, CC BY-SA), whose beats replace the tracker's where the two are a beat level apart
# (score.switch_level, beat_level_switch; BEATS_OPEN_CARD.md, docs/SCORE.md rounds 46 and 52)
OPEN_WEIGHTS = Path(__file__).parent / "weights" / "beats_open.onnx"
N_FEATURES = 20  # the 8 of the first models, then the pitch class one-hot (12): models read the first as many as they take
IBI_MIN, IBI_MAX, IBI_BINS = 0.2, 2.5, 48  # s: the inter-beat intervals the model tells apart (log-spaced)
PER_BAR = (2, 3, 4)  # beats per bar the model tells apart
TEMPOS = ("global", "local")  # how beats_from_outputs finds the tempo
METRES = ("head", "downbeats", "both")  # how metre_of finds the bar
SUBDIVISIONS = ("output", "onsets")  # how beats_from_outputs finds a beat divided in three
CHORD_S = 0.035  # s: notes starting this close to the group's first onset are one chord (as in score.py)
KEY_CLASSES = 12  # key signatures up to enharmonic spelling: sharps mod 12 (see signature_class)
# The output columns, in order: beat, downbeat, IBI classes, per-bar classes, subdivision (binary,
# ternary), staff, key signature classes, note values. Models trained before the later outputs end earlier.
IBI_COLS = slice(2, 2 + IBI_BINS)
PER_BAR_COLS = slice(IBI_COLS.stop, IBI_COLS.stop + len(PER_BAR))
SUBDIVISION_COLS = slice(PER_BAR_COLS.stop, PER_BAR_COLS.stop + 2)
STAFF_COL = SUBDIVISION_COLS.stop
KEY_COLS = slice(STAFF_COL + 1, STAFF_COL + 1 + KEY_CLASSES)
# Note values the model tells apart, in beats (the annotated beat: a dotted quarter in 6/8): what a
# score writes a note as (its counterpart's length), from a sixth of a beat to four beats
VALUES = (1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 1.5, 2.0, 3.0, 4.0)
VALUE_COLS = slice(KEY_COLS.stop, KEY_COLS.stop + len(VALUES))
OUTPUTS = VALUE_COLS.stop


def signature_class(sharps: np.ndarray | int) -> np.ndarray:
    """The key-signature class (0..11) of a number of sharps (negative: flats): enharmonic
    signatures (7 sharps, 5 flats) are one class, and a transposition by s semitones moves the
    class by 7·s (mod 12)."""
    return np.mod(np.asarray(sharps), 12)


def class_sharps(c: int) -> int:
    """The signature of a class written with the fewer accidentals (at six: six flats)."""
    return int(c) if int(c) <= 5 else int(c) - 12


def ibi_centres() -> np.ndarray:
    """The inter-beat interval (s) of every IBI class."""
    return np.exp(np.linspace(np.log(IBI_MIN), np.log(IBI_MAX), IBI_BINS))


def ibi_class(ibi: np.ndarray) -> np.ndarray:
    """The IBI class of intervals (s), clipped to the range."""
    x = (np.log(np.clip(ibi, IBI_MIN, IBI_MAX)) - np.log(IBI_MIN)) / (np.log(IBI_MAX) - np.log(IBI_MIN))
    return np.round(x * (IBI_BINS - 1)).astype(np.int64)


def sort_notes(notes: Notes) -> Notes:
    """Notes in the model's order: by onset, then pitch."""
    order = np.lexsort((notes.pitches, notes.onsets))
    return Notes(notes.onsets[order], notes.offsets[order], notes.pitches[order], notes.velocities[order])


def note_features(notes: Notes) -> np.ndarray:
    """[n, :data:`N_FEATURES`] float32 per note (sorted by :func:`sort_notes`): the time since the
    previous note's onset (s, clipped to 4, and its log), to the next one's (log), the duration
    (log), pitch and velocity (scaled to about 0..1), whether the note is the lowest of its chord,
    the chord's size / 8, then its pitch class (12, one-hot; models trained before it take the
    first 8 columns only, :class:`BeatModel`)."""
    on = notes.onsets.astype(np.float64)
    n = len(on)
    prev = np.diff(on, prepend=on[0] if n else 0.0)
    nxt = np.diff(on, append=on[-1] if n else 0.0)
    dur = np.clip(notes.offsets - notes.onsets, 0.0, 8.0)
    groups = np.zeros(n, dtype=np.int64)
    start, g = -np.inf, -1
    for i, t in enumerate(on):
        if t - start > CHORD_S:
            g, start = g + 1, t
        groups[i] = g
    size = np.bincount(groups)[groups] if n else np.zeros(0)
    lowest = np.zeros(n, dtype=bool)
    if n:  # the lowest pitch of each chord: the first of its group in (group, pitch) order
        by = np.lexsort((notes.pitches, groups))
        lowest[by[np.r_[True, groups[by][1:] != groups[by][:-1]]]] = True
    feats = np.stack([
        np.clip(prev, 0, 4), np.log(np.clip(prev, 0, 4) + 0.01), np.log(np.clip(nxt, 0, 4) + 0.01),
        np.log(dur + 0.01), (notes.pitches - 21) / 87.0, notes.velocities / 127.0, lowest.astype(np.float64),
        size / 8.0,
    ], axis=1) if n else np.zeros((0, 8))
    pitch_class = np.eye(12)[np.mod(np.asarray(notes.pitches, dtype=np.int64), 12)] if n else np.zeros((0, 12))
    return np.concatenate([feats, pitch_class], axis=1).astype(np.float32)


class BeatModel:
    """The shipped network (``weights/beats.onnx``) in onnxruntime: note features → per-note
    outputs (:data:`OUTPUTS` logits)."""

    def __init__(self, path: str | Path = WEIGHTS):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no beat model (scripts/train_beat_model.py writes it)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.n_features = int(self.session.get_inputs()[0].shape[2])  # 8 for models before the pitch classes
        self._last: tuple | None = None  # (window, features, logits) of the last call

    def __call__(self, features: np.ndarray, note_window: int = 0) -> np.ndarray:
        """[n, OUTPUTS] logits of [n, N_FEATURES] features (one sequence; a model trained on fewer
        features gets the first as many), in one pass or over windows of ``note_window`` notes
        (:func:`windowed`). The last call's answer is kept: the score stage asks for the beats, the
        staves, the note values and the key of the same notes, one run serves them all."""
        last = self._last
        if last is not None and last[0] == note_window and last[1].shape == features.shape \
                and np.array_equal(last[1], features):
            return last[2].copy()
        out = windowed(self._run, features, note_window)
        self._last = (note_window, np.array(features, copy=True), out)
        return out.copy()

    def _run(self, features: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(None, {"features": features[None, :, : self.n_features].astype(np.float32)})
        return out[0]


def windowed(run: Callable[[np.ndarray], np.ndarray], features: np.ndarray, window: int) -> np.ndarray:
    """``run`` (a network: features [n, F] -> outputs [n, K]) over windows of ``window`` notes half a
    window apart, each note's outputs taken from the window where it sits farthest from an edge
    (the sequence's own start and end are no edge); one pass when ``window`` is 0 or the sequence
    fits in one. The model trains on crops of 256 notes: over whole performances (thousands of
    notes) windows of 128 gave beat F 0.693 where one pass gave 0.586, tempo right 0.517 where 0.267
    (the inner 60; on the held-out six works they lost the Tempest's tempo: docs/SCORE.md round 15)."""
    n = len(features)
    if window <= 0 or n <= window:
        return run(features)
    hop = max(window // 2, 1)
    starts = list(range(0, n - window, hop)) + [n - window]
    out, best = None, np.full(n, -np.inf)
    offsets = np.arange(window)
    for s in starts:
        o = run(features[s:s + window])
        if out is None:
            out = np.empty((n,) + o.shape[1:], dtype=o.dtype)
        left = offsets.astype(np.float64) if s > 0 else np.full(window, np.inf)
        right = (window - 1 - offsets).astype(np.float64) if s + window < n else np.full(window, np.inf)
        centrality = np.minimum(left, right)
        take = centrality > best[s:s + window]  # ties: the earlier window
        out[s:s + window][take] = o[take]
        best[s:s + window][take] = centrality[take]
    return out


_MODEL: dict[str, BeatModel] = {}


def load(path: str | Path = WEIGHTS) -> BeatModel:
    """The model at ``path``, loaded once per process."""
    key = str(Path(path).resolve())
    if key not in _MODEL:
        _MODEL[key] = BeatModel(path)
    return _MODEL[key]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def split_outputs(logits: np.ndarray) -> dict[str, np.ndarray]:
    """Per-note probabilities of the raw outputs: ``beat``, ``downbeat`` [n]; ``ibi`` [n, IBI_BINS];
    ``per_bar`` [n, 3]; ``ternary`` [n]; ``upper`` [n] (on the upper staff), ``key`` [n, 12]
    (:func:`signature_class` probabilities) and ``value`` [n, len(VALUES)] (the note value a score
    writes, :data:`VALUES`), each only from a model with that output (models trained before them
    have fewer columns than :data:`OUTPUTS`)."""
    out = {"beat": _sigmoid(logits[:, 0]), "downbeat": _sigmoid(logits[:, 1]), "ibi": _softmax(logits[:, IBI_COLS]),
           "per_bar": _softmax(logits[:, PER_BAR_COLS]), "ternary": _softmax(logits[:, SUBDIVISION_COLS])[:, 1]}
    if logits.shape[1] > STAFF_COL:
        out["upper"] = _sigmoid(logits[:, STAFF_COL])
    if logits.shape[1] >= KEY_COLS.stop:
        out["key"] = _softmax(logits[:, KEY_COLS])
    if logits.shape[1] >= VALUE_COLS.stop:
        out["value"] = _softmax(logits[:, VALUE_COLS])
    return out


def value_class(beats: np.ndarray) -> np.ndarray:
    """The :data:`VALUES` class of note lengths in beats, or -1 where none is within 4 % of it
    (a tied or double-dotted value the classes do not hold)."""
    beats = np.asarray(beats, dtype=np.float64)
    ratio = np.log(np.maximum(beats, 1e-6)[:, None] / np.array(VALUES)[None, :])
    k = np.argmin(np.abs(ratio), axis=1)
    return np.where(np.abs(ratio[np.arange(len(beats)), k]) < np.log(1.04), k, -1).astype(np.int64)


def _output_of(notes: Notes, path: str | Path | None, name: str, what: str,
               note_window: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(the sorting order of ``notes``, the model's ``name`` output for the sorted notes) by the
    model at ``path`` (the shipped one by default), run over windows of ``note_window`` notes
    (:func:`windowed`); a model without it is an error naming it and ``what`` it lacks."""
    path = WEIGHTS if path is None else path
    out = split_outputs(load(path)(note_features(sort_notes(notes)), note_window))
    if name not in out:
        raise ValueError(f"{path}: this beat model has no {what} output (retrain it with scripts/train_beat_model.py)")
    return np.lexsort((notes.pitches, notes.onsets)), out[name]


def staff_probability(notes: Notes, path: str | Path | None = None, note_window: int = 0) -> np.ndarray:
    """Per note (in the given order), the model's probability (``path``, the shipped one by default;
    run over windows of ``note_window`` notes) that the score writes it on the upper staff; a model
    without the staff output is an error naming it."""
    order, p = _output_of(notes, path, "upper", "staff", note_window)
    prob = np.zeros(len(notes))
    prob[order] = p
    return prob


def upper_staff(notes: Notes, path: str | Path | None = None, note_window: int = 0) -> np.ndarray:
    """Per note (in the given order), whether the model (``path``, the shipped one by default; run
    over windows of ``note_window`` notes) writes it on the upper staff (:func:`staff_probability`
    above one half)."""
    return staff_probability(notes, path, note_window) > 0.5


def _local_period(notes: Notes, out: dict[str, np.ndarray], n_frames: int, fps: int, window: float) -> np.ndarray:
    """[n_frames] inter-beat interval (s): at every frame the beat-weighted median of the notes'
    predicted intervals within ``window`` s (the piece's where no note is that close)."""
    w = out["beat"] + 1e-3
    ibi = out["ibi"] @ ibi_centres()
    on = notes.onsets
    grid = np.arange(0.0, n_frames / fps, 1.0)  # one estimate a second, interpolated to frames
    est = np.empty(len(grid))
    order = np.argsort(ibi)
    cum = np.cumsum(w[order])
    glob = float(ibi[order][np.searchsorted(cum, cum[-1] / 2)])
    lo, hi = np.searchsorted(on, grid - window), np.searchsorted(on, grid + window)
    for g, (a, b) in enumerate(zip(lo, hi)):
        if b - a < 4:
            est[g] = glob
            continue
        o = np.argsort(ibi[a:b])
        c = np.cumsum(w[a:b][o])
        est[g] = ibi[a:b][o][np.searchsorted(c, c[-1] / 2)]
    return np.interp(np.arange(n_frames) / fps, grid, est)


def metre_of(act: np.ndarray, out: dict[str, np.ndarray], w: np.ndarray, metre: str) -> tuple[int, int]:
    """(beats per bar, phase) from the downbeat activation ``act`` of every beat and the model's
    beats-per-bar head: ``head`` (the head's weighted mean; the phase whose beats carry the most
    downbeat activation), ``downbeats`` (the grouping of 2, 3 or 4 beats whose best phase stands
    out most from the others in ``act``), ``both`` (the head's probabilities times that contrast)."""
    head = (out["per_bar"] * w[:, None]).sum(axis=0)
    head = head / head.sum()
    profiles = phase_profiles(act)
    best = {p: (profile_contrast(profiles[p]), int(np.argmax(profiles[p]))) if p in profiles else (0.0, 0)
            for p in PER_BAR}
    if metre == "head":
        per_bar = PER_BAR[int(np.argmax(head))]
    elif metre == "downbeats":
        per_bar = max(PER_BAR, key=lambda p: best[p][0])
    elif metre == "both":
        per_bar = max(PER_BAR, key=lambda p: head[PER_BAR.index(p)] * max(best[p][0], 1e-3))
    else:
        raise ValueError(f"unknown metre method {metre!r}")
    return per_bar, best[per_bar][1]


def beat_activation(times: np.ndarray, onsets: np.ndarray, prob: np.ndarray, tolerance: float = 0.07) -> np.ndarray:
    """[len(times)] of every beat, the highest of the per-note ``prob`` (a downbeat output) among
    the notes whose ``onsets`` lie within ``tolerance`` s of it and nearer to it than to any other
    beat; 0 where none does."""
    times = np.asarray(times, dtype=np.float64)
    idx = np.searchsorted(times, onsets)
    near = np.clip(np.where(np.abs(times[np.clip(idx, 0, len(times) - 1)] - onsets)
                            < np.abs(times[np.clip(idx - 1, 0, len(times) - 1)] - onsets), idx, idx - 1),
                   0, len(times) - 1)
    close = np.abs(times[near] - onsets) < tolerance
    act = np.zeros(len(times))
    np.maximum.at(act, near[close], np.asarray(prob)[close])
    return act


def downbeat_profiles(notes: Notes, times: np.ndarray, path: str | Path | None = None, note_window: int = 0,
                      groupings: tuple[int, ...] = PER_BAR) -> dict[int, np.ndarray]:
    """For each grouping ``p`` of ``groupings`` into which ``times`` (beat times, s) fall at least twice, the mean
    :func:`beat_activation` of the downbeat output of the model at ``path`` (:data:`STAVES_WEIGHTS` by default;
    windows of ``note_window`` notes) over the beats of each of the ``p`` phases (beats ``ph``, ``ph + p``, ...).
    The model runs once for all groupings."""
    times = np.asarray(times, dtype=np.float64)
    if len(notes) == 0 or not any(len(times) >= 2 * p for p in groupings):
        return {}
    order, down = _output_of(notes, STAVES_WEIGHTS if path is None else path, "downbeat", "downbeat", note_window)
    return phase_profiles(beat_activation(times, notes.onsets[order], down), groupings)


def phase_profiles(act: np.ndarray, groupings: tuple[int, ...] = PER_BAR) -> dict[int, np.ndarray]:
    """For each grouping ``p`` of ``groupings`` that the beats' activations ``act`` (one per beat) fill at least
    twice, the mean activation of each of the ``p`` phases (beats ``ph``, ``ph + p``, ...)."""
    return {p: np.array([act[ph::p].mean() for ph in range(p)]) for p in groupings if len(act) >= 2 * p}


def profile_contrast(profile: np.ndarray) -> float:
    """How much the strongest phase of a :func:`downbeat_profiles` profile stands out: its mean activation minus
    the mean of the other phases'."""
    best = int(np.argmax(profile))
    return float(profile[best] - np.delete(profile, best).mean())


def downbeat_phase(notes: Notes, beats, path: str | Path | None = None, note_window: int = 0,
                   profile: np.ndarray | None = None) -> int:
    """The index in ``beats.times`` (a :class:`~transcribe.beats.Beats` with its metre) of a
    bar's first beat by the downbeat output of the model at ``path`` (:data:`STAVES_WEIGHTS` by
    default; windows of ``note_window`` notes): of the ``beats_per_bar`` phases of the bar, the one
    whose beats carry the highest mean :func:`beat_activation`; ``beats.downbeat``'s own phase where
    none is higher (docs/SCORE.md round 34: on 777 ASAP training performances of works this model
    never saw, the tracker's downbeat F 0.216 by the accents, 0.246 by this). ``profile``: that
    grouping's :func:`downbeat_profiles` profile where already computed."""
    per_bar = beats.beats_per_bar
    current = int(beats.downbeat % per_bar)
    if profile is None:
        profile = downbeat_profiles(notes, beats.times, path, note_window, (per_bar,)).get(per_bar)
    if profile is None:
        return current
    best = int(np.argmax(profile))
    return best if profile[best] > profile[current] else current


def onsets_on_thirds(onsets: np.ndarray, beats, tolerance: float = 0.07) -> bool:
    """Whether the distinct onsets fall on the thirds of the :class:`~transcribe.beats.Beats`
    ``beats`` (1/3, 2/3) more often than on their halves and quarters (1/4, 1/2, 3/4), within
    ``tolerance`` of a beat (:func:`transcribe.beats.subdivision_shares`): the beat divided in
    three, as in 6/8 (docs/SCORE.md rounds 9 and 10; the tracker's rule,
    :func:`transcribe.score.subdivision`, asks 1.5 times the evidence and a fifth of all onsets)."""
    from .beats import subdivision_shares

    binary, ternary = subdivision_shares(onsets, beats, tolerance)
    return ternary > binary


def beats_from_outputs(notes: Notes, out: dict[str, np.ndarray], fps: int = 100, tempo: str = "global",
                       metre: str = "head", window: float = 4.0, prior_octaves: float = 1.0,
                       lags: str = "windowed", subdivision: str = "output"):
    """:class:`transcribe.score.Beats` from the per-note outputs of the notes (sorted by
    :func:`sort_notes`); see the module docstring. ``tempo``: ``global`` (librosa's tempo
    estimate near the model's median interval, one tempo for the piece) or ``local`` (the
    model's interval around every moment, :func:`_local_period` over ``window`` s); ``metre``:
    see :func:`metre_of`; ``prior_octaves`` and ``lags``: the global tempo's prior width around
    the model's interval and its autocorrelation (:func:`transcribe.beats.global_tempo`);
    ``subdivision``: whether the beat divides in three (a compound metre), by the model's
    ``ternary`` output (``output``: its beat-weighted mean above 0.5) or by where the onsets fall
    between the tracked beats (``onsets``: :func:`onsets_on_thirds`)."""
    from .beats import Beats, _librosa, global_tempo, tempo_of

    librosa = _librosa()
    beat, down = out["beat"], out["downbeat"]
    w = beat + 1e-3
    ibi_note = out["ibi"] @ ibi_centres()
    order = np.argsort(ibi_note)
    cum = np.cumsum(w[order])
    period = float(ibi_note[order][np.searchsorted(cum, cum[-1] / 2)])  # beat-weighted median interval
    n_frames = int(np.ceil((notes.onsets.max() + 2.0) * fps))
    env = np.zeros(n_frames)
    np.maximum.at(env, np.round(notes.onsets * fps).astype(np.int64), beat)
    kernel = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
    env = np.convolve(env, kernel, mode="same")
    if tempo == "global":
        # the tempo is librosa's estimate from the curve's autocorrelation, its prior centred on the
        # model's interval (the IBI classes are 5.5 % apart: too coarse to hold a beat over a minute)
        _, times = librosa.beat.beat_track(onset_envelope=env, sr=fps, hop_length=1,
                                           bpm=global_tempo(env, fps, 60.0 / period, prior_octaves, lags),
                                           units="time", trim=False, tightness=100)
    elif tempo == "local":
        bpm = 60.0 / _local_period(notes, out, n_frames, fps, window)
        _, times = librosa.beat.beat_track(onset_envelope=env, sr=fps, hop_length=1, bpm=bpm,
                                           units="time", trim=False, tightness=100)
    else:
        raise ValueError(f"unknown tempo method {tempo!r}")
    times = np.unique(np.asarray(times, dtype=np.float64))
    times = times[(times >= notes.onsets.min() - period / 2) & (times <= notes.onsets.max() + period / 2)]
    if len(times) < 4:
        raise ValueError(f"the beat model's tracker found {len(times)} beats")
    if subdivision == "output":
        ternary = float(np.average(out["ternary"], weights=w)) > 0.5
    elif subdivision == "onsets":
        ternary = onsets_on_thirds(notes.onsets, Beats(times, tempo_of(times)))
    else:
        raise ValueError(f"unknown subdivision method {subdivision!r}")
    per_bar, phase = metre_of(beat_activation(times, notes.onsets, down), out, w, metre)
    num, den = (per_bar * 3, 8) if ternary else (per_bar, 4)
    info = {"model_period": round(period, 4), "per_bar": per_bar, "ternary": ternary}
    return Beats(times, tempo_of(times), numerator=num, denominator=den, downbeat=phase, source="model",
                 meter_scores=info)


def note_values(notes: Notes, path: str | Path | None = None, note_window: int = 0) -> np.ndarray:
    """Per note (in the given order), the note value (beats) a score would write it with, by the
    model's value output (``path``, the shipped model by default; windows of ``note_window`` notes):
    the most probable of :data:`VALUES`; a model without that output is an error naming it."""
    order, p = _output_of(notes, path, "value", "note-value", note_window)
    values = np.zeros(len(notes))
    values[order] = np.asarray(VALUES)[p.argmax(axis=1)]
    return values


def key_signature_class(notes: Notes, path: str | Path | None = None, note_window: int = 0) -> int:
    """The key signature's :func:`signature_class` of a performance by the beat model's key
    output (``path``, the shipped model by default; windows of ``note_window`` notes): the class most
    probable on average over the notes; a model without that output is an error naming it."""
    return int(np.argmax(_output_of(notes, path, "key", "key", note_window)[1].mean(axis=0)))


def estimate_beats_model(notes: Notes, path: str | Path | None = None, metre: str = "head",
                         prior_octaves: float = 1.0, lags: str = "windowed", subdivision: str = "output",
                         note_window: int = 0):
    """:class:`transcribe.score.Beats` of a performance from the beat model at ``path`` (the
    shipped one, :data:`WEIGHTS`, by default) run over windows of ``note_window`` notes (:func:`windowed`;
    0: one pass); ``metre``: see :func:`metre_of`; ``prior_octaves``, ``lags``, ``subdivision``: see
    :func:`beats_from_outputs`."""
    notes = sort_notes(notes)
    logits = load(WEIGHTS if path is None else path)(note_features(notes), note_window)
    return beats_from_outputs(notes, split_outputs(logits), metre=metre, prior_octaves=prior_octaves, lags=lags,
                              subdivision=subdivision)
