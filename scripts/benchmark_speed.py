#!/usr/bin/env python
"""CPU speed of ``transcribe`` side by side with Basic Pitch (Spotify, ONNX model), same files,
same run, alternating the two systems.

    pip install -e ".[bench]" && pip install --no-deps basic-pitch==0.4.0
    python scripts/benchmark_speed.py --out speed.json

What it measures (every timing is a whole process, start-up included, median of --repeats):

1. workloads, made from 16 kHz recordings in --data (written to a temporary folder as FLAC):
   ``long``  one 5-minute recording (the first 300 s of a longer one), and
   ``clips`` a batch of ten 30-second clips (from ten recordings) in one process;
2. systems, with the thread count fixed (--threads, default 2: OMP/MKL/OpenBLAS variables,
   ``transcribe --threads``, onnxruntime intra-op threads for both):
   ``transcribe``   the installed command (``transcribe FILES -o DIR --overwrite -q``, plus
                    ``--jobs 1`` when the command has that option), and
   ``basic-pitch``  basic_pitch 0.4.0's ``predict`` with its shipped ``nmp.onnx`` forced, in
                    a small driver process that writes one MIDI file per input;
   with real-time factor (wall seconds per audio second), ours/theirs ratio, CPU seconds and
   peak memory (max RSS of the child, from ``wait4``);
3. a breakdown of where our time goes (one extra in-process run per workload): interpreter
   start-up, imports, model loading, audio decode + resample, CQT, network, decoding, MIDI
   writing, and the remainder of the whole-process time (command-line overhead);
4. ``transcribe --help`` wall time, and the peak memory of ``transcribe`` on one
   --memory-minutes (default 60) recording made by concatenating recordings;
5. with --levers, in-process measurements of each speed lever (CQT implementation, network
   runtime, chunk batching, threads, int8 quantisation): see scripts/SPEED_NOTES.md.

Before timing, each system runs once on one clip (the first ``transcribe`` run on a new
checkpoint exports the network to ONNX and caches it; that run is reported as ``first_run``).
The ONNX cache used is a fresh folder inside the work folder, so this cold run is real.
Results go to --out (JSON) and a table on stdout. Tests never assert timings; this script
is how speed is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "maps" / "audio"
STAGES = ("interpreter", "imports", "model_load", "audio_decode_resample", "cqt", "network", "decode_notes",
          "midi_write")

# ----------------------------------------------------------------------------- child modes


def breakdown_child(out_dir: str, files: list[str], threads: int) -> None:
    """Time each stage of transcribing ``files`` in this (fresh) process; print JSON."""
    t0 = time.perf_counter()
    from transcribe.audio import load_audio
    from transcribe.features import cqt_features
    from transcribe.infer import Transcriber
    from transcribe.notefiles import write_midi

    t = {s: 0.0 for s in STAGES}
    t["imports"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tr = Transcriber.from_checkpoint(threads=threads)
    t["model_load"] = time.perf_counter() - t0
    for f in files:
        t0 = time.perf_counter()
        y = load_audio(f, tr.sample_rate)
        t1 = time.perf_counter()
        feats = cqt_features(y, tr.features)
        t2 = time.perf_counter()
        act = tr.run_network(feats)
        t3 = time.perf_counter()
        notes = tr.notes_from_activations(act)
        t4 = time.perf_counter()
        write_midi(notes, Path(out_dir) / (Path(f).stem + ".mid"))
        t5 = time.perf_counter()
        for stage, a, b in (("audio_decode_resample", t0, t1), ("cqt", t1, t2), ("network", t2, t3),
                            ("decode_notes", t3, t4), ("midi_write", t4, t5)):
            t[stage] += b - a
    t.pop("interpreter")
    print(json.dumps({"stages": t, "backend": tr.backend, "torch_imported": "torch" in sys.modules,
                      "librosa_imported": "librosa" in sys.modules}))


def basic_pitch_child(out_dir: str, files: list[str], threads: int) -> None:
    """Basic Pitch 0.4.0 on ``files`` with its ONNX model and ``threads`` intra-op threads."""
    import logging

    logging.disable(logging.WARNING)  # basic_pitch warns at import about the runtimes it lacks
    import onnxruntime as ort
    from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
    from basic_pitch import inference as bpi

    model_path = str(build_icassp_2022_model_path(FilenameSuffix.onnx))
    model = bpi.Model(model_path)
    if model.model_type != bpi.Model.MODEL_TYPES.ONNX:
        raise SystemExit(f"basic-pitch did not load its ONNX model (got {model.model_type})")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    model.model = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    for f in files:
        _, midi, _ = bpi.predict(f, model)
        midi.write(str(Path(out_dir) / (Path(f).stem + ".mid")))


# ----------------------------------------------------------------------------- helpers


def thread_env(threads: int, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    env["TRANSCRIBE_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run(cmd: list[str], env: dict[str, str]) -> dict:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process (``wait4``). Children
    run in the temporary folder, so ``python -m`` finds the package through PYTHONPATH (this
    checkout, or what --ours-cmd sets), not through the current folder."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=tempfile.gettempdir())
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        raise SystemExit(f"command failed ({code}): {' '.join(cmd)}\n{stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "stdout": stdout}


def ours_base(args: argparse.Namespace) -> list[str]:
    """How ``transcribe`` is started: --ours-cmd, else the installed script, else python -m."""
    if args.ours_cmd:
        import shlex

        return shlex.split(args.ours_cmd)
    exe = shutil.which("transcribe", path=str(Path(sys.executable).parent)) or shutil.which("transcribe")
    return [exe] if exe and not args.module else [sys.executable, "-m", "transcribe.cli"]


def ours_command(args: argparse.Namespace) -> list[str]:
    base = ours_base(args)
    help_text = subprocess.run(base + ["--help"], capture_output=True, text=True).stdout
    extra = ["--threads", str(args.threads), "--overwrite", "-q"]
    if "--jobs" in help_text:
        extra += ["--jobs", "1"]
    return base + extra


def write_inputs(data: Path, work: Path, long_seconds: float, clip_seconds: float, n_clips: int) -> dict:
    """The 5-minute recording and the clips, as FLAC files in ``work``."""
    import soundfile as sf

    files = sorted(p for p in data.glob("*.flac"))
    if not files:
        raise SystemExit(f"no .flac recordings in {data}")
    infos = {p: sf.info(str(p)) for p in files}
    long_src = next((p for p in files if infos[p].duration >= long_seconds), None)
    if long_src is None:
        raise SystemExit(f"no recording of at least {long_seconds} s in {data}")
    (work / "long").mkdir(parents=True, exist_ok=True)
    (work / "clips").mkdir(parents=True, exist_ok=True)
    y, sr = sf.read(str(long_src), dtype="int16", frames=int(long_seconds * infos[long_src].samplerate))
    long_path = work / "long" / f"{long_src.stem}_first{int(long_seconds)}s.flac"
    sf.write(str(long_path), y, sr)
    offset = 30.0
    candidates = [p for p in files if p != long_src and infos[p].duration >= offset + clip_seconds]
    step = max(len(candidates) // n_clips, 1)
    clips = []
    for p in candidates[::step][:n_clips]:
        sr = infos[p].samplerate
        y, _ = sf.read(str(p), dtype="int16", start=int(offset * sr), frames=int(clip_seconds * sr))
        out = work / "clips" / f"{p.stem}_{int(offset)}s-{int(offset + clip_seconds)}s.flac"
        sf.write(str(out), y, sr)
        clips.append(out)
    if len(clips) < n_clips:
        raise SystemExit(f"only {len(clips)} recordings long enough for {clip_seconds} s clips")
    return {"long": {"files": [long_path], "sources": [long_src.name], "audio_s": long_seconds},
            "clips": {"files": clips, "sources": [c.name for c in clips], "audio_s": n_clips * clip_seconds}}


def write_long_recording(data: Path, path: Path, minutes: float) -> float:
    """Concatenate recordings into one ``minutes`` file (16-bit FLAC); returns its seconds."""
    import numpy as np
    import soundfile as sf

    need, parts, sr = None, [], None
    for p in sorted(data.glob("*.flac")):
        y, sr_p = sf.read(str(p), dtype="int16")
        sr = sr or sr_p
        if sr_p != sr:
            continue
        need = need or int(minutes * 60 * sr)
        parts.append(y)
        if sum(len(a) for a in parts) >= need:
            break
    y = np.concatenate(parts)[:need]
    sf.write(str(path), y, sr)
    return len(y) / sr


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def machine_info() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                           if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    for mod in ("torch", "onnxruntime", "numpy", "librosa", "soxr", "basic_pitch"):
        try:
            from importlib.metadata import version

            info[mod] = version({"basic_pitch": "basic-pitch"}.get(mod, mod))
        except Exception:  # noqa: BLE001
            info[mod] = None
    try:
        info["git_commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True).stdout.strip()
        info["git_dirty"] = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                                                capture_output=True, text=True).stdout.strip())
    except OSError:
        pass
    return info


# ----------------------------------------------------------------------------- levers


def levers(files: list[Path], threads: int, repeats: int) -> dict:
    """In-process timings of each lever on the 5-minute recording (alternating variants;
    min and median of ``repeats``). Wall and CPU seconds."""
    import numpy as np

    from transcribe.audio import load_audio
    from transcribe.checkpoint import SHIPPED_CHECKPOINT, build_model, load_checkpoint, typed_configs
    from transcribe.features import cqt_features, cqt_features_librosa
    from transcribe.infer import InferConfig, Transcriber, run_network
    from transcribe.runtime import OnnxRunner, TorchRunner, export_onnx

    results: dict[str, dict] = {}

    def timed(name: str, fn) -> None:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        r = results.setdefault(name, {"wall_s": [], "cpu_s": []})
        r["wall_s"].append(w)
        r["cpu_s"].append(c)

    # cold costs: importing librosa's CQT vs numpy/soxr, measured in fresh processes
    env = thread_env(threads, Path(tempfile.gettempdir()))
    for _ in range(repeats):
        for name, code in (("import: librosa.core.constantq", "import librosa.core.constantq"),
                           ("import: torch", "import torch"),
                           ("import: onnxruntime", "import onnxruntime"),
                           ("import: transcribe.infer (numpy CQT, no torch)", "import transcribe.infer")):
            r = run([sys.executable, "-c", code], env)
            results.setdefault(name, {"wall_s": [], "cpu_s": []})
            results[name]["wall_s"].append(r["wall_s"])
            results[name]["cpu_s"].append(r["cpu_s"])

    import torch

    state = load_checkpoint(SHIPPED_CHECKPOINT)
    model, (features, decode) = build_model(state), typed_configs(state["config"])
    tr = Transcriber(TorchRunner(model), features, decode, InferConfig.default())
    y = load_audio(files[0], features.sample_rate)
    feats = cqt_features(y, features)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        fp32.write_bytes(export_onnx(model, state["config"], features.n_bins))
        import warnings

        from transcribe.runtime import quantize_int8

        int8 = Path(tmp) / "int8.onnx"
        int8.write_bytes(quantize_int8(fp32.read_bytes()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            qmodel = torch.ao.quantization.quantize_dynamic(build_model(state), {torch.nn.LSTM, torch.nn.Linear},
                                                            dtype=torch.qint8)
        runners = {f"onnx fp32, {threads} threads": OnnxRunner(fp32, threads),
                   "onnx fp32, 1 thread": OnnxRunner(fp32, 1),
                   f"onnx int8 (MatMul+LSTM), {threads} threads": OnnxRunner(int8, threads)}
        cf, xf = tr.chunk_frames, tr.context_frames
        torch.set_num_threads(threads)
        for rep in range(repeats):
            timed("cqt: librosa.cqt (soxr_hq)", lambda: cqt_features_librosa(y, features))
            timed("cqt: numpy/soxr GEMM, BLAS on 1 thread (shipped)", lambda: cqt_features(y, features))

            def cqt_blas_threads():
                import contextlib

                import transcribe.features as tf

                single, tf._single_threaded_blas = tf._single_threaded_blas, contextlib.nullcontext
                try:
                    cqt_features(y, features)
                finally:
                    tf._single_threaded_blas = single

            timed(f"cqt: numpy/soxr GEMM, BLAS on {threads} threads", cqt_blas_threads)
            for name, r in runners.items():
                timed(f"network: {name}, batch 4", lambda r=r: run_network(r, feats, cf, xf, batch_chunks=4))
            timed(f"network: onnx fp32, {threads} threads, batch 1",
                  lambda: run_network(runners[f"onnx fp32, {threads} threads"], feats, cf, xf, batch_chunks=1))
            for nt in sorted({1, threads}):
                torch.set_num_threads(nt)
                timed(f"network: torch, {nt} thread(s), batch 1 (before)",
                      lambda: run_network(model, feats, cf, xf, batch_chunks=1))
                timed(f"network: torch, {nt} thread(s), batch 4",
                      lambda: run_network(model, feats, cf, xf, batch_chunks=4))
            torch.set_num_threads(threads)
            timed(f"network: torch int8 quantize_dynamic, {threads} threads, batch 4",
                  lambda: run_network(qmodel, feats, cf, xf, batch_chunks=4))

            def no_grad_mode():  # inference_mode (shipped) vs plain no_grad
                from transcribe.runtime import HEADS

                with torch.no_grad():
                    for start in range(0, len(feats), cf):
                        lo, hi = max(start - xf, 0), min(start + cf + xf, len(feats))
                        p = model(torch.from_numpy(feats[lo:hi]).unsqueeze(0))
                        {k: p[k] for k in HEADS}

            timed(f"network: torch, {threads} threads, batch 1, no_grad instead of inference_mode", no_grad_mode)
    return {k: {"min_wall_s": min(v["wall_s"]), "median_wall_s": median(v["wall_s"]),
                "min_cpu_s": min(v["cpu_s"]), "median_cpu_s": median(v["cpu_s"]), **v} for k, v in results.items()}


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"16 kHz recordings (default {DEFAULT_DATA})")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per system and workload (default 5)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for both systems (default 2)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--work-dir", type=Path, default=None, help="where clips and outputs go (default: a temp dir)")
    p.add_argument("--workloads", default="long,clips", help="comma separated: long, clips (default both)")
    p.add_argument("--skip-basic-pitch", action="store_true", help="time only transcribe")
    p.add_argument("--memory-minutes", type=float, default=60.0,
                   help="length of the recording for the peak-memory run (0: skip; default 60)")
    p.add_argument("--help-repeats", type=int, default=5, help="runs of `transcribe --help` (default 5)")
    p.add_argument("--levers", action="store_true", help="also time each speed lever in-process")
    p.add_argument("--module", action="store_true", help="run ours as `python -m transcribe.cli`, not the script")
    p.add_argument("--ours-cmd", default=None,
                   help="command that starts ours, e.g. 'env PYTHONPATH=/other/checkout python -m transcribe.cli'")
    p.add_argument("--baseline-model", type=Path, default=None,
                   help="also time `transcribe --model PATH` (e.g. an earlier checkpoint) in the same alternation, "
                        "and report the shipped model's time over it")
    p.add_argument("--internal", choices=("breakdown", "basic-pitch"), help=argparse.SUPPRESS)
    p.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.internal == "breakdown":
        breakdown_child(args.files[0], args.files[1:], args.threads)
        return 0
    if args.internal == "basic-pitch":
        basic_pitch_child(args.files[0], args.files[1:], args.threads)
        return 0

    import importlib.util

    with_bp = not args.skip_basic_pitch
    if with_bp and not (importlib.util.find_spec("basic_pitch") and importlib.util.find_spec("onnxruntime")):
        raise SystemExit("Basic Pitch is not installed: pip install -e '.[bench]' && "
                         "pip install --no-deps basic-pitch==0.4.0  (or use --skip-basic-pitch)")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="transcribe-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "onnx-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = thread_env(args.threads, cache)
    load_before = os.getloadavg()
    print(f"work folder: {work}\nload average before: {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f} on {os.cpu_count()} CPUs", flush=True)
    inputs = write_inputs(args.data, work, 300.0, 30.0, 10)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    ours = ours_command(args)
    me = [sys.executable, str(Path(__file__).resolve())]
    systems = {"transcribe": lambda files, out: ours + [*map(str, files), "-o", str(out)]}
    if args.baseline_model:
        systems["baseline-model"] = lambda files, out: ours + ["--model", str(args.baseline_model.resolve()),
                                                               *map(str, files), "-o", str(out)]
    if with_bp:
        systems["basic-pitch"] = lambda files, out: me + ["--internal", "basic-pitch", "--threads",
                                                          str(args.threads), str(out), *map(str, files)]
    result: dict = {"machine": machine_info(), "threads": args.threads, "repeats": args.repeats,
                    "commands": {"transcribe": " ".join(ours + ["FILES", "-o", "DIR"]),
                                 "basic-pitch": " ".join(me + ["--internal", "basic-pitch", "--threads",
                                                               str(args.threads), "DIR", "FILES"])},
                    "load_average_before": load_before, "workloads": {}}

    # warm-up: one run per system on one clip; ours runs cold (fresh ONNX cache: export included)
    first = {}
    for name, cmd in systems.items():
        out = work / "out" / name / "warmup"
        out.mkdir(parents=True, exist_ok=True)
        r = run(cmd(inputs["clips"]["files"][:1], out), env)
        first[name] = {k: r[k] for k in ("wall_s", "cpu_s", "peak_rss_mb")}
        print(f"first run ({name}, one 30 s clip{', exports the network' if name == 'transcribe' else ''}): "
              f"{r['wall_s']:.2f} s", flush=True)
    result["first_run"] = first

    # timed runs, alternating systems (and which goes first) within each repeat
    runs: dict = {w: {s: [] for s in systems} for w in workloads}
    for rep in range(args.repeats):
        for w in workloads:
            order = list(systems) if rep % 2 == 0 else list(reversed(systems))
            for name in order:
                out = work / "out" / name / w
                out.mkdir(parents=True, exist_ok=True)
                r = run(systems[name](inputs[w]["files"], out), env)
                runs[w][name].append({k: r[k] for k in ("wall_s", "cpu_s", "peak_rss_mb")})
                print(f"[{rep + 1}/{args.repeats}] {w:<5} {name:<11} {r['wall_s']:7.2f} s wall "
                      f"{r['cpu_s']:7.2f} s CPU {r['peak_rss_mb']:7.0f} MB", flush=True)
    for w in workloads:
        audio_s = inputs[w]["audio_s"]
        entry = {"audio_s": audio_s, "sources": inputs[w]["sources"], "systems": {}}
        for name in systems:
            walls = [r["wall_s"] for r in runs[w][name]]
            entry["systems"][name] = {
                "median_wall_s": median(walls), "min_wall_s": min(walls),
                "rtf": median(walls) / audio_s,
                "median_cpu_s": median([r["cpu_s"] for r in runs[w][name]]),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[w][name]),
                "runs": runs[w][name],
            }
        if with_bp:
            ratio = entry["systems"]["transcribe"]["median_wall_s"] / entry["systems"]["basic-pitch"]["median_wall_s"]
            entry["ratio_ours_over_theirs"] = ratio
        if args.baseline_model:
            entry["ratio_ours_over_baseline_model"] = (entry["systems"]["transcribe"]["median_wall_s"]
                                                       / entry["systems"]["baseline-model"]["median_wall_s"])
        result["workloads"][w] = entry

    # where our time goes: one in-process run per workload, plus interpreter start-up
    interp = median([run([sys.executable, "-c", "pass"], env)["wall_s"] for _ in range(5)])
    result["breakdown"] = {}
    for w in workloads:
        out = work / "out" / "breakdown" / w
        out.mkdir(parents=True, exist_ok=True)
        r = run(me + ["--internal", "breakdown", "--threads", str(args.threads), str(out),
                      *map(str, inputs[w]["files"])], env)
        info = json.loads(r["stdout"].strip().splitlines()[-1])
        stages = {"interpreter": interp, **info["stages"]}
        whole = result["workloads"][w]["systems"]["transcribe"]["median_wall_s"]
        stages["command_line_overhead (whole-process median minus the stages)"] = whole - sum(stages.values())
        result["breakdown"][w] = {"stages_s": stages, "profile_process_wall_s": r["wall_s"],
                                  **{k: info[k] for k in ("backend", "torch_imported", "librosa_imported")}}

    # --help and long-recording memory
    helps = [run(ours_base(args) + ["--help"], env)["wall_s"] for _ in range(args.help_repeats)]
    result["help"] = {"median_wall_s": median(helps), "runs": helps}
    if args.memory_minutes > 0:
        long_path = work / "long" / f"concatenated_{int(args.memory_minutes)}min.flac"
        seconds = write_long_recording(args.data, long_path, args.memory_minutes)
        out = work / "out" / "transcribe" / "memory"
        out.mkdir(parents=True, exist_ok=True)
        r = run(systems["transcribe"]([long_path], out), env)
        result["memory"] = {"audio_s": seconds, "wall_s": r["wall_s"], "rtf": r["wall_s"] / seconds,
                            "peak_rss_mb": r["peak_rss_mb"]}
        long_path.unlink()
    if args.levers:
        print("timing levers...", flush=True)
        result["levers"] = levers(inputs["long"]["files"], args.threads, max(args.repeats, 3))
    result["load_average_after"] = os.getloadavg()

    print_table(result)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=str))
        print(f"\nwrote {args.out}")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def print_table(r: dict) -> None:
    print(f"\n{r['machine'].get('cpu', '?')}, {r['machine']['cpus']} CPUs; {r['threads']} threads per system; "
          f"median of {r['repeats']}; load average before {r['load_average_before'][0]:.2f}, "
          f"after {r['load_average_after'][0]:.2f}")
    print(f"\n{'workload':<26} {'system':<12} {'median s':>9} {'min s':>7} {'RTF':>8} {'CPU s':>7} {'peak MB':>8}")
    for w, e in r["workloads"].items():
        label = {"long": "one 5-min recording", "clips": "ten 30-s clips"}.get(w, w) + f" ({e['audio_s']:.0f} s)"
        for name, s in e["systems"].items():
            print(f"{label:<26} {name:<12} {s['median_wall_s']:9.2f} {s['min_wall_s']:7.2f} {s['rtf']:8.4f} "
                  f"{s['median_cpu_s']:7.2f} {s['peak_rss_mb']:8.0f}")
            label = ""
        if "ratio_ours_over_theirs" in e:
            ratio = e["ratio_ours_over_theirs"]
            speed = f"{1 / ratio:.1f}x faster" if ratio <= 1 else f"{ratio:.1f}x slower"
            print(f"{'':<26} {'ours/theirs':<12} {ratio:9.3f}  ({speed})")
        if "ratio_ours_over_baseline_model" in e:
            print(f"{'':<26} {'shipped/base':<12} {e['ratio_ours_over_baseline_model']:9.3f}")
    for name, f in r.get("first_run", {}).items():
        print(f"first run of {name} on one clip: {f['wall_s']:.2f} s")
    print(f"transcribe --help: {r['help']['median_wall_s']:.3f} s (median of {len(r['help']['runs'])})")
    if "memory" in r:
        m = r["memory"]
        print(f"{m['audio_s'] / 60:.0f}-min recording: peak RSS {m['peak_rss_mb']:.0f} MB, "
              f"{m['wall_s']:.1f} s (RTF {m['rtf']:.4f})")
    if r.get("breakdown"):
        ws = list(r["breakdown"])
        print(f"\nwhere our time goes (s)      " + " ".join(f"{w:>10}" for w in ws))
        keys = list(r["breakdown"][ws[0]]["stages_s"])
        for k in keys:
            short = k.split(" (")[0]
            print(f"  {short:<28}" + " ".join(f"{r['breakdown'][w]['stages_s'][k]:10.3f}" for w in ws))
        b = r["breakdown"][ws[0]]
        print(f"  (network backend: {b['backend']}; torch imported: {b['torch_imported']}; "
              f"librosa imported: {b['librosa_imported']})")
    if r.get("levers"):
        print(f"\n{'lever (5-min recording, in-process)':<66} {'min wall':>9} {'med wall':>9} {'min CPU':>8}")
        for k, v in r["levers"].items():
            print(f"  {k:<64} {v['min_wall_s']:9.3f} {v['median_wall_s']:9.3f} {v['min_cpu_s']:8.3f}")


if __name__ == "__main__":
    sys.exit(main())
