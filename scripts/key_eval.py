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
    python scripts/key_eval.py --side train --cache runs/beat_notes_all.npz --seconds 1e9 --last-bass 0,0.05,0.1,0.15

(``--seconds 1e9``: whole performances, as a recording is transcribed; ``--last-bass``: see :func:`decide`.)

``--changes`` measures key *changes* instead, on whole performances: the share of annotated beats
whose key signature (ASAP's, which changes where the score's does) the estimate gives, one
signature for the whole performance (its histogram, ``--margins``' first value) against a path
of signatures through windows of ``--window`` seconds (hop a quarter of it; each window's
signatures scored by the better of their two keys' correlations) that pays each penalty of
``--changes`` per change (Viterbi), and the changes per performance, estimated and annotated:

    python scripts/key_eval.py --side train --cache runs/beat_notes_all.npz --changes 2,5,10,20 --window 16
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


def decide(major: np.ndarray, minor: np.ndarray, dominant_margin: float, last_bass: int | None = None,
           bass_margin: float = 0.0) -> int:
    """The signature of the best key, the minor key a fifth below a best major key winning
    within ``dominant_margin`` (as :func:`transcribe.score.estimate_key`). With ``bass_margin`` > 0
    (``--last-bass``, measured, not in the stage): the best of the keys within that margin of the best
    whose tonic is ``last_bass`` (the pitch class of the last chord's lowest note), where there is one."""
    top = max(major.max(), minor.max())
    if bass_margin > 0 and last_bass is not None:
        tonic = [(c[last_bass], is_minor) for c, is_minor in ((major, False), (minor, True))
                 if c[last_bass] >= top - bass_margin]
        if tonic:
            return signature(last_bass, max(tonic)[1])
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
    ap.add_argument("--last-bass", default="0", help="comma-separated margins: the key whose tonic is the last "
                    "chord's bass wins within this much of the best (0: off)")
    ap.add_argument("--by-work", action="store_true", help="also print every work's result at each margin")
    ap.add_argument("--changes", default=None, help="comma-separated penalties per key change: measure changes "
                    "over whole performances instead (see above)")
    ap.add_argument("--window", type=float, default=16.0, help="seconds per window with --changes")
    args = ap.parse_args(argv)

    from transcribe.data.asap import annotation_path, read_annotations, split

    sys.path.insert(0, str(Path(__file__).parent))
    from train_beat_model import read_notes

    files = split(args.asap, args.shared_data)[args.side]
    notes = read_notes(files, args.cache)
    major_p, minor_p = profiles()
    if args.changes:
        changes(files, notes, [float(x) for x in args.changes.split(",")], args.window,
                float(args.margins.split(",")[0]), major_p, minor_p)
        return 0
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
                         correlations(hist, major_p), correlations(hist, minor_p),
                         last_chord_bass(n.onsets[keep], n.pitches[keep])))
        report(rows, args)
    return 0


def signature_scores(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """[12] per key signature (index: sharps + 6, so 6 flats and 6 sharps share index 0) the
    better correlation of its major and its minor key, from the [12] correlations by tonic."""
    out = np.full(12, -np.inf)
    for t in range(12):
        for corr, minor_key in ((major, False), (minor, True)):
            i = signature(t, minor_key) + 6
            out[i] = max(out[i], corr[t])
    return out


def key_path(scores: np.ndarray, penalty: float) -> np.ndarray:
    """The signature index per window [T] maximising the summed ``scores`` [T, 12] less
    ``penalty`` per change (Viterbi)."""
    total, back = scores[0].copy(), []
    for row in scores[1:]:
        switch = total.max() - penalty
        back.append(np.where(total >= switch, np.arange(12), total.argmax()))
        total = np.maximum(total, switch) + row
    path = [int(total.argmax())]
    for b in reversed(back):
        path.append(int(b[path[-1]]))
    return np.array(path[::-1])


def changes(files: list[Path], notes: dict, penalties: list[float], window: float, margin: float,
            major_p: np.ndarray, minor_p: np.ndarray) -> None:
    """Print the share of annotated beats under the right key signature (means over performances)
    and the key changes per performance, for one signature per performance and for
    :func:`key_path` at every penalty (see the module's docstring)."""
    from transcribe.data.asap import annotation_path, read_annotations

    right: dict[str, list[float]] = {}
    count: dict[str, list[int]] = {}
    for f in files:
        n, ann = notes[str(f)], read_annotations(annotation_path(f))
        if not len(n):
            continue
        beats = np.asarray(ann.beats, dtype=float)
        ref = ((ann.key_signatures_at(beats) + 6) % 12) - 6  # 6 and -6 alike
        pc = n.pitches.astype(np.int64) % 12
        hist = np.bincount(pc, weights=n.offsets - n.onsets, minlength=12)
        one = decide(correlations(hist, major_p), correlations(hist, minor_p), margin)
        rows = {"one signature": np.full(len(beats), one), "annotated": ref}
        centres = np.arange(0.0, n.offsets.max() + window / 4, window / 4)
        scores = []
        for c in centres:
            overlap = np.clip(np.minimum(n.offsets, c + window / 2) - np.maximum(n.onsets, c - window / 2), 0, None)
            h = np.bincount(pc, weights=overlap, minlength=12)
            scores.append(signature_scores(correlations(h, major_p), correlations(h, minor_p)) if h.sum() else
                          np.zeros(12))
        at = np.clip(np.searchsorted(centres, beats), 0, len(centres) - 1)
        for p in penalties:
            rows[f"penalty {p:g}"] = key_path(np.array(scores), p)[at] - 6
        for name, est in rows.items():
            right.setdefault(name, []).append(float(np.mean(est == ref)))
            count.setdefault(name, []).append(int(np.sum(np.diff(est) != 0)))
    for name in right:
        print(f"{name}: beats under the right signature {np.mean(right[name]):.3f}, "
              f"{np.mean(count[name]):.2f} changes per performance ({len(right[name])} performances)", flush=True)


def last_chord_bass(onsets: np.ndarray, pitches: np.ndarray, chord_s: float = 0.045) -> int | None:
    """Pitch class of the lowest note of the last chord (the notes starting within ``chord_s`` of the
    last onset); None without notes."""
    if not len(onsets):
        return None
    return int(pitches[onsets >= onsets.max() - chord_s].min()) % 12


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
    for m, b in ((float(x), float(y)) for x in args.margins.split(",") for y in args.last_bass.split(",")):
        got = np.array([decide(cm, cn, m, bass, b) for _, _, cm, cn, bass in rows])
        ref = np.array([r[1] for r in rows])
        ok = got == ref
        errors = Counter(int(((g - r + 6) % 12) - 6) for g, r in zip(got[~ok], ref[~ok]))
        per_work = float(np.mean([ok[works == w].mean() for w in np.unique(works)]))
        print(f"margin {m:g}" + (f", last bass {b:g}" if b else "") + f": right {ok.mean():.3f} of {len(ok)} performances, {per_work:.3f} per work "
              f"({len(np.unique(works))}); errors by fifths {dict(errors.most_common())}", flush=True)
        if args.by_work:
            for w in np.unique(works):
                sel = works == w
                print(f"  {w}: {ok[sel].sum()}/{sel.sum()} right (annotated {ref[sel][0]}; "
                      f"estimated {dict(Counter(got[sel].tolist()))})")


if __name__ == "__main__":
    sys.exit(main())
