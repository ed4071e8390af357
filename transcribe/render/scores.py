"""Scores as played: pieces of music21's bundled corpus turned into note lists with human timing,
dynamics, articulation and pedalling (:func:`humanize`), all drawn from a seeded generator.

music21 is needed only here (``pip install music21``); :func:`humanize` works on any
:class:`~transcribe.notes.Notes`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..notefiles import apply_sustain
from ..notes import Notes
from .prepare import Piece


def _smooth(rng: np.random.Generator, times: np.ndarray, sd: float, knot_s: float = 2.0) -> np.ndarray:
    """A slowly varying random curve (s.d. ``sd``) evaluated at ``times``: Gaussian values at
    knots every ``knot_s`` seconds, linearly interpolated."""
    if len(times) == 0 or sd <= 0:
        return np.zeros(len(times))
    knots = np.arange(0.0, times.max() + 2 * knot_s, knot_s)
    return np.interp(times, knots, rng.normal(0.0, sd, len(knots)))


def humanize(notes: Notes, rng: np.random.Generator, h, beat_s: float | None = None) -> Notes:
    """Notes as a pianist might play the score ``notes``: :func:`humanize_piece`'s notes."""
    return humanize_piece(notes, rng, h, beat_s)[0]


def humanize_piece(notes: Notes, rng: np.random.Generator, h, beat_s: float | None = None
                   ) -> tuple[Notes, np.ndarray]:
    """(notes as a pianist might play the score ``notes`` (onsets/offsets in score seconds), the
    sustain pedal spans [n, 2] they were played with; zero spans when unpedalled).

    ``h`` (``sources.music21.humanize`` in ``conf/render.yaml``) sets: ``onset_jitter_s``
    (per-chord timing noise), ``chord_spread_s`` (per-note noise within a chord),
    ``drift_s`` (slowly varying rubato), ``velocity_base`` (range of the piece's mean
    velocity), ``velocity_sd`` (per note), ``phrase_sd`` (slowly varying dynamics),
    ``legato`` (range of the fraction of the written length held) and ``pedal_probability``
    (the piece is pedalled, the pedal changed every beat or bar of ``beat_s``; offsets are
    extended by :func:`transcribe.notefiles.apply_sustain`).
    """
    if len(notes) == 0:
        return notes, np.zeros((0, 2))
    notes = notes.sorted()
    on, dur = notes.onsets, notes.offsets - notes.onsets
    groups = np.unique(np.round(on, 4), return_inverse=True)[1]  # notes struck together
    t = on + _smooth(rng, on, float(h.drift_s)) + rng.normal(0, float(h.onset_jitter_s), groups.max() + 1)[groups]
    t = t + rng.normal(0, float(h.chord_spread_s), len(on))
    t = np.maximum(t - t.min(), 0.0) + on.min()
    legato = rng.uniform(*(float(x) for x in h.legato))
    length = np.maximum(dur * legato * rng.uniform(0.85, 1.0, len(on)), 0.03)
    vel = (rng.uniform(*(float(x) for x in h.velocity_base)) + _smooth(rng, on, float(h.phrase_sd), 4.0)
           + rng.normal(0, float(h.velocity_sd), len(on)))
    out = Notes(t, t + length, notes.pitches, np.clip(np.round(vel), 1, 127))
    pedal = np.zeros((0, 2))
    if rng.random() < float(h.pedal_probability):
        period = (beat_s or 0.5) * float(rng.choice([1, 2, 4]))
        changes = np.arange(out.onsets.min(), out.offsets.max() + period, period)
        pedal = np.array([(a + rng.uniform(0.03, 0.08), b - rng.uniform(0.02, 0.05))
                          for a, b in zip(changes[:-1], changes[1:])]).reshape(-1, 2)
        out = apply_sustain(out, pedal)
    return out.sorted(), pedal


def score_notes(score, max_seconds: float | None = None, qpm: float | None = None) -> tuple[Notes, float]:
    """(notes in seconds at a constant tempo, seconds per beat) of a music21 score: every
    pitched note and chord of every part, tied notes joined, velocity 64. The tempo is
    ``qpm`` quarter notes per minute, else the score's first metronome mark, else 100."""
    from music21 import chord, note, tempo

    if qpm is None:
        marks = list(score.recurse().getElementsByClass(tempo.MetronomeMark))
        qpm = float(marks[0].getQuarterBPM()) if marks and marks[0].getQuarterBPM() else 100.0
    sec = 60.0 / qpm
    limit = None if max_seconds is None else max_seconds / sec
    rows, open_ties = [], {}
    for el in score.recurse().notes:
        start = float(el.getOffsetInHierarchy(score))
        if limit is not None and start >= limit:
            continue
        pitches = [el.pitch] if isinstance(el, note.Note) else list(el.pitches) if isinstance(el, chord.Chord) else []
        tie = el.tie.type if el.tie is not None else None
        for p in pitches:
            end = start + float(el.quarterLength)
            if tie in ("continue", "stop") and p.midi in open_ties:
                rows[open_ties[p.midi]][1] = max(rows[open_ties[p.midi]][1], end)
                if tie == "stop":
                    del open_ties[p.midi]
                continue
            if tie == "start":
                open_ties[p.midi] = len(rows)
            if end > start:
                rows.append([start, end, p.midi])
    if not rows:
        return Notes.empty(), sec
    a = np.array(rows, dtype=np.float64) * [sec, sec, 1]
    return Notes(a[:, 0], a[:, 1], a[:, 2], np.full(len(a), 64)).sorted(), sec


def corpus_paths(composers: list[str]) -> dict[str, list[Path]]:
    """music21 core corpus files by composer folder (``bach``, ``beethoven``, ``chopin``, ...)."""
    from music21 import corpus

    out: dict[str, list[Path]] = {c: [] for c in composers}
    for p in map(Path, corpus.getCorePaths()):
        parts = p.parts
        if "corpus" in parts and parts.index("corpus") + 1 < len(parts):
            c = parts[parts.index("corpus") + 1]
            if c in out:
                out[c].append(p)
    return {c: sorted(v) for c, v in out.items() if v}


def corpus_pieces(src) -> Iterator[tuple[str, Callable[[], Piece]]]:
    """``src.count`` pieces drawn (seed ``src.seed``, default 0) from the composers of
    ``src.composers`` (a composer first, then one of its files): (stem, function returning the
    humanised :class:`~.prepare.Piece`, empty when the piece has fewer than ``src.min_notes``)."""
    by_composer = corpus_paths(list(src.composers))
    if not by_composer:
        raise FileNotFoundError(f"no music21 corpus files for composers {list(src.composers)}")
    seed = int(src.get("seed", 0))
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, Path]] = []
    names = sorted(by_composer)
    available = sum(len(v) for v in by_composer.values())
    while len(chosen) < min(int(src.count), available):
        c = names[int(rng.integers(len(names)))]
        p = by_composer[c][int(rng.integers(len(by_composer[c])))]
        if (c, p) not in chosen:
            chosen.append((c, p))
    for composer, path in chosen:
        inner = path.parts[path.parts.index("corpus") + 2:]  # below the composer folder: unique
        stem = "m21_" + re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join([composer, *inner[:-1], path.stem]))

        def make(path=path, stem=stem) -> Piece:
            from music21 import corpus, stream

            score = corpus.parse(str(path))
            if isinstance(score, stream.Opus):  # a collection (e.g. of folk tunes): its first score
                score = score.scores[0]
            r = np.random.default_rng([seed, zlib.crc32(stem.encode())])
            factor = r.uniform(*(float(x) for x in src.tempo_scale))
            notes, beat = score_notes(score, max_seconds=float(src.max_seconds) * factor)
            if len(notes) < int(src.min_notes):
                return Piece(Notes.empty(), np.zeros((0, 2)))
            notes = Notes(notes.onsets / factor + 0.5, notes.offsets / factor + 0.5, notes.pitches, notes.velocities)
            return Piece(*humanize_piece(notes, r, src.humanize, beat / factor))

        yield stem, make
