"""Robustness of a model to recording conditions, on the held-out piano's pieces.

Builds (once; existing files are kept) two versions of every held-out piece under ``--out``:

* ``real/<condition>/``: the MAPS recordings of the held-out piano (``--glob``), and
* ``render/<condition>/``: the same pieces' labels rendered through a SoundFont piano
  (``--piano``, a preset of ``conf/render.yaml``; needs FluidSynth),

each clean and through fixed, seeded recording conditions: a room (reverb), pink noise at
20 dB SNR, an MP3 round trip, all three in a row, and two levels: a quiet recording (gain x0.01,
-40 dB) and an overdriven one (gain x30, +29.5 dB, clipped at full scale as a recorder clips).
Every condition is written as 16-bit FLAC (a file peaking above 0.95 is scaled down to 0.95).
Then scores each ``--checkpoint`` on every folder with the evaluation code of ``transcribe-eval``
and prints the note F1 (and the other three scores) per condition and its drop from the clean
score.

    python scripts/robustness_eval.py --checkpoint transcribe/weights/model.pt \\
        --checkpoint runs/maps_v2/checkpoints/best.pt --json robustness.json
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcribe.audio import load_audio  # noqa: E402
from transcribe.data.augment import add_noise, apply_reverb, codec_roundtrip, room_impulse_response  # noqa: E402
from transcribe.data.pairs import find_pairs  # noqa: E402
from transcribe.evaluate import SUMMARY, evaluate_folder  # noqa: E402
from transcribe.notefiles import read_labels  # noqa: E402

SR = 16000
# Fixed conditions (what a phone in a living room or a streamed MP3 does); parameters in the
# ranges of conf/augment/default.yaml, but not drawn: every model sees the same audio.
REVERB = {"rt60": 0.8, "drr_db": 0.0, "pre_delay": 0.01, "damping": 0.3}
NOISE = {"snr_db": 20.0, "color": "pink"}
MP3 = {"codec": "mp3", "compression_level": 0.7}
# Levels (waveform multipliers) of issue #12: far too quiet, and far too loud for the recorder.
GAINS = {"gain x0.01": 0.01, "gain x30": 30.0}
CONDITIONS = {
    "clean": (),
    "reverb": ("reverb",),
    "noise": ("noise",),
    "mp3": ("mp3",),
    "reverb+noise+mp3": ("reverb", "noise", "mp3"),
    **{name: (name,) for name in GAINS},
}


def apply_level(y: np.ndarray, factor: float) -> np.ndarray:
    """``y`` multiplied by ``factor`` and clipped to [-1, 1], as a recorder set too loud clips at
    full scale (``gain x30``). A quiet level (``gain x0.01``) is only scaled here; writing it to
    16-bit PCM then quantises it as a quiet 16-bit recording is."""
    return np.clip(y * np.float32(factor), -1.0, 1.0)


def degrade(y: np.ndarray, effects: tuple[str, ...], seed: int) -> np.ndarray:
    """``y`` through ``effects`` in the order given, seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    for effect in effects:
        if effect == "reverb":
            y = apply_reverb(y, room_impulse_response(rng, SR, **REVERB))
        elif effect == "noise":
            y = add_noise(y, NOISE["snr_db"], rng, NOISE["color"])
        elif effect == "mp3":
            y = codec_roundtrip(y, SR, MP3["codec"], MP3["compression_level"])
        elif effect in GAINS:
            y = apply_level(y, GAINS[effect])
        else:
            raise ValueError(f"unknown effect {effect!r}")
    return y


def write_conditions(name: str, y: np.ndarray, labels: Path, out: Path) -> None:
    """``out/<condition>/<name>.flac`` (+ labels) for every condition, unless present: 16-bit PCM,
    scaled down to a 0.95 peak if it peaks higher (a clipped ``gain x30`` file stays clipped)."""
    seed = zlib.crc32(name.encode())
    for cond, effects in CONDITIONS.items():
        folder = out / cond
        folder.mkdir(parents=True, exist_ok=True)
        audio = folder / f"{name}.flac"
        if audio.is_file():
            continue
        shutil.copyfile(labels, folder / f"{name}{labels.suffix}")
        z = degrade(y, effects, seed)
        peak = float(np.abs(z).max())
        sf.write(audio, z / peak * 0.95 if peak > 0.95 else z, SR, subtype="PCM_16")


def build(maps: Path, glob: str, piano_name: str, out: Path, render: bool = True) -> list[str]:
    """Make the real and (``render``) rendered condition folders; returns the sets made."""


    from transcribe.config import compose
    from transcribe.notefiles import write_tsv
    from transcribe.render.run import render_notes
    from transcribe.render.synth import fluidsynth_binary, pianos_from_cfg

    pairs = find_pairs(maps, glob)
    if not pairs:
        sys.exit(f"no labelled audio matching {glob} under {maps}")
    for audio, labels in pairs:
        write_conditions(audio.stem, load_audio(audio, SR), labels, out / "real")
    sets = ["real"]
    if not render:
        return sets
    cfg = compose("render")
    if fluidsynth_binary(cfg.synth.binary) is None:
        print("FluidSynth not found: only the real recordings are degraded", file=sys.stderr)
        return sets
    piano = pianos_from_cfg(cfg)[piano_name]
    tmp = out / "render" / "_labels"
    tmp.mkdir(parents=True, exist_ok=True)
    for audio, labels in pairs:
        if all((out / "render" / cond / f"{audio.stem}.flac").is_file() for cond in CONDITIONS):
            continue  # a set built before a condition was added gets that condition now
        y, rendered = render_notes(read_labels(labels), piano, cfg)
        tsv = tmp / f"{audio.stem}.tsv"
        write_tsv(rendered, tsv)
        write_conditions(audio.stem, y, tsv, out / "render")
        print(f"rendered {audio.stem} through {piano_name}", flush=True)
    return sets + ["render"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", action="append", required=True,
                    help="checkpoint to score (repeat to compare); 'shipped' = the packaged model")
    ap.add_argument("--maps", type=Path, default=Path("../shared/data/maps"))
    ap.add_argument("--glob", default="*_SptkBGCl*", help="the held-out piano's files")
    ap.add_argument("--piano", default="musescore-mellow", help="render preset of conf/render.yaml")
    ap.add_argument("--out", type=Path, default=Path("data/robustness"))
    ap.add_argument("--json", type=Path, help="write all scores here")
    ap.add_argument("--threads", type=int, help="CPU threads for the network (default: the runtime's choice)")
    ap.add_argument("--real-only", action="store_true",
                    help="the real recordings' conditions only (no SoundFont render: half the time)")
    args = ap.parse_args()

    from transcribe.infer import Transcriber

    sets = build(args.maps, args.glob, args.piano, args.out, render=not args.real_only)
    report: dict = {"conditions": {k: list(v) for k, v in CONDITIONS.items()},
                    "parameters": {"reverb": REVERB, "noise": NOISE, "mp3": MP3, "gains": GAINS,
                                   "piano": args.piano}, "scores": {}}
    for ckpt in args.checkpoint:
        transcriber = Transcriber.from_checkpoint(None if ckpt == "shipped" else ckpt, threads=args.threads)
        scores = report["scores"][ckpt] = {}
        for s in sets:
            for cond in CONDITIONS:
                result = evaluate_folder(transcriber, args.out / s / cond, progress=lambda *_: None)
                for failed in result["failed"]:
                    print(f"{s}/{cond}: {failed['file']} not scored: {failed['error']}", file=sys.stderr)
                scores[f"{s}/{cond}"] = {k: round(result["mean"][k], 4) for k in SUMMARY}
                clean = scores[f"{s}/clean"]["note_f1"]
                row = scores[f"{s}/{cond}"]
                print(f"{ckpt}  {s}/{cond:<18} " + "  ".join(f"{k} {row[k]:.4f}" for k in SUMMARY)
                      + f"  note F1 drop {clean - row['note_f1']:+.4f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
