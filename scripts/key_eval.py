"""Key-signature accuracy of the score stage's key analysis on ASAP performances, for choosing
its settings on the training side (issue 25).

For every performance of a side of the split (:func:`transcribe.data.asap.split`; ``train`` to
choose settings, ``val`` only to report), the first ``--seconds`` of its notes (sustain applied)
give a pitch-class histogram weighted by duration (seconds), correlated (Pearson) with the
Temperley-Kostka-Payne profiles of the 24 keys, as music21's ``key.temperleykostkapayne``
analysis does in :func:`transcribe.score.estimate_key` (here in numpy, on the notes' durations
rather than the quantised ones: music21 takes minutes of the shared CPU over 931 performances;
on the 41 held-out ones the two gave the same signature on 37 with the tracker's beats, 40 with
the beat model's, and the same share right). Each ``--margins`` value is a
``key_dominant_margin`` (0: off); printed per value: the share
of performances whose key signature is the annotated main one, the mean over works, and the
errors by distance on the line of fifths (estimated - annotated).

    python scripts/key_eval.py --side train --cache runs/beat_notes_all.npz --margins 0,0.05,0.1,0.15,0.2,0.3,0.4
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np


def profiles() -> tuple[np.ndarray, np.ndarray]:
    """music21's Temperley-Kostka-Payne major and minor profiles (tonic first)."""
    from music21.analysis.discrete import TemperleyKostkaPayne

    a = TemperleyKostkaPayne()
    return np.array(a.getWeights("major"), dtype=float), np.array(a.getWeights("minor"), dtype=float)


def correlations(hist: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """[12] Pearson correlation of a pitch-class histogram with the profile on every tonic."""
    h = hist - hist.mean()
    rot = np.stack([np.roll(profile, t) for t in range(12)]) - profile.mean()
    return (rot @ h) / np.sqrt((rot * rot).sum(axis=1) * (h @ h) + 1e-12)


def signature(tonic: int, minor: bool) -> int:
    """Sharps (negative: flats, -6..5) of a key's signature."""
    major = (tonic + 3) % 12 if minor else tonic
    return ((7 * major + 6) % 12) - 6


def decide(major: np.ndarray, minor: np.ndarray, dominant_margin: float) -> int:
    """The signature of the best key, the minor key a fifth below a best major key winning
    within ``dominant_margin`` (as :func:`transcribe.score.estimate_key`)."""
    if major.max() >= minor.max():
        t = int(major.argmax())
        below = (t + 5) % 12
        if dominant_margin > 0 and major.max() - minor[below] <= dominant_margin:
            return signature(below, True)
        return signature(t, False)
    return signature(int(minor.argmax()), True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--asap", type=Path, default=Path("data/asap"))
    ap.add_argument("--shared-data", type=Path, default=None)
    ap.add_argument("--side", choices=["train", "val"], default="train")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--cache", type=Path, default=None, help="the notes cache of scripts/train_beat_model.py (--cache)")
    ap.add_argument("--margins", default="0,0.15", help="comma-separated key_dominant_margin values")
    ap.add_argument("--bass", default="0", help="comma-separated extra weights of a chord's lowest note (its duration "
                    "counts 1 + this times): the bass often holds the tonic")
    ap.add_argument("--by-work", action="store_true", help="also print every work's result at each margin")
    args = ap.parse_args(argv)

    from transcribe.data.asap import annotation_path, read_annotations, split

    sys.path.insert(0, str(Path(__file__).parent))
    from train_beat_model import read_notes

    files = split(args.asap, args.shared_data)[args.side]
    notes = read_notes(files, args.cache)
    major_p, minor_p = profiles()
    for bass in (float(x) for x in args.bass.split(",")):
        if len(args.bass.split(",")) > 1 or bass:
            print(f"bass weight {bass:g}:")
        rows = []
        for f in files:
            n = notes[str(f)]
            keep = n.onsets < args.seconds
            weights = (n.offsets - n.onsets)[keep] * (1.0 + bass * lowest_of_chord(n.onsets[keep], n.pitches[keep]))
            hist = np.bincount(n.pitches[keep].astype(np.int64) % 12, weights=weights, minlength=12)
            ref = read_annotations(annotation_path(f)).key_signature
            rows.append((str(f.parent.relative_to(args.asap)), ((ref + 6) % 12) - 6,  # 6 and -6 alike
                         correlations(hist, major_p), correlations(hist, minor_p)))
        report(rows, args)
    return 0


def lowest_of_chord(onsets: np.ndarray, pitches: np.ndarray, chord_s: float = 0.035) -> np.ndarray:
    """1.0 for the lowest-pitched note of each chord (notes whose onsets follow each other within
    ``chord_s``), else 0. Not ``beatmodel.note_features``' "lowest" column: that marks the first note of
    a chord in onset order, the lowest only when the onsets are equal."""
    order = np.lexsort((pitches, onsets))
    on = onsets[order]
    new = np.r_[True, np.diff(on) > chord_s] if len(on) else np.zeros(0, dtype=bool)
    groups = np.cumsum(new) - 1
    low = np.full(groups.max() + 1 if len(groups) else 0, np.iinfo(np.int64).max)
    np.minimum.at(low, groups, pitches[order].astype(np.int64))
    out = np.zeros(len(on))
    out[order] = (pitches[order] == low[groups]).astype(float)
    return out


def report(rows: list, args) -> None:
    """Print the share right at every margin of ``args.margins`` (and by work with ``--by-work``)."""
    works = np.array([r[0] for r in rows])
    for m in (float(x) for x in args.margins.split(",")):
        got = np.array([decide(cm, cn, m) for _, _, cm, cn in rows])
        ref = np.array([r[1] for r in rows])
        ok = got == ref
        errors = Counter(int(((g - r + 6) % 12) - 6) for g, r in zip(got[~ok], ref[~ok]))
        per_work = float(np.mean([ok[works == w].mean() for w in np.unique(works)]))
        print(f"margin {m:g}: right {ok.mean():.3f} of {len(ok)} performances, {per_work:.3f} per work "
              f"({len(np.unique(works))}); errors by fifths {dict(errors.most_common())}", flush=True)
        if args.by_work:
            for w in np.unique(works):
                sel = works == w
                print(f"  {w}: {ok[sel].sum()}/{sel.sum()} right (annotated {ref[sel][0]}; "
                      f"estimated {dict(Counter(got[sel].tolist()))})")


if __name__ == "__main__":
    sys.exit(main())
