"""Batch transcription jobs (one per input file): plan jobs from files and folders, split them into shards, and run
them in worker processes that each load the model once. A bad file never stops a batch;
every job ends as one :class:`Result` (done, skipped or failed, with a reason).

Only the standard library is imported here at module level, so ``transcribe --help`` is fast;
workers import the network runtime (onnxruntime; torch only for --backend torch) when they start.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .audio import scan_folder
from .files import remove_stale_parts, try_claim  # noqa: F401 - remove_stale_parts is re-exported
from .sonify import is_sonified, sonified_source


@dataclass
class Job:
    """One input file and the output files its results go to."""

    audio: Path
    outputs: list[Path]


@dataclass
class Result:
    """What happened to one job."""

    audio: Path
    status: str  # "done", "skipped", "failed"; "interrupted" (not finished when stopped); "busy" (internal)
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


class PlanError(ValueError):
    """Inputs that cannot be planned (outputs that would collide); the message says which."""


def _resolve_collisions(jobs: list[Job], extensions: list[str]) -> None:
    """Inputs that differ only in their extension (``a.wav``, ``a.flac``) would write the same
    output: each of them keeps its extension in its output names instead (``a.wav.mid``,
    ``a.flac.mid``). Any collision left (the same name from two input folders given with one
    ``-o``) raises :class:`PlanError`, before any work."""
    def groups() -> dict[Path, list[Job]]:
        by_output: dict[Path, list[Job]] = {}
        for job in jobs:
            by_output.setdefault(job.outputs[0], []).append(job)
        return {out: group for out, group in by_output.items() if len(group) > 1}

    clashes = {}
    for out, group in groups().items():
        if len({j.audio.suffix for j in group}) < len(group):
            clashes[out] = group  # the extension cannot tell them apart
            continue
        for job in group:
            stem = job.outputs[0].with_suffix("")
            job.outputs = output_paths(stem.with_name(f"{stem.name}{job.audio.suffix}"), extensions)
    clashes.update(groups())
    if clashes:
        lines = [f"{out} would be written for each of {', '.join(str(j.audio) for j in group)}"
                 for out, group in sorted(clashes.items())[:10]]
        raise PlanError("outputs would collide (nothing was transcribed):\n  " + "\n  ".join(lines)
                        + "\n  transcribe these inputs into different --output-dir folders")


def _folder_inputs(path: Path, glob: str | None) -> tuple[list[Path], list[Result]]:
    """The audio files of an input folder (narrowed by ``glob``), and a result for each link
    that the search passed over."""
    files, dangling, links = scan_folder(path)
    bases = {f.with_suffix("") for f in files} | set(files)  # the output stems of the files (a.wav -> a, a.wav)
    files = [f for f in files if not (is_sonified(f) and sonified_source(f) in bases)]  # --sonify's outputs
    if glob:
        files = [f for f in files if fnmatch.fnmatch(str(f.relative_to(path)), glob)
                 or fnmatch.fnmatch(f.name, glob)]
    notes = [Result(p, "failed", reason="dangling symbolic link (its target does not exist)") for p in dangling]
    notes += [Result(p, "skipped", reason="link to a folder, not followed (give it as an input to include it)")
              for p in links]
    if not files:
        notes.append(Result(path, "failed", reason="folder contains no audio files"
                            + (f" matching {glob!r}" if glob else "")))
    return files, notes


def plan_jobs(
    inputs: list[str | Path], output_dir: Path | None, extensions: list[str], glob: str | None = None
) -> tuple[list[Job], list[Result]]:
    """Expand files and folders into jobs, in a deterministic order.

    Folders are searched recursively; their files keep their relative path under
    ``output_dir``. ``glob`` (matched against the path relative to the folder given, and
    against the file name) narrows what folders contribute. Inputs that do not exist, and
    dangling links inside folders, come back as failed results; links to folders inside
    folders as skipped ones. A file reached twice is transcribed once. Name collisions are
    resolved or refused as :func:`_resolve_collisions` says (raises :class:`PlanError`).
    """
    jobs: list[Job] = []
    results: list[Result] = []
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
            files, notes = _folder_inputs(path, glob)
            results += notes
            for f in files:
                add(f, f.relative_to(path))
        elif path.exists():
            add(path, Path(path.name))
        elif path.is_symlink():
            results.append(Result(path, "failed", reason="dangling symbolic link (its target does not exist)"))
        else:
            results.append(Result(path, "failed", reason="no such file or folder"))
    _resolve_collisions(jobs, extensions)
    _refuse_outputs_that_are_inputs(jobs)
    return jobs, results


def _refuse_outputs_that_are_inputs(jobs: list[Job]) -> None:
    """An output that is one of the inputs (``a.wav`` and ``a.sonified.wav`` given together with
    ``--sonify``) would be overwritten: :class:`PlanError`, before any work."""
    inputs = {job.audio.resolve(): job.audio for job in jobs}
    clashes = [(out, job.audio, inputs[out.resolve()]) for job in jobs for out in job.outputs if out.resolve() in inputs]
    if clashes:
        lines = [f"{out} (an output of {audio}) is the input {other}" for out, audio, other in clashes[:10]]
        raise PlanError("an output would overwrite an input (nothing was transcribed):\n  " + "\n  ".join(lines)
                        + "\n  leave that input out, or write the outputs elsewhere with --output-dir")


def parse_shard(text: str, option: str = "--shard") -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N (K counts from 0, like SLURM array and
    Kubernetes indexed-job indices). The one shard parser: ``transcribe --shard`` and
    ``transcribe-render shard=`` (``option`` names which in the error)."""
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"{option} expects K/N with whole numbers, e.g. 0/4; got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"{option} {text}: need N >= 1 and 0 <= K < N")
    return k, n


def select_shard(jobs: list[Job], k: int, n: int) -> list[Job]:
    """The K-th of N interleaved parts of ``jobs`` (sorted by input path). The N shards
    partition the jobs exactly and their sizes differ by at most one."""
    ordered = sorted(jobs, key=lambda j: str(j.audio))
    return ordered[k::n]


# The signals that stop a batch (the parent stops its workers; workers ignore them). SIGHUP (terminal
# closed) is not on Windows: there only SIGINT and SIGTERM are caught (a closed console ends the
# process without a summary).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def default_jobs() -> int:
    """How many CPU cores this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


# ---------------------------------------------------------------------------- worker side

PLOT_SECONDS = 600.0  # --plot draws at most the first 10 minutes of a recording


@dataclass
class WorkerSettings:
    """Everything a worker needs to load the model and write outputs (picklable): the
    checkpoint's path (None: the shipped model), decoder overrides, how to run the network
    (an :class:`~transcribe.infer.InferConfig`), whether existing outputs are replaced, and how
    MIDI and the sonified audio are written."""

    checkpoint: str | None
    decode: dict
    infer: object
    overwrite: bool = False
    midi_tempo: bool = False  # MIDI with a tempo map that follows the estimated beats
    sonify: object = None  # a checked transcribe.sonify.SonifyConfig: how <stem>.sonified.<format> is played


_worker: "Worker | None" = None


def load_transcriber(settings: WorkerSettings):
    """The :class:`~transcribe.infer.Transcriber` these settings describe."""
    from .infer import Transcriber

    return Transcriber.from_checkpoint(settings.checkpoint, decode=settings.decode, infer=settings.infer)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Worker:
    """Loads the model once, then transcribes one job at a time."""

    def __init__(self, settings: WorkerSettings, transcriber=None):
        self.settings = settings
        self.transcriber = transcriber if transcriber is not None else load_transcriber(settings)

    def run(self, job: Job, wait: bool = False) -> Result:
        """Claim ``job``'s outputs (see :class:`~transcribe.files.Claim`), transcribe it and write
        every output. Another run holding the claim gives status ``busy`` (or, with ``wait``,
        this waits for it); outputs that another run completed meanwhile are skipped."""
        try:
            claim = try_claim(job.outputs[0], wait=wait)
        except OSError as err:
            return Result(job.audio, "failed", reason=f"cannot write to {err.filename or job.outputs[0].parent}: "
                          f"{err.strerror or err}")
        if claim is None:
            return Result(job.audio, "busy", job.outputs, reason="another run is transcribing it")
        try:
            if not self.settings.overwrite and all(o.exists() for o in job.outputs):
                return Result(job.audio, "skipped", job.outputs, reason="output exists (written by another run)")
            return self._transcribe(job)
        finally:
            claim.release()

    def _transcribe(self, job: Job) -> Result:
        from .audio import AudioError, AudioStream

        t0 = time.perf_counter()
        plot = any(o.suffix == ".png" for o in job.outputs)
        stream = AudioStream(job.audio, self.transcriber.sample_rate)
        try:
            res = self.transcriber.transcribe_stream(stream, keep_seconds=PLOT_SECONDS if plot else 0.0)
        except AudioError as err:
            return Result(job.audio, "failed", reason=err.reason, seconds=time.perf_counter() - t0)
        except MemoryError:
            return Result(job.audio, "failed", reason="out of memory", seconds=time.perf_counter() - t0)
        except Exception as err:  # noqa: BLE001 - one bad file never stops the batch
            return Result(job.audio, "failed", reason=f"{type(err).__name__}: {err}", seconds=time.perf_counter() - t0)
        warnings = self._warnings(res, plot)
        from .sonify import SonifyError

        try:
            self._write(job, res)
        except OSError as err:
            return Result(job.audio, "failed", reason=f"cannot write {err.filename or job.outputs[0]}: "
                          f"{err.strerror or err}", seconds=time.perf_counter() - t0)
        except SonifyError as err:  # FluidSynth failed on this input: the batch goes on
            return Result(job.audio, "failed", reason=str(err), seconds=time.perf_counter() - t0)
        return Result(job.audio, "done", job.outputs, warning="; ".join(warnings), notes=len(res.notes),
                      audio_seconds=res.audio_seconds, seconds=time.perf_counter() - t0)

    @staticmethod
    def _warnings(res, plot: bool) -> list[str]:
        from .audio import CLIPPED_SHARE, summarise_messages

        warnings = [summarise_messages(res.decoder_messages)] if res.decoder_messages else []
        if res.clipped_share >= CLIPPED_SHARE:
            warnings.append(f"clipped: {res.clipped_share:.1%} of its samples sit flat at the peak (recorded too "
                            "loud); expect missed and wrong notes (README: keep recordings below full scale)")
        if len(res.notes) == 0:
            warnings.append("no notes found (silent or not piano?)")
        if plot and res.audio_seconds > PLOT_SECONDS:
            warnings.append(f"the plot shows the first {_clock(PLOT_SECONDS)} of {_clock(res.audio_seconds)}")
        return warnings

    def _write(self, job: Job, res) -> None:
        from .outputs import write_outputs

        remove_stale_parts(job.outputs)
        write_outputs(res, job.outputs, job.audio.name, self.transcriber.features.frame_rate,
                      self.transcriber.decode.onset_threshold, self.settings.sonify, self.settings.midi_tempo)


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process (SIGKILL) when its parent dies, however it dies
    (Linux ``prctl(PR_SET_PDEATHSIG)``); exit at once if the parent is already gone. Elsewhere
    (macOS, Windows: no prctl) the fallback is the process pool's own: a worker whose parent's
    pipe closes ends when it next asks for work."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # a libc without prctl: the pool's fallback above
            pass
    if os.getppid() != parent:
        os._exit(1)


def _init_worker(settings: WorkerSettings, parent: int) -> None:
    """Process-pool initializer: die with the parent; signals are the parent's business (it
    stops the workers itself); load the model once."""
    global _worker
    die_with_parent(parent)
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _worker = Worker(settings)


def _run_in_worker(job: Job, wait: bool) -> Result:
    assert _worker is not None
    return _worker.run(job, wait)


def abandon(jobs: list[Job]) -> None:
    """After an interrupt, once the workers are dead: remove the lock and temporary files
    they left beside ``jobs``' outputs (never those of a live process)."""
    for job in jobs:
        claim = try_claim(job.outputs[0]) if job.outputs[0].parent.is_dir() else None
        if claim is not None:
            remove_stale_parts(job.outputs)
            claim.release()


def run_jobs(jobs: list[Job], settings: WorkerSettings, n_jobs: int,
             on_start: Callable[[], None] | None = None, transcriber=None) -> Iterator[Result]:
    """Transcribe ``jobs`` with ``n_jobs`` worker processes (in this process, with
    ``transcriber`` if one is already loaded, when 1), yielding results as they finish. A job
    that another run is transcribing is put last and then waited for. A worker that dies
    (killed, out of memory) fails only the files it was working on after a retry; the others
    go on in a fresh pool. On an interrupt the workers are killed before it propagates."""
    if not jobs:
        return
    n_jobs = max(1, min(n_jobs, len(jobs)))
    if n_jobs > 1:
        yield from _run_pool(jobs, settings, n_jobs, on_start)
        return
    worker = Worker(settings, transcriber)
    if on_start:
        on_start()
    queue = [(job, False) for job in reversed(jobs)]
    while queue:
        job, wait = queue.pop()
        try:
            r = worker.run(job, wait)
        except BaseException:
            abandon([job])
            raise
        if r.status == "busy":
            queue.insert(0, (job, True))
        else:
            yield r


def _kill_workers(pool) -> None:
    """SIGKILL the pool's worker processes and wait (up to 10 s each) for them to go."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.join(10)


def _stop(pool, in_flight: dict) -> None:
    """Kill the pool's workers, wait for them, and clean up after the jobs they held."""
    _kill_workers(pool)
    pool.shutdown(wait=False, cancel_futures=True)
    abandon([job for job, _ in in_flight.values()])


def _run_pool(jobs: list[Job], settings: WorkerSettings, n_jobs: int,
              on_start: Callable[[], None] | None) -> Iterator[Result]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    queue = [(job, False) for job in reversed(jobs)]
    crashes: dict[Path, int] = {}
    started = False
    while queue:
        pool = ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(settings, os.getpid()))
        in_flight: dict = {}
        try:
            for r in _drain(pool, queue, in_flight, n_jobs, crashes):
                if not started and on_start:
                    started = True
                    on_start()
                if r is not None:
                    yield r
        except BaseException:
            _stop(pool, in_flight)
            raise
        # The pool is drained (every result in) or broken (the jobs in flight are back on the
        # queue): its workers have nothing left to do, so they are killed rather than asked to
        # exit. Asking can hang: after a worker dies the pool ends the others with SIGTERM, which
        # they ignore, and waits for them, and one killed while waiting for work held the call
        # queue's lock, which the others then block on forever (measured: test_batch.py,
        # test_a_worker_killed_while_idle_does_not_hang_the_batch).
        _kill_workers(pool)
        pool.shutdown(wait=True)


def _drain(pool, queue: list, in_flight: dict, n_jobs: int, crashes: dict) -> Iterator[Result | None]:
    """Feed ``pool`` from ``queue`` until it is empty or the pool breaks; yields None once the
    first jobs are submitted, then each result. Jobs of a broken pool go back on the queue
    (once; the second time they fail)."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    broken = False
    while (queue or in_flight) and not broken:
        while queue and len(in_flight) < n_jobs:  # bounded, so a crash blames few files
            job, waiting = queue.pop()
            in_flight[pool.submit(_run_in_worker, job, waiting)] = (job, waiting)
        yield None
        finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for fut in finished:
            try:
                r = fut.result()
            except BrokenProcessPool:
                broken = True
                continue
            job, _ = in_flight.pop(fut)
            if r.status == "busy":
                queue.insert(0, (job, True))
            else:
                yield r
    for fut, (job, waiting) in list(in_flight.items()):  # the pool died: retry each file once
        in_flight.pop(fut)
        crashes[job.audio] = crashes.get(job.audio, 0) + 1
        if crashes[job.audio] >= 2:
            yield Result(job.audio, "failed", reason="the worker process died while transcribing it "
                         "(out of memory, or killed)")
        else:
            queue.append((job, waiting))
