"""Pack training data small enough to travel to a lent GPU machine (at most 64 MiB with the
working tree): a seeded subset of the training renders as Opus (about 19 kbit/s, 9 MB an hour),
their labels and pedal sidecars in one tar.gz, the first rooms of the room bank, and the wheels
the device image lacks. `scripts/device_train.sh` trains from the pack there.

    python scripts/pack_device_data.py --roots data/renders_sampled --max-mb 36 --out data/device_pack
    python scripts/pack_device_data.py --roots data/renders_sampled --max-mb 24 --maps-mb 12 ...

``--maps-mb`` adds a seeded share of MAPS's training side (``conf/data/maps``: every piano but the
held-out one its ``val_glob`` names), under ``maps/`` in the pack: packs of renders alone moved
the network away from the MAPS pianos (stage 6 lost 0.046 note+offset F1 on SptkBGCl).

Opus because it is the smallest lossless-enough form measured here: 16 kHz FLAC takes 37 MB an
hour and float16 CQT features 59 MB; training already applies Opus round trips up to this
compression (conf/augment: codec) and the robustness check measured MP3 costing 0.001 note F1.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcribe.data.layout import MANIFEST  # noqa: E402
from transcribe.data.pairs import find_pairs, split_pairs  # noqa: E402

# The packages the device image (Python 3.12, torch and numpy/scipy present) lacks; --wheels fetches them.
DEVICE_PYTHON, DEVICE_PLATFORM = "3.12", "manylinux_2_28_x86_64"
SDIST_ONLY = ["antlr4-python3-runtime==4.9.3"]  # hydra's parser runtime: PyPI has no wheel, built here (pure Python)
DEVICE_WHEELS = ["librosa==0.11.0", "soundfile==0.14.0", "soxr==1.1.0", "pretty_midi==0.2.11.post0", "mido==1.3.3",
                 "hydra-core==1.3.8", "omegaconf==2.3.1", "mir_eval==0.8.2", "audioread==3.1.0", "decorator==5.2.1",
                 "pooch==1.9.0", "platformdirs==4.14.7", "cffi==2.0.0", "pycparser==3.0"]


def encode(job: tuple[str, str, float]) -> tuple[str, int, float]:
    """Encode one file as Opus in OGG; returns (output, bytes, seconds)."""
    src, dst, level = job
    y, sr = sf.read(src, dtype="float32", always_2d=False)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, y, sr, format="OGG", subtype="OPUS", compression_level=level)
    return dst, Path(dst).stat().st_size, len(y) / sr


def configured_rooms(rooms: int) -> tuple[str | None, str]:
    """The configured room bank (None if it has not been simulated here) and the file name that a
    bank of its first ``rooms`` rooms has under the same settings (what the device looks up)."""
    from transcribe.config import compose
    from transcribe.data.rooms import bank_path

    cfg = compose("train")
    room, rate = cfg.augment.room, cfg.features.sample_rate
    full = bank_path(room, rate)
    room.bank_size = rooms
    return (str(full) if full.is_file() else None), bank_path(room, rate).name


def download_wheels(folder: Path) -> None:
    """Fetch DEVICE_WHEELS for the device's Python and platform into ``folder`` (needs PyPI)."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", str(folder),
                    "--python-version", DEVICE_PYTHON, "--platform", DEVICE_PLATFORM,
                    "--platform", "manylinux2014_x86_64", *DEVICE_WHEELS], check=True)
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder), *SDIST_ONLY], check=True)


def maps_training_pairs(root: str | None) -> list[tuple[Path, Path, Path]]:
    """MAPS's training side: the labelled files under ``root`` (default: ``conf/data/maps``'s
    root) whose names do not match that config's ``val_glob`` (the held-out piano)."""
    from transcribe.config import compose

    data = compose("train", ["data=maps"]).data
    root = Path(root or data.root)
    train, _ = split_pairs(find_pairs(root), data.val_glob)
    return [(root, a, lab) for a, lab in train]


def pack_group(pool, pairs: list[tuple[Path, Path, Path]], prefix: Path, budget_mb: float, taken: set[Path],
               audio_dir: Path, args) -> tuple[list[Path], list[tuple[Path, Path]], int, float]:
    """Encode a seeded order of ``pairs`` (not in ``taken``) under ``audio_dir / prefix`` until
    ``budget_mb`` is passed; returns the packed files (relative, no suffix), their label files
    (source, relative destination), bytes and seconds."""
    pairs = [(r, a, lab) for r, a, lab in pairs if prefix / a.relative_to(r).with_suffix("") not in taken]
    order = np.random.default_rng(args.seed).permutation(len(pairs))
    jobs, labels = [], []
    for i in order:
        root, audio, label = pairs[i]
        rel = prefix / audio.relative_to(root).with_suffix(".ogg")
        jobs.append((str(audio), str(audio_dir / rel), args.level))
        labels.append((label, rel.with_suffix(label.suffix)))
        pedal = label.with_name(audio.stem + ".pedal.tsv")
        if pedal.is_file():
            labels.append((pedal, rel.with_name(audio.stem + ".pedal.tsv")))
    total, seconds, kept = 0, 0.0, []
    batch = args.jobs * 4
    for start in range(0, len(jobs), batch):
        for dst, size, secs in pool.map(encode, jobs[start:start + batch]):
            total += size
            seconds += secs
            kept.append(Path(dst).relative_to(audio_dir).with_suffix(""))
        print(f"{prefix or 'renders'}: {len(kept)} files, {seconds / 3600:.2f} h, {total / 1e6:.1f} MB", flush=True)
        if total / 1e6 >= budget_mb:
            break
    return kept, labels, total, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--roots", nargs="+", required=True, help="labelled training folders (renders)")
    ap.add_argument("--out", default="data/device_pack")
    ap.add_argument("--max-mb", type=float, default=36.0, help="stop adding renders past this many MB")
    ap.add_argument("--maps-mb", type=float, default=0.0,
                    help="also pack MAPS's training side (not its held-out piano) up to this many MB")
    ap.add_argument("--maps", default=None, help="the MAPS folder (default: conf/data/maps's root)")
    ap.add_argument("--level", type=float, default=0.95, help="Opus compression level (0 best .. 1 smallest)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--room-bank", default=None,
                    help="a room bank .npz whose first --rooms rooms travel (default: the bank of "
                         "conf/augment's room settings, when it has been simulated)")
    ap.add_argument("--room-key", default=None,
                    help="file name the device's config looks for (default: that of the same settings "
                         "with augment.room.bank_size=--rooms)")
    ap.add_argument("--rooms", type=int, default=50, help="rooms to carry (device: augment.room.bank_size)")
    ap.add_argument("--wheels", action="store_true", help="also fetch the wheels the device lacks (PyPI)")
    ap.add_argument("--exclude", nargs="*", default=[], help="earlier packs whose files this one leaves out")
    args = ap.parse_args()

    out = Path(args.out)
    audio_dir = out / "train"
    taken = {p.relative_to(Path(e) / "train").with_suffix("") for e in args.exclude
             for p in (Path(e) / "train").rglob("*.ogg")}
    groups = [([(Path(root), a, lab) for root in args.roots for a, lab in find_pairs(root)], Path(), args.max_mb)]
    if args.maps_mb > 0:
        groups.insert(0, (maps_training_pairs(args.maps), Path("maps"), args.maps_mb))
    kept, labels, total, seconds, counts = [], [], 0, 0.0, {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for pairs, prefix, budget in groups:
            k, lab, mb, secs = pack_group(pool, pairs, prefix, budget, taken, audio_dir, args)
            kept, labels, total, seconds = kept + k, labels + lab, total + mb, seconds + secs
            counts[str(prefix) if prefix.parts else "renders"] = len(k)
    # Files encoded past the budget in the last batch stay: the budget is approximate.
    keep = {str(k) for k in kept}
    with tarfile.open(out / "labels.tar.gz", "w:gz") as tar:
        for src, rel in labels:
            stem = str(rel.with_suffix("")).removesuffix(".pedal")
            if stem in keep:
                tar.add(src, arcname=str(rel))
    # the packed renders' manifest records travel too: they say which renders are partners
    # (data/layout.partners_of; a partner that was not packed is simply absent)
    renders = {}
    for root in args.roots:
        if (Path(root) / MANIFEST).is_file():
            renders.update({rel: r for rel, r in json.loads((Path(root) / MANIFEST).read_text())["renders"].items()
                            if str(Path(rel).with_suffix("")) in keep})
    if renders:
        (audio_dir / MANIFEST).write_text(json.dumps({"renders": renders}, indent=1, sort_keys=True))
    room_bank, room_key = configured_rooms(args.rooms)
    args.room_bank = args.room_bank or room_bank
    args.room_key = args.room_key or room_key
    if args.room_bank and Path(args.room_bank).is_file():
        with np.load(args.room_bank) as z:
            irs = {f"ir{i}": z[f"ir{i}"] for i in range(args.rooms)}
        (out / "rooms").mkdir(exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **irs)
        (out / "rooms" / args.room_key).write_bytes(buf.getvalue())
    if args.wheels:
        download_wheels(out / "wheels")
    (out / "pack.json").write_text(json.dumps({"files": len(kept), "hours": round(seconds / 3600, 3),
                                               "audio_mb": round(total / 1e6, 1), "level": args.level,
                                               "seed": args.seed, "roots": args.roots, "files_by_group": counts},
                                              indent=1))
    print(f"packed {len(kept)} files, {seconds / 3600:.2f} h of audio, {total / 1e6:.1f} MB, in {out}")


if __name__ == "__main__":
    main()
