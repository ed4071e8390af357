"""Generated note material for rendering: what real pieces rarely contain. Every piece is a
sequence of segments, each one of

- ``sweep``: all 88 keys in one run (up, down or shuffled), so every key is heard;
- ``chords``: dense chords (3-10 notes, clusters or spread over both hands);
- ``repeated``: fast repeated notes, trills and octave tremolos (6-16 strikes/s per key);
- ``extremes``: very soft (velocity 1-25) and very loud (105-127) notes and chords;
- ``random``: notes anywhere on the keyboard at random times, lengths and velocities,
  sometimes under the sustain pedal.

Everything is drawn from a :class:`numpy.random.Generator` seeded by the caller, so a seed
always gives the same piece. The weights and lengths come from ``conf/render.yaml``
(``sources.generated``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..notefiles import apply_sustain
from ..notes import MAX_PITCH, MIN_PITCH, Notes
from .prepare import Piece

KEYS = np.arange(MIN_PITCH, MAX_PITCH + 1)


def _notes(rows: list[tuple[float, float, int, int]]) -> Notes:
    if not rows:
        return Notes.empty()
    a = np.array(rows, dtype=np.float64)
    return Notes(a[:, 0], a[:, 1], a[:, 2], np.clip(np.round(a[:, 3]), 1, 127))


def concat(parts: list[Notes]) -> Notes:
    """One note list of all ``parts``, sorted."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Notes.empty()
    return Notes(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("onsets", "offsets", "pitches", "velocities"))).sorted()


def sweep(rng: np.random.Generator, t0: float, seconds: float) -> Notes:
    """All 88 keys once, ascending, descending or shuffled, evenly over ``seconds`` (at least
    40 ms apart), each overlapping the next by a random legato factor."""
    order = KEYS.copy()
    mode = rng.integers(3)
    if mode == 1:
        order = order[::-1]
    elif mode == 2:
        rng.shuffle(order)
    step = max(seconds / len(order), 0.04)
    legato = rng.uniform(0.5, 2.5)
    base = rng.uniform(25, 110)
    return _notes([(t0 + i * step, t0 + i * step + legato * step + 0.03, int(p), base + rng.normal(0, 8))
                   for i, p in enumerate(order)])


def chords(rng: np.random.Generator, t0: float, seconds: float) -> Notes:
    """Dense chords every 0.25-1 s: clusters within an octave or chords spread over two hands."""
    rows, t = [], t0
    while t < t0 + seconds:
        size = int(rng.integers(3, 11))
        if rng.random() < 0.4:  # a cluster
            low = int(rng.integers(MIN_PITCH, MAX_PITCH - 12))
            keys = rng.choice(np.arange(low, low + 13), size=min(size, 13), replace=False)
        else:  # both hands: a low and a high group
            left = int(rng.integers(MIN_PITCH, 60))
            right = int(rng.integers(55, MAX_PITCH - 14))
            pool = np.unique(np.concatenate([np.arange(left, left + 13), np.arange(right, right + 15)]))
            keys = rng.choice(pool, size=size, replace=False)
        length = rng.uniform(0.15, 1.5)
        vel = rng.uniform(20, 120)
        spread = rng.uniform(0, 0.015)
        for k in keys:
            on = t + abs(rng.normal(0, spread))
            rows.append((on, on + length * rng.uniform(0.8, 1.0), int(k), vel + rng.normal(0, 6)))
        t += rng.uniform(0.25, 1.0)
    return _notes(rows)


def repeated(rng: np.random.Generator, t0: float, seconds: float) -> Notes:
    """Fast repeated notes on one key, a trill between two neighbouring keys, or an octave
    tremolo, at 6-16 strikes per second per key, each held 40-90 % of the gap."""
    rate = rng.uniform(6, 16)
    key = int(rng.integers(MIN_PITCH, MAX_PITCH - 12))
    mode = rng.integers(3)
    keys = [key] if mode == 0 else [key, key + int(rng.integers(1, 3))] if mode == 1 else [key, key + 12]
    gap = 1.0 / rate  # between strikes of the same key
    step = gap / len(keys)
    hold = rng.uniform(0.4, 0.9)
    vel = rng.uniform(30, 115)
    n = int(seconds / step)
    return _notes([(t0 + i * step + rng.normal(0, 0.004) * (i > 0), t0 + i * step + hold * gap,
                    keys[i % len(keys)], vel + rng.normal(0, 10)) for i in range(n)])


def extremes(rng: np.random.Generator, t0: float, seconds: float) -> Notes:
    """Very soft (1-25) and very loud (105-127) single notes and chords, anywhere."""
    rows, t = [], t0
    while t < t0 + seconds:
        loud = rng.random() < 0.5
        vel = rng.uniform(105, 127) if loud else rng.uniform(1, 25)
        keys = rng.choice(KEYS, size=int(rng.integers(1, 5)), replace=False)
        length = rng.uniform(0.1, 0.5) if loud and rng.random() < 0.5 else rng.uniform(0.3, 2.0)
        for k in keys:
            rows.append((t, t + length, int(k), vel))
        t += rng.uniform(0.2, 0.8)
    return _notes(rows)


def random_notes(rng: np.random.Generator, t0: float, seconds: float) -> Notes:
    """Notes at random times (4-12 per second) on any key, lengths log-normal around 0.3 s,
    velocities 10-127; half of the time under a sustain pedal changed every 0.5-2 s."""
    return random_piece(rng, t0, seconds)[0]


def random_piece(rng: np.random.Generator, t0: float, seconds: float) -> tuple[Notes, np.ndarray]:
    """(:func:`random_notes`, the pedal spans [n, 2] applied to their offsets; zero when unpedalled)."""
    n = int(rng.uniform(4, 12) * seconds)
    on = np.sort(rng.uniform(t0, t0 + seconds, n))
    off = on + np.exp(rng.normal(np.log(0.3), 0.7, n))
    notes = Notes(on, off, rng.choice(KEYS, n), rng.integers(10, 128, n))
    pedal = np.zeros((0, 2))
    if rng.random() < 0.5:
        pedal = pedal_spans(rng, t0, t0 + seconds, rng.uniform(0.5, 2.0))
        notes = apply_sustain(notes, pedal)
    return notes, pedal


def pedal_spans(rng: np.random.Generator, start: float, stop: float, period: float) -> np.ndarray:
    """Sustain pedal [n, 2] (down, up): changed every ``period`` seconds (lifted 20-60 ms
    before, pressed 30-80 ms after each change point, as players do)."""
    changes = np.arange(start, stop + period, period)
    return np.array([(a + rng.uniform(0.03, 0.08), b - rng.uniform(0.02, 0.06))
                     for a, b in zip(changes[:-1], changes[1:])]).reshape(-1, 2)


SEGMENTS: dict[str, Callable[[np.random.Generator, float, float], Notes]] = {
    "sweep": sweep, "chords": chords, "repeated": repeated, "extremes": extremes, "random": random_notes}


def generate_piece(seed: int, cfg) -> Notes:
    """A piece of about ``cfg.seconds`` made of segments drawn with ``cfg.weights``, each
    ``cfg.segment_seconds`` (range) long, 0.1-0.5 s apart; the same ``seed`` gives the same piece."""
    return generate(seed, cfg).notes


def generate(seed: int, cfg) -> Piece:
    """:func:`generate_piece` with its sustain pedal: the spans of the pedalled ``random``
    segments, each cut where the next segment starts (its notes are not pedalled)."""
    rng = np.random.default_rng(seed)
    names = list(cfg.weights)
    p = np.array([float(cfg.weights[n]) for n in names])
    lo, hi = (float(x) for x in cfg.segment_seconds)
    parts, pedals, t = [], [], 0.3
    while t < float(cfg.seconds):
        name = names[int(rng.choice(len(names), p=p / p.sum()))]
        if name == "random":
            part, pedal = random_piece(rng, t, rng.uniform(lo, hi))
        else:
            part, pedal = SEGMENTS[name](rng, t, rng.uniform(lo, hi)), np.zeros((0, 2))
        parts.append(part)
        t = max(t, part.end) + rng.uniform(0.1, 0.5)
        pedals.append(np.minimum(pedal, t))  # the next segment starts at t
    pedal = np.concatenate(pedals) if pedals else np.zeros((0, 2))
    return Piece(concat(parts), pedal[pedal[:, 1] > pedal[:, 0]])
