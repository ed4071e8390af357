"""FluidSynth: piano presets of SoundFonts, the MIDI file that plays a note list, and the
synthesiser run that turns it into audio (faster than real time, no audio device)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..fluidsynth import fluidsynth_binary, run_fluidsynth
from ..notes import Notes

if TYPE_CHECKING:
    from ..midifile import Events

# A note's attack latency in seconds from (pitches, velocities): render/latency.py's Latency, which
# imports this module (synth does not import latency: no circle).
LatencyFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

TICKS_PER_BEAT = 10000  # with a tempo of one beat per second: 0.1 ms ticks
TEMPO_US = 1_000_000


@dataclass(frozen=True)
class Piano:
    """A piano preset of a SoundFont: ``bank``/``program`` as FluidSynth lists them.

    Sampled pianos converted from SFZ (:mod:`transcribe.render.sfz`) may come with a second
    SoundFont of release samples (the damper's sound when a key is let go), which an SF2 preset
    cannot trigger itself: ``release_soundfont`` (its preset ``release_program`` of bank 0) is
    then played on channel 1 at every note-off, at the note's velocity times ``release_velocity``,
    less ``release_decay_db_per_s`` for every second the note was held (SFZ ``rt_decay``).
    ``latency_velocities``: the velocities at which the attack latency is measured (default
    ``latency.velocities``); a sampled piano's velocity-layer edges, so interpolation never
    crosses a layer boundary (:func:`transcribe.render.sfz.layer_velocities`).
    """

    name: str
    soundfont: str
    bank: int = 0
    program: int = 0
    release_soundfont: str | None = None
    release_program: int = 1
    release_velocity: float = 0.7
    release_decay_db_per_s: float = 0.0
    latency_velocities: tuple[int, ...] | None = None


def pianos_from_cfg(cfg) -> dict[str, Piano]:
    """All pianos of ``cfg.pianos`` (``{name: {soundfont, bank, program[, release_soundfont,
    release_program, release_velocity, release_decay_db_per_s, latency_velocities]}}``), by name."""
    def piano(name: str, p) -> Piano:
        lat = p.get("latency_velocities")
        return Piano(name, str(p.soundfont), int(p.get("bank", 0)), int(p.get("program", 0)),
                     str(p.release_soundfont) if p.get("release_soundfont") else None,
                     int(p.get("release_program", 1)), float(p.get("release_velocity", 0.7)),
                     float(p.get("release_decay_db_per_s", 0.0)), tuple(int(v) for v in lat) if lat else None)

    return {name: piano(name, p) for name, p in cfg.pianos.items()}


def write_render_midi(notes: Notes, piano: Piano, path: str | Path, latency: LatencyFn | None = None,
                      tail: float = 1.0) -> None:
    """A one-track MIDI file that plays ``notes`` (from :func:`prepare_notes`) with ``piano``'s
    preset on channel 0: bank select, program change, then note-ons ``latency(pitch, velocity)``
    seconds before each onset and note-offs at the offsets (never after the key's next note-on;
    at equal ticks a key's note-off goes first: :mod:`transcribe.midifile`'s rule). No pedal
    events: offsets already hold the pedal. The file ends ``tail`` seconds after the last offset
    (FluidSynth renders until then)."""
    from .. import midifile
    from ..midifile import CONTROL_CHANGE, PROGRAM_CHANGE

    lat = np.zeros(len(notes)) if latency is None else latency(notes.pitches, notes.velocities)
    on_t = np.maximum(np.round((notes.onsets - lat) * TICKS_PER_BEAT).astype(np.int64), 0)
    off_t = np.round(notes.offsets * TICKS_PER_BEAT).astype(np.int64)
    for p in np.unique(notes.pitches):  # a note-off must not silence the key's next note
        idx = np.flatnonzero(notes.pitches == p)
        idx = idx[np.argsort(on_t[idx], kind="stable")]
        off_t[idx[:-1]] = np.minimum(off_t[idx[:-1]], on_t[idx[1:]])
    off_t = np.maximum(off_t, on_t + 1)
    events = midifile.note_events(on_t, off_t, notes.pitches, notes.velocities, note_off=True)
    head = [midifile.tempo(TEMPO_US), midifile.channel(CONTROL_CHANGE, 0, piano.bank),
            midifile.channel(CONTROL_CHANGE, 32, 0), midifile.channel(PROGRAM_CHANGE, piano.program)]
    if piano.release_soundfont:
        head += [midifile.channel(CONTROL_CHANGE | 1, 0, 0), midifile.channel(PROGRAM_CHANGE | 1, piano.release_program)]
        held = (off_t - on_t) / TICKS_PER_BEAT
        # FluidSynth's default velocity curve: amplitude ~ (velocity / 127)^2, i.e. 40 log10 dB
        scale = piano.release_velocity * 10.0 ** (-piano.release_decay_db_per_s * held / 40.0)
        events += release_events(off_t, notes.pitches, notes.velocities, scale)
    end = int(round((notes.end + tail) * TICKS_PER_BEAT)) if len(notes) else int(tail * TICKS_PER_BEAT)
    track = midifile.track([(0, m) for m in head], events, end_tick=end)
    Path(path).write_bytes(midifile.midi_file([track], TICKS_PER_BEAT))


def release_events(off_ticks: np.ndarray, pitches: np.ndarray, velocities: np.ndarray, scale: np.ndarray,
                   length_s: float = 1.0) -> "Events":
    """Channel-1 note-ons of release samples at each note-off (velocity times ``scale``, per
    note) and their note-offs ``length_s`` later (or at the key's next release)."""
    from ..midifile import note_events

    ons, stops, keys, vels = [], [], [], []
    for p in np.unique(pitches):
        idx = np.flatnonzero(pitches == p)
        idx = idx[np.argsort(off_ticks[idx], kind="stable")]
        ends = np.append(off_ticks[idx][1:], np.iinfo(np.int64).max)
        for i, end in zip(idx, ends):
            stop = int(min(off_ticks[i] + length_s * TICKS_PER_BEAT, end))
            ons.append(int(off_ticks[i]))
            stops.append(max(stop, int(off_ticks[i]) + 1))
            keys.append(int(p))
            vels.append(int(np.clip(round(velocities[i] * scale[i]), 1, 127)))
    return note_events(np.array(ons, np.int64), np.array(stops, np.int64), np.array(keys, np.int64),
                       np.array(vels, np.int64), channel=1, note_off=True)


def synthesize(midi_path: str | Path, piano: Piano, synth) -> tuple[np.ndarray, int]:
    """Render a MIDI file with the FluidSynth command (:func:`run_fluidsynth`): mono float32 audio
    at ``synth.sample_rate``. ``synth`` holds binary, sample_rate, gain, polyphony, reverb, chorus,
    timeout_s (``conf/render.yaml``)."""
    import soundfile as sf

    fonts = [piano.soundfont] + ([piano.release_soundfont] if piano.release_soundfont else [])
    if fluidsynth_binary(synth.binary) is not None:  # without FluidSynth, run_fluidsynth says that first
        for font in fonts:
            if not Path(font).is_file():
                raise FileNotFoundError(f"{font}: SoundFont of piano {piano.name!r} not found (scripts/fetch_pianos.py "
                                        "makes the sampled pianos)")
    with tempfile.TemporaryDirectory(prefix="transcribe-render-") as tmp:
        wav = Path(tmp) / "out.wav"
        run_fluidsynth(midi_path, fonts, synth, wav)
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    return y.mean(axis=1), int(sr)
