"""A picture of a transcription against reference notes, as a MIDI editor shows them: found
notes green, false notes red, missed reference notes outlined blue (the README's MIDI picture).

    transcribe ../shared/data/maps/audio/MAPS_MUS-chpn-p7_SptkBGCl.flac -o /tmp/t
    python scripts/compare_midi.py /tmp/t/MAPS_MUS-chpn-p7_SptkBGCl.mid \
        ../shared/data/maps/labels/MAPS_MUS-chpn-p7_SptkBGCl.tsv --seconds 40 --out docs/midi_example.png

Either file may be MIDI (.mid, sustain pedal applied to its notes) or a label .tsv. Needs
matplotlib and mir_eval (``pip install 'transcribe-piano[plot,train]'``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcribe.files import atomic_write  # noqa: E402
from transcribe.notefiles import read_labels  # noqa: E402
from transcribe.plot import comparison_figure  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("transcription", type=Path, help="the transcribed notes (.mid or .tsv)")
    ap.add_argument("reference", type=Path, help="the true notes (.mid or .tsv)")
    ap.add_argument("--start", type=float, default=0.0, help="first second shown")
    ap.add_argument("--seconds", type=float, default=30.0, help="how many seconds are shown")
    ap.add_argument("--title", default=None)
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = ap.parse_args()
    try:
        est, ref = read_labels(args.transcription), read_labels(args.reference)
    except (OSError, ValueError) as err:
        sys.exit(f"compare_midi: {err}")
    fig = comparison_figure(est, ref, args.start, args.seconds, args.title or args.transcription.stem)
    with atomic_write(args.out) as tmp:
        fig.savefig(tmp, format="png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
