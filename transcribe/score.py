"""Notes -> sheet music: beats and tempo, meter, beat-grid quantisation, two staves, key,
MusicXML (music21) and beat-aligned MIDI.

    notes (+ audio) ──estimate_beats──▶ Beats (beat times, tempo, meter, first downbeat)
          ──quantise──▶ Quantised (onsets / durations in quarter lengths, chords)
          ──split_hands──▶ right / left hand ──notes_to_score──▶ music21 Score ──▶ .musicxml
    notes + Beats ──beat_aligned_midi──▶ .mid whose tempo map puts every beat on a beat tick

Beats come from librosa's dynamic-programming beat tracker run on an onset-strength curve.
The curve is built from the transcribed notes (an impulse per note onset, weighted by
velocity) and, when the audio is given, from librosa's spectral-flux onset strength of the
audio; both are normalised and summed. The meter is read from the accents of the notes on
the beats (velocity, length and bass of what starts on each beat), the subdivision (binary or
ternary) from where the notes between the beats fall. The score's grid is sixteenths, and thirds
or sixths of a beat in the beats whose onsets fit them clearly better (``triplet_cost`` of
``conf/score/default.yaml``), so loosely timed binary rhythms stay binary.

music21 and librosa are imported inside the functions that need them, so importing this
module (and ``transcribe --help``) stays fast.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .beats import TEMPO_LAGS, Beats, _librosa, global_tempo, subdivision_shares, tempo_of
from .files import atomic_write
from .notes import Notes

ENVELOPE_FPS = 100  # frames per second of the onset-strength curves given to the beat tracker
MIN_ONSETS = 8  # fewer distinct note onsets than this: no tempo estimate, a fixed grid
DEFAULT_TEMPO = 120.0  # BPM of the fixed grid
CHORD_TOLERANCE = 0.035  # s: fallback of conf/score chord_tolerance (onsets this close to a group's first are one chord)
MIDDLE_C = 60


# ---------------------------------------------------------------------------- beats and tempo


def onset_groups(onsets: np.ndarray, tolerance: float) -> np.ndarray:
    """Group index per onset (``onsets`` sorted): a group starts at an onset more than
    ``tolerance`` after the first onset of the current group (no chaining, so a fast run is
    not swallowed into one chord)."""
    groups = np.zeros(len(onsets), dtype=np.int64)
    start, g = -np.inf, -1
    for i, t in enumerate(onsets):
        if t - start > tolerance:
            g, start = g + 1, t
        groups[i] = g
    return groups


def note_onset_envelope(notes: Notes, n_frames: int | None = None, fps: int = ENVELOPE_FPS) -> np.ndarray:
    """Onset strength from notes: at each note onset an impulse of its velocity / 127, summed
    per frame, then smoothed over about ±20 ms (so a chord played a few ms apart still
    counts as one strong onset)."""
    if n_frames is None:
        n_frames = int(np.ceil((notes.end + 1.0) * fps))
    env = np.zeros(n_frames)
    frames = np.round(notes.onsets * fps).astype(np.int64)
    keep = (frames >= 0) & (frames < n_frames)
    np.add.at(env, frames[keep], notes.velocities[keep] / 127.0)
    kernel = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
    return np.convolve(env, kernel / kernel.max(), mode="same")


AUDIO_ONSET_LAG = 0.015  # s: how late the flux of a 32 ms window peaks after a labelled onset (MAPS)


def audio_onset_envelope(audio: np.ndarray, sample_rate: int, n_frames: int | None = None,
                         fps: int = ENVELOPE_FPS) -> np.ndarray:
    """librosa's spectral-flux onset strength of ``audio`` (32 ms windows) at ``fps`` frames/s,
    moved earlier by :data:`AUDIO_ONSET_LAG` so that its peaks fall on the note onsets (with
    librosa's default 128 ms window at 16 kHz they lag by 40 ms, which puts the beats behind
    the notes)."""
    librosa = _librosa()

    y = np.asarray(audio, dtype=np.float32)
    if y.ndim > 1:  # channels first or last: average to mono
        y = y.mean(axis=0 if y.shape[0] < y.shape[-1] else -1)
    hop = max(1, int(round(sample_rate / fps)))
    n_fft = 1 << int(np.ceil(np.log2(0.032 * sample_rate)))
    env = librosa.onset.onset_strength(y=y, sr=sample_rate, hop_length=hop, n_fft=n_fft)
    src_t = np.arange(len(env)) * hop / sample_rate - AUDIO_ONSET_LAG
    if n_frames is None:
        n_frames = int(np.ceil(len(y) / sample_rate * fps))
    return np.interp(np.arange(n_frames) / fps, src_t, env, right=0.0)


def track_beats(envelope: np.ndarray, fps: int = ENVELOPE_FPS, start_bpm: float = DEFAULT_TEMPO,
                prior_octaves: float = 1.0, lags: str = "windowed") -> np.ndarray:
    """Beat times (s) that librosa's beat tracker finds in an onset-strength curve, at the global
    tempo :func:`transcribe.beats.global_tempo` reads from it (a prior of ``prior_octaves`` around
    ``start_bpm``, ``lags`` as there)."""
    librosa = _librosa()

    env = np.asarray(envelope, dtype=np.float64)
    bpm = global_tempo(env, fps, start_bpm, prior_octaves, lags)
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=fps, hop_length=1, bpm=bpm, units="time", trim=True)
    return np.unique(np.asarray(beats, dtype=np.float64))


def _normalised(env: np.ndarray) -> np.ndarray:
    scale = env.std()
    return env / scale if scale > 0 else env


def _configured_choice(name: str, choices: tuple[str, ...]) -> str:
    """``name`` of ``conf/score/default.yaml`` (the first choice when absent); a value not among
    ``choices`` is an error naming the file."""
    from .config import group_defaults, group_file

    value = group_defaults("score").get(name, choices[0])
    if value not in choices:
        raise ValueError(f"{group_file('score')}: {name}: {value!r} is not one of {', '.join(choices)}")
    return value


def configured_beats() -> str:
    """Where ``method="auto"`` beats come from: ``beats`` of ``conf/score/default.yaml``
    (``tracker`` or ``model``); another value is an error naming the file."""
    return _configured_choice("beats", ("tracker", "model"))


def configured_model_metre() -> str:
    """How the beat model's outputs give the metre: ``model_metre`` of ``conf/score/default.yaml``
    (:func:`transcribe.beatmodel.metre_of`: ``head``, ``downbeats`` or ``both``)."""
    from .beatmodel import METRES

    return _configured_choice("model_metre", METRES)


def configured_model_tempo_lags() -> str:
    """How the global tempo's autocorrelation weighs its lags when the beat model gives the beats:
    ``model_tempo_lags`` of ``conf/score/default.yaml`` (:func:`transcribe.beats.global_tempo`:
    ``windowed`` or ``unbiased``)."""
    return _configured_choice("model_tempo_lags", TEMPO_LAGS)


def configured_model_subdivision() -> str:
    """How the beat model's beats are found divided in three (a compound metre):
    ``model_subdivision`` of ``conf/score/default.yaml`` (``output``: the model's ternary output;
    ``onsets``: where the onsets fall between the beats, :func:`transcribe.beatmodel.onsets_on_thirds`)."""
    from .beatmodel import SUBDIVISIONS

    return _configured_choice("model_subdivision", SUBDIVISIONS)


def configured_model_tempo_prior() -> float:
    """``model_tempo_prior`` of ``conf/score/default.yaml``: the width (octaves, above 0) of the
    global tempo's prior around the beat model's interval (:func:`transcribe.beats.global_tempo`)."""
    return _configured_number("model_tempo_prior", 1.0, 4.0, positive=True)


def configured_model_decoding() -> dict:
    """The keyword arguments of :func:`transcribe.beatmodel.beats_from_outputs` that
    ``conf/score/default.yaml`` sets (``metre``, ``prior_octaves``, ``lags``, ``subdivision``): how
    the shipped score stage decodes the beat model's outputs."""
    return {"metre": configured_model_metre(), "prior_octaves": configured_model_tempo_prior(),
            "lags": configured_model_tempo_lags(), "subdivision": configured_model_subdivision()}


def configured_model_note_window() -> int:
    """``model_note_window`` of ``conf/score/default.yaml``: the beat model runs over windows of this
    many notes (:func:`transcribe.beatmodel.windowed`; 0: one pass over the whole performance); a
    value that is not a whole number from 0 is an error naming the file."""
    return int(_configured_number("model_note_window", 0, float("inf"), whole=True))


def configured_key_source() -> str:
    """Where the key signature comes from: ``key_source`` of ``conf/score/default.yaml``
    (``profile``: :func:`estimate_key` alone; ``model``: the beat model's key output chooses the
    signature and :func:`estimate_key` the mode within it)."""
    return _configured_choice("key_source", ("profile", "model"))


def configured_downbeat_phase() -> str:
    """Where the tracker's bars start: ``downbeat_phase`` of ``conf/score/default.yaml``
    (``accents``: :func:`estimate_meter`'s loudest, longest, bassiest phase; ``model``: the staff
    model's downbeat output, :func:`transcribe.beatmodel.downbeat_phase`)."""
    return _configured_choice("downbeat_phase", ("accents", "model"))


def configured_bar_length() -> str:
    """How many beats the tracker's bar has: ``bar_length`` of ``conf/score/default.yaml`` (``accents``:
    :func:`estimate_meter`'s grouping; ``learned``: :func:`learned_bar_beats` over the accents' and the staff
    model's contrasts)."""
    return _configured_choice("bar_length", ("accents", "learned"))


# The bar length's logistic regression (learned_bar_beats; card weights/METRE_CARD.md, docs/SCORE.md rounds 41-42)
METRE_WEIGHTS = Path(__file__).parent / "weights" / "metre.json"


@functools.lru_cache(maxsize=4)
def _metre_weights(path: str) -> dict:
    """The bar-length regression's weights at ``path`` (read once per process)."""
    return json.loads(Path(path).read_text())


def learned_bar_beats(accent_contrast: dict, model_profiles: dict, accents_beats: int,
                      path: str | Path = METRE_WEIGHTS) -> int:
    """The bar's beats (2, 3 or 4): 3 where the multinomial logistic regression at ``path`` predicts 3 beats,
    else the accents' 2 or 4 (4 where they chose 3). Its features: the accents'
    :func:`meter_contrast` of 2, 3 and 4 beats (``accent_contrast``: :func:`estimate_meter`'s
    ``meter_scores["contrast"]``), the staff model's downbeat contrast of the same groupings
    (:func:`transcribe.beatmodel.profile_contrast` of ``model_profiles``,
    :func:`transcribe.beatmodel.downbeat_profiles`) and whether the accents chose 3 (``accents_beats``).
    ``accents_beats`` where a grouping's contrast is missing (too few beats)."""
    from .beatmodel import profile_contrast

    if not all(p in model_profiles and p in accent_contrast for p in (2, 3, 4)):
        return accents_beats
    w = _metre_weights(str(path))
    x = np.array([accent_contrast[2], accent_contrast[3], accent_contrast[4],
                  *(profile_contrast(model_profiles[p]) for p in (2, 3, 4)), float(accents_beats == 3)])
    z = (x - np.array(w["mean"])) / np.array(w["scale"])
    logits = np.array(w["coef"]) @ z + np.array(w["intercept"])
    if int(w["classes"][int(np.argmax(logits))]) == 3:
        return 3
    # It decides triple or not only: on ASAP a grouping by 2 was almost never right at the tracker's level, so it
    # would write a clear 2/4 as 4/4 (docs/SCORE.md rounds 41-42); the accents keep their 2 or 4
    return 4 if accents_beats == 3 else accents_beats


HANDS = ("split", "model")  # how notes go to the staves (conf/score/default.yaml's hands; see assign_staves)


def configured_hands() -> str:
    """How notes go to the staves: ``hands`` of ``conf/score/default.yaml`` (``split``:
    :func:`split_hands`; ``model``: the beat model's staff output, :func:`transcribe.beatmodel.upper_staff`)."""
    return _configured_choice("hands", HANDS)


def configured_note_values() -> str:
    """Where the written note values come from: ``note_values`` of ``conf/score/default.yaml``
    (``rules``: the played lengths, :func:`_staff_events`' rules; ``model``: the beat model's
    note-value output, :func:`transcribe.beatmodel.note_values`)."""
    return _configured_choice("note_values", ("rules", "model"))


def estimate_beats(audio: np.ndarray | None, sample_rate: int | None, notes: Notes, *,
                   method: str = "auto") -> Beats:
    """Beats, tempo and meter of a performance.

    ``method``: ``notes`` (onset curve of the notes only), ``audio`` (the audio's onset
    strength only), ``combined`` (both, normalised and summed), ``model`` (the beat model
    learned from ASAP, :mod:`transcribe.beatmodel`; beats, downbeats and metre from the notes)
    or ``auto`` (what ``beats`` of ``conf/score/default.yaml`` says: ``model``, or ``tracker`` =
    ``notes``, which of the tracker's curves measured best: on 16 MAPS pieces transcribed by the shipped model, the tempo from the
    transcribed notes agreed with the tempo from the true labels on 15, the audio's on 11,
    both together on 12; on synthetic pieces the audio doubled a 2/4 march's tempo where the
    notes, whose velocities tell beats from off-beats, did not). The tracker's bars start where
    ``downbeat_phase`` says (:func:`configured_downbeat_phase`). With fewer than :data:`MIN_ONSETS` distinct onsets, or
    when the tracker finds fewer than 4 beats, the result is a fixed 120 BPM grid from the
    first onset, with ``reason`` saying why.
    """
    notes = notes.sorted()
    if method == "auto":
        method = "model" if configured_beats() == "model" else "notes"
    if method not in ("notes", "audio", "combined", "model"):
        raise ValueError(f"unknown beat method {method!r}")
    if method in ("audio", "combined") and (audio is None or not sample_rate):
        raise ValueError(f"method {method!r} needs the audio and its sample rate")
    start = float(notes.onsets[0]) if len(notes) else 0.0
    end = max(notes.end, start + 1.0)
    n_groups = int(onset_groups(notes.onsets, configured_chord_tolerance())[-1]) + 1 if len(notes) else 0
    if n_groups < MIN_ONSETS:
        reason = (f"only {n_groups} distinct note onset{'s' if n_groups != 1 else ''} "
                  f"(fewer than {MIN_ONSETS}): too few to estimate a tempo; fixed {DEFAULT_TEMPO:g} BPM grid")
        return estimate_meter(notes, Beats.fixed(DEFAULT_TEMPO, start, end, reason))
    if method == "model":
        from .beatmodel import estimate_beats_model

        settings = dict(configured_model_decoding(), note_window=configured_model_note_window())
        try:  # the settings are read first: a wrong one is an error naming the file, not a fixed grid
            return estimate_beats_model(notes, **settings)
        except ValueError as err:  # too few beats found
            return estimate_meter(notes, Beats.fixed(DEFAULT_TEMPO, start, end, f"{err}; fixed {DEFAULT_TEMPO:g} BPM grid"))
    seconds = end + 1.0
    if audio is not None and sample_rate:
        seconds = max(seconds, max(np.shape(audio)) / sample_rate)  # samples along the longer axis
    n_frames = int(np.ceil(seconds * ENVELOPE_FPS))
    env = np.zeros(n_frames)
    if method in ("notes", "combined"):
        env += _normalised(note_onset_envelope(notes, n_frames))
    if method in ("audio", "combined"):
        env += _normalised(audio_onset_envelope(audio, sample_rate, n_frames))
    times = track_beats(env)
    if len(times) < 4:
        reason = f"the beat tracker found {len(times)} beats; fixed {DEFAULT_TEMPO:g} BPM grid"
        return estimate_meter(notes, Beats.fixed(DEFAULT_TEMPO, start, end, reason))
    source = "notes+audio" if method == "combined" else method
    return switch_level(notes, bar_lines(notes, Beats(times, tempo_of(times), source=source)),
                        configured_level_switch())


def configured_level_switch() -> tuple[float, float, float]:
    """``beat_level_switch``, ``beat_level_max`` and ``beat_level_unsteady`` of ``conf/score/default.yaml``: the
    tempo ratios between which, and the least variation of the tracker's beat intervals above which, the tracker's
    beats give way to the licence-free beat model's (:func:`switch_level`; ``beat_level_switch`` ``.inf``: never).
    Ratios of at least 1, the first below the second, and a variation from 0; else an error naming the file."""
    from .config import group_file

    low = _configured_number("beat_level_switch", float("inf"), float("inf"))
    high = _configured_number("beat_level_max", float("inf"), float("inf"))
    unsteady = _configured_number("beat_level_unsteady", 0.0, float("inf"))
    if low < 1.0 or (np.isfinite(low) and high <= low):
        raise ValueError(f"{group_file('score')}: beat_level_switch {low!r}, beat_level_max {high!r}: "
                         "not two tempo ratios from 1 with the first below the second")
    return low, high, unsteady


BAR_FIT = 0.1  # the model's beat divides the tracker's bar: bar / beat within 10 % of a whole number (round 53)


def beat_variation(beats: Beats) -> float:
    """The coefficient of variation (s.d. / mean) of the intervals between ``beats``: 0 for a steady grid (a
    sequenced or deadpan file), a few hundredths and more where a player's tempo moves."""
    d = np.diff(beats.times)
    return float(d.std() / d.mean())


def switch_level(notes: Notes, beats: Beats, settings: tuple[float, float, float],
                 path: str | Path | None = None) -> Beats:
    """The tracker's ``beats``, or the beats of the beat model at ``path`` (:data:`transcribe.beatmodel.OPEN_WEIGHTS`,
    trained on no ASAP performance; decoded as ``beats: model`` decodes them) with the metre :func:`bar_lines`
    gives them, where the two are one beat level apart in a performance whose tempo moves. ``settings`` =
    (low, high, unsteady): the model's tempo faster or slower than the tracker's by more than low and less than
    high times, its beat dividing the tracker's bar (:data:`BAR_FIT`), and the tracker's :func:`beat_variation`
    above unsteady. There the model's level is the annotated one more often; the bar or a subdivision away (three
    times or more) it is not, nor in a steady file, where the tracker's level was the notated one in every test
    and the model's slower level was not (docs/SCORE.md rounds 52-55). low infinite: the model is not run; the
    tracker's beats where the model finds too few."""
    low, high, unsteady = settings
    if not np.isfinite(low) or beat_variation(beats) <= unsteady:
        return beats
    from .beatmodel import OPEN_WEIGHTS, estimate_beats_model

    decoding = dict(configured_model_decoding(), note_window=configured_model_note_window())
    try:
        found = estimate_beats_model(notes, path=OPEN_WEIGHTS if path is None else path, **decoding)
    except ValueError:  # too few beats found
        return beats
    ratio = found.tempo / beats.tempo  # the model's Beats carry tempo_of(their times)
    per_bar = beats.beats_per_bar * ratio  # the model's beats in the tracker's bar
    if not low < max(ratio, 1.0 / ratio) < high or per_bar < 1.0 - BAR_FIT \
            or abs(per_bar - round(per_bar)) > BAR_FIT * round(per_bar):
        return beats
    return bar_lines(notes, Beats(found.times, found.tempo, source=f"{beats.source}, level by the beat model"))


def bar_lines(notes: Notes, beats: Beats) -> Beats:
    """``beats`` with the tracker's metre: :func:`estimate_meter`'s accents, then the bar's length
    (``bar_length``, :func:`learned_bar_beats`) and where the bars start (``downbeat_phase``) as
    ``conf/score/default.yaml`` says."""
    beats = estimate_meter(notes, beats)
    phase, length = configured_downbeat_phase(), configured_bar_length()
    if phase == "model" or length == "learned":
        from .beatmodel import STAVES_WEIGHTS, downbeat_phase, downbeat_profiles

        profiles = downbeat_profiles(notes, beats.times, STAVES_WEIGHTS, configured_model_note_window())
        if length == "learned":
            per_bar = learned_bar_beats(beats.meter_scores.get("contrast", {}), profiles, beats.beats_per_bar)
            if per_bar != beats.beats_per_bar:  # the bar starts where the accents of that grouping say, or see below
                beats = replace(with_bar_beats(beats, per_bar), downbeat=beats.meter_scores["phase"][per_bar])
        if phase == "model":
            per_bar = beats.beats_per_bar
            beats = replace(beats, downbeat=downbeat_phase(notes, beats, profile=profiles.get(per_bar)))
    return beats


def with_bar_beats(beats: Beats, per_bar: int) -> Beats:
    """``beats`` with ``per_bar`` beats to the bar, simple or compound as before (3/4 <-> 9/8 for 3 beats); the
    first downbeat stays the same beat."""
    if per_bar == beats.beats_per_bar:
        return beats
    num, den = (3 * per_bar, 8) if beats.compound else (per_bar, 4)
    return replace(beats, numerator=num, denominator=den, downbeat=int(beats.downbeat % per_bar))


# ---------------------------------------------------------------------------- meter


def beat_accents(notes: Notes, beats: Beats, window: float = 0.15) -> np.ndarray:
    """Accent of every beat: what starts within ``window`` beats of it, each note weighted by
    velocity / 127 times (1 + its length in beats, at most 4), plus 1 where a bass note (below
    the piece's median pitch by more than a fifth) starts. Downbeats are loud, long and bassy."""
    acc = np.zeros(len(beats.times))
    if len(notes) == 0:
        return acc
    pos = beats.position(notes.onsets)
    length = beats.position(notes.offsets) - pos
    k = np.round(pos).astype(np.int64)
    near = (np.abs(pos - k) <= window) & (k >= 0) & (k < len(acc))
    weight = notes.velocities / 127.0 * (1.0 + np.clip(length, 0, 4))
    np.add.at(acc, k[near], weight[near])
    bass = near & (notes.pitches < np.median(notes.pitches) - 7)
    acc[np.unique(k[bass])] += 1.0
    return acc


def meter_contrast(accents: np.ndarray, period: int) -> tuple[float, int]:
    """(contrast, phase): how much the strongest phase of ``period`` stands out from the other
    phases, in standard deviations of the accents, and that phase."""
    n = len(accents) // period * period
    if n < 2 * period or accents.std() == 0:
        return 0.0, 0
    profile = accents[:n].reshape(-1, period).mean(axis=0)
    phase = int(np.argmax(profile))
    others = np.delete(profile, phase)
    return float((profile[phase] - others.mean()) / accents.std()), phase


def subdivision(notes: Notes, beats: Beats) -> tuple[int, float, float]:
    """(2 or 3, binary share, ternary share): whether the onsets between beats fall on halves
    and quarters of the beat or on its thirds. Ternary needs more than 1.5 times the binary
    evidence and a fifth of all onsets."""
    binary, ternary = subdivision_shares(notes.onsets, beats, 0.06)
    return (3 if ternary > 1.5 * binary and ternary > 0.2 else 2), binary, ternary


def estimate_meter(notes: Notes, beats: Beats, threshold: float = 0.25, triple_ratio: float = 1.2,
                   duple_ratio: float = 1.25) -> Beats:
    """``beats`` with a time signature and first downbeat read from the notes.

    Groupings of 2, 3 and 4 beats are scored by :func:`meter_contrast` of the
    :func:`beat_accents`. 3 wins when it is the strongest by ``triple_ratio`` (20 %); 2 rather
    than 4 when the grouping by 2 is ``duple_ratio`` times (25 % more) as strong as by 4 (a 4/4
    bar with a strong third beat scores about equally, a true 2/4 about 1.5 times); below
    ``threshold`` everywhere the answer is 4/4 (the usual default). A ternary
    :func:`subdivision` makes the same groupings 6/8, 9/8, 12/8.
    """
    acc = beat_accents(notes, beats)
    scores = {p: meter_contrast(acc, p) for p in (2, 3, 4)}
    s2, s3, s4 = (scores[p][0] for p in (2, 3, 4))
    if s3 > threshold and s3 > triple_ratio * max(s2, s4):
        group = 3
    elif max(s2, s4) > threshold and s2 > duple_ratio * s4:
        group = 2
    else:
        group = 4
    phase = scores[group][1] if max(s2, s3, s4) > threshold else 0
    sub, binary, ternary = subdivision(notes, beats)
    num, den = (group * 3, 8) if sub == 3 else (group, 4)
    info = {"contrast": {p: round(s, 3) for p, (s, _) in scores.items()},
            "phase": {p: ph for p, (_, ph) in scores.items()},
            "binary": round(binary, 3), "ternary": round(ternary, 3)}
    return replace(beats, numerator=num, denominator=den, downbeat=phase, meter_scores=info)


# ---------------------------------------------------------------------------- quantisation


@dataclass
class Quantised:
    """Notes on the beat grid, sorted by onset then pitch. ``onsets`` and ``durations`` are in
    quarter lengths from the first bar line (multiples of 1 / ``divisions``); ``chords`` numbers
    the notes that start together; ``index`` is each note's index in the input notes;
    ``origin`` is the beat position (in the ``Beats``) of that first bar line."""

    onsets: np.ndarray
    durations: np.ndarray
    pitches: np.ndarray
    velocities: np.ndarray
    chords: np.ndarray
    index: np.ndarray
    divisions: int
    bar_ql: float
    origin: float = 0.0

    def __len__(self) -> int:
        return len(self.onsets)


def quantise(notes: Notes, beats: Beats, divisions: int = 4, tolerance: float | None = None,
             triplet_cost: float = float("inf"), triplet_run: int = 1) -> Quantised:
    """Put notes on the beat grid: ``divisions`` steps per quarter note (4: sixteenths), or, in a
    beat of a simple metre whose onsets sit closer to thirds or sixths of the beat, three or six
    steps per beat (triplets).

    Onsets within ``tolerance`` s of a group's first onset form one chord (None:
    ``chord_tolerance`` of ``conf/score/default.yaml``), placed at the median of their beat
    positions. Each beat's chords (from half a binary step before the beat)
    take a triplet grid when it fits them better by more than ``triplet_cost`` beats of summed
    distance (infinite: never), puts no two of them on one step and one of them where the binary
    grid has no step, and lies in a run of at least ``triplet_run`` consecutive such beats (a
    triplet passage lasts; one beat here and there is more often rubato under steady beats). A chord that rounds
    onto the grid step of the chord before it moves one step later when that step is free (a
    fast run stays a run), else joins it. A duplicate pitch within one chord is dropped.
    Offsets round to the grid of the beat they fall in; a duration is at least one step. Time 0
    of the result is the bar line at or before the first note (bars start at
    ``beats.downbeat``), so a pickup begins with rests. The last chord lasts at most a bar, to the
    next bar line, and nothing sounds past that (:func:`end_in_its_bar`).
    """
    order = np.lexsort((notes.pitches, notes.onsets))
    notes = Notes(notes.onsets[order], notes.offsets[order], notes.pitches[order], notes.velocities[order])
    bar_ql = beats.beats_per_bar * beats.beat_ql
    if len(notes) == 0:
        z = np.zeros(0)
        return Quantised(z, z, z.astype(np.int64), z.astype(np.int64), z.astype(np.int64),
                         z.astype(np.int64), divisions, bar_ql)
    pos = beats.position(notes.onsets)
    end_pos = beats.position(np.maximum(notes.offsets, notes.onsets))
    per_bar = beats.beats_per_bar
    first = float(pos.min())
    origin = beats.downbeat + per_bar * np.floor((first + 1e-6 - beats.downbeat) / per_bar)
    groups = onset_groups(notes.onsets, configured_chord_tolerance() if tolerance is None else tolerance)
    n_groups = int(groups[-1]) + 1
    group_beats = np.array([np.median(pos[groups == g]) for g in range(n_groups)]) - origin
    grid = _BeatGrid(beats, divisions, triplet_cost, group_beats, triplet_run)
    ticks = grid.round(group_beats)
    for g in range(1, n_groups):  # a collision moves later into a free step, else merges
        if ticks[g] <= ticks[g - 1]:
            nxt = ticks[g + 1] if g + 1 < n_groups else np.iinfo(np.int64).max
            later = ticks[g - 1] + grid.step_at(ticks[g - 1])
            ticks[g] = later if later < nxt else ticks[g - 1]
    note_ticks = ticks[groups]
    end_ticks = grid.round(end_pos - origin)
    end_ticks = np.maximum(end_ticks, note_ticks + grid.steps_at(note_ticks))
    keep = np.ones(len(notes), dtype=bool)
    seen: set[tuple[int, int]] = set()
    for i in range(len(notes)):
        key = (int(note_ticks[i]), int(notes.pitches[i]))
        keep[i] = key not in seen
        seen.add(key)
    idx = np.flatnonzero(keep)
    o = np.lexsort((notes.pitches[idx], note_ticks[idx]))
    idx = idx[o]
    s = note_ticks[idx]
    _, chords = np.unique(s, return_inverse=True)
    q = Quantised(s / grid.per_quarter, (end_ticks[idx] - s) / grid.per_quarter, notes.pitches[idx],
                  notes.velocities[idx], chords.astype(np.int64), order[idx], divisions, bar_ql, float(origin))
    return end_in_its_bar(q)


def end_in_its_bar(q: Quantised) -> Quantised:
    """``q`` with the piece's last chord lasting at most a bar, to the next bar line, and every
    note cut there: a final chord that the pedal lets ring on would otherwise fill tied extra
    bars (the demo's last G rang into a bar of its own); durations only shorten."""
    if not len(q):
        return q
    last = float(q.onsets.max())
    held = min(float(q.durations[q.onsets == last].max()), q.bar_ql)
    end = q.bar_ql * np.ceil((last + held) / q.bar_ql - 1e-9)
    return replace(q, durations=np.minimum(q.durations, end - q.onsets))


class _BeatGrid:
    """The grid of :func:`quantise` in integer ticks (``per_quarter`` a quarter note): binary steps
    of 1 / ``divisions`` quarter, and thirds or sixths of a beat in the beats chosen for triplets."""

    TUPLETS = (3, 6)  # steps per beat of the triplet grids a beat may take

    def __init__(self, beats: Beats, divisions: int, triplet_cost: float, group_beats: np.ndarray,
                 triplet_run: int = 1) -> None:
        import math

        self.beat_ql = beats.beat_ql
        sixths = 6 / self.beat_ql
        whole = abs(sixths - round(sixths)) < 1e-9
        self.per_quarter = math.lcm(divisions, int(round(sixths))) if whole else divisions
        self.per_beat = int(round(self.per_quarter * self.beat_ql))
        self.binary = self.per_quarter // divisions
        self.steps: dict[int, int] = {}  # beat → its step (ticks), for the beats on a triplet grid
        if beats.compound or not whole or not np.isfinite(triplet_cost):
            return
        half = 0.5 * self.binary / self.per_beat  # half a binary step, in beats
        home = np.floor(group_beats + half).astype(np.int64)  # the beat whose grid each chord is on
        for b in np.unique(home):
            x = group_beats[home == b] - b
            if len(x) < 2:
                continue  # a triplet needs two onsets in the beat
            best, best_err = None, np.abs(x - np.round(x * self.per_beat / self.binary) * self.binary
                                          / self.per_beat).sum() - triplet_cost
            for k in self.TUPLETS:
                slots = np.round(x * k)
                off_binary = np.abs(slots / k * self.per_beat / self.binary
                                    - np.round(slots / k * self.per_beat / self.binary)) > 1e-9
                if not off_binary.any() or np.any(np.diff(slots) <= 0):
                    continue  # nothing a binary grid could not write, or two chords on one step
                err = np.abs(x - slots / k).sum()
                if err < best_err - 1e-12:
                    best, best_err = self.per_beat // k, err
            if best is not None:
                self.steps[int(b)] = best
        if triplet_run > 1 and self.steps:  # only runs of at least triplet_run consecutive triplet beats stay
            keys = np.array(sorted(self.steps))
            runs = np.split(keys, np.flatnonzero(np.diff(keys) != 1) + 1)
            self.steps = {int(b): self.steps[int(b)] for run in runs if len(run) >= triplet_run for b in run}

    def step_at(self, tick: int) -> int:
        """The grid step (ticks) of the beat holding ``tick``."""
        return self.steps.get(int(tick) // self.per_beat, self.binary)

    def _steps_of(self, beat: np.ndarray) -> np.ndarray:
        """The grid step (ticks) of every beat index in ``beat``."""
        out = np.full(len(beat), self.binary, dtype=np.int64)
        if self.steps:
            keys = np.array(sorted(self.steps), dtype=np.int64)
            vals = np.array([self.steps[k] for k in keys], dtype=np.int64)
            i = np.clip(np.searchsorted(keys, beat), 0, len(keys) - 1)
            hit = keys[i] == beat
            out[hit] = vals[i[hit]]
        return out

    def steps_at(self, ticks: np.ndarray) -> np.ndarray:
        """:meth:`step_at` of every tick."""
        return self._steps_of(np.asarray(ticks, dtype=np.int64) // self.per_beat)

    def round(self, beat_pos: np.ndarray) -> np.ndarray:
        """Beat positions (from the grid's origin) to ticks: each onto its beat's grid."""
        x = np.asarray(beat_pos, dtype=np.float64)
        step = self._steps_of(np.floor(x + 0.5 * self.binary / self.per_beat).astype(np.int64))
        return np.round(x * self.per_beat / step).astype(np.int64) * step


# ---------------------------------------------------------------------------- hands


def split_hands(q: Quantised, split: int = MIDDLE_C, span: int = 14, max_notes: int = 5,
                continuity: float = 0.3, upper_probability: np.ndarray | None = None,
                prior_weight: float = 0.0) -> np.ndarray:
    """True for the notes of the right hand (upper staff).

    Each chord (notes starting together) is cut once, lowest notes to the left hand: the cut
    minimises, over its notes, (a) the distance to the wrong side of ``split`` (middle C:
    the left hand plays below it, the right hand from it up), (b) ``continuity`` times the
    distance from where that hand has recently played (an average over its last notes), and
    (c) a hand stretched wider than ``span`` semitones or given more than ``max_notes``
    notes. So a melody that dips below middle C stays in the right hand while the left hand
    plays far below, and a bass line that climbs above it stays in the left. With
    ``upper_probability`` (per note of ``q``, a staff model's probability of the upper staff)
    a note also costs ``prior_weight`` × its negative log probability on the staff it is put on
    (in semitones of (a) per nat), so the model decides where (a)-(c) are close and a note far
    from its hand still pays for the distance.
    """
    right = np.zeros(len(q), dtype=bool)
    centre = {"L": float(split - 12), "R": float(split + 12)}
    if upper_probability is not None and prior_weight > 0:
        p_up = np.clip(np.asarray(upper_probability, dtype=np.float64), 0.02, 0.98)
        cost_up, cost_down = -prior_weight * np.log(p_up), -prior_weight * np.log1p(-p_up)
    else:
        cost_up = cost_down = np.zeros(len(q))
    for c in np.unique(q.chords):
        members = np.flatnonzero(q.chords == c)
        members = members[np.argsort(q.pitches[members], kind="stable")]
        p = q.pitches[members].astype(np.float64)
        best, best_cost = 0, np.inf
        for k in range(len(p) + 1):
            left, upper = p[:k], p[k:]
            cost = np.clip(left - (split - 1), 0, None).sum() + np.clip(split - upper, 0, None).sum()
            cost += continuity * (np.abs(left - centre["L"]).sum() + np.abs(upper - centre["R"]).sum())
            cost += cost_down[members[:k]].sum() + cost_up[members[k:]].sum()
            for hand in (left, upper):
                if len(hand):
                    cost += 3.0 * max(0.0, hand.max() - hand.min() - span) + 10.0 * max(0, len(hand) - max_notes)
            if cost < best_cost - 1e-9:
                best, best_cost = k, cost
        right[members[best:]] = True
        if best > 0:
            centre["L"] = 0.6 * centre["L"] + 0.4 * p[:best].mean()
        if best < len(p):
            centre["R"] = 0.6 * centre["R"] + 0.4 * p[best:].mean()
    return right


# ---------------------------------------------------------------------------- key and score


def _configured_number(name: str, default: float, high: float, positive: bool = False, whole: bool = False) -> float:
    """A number from 0 (above 0 with ``positive``; a whole number with ``whole``) to ``high`` in
    ``conf/score/default.yaml``; another value is an error naming the file."""
    from .config import group_defaults, group_file

    value = group_defaults("score").get(name, default)
    if (isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or not 0.0 <= value <= high
            or (positive and value == 0)):
        low = "above 0" if positive else "from 0"
        kind = "whole number" if whole else "number"
        raise ValueError(f"{group_file('score')}: {name}: {value!r} is not a {kind} {low} to {high:g}")
    return float(value)


def configured_dominant_margin() -> float:
    """``key_dominant_margin`` of ``conf/score/default.yaml`` (see :func:`estimate_key`)."""
    return _configured_number("key_dominant_margin", 0.0, 1.0)


def configured_chord_tolerance() -> float:
    """``chord_tolerance`` of ``conf/score/default.yaml`` (seconds; see :func:`quantise`)."""
    return _configured_number("chord_tolerance", CHORD_TOLERANCE, 0.2)


def configured_hand_continuity() -> float:
    """``hand_continuity`` of ``conf/score/default.yaml`` (see :func:`split_hands`'s ``continuity``)."""
    return _configured_number("hand_continuity", 0.3, 10.0)


def configured_staff_prior() -> float:
    """``staff_prior`` of ``conf/score/default.yaml`` (see :func:`split_hands`'s ``prior_weight``;
    0: the split point alone, the staff model not run)."""
    return _configured_number("staff_prior", 0.0, 100.0)


def assign_staves(notes: Notes, q: Quantised, hands: str | None = None) -> np.ndarray:
    """True for the notes of ``q`` written on the upper staff, as ``hands`` says (None: ``hands`` of
    ``conf/score/default.yaml``): ``split`` is :func:`split_hands` with the configured
    ``hand_continuity`` and, where ``staff_prior`` is above 0, the staff model's output
    (``weights/staves.onnx``, :func:`transcribe.beatmodel.staff_probability`) as its prior; ``model`` the
    beat model's staff output alone (``weights/beats.onnx``). ``notes`` are those ``q`` quantised."""
    hands = hands or configured_hands()
    if hands not in HANDS:
        raise ValueError(f"unknown hands {hands!r}: one of {', '.join(HANDS)}")
    if not len(q):
        return np.zeros(0, dtype=bool)
    if hands == "model":
        from .beatmodel import upper_staff

        return upper_staff(notes, note_window=configured_model_note_window())[q.index]
    weight = configured_staff_prior()
    prob = None
    if weight > 0:
        from .beatmodel import STAVES_WEIGHTS, staff_probability

        prob = staff_probability(notes, STAVES_WEIGHTS, configured_model_note_window())[q.index]
    return split_hands(q, continuity=configured_hand_continuity(), upper_probability=prob, prior_weight=weight)


def configured_voice_gain() -> float:
    """``voice_gain`` of ``conf/score/default.yaml`` (quarter notes; see :func:`second_voice`;
    ``.inf``: one voice per staff)."""
    return _configured_number("voice_gain", float("inf"), float("inf"), positive=True)


def configured_triplet_cost() -> float:
    """``triplet_cost`` of ``conf/score/default.yaml`` (see :func:`quantise`; ``.inf``: no triplets)."""
    return _configured_number("triplet_cost", float("inf"), float("inf"))


def configured_triplet_run() -> int:
    """``triplet_run`` of ``conf/score/default.yaml`` (see :func:`quantise`; 1: every beat decides alone)."""
    return int(_configured_number("triplet_run", 1, 64, positive=True, whole=True))


def estimate_key(q: Quantised, margin: float = 0.05, spelled: np.ndarray | None = None,
                 dominant_margin: float | None = None, signature: int | None = None):
    """The key (a ``music21.key.Key``) of the quantised notes: music21's key analysis with the
    Temperley-Kostka-Payne profiles, pitch classes weighted by duration (on the first 60 s of
    119 ASAP training performances its key signature was right on 80.7 %, the default
    Aarden-Essen profiles' on 77.3 %, Krumhansl's on 57.1 %). A major key and its relative
    minor often score alike (a C major scale comes out A minor, 0.824 against 0.818): when the
    relative key is within ``margin`` of the best, the one whose tonic is the bass of the last
    chord (else of the first) wins, as pieces end (and usually begin) on the tonic. The key is
    written with the fewer accidentals (:func:`signature_key`: D♭ major, not C♯ major), the tie
    at six (F♯ / G♭ major) going the way the notes' own spelling leans (``spelled``: their
    line-of-fifths positions, :func:`ps13_fifths`). C major when there are no notes. With
    ``signature`` (a class of :func:`transcribe.beatmodel.signature_class`, e.g. the beat model's
    key output) the key is the best-scoring of the two keys of that signature.

    A minor key's dominant is a major chord (its raised leading tone), and many minor pieces
    open on it (Beethoven's op. 31/2 i, Chopin's fourth Ballade), so the profiles often name the
    dominant's major key: when the best key is major and the minor key a fifth below it scores
    within ``dominant_margin`` (``key_dominant_margin`` of ``conf/score/default.yaml`` when
    None; 0 turns this off), that minor key wins. On the first 60 s of the 931 ASAP training
    performances the signature was right on 80.1 % without this and 80.6 % with 0.15 (the
    smallest margin at the best; 78.2 % at 0.4): see docs/SCORE.md."""
    from music21 import key, note, stream

    if len(q) == 0:
        return key.Key("C")
    s = stream.Stream()
    for on, dur, p in zip(q.onsets, q.durations, q.pitches):
        n = note.Note(int(p))
        n.quarterLength = float(dur)
        s.insert(float(on), n)
    best = s.analyze("key.temperleykostkapayne")
    if signature is not None:  # the signature is given (its class: sharps mod 12): the profiles choose the mode
        best = max([best, *best.alternateInterpretations],
                   key=lambda k: (int(k.sharps) % 12 == signature % 12, k.correlationCoefficient))
        dominant_margin = 0.0
    if dominant_margin is None:
        dominant_margin = configured_dominant_margin()
    if best.mode == "major" and dominant_margin > 0:
        below = (best.tonic.pitchClass + 5) % 12  # the minor key whose dominant is the best key
        minor = next((k for k in best.alternateInterpretations
                      if k.mode == "minor" and k.tonic.pitchClass == below), None)
        if minor is not None and best.correlationCoefficient - minor.correlationCoefficient <= dominant_margin:
            best = minor
    lean = 0 if spelled is None or not len(spelled) else int(np.sign(np.median(spelled) - 2))
    relative = next((k for k in best.alternateInterpretations
                     if k.tonic.pitchClass == best.relative.tonic.pitchClass and k.mode == best.relative.mode), None)
    if relative is None or best.correlationCoefficient - relative.correlationCoefficient > margin:
        return signature_key(best, lean)
    last_bass = int(q.pitches[q.chords == q.chords.max()].min()) % 12
    first_bass = int(q.pitches[q.chords == q.chords.min()].min()) % 12
    for bass in (last_bass, first_bass):
        for k in (best, relative):
            if k.tonic.pitchClass == bass:
                return signature_key(k, lean)
    return signature_key(best, lean)


# Line of fifths: F = -1, C = 0, G = 1, ..., B = 5; F♯ = 6, B♭ = -2 (a step's sharp is 7 further).
FIFTHS_STEPS = "FCGDAEB"
STEP_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def fifths_name(f: int) -> tuple[str, int]:
    """(step, alteration) of line-of-fifths position ``f`` (0 = C, 7 = C♯, -2 = B♭)."""
    return FIFTHS_STEPS[(f + 1) % 7], (f + 1) // 7


def fifths_of(step: str, alter: int) -> int:
    """Line-of-fifths position of a spelled pitch class (inverse of :func:`fifths_name`)."""
    return FIFTHS_STEPS.index(step) - 1 + 7 * int(alter)


def signature_key(k, lean: int = 0):
    """Key ``k`` written with the fewer accidentals: C♯ major (7 sharps) as D♭ major (5 flats),
    A♭ minor as G♯ minor; at six either way (F♯ / G♭ major, D♯ / E♭ minor) sharps when
    ``lean`` > 0, flats when < 0, else as given."""
    from music21 import key

    s = int(k.sharps)
    if abs(s) < 6 or (abs(s) == 6 and (lean == 0 or np.sign(lean) == np.sign(s))):
        return k
    new = s - 12 * int(np.sign(s)) if abs(s) > 6 or np.sign(lean) != np.sign(s) else s
    tonic = new + (3 if k.mode == "minor" else 0)  # a minor key's tonic is three fifths above its signature's major
    step, alter = fifths_name(tonic)
    return key.Key(step + ("#" * alter if alter > 0 else "-" * -alter), k.mode)


def ps13_fifths(q: Quantised) -> np.ndarray:
    """Line-of-fifths position of every quantised note as partitura's PS13 (Meredith 2006) spells
    it from its context (onsets in quarter lengths)."""
    from .deps import require

    require("partitura", "pitch spelling (--format musicxml)", extra="score")
    from partitura.musicanalysis import estimate_spelling

    arr = np.zeros(len(q), dtype=[("onset_beat", "f4"), ("duration_beat", "f4"), ("pitch", "i4"), ("id", "U8")])
    arr["onset_beat"], arr["duration_beat"], arr["pitch"] = q.onsets, q.durations, q.pitches
    arr["id"] = [f"n{i}" for i in range(len(q))]
    sp = estimate_spelling(arr)
    return np.array([fifths_of(st, al) for st, al in zip(sp["step"], sp["alter"])], dtype=np.int64)


def spell(pitches: np.ndarray, sharps: int, spelled: np.ndarray | None = None) -> list[str]:
    """Names (``"F#4"``, ``"B-3"``) of MIDI ``pitches`` in the key signature of ``sharps``: a pitch
    class the signature holds gets its name there (so no in-key note needs an accidental);
    another gets the spelling ``spelled`` gives it (line-of-fifths positions, e.g. PS13's, moved
    by whole enharmonic turns of 12 fifths into the signature's frame, so a piece PS13 reads in
    C♯ major is written in D♭ with its chromatic notes turned alike), else (or where that lies
    more than 9 fifths from the signature's centre) the spelling nearest the centre: sharps in
    sharp keys, flats in flat keys."""
    pitches = np.asarray(pitches, dtype=np.int64)
    lo, centre = sharps - 1, sharps + 2  # the signature's seven pitch classes: positions lo..lo+6
    base = (7 * pitches) % 12
    diatonic = lo + (base - lo) % 12
    nearest = centre - 6 + (base - (centre - 6)) % 12  # within [centre-6, centre+5]
    f = np.where(diatonic <= lo + 6, diatonic, nearest)
    if spelled is not None and len(spelled):
        spelled = np.asarray(spelled, dtype=np.int64)
        shift = 12 * int(np.round((centre - np.median(spelled)) / 12))
        chrom = spelled + shift
        use = (diatonic > lo + 6) & (np.abs(chrom - centre) <= 9) & ((chrom - base) % 12 == 0)
        f = np.where(use, chrom, f)
    out = []
    for p, pos in zip(pitches, f):
        step, alter = fifths_name(int(pos))
        octave = (int(p) - STEP_SEMITONE[step] - alter) // 12 - 1
        out.append(step + ("#" * alter if alter > 0 else "-" * -alter) + str(octave))
    return out


def _multiple(x: float, step: float) -> bool:
    return abs(x / step - round(x / step)) < 1e-6


def _staff_events(onsets: np.ndarray, durations: np.ndarray, pitches: np.ndarray, step: float,
                  end_ql: float, values: np.ndarray | None = None) -> list[tuple[float, float, list[int], bool]]:
    """(offset, length, pitches, staccato) of one staff, chords and rests (empty pitches) filling
    it from 0 to ``end_ql``: a chord lasts as long as its longest note, cut at the next onset
    (one voice per staff); a gap shorter than one beat and shorter than the chord before it is
    absorbed into that chord (legato), so a loosely played line is not strewn with rests; a
    chord sounding at most half the time to the next one, when that time is a quarter or less
    and one note value, is written with that value and a staccato dot (not a short note and a
    rest); a length that no single note value (one dot at most, or a triplet value) has moves to
    the nearest one within a step shorter or two steps longer (not past the next chord, ending on
    the grid), so 1.75 beats become a half note rather than a double-dotted quarter. With
    ``values`` (quarter notes per note, e.g. the beat model's note values) a chord is written
    with its longest member's value instead of the played length and those two rules (cut at
    the next onset all the same; a value shorter than the time to the next chord leaves a rest)."""
    events = []
    starts = np.unique(onsets)
    t = 0.0
    for i, s in enumerate(starts):
        members = onsets == s
        nxt = starts[i + 1] if i + 1 < len(starts) else end_ql
        if s > t + 1e-9:
            events.append((t, s - t, [], False))
        ioi = nxt - s
        staccato = False
        if values is not None:
            length = max(min(float(values[members].max()), ioi), min(step, ioi))
        else:
            length = min(float(durations[members].max()), ioi)
            gap = ioi - length
            if 0 < gap < 1.0 - 1e-9 and gap <= length + 1e-9 and i + 1 < len(starts):
                length = ioi
            elif gap > 0 and i + 1 < len(starts) and ioi <= 1.0 + 1e-9 and _plain(ioi):
                length, staccato = ioi, True
        if not _plain(length):  # 1.75 or 1.25: the nearest single value (one dot at most) in reach
            plain = [v for v in PLAIN_VALUES if length - step - 1e-9 <= v <= min(ioi, length + 2 * step) + 1e-9
                     and (_multiple(s + v, step) or _multiple(s + v, 1 / 3))]  # ending on the grid
            if plain:
                length = float(min(plain, key=lambda v: (abs(v - length), -v)))
        length = max(length, min(step, ioi))
        events.append((float(s), length, sorted(int(p) for p in pitches[members]), staccato))
        t = s + length
    if end_ql > t + 1e-9:
        events.append((t, end_ql - t, [], False))
    return events


def _event_lengths(onsets: np.ndarray, durations: np.ndarray, pitches: np.ndarray, step: float, end_ql: float,
                   values: np.ndarray | None = None) -> np.ndarray:
    """Per note, the length :func:`_staff_events` writes its chord with (one voice)."""
    out = np.zeros(len(onsets))
    for off, length, ps, _ in _staff_events(onsets, durations, pitches, step, end_ql, values):
        if ps:
            out[np.abs(onsets - off) < 1e-9] = length
    return out


def _voice_lengths(onsets: np.ndarray, durations: np.ndarray, pitches: np.ndarray, second: np.ndarray,
                   step: float, end_ql: float, values: np.ndarray | None = None) -> np.ndarray:
    """Per note of one staff, the length it is written with when the notes of ``second`` form a
    voice of their own (each voice by :func:`_staff_events`)."""
    out = np.zeros(len(onsets))
    for mask in (~second, second):
        if mask.any():
            out[mask] = _event_lengths(onsets[mask], durations[mask], pitches[mask], step, end_ql,
                                       None if values is None else values[mask])
    return out


def second_voice(onsets: np.ndarray, durations: np.ndarray, pitches: np.ndarray, top: bool, step: float,
                 end_ql: float, bar: float, gain: float, values: np.ndarray | None = None) -> np.ndarray:
    """Per note of one staff (quarter lengths; ``top``: the upper staff), whether it is written in a
    second voice. One voice per staff writes a chord as long as its longest note, cut at the next
    onset, so a melody note held over a moving accompaniment (or a chord held under a moving
    melody) is cut short. A bar gets two voices where splitting it lets some note of the bar be
    written at least ``gain`` quarter lengths longer: the staff's outer line (the highest note of
    each onset on the upper staff, the lowest on the lower one) stays in the first voice, the other
    notes of the bar go to the second (an onset's outermost note joins the outer line unless a note struck
    before and still held lies beyond it). ``gain`` ``inf``: one voice everywhere."""
    n = len(onsets)
    second = np.zeros(n, dtype=bool)
    if n < 2 or not np.isfinite(gain):
        return second
    # the outer line: the outermost note of an onset, unless a note still sounding from before lies beyond it
    side = pitches if top else -pitches
    ends = onsets + durations
    outer = np.zeros(n, dtype=bool)
    for s in np.unique(onsets):
        members = np.flatnonzero(np.abs(onsets - s) < 1e-9)
        edge = members[np.argmax(side[members])]
        held = (onsets < s - 1e-9) & (ends > s + 1e-9)
        outer[edge] = not held.any() or side[edge] > side[held].max()
    one = _event_lengths(onsets, durations, pitches, step, end_ql, values)
    bars = np.floor(onsets / bar + 1e-9)
    for b in np.unique(bars[~outer]):
        in_bar = bars == b
        trial = second | (in_bar & ~outer)
        # what the split changes is local: the bar and the notes up to a bar past where its notes end
        hi = float((onsets[in_bar] + durations[in_bar]).max()) + bar
        win = (onsets >= b * bar - 1e-9) & (onsets <= hi + 1e-9)
        lengths = _voice_lengths(onsets[win], durations[win], pitches[win], trial[win], step, end_ql,
                                 None if values is None else values[win])
        if np.any((lengths - one[win])[in_bar[win]] >= gain - 1e-9):
            second = trial
    return second


def _end_ql(q: Quantised) -> float:
    """Where the staves end (quarter notes): the bar line at or after the last note's end, at
    least one bar."""
    end = float((q.onsets + q.durations).max()) if len(q) else q.bar_ql
    return max(q.bar_ql, q.bar_ql * np.ceil(end / q.bar_ql - 1e-9))


def staff_voices(q: Quantised, upper: np.ndarray, voice_gain: float, values: np.ndarray | None = None) -> np.ndarray:
    """Per quantised note, True where :func:`second_voice` writes it in its staff's second voice
    (``upper``: True for the upper staff; ``values`` as :func:`written_lengths` takes them)."""
    second = np.zeros(len(q), dtype=bool)
    if not len(q) or not np.isfinite(voice_gain):
        return second
    step, end_ql = 1.0 / q.divisions, _end_ql(q)
    for mask, top in ((upper, True), (~upper, False)):
        idx = np.flatnonzero(mask)
        if len(idx):
            second[idx] = second_voice(q.onsets[idx], q.durations[idx], q.pitches[idx], top, step, end_ql, q.bar_ql,
                                       voice_gain, None if values is None else values[idx])
    return second


def written_lengths(q: Quantised, upper: np.ndarray, values: np.ndarray | None = None,
                    second: np.ndarray | None = None) -> np.ndarray:
    """Per quantised note, the length (quarter notes) :func:`notes_to_score` writes it with: its
    chord's event in its voice on its staff (``upper``: True for the upper staff) by :func:`_staff_events`,
    so a note held past the next onset in its voice is cut there; ``second``: the notes in their staff's
    second voice (:func:`staff_voices`; None, the default: one voice per staff);
    ``values``: per quantised note, the value to write (quarter notes; see :func:`_staff_events`)."""
    out = np.zeros(len(q))
    if not len(q):
        return out
    step, end_ql = 1.0 / q.divisions, _end_ql(q)
    if second is None:
        second = np.zeros(len(q), dtype=bool)
    for mask in (upper, ~upper):
        idx = np.flatnonzero(mask)
        if len(idx):
            out[idx] = _voice_lengths(q.onsets[idx], q.durations[idx], q.pitches[idx], second[idx], step, end_ql,
                                      None if values is None else values[idx])
    return out


PLAIN_VALUES = tuple(sorted({base * dot for base in (4.0, 2.0, 1.0, 0.5, 0.25, 0.125) for dot in (1.0, 1.5)}
                            | {base * 2 / 3 for base in (2.0, 1.0, 0.5, 0.25)}))
"""Lengths (quarter notes) one note value has: whole to 32nd, at most one dot, and the triplet
half, quarter, eighth and sixteenth."""


def _plain(ql: float) -> bool:
    """Whether one note value (at most one dot, or a triplet value) has this length in quarter notes."""
    return any(abs(ql - v) < 1e-9 for v in PLAIN_VALUES)


def _rest_pieces(start: float, end: float, beat: float, bar: float) -> list[tuple[float, float]]:
    """(offset, length) of the rests filling [start, end): split at bar lines, the part of a
    beat up to the next beat on its own, whole beats together where one note value (at most one
    dot) covers them, else beat by beat, so a rest never hides where the beats are."""
    pieces, t = [], start
    while t < end - 1e-9:
        bar_end = min(end, (np.floor(t / bar + 1e-9) + 1) * bar)
        next_beat = min(bar_end, (np.floor(t / beat + 1e-9) + 1) * beat)
        if abs(t / beat - round(t / beat)) > 1e-9:  # off the beat: up to the next beat
            pieces.append((t, next_beat - t))
            t = next_beat
            continue
        whole = np.floor((bar_end - t) / beat + 1e-9) * beat
        if whole > 0 and _plain(whole):
            pieces.append((t, whole))
            t += whole
        elif whole > 0:
            pieces.append((t, beat))
            t += beat
        else:  # less than a beat before the end
            pieces.append((t, bar_end - t))
            t = bar_end
    return pieces


def _mark_accidentals(part, key) -> None:
    """Accidentals printed where the key signature and the bar's earlier notes on the staff do not
    already give the pitch, and only there: music21's default also repeats them on later notes of a
    bar, in other octaves and as courtesy signs in the next bar (on ASAP's held-out performances
    that printed an accidental on about one note in eight whose signature already gave it); a note
    tied over a bar line takes none."""
    from music21 import note, stream
    from music21.stream.makeNotation import getTiePitchSet

    measures = list(part.getElementsByClass(stream.Measure))
    for i, m in enumerate(measures):
        ties = None
        if i > 0:
            previous = list(measures[i - 1].recurse().getElementsByClass(note.NotRest))
            ties = getTiePitchSet(previous[-1]) if previous else None
        m.makeAccidentals(useKeySignature=key, searchKeySignatureByContext=False, cautionaryPitchClass=False,
                          cautionaryNotImmediateRepeat=False, overrideStatus=True, inPlace=True, tiePitchSet=ties)
        _print_needed_naturals(m, key, exact=m.hasVoices())
    part.streamStatus.accidentals = True


def written_sign(p) -> tuple[float, bool]:
    """(the alteration a music21 pitch is written with, 0 for none; whether its sign is printed)."""
    return (p.accidental.alter if p.accidental is not None else 0.0,
            p.accidental is not None and p.accidental.displayStatus is True)


def read_bar(measure, signature, state: dict):
    """The struck notes of a bar as a reader reads them: for each pitch in order (tied-over notes, which are
    not struck and take no sign, left out), ``(pitch, given, first)``: the alteration the ``signature`` (a
    music21 KeySignature or Key) and the bar's earlier signs give its letter in its octave (a sign holds for
    its own octave only), and whether it is the first of its letter and octave in the bar. ``state`` (empty
    when called) is filled as the bar is read with (letter, octave) → the alteration of the last sign printed
    there, read after the caller's turn with each pitch (so a sign the caller prints counts). Notes are read in
    time order, across the bar's voices."""
    for el in sorted(measure.recurse().notes, key=lambda el: el.getOffsetInHierarchy(measure)):
        for p in getattr(el, "pitches", ()):
            tie = el.tie if len(el.pitches) == 1 else el.getTie(p)
            if tie is not None and tie.type in ("stop", "continue"):
                continue
            where = (p.step, p.octave)
            given = state.get(where)
            if given is None:
                sign = signature.accidentalByStep(p.step)
                given = sign.alter if sign is not None else 0.0
            yield p, given, where not in state
            alter, shown = written_sign(p)
            if shown:
                state[where] = alter


def _print_needed_naturals(measure, key, exact: bool = False) -> None:
    """Print the accidentals music21's ``makeAccidentals`` leaves out. An accidental holds for its own
    octave only, but music21 (9.x) lets a natural hold for every octave of its letter: in F minor, E5♮ then
    E4♮ in one bar comes out with no sign on the E4, which a reader plays as E♭4. On the 41 held-out ASAP
    performances (whole, `scripts/score_eval.py`) 1.9 % of the written notes lacked a needed sign, nearly
    all of them such naturals; so the bar is read again here as a reader reads it (:func:`read_bar`).
    ``exact``: also hide every sign the reader does not need (a bar with two voices, which music21 reads
    voice by voice rather than in time order)."""
    from music21 import pitch as m21pitch

    for p, given, _ in read_bar(measure, key, {}):
        alter, shown = written_sign(p)
        if exact and shown and alter == given:
            p.accidental.displayStatus = False
        elif alter != given and not shown:
            if p.accidental is None:
                p.accidental = m21pitch.Accidental("natural")
            p.accidental.displayStatus = True


def notes_to_score(notes: Notes, beats: Beats, *, divisions: int = 4, title: str | None = None,
                   key=None, triplet_cost: float | None = None, hands: str | None = None,
                   key_source: str | None = None, note_values: str | None = None, voice_gain: float | None = None,
                   triplet_run: int | None = None):
    """A music21 ``Score`` for piano: two staves (treble: right hand, bass: left hand) joined
    by a brace, the estimated meter, tempo mark and key (``key``: a music21 Key, a name like
    ``"G major"``, or None to estimate it), notes quantised by :func:`quantise` and split by
    :func:`assign_staves` (``hands``: ``"split"`` or ``"model"``, None: as configured), a second voice in a
    staff's bars where :func:`second_voice` gives one (``voice_gain``, quarter notes; ``inf``: one voice per staff);
    ``triplet_cost`` and ``triplet_run`` say when a beat is written in triplets (:func:`quantise`); None takes
    each from ``conf/score/default.yaml``, as ``key_source`` does where the key is estimated
    (:func:`configured_key_source`) and ``note_values`` (``rules`` or ``model``,
    :func:`configured_note_values`) and ``voice_gain`` (:func:`configured_voice_gain`)."""
    from music21 import (articulations, chord, clef, instrument, key as m21key, layout, metadata, meter, note,
                         stream, tempo as m21tempo)

    if triplet_cost is None:
        triplet_cost = configured_triplet_cost()
    if triplet_run is None:
        triplet_run = configured_triplet_run()
    q = quantise(notes, beats, divisions, triplet_cost=triplet_cost, triplet_run=triplet_run)
    spelled = ps13_fifths(q) if len(q) else None
    if key is None:
        sig = None
        if (key_source or configured_key_source()) == "model":
            from .beatmodel import key_signature_class

            sig = key_signature_class(notes, note_window=configured_model_note_window())
        key = estimate_key(q, spelled=spelled, signature=sig)
    elif isinstance(key, str):
        name, _, mode = key.partition(" ")
        key = m21key.Key(name, mode or None)
    names = dict(zip(zip(q.onsets.tolist(), q.pitches.tolist()), spell(q.pitches, key.sharps, spelled)))
    right = assign_staves(notes, q, hands)
    values = None
    if len(q) and (note_values or configured_note_values()) == "model":
        from .beatmodel import note_values as model_values

        values = model_values(notes, note_window=configured_model_note_window())[q.index] * beats.beat_ql
    if voice_gain is None:
        voice_gain = configured_voice_gain()
    second = staff_voices(q, right, voice_gain, values)
    step = 1.0 / divisions
    bar = q.bar_ql
    end_ql = _end_ql(q)

    beat = beats.beat_ql
    first = float(q.onsets.min()) if len(q) else 0.0
    pickup = float(np.floor(first / beat + 1e-9) * beat)  # whole beats of rest before the first note
    score = stream.Score()
    score.metadata = metadata.Metadata()
    score.metadata.title = title or "Transcription"
    score.metadata.composer = "automatic transcription"
    staves = []
    for mask, cl in ((right, clef.TrebleClef()), (~right, clef.BassClef())):
        part = stream.PartStaff()  # the right hand's staff, then the left's: one instrument, named "Piano"
        part.partName, part.partAbbreviation = "Piano", "Pno."
        if not staves:
            inst = instrument.Piano()
            part.insert(0, inst)
        part.insert(0, cl)
        part.insert(0, m21key.Key(key.tonic.name, key.mode))  # the signature and its <mode>
        part.insert(0, meter.TimeSignature(beats.time_signature))
        if not staves:
            mark = m21tempo.MetronomeMark(number=int(round(beats.tempo)),
                                          referent=note.Note(type="quarter", dots=1 if beats.compound else 0))
            part.insert(0, mark)
        sec = second[mask]
        # one voice, or two: the first (the outer line where there are two, everything elsewhere) with its
        # rests, the second with its notes only (no rests where it is silent: MusicXML skips that time)
        voices = [(~sec, stream.Voice(), True), (sec, stream.Voice(), False)] if sec.any() else \
            [(np.ones(len(sec), dtype=bool), part, True)]
        for sel, dest, rests in voices:
            idx = np.flatnonzero(mask)[sel]
            for off, length, ps, staccato in _staff_events(q.onsets[idx], q.durations[idx], q.pitches[idx], step,
                                                           end_ql, None if values is None else values[idx]):
                if not ps:
                    for r_off, r_len in _rest_pieces(off, off + length, beat, bar) if rests else ():
                        rest = note.Rest(quarterLength=float(r_len))
                        rest.fullMeasure = abs(r_len - bar) < 1e-9
                        dest.insert(float(r_off), rest)
                    continue
                spelt = [names[(off, p)] for p in ps]
                el = note.Note(spelt[0]) if len(ps) == 1 else chord.Chord(spelt)
                el.quarterLength = float(length)
                if staccato:
                    el.articulations.append(articulations.Staccato())
                dest.insert(float(off), el)
            if dest is not part:
                part.insert(0, dest)
        part.makeMeasures(inPlace=True)
        part.makeTies(inPlace=True)
        measures = list(part.getElementsByClass(stream.Measure))
        for m in measures:  # a bar whose second voice is empty is written with one
            m.flattenUnnecessaryVoices(inPlace=True)
            for i, v in enumerate(m.voices, 1):  # makeMeasures numbers them from 0; MusicXML's voices count from 1
                v.id = i
                for el in v.notes:  # the first voice's stems up, the second's down
                    el.stemDirection = "up" if i == 1 else "down"
        if pickup > 0 and measures:  # an anacrusis: the first bar starts with the first note
            m0 = measures[0]
            for box in (list(m0.voices) or [m0]):
                for el in list(box.notesAndRests):
                    if el.offset < pickup - 1e-9:
                        box.remove(el)
                for el in list(box.notesAndRests):
                    box.setElementOffset(el, el.getOffsetBySite(box) - pickup)
            m0.paddingLeft = pickup
            for i, m in enumerate(measures):
                m.number = i
        _mark_accidentals(part, key)
        staves.append(part)
    for part in staves:
        score.insert(0, part)
    score.insert(0, layout.StaffGroup(staves, name="Piano", abbreviation="Pno.", symbol="brace", barTogether=True))
    return score


def score_bytes(score) -> bytes:
    """MusicXML of a music21 score, made notation **in place** (rests filled, measures, ties,
    beams): the steps of music21's ``GeneralObjectExporter`` without its deep copy of the score,
    which took a quarter of the export (measured on 11 held-out ASAP performances: 5.1 -> 3.7 CPU
    s, the bytes identical but for music21's random part ids). Pass a score you do not reuse."""
    from music21.musicxml.m21ToXml import ScoreExporter

    score.makeRests(refStreamOrTimeRange=[0.0, score.highestTime], fillGaps=True, inPlace=True, hideRests=True,
                    timeRangeFromBarDuration=True)
    score.makeNotation(inPlace=True)
    exporter = ScoreExporter(score, makeNotation=True)
    exporter.parse()
    return exporter.asBytes()


def write_musicxml(notes: Notes, path: str | Path, audio: np.ndarray | None = None,
                   sample_rate: int | None = None, beats: Beats | None = None, *, divisions: int = 4,
                   title: str | None = None) -> Beats:
    """Write ``notes`` as a MusicXML piano score (see :func:`notes_to_score`) through an atomic
    write. Beats are estimated (:func:`estimate_beats`, from the audio too when given) unless
    ``beats`` is passed. Returns the beats used."""
    if beats is None:
        beats = estimate_beats(audio, sample_rate, notes)
    data = score_bytes(notes_to_score(notes, beats, divisions=divisions, title=title or Path(path).stem))
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return beats


# ---------------------------------------------------------------------------- beat-aligned MIDI


def midi_grid(beats: Beats) -> tuple[np.ndarray, int]:
    """(grid times, index of ``beats.times[0]`` in them): the beat grid of a MIDI file, which
    must start at time 0: earlier beats at the first interval are added while they lie at
    least half an interval after 0, and time 0 itself is the first grid point."""
    times, first = beats.times, beats.times[1] - beats.times[0]
    extra = int(np.floor(times[0] / first - 0.5)) if times[0] > 0 else 0
    extra = max(extra, 0)
    lead = times[0] - first * np.arange(extra, 0, -1)
    grid = np.concatenate(([0.0] if times[0] > 0 else [], lead, times))
    return grid, len(grid) - len(times)


def beat_aligned_midi(notes: Notes, beats: Beats, path: str | Path, resolution: int = 480,
                      key_name: str | None = None, pedal: np.ndarray | None = None) -> None:
    """Write ``notes`` at their real times as a MIDI file whose tempo map follows ``beats``:
    a tempo change at every beat, so beat k of the grid (:func:`midi_grid`: time 0, then
    beats extrapolated back from the first, then the estimated ones) is tick
    ``k * resolution * beat_ql`` (``beat_ql``: 1 in x/4, 1.5 quarters in 6/8 and the like), and
    a DAW's bars and beats line up with the music. Beats before the first downbeat make a
    pickup bar with its own time signature. After the last beat the last tempo goes on.
    ``key_name`` (e.g. ``"G"``, ``"Em"``) adds a key-signature event; ``pedal`` spans [n, 2]
    (down, up s) sustain pedal control changes (CC64 127 / 0)."""
    import mido

    from . import midifile
    from .midifile import sustain_events

    grid, offset = midi_grid(beats)
    ticks_per_beat = int(round(resolution * beats.beat_ql))
    target_us = np.round(grid * 1e6)
    achieved = np.zeros(len(grid))  # µs the file's tempo map puts each grid beat at
    tempos = []
    for i in range(len(grid) - 1):  # each tempo from the target minus what is already achieved: no drift
        us_per_quarter = int(round((target_us[i + 1] - achieved[i]) / beats.beat_ql))
        us_per_quarter = int(np.clip(us_per_quarter, 1, 0xFFFFFF))
        tempos.append(us_per_quarter)
        achieved[i + 1] = achieved[i] + us_per_quarter * beats.beat_ql
    tempos.append(tempos[-1])
    grid_s = achieved / 1e6

    def to_tick(t: np.ndarray) -> np.ndarray:
        pos = np.interp(t, grid_s, np.arange(len(grid), dtype=np.float64))
        pos = np.where(t > grid_s[-1], len(grid) - 1 + (t - grid_s[-1]) / (grid_s[-1] - grid_s[-2]), pos)
        return np.round(pos * ticks_per_beat).astype(np.int64)

    timed: list[tuple[int, int, bytes]] = []  # (tick, order at the tick, message)
    per_bar = beats.beats_per_bar
    downbeat = beats.downbeat + offset
    pickup = downbeat % per_bar
    unit = 3 if beats.compound else 1  # denominators per beat
    if pickup:
        timed.append((0, 0, midifile.time_signature(pickup * unit, beats.denominator)))
    timed.append((pickup * ticks_per_beat, 0, midifile.time_signature(beats.numerator, beats.denominator)))
    if key_name:  # mido knows the key names ("G", "Em", "Bb", ...) and their sharps or flats
        timed.append((0, 1, bytes(mido.MetaMessage("key_signature", key=key_name).bytes())))
    for i, us in enumerate(tempos):
        if i == 0 or us != tempos[i - 1]:
            timed.append((i * ticks_per_beat, 2, midifile.tempo(us)))
    timed.sort(key=lambda e: (e[0], e[1]))

    on, off = to_tick(notes.onsets), to_tick(np.maximum(notes.offsets, notes.onsets))
    events = midifile.note_events(on, off, notes.pitches, notes.velocities)
    if pedal is not None and len(pedal):
        times, values = np.array(sustain_events(pedal)).T
        events += midifile.control_events(to_tick(times), midifile.SUSTAIN, values.astype(np.int64))
    head = [(0, midifile.track_name("Piano")), (0, midifile.channel(midifile.PROGRAM_CHANGE, 0))]
    data = midifile.midi_file([midifile.track([(t, m) for t, _, m in timed]), midifile.track(head, events)], resolution)
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
