"""Attack latency of a piano preset: how long after a note-on its sample becomes audible,
measured per key and velocity, so the renderer can send note-ons early and the audible onset
lands on the label."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..notes import MAX_PITCH, MIN_PITCH, N_KEYS
from .synth import TEMPO_US, TICKS_PER_BEAT, Piano, synthesize


def detect_onset(y: np.ndarray, sr: int, threshold: float = 0.05) -> float | None:
    """Seconds from the start of ``y`` to the first sample whose magnitude reaches ``threshold``
    times the peak magnitude of ``y``; None for silence."""
    mag = np.abs(np.asarray(y, dtype=np.float64))
    peak = mag.max() if mag.size else 0.0
    if peak <= 0:
        return None
    return float(np.argmax(mag >= threshold * peak)) / sr


@dataclass(frozen=True)
class Latency:
    """Attack latency (seconds) of a piano: ``seconds[i, key]`` at ``velocities[i]``, for the 88 keys."""

    velocities: np.ndarray
    seconds: np.ndarray

    def __call__(self, pitches: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        """Latency of each note, interpolated linearly over velocity."""
        keys = np.asarray(pitches, dtype=np.int64) - MIN_PITCH
        v = np.asarray(velocities, dtype=np.float64)
        out = np.empty(len(keys))
        for i, (k, vel) in enumerate(zip(keys, v)):
            out[i] = np.interp(vel, self.velocities, self.seconds[:, k])
        return out


def measure_latency(piano: Piano, synth, latency_cfg) -> Latency:
    """Attack latency of ``piano``: every one of the 88 keys is played alone (after an
    all-sound-off) at each of ``latency_cfg.velocities``, at times that fall at varying
    positions of FluidSynth's processing blocks; its latency is the time from note-on to
    :func:`detect_onset` (``latency_cfg.threshold``) less ``latency_cfg.target_s``."""
    from .. import midifile
    from ..midifile import CONTROL_CHANGE, PROGRAM_CHANGE

    vels = sorted(int(v) for v in (piano.latency_velocities or latency_cfg.velocities))
    spacing, length = 0.3, 0.15
    with tempfile.TemporaryDirectory(prefix="transcribe-latency-") as tmp:
        midi = Path(tmp) / "latency.mid"
        head = [midifile.tempo(TEMPO_US), midifile.channel(CONTROL_CHANGE, 0, piano.bank),
                midifile.channel(CONTROL_CHANGE, 32, 0), midifile.channel(PROGRAM_CHANGE, piano.program)]
        ticks, keys, velocities, t = [], [], [], 0.5
        for v in vels:
            for key in range(MIN_PITCH, MAX_PITCH + 1):
                ticks.append(round((t + 1e-4 * (len(ticks) % 29)) * TICKS_PER_BEAT))  # vary the position in the block
                keys.append(key)
                velocities.append(v)
                t += spacing
        on = np.array(ticks, np.int64)
        events = (midifile.control_events(on - 500, 120, np.zeros(len(on), np.int64))  # all sound off before each
                  + midifile.note_events(on, on + round(length * TICKS_PER_BEAT), np.array(keys), np.array(velocities),
                                         note_off=True))
        track = midifile.track([(0, m) for m in head], events, end_delta=TICKS_PER_BEAT)
        midi.write_bytes(midifile.midi_file([track], TICKS_PER_BEAT))
        onsets = list(on / TICKS_PER_BEAT)
        y, sr = synthesize(midi, piano, synth)
    lat = np.full(len(onsets), np.nan)
    for i, on in enumerate(onsets):
        a, b = int(round((on - 0.04) * sr)), int(round((on + spacing - 0.06) * sr))
        found = detect_onset(y[a:b], sr, latency_cfg.threshold)
        if found is not None:
            lat[i] = a / sr + found - on
    lat = lat.reshape(len(vels), N_KEYS)
    if np.isnan(lat).any():
        silent = sorted(set((np.argwhere(np.isnan(lat))[:, 1] + MIN_PITCH).tolist()))
        raise RuntimeError(f"piano {piano.name!r}: keys {silent} are silent")
    return Latency(np.array(vels, dtype=np.float64), np.maximum(lat - float(latency_cfg.target_s), 0.0))


_LATENCY: dict[tuple, Latency] = {}


def piano_latency(piano: Piano, synth, latency_cfg) -> Latency:
    """:func:`measure_latency`, measured once per process for each piano and synth setting."""
    st = Path(piano.soundfont).stat()
    key = (piano, st.st_size, st.st_mtime, int(synth.sample_rate), float(synth.gain), float(latency_cfg.threshold),
           float(latency_cfg.target_s), tuple(latency_cfg.velocities))
    if key not in _LATENCY:
        _LATENCY[key] = measure_latency(piano, synth, latency_cfg)
    return _LATENCY[key]
