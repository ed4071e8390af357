"""transcribe.metrics.error_breakdown: where a transcription's note errors are (scripts/error_analysis.py)."""

from __future__ import annotations

import numpy as np
import pytest

from transcribe.metrics import breakdown_rates, error_breakdown, sum_breakdowns, transcription_metrics
from transcribe.notes import Notes


def notes(rows: list[tuple[float, float, int, int]]) -> Notes:
    a = np.array(rows, dtype=float).reshape(-1, 4)
    return Notes(a[:, 0], a[:, 1], a[:, 2].astype(int), a[:, 3].astype(int))


REF = notes([(1.0, 2.0, 60, 30),    # soft, found exactly
             (3.0, 4.0, 40, 90),    # loud bass, found 90 ms late
             (5.0, 6.0, 90, 60),    # treble, missed
             (6.0, 8.0, 64, 60)])   # found, and sounding under three false notes
EST = notes([(1.0, 2.0, 60, 50), (3.09, 4.0, 40, 70), (6.0, 8.0, 64, 55),
             (6.0, 7.0, 76, 40),    # an octave above a sounding note
             (6.5, 7.0, 65, 40),    # a semitone above it
             (7.0, 7.5, 64, 40),    # the held note struck again
             (10.0, 11.0, 30, 40)])  # nothing near


def test_errors_are_counted_and_classed():
    b = error_breakdown(REF, EST)
    assert (b["ref"], b["est"]) == (4, 7)
    assert (b["matched@25ms"], b["matched@50ms"], b["matched@100ms"]) == (2, 2, 3)
    assert (b["ref soft (< 40)"], b["hit soft (< 40)"]) == (1, 1)
    assert (b["ref medium (40-79)"], b["hit medium (40-79)"]) == (2, 1)
    assert (b["ref loud (>= 80)"], b["hit loud (>= 80)"]) == (1, 0)
    assert (b["ref bass (< C3)"], b["hit bass (< C3)"], b["est bass (< C3)"], b["true bass (< C3)"]) == (1, 0, 2, 0)
    assert (b["ref treble (>= C6)"], b["hit treble (>= C6)"], b["est treble (>= C6)"]) == (1, 0, 0)
    assert {k: b[f"false {k}"] for k in ("timing", "octave", "semitone", "repeat", "other")} == \
        {"timing": 1, "octave": 1, "semitone": 1, "repeat": 1, "other": 1}
    assert (b["miss timing"], b["miss missed"]) == (1, 1)
    assert sorted(b["velocity pairs"]) == [(30.0, 50.0), (60.0, 55.0)]


def test_rates_agree_with_the_metrics_and_add_up():
    b = error_breakdown(REF, EST)
    rates = breakdown_rates(sum_breakdowns([b, b]))
    assert rates["note F1 50ms"] == pytest.approx(transcription_metrics(REF, EST)["note_f1"])
    assert rates["note F1 100ms"] > rates["note F1 50ms"]
    assert rates["recall soft (< 40)"] == 1.0 and rates["recall loud (>= 80)"] == 0.0
    assert rates["precision middle (C3-B5)"] == pytest.approx(2 / 5)
    shares = [v for k, v in rates.items() if k.startswith("share of false")]
    assert sum(shares) == pytest.approx(1.0) and rates["share of false notes: octave"] == pytest.approx(0.2)
    assert rates["share of missed notes: timing"] == pytest.approx(0.5)


def test_a_perfect_transcription_has_no_errors():
    b = error_breakdown(REF, REF)
    assert b["matched@25ms"] == 4 and sum(v for k, v in b.items() if k.startswith(("false", "miss"))) == 0


def test_error_analysis_with_the_pedal_ring_scores_the_pedalled_files_only(tmp_path):
    """scripts/error_analysis.py --resonance, run as a user runs it with the shipped model: the
    files whose pedal is unknown are left out, the rest transcribed with the ring added."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import soundfile as sf

    from transcribe.pedal import pedal_sidecar, write_pedal

    from .conftest import SR, random_notes, synth, write_tsv

    for name in ("a_pedalled", "b_unknown"):
        piece = random_notes(3, seconds=4.0, n=12)
        sf.write(tmp_path / f"{name}.flac", synth(piece, seed=0), SR)
        write_tsv(piece, tmp_path / f"{name}.tsv")
    write_pedal(np.array([[0.2, 3.5]]), pedal_sidecar(tmp_path / "a_pedalled.tsv"))
    out = tmp_path / "errors.json"
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, str(root / "scripts" / "error_analysis.py"), "--data-dir", str(tmp_path),
                          "--resonance", "-12", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["resonance_db"] == -12.0 and [Path(f).name for f in report["files"]] == ["a_pedalled.flac"]
    assert report["counts"]["ref"] == 12
