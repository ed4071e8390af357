"""One MIDI event builder and writer (transcribe/midifile.py) behind every MIDI file the package
makes: the .mid output, the beat-aligned .mid, the file --sonify plays and the renderer's file
order the events at one tick by the same rule, and mido reads back what was built."""

from __future__ import annotations

import io

import mido
import numpy as np

from transcribe import midifile
from transcribe.notefiles import midi_bytes, write_midi
from transcribe.notes import Notes


def tie_notes() -> Notes:
    """At 1.0 s: key 60 ends and is struck again, key 64 ends, key 55 starts (and the pedal is lifted)."""
    return Notes([0.5, 0.25, 1.0, 1.0, 0.0], [1.0, 1.0, 1.5, 1.5, 2.0], [60, 64, 60, 55, 40], [70, 80, 90, 60, 50])


def events_at_busiest_tick(data: bytes) -> list[tuple[str, int, bool]]:
    """(kind, key or controller, is a note-off) of the channel-0 events at the tick with the most
    note events, in file order."""
    mid = mido.MidiFile(file=io.BytesIO(data))
    by_tick: dict[int, list] = {}
    for tr in mid.tracks:
        tick = 0
        for msg in tr:
            tick += msg.time
            if msg.type in ("note_on", "note_off", "control_change") and msg.channel == 0 and \
                    not (msg.type == "control_change" and msg.control != 64):
                by_tick.setdefault(tick, []).append(msg)
    busiest = max(by_tick.values(), key=lambda msgs: sum(m.type != "control_change" for m in msgs))
    return [("cc", m.control, False) if m.type == "control_change" else
            ("note", m.note, m.type == "note_off" or m.velocity == 0) for m in busiest]


def test_every_midi_file_orders_a_tick_by_the_same_rule(tmp_path):
    from transcribe.render.synth import Piano, write_render_midi
    from transcribe.score import Beats, beat_aligned_midi
    from transcribe.sonify import SonifyConfig, playback_midi

    notes, pedal = tie_notes(), np.array([[0.2, 1.0]])
    rule = [("cc", 64, False), ("note", 55, False), ("note", 60, True), ("note", 60, False), ("note", 64, True)]
    write_midi(notes, tmp_path / "out.mid", pedal=pedal)
    beat_aligned_midi(notes, Beats(np.arange(0.0, 3.0, 0.5), 120.0), tmp_path / "beats.mid", pedal=pedal)
    write_render_midi(notes, Piano("p", "unused.sf2"), tmp_path / "render.mid")
    files = {"out": (tmp_path / "out.mid").read_bytes(), "beats": (tmp_path / "beats.mid").read_bytes(),
             "sonify": playback_midi(notes, pedal, SonifyConfig.default(), 3.0),
             "render": (tmp_path / "render.mid").read_bytes()}
    for name, data in files.items():
        want = rule if name != "render" else rule[1:]  # the renderer plays no pedal
        assert events_at_busiest_tick(data) == want, name


def test_sonify_plays_the_output_at_the_outputs_tempo_to_the_recordings_end():
    """The file FluidSynth plays is the .mid output with the configured preset and its end at the
    recording's length, at the writer's own tempo (not a copy of it)."""
    from transcribe.sonify import SonifyConfig, playback_midi

    notes = tie_notes()
    cfg = SonifyConfig.default()
    played = mido.MidiFile(file=io.BytesIO(playback_midi(notes, None, cfg, 7.0)))
    assert abs(played.length - 7.0) < 1e-3
    out = mido.MidiFile(file=io.BytesIO(midi_bytes(notes)))
    notes_of = [[(m.type, m.note, m.velocity) for m in tr if m.type == "note_on"]
                for tr in (out.tracks[1], played.tracks[1])]
    assert notes_of[0] == notes_of[1]
    assert [m.program for m in played.tracks[1] if m.type == "program_change"] == [cfg.program]


def test_the_writer_is_what_mido_reads():
    rng = np.random.default_rng(0)
    n = 500
    on = rng.integers(0, 200_000, n)
    events = (midifile.note_events(on, on + rng.integers(1, 30_000, n), rng.integers(21, 109, n),
                                   rng.integers(1, 128, n), channel=3)
              + midifile.control_events(rng.integers(0, 200_000, 50), 64, rng.integers(0, 128, 50)))
    head = [(0, midifile.track_name("x")), (0, midifile.channel(midifile.PROGRAM_CHANGE | 3, 5)),
            (0, midifile.tempo(400_000))]
    data = midifile.midi_file([midifile.track(head, events, end_tick=300_000)], 480)
    mid = mido.MidiFile(file=io.BytesIO(data))
    tick, got = 0, []
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type in ("note_on", "control_change"):
            got.append((tick, 0xB0 if msg.type == "control_change" else 0x90, msg.channel,
                        msg.control if msg.type == "control_change" else msg.note,
                        msg.value if msg.type == "control_change" else msg.velocity))
    s = events.sorted()
    assert got == [(int(t), int(st) & 0xF0, int(st) & 0x0F, int(a), int(b))
                   for t, st, a, b in zip(s.ticks, s.status, s.data1, s.data2)]
    assert tick == 300_000 and mid.tracks[0][1].program == 5
