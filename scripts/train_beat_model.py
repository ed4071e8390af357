"""Train the beat / downbeat / metre model of :mod:`transcribe.beatmodel` on ASAP's training side
(CPU; torch) and export it to ONNX for the package.

The split is the renders' (:func:`transcribe.data.asap.split`): performances of the test set's
works never, the 41 held-out performances only for validation (loss and per-note F), the rest
for training. Labels per note: on a beat / downbeat (onset within 50 ms of an annotated one), the
local annotated inter-beat interval, the bar's number of annotated beats (2, 3, 4; else not
scored) and whether the beat divides in three (x/8 metres whose bar holds a third of its
eighths as beats: 6/8, 9/8, 12/8) and the staff the score writes it on (its counterpart in the
work's ``midi_score.mid``, :func:`transcribe.data.asap.score_counterparts`; unknown where there is
none). Crops of notes, stretched in time (x0.85-1.15), velocities shifted, pitches transposed.

    nice -n 10 python scripts/train_beat_model.py --asap data/asap --shared-data ../shared/data \\
        --minutes 18 --out transcribe/weights/beats.onnx
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

TOLERANCE = 0.05  # s: a note is on a beat when its onset is this close to an annotated one


def note_labels(notes, ann) -> dict[str, np.ndarray]:
    """Per-note targets (notes sorted by :func:`transcribe.beatmodel.sort_notes`): ``beat``,
    ``downbeat`` (0/1), ``ibi`` (class), ``per_bar`` (class index or -1), ``ternary`` (0/1 or -1),
    ``key`` (the key signature's :func:`~transcribe.beatmodel.signature_class` or -1)."""
    from transcribe.beatmodel import PER_BAR, ibi_class, signature_class

    on = notes.onsets

    def near(ref: np.ndarray) -> np.ndarray:
        if len(ref) == 0:
            return np.zeros(len(on), dtype=np.float32)
        i = np.clip(np.searchsorted(ref, on), 1, len(ref) - 1) if len(ref) > 1 else np.zeros(len(on), dtype=int)
        d = np.minimum(np.abs(ref[i] - on), np.abs(ref[np.maximum(i - 1, 0)] - on))
        return (d <= TOLERANCE).astype(np.float32)

    b = ann.beats
    mids, gaps = (b[1:] + b[:-1]) / 2, np.diff(b)
    ibi = np.interp(on, mids, gaps)
    # beats per bar: annotated beats between the downbeats around each note
    down = ann.downbeats
    per_bar = np.full(len(on), -1, dtype=np.int64)
    ternary = np.full(len(on), -1, dtype=np.int64)
    if len(down) >= 2:
        counts = np.array([np.sum((b >= s - 1e-6) & (b < e - 1e-6)) for s, e in zip(down[:-1], down[1:])])
        k = np.clip(np.searchsorted(down, on, side="right") - 1, 0, len(counts) - 1)
        bpb = counts[k]
        ts_times = np.array([t for t, _ in ann.time_signatures]) if ann.time_signatures else np.zeros(1)
        ts_names = [s for _, s in ann.time_signatures] or ["4/4"]
        ts = [ts_names[j] for j in np.clip(np.searchsorted(ts_times, on, side="right") - 1, 0, len(ts_names) - 1)]
        for i, (c, name) in enumerate(zip(bpb, ts)):
            if c in PER_BAR:
                per_bar[i] = PER_BAR.index(int(c))
            try:
                num, den = (int(x) for x in name.split("/"))
            except ValueError:
                continue
            if c > 0:
                ternary[i] = int(den == 8 and num % 3 == 0 and num == 3 * c)
    key = np.full(len(on), -1, dtype=np.int64)
    if ann.key_signatures:
        key = signature_class(ann.key_signatures_at(on))
    return {"beat": near(b), "downbeat": near(down), "ibi": ibi_class(ibi), "per_bar": per_bar, "ternary": ternary,
            "key": key.astype(np.int64)}


def read_notes(files: list[Path], cache: Path | None = None) -> dict[str, "Notes"]:
    """The sorted, sustain-extended notes of MIDI files, by path; with ``cache`` (an ``.npz``),
    those read before come from it and the new ones are added to it (reading the MIDI is most
    of the loading time: about a second a file)."""
    from transcribe.beatmodel import sort_notes
    from transcribe.notefiles import read_midi
    from transcribe.notes import Notes

    have: dict[str, Notes] = {}
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            for key in z.files:
                a = z[key]
                have[key] = Notes(a[0], a[1], a[2], a[3])
    missing = [f for f in files if str(f) not in have]
    for f in missing:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            have[str(f)] = sort_notes(read_midi(f))
    if cache is not None and missing:
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.stack([n.onsets, n.offsets, n.pitches, n.velocities]).astype(np.float64)
                  for k, n in have.items()}
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    return {str(f): have[str(f)] for f in files}


def score_labels(notes, ann, folder: Path, scores: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per note, from its counterpart in the score: the staff, 1 (upper) or 0 (lower), and the
    note value's :func:`~transcribe.beatmodel.value_class` (the counterpart's length in score
    beats); -1 where there is no counterpart, no score whose beats correspond to the
    performance's, or (the value) no class; ``scores`` caches each folder's score."""
    from transcribe.beatmodel import value_class
    from transcribe.beats import Beats
    from transcribe.data.asap import read_annotations, read_score_midi, score_counterparts

    if folder not in scores:
        try:
            score, upper = read_score_midi(folder / "midi_score.mid")
            scores[folder] = (score, upper, read_annotations(folder / "midi_score_annotations.txt"))
        except (OSError, ValueError) as err:
            print(f"{folder}: no staff labels: {err}", file=sys.stderr)
            scores[folder] = None
    none = np.full(len(notes), -1, dtype=np.int64)
    if scores[folder] is None:
        return none, none
    score, upper, score_ann = scores[folder]
    try:
        match = score_counterparts(notes, ann, score, score_ann)
    except ValueError:
        return none, none
    grid = Beats(score_ann.beats, 60.0)
    # the score MIDI ends its notes a little early (0.248 beats for 0.25): the length on a 12th of a beat
    length = np.round((grid.position(score.offsets) - grid.position(score.onsets)) * 12) / 12
    value = np.where(match >= 0, value_class(length)[np.maximum(match, 0)], -1)
    return np.where(match >= 0, upper[match].astype(np.int64), -1), value


def load_side(files: list[Path], cache: Path | None = None) -> list[dict]:
    """Features and labels of performances (notes sustain-extended, as transcribed)."""
    from transcribe.data.asap import annotation_path, read_annotations

    notes_of = read_notes(files, cache)
    out, scores = [], {}
    for f in files:
        notes = notes_of[str(f)]
        ann = read_annotations(annotation_path(f))
        labels = note_labels(notes, ann)
        labels["upper"], labels["value"] = score_labels(notes, ann, Path(f).parent, scores)
        out.append({"file": str(f), "notes": notes, "ann": ann, "labels": labels})
    return out


def score_files(performances: list[Path]) -> list[Path]:
    """The score MIDI (``midi_score.mid``, beside its ``midi_score_annotations.txt``) of every work
    that one of ``performances`` is of, once each, in folder order: the works played deadpan, each
    note on its written time at the score's tempo marking. :func:`load_side` reads them as it reads a
    performance (their notes are their own counterparts: the staff and value labels are exact). A
    work with no score MIDI or no annotations for it is left out."""
    folders = sorted({Path(f).parent for f in performances})
    return [d / "midi_score.mid" for d in folders
            if (d / "midi_score.mid").is_file() and (d / "midi_score_annotations.txt").is_file()]


def transcribed_side(performances: list[Path], folder: Path, asap: Path) -> list[dict]:
    """Pieces of the ``performances`` as our transcriber heard them: the notes it wrote from a render of
    each (``folder``/STEM.mid, STEM the render's name, :func:`transcribe.render.sources.render_stem`; the
    renders play the performance MIDI from its first sample, so the annotations' times hold), labelled
    from the performance's annotations as the performance is (beats, downbeats, intervals, metre, key).
    The staff and note-value labels are unknown (-1): a transcribed note has no score counterpart. A
    performance without a transcription is left out."""
    from transcribe.beatmodel import sort_notes
    from transcribe.data.asap import annotation_path, read_annotations
    from transcribe.notefiles import read_midi
    from transcribe.render.sources import render_stem

    out = []
    for f in performances:
        midi = folder / (render_stem(Path(f), asap) + ".mid")
        if not midi.is_file():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            notes = sort_notes(read_midi(midi))
        if len(notes) == 0:
            continue
        labels = note_labels(notes, read_annotations(annotation_path(Path(f))))
        labels["upper"] = labels["value"] = np.full(len(notes), -1, dtype=np.int64)
        out.append({"file": str(midi), "notes": notes, "labels": labels})
    return out


def patterns_side(n: int, seed: int) -> list[dict]:
    """``n`` synthetic accompaniment pieces (:mod:`transcribe.data.patterns`) labelled as
    performances are, their staff and value labels exact."""
    from transcribe.data.patterns import synthetic_pieces

    out = []
    for p in synthetic_pieces(n, seed):
        labels = note_labels(p["notes"], p["ann"])
        labels["upper"], labels["value"] = p["upper"], p["value"]
        out.append({"file": p["file"], "notes": p["notes"], "ann": p["ann"], "labels": labels})
    return out


def works_fold(files: list[Path], percent: float, salt: str = "inner") -> tuple[list[Path], list[Path]]:
    """(kept, held) of performance files: the works (the folder a performance is in, so all
    performances of a work fall on one side) whose salted hash falls into the first ``percent``
    percent are held; a split inside the training side to select on, so that the held-out works
    stay a test."""
    import zlib

    is_held = [zlib.crc32(f"{salt}:{Path(f).parent}".encode()) % 10000 < percent * 100 for f in files]
    return [f for f, h in zip(files, is_held) if not h], [f for f, h in zip(files, is_held) if h]


def seeded_sample(items: list, n: int) -> list:
    """The seeded sample of ``n`` of ``items`` (performances) that are decoded, in their listed
    order: of the inner-validation works' performances, docs/SCORE.md's "inner 60" with ``n`` 60."""
    return [items[i] for i in sorted(np.random.default_rng(0).permutation(len(items))[:n])]


def first_seconds(notes, ann, seconds: float):
    """(the notes starting in the first ``seconds``, sorted as the model reads them, the annotated
    beats and downbeats there)."""
    from transcribe.beatmodel import sort_notes

    return sort_notes(notes.select(notes.onsets < seconds)), ann.beats[ann.beats < seconds], ann.downbeats[ann.downbeats < seconds]


def decoded_scores(notes, ref_beats, ref_down, time_signature: str, out: dict, **decoding) -> tuple[float, ...]:
    """(beat F, downbeat F (nan without annotated downbeats), time signature right, tempo right) of
    the beats :func:`transcribe.beatmodel.beats_from_outputs` decodes (``decoding``: its keyword
    arguments) from the model's outputs ``out`` on ``notes``, scored as scripts/score_eval.py
    scores (:func:`transcribe.metrics.beat_metrics`); a decoding that finds too few beats scores 0."""
    from transcribe.beatmodel import beats_from_outputs
    from transcribe.metrics import beat_metrics

    try:
        b = beats_from_outputs(notes, out, **decoding)
    except ValueError:  # too few beats: scored as all wrong
        return 0.0, 0.0, 0.0, 0.0
    m = beat_metrics(ref_beats, ref_down, b)
    return (m["beat_f"], np.nan if m["downbeat_f"] is None else m["downbeat_f"],
            float(b.time_signature == time_signature), float(m["tempo_right"]))


def validate_decoded(net, pieces: list[dict], seconds: float = 60.0) -> dict:
    """Beat F, downbeat F, time-signature and tempo accuracy of the first ``seconds`` of every
    piece decoded into beats the way the score stage decodes them (conf/score's settings,
    :func:`transcribe.score.configured_model_decoding`, the network run over the configured note
    windows): what selecting on the per-note F of :func:`validate` does not measure (round 11 of
    docs/SCORE.md)."""
    import torch

    from transcribe.beatmodel import note_features, split_outputs, windowed
    from transcribe.score import configured_model_decoding, configured_model_note_window

    decoding, note_window = configured_model_decoding(), configured_model_note_window()
    rows = []
    net.eval()

    def run(f: np.ndarray) -> np.ndarray:
        return net(torch.from_numpy(f)[None])[0].numpy()

    with torch.no_grad():
        for p in pieces:
            notes, ref, ref_down = first_seconds(p["notes"], p["ann"], seconds)
            logits = windowed(run, note_features(notes), note_window)
            rows.append(decoded_scores(notes, ref, ref_down, p["ann"].time_signature, split_outputs(logits), **decoding))
    net.train()
    m = np.nanmean(np.array(rows, dtype=float), axis=0)
    return {"decoded_beat_f": round(float(m[0]), 4), "decoded_downbeat_f": round(float(m[1]), 4),
            "decoded_ts_acc": round(float(m[2]), 4), "decoded_tempo_acc": round(float(m[3]), 4)}


def quantised_files(folder: Path, test_pieces: Path, exclude: tuple[str, ...] = ()) -> tuple[list[Path], list[str]]:
    """(kept, why-left-out lines) of a folder of sequenced MIDI files (e.g. piano-midi.de's, as
    cheriell/ClassicalPianoMIDI-dataset holds them, with its ``metadata.csv`` of composer and
    title beside ``midis/``): a file is left out when its name is a MAPS code of the test set,
    when :func:`transcribe.render.filter.check` matches its composer and title to a test work
    (unsure cases too), or when its stem is in ``exclude`` (e.g. a work of the held-out side)."""
    import csv

    from transcribe.render.filter import check, load_test_pieces

    pieces = load_test_pieces(test_pieces)
    codes = {p.code for p in pieces}
    meta: dict[str, tuple[str, str]] = {}
    table = next((t for t in (folder / "metadata.csv", folder.parent / "metadata.csv") if t.is_file()), None)
    if table is not None:
        with open(table, newline="", encoding="utf-8") as fh:
            meta = {Path(r["midi"]).stem: (r["composer"], r["title"]) for r in csv.DictReader(fh)}
    kept, dropped = [], []
    for f in sorted(folder.rglob("*.mid")):
        composer, title = meta.get(f.stem, (f.parent.name, f.stem))
        if f.stem in codes:
            reason = "a test-set MAPS code"
        elif f.stem in exclude:
            reason = "excluded by name"
        else:
            verdict = check(composer, title.replace("_", " "), pieces)
            reason = verdict.reason if verdict.excluded else None
        if reason is None:
            kept.append(f)
        else:
            dropped.append(f"{f}: left out ({reason})")
    return kept, dropped


def quantised_piece(path: Path) -> dict:
    """A training piece from a sequenced MIDI file whose beats are its own: beats, downbeats and
    time signatures from its tempo map and time-signature events (pretty_midi), the staff of
    every note from its track where exactly two tracks hold notes (the higher one upper);
    notes sustain-extended as :func:`transcribe.notefiles.read_midi` reads them."""
    import pretty_midi

    from transcribe.beatmodel import sort_notes
    from transcribe.data.asap import Annotation
    from transcribe.notefiles import read_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(str(path))
        notes = sort_notes(read_midi(path))
    # pretty_midi's key numbers: 0-11 major tonics, 12-23 minor ones; the signature's sharps are
    # 7 x the major tonic (mod 12; the relative major of a minor key is 3 semitones up)
    keys = [(k.time, int(7 * (k.key_number % 12 + 3 * (k.key_number >= 12)) % 12)) for k in pm.key_signature_changes]
    ann = Annotation(beats=pm.get_beats(), downbeats=pm.get_downbeats(),
                     time_signatures=[(t.time, f"{t.numerator}/{t.denominator}") for t in pm.time_signature_changes],
                     key_signatures=keys)
    labels = note_labels(notes, ann)
    tracks = [i for i in pm.instruments if i.notes and not i.is_drum]
    upper = np.full(len(notes), -1, dtype=np.int64)
    if len(tracks) == 2:
        high = int(np.mean([n.pitch for n in tracks[0].notes]) < np.mean([n.pitch for n in tracks[1].notes]))
        where = {(round(n.start, 4), n.pitch): int(k == high) for k, t in enumerate(tracks) for n in t.notes}
        upper = np.array([where.get((round(float(o), 4), int(p)), -1) for o, p in zip(notes.onsets, notes.pitches)],
                         dtype=np.int64)
    labels["upper"] = upper
    return {"file": str(path), "notes": notes, "ann": ann, "labels": labels}


def build_net(hidden: int = 64, outputs: int | None = None):
    """The network: ``outputs`` per note (:data:`transcribe.beatmodel.OUTPUTS` by default)."""
    import torch.nn as nn

    from transcribe.beatmodel import N_FEATURES, OUTPUTS

    outputs = outputs or OUTPUTS

    class BeatNet(nn.Module):
        """Convolutions over neighbouring notes, then a bidirectional GRU over the sequence."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv1d(N_FEATURES, hidden, 5, padding=2), nn.ReLU(),
                                      nn.Conv1d(hidden, hidden, 5, padding=2), nn.ReLU())
            self.gru = nn.GRU(hidden, hidden, num_layers=2, batch_first=True, bidirectional=True, dropout=0.1)
            self.head = nn.Linear(2 * hidden, outputs)

        def forward(self, x):
            h = self.conv(x.transpose(1, 2)).transpose(1, 2)
            h, _ = self.gru(h)
            return self.head(h)

    return BeatNet()


def keep_outputs(net, outputs: int, hidden: int = 64):
    """The network with only its first ``outputs`` outputs (the head's other rows dropped; the rest
    is the same, so those outputs are exactly the network's): a model exported so reads as one made
    before an output was added, and a caller asking for the missing output gets the error that names
    the file, where an output not yet trained well would answer."""
    small = build_net(hidden, outputs)
    state = dict(net.state_dict())
    state["head.weight"], state["head.bias"] = state["head.weight"][:outputs], state["head.bias"][:outputs]
    small.load_state_dict(state)
    return small


def load_onnx_weights(net, path: Path) -> None:
    """Start ``net`` from an exported model's weights (e.g. the shipped ``beats.onnx``): the ONNX
    file holds the convolutions and the head by name and the GRU as its two ``GRU`` nodes, whose
    gates ONNX orders (update, reset, new) where torch orders (reset, update, new)."""
    import onnx
    import torch
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for k in ("conv.0.weight", "conv.0.bias", "conv.2.weight", "conv.2.bias"):
        w = torch.from_numpy(init[k].copy())
        if k == "conv.0.weight" and w.shape[1] < state[k].shape[1]:  # a model of fewer input features
            state[k][:, : w.shape[1]] = w
            state[k][:, w.shape[1]:] = 0.0  # the new inputs start without effect
        else:
            state[k] = w
    matmul = [n for n in proto.graph.node if n.op_type == "MatMul"]
    # a model exported before an output was added has fewer head rows: those it has are copied
    head_w, head_b = init[matmul[-1].input[1]].T, init["head.bias"]
    state["head.weight"][: len(head_w)] = torch.from_numpy(head_w.copy())
    state["head.bias"][: len(head_b)] = torch.from_numpy(head_b.copy())
    h = net.gru.hidden_size

    def reorder(a):  # (z, r, n) → (r, z, n) along the first axis
        return np.concatenate([a[h:2 * h], a[:h], a[2 * h:]])

    grus = [n for n in proto.graph.node if n.op_type == "GRU"]
    if len(grus) != net.gru.num_layers:
        raise ValueError(f"{path}: {len(grus)} GRU layers, the network has {net.gru.num_layers}")
    for layer, node in enumerate(grus):
        w, r, b = (init[node.input[i]] for i in (1, 2, 3))
        for d, suffix in enumerate(("", "_reverse")):
            state[f"gru.weight_ih_l{layer}{suffix}"] = torch.from_numpy(reorder(w[d]))
            state[f"gru.weight_hh_l{layer}{suffix}"] = torch.from_numpy(reorder(r[d]))
            state[f"gru.bias_ih_l{layer}{suffix}"] = torch.from_numpy(reorder(b[d][:3 * h]))
            state[f"gru.bias_hh_l{layer}{suffix}"] = torch.from_numpy(reorder(b[d][3 * h:]))
    net.load_state_dict(state)


def time_warp(times: np.ndarray, start: float, rng: np.random.Generator, stretch: float, warp: float,
              knots: int = 4) -> tuple[np.ndarray, "callable"]:
    """A smooth random tempo change: times measured from ``start`` played at a rate that moves
    between knots spread over the span (each ``stretch`` x exp(U(-warp, warp))), linearly between
    them. Returns the warped times (from 0) and the local rate at a time (to scale the beat
    intervals with). ``warp`` 0 is a plain stretch."""
    span = max(float(times.max() - start), 1e-3)
    grid = np.linspace(0.0, span, 257)
    rate = stretch * np.exp(np.interp(grid, np.linspace(0.0, span, knots), rng.uniform(-warp, warp, knots)))
    cum = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2 * np.diff(grid))])
    return np.interp(times - start, grid, cum), lambda t: np.interp(t - start, grid, rate)


def make_batch(pieces: list[dict], rng: np.random.Generator, batch: int, length: int, warp: float = 0.0,
               drop: float = 0.0):
    """A batch of crops: features [B, T, F] and labels, augmented: stretched in time (and, with
    ``warp``, a smooth tempo change inside the crop, :func:`time_warp`), velocities shifted,
    pitches transposed and, with ``drop``, up to that share of the notes left out."""
    import torch

    from transcribe.beatmodel import note_features
    from transcribe.notes import Notes

    xs, ys = [], {k: [] for k in ("beat", "downbeat", "ibi", "per_bar", "ternary", "upper", "key", "value")}
    for _ in range(batch):
        p = pieces[rng.integers(len(pieces))]
        n = len(p["notes"])
        start = int(rng.integers(0, max(1, n - length)))
        sl = np.arange(start, min(start + length, n))
        if drop > 0:
            sl = sl[rng.random(len(sl)) >= rng.uniform(0.0, drop)]
        nt = p["notes"]
        stretch = float(rng.uniform(0.85, 1.15))
        shift = int(rng.integers(-3, 4))
        dt = np.zeros(len(sl))
        if p.get("jitter", 0.0) > 0:  # a sequenced file's notes sit on its grid; a player's scatter around it
            dt = rng.normal(0.0, p["jitter"], len(sl))
            order = np.lexsort((nt.pitches[sl], nt.onsets[sl] + dt))
            sl, dt = sl[order], dt[order]
        vel = np.clip(nt.velocities[sl] + rng.integers(-12, 13), 1, 127)
        t0 = float((nt.onsets[sl] + dt).min())
        both, rate = time_warp(np.concatenate([nt.onsets[sl] + dt, nt.offsets[sl] + dt]), t0, rng, stretch, warp)
        on, off = both[: len(sl)], both[len(sl):]
        crop = Notes(on, off, np.clip(nt.pitches[sl] + shift, 21, 108), vel)
        f = note_features(crop)
        lab = {k: v[sl] for k, v in p["labels"].items()}
        from transcribe.beatmodel import ibi_centres, ibi_class

        lab["ibi"] = ibi_class(ibi_centres()[lab["ibi"]] * rate(nt.onsets[sl]))
        key = lab.get("key", np.full(len(sl), -1, dtype=np.int64))
        lab["key"] = np.where(key >= 0, np.mod(key + 7 * shift, 12), -1)  # transposed with the pitches
        lab["value"] = lab.get("value", np.full(len(sl), -1, dtype=np.int64))  # in beats: a stretch keeps it
        pad = length - len(f)
        xs.append(np.pad(f, ((0, pad), (0, 0))))
        for k in ys:
            fill = -1
            ys[k].append(np.pad(lab[k].astype(np.float32 if k in ("beat", "downbeat") else np.int64),
                                (0, pad), constant_values=fill))
    return torch.from_numpy(np.stack(xs)), {k: torch.from_numpy(np.stack(v)) for k, v in ys.items()}


def loss_of(logits, y):
    import torch.nn.functional as F

    from transcribe.beatmodel import IBI_COLS, KEY_COLS, PER_BAR_COLS, STAFF_COL, SUBDIVISION_COLS, VALUE_COLS

    def ce(cols: slice, target):
        return F.cross_entropy(logits[..., cols].reshape(-1, cols.stop - cols.start), target.reshape(-1), ignore_index=-1)

    mask = y["beat"] >= 0
    bce = F.binary_cross_entropy_with_logits
    loss = bce(logits[..., 0][mask], y["beat"][mask], pos_weight=logits.new_tensor(2.0))
    loss = loss + bce(logits[..., 1][mask], y["downbeat"][mask], pos_weight=logits.new_tensor(4.0))
    loss = loss + 0.5 * ce(IBI_COLS, y["ibi"])
    if (y["per_bar"] >= 0).any():
        loss = loss + 0.3 * ce(PER_BAR_COLS, y["per_bar"])
    if (y["ternary"] >= 0).any():
        loss = loss + 0.3 * ce(SUBDIVISION_COLS, y["ternary"])
    staff = y["upper"] >= 0
    if staff.any():
        loss = loss + 0.5 * bce(logits[..., STAFF_COL][staff], y["upper"][staff].float())
    if "key" in y and logits.shape[-1] >= KEY_COLS.stop and (y["key"] >= 0).any():
        loss = loss + 0.3 * ce(KEY_COLS, y["key"])
    if "value" in y and logits.shape[-1] >= VALUE_COLS.stop and (y["value"] >= 0).any():
        loss = loss + 0.3 * ce(VALUE_COLS, y["value"])
    return loss


def _head(notes, n: int):
    return notes.select(slice(0, n))


def validate(net, pieces: list[dict], max_notes: int = 1500) -> dict:
    """Mean loss, per-note beat / downbeat F (threshold 0.5), and the accuracy of the staff,
    subdivision (binary / ternary), key-signature and note-value outputs (of the notes with those
    labels; key and value only from a network with that output) over the first ``max_notes`` notes of every
    validation piece."""
    import torch

    from transcribe.beatmodel import KEY_COLS, STAFF_COL, SUBDIVISION_COLS, VALUE_COLS, note_features

    net.eval()
    tp = fp = fn = dtp = dfp = dfn = staff_right = staff_n = sub_right = sub_n = key_right = key_n = 0
    value_right = value_n = 0
    losses = []
    with torch.no_grad():
        for p in pieces:
            sl = slice(0, max_notes)  # the first notes of each piece: a cheap, fixed sample
            x = torch.from_numpy(note_features(_head(p["notes"], max_notes)))[None]
            y = {k: torch.from_numpy(v[sl].astype(np.float32 if k in ("beat", "downbeat") else np.int64))[None]
                 for k, v in p["labels"].items()}
            out = net(x)
            losses.append(float(loss_of(out, y)))
            pb, pd = (out[0, :, 0] > 0).numpy(), (out[0, :, 1] > 0).numpy()
            tb, td = p["labels"]["beat"][sl] > 0, p["labels"]["downbeat"][sl] > 0
            tp, fp, fn = tp + np.sum(pb & tb), fp + np.sum(pb & ~tb), fn + np.sum(~pb & tb)
            dtp, dfp, dfn = dtp + np.sum(pd & td), dfp + np.sum(pd & ~td), dfn + np.sum(~pd & td)
            tern = p["labels"]["ternary"][sl]
            pt = out[0, :, SUBDIVISION_COLS].argmax(-1).numpy()  # 1: ternary
            sub_right += int(np.sum(pt[tern >= 0] == tern[tern >= 0]))
            sub_n += int(np.sum(tern >= 0))
            kl = p["labels"].get("key", np.full(len(p["notes"]), -1))[sl]
            if out.shape[-1] >= KEY_COLS.stop:
                pk = out[0, :, KEY_COLS].argmax(-1).numpy()
                key_right += int(np.sum(pk[kl >= 0] == kl[kl >= 0]))
                key_n += int(np.sum(kl >= 0))
            vl = p["labels"].get("value", np.full(len(p["notes"]), -1))[sl]
            if out.shape[-1] >= VALUE_COLS.stop:
                pv = out[0, :, VALUE_COLS].argmax(-1).numpy()
                value_right += int(np.sum(pv[vl >= 0] == vl[vl >= 0]))
                value_n += int(np.sum(vl >= 0))
            su = p["labels"]["upper"][sl]
            staff_right += int(np.sum((out[0, :, STAFF_COL] > 0).numpy()[su >= 0] == (su[su >= 0] == 1)))
            staff_n += int(np.sum(su >= 0))
    net.train()
    f = lambda a, b, c: 2 * a / max(2 * a + b + c, 1)  # noqa: E731
    return {"loss": float(np.mean(losses)), "beat_f": round(f(tp, fp, fn), 4), "downbeat_f": round(f(dtp, dfp, dfn), 4),
            "staff_acc": round(staff_right / max(staff_n, 1), 4), "subdivision_acc": round(sub_right / max(sub_n, 1), 4),
            "key_acc": round(key_right / max(key_n, 1), 4), "value_acc": round(value_right / max(value_n, 1), 4)}


def export(net, path: Path, meta: dict) -> None:
    """The network as ONNX (input ``features`` [1, n, F], output ``logits`` [1, n, OUTPUTS]), with
    ``meta`` in its metadata, written atomically."""
    import onnx
    import torch

    from transcribe.beatmodel import N_FEATURES
    from transcribe.files import atomic_write

    net.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 16, N_FEATURES),), buf, input_names=["features"],
                          output_names=["logits"], dynamic_axes={"features": {1: "notes"}, "logits": {1: "notes"}},
                          opset_version=17, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = "training", json.dumps(meta)
    with atomic_write(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())


SELECT = {  # --select: which validation row's weights are kept (the lowest of these)
    "loss": lambda v: v["loss"],
    "beat_f": lambda v: -v["beat_f"],
    "beat_downbeat_f": lambda v: -(v["beat_f"] + v["downbeat_f"]),
    "decoded_beat_downbeat_f": lambda v: -(v["decoded_beat_f"] + v["decoded_downbeat_f"]),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--asap", type=Path, default=Path("data/asap"))
    ap.add_argument("--shared-data", type=Path, default=None)
    ap.add_argument("--minutes", type=float, default=18.0, help="CPU time budget of the training loop")
    ap.add_argument("--wall-minutes", type=float, default=None,
                    help="also stop after this much wall-clock time (a shared machine gives a niced run a small "
                         "share of the CPU); the learning rate decays over whichever budget runs out first")
    ap.add_argument("--val-every", type=int, default=250,
                    help="validate (and decay the learning rate) every this many steps")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=256, help="notes per crop")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warp", type=float, default=0.0,
                    help="augmentation: tempo changes inside a crop, log-rate within +-this (0: a plain stretch)")
    ap.add_argument("--drop", type=float, default=0.0, help="augmentation: leave out up to this share of a crop's notes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="at most this many training performances")
    ap.add_argument("--out", type=Path, default=Path("transcribe/weights/beats.onnx"))
    ap.add_argument("--init", type=Path, default=None,
                    help="start from the weights of an exported model (e.g. transcribe/weights/beats.onnx)")
    ap.add_argument("--select", choices=list(SELECT), default="loss",
                    help="which validation row's weights are exported: the lowest loss, the best per-note beat F, "
                         "the best per-note beat F + downbeat F, or the best beat F + downbeat F of the beats "
                         "decoded from the first 60 s (needs --decoded-val)")
    ap.add_argument("--decoded-val", type=int, default=0,
                    help="also decode the first 60 s of this many validation performances into beats at every "
                         "validation (the seeded sample beat_decoding_eval.py takes: 60 = the inner 60 with "
                         "--inner-val 15), scored as score_eval.py scores them; and the held-out 41 at the end")
    ap.add_argument("--hidden", type=int, default=64, help="channels of the convolutions and GRU units a direction")
    ap.add_argument("--extra-midi", type=Path, nargs="+", default=None,
                    help="folders of sequenced MIDI files whose tempo map and time signatures give the beats "
                         "(e.g. data/midi/cpm/midis, piano-midi.de's; data/midi/mutopia/midis, scripts/mutopia_midi.py's), "
                         "each with its own metadata.csv; test-set works left out (needs --shared-data)")
    ap.add_argument("--extra-exclude", nargs="*", default=["beethoven_hammerklavier_4"],
                    help="stems of --extra-midi files left out besides the test set's works (default: the one "
                         "piano-midi.de file of a held-out ASAP work, so the held-out works stay unseen)")
    ap.add_argument("--jitter", type=float, default=0.015,
                    help="s: the standard deviation of the onset noise added to --extra-midi and --score-midi notes "
                         "(they are on a grid)")
    ap.add_argument("--score-midi", action="store_true",
                    help="also train on the score MIDI of every training work (ASAP's midi_score.mid: the work "
                         "played deadpan at its marked tempo), onsets jittered by --jitter; a player's timing is "
                         "all the model hears otherwise, and it halves the beat of evenly timed music (SCORE.md)")
    ap.add_argument("--transcribed", type=Path, default=None,
                    help="also train on our own transcriptions of training performances: a folder of the MIDI "
                         "`transcribe` wrote from their renders (STEM.mid, the render's name), labelled from the "
                         "performances' annotations; what the stage reads from audio has false, missing and "
                         "mistimed notes that performance MIDI has not")
    ap.add_argument("--patterns", type=int, default=0,
                    help="also train on this many synthetic pieces (transcribe/data/patterns.py: accompaniment "
                         "textures under a melody, played evenly, annotated at the score's beat)")
    ap.add_argument("--outputs", type=int, default=None,
                    help="export only the first this many outputs (56: up to the staff output, leaving out the "
                         "key and note-value outputs; transcribe/beatmodel.py's *_COLS)")
    ap.add_argument("--inner-val", type=float, default=0.0,
                    help="hold out the training side's works hashed into this percent and select on them "
                         "(the 41 held-out performances are then only reported, as heldout_*)")
    ap.add_argument("--no-asap-training", action="store_true",
                    help="train on no ASAP performance (only the --extra-midi and --patterns pieces), so that the "
                         "weights carry no data under ASAP's non-commercial licence; ASAP still validates (the "
                         "--inner-val works and the held-out ones)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="an .npz of the performances' notes, read from and added to (saves re-reading the MIDI)")
    args = ap.parse_args(argv)
    if args.no_asap_training and (args.score_midi or args.transcribed is not None):
        ap.error("--no-asap-training excludes --score-midi and --transcribed (both are ASAP's works)")
    if args.no_asap_training and args.extra_midi is None and not args.patterns:
        ap.error("--no-asap-training needs training pieces from --extra-midi or --patterns")

    import torch

    from transcribe.data.asap import split

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    sides = split(args.asap, args.shared_data)
    t0 = time.time()
    order = rng.permutation(len(sides["train"]))[: args.limit]  # a seeded subset of the works' performances
    train_files = [sides["train"][i] for i in sorted(order)]
    inner_files: list[Path] = []
    if args.inner_val > 0:
        train_files, inner_files = works_fold(train_files, args.inner_val)
    train = [] if args.no_asap_training else load_side(train_files, args.cache)
    if args.extra_midi is not None:
        if args.shared_data is None:
            ap.error("--extra-midi needs --shared-data (the test set's works are left out by its test_pieces.csv)")
        kept, dropped = [], []
        for folder in args.extra_midi:
            k, d = quantised_files(folder, args.shared_data / "test_pieces.csv", tuple(args.extra_exclude))
            kept, dropped = kept + k, dropped + d
        extra = []
        for f in kept:
            try:
                extra.append({**quantised_piece(f), "jitter": args.jitter})
            except (OSError, ValueError, IndexError) as err:  # a bad file is named and the rest go on
                print(f"{f}: skipped: {err}", file=sys.stderr)
        print(f"{len(extra)} sequenced pieces from {', '.join(map(str, args.extra_midi))} ({len(dropped)} left out as test-set works "
              f"or excluded)", flush=True)
        train = train + extra
    if args.score_midi:
        scores = [{**p, "jitter": args.jitter} for p in load_side(score_files(train_files), args.cache)]
        print(f"{len(scores)} score MIDI files of the training works (played deadpan)", flush=True)
        train = train + scores
    if args.transcribed is not None:
        heard = transcribed_side(train_files, args.transcribed, args.asap)
        print(f"{len(heard)} transcribed performances from {args.transcribed}", flush=True)
        train = train + heard
    if args.patterns:
        train = train + patterns_side(args.patterns, args.seed)
        print(f"{args.patterns} synthetic accompaniment pieces", flush=True)
    outer = load_side(sides["val"], args.cache)
    val = load_side(inner_files, args.cache) if inner_files else outer
    if args.select.startswith("decoded") and not args.decoded_val:
        ap.error(f"--select {args.select} needs --decoded-val N")
    decoded = seeded_sample(val, args.decoded_val)
    print(f"{len(train)} training, {len(val)} validation performances"
          f"{f' ({len(outer)} held-out reported beside them)' if inner_files else ''} loaded in {time.time() - t0:.0f} s",
          flush=True)
    net = build_net(args.hidden)
    if args.init is not None:
        load_onnx_weights(net, args.init)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    start, step, best, log = time.process_time(), 0, None, []
    wall0 = time.time()
    budget = args.minutes * 60
    wall = args.wall_minutes * 60 if args.wall_minutes else float("inf")

    def spent() -> float:  # the share of the budget used: CPU time or wall-clock time, whichever is further
        return max((time.process_time() - start) / budget, (time.time() - wall0) / wall)

    while spent() < 1.0:
        x, y = make_batch(train, rng, args.batch, args.length, args.warp, args.drop)
        loss = loss_of(net(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.val_every == 0:
            frac = spent()
            for g in opt.param_groups:  # cosine decay over the CPU budget
                g["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0)))
            v = validate(net, val)
            if decoded:
                v.update(validate_decoded(net, decoded))
            if inner_files:
                v.update({f"heldout_{k}": x for k, x in validate(net, outer).items()})
            log.append({"step": step, "cpu_s": round(time.process_time() - start),
                        "wall_s": round(time.time() - wall0), "train_loss": round(float(loss), 4), **v})
            print(json.dumps(log[-1]), flush=True)
            score = SELECT[args.select](v)
            if best is None or score < best[0]:
                best = (score, {k: t.clone() for k, t in net.state_dict().items()}, log[-1])
    if best is not None:
        net.load_state_dict(best[1])
    heldout_decoded = validate_decoded(net, outer) if decoded and inner_files else None
    if heldout_decoded:
        print(f"the kept weights on the held-out performances: {json.dumps(heldout_decoded)}", flush=True)
    meta = {"data": ("no ASAP performance (ASAP validates only)" if args.no_asap_training
                     else "ASAP (fosfrancesco/asap-dataset), training side of the renders' split")
                    + (f"; sequenced MIDI from {', '.join(map(str, args.extra_midi))} (test-set works left out)" if args.extra_midi else "")
                    + ("; the training works' score MIDI, jittered" if args.score_midi else "")
                    + (f"; transcriptions of training performances' renders ({args.transcribed})"
                       if args.transcribed else "")
                    + (f"; {args.patterns} synthetic accompaniment pieces" if args.patterns else ""),
            "train_performances": len(train), "val_performances": len(val), "inner_val_percent": args.inner_val,
            "extra_midi": [str(f) for f in args.extra_midi] if args.extra_midi else None, "score_midi": args.score_midi,
            "transcribed": str(args.transcribed) if args.transcribed else None, "patterns": args.patterns,
            "asap_training": not args.no_asap_training,
            "jitter": args.jitter, "steps": step,
            "cpu_minutes": round((time.process_time() - start) / 60, 1),
            "wall_minutes": round((time.time() - wall0) / 60, 1), "best": best[2] if best else None,
            "val_every": args.val_every, "batch": args.batch, "length": args.length, "lr": args.lr, "seed": args.seed,
            "warp": args.warp, "drop": args.drop, "select": args.select, "hidden": args.hidden,
            "init": str(args.init) if args.init else None, "decoded_val": args.decoded_val,
            "heldout_decoded": heldout_decoded}
    if args.outputs:
        net, meta["outputs"] = keep_outputs(net, args.outputs, args.hidden), args.outputs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(net, args.out, meta)
    print(json.dumps(meta), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
