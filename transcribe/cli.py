"""The ``transcribe`` command: audio files and folders in, MIDI (and note lists) out.

Heavy modules are imported only after the arguments are parsed, so ``transcribe --help``
answers at once. With the shipped model (or any checkpoint with its ONNX export beside it) the
network runs in onnxruntime and torch is never imported; it need not be installed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from ._version import __version__
from .audio import AUDIO_EXTENSIONS
from .files import clear_dead_claim
from .jobs import (STOP_SIGNALS, Job, PlanError, Result, WorkerSettings, default_jobs, parse_shard, plan_jobs, run_jobs,
                   select_shard)
from .outputs import OUTPUT_FORMATS
from .progress import Progress, audio_duration

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT); SIGTERM gives 143 and SIGHUP 129: 128 + the signal number
FILE_SUFFIXES = (".mid", ".midi", ".csv", ".json", ".png")

EPILOG = """Examples:
  transcribe --demo                         (the bundled 21 s clip -> demo.mid here)
  transcribe recording.wav
  transcribe a.wav b.flac -o out/
  transcribe recordings/ -o midi/ --format mid,csv --jobs 2 --report report.json
  transcribe piece.flac --format mid,musicxml --midi-tempo     # a score, and MIDI on the beat grid
  transcribe --model runs/x/checkpoints/best.pt song.mp3
  transcribe -- -take1.wav                  (a file name starting with '-')
  transcribe studio                         (a web page on this machine: drop recordings, see, hear, download)

Names: inputs that differ only in their extension (a.wav, a.flac) keep it in their output names
(a.wav.mid, a.flac.mid), so nothing is overwritten; other collisions are refused before any work.

Exit status: 0 when every input was transcribed or skipped, 1 when any failed, 2 for usage errors
(bad options, a bad --model, unwritable outputs: nothing is transcribed), 130 after Ctrl-C, 143
after SIGTERM, 129 after SIGHUP (the summary and --report are written first). Outputs are written
under a temporary name and renamed when complete; concurrent runs on one folder share the work."""


class UsageError(Exception):
    """A problem with the command line or its paths, found before any work."""


class TranscribeParser(argparse.ArgumentParser):
    """argparse, with a hint for file names that start with a dash."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        dashed = [a for a in sys.argv[1:] if a.startswith("-") and a != "--" and Path(a).suffix.lower()
                  in AUDIO_EXTENSIONS]
        if dashed or "unrecognized arguments: -" in message:
            name = dashed[0] if dashed else "-NAME.wav"
            message += (f"\n(a file name that starts with '-' must come after '--', e.g. "
                        f"transcribe [options] -- {name}, or be written as ./{name})")
        super().error(message)


def probability(text: str) -> float:
    """argparse type: a finite number strictly between 0 and 1."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not (0.0 < x < 1.0):  # also false for nan
        raise argparse.ArgumentTypeError(f"must be a finite number between 0 and 1 (exclusive), got {text}")
    return x


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def milliseconds(text: str) -> float:
    """argparse type: a finite number of milliseconds >= 0."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of milliseconds, got {text!r}") from None
    if not (0.0 <= x < float("inf")):  # also false for nan
        raise argparse.ArgumentTypeError(f"must be a finite number of milliseconds >= 0, got {text}")
    return x


def pitch_range(text: str) -> tuple[int, int]:
    """argparse type: ``LOW:HIGH`` keys (note names or MIDI numbers) -> (low, high) MIDI numbers."""
    from .notes import parse_pitch_range

    try:
        return parse_pitch_range(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: {err}") from None


def build_parser() -> argparse.ArgumentParser:
    """The ``transcribe`` command line."""
    p = TranscribeParser(
        prog="transcribe",
        description="Transcribe piano recordings to MIDI. Each input file gets a .mid file of the same "
        "name (next to it, or under --output-dir); folders are searched recursively for audio files "
        f"({', '.join(AUDIO_EXTENSIONS)}); links to folders inside them are listed, not followed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files and/or folders of audio files")
    p.add_argument("--demo", action="store_true",
                   help="transcribe the short clip that ships with the package (a minuet on a sampled grand "
                   "piano) and write demo.mid in the current folder (or under --output-dir); takes no INPUT")
    p.add_argument("-o", "--output-dir", type=Path, default=None,
                   help="write outputs into this folder (default: next to each input); a folder's files keep "
                   "their relative paths under it")
    p.add_argument("-m", "--model", type=Path, default=None,
                   help="checkpoint to use (default: the model shipped with the package); a .pt checkpoint without "
                   "its ONNX export beside it (NAME.onnx, python -m transcribe.runtime NAME.pt) needs torch")
    p.add_argument("-f", "--format", default="mid",
                   help=f"output format(s), comma separated: {', '.join(OUTPUT_FORMATS)} (default: mid)")
    p.add_argument("--onset-threshold", type=probability, default=None,
                   help="onset probability that starts a note (default: the checkpoint's)")
    p.add_argument("--frame-threshold", type=probability, default=None,
                   help="frame probability that keeps a note sounding (default: the checkpoint's)")
    pedal = p.add_mutually_exclusive_group()
    pedal.add_argument("--pedal", action="store_true",
                       help="write the sustain pedal (MIDI CC64, JSON \"pedal\") of a model with a pedal head even "
                       "where its checkpoint leaves it off (the shipped model does: see its model card); "
                       "--notes key turns it on too")
    pedal.add_argument("--no-pedal", action="store_true",
                       help="write no sustain pedal (MIDI CC64, JSON \"pedal\") even when the model has a pedal head "
                       "(models without one write none)")
    p.add_argument("--pedal-threshold", type=probability, default=None,
                   help="pedal probability that holds the sustain pedal down (default: the checkpoint's)")
    p.add_argument("--min-note-ms", type=milliseconds, default=None, metavar="MS",
                   help="drop notes that sound shorter than MS milliseconds (default: the checkpoint's, else "
                   "conf/decode/default.yaml: 0, keep all; the decoder's own minimum is one frame, 32 ms)")
    p.add_argument("--pitch-range", type=pitch_range, default=None, metavar="LOW:HIGH",
                   help="keep only notes on the keys LOW to HIGH, both included: note names or MIDI numbers, e.g. "
                   "A0:C8, C2:C7, 21:108 (default: the checkpoint's, else conf/decode/default.yaml: all 88, A0:C8)")
    p.add_argument("--notes", choices=("sounding", "key"), default=None,
                   help="note offsets: sounding (where the sound ends, held by the sustain pedal; what the metrics "
                   "score) or key (estimated key releases of the notes the pedal holds; the MIDI keeps the pedal as "
                   "CC64, so it sounds the same; needs a model with a pedal head) (default: the checkpoint's, else "
                   "conf/decode/default.yaml: sounding)")
    p.add_argument("--midi-tempo", action="store_true",
                   help="write MIDI whose tempo map follows the beats estimated from the music (so a DAW's bars and "
                   "beats line up with it); note times are unchanged (default: a fixed 120 BPM grid)")
    p.add_argument("--plot", action="store_true",
                   help="also write a piano-roll PNG (activations and notes; the first 10 minutes, one minute per row) "
                   "per input; needs matplotlib")
    p.add_argument("--sonify", action="store_true",
                   help="also write NAME.sonified.wav per input: the transcribed MIDI played back through FluidSynth "
                   "with a piano SoundFont, as long as the recording, to hear what was transcribed; needs FluidSynth "
                   "and a SoundFont (apt-get install fluidsynth fluid-soundfont-gm)")
    p.add_argument("--sonify-format", choices=("wav", "flac"), default=None,
                   help="with --sonify: write NAME.sonified.flac instead of .wav, or the other way round "
                   "(default: conf/sonify/default.yaml, wav)")
    p.add_argument("--soundfont", type=Path, default=None, metavar="PATH",
                   help="with --sonify: the SoundFont (.sf2/.sf3) to play with (default: the first found of "
                   "conf/sonify/default.yaml's list, e.g. /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    p.add_argument("--glob", default=None,
                   help="only files of input folders whose relative path or name matches this pattern, "
                   "e.g. '*.flac' or 'live/**'")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that already exist (default: skip inputs whose outputs all exist, "
                   "so an interrupted batch resumes where it stopped)")
    p.add_argument("-j", "--jobs", type=positive_int, default=None,
                   help=f"worker processes, each loading the model once (default: the CPU cores available, "
                   f"here {default_jobs()})")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads per worker for the network (default: cores divided among the workers)")
    p.add_argument("--backend", choices=("auto", "onnx", "torch"), default=None,
                   help="network runtime: onnxruntime (faster; chosen by auto when installed) or torch "
                   "(needs transcribe-piano[train]) (default: conf/infer/default.yaml, auto)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="where the network runs: cuda (an NVIDIA GPU: onnxruntime-gpu's CUDA provider, or torch's "
                   "CUDA; an error where there is none, never a silent fallback), cpu, or auto (the GPU when the "
                   "backend can use one here, else the CPU) (default: conf/infer/default.yaml, auto)")
    p.add_argument("--no-level", action="store_true",
                   help="transcribe the recording at its own level (default: its loud passages are first brought to "
                   "the level the model was trained at, conf/infer/default.yaml's level_db, so very quiet or loud "
                   "recordings transcribe as well as others)")
    p.add_argument("--int8", action="store_true", default=None,
                   help="dynamic int8 quantisation of the network on the onnx backend (about 30%% faster network, "
                   "note F1 within 0.001 of float in our checks; needs transcribe-piano[int8])")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="process only the K-th of N interleaved parts of the sorted input list (K from 0), "
                   "e.g. --shard $SLURM_ARRAY_TASK_ID/16; the N shards partition the inputs exactly")
    p.add_argument("--report", type=Path, default=None, metavar="FILE.json",
                   help="write a machine-readable report: every input with its status, outputs and reason")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the final summary")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print the effective settings: model and its digest, backend, device, decoder and chunking "
                   "(--report records them always)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
    """Run the command; returns the exit status. ``transcribe studio ...`` starts the studio
    (:mod:`transcribe.studio`; a file named ``studio`` is given as ``./studio``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["studio"]:
        from .studio.cli import main as studio

        return studio(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.inputs and not args.demo:
        parser.error("the following arguments are required: INPUT (or --demo, to try the bundled clip)")
    try:
        if args.demo:
            use_demo(args)
        extensions = check_options(args)
        jobs, results = plan(args, extensions)
        pending = pending_jobs(jobs, results, args)
        check_paths(args, pending)
    except UsageError as err:
        return usage_error(str(err))
    stopped = Interrupts()
    t0, before = time.monotonic(), output_states(pending)
    try:
        with stopped:
            run_batch(args, pending, results)
        if stopped.signal:
            results += finished_when_stopped(pending, results, before)
        status = finish(results, pending, args, stopped.signal, time.monotonic() - t0)
        if args.demo and not args.quiet:
            demo_done(results)
        return status
    except UsageError as err:
        return usage_error(str(err))
    finally:
        stopped.restore()


def use_demo(args: argparse.Namespace) -> None:
    """``--demo``: the input is the clip shipped in :mod:`transcribe.demo`, the outputs go to the
    current folder unless ``--output-dir`` says otherwise (as ``demo.mid`` and so on); says what
    the clip is. Input paths beside ``--demo`` are a usage error."""
    from .demo import DEMO_AUDIO, describe

    if args.inputs:
        raise UsageError(f"--demo transcribes the bundled clip and takes no input paths (got {' '.join(args.inputs)}); "
                         "leave out --demo to transcribe your own recordings")
    if not DEMO_AUDIO.is_file():
        raise UsageError(f"--demo: the bundled clip {DEMO_AUDIO} is missing from this installation")
    if args.output_dir is None:
        args.output_dir = Path.cwd()
    args.inputs = [str(DEMO_AUDIO)]
    if not args.quiet:
        print(f"demo: {describe()}", file=sys.stdout)


def demo_done(results: list[Result]) -> None:
    """After ``--demo``: where its outputs are (or why there are none)."""
    for r in results:
        if r.status == "done":
            print(f"demo: wrote {', '.join(str(o.resolve()) for o in r.outputs)}; open the .mid in any MIDI player "
                  "or DAW. Next: transcribe YOUR_RECORDING.wav", file=sys.stdout)
        elif r.status == "skipped":
            print(f"demo: {', '.join(str(o.resolve()) for o in r.outputs)} already there (--overwrite replaces it)",
                  file=sys.stdout)


def check_options(args: argparse.Namespace) -> list[str]:
    """Validate the options that argparse cannot; the output extensions."""
    try:
        formats = parse_formats(args.format)
        args.shard = parse_shard(args.shard) if args.shard else None
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.plot:
        from .plot import matplotlib_available

        if not matplotlib_available():
            raise UsageError("--plot needs matplotlib: pip install 'transcribe-piano[plot]'")
    if "musicxml" in formats or args.midi_tempo:
        from .deps import MissingDependency, require

        what = "--format musicxml" if "musicxml" in formats else "--midi-tempo"
        try:
            if "musicxml" in formats:
                require("music21", what, extra="score")
                require("partitura", f"{what} (its pitch spelling)", extra="score")
            require("librosa", f"{what} (its beat tracker)", extra="score")
        except MissingDependency as err:
            raise UsageError(str(err)) from None
    args.sonify_config = check_sonify(args)
    sonified = [args.sonify_config.extension] if args.sonify_config else []
    return formats + (["png"] if args.plot else []) + sonified


def check_sonify(args: argparse.Namespace):
    """``--sonify``: its settings (``conf/sonify/default.yaml`` with ``--sonify-format`` and
    ``--soundfont``), FluidSynth and the SoundFont found; None without it."""
    if not args.sonify:
        given = [o for o, v in (("--sonify-format", args.sonify_format), ("--soundfont", args.soundfont)) if v]
        if given:
            raise UsageError(f"{' and '.join(given)} only apply with --sonify: add --sonify")
        return None
    from dataclasses import replace

    from .sonify import SonifyConfig, SonifyError, checked

    try:
        cfg = SonifyConfig.default()
        cfg = replace(cfg, format=args.sonify_format or cfg.format,
                      soundfont=str(args.soundfont) if args.soundfont else cfg.soundfont)
        return checked(cfg)
    except (SonifyError, ValueError) as err:
        raise UsageError(str(err)) from None


def plan(args: argparse.Namespace, extensions: list[str]) -> tuple[list[Job], list[Result]]:
    """Jobs (this shard's) and the results already known (missing inputs, links); prints those."""
    try:
        jobs, results = plan_jobs(args.inputs, args.output_dir, extensions, args.glob)
    except PlanError as err:
        raise UsageError(str(err)) from None
    if args.shard:
        jobs = select_shard(jobs, *args.shard)
    for r in results:
        kind = "error" if r.status == "failed" else "warning"
        print(f"{kind}: {r.audio}: {r.reason}", file=sys.stderr)
    return jobs, results


def pending_jobs(jobs: list[Job], results: list[Result], args: argparse.Namespace) -> list[Job]:
    """The jobs still to do; the others become skipped results."""
    pending = []
    for job in jobs:
        if not args.overwrite and all(o.exists() for o in job.outputs):
            clear_dead_claim(job.outputs[0])
            results.append(Result(job.audio, "skipped", job.outputs, reason="output exists"))
            if not args.quiet:
                print(f"skip {job.audio}: output exists (use --overwrite to replace)", file=sys.stdout)
        else:
            pending.append(job)
    return pending


def _writable_folder(folder: Path, what: str) -> None:
    """Check that files can be created in ``folder``, or, if it does not exist yet, that it
    can be created (its nearest existing ancestor is a writable folder). Creates nothing."""
    import tempfile

    probe = folder
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():
            raise UsageError(f"{what} {folder}: {probe} is a dangling link")
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what} {folder}: {probe} exists and is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        where = "" if probe == folder else f" (its parent {probe} is not writable)"
        raise UsageError(f"{what} {folder}: cannot write there{where}: {err.strerror or err}") from None


def check_paths(args: argparse.Namespace, pending: list[Job]) -> None:
    """Before any work: -o is a folder (or can be one), every output folder and the --report
    path can be written. Errors name the path."""
    out = args.output_dir
    if out is not None:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--output-dir {out}: exists and is not a folder (-o takes a folder; outputs are "
                             "named after the inputs)")
        if not out.exists() and out.suffix.lower() in FILE_SUFFIXES:
            raise UsageError(f"--output-dir {out}: looks like a file name; -o takes a folder (outputs are named "
                             f"after the inputs: {out.suffix} files go into it)")
    for folder in sorted({o.parent for job in pending for o in job.outputs}):
        _writable_folder(folder, "output folder")
    if args.report is not None:
        if args.report.is_dir():
            raise UsageError(f"--report {args.report}: is a folder; give a file name, e.g. report.json")
        _writable_folder(args.report.parent, "--report folder")


class Interrupts:
    """Within ``with``: SIGINT, SIGTERM and SIGHUP (where there is one: not on Windows,
    :data:`~transcribe.jobs.STOP_SIGNALS`) all stop the batch as Ctrl-C does
    (KeyboardInterrupt), and :attr:`signal` records which came. From the first one until
    :meth:`restore`, they are ignored, so the workers are stopped and the summary and report
    written whatever else arrives."""

    SIGNALS = STOP_SIGNALS

    def __init__(self):
        self.signal: int | None = None
        self._saved = {s: signal.getsignal(s) for s in self.SIGNALS}

    def _ignore(self) -> None:
        for s in self.SIGNALS:
            signal.signal(s, signal.SIG_IGN)

    def _handler(self, signum, frame):
        self._ignore()
        self.signal = signum
        raise KeyboardInterrupt

    def __enter__(self):
        for s in self.SIGNALS:
            signal.signal(s, self._handler)
        return self

    def __exit__(self, kind, value, tb) -> bool:
        self._ignore()
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.signal = self.signal or signal.SIGINT
            return True
        return False

    def restore(self) -> None:
        """Put back the handlers there were before."""
        for s, handler in self._saved.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def run_batch(args: argparse.Namespace, pending: list[Job], results: list[Result]) -> None:
    """Load the model, run the pending jobs, and collect their results."""
    if not pending:
        return
    from .checkpoint import CheckpointError
    from .deps import MissingDependency
    from .infer import InferConfig
    from .jobs import load_transcriber

    low, high = args.pitch_range or (None, None)
    decode = {k: v for k, v in (("onset_threshold", args.onset_threshold),
                                ("frame_threshold", args.frame_threshold),
                                ("pedal_threshold", args.pedal_threshold),
                                ("pedal", False if args.no_pedal else True if args.pedal or args.notes == "key" else None),
                                ("min_note_ms", args.min_note_ms),
                                ("min_pitch", low), ("max_pitch", high),
                                ("notes", args.notes)) if v is not None}
    n_jobs = min(args.jobs or default_jobs(), len(pending))
    threads = args.threads or (max(default_jobs() // n_jobs, 1) if n_jobs > 1 else None)
    try:
        infer = InferConfig.default().with_overrides(backend=args.backend, threads=threads, int8=args.int8,
                                                     device=args.device)
        if args.no_level:
            infer = infer.with_overrides(level_db=None)
        settings = WorkerSettings(str(args.model) if args.model else None, decode, infer, overwrite=args.overwrite,
                                  midi_tempo=args.midi_tempo, sonify=args.sonify_config)
        transcriber = load_transcriber(settings)  # once up front: a bad --model is one clear error
    except (CheckpointError, MissingDependency, ValueError) as err:  # e.g. --backend torch without torch, --device cuda without a GPU
        raise UsageError(str(err)) from None
    args.effective = effective_settings(settings, transcriber)
    if args.verbose:
        for k, v in args.effective.items():
            print(f"{k}: {v}", file=sys.stderr)
    durations = [audio_duration(j.audio) for j in pending]
    total_audio = sum(durations) if all(d is not None for d in durations) else None
    progress = Progress(len(pending), total_audio, args.quiet, stream=sys.stdout)
    try:
        for r in run_jobs(pending, settings, n_jobs, on_start=progress.start,
                          transcriber=transcriber if n_jobs == 1 else None):
            results.append(r)
            report_result(r, progress)
    finally:
        progress.close()


def effective_settings(settings: WorkerSettings, transcriber) -> dict:
    """What a run used, for -v and --report: package version, model and its SHA-256, backend and
    the device it runs on, decoder settings, inference settings, the MIDI tempo and sonification
    settings (None without --sonify)."""
    from dataclasses import asdict

    from .checkpoint import Checkpoint

    ckpt = Checkpoint(settings.checkpoint)
    return {"version": __version__, "model": str(ckpt.path), "model_sha256": ckpt.digest,
            "backend": transcriber.backend, "device": transcriber.device, "decode": asdict(transcriber.decode),
            "infer": asdict(transcriber.infer),
            "midi_tempo": settings.midi_tempo, "sonify": sonify_settings(settings.sonify)}


def sonify_settings(cfg) -> dict | None:
    """What --sonify used (the SoundFont found; not the places searched), for -v and --report."""
    if cfg is None:
        return None
    from dataclasses import asdict

    return {k: v for k, v in asdict(cfg).items() if k != "soundfont_search"}


def report_result(r: Result, progress: Progress) -> None:
    """Print one finished job (and advance the progress line)."""
    if r.status == "failed":
        progress.message(f"error: {r.audio}: {r.reason}", important=True, stream=sys.stderr)
        line = f"failed {r.audio}"
    elif r.status == "skipped":
        progress.message(f"skip {r.audio}: {r.reason}")
        line = f"skipped {r.audio}"
    else:
        if r.warning:
            progress.message(f"warning: {r.audio}: {r.warning}", important=True, stream=sys.stderr)
        line = (f"{r.audio} -> {', '.join(str(o) for o in r.outputs)}  ({r.notes} notes, "
                f"{r.audio_seconds:.1f} s audio in {r.seconds:.1f} s)")
    progress.advance(r.audio_seconds, line)


OutputState = tuple[int, int, int, int] | None  # (device, inode, mtime ns, size) of an output; None: absent


def output_states(jobs: list[Job]) -> dict[Path, OutputState]:
    """What each output of ``jobs`` is on disk before the run: its identity, or None."""
    states: dict[Path, OutputState] = {}
    for job in jobs:
        for o in job.outputs:
            try:
                st = o.stat()
                states[o] = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                states[o] = None
    return states


def finished_when_stopped(pending: list[Job], results: list[Result], before: dict[Path, OutputState]) -> list[Result]:
    """Jobs without a result whose every output was put in place during this run (present, and
    not the file that was there before it: ``before``, from :func:`output_states`; outputs are
    renamed into place, so a new one is a new file) before a signal stopped it: the signal came
    between the last write and the bookkeeping, so they are reported ``done``, as what is on
    disk says. No clock is compared, so clock skew or coarse modification times do not matter."""
    have = {r.audio for r in results}
    out = []
    for job in pending:
        if job.audio in have:
            continue
        now = output_states([job])
        if all(now[o] is not None and now[o] != before.get(o) for o in job.outputs):
            out.append(Result(job.audio, "done", job.outputs, reason="finished as the run was stopped"))
    return out


def finish(results: list[Result], pending: list[Job], args: argparse.Namespace, stopped_by: int | None,
           wall: float) -> int:
    """Print the summary, write the --report, and choose the exit code. After an interrupt,
    the pending inputs without a result are reported as ``interrupted``."""
    if stopped_by:
        finished = {r.audio for r in results}
        results += [Result(j.audio, "interrupted", reason="not finished: the run was stopped")
                    for j in pending if j.audio not in finished]
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed", "interrupted")}
    failed = [r for r in results if r.status == "failed"]
    line = f"transcribe: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
    if stopped_by:
        name = signal.Signals(stopped_by).name
        line += (f", {counts['interrupted']} not finished (interrupted by {name}; finished outputs are kept, "
                 "none is half-written)")
    print(line, file=sys.stderr if failed or stopped_by else sys.stdout)
    for r in failed:
        print(f"  failed: {r.audio}: {r.reason}", file=sys.stderr)
    if args.report:
        write_report(args.report, results, counts, stopped_by, wall, getattr(args, "effective", None))
    if stopped_by:
        return 128 + stopped_by
    return EXIT_FAILED if failed else 0


def write_report(path: Path, results: list[Result], counts: dict, stopped_by: int | None, wall: float,
                 settings: dict | None = None) -> None:
    """The --report JSON: a summary, the effective settings (None when nothing was transcribed)
    and every input with its status."""
    import json

    from .files import atomic_write

    audio = sum(r.audio_seconds for r in results if r.status == "done")
    # "interrupted" stays the count of files not finished; whether the run was stopped has its own key
    report = {"summary": {**counts, "stopped": bool(stopped_by),
                          "signal": signal.Signals(stopped_by).name if stopped_by else None,
                          "audio_seconds": round(audio, 3), "wall_seconds": round(wall, 3)},
              "settings": settings, "files": [r.to_json() for r in results]}
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(report, indent=1))


def entry() -> None:
    """Console-script entry point. Ctrl-C (or SIGTERM) stops at once; outputs are only ever
    renamed into place when complete, so nothing half-written is left behind."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ntranscribe: interrupted; finished outputs are kept, none is half-written", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    entry()
