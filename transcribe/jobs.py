"""Batch transcription jobs (one per input file): plan jobs from files and folders, split them into shards, and run
them in worker processes that each load the model once. A bad file never stops a batch;
every job ends as one :class:`Result` (done, skipped or failed, with a reason).

Only the standard library is imported here at module level, so ``transcribe --help`` is fast;
workers import torch and librosa when they start.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .audio import find_audio_files


@dataclass
class Job:
    """One input file and the output files its results go to."""

    audio: Path
    outputs: list[Path]


@dataclass
class Result:
    """What happened to one job."""

    audio: Path
    status: str  # "done", "skipped" or "failed"
    outputs: list[Path] = field(default_factory=list)
    reason: str = ""
    warning: str = ""
    notes: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0

    def to_json(self) -> dict:
        row = asdict(self)
        row["audio"] = str(self.audio)
        row["outputs"] = [str(p) for p in self.outputs]
        return row


def output_paths(stem: Path, extensions: list[str]) -> list[Path]:
    """``stem`` with each extension appended (``song`` -> ``song.mid``, ``song.csv``)."""
    return [stem.with_name(f"{stem.name}.{ext}") for ext in extensions]


def plan_jobs(
    inputs: list[str | Path], output_dir: Path | None, extensions: list[str], glob: str | None = None
) -> tuple[list[Job], list[Result]]:
    """Expand files and folders into jobs, in a deterministic order.

    Folders are searched recursively; their files keep their relative path under
    ``output_dir``. ``glob`` (matched against the path relative to the folder given, and
    against the file name) narrows what folders contribute. Inputs that do not exist come
    back as failed results. A file reached twice is transcribed once.
    """
    jobs: list[Job] = []
    failed: list[Result] = []
    seen: set[Path] = set()

    def add(audio: Path, rel: Path) -> None:
        key = audio.resolve()
        if key in seen:
            return
        seen.add(key)
        stem = ((output_dir / rel) if output_dir else audio).with_suffix("")
        jobs.append(Job(audio, output_paths(stem, extensions)))

    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = find_audio_files(path)
            if glob:
                files = [f for f in files if fnmatch.fnmatch(str(f.relative_to(path)), glob)
                         or fnmatch.fnmatch(f.name, glob)]
            if not files:
                failed.append(Result(path, "failed", reason="folder contains no audio files"
                                     + (f" matching {glob!r}" if glob else "")))
            for f in files:
                add(f, f.relative_to(path))
        elif path.exists() or path.is_symlink():
            add(path, Path(path.name))
        else:
            failed.append(Result(path, "failed", reason="no such file or folder"))
    return jobs, failed


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N (K counts from 0, like SLURM array and
    Kubernetes indexed-job indices)."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard expects K/N with whole numbers, e.g. 0/4; got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard {text}: need N >= 1 and 0 <= K < N")
    return k, n


def select_shard(jobs: list[Job], k: int, n: int) -> list[Job]:
    """The K-th of N interleaved parts of ``jobs`` (sorted by input path). The N shards
    partition the jobs exactly and their sizes differ by at most one."""
    ordered = sorted(jobs, key=lambda j: str(j.audio))
    return ordered[k::n]


def remove_stale_parts(outputs: list[Path]) -> None:
    """Delete temporary files that an earlier, killed run left beside these outputs."""
    for out in outputs:
        if out.parent.is_dir():
            for part in out.parent.glob(f".{out.name}.*.part"):
                part.unlink(missing_ok=True)


def default_jobs() -> int:
    """How many CPU cores this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


# ---------------------------------------------------------------------------- worker side

@dataclass
class WorkerSettings:
    """Everything a worker needs to load the model and write outputs (picklable): the
    checkpoint's path (None: the shipped model), decoder overrides, and how to run the network
    (an :class:`~transcribe.infer.InferConfig`)."""

    checkpoint: str | None
    decode: dict
    infer: object


_worker: "Worker | None" = None


def load_transcriber(settings: WorkerSettings):
    """The :class:`~transcribe.infer.Transcriber` these settings describe."""
    from .infer import Transcriber

    return Transcriber.from_checkpoint(settings.checkpoint, decode=settings.decode, infer=settings.infer)


class Worker:
    """Loads the model once, then transcribes one job at a time."""

    def __init__(self, settings: WorkerSettings, transcriber=None):
        self.settings = settings
        self.transcriber = transcriber if transcriber is not None else load_transcriber(settings)

    def run(self, job: Job) -> Result:
        """Transcribe ``job.audio`` and write every output; failures become a failed Result."""
        from .audio import AudioError, load_audio
        from .notefiles import write_notes

        t0 = time.perf_counter()
        tr = self.transcriber
        try:
            audio = load_audio(job.audio, tr.sample_rate)
            hop = tr.features.hop_length
            if len(audio) < hop:
                raise AudioError(job.audio, f"too short: {len(audio)} samples at {tr.sample_rate} Hz, "
                                 f"less than one frame ({hop} samples)")
            act = tr.activations(audio)
            notes = tr.notes_from_activations(act)
            remove_stale_parts(job.outputs)
            for out in job.outputs:
                ext = out.suffix.lstrip(".")
                if ext == "png":
                    from .plot import write_piano_roll

                    write_piano_roll(notes, act, tr.features.frame_rate, out, title=job.audio.name)
                else:
                    write_notes(notes, out, ext)
        except AudioError as err:
            return Result(job.audio, "failed", reason=err.reason, seconds=time.perf_counter() - t0)
        except OSError as err:
            return Result(job.audio, "failed", reason=err.strerror or str(err), seconds=time.perf_counter() - t0)
        except MemoryError:
            return Result(job.audio, "failed", reason="out of memory", seconds=time.perf_counter() - t0)
        warning = "no notes found (silent or not piano?)" if len(notes) == 0 else ""
        return Result(job.audio, "done", job.outputs, warning=warning, notes=len(notes),
                      audio_seconds=len(audio) / tr.sample_rate, seconds=time.perf_counter() - t0)


def _init_worker(settings: WorkerSettings) -> None:
    """Process-pool initializer: Ctrl-C is the parent's business; load the model once."""
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = Worker(settings)


def _run_in_worker(job: Job) -> Result:
    assert _worker is not None
    return _worker.run(job)


def run_jobs(jobs: list[Job], settings: WorkerSettings, n_jobs: int,
             on_start: Callable[[], None] | None = None, transcriber=None) -> Iterator[Result]:
    """Transcribe ``jobs`` with ``n_jobs`` worker processes (in this process, with
    ``transcriber`` if one is already loaded, when 1), yielding results as they finish. A worker that dies (killed, out of memory) fails only the files it
    was working on after a retry; the others go on in a fresh pool."""
    if not jobs:
        return
    n_jobs = max(1, min(n_jobs, len(jobs)))
    if n_jobs == 1:
        worker = Worker(settings, transcriber)
        if on_start:
            on_start()
        for job in jobs:
            yield worker.run(job)
        return
    yield from _run_pool(jobs, settings, n_jobs, on_start)


def _run_pool(jobs: list[Job], settings: WorkerSettings, n_jobs: int,
              on_start: Callable[[], None] | None) -> Iterator[Result]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    queue = list(reversed(jobs))
    crashes: dict[Path, int] = {}
    started = False
    while queue:
        pool = ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(settings,))
        in_flight: dict = {}
        try:
            broken = False
            while (queue or in_flight) and not broken:
                while queue and len(in_flight) < n_jobs:  # bounded, so a crash blames few files
                    job = queue.pop()
                    in_flight[pool.submit(_run_in_worker, job)] = job
                if not started and on_start:
                    started = True
                    on_start()
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = in_flight.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool:
                        broken = True
                        in_flight[fut] = job
            for fut, job in in_flight.items():  # the pool died: retry each file once
                crashes[job.audio] = crashes.get(job.audio, 0) + 1
                if crashes[job.audio] >= 2:
                    yield Result(job.audio, "failed", reason="the worker process died while transcribing it "
                                 "(out of memory, or killed)")
                else:
                    queue.append(job)
        except BaseException:
            for proc in list(getattr(pool, "_processes", {}).values()):  # stop at once on Ctrl-C
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
