"""Activations -> notes: a note starts where the onset head fires and lasts while the frame
head (or its own onset) holds the key. Vectorised over keys and frames (no per-frame loop).
Pedal activations -> sustain pedal spans (:func:`decode_pedal`). The notes as written
(:func:`finish_notes`): the shortest kept, the keys kept, and sounding or key-release offsets
(:func:`key_release_offsets`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from .notes import MAX_PITCH, MIN_PITCH, N_KEYS, Notes, pitch_number


def _pitch_setting(name: str, value) -> int:
    try:
        return pitch_number(value)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


NOTE_KINDS = ("sounding", "key")  # DecodeConfig.notes: which offsets the notes get (see finish_notes)


@dataclass(frozen=True)
class DecodeConfig:
    """Decoder settings (conf/decode/*.yaml); stored in every checkpoint. A checkpoint from before
    a setting existed gets it from ``conf/decode/default.yaml`` (:meth:`from_stored`)."""

    onset_threshold: float = 0.5
    frame_threshold: float = 0.5
    min_note_frames: int = 1
    # sustain pedal (models with a pedal head); checkpoints from before it lack these keys
    pedal: bool = True  # decode the pedal (and write it as CC64) when the model has a pedal head
    pedal_threshold: float = 0.5
    pedal_onset_threshold: float = 0.5
    min_pedal_frames: int = 2
    # the notes as written (finish_notes): shortest note kept, the keys kept, sounding or key-release offsets
    min_note_ms: float = 0.0
    min_pitch: int = MIN_PITCH  # a MIDI number, or a note name ("C2") turned into one
    max_pitch: int = MAX_PITCH
    notes: str = "sounding"
    # a key's onset probability less this share of the onset probability an octave below in the same
    # frame (suppress_octaves); 0: off. Checkpoints from before it get conf/decode's value
    octave_suppression: float = 0.0
    # the same for the key an octave and a fifth below (19 semitones: a struck note's third partial)
    twelfth_suppression: float = 0.0

    def __post_init__(self) -> None:
        for name in ("octave_suppression", "twelfth_suppression"):
            a = getattr(self, name)
            if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 <= a <= 1.0:
                raise ValueError(f"{name} must be a number from 0 to 1, got {a!r}")
            object.__setattr__(self, name, float(a))
        ms = self.min_note_ms
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms < 0:
            raise ValueError(f"min_note_ms must be a finite number of milliseconds >= 0, got {ms!r}")
        low, high = (_pitch_setting(name, getattr(self, name)) for name in ("min_pitch", "max_pitch"))
        if low > high:
            raise ValueError(f"min_pitch {self.min_pitch} ({low}) is above max_pitch {self.max_pitch} ({high})")
        if self.notes not in NOTE_KINDS:
            raise ValueError(f"notes must be one of {', '.join(NOTE_KINDS)}, got {self.notes!r}")
        object.__setattr__(self, "min_note_ms", float(ms))
        object.__setattr__(self, "min_pitch", low)
        object.__setattr__(self, "max_pitch", high)

    @classmethod
    def from_dict(cls, d: Mapping) -> "DecodeConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @classmethod
    def from_stored(cls, d: Mapping, where: str = "checkpoint") -> "DecodeConfig":
        """A checkpoint's stored decoder settings; those it predates (e.g. ``min_note_ms`` for the
        shipped model) from ``conf/decode/default.yaml``. Errors name that file, or ``where``."""
        from .config import from_group

        defaults = from_group("decode", cls.from_dict)  # checked on its own, so its errors name the file
        try:
            return replace(defaults, **{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: stored decoder settings: {err}") from None

    def min_note_seconds(self, frame_rate: float) -> float:
        """The shortest note written: ``min_note_frames`` frames or ``min_note_ms``, the longer."""
        return max(max(self.min_note_frames, 1) / frame_rate, self.min_note_ms / 1000.0)


def suppress_octaves(onset: np.ndarray, share: float, twelfth: float = 0.0) -> np.ndarray:
    """Onset probabilities [frames, 88] with each key's lowered by ``share`` times the onset
    probability of the key an octave below in the same frame (clipped at 0): a struck note's second
    partial is what the harmonic networks most often write as a false note (90 % of their false
    notes are an octave off a sounding one). Measured, not assumed: on the held-out validation
    files it raised the harmonic network's note F1 by 0.025-0.03 and stage 7's by 0-0.01 (MODEL_CARD, leg 3). A
    frame-local rule, so streaming decoding gives the same notes. ``twelfth`` does the same from the key 19
    semitones below (the third partial): on SptkBGCl the harmonic network's false treble notes were mostly
    twelfths and octaves of sounding notes (MODEL_CARD, the long run, 2026-12-06 evening)."""
    if share <= 0.0 and twelfth <= 0.0:
        return onset
    out = onset.astype(np.float32, copy=True)
    if share > 0.0:
        out[:, 12:] -= share * onset[:, :-12]
    if twelfth > 0.0:  # both from the onsets as they came, not one after the other
        out[:, 19:] -= twelfth * onset[:, :-19]
    return np.clip(out, 0.0, None, out=out)


def decode_notes(
    onset: np.ndarray,
    frame: np.ndarray,
    frame_rate: float,
    cfg: DecodeConfig = DecodeConfig(),
    velocity: np.ndarray | None = None,
) -> Notes:
    """Turn activations [frames, 88] (probabilities in 0..1) into notes.

    Onset events are the first frames of runs where ``onset > onset_threshold``. A note
    lasts from its onset frame until the first later frame where neither ``frame`` nor
    ``onset`` is above threshold, or until the next onset on the same key, whichever
    comes first. Velocity is read from ``velocity`` (0..1) at the onset frame. With
    ``cfg.octave_suppression`` (and ``cfg.twelfth_suppression``) the onsets are first :func:`suppress_octaves`'d.
    """
    n_frames, n_keys = onset.shape
    if frame.shape != onset.shape or n_keys != N_KEYS:
        raise ValueError(f"expected matching [frames, {N_KEYS}] activations, got {onset.shape} and {frame.shape}")
    if n_frames == 0:
        return Notes.empty()
    onset = suppress_octaves(onset, cfg.octave_suppression, cfg.twelfth_suppression)
    width = n_frames + 1  # one padding column per key: runs never cross from one key to the next
    on = np.zeros((n_keys, width), dtype=bool)
    on[:, :n_frames] = (onset > cfg.onset_threshold).T
    active = np.zeros((n_keys, width), dtype=bool)
    active[:, :n_frames] = (frame > cfg.frame_threshold).T | on[:, :n_frames]
    on, active = on.ravel(), active.ravel()

    previous = np.concatenate(([False], on[:-1]))
    starts = np.flatnonzero(on & ~previous)
    if len(starts) == 0:
        return Notes.empty()
    inactive = np.flatnonzero(~active)  # never empty: the padding column
    ends = inactive[np.searchsorted(inactive, starts + 1)]
    next_starts = np.append(starts[1:], np.iinfo(np.int64).max)
    ends = np.minimum(ends, next_starts)
    keep = ends - starts >= max(cfg.min_note_frames, 1)
    starts, ends = starts[keep], ends[keep]

    keys, start_frames = np.divmod(starts, width)
    end_frames = ends - keys * width
    if velocity is not None:
        vel = np.round(velocity[start_frames, keys] * 127.0)
        vel = np.clip(vel, 1, 127).astype(np.int64)
    else:
        vel = np.full(len(starts), 64, dtype=np.int64)
    notes = Notes(start_frames / frame_rate, end_frames / frame_rate, keys + MIN_PITCH, vel)
    return notes.sorted()


def decode_pedal(pedal: np.ndarray, pedal_onset: np.ndarray | None, frame_rate: float,
                 cfg: DecodeConfig = DecodeConfig()) -> np.ndarray:
    """Sustain pedal spans [n, 2] (down, up seconds) from pedal activations [frames] or [frames, 1].

    The pedal is down while ``pedal > pedal_threshold``. A press inside a held stretch (the
    first frame of a run of ``pedal_onset > pedal_onset_threshold``, at least two frames after
    the stretch began) ends the span before it and starts a new one there: a quick re-pedal
    can lift the pedal for less than a frame. Spans shorter than ``min_pedal_frames`` are dropped.
    """
    down = np.asarray(pedal, dtype=np.float32).reshape(-1) > cfg.pedal_threshold
    n = len(down)
    if n == 0 or not down.any():
        return np.zeros((0, 2))
    edges = np.diff(np.concatenate(([0], down.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if pedal_onset is not None:
        on = np.asarray(pedal_onset, dtype=np.float32).reshape(-1) > cfg.pedal_onset_threshold
        presses = np.flatnonzero(on & ~np.concatenate(([False], on[:-1])))
        run = np.searchsorted(starts, presses, side="right") - 1  # the held stretch each press falls in
        inside = (run >= 0) & (presses < ends[np.maximum(run, 0)]) & (presses >= starts[np.maximum(run, 0)] + 2)
        cuts = presses[inside]
        starts, ends = np.sort(np.concatenate([starts, cuts])), np.sort(np.concatenate([ends, cuts]))
    keep = ends - starts >= max(cfg.min_pedal_frames, 1)
    return np.stack([starts[keep], ends[keep]], axis=1) / frame_rate


def key_release_offsets(notes: Notes, pedal: np.ndarray, frame_rate: float, min_seconds: float = 0.0) -> Notes:
    """Estimated key releases of the ``notes`` whose sounding offsets the sustain pedal holds.

    The decoder's notes end where the sound ends (the sounding offsets the metrics score); under
    the pedal that is the pedal's lift, not where the finger left the key. This *estimates* the
    key release by a rule of thumb; the model does not hear it. A note is held by the pedal when
    its sounding offset falls inside a pedal-down span of ``pedal`` ([n, 2] down, up seconds), or
    within 2 frames of a lift that comes after the note's onset (so the pedal was down at some
    time after the onset). Its key-release offset is the earlier of its sounding offset and the
    next onset, among all ``notes``, strictly later than its own onset plus one frame (so the
    notes of one chord do not end each other), but never shorter than ``min_seconds``. Other
    notes are unchanged; onsets, pitches and velocities always are. Times are compared to a
    microsecond. Memory and time are linear in the notes and spans (searches in sorted arrays).
    """
    spans = np.asarray(pedal, dtype=np.float64).reshape(-1, 2)
    if len(notes) == 0 or len(spans) == 0:
        return notes
    eps, two_frames = 1e-6, 2.0 / frame_rate
    on, off = notes.onsets, notes.offsets
    spans = spans[np.argsort(spans[:, 0], kind="stable")]
    reach = np.maximum.accumulate(spans[:, 1])  # the latest lift of the spans pressed so far
    last = np.searchsorted(spans[:, 0], off - eps, side="left") - 1  # the last press before each offset
    inside = (last >= 0) & (off <= reach[np.maximum(last, 0)] + eps)
    lifts = np.sort(spans[:, 1])
    first = np.searchsorted(lifts, np.maximum(on + eps, off - two_frames - eps), side="right")
    near_lift = np.append(lifts, np.inf)[first] <= off + two_frames + eps
    starts = np.sort(on)
    following = np.append(starts, np.inf)[np.searchsorted(starts, on + 1.0 / frame_rate + eps, side="right")]
    key_off = np.maximum(np.minimum(off, following), np.minimum(on + min_seconds, off))
    return Notes(on, np.where(inside | near_lift, key_off, off), notes.pitches, notes.velocities)


def finish_notes(notes: Notes, pedal: np.ndarray | None, frame_rate: float, cfg: DecodeConfig) -> Notes:
    """The notes as written, from the decoder's (sounding) notes, in this order: notes shorter than
    ``cfg.min_note_ms`` are dropped (a duration in seconds, as the note lists hold it); with
    ``cfg.notes == "key"`` offsets become estimated key releases (:func:`key_release_offsets`,
    from the remaining notes of every key, never shorter than :meth:`DecodeConfig.min_note_seconds`);
    then only the keys ``cfg.min_pitch`` to ``cfg.max_pitch`` are kept. ``pedal``: sustain pedal
    spans [n, 2], needed for key releases (ValueError without them)."""
    if cfg.min_note_ms > 0:
        notes = notes.select(notes.offsets - notes.onsets >= cfg.min_note_ms / 1000.0 - 1e-9)
    if cfg.notes == "key":
        if pedal is None:
            raise ValueError("key-release notes (notes='key') need the sustain pedal spans of a model with a pedal head")
        notes = key_release_offsets(notes, pedal, frame_rate, cfg.min_note_seconds(frame_rate))
    return notes.piano_range(cfg.min_pitch, cfg.max_pitch)


class StreamingDecoder:
    """:func:`~transcribe.decode.decode_notes` over activations that arrive a block at a time,
    with the same notes as decoding them whole: a note still sounding at the end of a block is
    carried into the next (as two synthetic frames: its onset, then its state)."""

    def __init__(self, cfg: DecodeConfig, frame_rate: float):
        self.cfg, self.frame_rate = cfg, frame_rate
        # lengths are checked on whole notes; octaves are suppressed on each block before the carried frames join it
        self._loose = replace(cfg, min_note_frames=1, octave_suppression=0.0, twelfth_suppression=0.0)
        self.open_start = np.full(N_KEYS, -1, dtype=np.int64)
        self.open_velocity = np.zeros(N_KEYS, dtype=np.int64)
        self.prev_on = np.zeros(N_KEYS, dtype=bool)
        self.frames = 0  # frames decoded so far
        self._done: list[tuple[np.ndarray, ...]] = []  # (start, end, key, velocity) frame units

    def feed(self, onset: np.ndarray, frame: np.ndarray, velocity: np.ndarray) -> None:
        """The next ``len(onset)`` frames of activations [frames, 88]."""
        n = len(onset)
        if n == 0:
            return
        onset = suppress_octaves(onset, self.cfg.octave_suppression, self.cfg.twelfth_suppression)
        is_open = self.open_start >= 0
        pre = np.full((2, N_KEYS), -np.inf, dtype=np.float32)
        pre_on, pre_frame, pre_vel = pre.copy(), pre.copy(), np.zeros((2, N_KEYS), np.float32)
        pre_on[0, is_open] = pre_frame[:, is_open] = np.inf
        pre_on[1, self.prev_on] = np.inf
        pre_vel[0] = self.open_velocity / 127.0
        notes = decode_notes(np.concatenate([pre_on, onset]), np.concatenate([pre_frame, frame]), 1.0,
                             self._loose, np.concatenate([pre_vel, velocity]))
        starts = notes.onsets.astype(np.int64) - 2 + self.frames
        ends = notes.offsets.astype(np.int64) - 2 + self.frames
        keys = notes.pitches.astype(np.int64) - MIN_PITCH
        carried = notes.onsets == 0
        starts[carried] = self.open_start[keys[carried]]
        still_open = notes.offsets == n + 2
        self.open_start[:] = -1
        self.open_start[keys[still_open]] = starts[still_open]
        self.open_velocity[keys[still_open]] = notes.velocities[still_open]
        self.prev_on = onset[-1] > self.cfg.onset_threshold
        done = ~still_open
        self._done.append((starts[done], ends[done], keys[done], notes.velocities[done]))
        self.frames += n

    def finish(self) -> Notes:
        """All notes: those still sounding end with the recording."""
        keys = np.flatnonzero(self.open_start >= 0)
        parts = self._done + [(self.open_start[keys], np.full(len(keys), self.frames), keys,
                               self.open_velocity[keys])]
        start, end, key, vel = (np.concatenate([p[i] for p in parts]) for i in range(4))
        keep = end - start >= max(self.cfg.min_note_frames, 1)
        return Notes(start[keep] / self.frame_rate, end[keep] / self.frame_rate, key[keep] + MIN_PITCH,
                     vel[keep].astype(np.int64)).sorted()
