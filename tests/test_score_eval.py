"""scripts/score_eval.py and transcribe/data/asap.py on a tiny ASAP-like fixture."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import load_script
from transcribe.data.asap import annotation_path, read_annotations
from transcribe.notefiles import write_midi
from transcribe.notes import Notes

XML = """<?xml version="1.0"?><score-partwise version="3.1"><part-list><score-part id="P1"><part-name>x</part-name>
</score-part></part-list><part id="P1"><measure number="1"><attributes><divisions>1</divisions><key><fifths>2</fifths>
</key><time><beats>3</beats><beat-type>4</beat-type></time></attributes>{}</measure></part></score-partwise>"""


def _note(step: str, alter: int, shown: str | None) -> str:
    acc = f"<accidental>{shown}</accidental>" if shown else ""
    alt = f"<alter>{alter}</alter>" if alter else ""
    return (f"<note><pitch><step>{step}</step>{alt}<octave>4</octave></pitch><duration>1</duration>"
            f"<type>quarter</type>{acc}</note>")


def test_written_counts_redundant_and_missing_accidentals():
    ev = load_script("score_eval")
    # D major: F# printed (redundant), F# again (fine), G# printed (needed), then G natural printed
    # (needed after the G#), C natural not printed (missing: the signature gives C#), G natural again
    # printed (redundant: the natural is in force)
    body = (_note("F", 1, "sharp") + _note("F", 1, None) + _note("G", 1, "sharp")
            + _note("G", 0, "natural") + _note("C", 0, None) + _note("G", 0, "natural"))
    got = ev.written(XML.format(body).encode())
    assert got == {"time_signature": "3/4", "key_signature": 2, "notes": 6, "redundant": 2, "missing": 1,
                   "cautionary": 0}


def _bar(number: int, notes: str, attributes: str = "") -> str:
    return f'<measure number="{number}">{attributes}{notes}</measure>'


def test_written_tells_cautionary_accidentals_from_other_redundant_ones():
    """D major (F#, C#). Bar 1: F natural (needed), then F#5 with its sharp (cautionary: F was altered
    otherwise in another octave earlier in the bar). Bar 2: F#4 with its sharp (cautionary: the previous
    bar's F4 was natural), F#4 with its sharp again (redundant, not cautionary: its own sharp is in force),
    C#4 with its sharp (redundant, not cautionary: nothing altered C before)."""
    ev = load_script("score_eval")
    head, tail = XML.split("<measure", 1)[0], "</part></score-partwise>"
    attrs = XML.split('<measure number="1">', 1)[1].split("{}", 1)[0]
    f5 = _note("F", 1, "sharp").replace("<octave>4</octave>", "<octave>5</octave>")
    body = (_bar(1, _note("F", 0, "natural") + f5 + _note("G", 0, None), attrs)
            + _bar(2, _note("F", 1, "sharp") + _note("F", 1, "sharp") + _note("C", 1, "sharp")))
    got = ev.written((head + body + tail).encode())
    assert got == {"time_signature": "3/4", "key_signature": 2, "notes": 6, "redundant": 4, "missing": 0,
                   "cautionary": 2}


def _march(path, bpm: float = 100.0, bars: int = 16) -> np.ndarray:
    """A 4/4 march (loud bass on 1, chords on 2-4, eighths in the melody) written as MIDI, with
    ASAP-style annotations beside it (D major); returns the beat times."""
    period = 60.0 / bpm
    beats = 1.0 + period * np.arange(bars * 4)
    rows = []
    for k, t in enumerate(beats):
        if k % 4 == 0:
            rows.append((t, t + 3.8 * period, 38, 105))
        else:
            rows += [(t, t + 0.8 * period, p, 55) for p in (54, 57)]
        rows.append((t, t + 0.45 * period, [74, 76, 78, 79][k % 4], 85))
        rows.append((t + period / 2, t + 0.95 * period, [73, 78, 81, 76][k % 4], 60))
    a = np.array(rows)
    write_midi(Notes(a[:, 0], a[:, 1], a[:, 2].astype(int), a[:, 3].astype(int)).sorted(), path)
    lines = []
    for k, t in enumerate(beats):
        label = "db" if k % 4 == 0 else "b"
        if k == 0:
            label += ",4/4,2"
        lines.append(f"{t}\t{t}\t{label}")
    annotation_path(path).write_text("\n".join(lines) + "\n")
    return beats


def test_evaluate_one_on_a_march(tmp_path):
    ev = load_script("score_eval")
    midi = tmp_path / "March" / "Perf01.mid"
    midi.parent.mkdir()
    beats = _march(midi)
    ann = read_annotations(annotation_path(midi))
    assert ann.time_signature == "4/4" and ann.key_signature == 2 and len(ann.downbeats) == 16
    assert ann.tempo == pytest.approx(100.0)
    row = ev.evaluate_one(midi, annotation_path(midi))
    assert row["beat_f"] > 0.95 and row["tempo_right"]
    assert row["key_signature"] == 2 and row["key_signature_right"]
    assert row["time_signature_ref"] == "4/4"
    assert row["redundant"] == 0 and row["written_notes"] == row["notes"] == 2 * len(beats) + 2 * 48 + 16  # no ties needed
    # a shorter window: only what starts in it
    short = ev.evaluate_one(midi, annotation_path(midi), seconds=10.0)
    assert short["notes"] < row["notes"] and short["minutes"] < 10.0 / 60 + 0.01
    summary = ev.summarise([row, {"file": "bad.mid", "error": "ValueError: broken"}])
    assert summary["performances"] == 1 and summary["errors"] == 1 and summary["beat_f"] == round(row["beat_f"], 4)


def test_a_malformed_annotation_names_the_file_and_line(tmp_path):
    bad = tmp_path / "x_annotations.txt"
    bad.write_text("1.0\t1.0\tdb,4/4,0\n1.5\t1.5\tzz\n")
    with pytest.raises(ValueError, match=r"x_annotations.txt: line 2: unknown beat type 'zz'"):
        read_annotations(bad)


def test_the_key_signature_in_force_at_given_times(tmp_path):
    """Annotation.key_signatures_at: the signature of the last change at or before each time (the
    first one before the first change)."""
    path = tmp_path / "y_annotations.txt"
    path.write_text("1.0\t1.0\tdb,4/4,-3\n2.0\t2.0\tb\n3.0\t3.0\tdb,4/4,2\n4.0\t4.0\tb\n")
    ann = read_annotations(path)
    assert ann.key_signatures_at(np.array([0.5, 1.0, 2.9, 3.0, 9.0])).tolist() == [-3, -3, -3, 2, 2]


def test_key_eval_decides_as_music21_and_estimate_key():
    """scripts/key_eval.py's numpy analysis gives music21's Temperley-Kostka-Payne correlations,
    and its signatures follow key_dominant_margin as estimate_key does."""
    from music21 import note, stream

    ke = load_script("key_eval")
    # a d minor opening on its dominant: A major chords 3 beats, d minor (D, F, B-flat) 1 beat
    hist = np.zeros(12)
    for p, d in [(45, 3), (61, 3), (64, 3), (69, 3), (50, 1), (62, 1), (65, 1), (70, 0.5)]:
        hist[p % 12] += d
    s = stream.Stream()
    for p, d in [(45, 3), (61, 3), (64, 3), (69, 3), (50, 1), (62, 1), (65, 1), (70, 0.5)]:
        n = note.Note(p)
        n.quarterLength = d
        s.insert(0.0, n)
    best = s.analyze("key.temperleykostkapayne")
    major, minor = (ke.correlations(hist, prof) for prof in ke.profiles())
    assert (best.tonic.pitchClass, best.mode) == (9, "major") and major[9] == pytest.approx(best.correlationCoefficient)
    d_minor = next(k for k in best.alternateInterpretations if k.tonic.pitchClass == 2 and k.mode == "minor")
    assert minor[2] == pytest.approx(d_minor.correlationCoefficient)
    assert ke.decide(major, minor, 0.0) == 3 and ke.decide(major, minor, 0.15) == -1
    assert ke.signature(5, True) == -4 and ke.signature(1, False) == -5  # f minor, D-flat major
    # --last-bass: a last chord on D makes D minor win within the margin (A major leads it by less than 0.15);
    # on A, or with too small a margin, the profiles decide as before
    lead = major[9] - max(minor[2], major[2])
    assert 0 < lead < 0.15
    assert ke.decide(major, minor, 0.0, 2, 0.15) == -1 and ke.decide(major, minor, 0.0, 9, 0.15) == 3
    assert ke.decide(major, minor, 0.0, 2, lead / 2) == 3
    assert ke.last_chord_bass(np.array([0.0, 1.0, 1.02, 1.03]), np.array([40, 62, 50, 57])) == 2  # D3 under the last chord
    assert ke.last_chord_bass(np.zeros(0), np.zeros(0)) is None


def test_key_eval_path_changes_only_where_it_pays():
    """key_eval.key_path: a Viterbi path of signatures that changes where a long stretch scores
    better by more than the penalty, and not for a short one."""
    ke = load_script("key_eval")
    scores = np.zeros((16, 12))
    scores[:, 6] = 0.5            # C major / a minor everywhere ...
    scores[5:11, 7] = 0.9         # ... G major better for six windows: 6 x 0.4 = 2.4
    scores[13, 5] = 2.0           # and F major for one window: 1.5 better
    assert ke.key_path(scores, 1.0).tolist() == [6] * 5 + [7] * 6 + [6] * 5
    assert ke.key_path(scores, 0.5).tolist() == [6] * 5 + [7] * 6 + [6, 6, 5, 6, 6]
    assert ke.key_path(scores, 1.3).tolist() == [6] * 16  # two changes cost 2.6 > 2.4
    major, minor = np.zeros(12), np.zeros(12)
    major[7], minor[4] = 0.8, 0.9  # G major 0.8, e minor 0.9: both one sharp
    sig = ke.signature_scores(major, minor)
    assert sig[7] == pytest.approx(0.9) and sig.argmax() == 7


def _work_with_triplets(folder, jitter: float = 0.01, seed: int = 0):
    """An ASAP-like work folder: ``midi_score.mid`` (two tracks: a right-hand melody of quarters,
    eighths and, in every other bar, a triplet of eighths; a left-hand bass note on every beat),
    its beat annotations (2/4 at 120 BPM), and one performance ``p.mid`` of it 25 % slower and
    0.5 s later with timing noise, each note sounding 90 % of its value (the score's 99 %, as
    ASAP's score MIDI ends its notes a little early), annotated likewise."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    bars = 8
    rh, lh = [], []
    for b in range(bars):
        for beat in range(2):
            k = 2 * b + beat
            lh.append((k, 1.0, 43 + (k % 3)))
            if beat == 1 and b % 2:
                rh += [(k + i / 3, 1 / 3, 72 + i) for i in range(3)]
            elif beat == 1:
                rh += [(k, 0.5, 76), (k + 0.5, 0.5, 74)]
            else:
                rh.append((k, 1.0, 79))

    def write(path, period, start, noise, played=0.9):
        pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)  # thirds of a beat in whole ticks
        for part in (rh, lh):
            inst = pretty_midi.Instrument(0)
            for pos, dur, p in part:
                t = start + pos * period + (rng.normal(0, noise) if noise else 0.0)
                inst.notes.append(pretty_midi.Note(velocity=80, pitch=p, start=t, end=t + played * dur * period))
            pm.instruments.append(inst)
        pm.write(str(path))
        lines = [f"{start + k * period}\t{start + k * period}\t" + ("db" if k % 2 == 0 else "b")
                 + (",2/4,0" if k == 0 else "") for k in range(2 * bars)]
        return "\n".join(lines) + "\n"

    (folder / "midi_score_annotations.txt").write_text(write(folder / "midi_score.mid", 0.5, 0.0, 0.0, 0.99))
    (folder / "p_annotations.txt").write_text(write(folder / "p.mid", 0.625, 0.5, jitter))
    return folder / "p.mid"


def test_notation_eval_scores_positions_triplets_and_staves(tmp_path, monkeypatch):
    import transcribe.score as score_module

    ev = load_script("notation_eval")
    perf = _work_with_triplets(tmp_path / "work")
    # the configured triplet_run (3) writes these lone triplet beats (one every other bar) on the binary grid
    row = ev.evaluate_one(perf, [0.05], 4, None)
    assert row["0.05"]["triplet_notes"] == 0 and row["0.05"]["right_thirds"] == 0
    monkeypatch.setattr(score_module, "configured_triplet_run", lambda: 1)  # every beat decides alone
    row = ev.evaluate_one(perf, [float("inf"), 0.05], 4, None)
    assert row["metre"] == "2/4"
    assert row["counted"] == 44 and row["thirds"] == 8  # 44 notes; the 4 triplets' 2nd and 3rd notes
    plain, trip = row["inf"], row["0.05"]
    assert plain["right_thirds"] == 0 and plain["triplet_notes"] == 0
    assert trip["right_thirds"] == 8 and trip["triplet_notes"] == 8
    assert trip["right"] == row["counted"]  # every note where the score has it
    # the melody sits above middle C and the bass below: the split point gets every staff right
    assert row["staff_counted"] == 44 and row["staff_split"] == 44
    # played at 90 % of their values, every note is written with the score's value (the gaps absorbed)
    assert row["values_counted"] == 44 and row["values_right"] == 44 and row["values_cut"] == 0
    # --voice-gains: nothing held over another onset of its staff, so no bar gets a second voice
    row = ev.evaluate_one(perf, [0.05], 4, None, voice_gains=(float("inf"), 1.0))
    assert row["voices"] == {g: {"right": 44, "second": 0, "notes": 44} for g in ("inf", "1")}
    # a performance whose beats do not correspond to the score's is skipped
    lines = (tmp_path / "work" / "p_annotations.txt").read_text().splitlines()
    (tmp_path / "work" / "p_annotations.txt").write_text("\n".join(lines[:-2]) + "\n")
    assert ev.evaluate_one(perf, [0.05], 4, None) is None


def test_score_eval_reads_the_notes_from_a_transcription(tmp_path):
    """--transcribed: the notes come from another MIDI file (the transcribed render), the
    annotations from the performance's."""
    ev = load_script("score_eval")
    perf = tmp_path / "perf.mid"
    _march(perf)
    other = tmp_path / "t.mid"
    write_midi(Notes(np.arange(40) * 0.37 + 1.0, np.arange(40) * 0.37 + 1.2, np.full(40, 60), np.full(40, 80)), other)
    a = ev.evaluate_one(perf, annotation_path(perf), beats_only=True)
    b = ev.evaluate_one(perf, annotation_path(perf), beats_only=True, notes_midi=other)
    assert a["notes"] != b["notes"] and b["notes"] == 40
    assert b["beat_f"] < a["beat_f"]


def test_the_score_benchmark_runs_both_stages_on_a_performance(tmp_path):
    """scripts/benchmark_score.py times the stage and its pre-round-4 reference on the same notes."""
    import json

    import transcribe.score as score_module

    bench = load_script("benchmark_score")
    midi = tmp_path / "march.mid"
    _march(midi, bars=8)
    exporter_before = score_module.score_bytes
    assert bench.main([str(midi), "--json", str(tmp_path / "b.json")]) == 0
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["performances"] == 1 and result["minutes"] > 0.2
    assert result["cpu_s_per_min"]["reference"] > 0 and result["cpu_s_per_min"]["current"] > 0
    assert score_module.score_bytes is exporter_before  # the reference stage is put back


def test_score_eval_runs_another_beat_model_when_asked(tmp_path, monkeypatch):
    """--beat-model: the beats come from that exported model, not the shipped one; a missing
    file is a clear error naming it."""
    import json

    import torch

    from transcribe import beatmodel

    monkeypatch.setattr(beatmodel, "WEIGHTS", beatmodel.WEIGHTS)  # restored after the test
    ev = load_script("score_eval")
    train = load_script("train_beat_model")
    perf = tmp_path / "March" / "Perf01.mid"
    perf.parent.mkdir()
    _march(perf)
    torch.manual_seed(0)
    other = tmp_path / "untrained.onnx"
    train.export(train.build_net(hidden=8), other, {})
    args = [str(perf), "--beats", "model", "--beats-only", "--out"]
    assert ev.main(args + [str(tmp_path / "shipped.json")]) == 0
    assert ev.main(args + [str(tmp_path / "other.json"), "--beat-model", str(other)]) == 0
    shipped, untrained = (json.loads((tmp_path / n).read_text())["performances"][0] for n in ("shipped.json", "other.json"))
    assert "beat_f" in shipped and untrained.get("beat_f") != shipped["beat_f"]  # an error row or other beats
    assert beatmodel.WEIGHTS == other
    with pytest.raises(SystemExit):
        ev.main([str(perf), "--beat-model", str(tmp_path / "nothing.onnx")])


def test_the_decoding_sweep_refuses_a_wrong_variant_or_an_unsaid_split(capsys):
    """scripts/beat_decoding_eval.py: a misspelt decoding is an error before anything is read (a
    decoding that raises would otherwise count as one that found too few beats), and the training
    performances the model did not see must be said (--seen or --inner-val)."""
    bde = load_script("beat_decoding_eval")
    for variants, what in (("global/downbeats/biased", "'biased'"), ("global/bars", "'bars'"),
                           ("global/downbeats/unbiased/0/onsets", "'0'"), ("global/downbeats/unbiased/wide", "'wide'"),
                           ("global", "not tempo/metre")):
        with pytest.raises(SystemExit):
            bde.main(["--inner-val", "15", "--asap", "/nonexistent", "--variants", variants])
        assert what in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bde.main(["--asap", "/nonexistent"])
    assert "--seen N or --inner-val P" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bde.main(["--asap", "/nonexistent", "--seen", "10", "--rest"])
    assert "--rest needs --inner-val" in capsys.readouterr().err
