"""Round 55 (4): the README's two scores with the level switch off and on: metre, tempo, first downbeat, MusicXML."""
from pathlib import Path
import transcribe.score as S
from transcribe.notefiles import read_midi

out = Path("runs/score49/eng"); out.mkdir(exist_ok=True)
orig = S.configured_level_switch
for name, conf in (("off", lambda: (float("inf"), float("inf"), 0.0)), ("on", orig)):
    S.configured_level_switch = conf
    for piece, midi, secs in (("minuet", Path("runs/score33/eng/demo.mid"), 1e9),
                              ("bwv867", Path("runs/score23/Bach_Prelude_bwv_867_HuNY01M.mid"), 30)):
        notes = read_midi(midi).sorted()
        notes = notes.select(notes.onsets < secs)
        b = S.estimate_beats(None, None, notes)
        print(name, piece, b.time_signature, round(b.tempo), b.source, "variation", round(S.beat_variation(b), 4),
              "first downbeat", round(float(b.times[b.downbeat % b.beats_per_bar]), 3))
        S.write_musicxml(notes, out / f"{piece}_{name}.musicxml")
