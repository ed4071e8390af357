"""Synthetic training pieces for the beat model (`scripts/train_beat_model.py --patterns N`): simple
accompaniment textures under a melody, played evenly, annotated at the beat a score writes.

The beat model learned beats from ASAP's performances only and hears the half bar or the bar of
evenly timed music with a repeating accompaniment (a march's bass and chords, a minuet's bass on
the downbeat; docs/SCORE.md, round 16). These pieces draw such textures at random (the metre, the
tempo, the key and its chords, the accompaniment pattern, the melody's rhythm, velocities and
accents, a little timing noise), so that a run can find out whether the annotated level of such
textures can be learned at all. Each piece is its notes (sorted as the model reads them), its
annotations as ASAP's would be, and each note's staff and written value (exact), from which
``train_beat_model.patterns_side`` makes the labels.
"""

from __future__ import annotations

import numpy as np

# metre: (name, beats a bar, eighths a beat: 2 simple, 3 compound), drawn with these weights
METRES = (("2/4", 2, 2), ("3/4", 3, 2), ("4/4", 4, 2), ("6/8", 2, 3))
METRE_P = (0.15, 0.3, 0.35, 0.2)
PATTERNS = ("bass-chords", "alberti", "block", "broken")
MAJOR = (0, 2, 4, 5, 7, 9, 11)
PROGRESSION = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (9, 12, 16), (2, 5, 9))  # I IV V vi ii above the tonic


def _sharps(tonic: int) -> int:
    """The major key signature of a tonic pitch class (flats negative, at most 6 either way)."""
    s = (tonic * 7) % 12
    return s - 12 if s > 6 else s


def synthetic_piece(rng: np.random.Generator, index: int = 0) -> dict:
    """One random piece: ``notes``, ``ann`` (an :class:`~transcribe.data.asap.Annotation`), and per
    note ``upper`` (1: the upper staff) and ``value`` (:func:`~transcribe.beatmodel.value_class`)."""
    from transcribe.beatmodel import sort_notes, value_class
    from transcribe.data.asap import Annotation
    from transcribe.notes import Notes

    name, per_bar, sub = METRES[rng.choice(len(METRES), p=METRE_P)]
    # the beat's length: a quarter at 60-160 a minute, a dotted quarter at 40-100
    beat = 60.0 / (rng.uniform(40, 100) if sub == 3 else rng.uniform(60, 160))
    bars = int(rng.integers(12, 25))
    tonic = int(rng.integers(0, 12))
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    jitter = rng.uniform(0.0, 0.02)
    accent = rng.uniform(0, 25)  # how much louder a bar's first beat is
    rows = []  # onset and written value in beats, the share of the value played, pitch, velocity, upper staff

    def add(pos: float, value: float, pitch: int, vel: float, upper: bool, played: float = 0.9) -> None:
        rows.append((pos, value, played, pitch, float(np.clip(vel + rng.normal(0, 5), 15, 120)), upper))

    bass_root = 36 + tonic
    low, mid = rng.uniform(40, 70), rng.uniform(30, 60)
    for bar in range(bars):
        chord = PROGRESSION[0 if bar % 4 == 0 else rng.integers(len(PROGRESSION))]
        start = bar * per_bar
        root = bass_root + chord[0] - (12 if bass_root + chord[0] > 50 else 0)
        tones = [48 + (tonic + c) % 12 + (12 if (tonic + c) % 12 < 4 else 0) for c in chord]
        for b in range(per_bar):
            t = start + b
            loud = accent if b == 0 else 0.0
            if pattern == "bass-chords":  # the bass on the bar's first beat (in 4/4 sometimes its third too)
                if b == 0 or (per_bar == 4 and b == 2 and rng.random() < 0.5):
                    add(t, 1.0 if b else float(per_bar), root, low + loud + 10, False, 0.95)
                else:
                    for p in tones[1:]:
                        add(t, 1.0, p, mid, False, 0.8)
            elif pattern == "alberti":  # low, high, middle, high in eighths over two beats (compound: low, high, middle)
                order = ((0, 2), (1, 2))[b % 2] if sub == 2 else (0, 2, 1)
                for j, k in enumerate(order):
                    add(t + j / sub, 1.0 / sub, tones[k], mid + (loud if j == 0 else 0), False)
            elif pattern == "block":
                for p in (root, *tones[1:]):
                    add(t, 1.0, p, mid + loud, False)
            else:  # broken: the chord rising in eighths from the bass
                for j in range(sub):
                    add(t + j / sub, 1.0 / sub, (root, *tones)[j % 4], mid + (loud + 8 if j == 0 else 0), False)
        # the melody: note values that fill the bar, on the scale, stepping
        pos, end = float(start), float(start + per_bar)
        pitch = 67 + tonic
        while pos < end - 1e-6:
            choices = (1 / sub, 2 / sub, 1.0, 2.0) if sub == 2 else (1 / 3, 2 / 3, 1.0)
            value = min(float(rng.choice(choices)), end - pos)
            pitch = int(np.clip(pitch + rng.integers(-2, 3) * 2, 62, 86))
            pitch -= 1 if (pitch - tonic) % 12 not in MAJOR else 0
            on_beat = abs(pos - round(pos)) < 1e-6
            add(pos, value, pitch, low + 10 + (loud if on_beat else 0), True, rng.uniform(0.6, 0.95))
            pos += value
    a = np.array([r[:5] for r in rows], dtype=np.float64)
    upper = np.array([r[5] for r in rows], dtype=bool)
    t0 = 0.5
    onsets = t0 + a[:, 0] * beat + rng.normal(0, jitter, len(a))
    offsets = onsets + np.maximum(a[:, 1] * a[:, 2] * beat, 0.05)
    order = np.lexsort((a[:, 3], onsets))  # sort_notes' order
    notes = sort_notes(Notes(onsets, offsets, a[:, 3].astype(int), np.round(a[:, 4]).astype(int)))
    beats = t0 + beat * np.arange(bars * per_bar + 1)
    ann = Annotation(beats, beats[::per_bar], [(float(beats[0]), name)], [(float(beats[0]), _sharps(tonic))])
    return {"file": f"synthetic:{index}:{pattern}:{name}", "notes": notes, "ann": ann,
            "upper": upper[order].astype(np.int64), "value": value_class(a[:, 1])[order]}


def synthetic_pieces(n: int, seed: int = 0) -> list[dict]:
    """``n`` pieces from one seeded generator."""
    rng = np.random.default_rng(seed)
    return [synthetic_piece(rng, i) for i in range(n)]
