"""SoundFont rendering (transcribe.render) and the note sources it renders (generated material,
humanised scores). Tests that play audio need the FluidSynth command and Debian's SoundFonts
(.ci/run installs them); they are skipped only when the fluidsynth binary is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transcribe.config import compose
from transcribe.data.pairs import find_pairs
from transcribe.notefiles import read_midi, read_tsv
from transcribe.notes import MAX_PITCH, MIN_PITCH, Notes
from transcribe.data.layout import partners_of
from transcribe.notefiles import read_labels
from transcribe.render.latency import piano_latency
from transcribe.render.prepare import prepare_notes
from transcribe.render.run import render_notes, render_piece
from transcribe.render.synth import Piano, fluidsynth_binary, pianos_from_cfg, write_render_midi

from .conftest import require_dev, write_tsv

needs_fluidsynth = pytest.mark.skipif(fluidsynth_binary() is None,
                                      reason="FluidSynth not installed (apt-get install fluidsynth; .ci/run does)")


def render_cfg(tmp_path: Path | None = None):
    return compose("render", [f"output_dir={tmp_path / 'renders'}"] if tmp_path is not None else [])


def first_above(y: np.ndarray, sr: int, fraction: float = 0.05) -> float:
    """Seconds to the first sample whose magnitude reaches ``fraction`` of the peak magnitude."""
    mag = np.abs(y)
    return float(np.argmax(mag >= fraction * mag.max())) / sr


# --------------------------------------------------------------------------------- note rules


def test_prepare_notes_repeated_keys_duplicates_short_notes_and_start():
    notes = Notes(
        onsets=[0.01, 0.50, 0.5004, 1.0, 1.2, 2.0, 2.005, 3.0, 3.0],
        offsets=[0.30, 1.40, 0.90, 1.1, 1.25, 2.001, 2.5, 3.5, 3.5],
        pitches=[60, 62, 62, 64, 64, 65, 65, 10, 70],
        velocities=[80, 50, 90, 70, 70, 60, 60, 80, 0],
    )
    out = prepare_notes(notes, min_duration=0.02, min_start=0.05)
    shift = 0.04  # the first onset (0.01) moves to min_start
    rows = sorted(zip(np.round(out.onsets - shift, 6), np.round(out.offsets - shift, 6), out.pitches, out.velocities))
    assert rows == [
        (0.01, 0.30, 60, 80),
        (0.50, 1.40, 62, 90),    # struck twice within 1 ms: one note, the longer and louder
        (1.0, 1.1, 64, 70),
        (1.2, 1.25, 64, 70),
        (2.0, 2.005, 65, 60),    # too short, but the key is struck again 5 ms later: ends there
        (2.005, 2.5, 65, 60),
        (3.0, 3.5, 70, 1),       # velocity clipped to 1..127; pitch 10 is not a piano key
    ]
    overlap = Notes([1.0, 1.5], [2.0, 2.5], [50, 50], [60, 60])  # a key struck again while held
    cut = prepare_notes(overlap)
    assert cut.offsets.tolist() == [1.5, 2.5]


# A sustain-pedal and repeated-note scenario as a MIDI file: CC64 (time, value) and
# (pitch, onset, key release) with the offsets the labels must have.
PEDAL = [(0.4, 127), (1.6, 0), (3.2, 100), (5.0, 10)]
PLAYED = [  # pitch, onset, key release
    (60, 0.2, 0.6),   # released while the pedal is down: sounds until the pedal is lifted (1.6)
    (64, 2.0, 2.4),   # no pedal
    (67, 3.0, 3.5),   # released under the pedal, struck again at 4.0: ends at 4.0
    (67, 4.0, 4.2),   # ... the new note is held by the pedal until 5.0
    (74, 5.5, 6.0),   # released and struck again at the same instant (note-off and note-on on one tick)
    (74, 6.0, 6.3),
    (48, 7.0, 7.5),
]
EXPECTED = [(0.2, 1.6, 60), (2.0, 2.4, 64), (3.0, 4.0, 67), (4.0, 5.0, 67), (5.5, 6.0, 74), (6.0, 6.3, 74),
            (7.0, 7.5, 48)]


def write_scenario_midi(path: Path) -> None:
    import mido

    tpb, events = 480, []  # 120 bpm: 960 ticks per second, all times above are whole ticks
    for pitch, on, off in PLAYED:
        events += [(round(on * 960), 1, mido.Message("note_on", note=pitch, velocity=90)),
                   (round(off * 960), 0, mido.Message("note_off", note=pitch, velocity=0))]
    # 72 struck again while still held (no note-off in between): one note-off ends both strikes
    events += [(round(8.0 * 960), 1, mido.Message("note_on", note=72, velocity=90)),
               (round(8.5 * 960), 1, mido.Message("note_on", note=72, velocity=90)),
               (round(8.8 * 960), 0, mido.Message("note_off", note=72, velocity=0))]
    events += [(round(t * 960), 0, mido.Message("control_change", control=64, value=v)) for t, v in PEDAL]
    events.sort(key=lambda e: (e[0], e[1]))
    track, last = mido.MidiTrack(), 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    mid = mido.MidiFile(ticks_per_beat=tpb)
    mid.tracks.append(track)
    mid.save(str(path))


def test_midi_source_labels_apply_pedal_and_repeated_key_rules(tmp_path):
    path = tmp_path / "scenario.mid"
    write_scenario_midi(path)
    labels = prepare_notes(read_labels(path), min_start=0.0)
    got = [(round(a, 4), round(b, 4), int(p)) for a, b, p in zip(labels.onsets, labels.offsets, labels.pitches)]
    want = sorted(EXPECTED + [(8.0, 8.5, 72), (8.5, 8.8, 72)], key=lambda r: (r[0], r[2]))
    assert got == want


def test_render_midi_events_are_the_labels(tmp_path):
    """The MIDI file FluidSynth plays holds exactly the labelled notes: each note-on at the
    label onset less the piano's latency, each note-off at the label offset."""
    import mido

    notes = prepare_notes(Notes([0.3, 0.3, 0.8, 1.3, 1.3004], [0.8, 1.0, 1.2, 1.6, 1.9], [60, 64, 60, 72, 40],
                                [30, 90, 127, 64, 1]))
    lat = np.linspace(0.002, 0.010, 5)

    class FixedLatency:
        def __call__(self, pitches, velocities):
            return lat

    for latency, shift in ((None, np.zeros(5)), (FixedLatency(), lat)):
        path = tmp_path / "events.mid"
        write_render_midi(notes, Piano("p", "unused.sf2", bank=8, program=1), path, latency)
        mid = mido.MidiFile(str(path))
        tick_s = mido.tick2second(1, mid.ticks_per_beat, 1_000_000)
        t, started, played = 0, {}, []
        for msg in mid.tracks[0]:
            t += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                started[msg.note] = (t * tick_s, msg.velocity)
            elif msg.type in ("note_off", "note_on"):
                on, vel = started.pop(msg.note)
                played.append((on, t * tick_s, msg.note, vel))
        assert not started
        assert [m.type for m in mid.tracks[0][:4]] == ["set_tempo", "control_change", "control_change", "program_change"]
        assert mid.tracks[0][1].value == 8 and mid.tracks[0][3].program == 1
        # note-ons early by the latency; note-offs at the offsets, but never after the key's next note-on
        offs = notes.offsets.copy()
        offs[0] = min(offs[0], notes.onsets[2] - shift[2])  # key 60 is struck again at 0.8 s
        want = sorted(zip(notes.onsets - shift, offs, notes.pitches, notes.velocities), key=lambda r: (r[0], r[2]))
        played = sorted(played, key=lambda r: (r[0], r[2]))
        assert len(played) == len(want)
        for (on, off, p, v), (won, woff, wp, wv) in zip(played, want):
            assert (p, v) == (wp, wv)
            assert on == pytest.approx(won, abs=1e-4) and off == pytest.approx(woff, abs=1e-4)


# ------------------------------------------------------------------------------ with FluidSynth


@needs_fluidsynth
@pytest.mark.parametrize("piano", ["fluidr3-grand", "musescore-grand", "timgm6mb-piano"])
def test_single_note_onset_lands_within_5ms_of_its_label(piano):
    cfg = render_cfg()
    p = pianos_from_cfg(cfg)[piano]
    for pitch, onset, velocity in ((69, 0.7371, 80), (21, 0.5123, 30), (100, 0.6017, 120)):
        y, labels = render_notes(Notes([onset], [onset + 0.4], [pitch], [velocity]), p, cfg)
        assert len(labels) == 1 and labels.onsets[0] == pytest.approx(onset)
        heard = first_above(y, cfg.sample_rate)
        assert abs(heard - onset) < 0.005, f"{piano} key {pitch}: heard at {heard:.4f} s, label {onset:.4f} s"
        if pitch == 21:  # the compensation is what puts it there
            raw = render_cfg()
            raw.latency.compensate = False
            late = first_above(render_notes(Notes([onset], [onset + 0.4], [pitch], [velocity]), p, raw)[0],
                               cfg.sample_rate)
            assert late - heard > 0.0015
    lat = piano_latency(p, cfg.synth, cfg.latency).seconds
    assert lat.shape == (len(cfg.latency.velocities), MAX_PITCH - MIN_PITCH + 1)
    assert 0.0 < lat.min() and lat.max() < 0.03


@needs_fluidsynth
def test_rendered_midi_with_pedal_is_heard_as_labelled(tmp_path):
    """The scenario file rendered: labels as expected, and the pedal-extended note audibly
    sounds after its key release, unlike the same note rendered without the pedal."""
    cfg = render_cfg(tmp_path)
    piano = pianos_from_cfg(cfg)["timgm6mb-piano"]
    path = tmp_path / "scenario.mid"
    write_scenario_midi(path)
    audio = tmp_path / "out" / "scenario.flac"
    labels, seconds = render_piece(read_labels(path), piano, cfg, audio)
    written = read_tsv(audio.with_suffix(".tsv"))
    np.testing.assert_allclose(written.onsets, labels.onsets, atol=1e-6)
    np.testing.assert_allclose(written.offsets, labels.offsets, atol=1e-6)
    assert written.pitches.tolist() == labels.pitches.tolist()
    assert seconds == pytest.approx(labels.end + cfg.synth.tail_s, abs=1e-3)
    y, sr = sf.read(audio, dtype="float32")
    assert len(y) == round(seconds * sr)

    dry, _ = render_notes(read_midi(path, sustain=False), piano, cfg)

    def level_at(x: np.ndarray, t0: float, t1: float, f0: float) -> float:
        seg = x[int(t0 * sr): int(t1 * sr)] * np.hanning(int(t1 * sr) - int(t0 * sr))
        spec = np.abs(np.fft.rfft(seg))
        freqs = np.fft.rfftfreq(len(seg), 1 / sr)
        return float(spec[(freqs > f0 * 0.97) & (freqs < f0 * 1.03)].max())

    c4 = 261.63  # key 60: released at 0.6 s, the pedal holds it to 1.6 s
    assert 20 * np.log10(level_at(y, 1.2, 1.5, c4) / level_at(dry, 1.2, 1.5, c4)) > 10


@needs_fluidsynth
def test_render_command_writes_pairs_the_datasets_find(tmp_path):
    src = tmp_path / "labels"
    src.mkdir()
    a = Notes([0.3, 0.8, 1.2], [0.7, 1.5, 1.9], [48, 60, 67], [60, 80, 100])
    write_tsv(a, src / "MAPS_MUS-a_AkPnBcht.tsv")
    write_tsv(a, src / "MAPS_MUS-a_AkPnStgb.tsv")  # the same piece again (as MAPS has): rendered once
    write_tsv(Notes([0.5], [1.0], [72], [90]), src / "MAPS_MUS-b_SptkBGCl.tsv")  # the held-out piano
    out = tmp_path / "renders"
    args = [sys.executable, "-m", "transcribe.render", f"output_dir={out}", f"sources.maps.folder={src}",
            "sources.music21.enabled=false", "sources.generated.count=1", "sources.generated.seconds=4",
            "sources.generated.pianos=[timgm6mb-piano,csound-piano]", "sources.generated.pianos_per_piece=1",
            "sources.maps.pianos=[timgm6mb-piano,csound-piano]"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    pairs = find_pairs(out)
    names = sorted(str(p[0].relative_to(out)) for p in pairs)
    assert len(names) == 3 and all(p[1].suffix == ".tsv" for p in pairs)
    assert names[1:] == ["maps/csound-piano/MAPS_MUS-a_AkPnBcht.flac", "maps/timgm6mb-piano/MAPS_MUS-a_AkPnBcht.flac"]
    assert names[0].startswith("generated/") and names[0].endswith("/gen_0000_0000.flac")
    labels = read_tsv(out / "maps/csound-piano/MAPS_MUS-a_AkPnBcht.tsv")
    np.testing.assert_allclose(labels.onsets, a.onsets, atol=1e-6)
    np.testing.assert_allclose(labels.offsets, a.offsets, atol=1e-6)
    partner, = partners_of(out / "maps/csound-piano/MAPS_MUS-a_AkPnBcht.flac")
    assert partner == out / "maps/timgm6mb-piano/MAPS_MUS-a_AkPnBcht.flac"
    assert partner.is_file() and sf.info(partner).frames == sf.info(pairs[1][0]).frames
    assert sf.info(pairs[1][0]).samplerate == 16000 and sf.info(pairs[1][0]).channels == 1
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and '"rendered": 0, "skipped": 3' in again.stdout


@needs_fluidsynth
def test_two_shards_rendering_at_once_make_the_whole_render_and_one_manifest(tmp_path):
    """shard=0/2 and shard=1/2 started together into one folder: every piece rendered once, by
    one of them, and manifest.json lists all of them (each process merges under a lock)."""
    base = [sys.executable, "-m", "transcribe.render", "sources.maps.enabled=false", "sources.music21.enabled=false",
            "sources.generated.count=5", "sources.generated.seconds=3", "sources.generated.pianos=[timgm6mb-piano]",
            "sources.generated.pianos_per_piece=1"]
    whole = subprocess.run(base + [f"output_dir={tmp_path / 'whole'}"], capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "shared"
    procs = [subprocess.Popen(base + [f"output_dir={out}", f"shard={i}/2"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in results), [err for _, err, _ in results]
    rendered = [json.loads(stdout.strip().splitlines()[-1])["rendered"] for stdout, _, _ in results]
    assert sorted(rendered) == [2, 3]
    names = sorted(str(a.relative_to(out)) for a, _ in find_pairs(out))
    assert names == sorted(str(a.relative_to(tmp_path / "whole")) for a, _ in find_pairs(tmp_path / "whole"))
    assert len(names) == 5
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["renders"]) == names and manifest["summary"]["files"] == 5
    for n in names:  # the same seeded pieces as the unsharded render
        np.testing.assert_array_equal(read_tsv((out / n).with_suffix(".tsv")).pitches,
                                      read_tsv((tmp_path / "whole" / n).with_suffix(".tsv")).pitches)
    # a run stopped before it wrote its records: the next run records what it finds rendered
    (out / "manifest.json").unlink()
    again = subprocess.run(base + [f"output_dir={out}"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and '"rendered": 0, "skipped": 5' in again.stdout
    recovered = json.loads((out / "manifest.json").read_text())
    assert recovered["renders"] == manifest["renders"]
    bad = subprocess.run(base + [f"output_dir={tmp_path / 'bad'}", "shard=2/2"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "shard must be I/N" in bad.stderr


# ------------------------------------------------------------------------------ note sources


def test_generated_pieces_are_seeded_and_cover_the_rare_cases():
    from transcribe.render.generate import generate_piece

    cfg = render_cfg().sources.generated
    a, b, c = generate_piece(7, cfg), generate_piece(7, cfg), generate_piece(8, cfg)
    assert np.array_equal(a.onsets, b.onsets) and np.array_equal(a.velocities, b.velocities)
    assert len(a) != len(c) or not np.array_equal(a.onsets, c.onsets)
    pieces = [generate_piece(s, cfg) for s in range(4)]
    keys = np.unique(np.concatenate([p.pitches for p in pieces]))
    assert keys.tolist() == list(range(MIN_PITCH, MAX_PITCH + 1))
    vel = np.concatenate([p.velocities for p in pieces])
    assert vel.min() <= 10 and vel.max() >= 120
    for p in pieces:
        assert p.end >= cfg.seconds * 0.9
    onsets = np.concatenate([np.round(p.onsets, 2) for p in pieces])
    assert np.unique(onsets, return_counts=True)[1].max() >= 6  # dense chords
    fast = []
    for p in pieces:
        for k in np.unique(p.pitches):
            fast.append(np.diff(np.sort(p.onsets[p.pitches == k])).min(initial=np.inf))
    assert min(fast) < 0.1  # repeated notes faster than 10 per second


def test_humanize_is_seeded_and_plays_the_score():
    from transcribe.render.scores import humanize

    h = render_cfg().sources.music21.humanize
    score = Notes(np.repeat(np.arange(40) * 0.5, 2), np.repeat(np.arange(40) * 0.5 + 0.5, 2),
                  np.tile([48, 64], 40), np.full(80, 64))
    a = humanize(score, np.random.default_rng(1), h, beat_s=0.5)
    b = humanize(score, np.random.default_rng(1), h, beat_s=0.5)
    c = humanize(score, np.random.default_rng(2), h, beat_s=0.5)
    assert np.array_equal(a.onsets, b.onsets) and np.array_equal(a.velocities, b.velocities)
    assert not np.array_equal(a.onsets, c.onsets)
    dev = a.onsets - score.sorted().onsets
    assert 0.002 < np.std(dev) < 0.1  # timing varies, but the piece keeps its rhythm
    assert len(np.unique(a.velocities)) > 5 and a.velocities.min() >= 1 and a.velocities.max() <= 127


def test_music21_corpus_piece_becomes_notes():
    require_dev("music21")
    from transcribe.render.scores import corpus_pieces

    src = render_cfg().sources.music21.copy()
    src.composers, src.count, src.max_seconds, src.min_notes = ["bach"], 1, 20, 10
    (stem, make), = list(corpus_pieces(src))
    notes = make().notes
    assert stem.startswith("m21_bach_") and len(notes) >= 10
    assert 0.5 <= notes.onsets.min() and notes.end < 20 + 5
    assert np.array_equal(notes.onsets, make().notes.onsets)  # the same draw every time
