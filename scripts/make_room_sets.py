"""Validation sets through a fixed bank of rooms (issue 26): every labelled file of a folder played
through one room of ``conf/validation_rooms.yaml`` (the room its name hashes to), written with its
labels (and pedal sidecar) into another folder, so the same pieces can be scored dry and in a room.

The rooms start at their direct sound (no delay: labels stay aligned) and the wet signal keeps the
dry file's RMS (:func:`transcribe.data.augment.apply_reverb`), so the level a model hears does not
change. Existing outputs are kept; a file is written atomically.

    python scripts/make_room_sets.py ../shared/data/maps/audio data/rooms/sptk --glob '*SptkBGCl*'
    python scripts/make_room_sets.py data/renders_heldout data/rooms/headroom
    transcribe-eval data.root=data/rooms/sptk split=all
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omegaconf import OmegaConf  # noqa: E402

from transcribe.audio import load_audio  # noqa: E402
from transcribe.data.augment import apply_reverb  # noqa: E402
from transcribe.data.pairs import find_pairs  # noqa: E402
from transcribe.data.rooms import room_bank  # noqa: E402
from transcribe.files import atomic_write  # noqa: E402
from transcribe.pedal import pedal_sidecar  # noqa: E402

SR = 16000


def room_of(name: str, n_rooms: int) -> int:
    """The room a file takes: its name hashed (the same file always meets the same room)."""
    return zlib.crc32(name.encode()) % n_rooms


def make_set(src: Path, out: Path, glob: str | None, cfg) -> list[dict]:
    """Every pair under ``src`` (matching ``glob``) through its room into ``out``; returns one row
    per file (name, room index)."""
    rooms = room_bank(cfg, SR, progress=print)
    rows = []
    for audio, labels in find_pairs(src, glob):
        rel = audio.relative_to(src).with_suffix(".flac") if audio.is_relative_to(src) else Path(audio.name)
        dest = out / rel
        i = room_of(audio.stem, len(rooms))
        rows.append({"file": str(rel), "room": i})
        if dest.is_file():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(labels, dest.with_suffix(labels.suffix))
        pedal = pedal_sidecar(labels)
        if pedal.is_file():
            shutil.copyfile(pedal, pedal_sidecar(dest.with_suffix(labels.suffix)))
        wet = apply_reverb(load_audio(audio, SR), rooms[i])
        peak = float(np.abs(wet).max()) if len(wet) else 0.0
        with atomic_write(dest) as tmp:
            sf.write(tmp, wet / peak * 0.95 if peak > 0.95 else wet, SR, subtype="PCM_16", format="FLAC")
        print(f"{rel}: room {i}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="a labelled folder (audio with labels beside or in labels/)")
    ap.add_argument("out", type=Path, help="where the room versions go")
    ap.add_argument("--glob", default=None, help="only files whose name matches this glob")
    ap.add_argument("--config", type=Path, default=ROOT / "conf" / "validation_rooms.yaml")
    args = ap.parse_args()
    cfg = OmegaConf.load(args.config)
    rows = make_set(args.src, args.out, args.glob, cfg)
    (args.out / "rooms.json").write_text(json.dumps({"config": OmegaConf.to_container(cfg), "files": rows}, indent=1))
    print(f"{len(rows)} files in {args.out}")


if __name__ == "__main__":
    main()
