"""Round 42 (d): the README's two scores with bar_length accents and learned: metre, tempo, first downbeat, MusicXML."""
from pathlib import Path
import transcribe.score as S
from transcribe.notefiles import read_midi

out = Path("runs/score38/eng"); out.mkdir(exist_ok=True)
for length in ("accents", "learned"):
    S.configured_bar_length = lambda length=length: length
    for piece, midi, secs in (("minuet", Path("runs/score33/eng/demo.mid"), 1e9),
                              ("bwv867", Path("runs/score23/Bach_Prelude_bwv_867_HuNY01M.mid"), 30)):
        notes = read_midi(midi).sorted()
        notes = notes.select(notes.onsets < secs)
        b = S.estimate_beats(None, None, notes)
        print(length, piece, b.time_signature, round(b.tempo), "first downbeat", round(float(b.times[b.downbeat % b.beats_per_bar]), 3))
        S.write_musicxml(notes, out / f"{piece}_{length}.musicxml")
