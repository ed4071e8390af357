"""Render the demo clip shipped in the package (``transcribe --demo`` transcribes it).

The score below is the first 16 bars of the Minuet in G major, BWV Anh. 114 (Christian Petzold,
1677-1733; from the 1725 Notebook for Anna Magdalena Bach): the melody as written, the bass
simplified (public domain; the note list is written here, not taken from any edition). It is
played with some dynamics (a mezzo-forte phrase, its piano echo growing to a forte cadence) and
sustain pedal on the bars of quarter notes, humanised with a fixed seed, and rendered with the
project's own renderer (:func:`transcribe.render.run.render_piece`: FluidSynth, per-key latency
compensation, 16 kHz mono FLAC) through the Splendid Grand Piano preset (public-domain AKAI
Steinway samples; ``scripts/fetch_pianos.py`` builds its SoundFont). Settings: ``conf/demo.yaml``
(which composes ``conf/render.yaml``); Hydra-style overrides on the command line::

    python scripts/make_demo.py paths.pianos=/work/main/data/pianos

Writes ``transcribe/demo/demo.flac``, its labels ``demo.tsv`` and ``demo.pedal.tsv`` (the notes
as rendered, MAPS format, and the pedal), and ``demo.json`` (what ``transcribe --demo`` says about
the clip). Running it again with the same settings, FluidSynth and SoundFont gives the same files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transcribe.notefiles import apply_sustain  # noqa: E402
from transcribe.notes import Notes  # noqa: E402
from transcribe.render.prepare import Piece  # noqa: E402

# One bar (3/4) per entry: notes as NAME:BEATS, a chord as NAME+NAME:BEATS.
RIGHT = [
    "D5:1 G4:.5 A4:.5 B4:.5 C5:.5", "D5:1 G4:1 G4:1", "E5:1 C5:.5 D5:.5 E5:.5 F#5:.5", "G5:1 G4:1 G4:1",
    "C5:1 D5:.5 C5:.5 B4:.5 A4:.5", "B4:1 C5:.5 B4:.5 A4:.5 G4:.5", "F#4:1 G4:.5 A4:.5 B4:.5 G4:.5", "A4:3",
    "D5:1 G4:.5 A4:.5 B4:.5 C5:.5", "D5:1 G4:1 G4:1", "E5:1 C5:.5 D5:.5 E5:.5 F#5:.5", "G5:1 G4:1 G4:1",
    "C5:1 D5:.5 C5:.5 B4:.5 A4:.5", "B4:1 C5:.5 B4:.5 A4:.5 G4:.5", "A4:1 B4:.5 A4:.5 G4:.5 F#4:.5", "G4:3",
]
LEFT = [
    "G3+B3+D4:2 A3:1", "B3:3", "C4:3", "B3:3", "A3:3", "G3:3", "D4:1 B3:1 G3:1", "D4:1 D3:1 C4:1",
    "G3:2 A3:1", "B3:3", "C4:3", "B3:3", "A3:3", "G3:3", "C4:1 D4:1 D3:1", "G2+G3:3",
]
# Velocity of each bar's melody: mf with a swell to bar 7, the echo p growing to a forte cadence.
DYNAMICS = [70, 72, 76, 74, 78, 82, 84, 72, 52, 54, 60, 64, 72, 80, 86, 80]
BASS_BELOW_MELODY = 16       # the accompaniment this much softer
DOWNBEAT_ACCENT = 6
PEDALLED_BARS = (1, 3, 7, 9, 11, 15)   # from 0: the bars of quarter notes and the cadences
BEATS_PER_BAR = 3
NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def midi_pitch(name: str) -> int:
    """``"F#5"`` -> 78."""
    step, rest = name[0], name[1:]
    alter = rest.count("#") - rest.count("b")
    return 12 * (int(rest.strip("#b")) + 1) + NAMES[step] + alter


def parse_bar(text: str) -> list[tuple[float, float, list[int]]]:
    """A bar's notes: (beat within the bar, length in beats, pitches)."""
    out, beat = [], 0.0
    for token in text.split():
        names, length = token.split(":")
        out.append((beat, float(length), [midi_pitch(n) for n in names.split("+")]))
        beat += float(length)
    if abs(beat - BEATS_PER_BAR) > 1e-9:
        raise ValueError(f"bar {text!r} has {beat} beats, not {BEATS_PER_BAR}")
    return out


def beat_time(beat: float, seconds_per_beat: float, total_beats: float, ritardando: float) -> float:
    """Seconds at ``beat`` (from 0); the last bar is ``1 + ritardando`` times slower."""
    last = total_beats - BEATS_PER_BAR
    slow = max(beat - last, 0.0)
    return (beat - slow) * seconds_per_beat + slow * seconds_per_beat * (1.0 + ritardando)


def demo_piece(demo) -> Piece:
    """The demo's notes (pedal already applied to the offsets, as the renderer expects) and pedal."""
    rng = np.random.default_rng(int(demo.seed))
    spb = 60.0 / float(demo.tempo_bpm)
    total = BEATS_PER_BAR * len(RIGHT)

    def t(beat: float) -> float:
        return beat_time(beat, spb, total, float(demo.ritardando))

    on, off, pitch, vel = [], [], [], []
    for bar, (rh, lh, loud) in enumerate(zip(RIGHT, LEFT, DYNAMICS)):
        start = bar * BEATS_PER_BAR
        for hand, text in ((0, rh), (1, lh)):
            for beat, length, pitches in parse_bar(text):
                b = start + beat
                jitter = float(rng.normal(0.0, float(demo.onset_jitter_s)))
                for p in pitches:
                    v = loud - BASS_BELOW_MELODY * hand + (DOWNBEAT_ACCENT if beat == 0 else 0)
                    v += rng.normal(0.0, float(demo.velocity_sd))
                    on.append(max(t(b) + jitter + float(rng.normal(0.0, 0.003)), 0.0))
                    off.append(t(b) + (t(b + length) - t(b)) * float(demo.legato))
                    pitch.append(p)
                    vel.append(int(np.clip(round(v), 1, 127)))
    notes = Notes(np.array(on), np.array(off), np.array(pitch), np.array(vel)).sorted()
    pedal = np.array([(t(bar * BEATS_PER_BAR) + 0.08, t((bar + 1) * BEATS_PER_BAR) - 0.04)
                      for bar in PEDALLED_BARS])
    return Piece(apply_sustain(notes, pedal), pedal)


def main(overrides: list[str]) -> None:
    """Render the clip and write its labels and description (see the module docstring)."""
    from transcribe.config import compose
    from transcribe.render.run import render_piece
    from transcribe.render.synth import pianos_from_cfg

    cfg = compose("demo", overrides)
    demo = cfg.demo
    piano = pianos_from_cfg(cfg)[demo.piano]
    out = Path(demo.output)
    out = out if out.is_absolute() else REPO / out
    out.parent.mkdir(parents=True, exist_ok=True)
    labels, seconds = render_piece(demo_piece(demo), piano, cfg, out)
    about = {
        "piece": str(demo.piece),
        "arrangement": "melody as written, bass simplified; note list written for this project "
                       "(scripts/make_demo.py), with dynamics and sustain pedal",
        "piano": "Splendid Grand Piano (AKAI Steinway samples), rendered with FluidSynth",
        "licence": "public domain (the music, the note list and the piano samples)",
        "seconds": round(seconds, 2), "notes": len(labels), "sample_rate": int(cfg.sample_rate),
        "tempo_bpm": float(demo.tempo_bpm),
    }
    out.with_suffix(".json").write_text(json.dumps(about, indent=1) + "\n")
    print(f"{out}: {seconds:.1f} s, {len(labels)} notes, {out.stat().st_size / 1000:.0f} kB")


if __name__ == "__main__":
    main(sys.argv[1:])
