"""The score stage's CPU time per minute of music (issue 25's budget: 1 s), against a reference in
the same run: the stage as it was before round 4 (music21's own exporter, which deep-copies the
score, and librosa's tempo estimate from a tempogram window at every frame).

For each performance (ASAP performance MIDI, first ``--seconds``), the two variants run one
after the other in alternating order, ``--rounds`` times; the process time of beats + score +
MusicXML is summed per variant and divided by the minutes of music.

    python scripts/benchmark_score.py --asap data/asap --shared-data ../shared/data --limit 12
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def reference_stage():
    """The stage before round 4: music21's exporter and librosa's own tempo estimate."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    import transcribe.beats as beats_module
    import transcribe.score as score_module

    def librosa_tempo(envelope, fps, start_bpm, prior_octaves=1.0, lags="windowed"):  # lags: the tracker's, windowed
        import librosa

        return float(librosa.feature.tempo(onset_envelope=np.asarray(envelope, dtype=np.float64), sr=fps,
                                           hop_length=1, start_bpm=start_bpm, std_bpm=prior_octaves)[0])

    saved = score_module.score_bytes, score_module.global_tempo, beats_module.global_tempo
    score_module.score_bytes = lambda score: GeneralObjectExporter(score).parse()
    score_module.global_tempo = beats_module.global_tempo = librosa_tempo
    try:
        yield
    finally:
        score_module.score_bytes, score_module.global_tempo, beats_module.global_tempo = saved


def stage_cpu(notes) -> float:
    """Process time of beats + score + MusicXML for ``notes`` (the tracker's beats)."""
    import transcribe.score as score_module

    t0 = time.process_time()
    beats = score_module.estimate_beats(None, None, notes, method="notes")
    score_module.score_bytes(score_module.notes_to_score(notes, beats))
    return time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="performance MIDI files (default: the held-out ASAP split)")
    ap.add_argument("--asap", type=Path, default=Path("data/asap"))
    ap.add_argument("--shared-data", type=Path, default=None, help="where test_pieces.csv is")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--limit", type=int, default=None, help="every k-th held-out performance, this many")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from transcribe.data.asap import split
    from transcribe.notefiles import read_midi

    files = args.files or split(args.asap, args.shared_data)["val"]
    if args.limit and not args.files:
        files = files[:: max(1, len(files) // args.limit)][: args.limit]
    pieces = []
    for f in files:
        n = read_midi(f).sorted()
        pieces.append(n.select(n.onsets < args.seconds))
    minutes = sum(float(n.offsets.max() - n.onsets.min()) / 60.0 for n in pieces)
    stage_cpu(pieces[0])  # warm-up: imports, numba
    with reference_stage():
        stage_cpu(pieces[0])
    cpu = {"reference": 0.0, "current": 0.0}
    for r in range(args.rounds):
        for i, n in enumerate(pieces):
            for variant in (("reference", "current") if (i + r) % 2 == 0 else ("current", "reference")):
                if variant == "reference":
                    with reference_stage():
                        cpu[variant] += stage_cpu(n)
                else:
                    cpu[variant] += stage_cpu(n)
    per_min = {k: round(v / (minutes * args.rounds), 3) for k, v in cpu.items()}
    result = {"performances": len(pieces), "minutes": round(minutes, 2), "rounds": args.rounds,
              "cpu_s_per_min": per_min, "speed_vs_reference": round(cpu["reference"] / cpu["current"], 3)}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
