"""The ``transcribe`` command: audio files and folders in, MIDI (and note lists) out.

Heavy modules (torch, librosa) are imported only after the arguments are parsed, so
``transcribe --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .audio import AUDIO_EXTENSIONS, find_audio_files
from .midi import OUTPUT_FORMATS

EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="transcribe",
        description="Transcribe piano recordings to MIDI. Each input file gets a .mid file of the same "
        "name (next to it, or under --output-dir); folders are searched recursively for audio files "
        f"({', '.join(AUDIO_EXTENSIONS)}).",
        epilog="Examples:\n  transcribe recording.wav\n  transcribe a.wav b.flac -o out/\n"
        "  transcribe recordings/ -o midi/ --format mid,csv\n  transcribe --model runs/x/checkpoints/best.pt song.mp3",
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
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist (default: skip them)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the network (default: torch's choice)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the final summary")
    p.add_argument("--version", action="version", version=f"%(prog)s {__import__('transcribe').__version__}")
    return p


@dataclass
class Job:
    """One input file and the output paths (without extension) its results go to."""

    audio: Path
    out_stem: Path


@dataclass
class Summary:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def plan_jobs(inputs: list[str], output_dir: Path | None) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Expand files and folders into jobs; inputs that do not exist are returned as failures."""
    jobs, missing = [], []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = find_audio_files(path)
            if not files:
                missing.append((path, "folder contains no audio files"))
            for f in files:
                base = (output_dir / f.relative_to(path)) if output_dir else f
                jobs.append(Job(f, base.with_suffix("")))
        elif path.exists() or path.is_symlink():
            base = (output_dir / path.name) if output_dir else path
            jobs.append(Job(path, base.with_suffix("")))
        else:
            missing.append((path, "no such file or folder"))
    return jobs, missing


def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    formats = ["mid" if f == "midi" else f for f in formats]
    bad = [f for f in formats if f not in OUTPUT_FORMATS]
    if bad or not formats:
        raise ValueError(f"unknown output format {', '.join(bad) or text!r}; choose from {', '.join(OUTPUT_FORMATS)}")
    return list(dict.fromkeys(formats))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    try:
        formats = parse_formats(args.format)
    except ValueError as err:
        print(f"transcribe: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    jobs, failures = plan_jobs(args.inputs, args.output_dir)
    summary = Summary(failed=failures)
    for path, reason in failures:
        print(f"error: {path}: {reason}", file=sys.stderr)

    pending = []
    for job in jobs:
        outputs = [job.out_stem.with_name(f"{job.out_stem.name}.{fmt}") for fmt in formats]
        if not args.overwrite and all(o.exists() for o in outputs):
            summary.skipped.append(job.audio)
            say(f"skip {job.audio}: output exists (use --overwrite to replace)")
        else:
            pending.append((job, outputs))

    if pending:
        from .checkpoint import CheckpointError
        from .infer import Transcriber

        decode = {k: v for k, v in (("onset_threshold", args.onset_threshold),
                                    ("frame_threshold", args.frame_threshold)) if v is not None}
        try:
            transcriber = Transcriber.from_checkpoint(args.model, decode=decode)
        except (CheckpointError, ValueError) as err:
            print(f"transcribe: error: {err}", file=sys.stderr)
            return EXIT_USAGE
        run_jobs(transcriber, pending, formats, args, summary, say)

    print(f"transcribe: {len(summary.done)} done, {len(summary.skipped)} skipped, {len(summary.failed)} failed",
          file=sys.stderr if summary.failed else sys.stdout)
    for path, reason in summary.failed:
        print(f"  failed: {path}: {reason}", file=sys.stderr)
    return EXIT_FAILED if summary.failed else 0


def run_jobs(transcriber, pending: list, formats: list[str], args: argparse.Namespace, summary: Summary, say) -> None:
    """Transcribe every pending job with one loaded model, recording failures and going on."""
    import torch

    from .audio import AudioError, load_audio
    from .midi import write_notes

    if args.threads:
        torch.set_num_threads(args.threads)
    for i, (job, outputs) in enumerate(pending, 1):
        t0 = time.time()
        try:
            audio = load_audio(job.audio, transcriber.sample_rate)
            notes = transcriber.transcribe(audio)
            for fmt, out in zip(formats, outputs):
                write_notes(notes, out, fmt)
        except (AudioError, OSError) as err:
            reason = err.reason if isinstance(err, AudioError) else (err.strerror or str(err))
            summary.failed.append((job.audio, reason))
            print(f"error: {job.audio}: {reason}", file=sys.stderr)
            continue
        summary.done.append(job.audio)
        seconds = len(audio) / transcriber.sample_rate
        if len(notes) == 0:
            print(f"warning: {job.audio}: no notes found (silent or not piano?)", file=sys.stderr)
        say(f"[{i}/{len(pending)}] {job.audio} -> {', '.join(str(o) for o in outputs)}  "
            f"({len(notes)} notes, {seconds:.1f} s audio in {time.time() - t0:.1f} s)")


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
