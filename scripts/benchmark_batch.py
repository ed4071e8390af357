"""Batch throughput and long-file memory of the ``transcribe`` command.

    python scripts/benchmark_batch.py --data ../shared/data/maps/audio --minutes 20 --out batch.json
    python scripts/benchmark_batch.py --minutes 0 --long-minutes 0 --hours 1,10 --out hours.json

1. Copies recordings from ``--data`` into a temporary folder until it holds at least
   ``--minutes`` of audio, then transcribes that folder with ``--jobs 1`` and ``--jobs 2``,
   alternating, ``--repeats`` times each, and reports throughput (audio seconds per wall second,
   the whole process included) and the speed-up of 2 workers over 1.
2. Concatenates recordings into one ``--long-minutes`` file (at the data's rate, and optionally
   at 44.1 kHz stereo with ``--long-44k``) and reports the peak resident memory of the whole
   ``transcribe`` process on it (``wait4`` rusage of that child only).
3. ``--hours 1,10``: one 16 kHz FLAC recording of each length (the recordings repeated,
   written a recording at a time) and the peak resident memory of the whole process on it:
   streaming keeps it flat in the length (``--minutes 0`` skips part 1).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_speed import run  # noqa: E402  (whole-process wall time and peak RSS, via wait4)


def build_folder(files: list[Path], minutes: float, folder: Path) -> float:
    """Copy files into ``folder`` until it holds ``minutes`` of audio; returns its seconds."""
    total = 0.0
    for f in files:
        if total >= minutes * 60:
            break
        shutil.copy(f, folder / f.name)
        total += sf.info(str(f)).duration
    if total < minutes * 60:
        raise SystemExit(f"only {total / 60:.1f} minutes of audio found; need {minutes}")
    return total


def build_long(files: list[Path], minutes: float, path: Path, rate: int | None, stereo: bool) -> float:
    """Concatenate recordings into one file of ``minutes`` (resampled to ``rate`` if given)."""
    need = int(minutes * 60 * (rate or sf.info(str(files[0])).samplerate))
    parts, have = [], 0
    for f in files:
        y, sr = sf.read(str(f), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        if rate and sr != rate:
            import soxr

            y = soxr.resample(y, sr, rate)
        parts.append(y)
        have += len(y)
        if have >= need:
            break
    y = np.concatenate(parts)[:need]
    out_rate = rate or sr
    sf.write(str(path), np.stack([y, y], axis=1) if stereo else y, out_rate, subtype="PCM_16")
    return len(y) / out_rate


def build_hours(files: list[Path], hours: float, path: Path, rate: int = 16000) -> float:
    """Write ``hours`` of audio to ``path`` (16 kHz mono FLAC) by cycling through the recordings,
    one recording in memory at a time."""
    import soxr

    need, have = int(hours * 3600 * rate), 0
    with sf.SoundFile(str(path), "w", rate, 1, format="FLAC", subtype="PCM_16") as out:
        while have < need:
            for f in files:
                y, sr = sf.read(str(f), dtype="float32", always_2d=True)
                y = y.mean(axis=1)
                y = soxr.resample(y, sr, rate) if sr != rate else y
                y = y[: need - have]
                out.write(y)
                have += len(y)
                if have >= need:
                    break
    return have / rate


def measure_hours(files: list[Path], hours: list[float], exe: list[str], env: dict, tmp: Path) -> dict:
    """Peak RSS of the whole ``transcribe`` process on one recording of each length."""
    out = {}
    for h in hours:
        path = tmp / f"hours_{h:g}.flac"
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            secs = pool.submit(build_hours, files, h, path).result()
        r = run(exe + [str(path), "-o", str(tmp / "hours_out"), "--overwrite", "-q", "--jobs", "1"], env)
        out[f"{h:g}h"] = {"audio_s": secs, "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
                          "rtf": r["wall_s"] / secs}
        print(f"{h:g} h in one file: peak RSS {r['peak_rss_mb']:.0f} MB, {r['wall_s']:.1f} s wall "
              f"(RTF {r['wall_s'] / secs:.4f})", flush=True)
        path.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/maps/audio"), help="folder of recordings")
    ap.add_argument("--minutes", type=float, default=20.0, help="audio in the batch folder")
    ap.add_argument("--repeats", type=int, default=1, help="runs per setting (median reported)")
    ap.add_argument("--long-minutes", type=float, default=60.0, help="length of the long file (0: skip)")
    ap.add_argument("--long-44k", action="store_true", help="also measure the long file as 44.1 kHz stereo WAV")
    ap.add_argument("--hours", default="", help="comma-separated lengths in hours (e.g. 1,10): peak memory of "
                    "one recording that long (16 kHz FLAC, the recordings repeated); '' skips it")
    ap.add_argument("--model", type=Path, default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    files = sorted(p for p in args.data.iterdir() if p.suffix.lower() in (".flac", ".wav"))
    if not files:
        raise SystemExit(f"no .flac/.wav files in {args.data}")
    # children run in the temporary folder (see benchmark_speed.run): import this checkout
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                    os.environ.get("PYTHONPATH")])))
    exe = [sys.executable, "-m", "transcribe.cli"] + (["--model", str(args.model)] if args.model else [])
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "processor": platform.processor() or platform.machine()}}
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        if args.hours:
            results["hours"] = measure_hours(files, [float(h) for h in args.hours.split(",")], exe, env, tmp)
        if args.minutes <= 0:
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
            return
        folder = tmp / "batch"
        folder.mkdir()
        seconds = build_folder(files, args.minutes, folder)
        n_files = len(list(folder.iterdir()))
        print(f"batch: {n_files} files, {seconds / 60:.1f} min of audio")
        walls: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for jobs in (1, 2):
                wall = run(exe + [str(folder), "-o", str(tmp / f"out{jobs}"), "--overwrite", "-q",
                                  "--jobs", str(jobs)], env)["wall_s"]
                walls[jobs].append(wall)
                print(f"  --jobs {jobs}: {wall:.1f} s wall, {seconds / wall:.1f} audio s per wall s")
        batch = {f"jobs{j}": {"wall_s": statistics.median(w), "audio_s_per_wall_s": seconds / statistics.median(w),
                              "runs": w} for j, w in walls.items()}
        batch["speedup_2_over_1"] = batch["jobs1"]["wall_s"] / batch["jobs2"]["wall_s"]
        results["batch"] = {"files": n_files, "audio_s": seconds, **batch}
        print(f"jobs 2 over jobs 1: {batch['speedup_2_over_1']:.2f}x")

        if args.long_minutes > 0:
            variants = [("native", None, False)] + ([("44k_stereo", 44100, True)] if args.long_44k else [])
            results["long"] = {}
            for name, rate, stereo in variants:
                path = tmp / f"long_{name}.{'wav' if rate else 'flac'}"
                # built in a child process, so this process stays small and the measured
                # child's peak memory is its own
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                    secs = pool.submit(build_long, files, args.long_minutes, path, rate, stereo).result()
                r = run(exe + [str(path), "-o", str(tmp / "long_out"), "--overwrite", "-q"], env)
                wall, rss = r["wall_s"], r["peak_rss_mb"]
                info = sf.info(str(path))
                results["long"][name] = {"audio_s": secs, "sample_rate": info.samplerate, "channels": info.channels,
                                         "wall_s": wall, "peak_rss_mb": rss}
                print(f"long file ({secs / 60:.0f} min, {info.samplerate} Hz, {info.channels} ch): "
                      f"peak RSS {rss:.0f} MB, {wall:.1f} s wall (RTF {wall / secs:.4f})")
                path.unlink()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
