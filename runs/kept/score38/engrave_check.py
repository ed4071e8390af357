"""Round 38 (d): the README's two scores (demo minuet, BWV 867's first 30 s) written with staves.onnx and with
beats_open3 as the staff model (bar lines and staves); prints the metre, tempo and first downbeat and writes MusicXML."""
from pathlib import Path
import transcribe.beatmodel as B
import transcribe.score as S
from transcribe.notefiles import read_midi

out = Path("runs/score38/eng"); out.mkdir(exist_ok=True)
for name, model in (("old", B.STAVES_WEIGHTS), ("new", Path("runs/score38/beats_open3.onnx").resolve())):
    B.STAVES_WEIGHTS = model
    for piece, midi, secs in (("minuet", Path("runs/score33/eng/demo.mid"), 1e9),
                              ("bwv867", Path("runs/score23/Bach_Prelude_bwv_867_HuNY01M.mid"), 30)):
        notes = read_midi(midi).sorted()
        notes = notes.select(notes.onsets < secs)
        b = S.estimate_beats(None, None, notes)
        print(name, piece, b.time_signature, round(b.tempo), "first downbeat", round(float(b.times[b.downbeat % b.beats_per_bar]), 3))
        S.write_musicxml(notes, out / f"{piece}_{name}.musicxml")
