"""The ``transcribe`` command: audio files and folders in, MIDI (and note lists) out.

Heavy modules (torch, librosa) are imported only after the arguments are parsed, so
``transcribe --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .audio import AUDIO_EXTENSIONS
from .jobs import Result, WorkerSettings, default_jobs, parse_shard, plan_jobs, run_jobs, select_shard
from .notefiles import OUTPUT_FORMATS
from .progress import Progress, audio_duration

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="transcribe",
        description="Transcribe piano recordings to MIDI. Each input file gets a .mid file of the same "
        "name (next to it, or under --output-dir); folders are searched recursively for audio files "
        f"({', '.join(AUDIO_EXTENSIONS)}).",
        epilog="Examples:\n  transcribe recording.wav\n  transcribe a.wav b.flac -o out/\n"
        "  transcribe recordings/ -o midi/ --format mid,csv --jobs 2 --report report.json\n"
        "  transcribe --model runs/x/checkpoints/best.pt song.mp3\n\n"
        "Exit status: 0 when every input was transcribed or skipped, 1 when any failed, 2 for usage errors,\n"
        "130 when interrupted. Outputs are written under a temporary name and renamed when complete.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files and/or folders of audio files")
    p.add_argument("-o", "--output-dir", type=Path, default=None,
                   help="write outputs here (default: next to each input); a folder's files keep their "
                   "relative paths under it")
    p.add_argument("-m", "--model", type=Path, default=None,
                   help="checkpoint to use (default: the model shipped with the package)")
    p.add_argument("-f", "--format", default="mid",
                   help=f"output format(s), comma separated: {', '.join(OUTPUT_FORMATS)} (default: mid)")
    p.add_argument("--onset-threshold", type=float, default=None,
                   help="onset probability that starts a note (default: the checkpoint's)")
    p.add_argument("--frame-threshold", type=float, default=None,
                   help="frame probability that keeps a note sounding (default: the checkpoint's)")
    p.add_argument("--plot", action="store_true",
                   help="also write a piano-roll PNG (activations and notes) per input; needs matplotlib")
    p.add_argument("--glob", default=None,
                   help="only files of input folders whose relative path or name matches this pattern, "
                   "e.g. '*.flac' or 'live/**'")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that already exist (default: skip inputs whose outputs all exist, "
                   "so an interrupted batch resumes where it stopped)")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help=f"worker processes, each loading the model once (default: the CPU cores available, "
                   f"here {default_jobs()})")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per worker for the network (default: cores divided among the workers)")
    p.add_argument("--backend", choices=("auto", "onnx", "torch"), default=None,
                   help="network runtime: onnxruntime (faster; chosen by auto when installed) or torch "
                   "(default: conf/infer/default.yaml, auto)")
    p.add_argument("--int8", action="store_true", default=None,
                   help="dynamic int8 quantisation of the network on the onnx backend (about 30%% faster "
                   "network, note F1 within 0.001 of float in our checks)")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="process only the K-th of N interleaved parts of the sorted input list (K from 0), "
                   "e.g. --shard $SLURM_ARRAY_TASK_ID/16; the N shards partition the inputs exactly")
    p.add_argument("--report", type=Path, default=None, metavar="FILE.json",
                   help="write a machine-readable report: every input with its status, outputs and reason")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the final summary")
    p.add_argument("--version", action="version", version=f"%(prog)s {__import__('transcribe').__version__}")
    return p


def parse_formats(text: str) -> list[str]:
    """``"mid,csv"`` -> ``["mid", "csv"]``; unknown formats raise ValueError."""
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    formats = ["mid" if f == "midi" else f for f in formats]
    bad = [f for f in formats if f not in OUTPUT_FORMATS]
    if bad or not formats:
        raise ValueError(f"unknown output format {', '.join(bad) or text!r}; choose from {', '.join(OUTPUT_FORMATS)}")
    return list(dict.fromkeys(formats))


def usage_error(message: str) -> int:
    print(f"transcribe: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        formats = parse_formats(args.format)
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as err:
        return usage_error(str(err))
    if args.jobs is not None and args.jobs < 1:
        return usage_error("--jobs must be at least 1")
    if args.plot:
        from .plot import matplotlib_available

        if not matplotlib_available():
            return usage_error("--plot needs matplotlib: pip install 'transcribe[plot]'")
    extensions = formats + (["png"] if args.plot else [])

    jobs, results = plan_jobs(args.inputs, args.output_dir, extensions, args.glob)
    if shard:
        jobs = select_shard(jobs, *shard)
    for r in results:
        print(f"error: {r.audio}: {r.reason}", file=sys.stderr)
    progress_out = sys.stdout
    pending = []
    for job in jobs:
        if not args.overwrite and all(o.exists() for o in job.outputs):
            results.append(Result(job.audio, "skipped", job.outputs, reason="output exists"))
            if not args.quiet:
                print(f"skip {job.audio}: output exists (use --overwrite to replace)", file=progress_out)
        else:
            pending.append(job)

    interrupted = False
    t0 = time.monotonic()
    if pending:
        from .jobs import load_transcriber
        from .checkpoint import CheckpointError

        decode = {k: v for k, v in (("onset_threshold", args.onset_threshold),
                                    ("frame_threshold", args.frame_threshold)) if v is not None}
        from .infer import InferConfig

        n_jobs = min(args.jobs or default_jobs(), len(pending))
        threads = args.threads or (max(default_jobs() // n_jobs, 1) if n_jobs > 1 else None)
        infer = InferConfig.default().with_overrides(backend=args.backend, threads=threads, int8=args.int8)
        settings = WorkerSettings(str(args.model) if args.model else None, decode, infer)
        try:
            transcriber = load_transcriber(settings)  # once up front: a bad --model is one clear error
        except (CheckpointError, ValueError) as err:
            return usage_error(str(err))
        durations = [audio_duration(j.audio) for j in pending]
        total_audio = sum(durations) if all(d is not None for d in durations) else None
        progress = Progress(len(pending), total_audio, args.quiet, stream=progress_out)
        try:
            for r in run_jobs(pending, settings, n_jobs, on_start=progress.start,
                              transcriber=transcriber if n_jobs == 1 else None):
                results.append(r)
                report_result(r, progress)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.close()
    return finish(results, args, interrupted, time.monotonic() - t0)


def report_result(r: Result, progress: Progress) -> None:
    if r.status == "failed":
        progress.message(f"error: {r.audio}: {r.reason}", important=True, stream=sys.stderr)
        line = f"failed {r.audio}"
    else:
        if r.warning:
            progress.message(f"warning: {r.audio}: {r.warning}", important=True, stream=sys.stderr)
        line = (f"{r.audio} -> {', '.join(str(o) for o in r.outputs)}  ({r.notes} notes, "
                f"{r.audio_seconds:.1f} s audio in {r.seconds:.1f} s)")
    progress.advance(r.audio_seconds, line)


def finish(results: list[Result], args: argparse.Namespace, interrupted: bool, wall: float) -> int:
    """Print the summary, write the --report, and choose the exit code."""
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    failed = [r for r in results if r.status == "failed"]
    line = (f"transcribe: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
            + (" (interrupted; finished outputs are kept, none is half-written)" if interrupted else ""))
    print(line, file=sys.stderr if failed or interrupted else sys.stdout)
    for r in failed:
        print(f"  failed: {r.audio}: {r.reason}", file=sys.stderr)
    if args.report:
        import json

        from .files import atomic_write

        audio = sum(r.audio_seconds for r in results if r.status == "done")
        report = {"summary": {**counts, "interrupted": interrupted, "audio_seconds": round(audio, 3),
                              "wall_seconds": round(wall, 3)},
                  "files": [r.to_json() for r in results]}
        with atomic_write(args.report) as tmp:
            tmp.write_text(json.dumps(report, indent=1))
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else 0


def entry() -> None:
    """Console-script entry point. Ctrl-C stops at once; outputs are only ever renamed into
    place when complete, so nothing half-written is left behind."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ntranscribe: interrupted; finished outputs are kept, none is half-written", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    entry()
