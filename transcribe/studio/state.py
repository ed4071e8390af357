"""The studio's jobs: uploads kept under a work folder of the server's own (by random ID), a
bounded queue of transcriptions run by the package's streaming :class:`~transcribe.infer.Transcriber`,
the activations kept per job so decoder settings re-decode without the network, and the outputs
written by the command's own writer (:func:`transcribe.outputs.write_outputs`), so a download is
byte for byte what ``transcribe`` writes with the same settings.

No name a user sends becomes a path: an upload is ``<work>/<random id>/upload<ext>`` (the
extension only when it is one of :data:`~transcribe.audio.AUDIO_EXTENSIONS`, which the decoder
looks at); outputs are named after :func:`safe_stem` of the upload's name (letters, digits and
``-_. `` only) inside that folder, as the command names them after the input.
"""

from __future__ import annotations

import math
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..audio import AUDIO_EXTENSIONS, AudioError, AudioStream
from ..config import complete
from ..decode import DecodeConfig
from ..notes import Notes

OUTPUTS = ("mid", "musicxml", "csv", "json", "png")  # what the page offers to download
SONIFIED = "sonified"  # the transcription played by FluidSynth (the command's --sonify), for listening
KEEP_ALL = 1e9  # seconds of activations kept: all of them (transcribe_stream takes a finite number)
DECODE_KEYS = ("onset_threshold", "frame_threshold", "min_note_ms", "min_pitch", "max_pitch", "pedal", "notes")


@dataclass(frozen=True)
class StudioConfig:
    """``conf/studio/default.yaml`` (the command's options override it)."""

    host: str
    port: int
    jobs: int
    queue: int
    max_upload_mb: float
    max_minutes: float
    ttl_minutes: float

    def __post_init__(self) -> None:
        for name in ("jobs", "queue"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        for name in ("max_upload_mb", "max_minutes", "ttl_minutes"):
            x = getattr(self, name)
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not (0 < x < math.inf):
                raise ValueError(f"{name} must be a positive number, got {x!r}")
        if not 0 <= int(self.port) < 65536:
            raise ValueError(f"port must be 0..65535, got {self.port!r}")

    @classmethod
    def from_dict(cls, d: Mapping) -> "StudioConfig":
        return complete(cls, d, "studio")

    @classmethod
    def default(cls) -> "StudioConfig":
        from ..config import from_group

        return from_group("studio", cls.from_dict)


class Cancelled(Exception):
    """The job was cancelled (or the server is stopping)."""


class UploadRefused(ValueError):
    """An upload that is not transcribed; the message says why (shown in the page)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_stem(name: str) -> str:
    """A file stem made from a user's file name for output names and titles: its last path part
    without the extension, only letters, digits and ``-_. `` (others become ``_``), no leading dot
    or space, at most 80 characters; ``recording`` when nothing is left."""
    base = re.split(r"[\\/]", name.replace("\x00", ""))[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    stem = _SAFE.sub("_", stem).strip(" .")[:80].strip(" .")
    return stem or "recording"


def display_name(name: str) -> str:
    """The upload's name as the page shows it (control characters removed, 200 characters)."""
    return "".join(c for c in name if c.isprintable())[:200] or "recording"


@dataclass
class StudioJob:
    """One recording in the studio: where its files are, and how far it got."""

    id: str
    name: str  # as the user sent it, for display only
    stem: str  # safe_stem(name): output names and titles
    folder: Path
    audio: Path
    created: float = field(default_factory=time.time)
    status: str = "queued"  # queued | running | done | failed | cancelled
    progress: float = 0.0
    error: str = ""
    warning: str = ""
    seconds: float = 0.0  # audio length
    transcribe_seconds: float = 0.0
    notes: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    activations: dict = field(default_factory=dict)  # head -> memory-mapped float32 [frames, 88 or 1]
    messages: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "status": self.status, "progress": round(self.progress, 3),
                "error": self.error, "warning": self.warning, "seconds": round(self.seconds, 3),
                "transcribe_seconds": round(self.transcribe_seconds, 3), "notes": self.notes}


class _ProgressRunner:
    """The shared network runner seen by one job: counts the frames it runs (the progress) and
    stops the job (:class:`Cancelled`) when it is cancelled. onnxruntime's ``run`` may be called
    from several threads at once."""

    def __init__(self, runner, job: StudioJob, expected_frames: float, counter):
        self.runner, self.job, self.expected, self.counter = runner, job, max(expected_frames, 1.0), counter
        self.name, self.heads, self.device = runner.name, runner.heads, runner.device
        self.done = 0

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.job.cancel.is_set():
            raise Cancelled()
        self.counter()
        out = self.runner(x)
        self.done += x.shape[0] * x.shape[1]
        self.job.progress = min(0.99, self.done / self.expected)
        return out


class _CancellableStream(AudioStream):
    """An :class:`AudioStream` that stops (:class:`Cancelled`) between blocks once its job is cancelled."""

    def __init__(self, path: Path, sample_rate: int, job: StudioJob):
        super().__init__(path, sample_rate)
        self.job = job

    def __iter__(self):
        for block in super().__iter__():
            if self.job.cancel.is_set():
                raise Cancelled()
            yield block


class Studio:
    """The server's state: the loaded model, the jobs, the work folder and the queue."""

    def __init__(self, cfg: StudioConfig, checkpoint: str | None = None, transcriber=None):
        from ..jobs import WorkerSettings, load_transcriber
        from ..infer import InferConfig

        self.cfg = cfg
        self.settings = WorkerSettings(checkpoint, {}, InferConfig.default())
        self.transcriber = transcriber if transcriber is not None else load_transcriber(self.settings)
        self.work = Path(tempfile.mkdtemp(prefix="transcribe-studio-"))
        self.jobs: dict[str, StudioJob] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=cfg.jobs, thread_name_prefix="studio-job")
        self.sonify, self.sonify_reason = _sonify_config()
        self.network_runs = 0  # calls of the network, all jobs together (a re-decode makes none)
        self.decodes = 0
        self._decoded: dict = {}  # (job id, settings) -> StreamResult, the latest few

    # ------------------------------------------------------------------ settings

    @property
    def frame_rate(self) -> float:
        return self.transcriber.features.frame_rate

    def default_decode(self) -> dict:
        """The decoder settings the page starts from (the checkpoint's, as the command's defaults)."""
        d = self.transcriber.decode
        return {"onset_threshold": d.onset_threshold, "frame_threshold": d.frame_threshold,
                "min_note_ms": d.min_note_ms, "min_pitch": d.min_pitch, "max_pitch": d.max_pitch,
                "pedal": bool(d.pedal), "notes": d.notes, "has_pedal": "pedal" in self.transcriber.runner.heads}

    def decode_config(self, overrides: Mapping) -> DecodeConfig:
        """The checkpoint's decoder settings with the page's ``overrides`` (keys of
        :data:`DECODE_KEYS`); ValueError for anything else or a bad value."""
        unknown = set(overrides) - set(DECODE_KEYS)
        if unknown:
            raise ValueError(f"unknown decoder setting(s): {', '.join(sorted(unknown))}")
        o = dict(overrides)
        for k in ("onset_threshold", "frame_threshold"):
            if k in o:
                x = float(o[k])
                if not 0.0 < x < 1.0:
                    raise ValueError(f"{k} must be between 0 and 1 (exclusive), got {o[k]!r}")
                o[k] = x
        if "min_note_ms" in o:
            o["min_note_ms"] = float(o["min_note_ms"])
        if "pedal" in o:
            if not isinstance(o["pedal"], bool):
                raise ValueError(f"pedal must be true or false, got {o['pedal']!r}")
        try:
            cfg = replace(self.transcriber.decode, **o)
        except TypeError as err:
            raise ValueError(str(err)) from None
        self._transcriber_for(cfg)  # key-release notes need the pedal: the same check as the command's
        return cfg

    def _transcriber_for(self, cfg: DecodeConfig):
        from ..infer import Transcriber

        t = self.transcriber
        return t if cfg == t.decode else Transcriber(t.runner, t.features, cfg, t.infer)

    # ------------------------------------------------------------------ uploads

    def _count_network(self) -> None:
        with self.lock:
            self.network_runs += 1

    def new_job(self, name: str) -> StudioJob:
        """A job folder for an upload about to arrive, if the queue has room (else UploadRefused 429)."""
        with self.lock:
            waiting = sum(j.status in ("uploading", "queued", "running") for j in self.jobs.values())
            if waiting >= self.cfg.queue + self.cfg.jobs:
                raise UploadRefused(f"the studio is busy: {waiting} recordings are waiting or being transcribed; "
                                    "try again when some are done", 429)
            job_id = secrets.token_hex(8)
            folder = self.work / job_id
            folder.mkdir(mode=0o700)
            suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
            ext = f".{suffix}" if f".{suffix}" in AUDIO_EXTENSIONS else ""
            job = StudioJob(job_id, display_name(name), safe_stem(name), folder, folder / f"upload{ext}",
                            status="uploading")
            self.jobs[job_id] = job
            return job

    def check_upload(self, job: StudioJob) -> None:
        """After the upload arrived: decodable audio (its first block decoded) within the length
        limit; else UploadRefused naming the reason."""
        sr = self.transcriber.sample_rate
        if job.audio.stat().st_size == 0:
            raise UploadRefused(f"{job.name}: the file is empty")
        from ..progress import audio_duration

        blocks = iter(AudioStream(job.audio, sr, count_clipping=False))  # decodable? The clipping is counted later
        try:
            first = next(blocks, None)
            blocks.close()  # the first block (30 s) tells; the file is closed again
        except AudioError as err:
            raise UploadRefused(f"{job.name}: not audio the studio can read: {err.reason}") from None
        except Exception as err:  # noqa: BLE001 - whatever the decoders raise, the server goes on
            raise UploadRefused(f"{job.name}: not audio the studio can read: {type(err).__name__}: {err}") from None
        seconds = audio_duration(job.audio)
        if seconds is None:
            seconds = 0.0 if first is None else len(first) / sr  # decoded whole (ffmpeg formats)
        if seconds > self.cfg.max_minutes * 60:
            raise UploadRefused(f"{job.name}: {seconds / 60:.1f} minutes long; the studio takes at most "
                                f"{self.cfg.max_minutes:g} minutes (conf/studio/default.yaml max_minutes)", 413)
        job.seconds = seconds

    def submit(self, job: StudioJob) -> None:
        """Queue the job's transcription."""
        job.status = "queued"
        self.pool.submit(self._run, job)

    def _run(self, job: StudioJob) -> None:
        """Transcribe one job (in a worker thread). Whatever goes wrong ends this job only."""
        from ..infer import Transcriber
        from ..jobs import Worker

        if job.cancel.is_set():  # cancelled while it waited
            job.status = "cancelled"
            self._drop_files(job, keep_upload=False)
            return
        job.status, t0 = "running", time.perf_counter()
        try:
            t = self.transcriber
            expected = job.seconds * self.frame_rate * (1 + 2 * t.infer.context_seconds / t.infer.chunk_seconds)
            runner = _ProgressRunner(t.runner, job, expected, self._count_network)
            mine = Transcriber(runner, t.features, t.decode, t.infer)
            res = mine.transcribe_stream(_CancellableStream(job.audio, t.sample_rate, job), keep_seconds=KEEP_ALL)
            for k, v in res.activations.items():  # kept on disk, read back memory-mapped
                np.save(job.folder / f"act_{k}.npy", np.ascontiguousarray(v, dtype=np.float32))
            kept = {k: np.load(job.folder / f"act_{k}.npy", mmap_mode="r") for k in res.activations}
            job.activations, job.messages = kept, list(res.decoder_messages)
            job.seconds, job.notes = res.audio_seconds, len(res.notes)
            job.warning = "; ".join(Worker._warnings(res, False))
            job.transcribe_seconds = time.perf_counter() - t0
            job.progress, job.status = 1.0, "done"
        except Cancelled:
            job.status, job.error = "cancelled", "cancelled"
        except AudioError as err:
            job.status, job.error = "failed", f"{job.name}: {err.reason}"
        except MemoryError:
            job.status, job.error = "failed", f"{job.name}: out of memory"
        except Exception as err:  # noqa: BLE001 - one bad recording never takes the server down
            job.status, job.error = "failed", f"{job.name}: {type(err).__name__}: {err}"
        if job.status != "done":
            self._drop_files(job, keep_upload=False)

    # ------------------------------------------------------------------ results

    def result(self, job: StudioJob, cfg: DecodeConfig):
        """The job's notes and pedal under decoder settings ``cfg``, decoded from its kept
        activations (no network): a :class:`~transcribe.infer.StreamResult` as the command's
        writer takes it (activations of the first :data:`~transcribe.jobs.PLOT_SECONDS`)."""
        from ..infer import StreamResult
        from ..jobs import PLOT_SECONDS

        if job.status != "done":
            raise ValueError(f"{job.name}: not transcribed ({job.status})")
        key = (job.id, cfg)
        with self.lock:
            hit = self._decoded.get(key)
        if hit is not None:
            return hit
        t = self._transcriber_for(cfg)
        act = job.activations
        notes = t.notes_from_activations(act)
        pedal = t.pedal_from_activations(act)
        keep = int(PLOT_SECONDS * self.frame_rate)
        res = StreamResult(notes, job.seconds, {k: v[:keep] for k, v in act.items()}, job.messages, pedal)
        with self.lock:
            self.decodes += 1
            self._decoded[key] = res
            while len(self._decoded) > 8:
                self._decoded.pop(next(iter(self._decoded)))
        return res

    def output(self, job: StudioJob, cfg: DecodeConfig, fmt: str, midi_tempo: bool = False) -> Path:
        """The file ``transcribe`` writes in format ``fmt`` for this recording with these decoder
        settings, written by the command's own writer into the job's folder (once per settings)."""
        from ..outputs import write_outputs

        if fmt == SONIFIED:
            if self.sonify is None:
                raise ValueError(f"the transcription cannot be played through FluidSynth here: {self.sonify_reason}")
            fmt = self.sonify.extension  # sonified.wav: the command's --sonify output
        elif fmt not in OUTPUTS:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(OUTPUTS + (SONIFIED,))}")
        res = self.result(job, cfg)
        tag = _settings_tag(cfg, midi_tempo)
        out = job.folder / "out" / tag / f"{job.stem}.{fmt}"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            t = self._transcriber_for(cfg)
            write_outputs(res, [out], f"{job.stem}{job.audio.suffix}", t.features.frame_rate,  # the command's writer
                          t.decode.onset_threshold, self.sonify, midi_tempo)
        return out

    def beats(self, job: StudioJob, cfg: DecodeConfig) -> dict:
        """The beats and bars the score uses (:func:`transcribe.score.estimate_beats` on these
        notes), for the roll's bar grid: beat times, beats per bar, the first downbeat's index."""
        from ..score import estimate_beats

        b = estimate_beats(None, None, self.result(job, cfg).notes)
        return {"times": np.round(b.times, 4).tolist(), "beats_per_bar": b.beats_per_bar, "downbeat": b.downbeat,
                "tempo": round(float(b.tempo), 2), "time_signature": b.time_signature}

    # ------------------------------------------------------------------ housekeeping

    def get(self, job_id: str) -> StudioJob | None:
        with self.lock:
            return self.jobs.get(job_id)

    def _drop_files(self, job: StudioJob, keep_upload: bool) -> None:
        job.activations = {}
        with self.lock:
            for key in [k for k in self._decoded if k[0] == job.id]:
                self._decoded.pop(key)
        if not keep_upload:
            shutil.rmtree(job.folder, ignore_errors=True)

    def remove(self, job: StudioJob) -> None:
        """Cancel and forget a job; its folder is deleted."""
        job.cancel.set()
        with self.lock:
            self.jobs.pop(job.id, None)
        if job.status not in ("running",):
            self._drop_files(job, keep_upload=False)
        else:  # the worker thread deletes it when it stops
            threading.Thread(target=self._remove_when_stopped, args=(job,), daemon=True).start()

    def _remove_when_stopped(self, job: StudioJob) -> None:
        while job.status == "running":
            time.sleep(0.1)
        self._drop_files(job, keep_upload=False)

    def expire(self, now: float | None = None) -> int:
        """Remove the jobs older than ``ttl_minutes``; how many."""
        now = time.time() if now is None else now
        with self.lock:
            old = [j for j in self.jobs.values() if now - j.created > self.cfg.ttl_minutes * 60]
        for job in old:
            self.remove(job)
        return len(old)

    def close(self) -> None:
        """Stop: cancel every job, wait for the worker threads, delete the work folder."""
        for job in list(self.jobs.values()):
            job.cancel.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.jobs.clear()
        self._decoded.clear()
        shutil.rmtree(self.work, ignore_errors=True)

    def stats(self) -> dict:
        with self.lock:
            states = [j.status for j in self.jobs.values()]
        return {"network_runs": self.network_runs, "decodes": self.decodes, "jobs": len(states),
                "running": states.count("running"), "queued": states.count("queued")}


def _sonify_config():
    """(the checked ``conf/sonify/default.yaml``, None) where FluidSynth and a SoundFont are
    installed, else (None, what to install)."""
    from ..sonify import SonifyConfig, SonifyError, checked

    try:
        return checked(SonifyConfig.default()), ""
    except (SonifyError, ValueError) as err:
        return None, str(err)


def _settings_tag(cfg: DecodeConfig, midi_tempo: bool) -> str:
    """A folder name for one set of decoder settings (a digest: the settings never become a path)."""
    import hashlib
    import json

    text = json.dumps([asdict(cfg), midi_tempo], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def notes_json(notes: Notes, pedal: np.ndarray | None) -> dict:
    """Notes (and pedal spans) for the page: parallel lists, times to the millisecond."""
    return {"onset": np.round(notes.onsets, 4).tolist(), "offset": np.round(notes.offsets, 4).tolist(),
            "pitch": notes.pitches.astype(int).tolist(), "velocity": notes.velocities.astype(int).tolist(),
            "pedal": [] if pedal is None else np.round(np.asarray(pedal), 4).tolist()}
