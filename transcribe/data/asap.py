"""ASAP (Foscarin et al., ISMIR 2020; CC BY-NC-SA 4.0): performance MIDI with beat, downbeat,
time-signature and key-signature annotations, split as the renders split it.

The split is the renders' (``sources.asap`` of ``conf/render.yaml`` through
:func:`transcribe.render.sources.label_files` and :func:`~transcribe.render.sources.held_out_side`):
performances of the test set's works never, the works hashed into ``val_percent`` (41
performances) held out, the rest for training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Annotation:
    """A performance's annotations (seconds): every beat, which of them are downbeats, the
    time signatures and key signatures (number of sharps, negative = flats) where they change."""

    beats: np.ndarray
    downbeats: np.ndarray
    time_signatures: list[tuple[float, str]]
    key_signatures: list[tuple[float, int]]

    @property
    def time_signature(self) -> str:
        """The time signature that holds for the longest time (the piece's main one)."""
        return _longest(self.time_signatures, float(self.beats[-1]))

    @property
    def key_signature(self) -> int:
        """The key signature (sharps) that holds for the longest time."""
        return int(_longest(self.key_signatures, float(self.beats[-1])))

    def key_signatures_at(self, times: np.ndarray) -> np.ndarray:
        """The key signature (sharps) in force at each of ``times`` (s; the first one before
        the first change); an error where there is none."""
        if not self.key_signatures:
            raise ValueError("no annotation of this kind")
        kt = np.array([t for t, _ in self.key_signatures])
        ks = np.array([k for _, k in self.key_signatures])
        return ks[np.clip(np.searchsorted(kt, np.asarray(times) + 1e-6, side="right") - 1, 0, len(ks) - 1)]

    @property
    def tempo(self) -> float:
        """BPM at the annotated beat level: 60 / the median beat interval."""
        return 60.0 / float(np.median(np.diff(self.beats)))


def _longest(changes: list, end: float):
    if not changes:
        raise ValueError("no annotation of this kind")
    spans: dict = {}
    for (t, v), nxt in zip(changes, [c[0] for c in changes[1:]] + [end]):
        spans[v] = spans.get(v, 0.0) + max(nxt - t, 0.0)
    return max(spans, key=spans.get)


def read_annotations(path: str | Path) -> Annotation:
    """An ASAP ``*_annotations.txt`` (time, time, ``b|db|bR[,time signature[,key]]`` per line);
    a malformed line is an error naming the file and the line."""
    beats, down, ts, ks = [], [], [], []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        try:
            t = float(cols[0])
            label = cols[2].split(",")
        except (IndexError, ValueError) as err:
            raise ValueError(f"{path}: line {i}: not 'time<TAB>time<TAB>label': {line!r}") from err
        if label[0] not in ("b", "db", "bR"):
            raise ValueError(f"{path}: line {i}: unknown beat type {label[0]!r}")
        beats.append(t)
        if label[0] == "db":
            down.append(t)
        if len(label) > 1 and label[1]:
            ts.append((t, label[1]))
        if len(label) > 2 and label[2]:
            ks.append((t, int(label[2])))
    if len(beats) < 2:
        raise ValueError(f"{path}: fewer than two beats annotated")
    return Annotation(np.array(beats), np.array(down), ts, ks)


def split(folder: str | Path, shared_data: str | Path | None = None) -> dict[str, list[Path]]:
    """``{"train": [...], "val": [...]}``: the performance MIDI files of an ASAP folder, test
    works left out and the held-out works on the validation side, as ``transcribe-render``
    splits them (``sources.asap`` of ``conf/render.yaml``); ``shared_data`` overrides
    ``paths.shared_data`` (where ``test_pieces.csv`` is)."""
    from ..config import compose
    from ..render.sources import held_out_side, label_files

    overrides = [f"sources.asap.folder={Path(folder)}"]
    if shared_data is not None:
        overrides.append(f"paths.shared_data={Path(shared_data)}")
    src = compose("render", overrides).sources.asap
    out: dict[str, list[Path]] = {"train": [], "val": []}
    for _, path in label_files("asap", src):
        out["val" if held_out_side(src, path) else "train"].append(path)
    return out


def annotation_path(midi: Path) -> Path:
    """The annotation file beside a performance (``X.mid`` → ``X_annotations.txt``)."""
    return midi.with_name(midi.stem + "_annotations.txt")


def read_score_midi(path: str | Path):
    """The notes of an ASAP score MIDI (``midi_score.mid``, sorted by onset then pitch) and, per
    note, whether it is on the upper staff: ASAP's score MIDI has one track per staff, the upper
    first. Another number of tracks with notes is an error naming the file."""
    import pretty_midi

    from ..notes import Notes

    tracks = [i for i in pretty_midi.PrettyMIDI(str(path)).instruments if i.notes and not i.is_drum]
    if len(tracks) != 2:
        raise ValueError(f"{path}: {len(tracks)} tracks with notes, not one per staff")
    rows = sorted((n.start, n.pitch, n.end, n.velocity, k == 0) for k, tr in enumerate(tracks) for n in tr.notes)
    a = np.array([r[:4] for r in rows], dtype=np.float64)
    return Notes(a[:, 0], a[:, 2], a[:, 1], a[:, 3]), np.array([r[4] for r in rows], dtype=bool)


def score_counterparts(notes, ann: Annotation, score, score_ann: Annotation,
                       window: float = 0.25) -> np.ndarray:
    """For every performance note, the index of its counterpart in the score's notes, or -1: the
    nearest score note of the same pitch within ``window`` beats, both placed on their own
    annotated beats (ornaments, wrong notes and passages the score MIDI does not hold get none).
    The two annotations must hold the same number of beats (ASAP's correspond beat for beat);
    otherwise a ValueError."""
    from ..beats import Beats

    if len(ann.beats) != len(score_ann.beats):
        raise ValueError(f"{len(ann.beats)} performance beats against {len(score_ann.beats)} in the score")
    perf_pos = Beats(ann.beats, 60.0).position(notes.onsets)
    score_pos = Beats(score_ann.beats, 60.0).position(score.onsets)
    out = np.full(len(notes), -1, dtype=np.int64)
    for p in np.unique(notes.pitches):
        mine, theirs = np.flatnonzero(notes.pitches == p), np.flatnonzero(score.pitches == p)
        if len(theirs) == 0:
            continue
        d = np.abs(perf_pos[mine][:, None] - score_pos[theirs][None, :])
        j = d.argmin(axis=1)
        ok = d[np.arange(len(mine)), j] <= window
        out[mine[ok]] = theirs[j[ok]]
    return out
