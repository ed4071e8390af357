"""Load any supported audio file as mono float32 at the model's sample rate."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".opus")


class AudioError(Exception):
    """An audio file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


_RESAMPLE_MARGIN = 1024  # target samples decoded either side of a resampled segment
BLOCK_SECONDS = 30.0  # decode, mix and resample long files a block at a time


# Clipping: a recorder set too loud writes plateaus, runs of equal samples at its full scale (or, once
# the file is normalised, at its peak). Measured (model card, "Clipped recordings"): 30 files each of
# MAPS, the sampled and the Headroom renders and the 19 real SptkBGCl recordings hold none; the SptkBGCl
# recordings driven 6 / 12 dB past full scale hold 0.01-0.6 % / 0.8-12 % of their samples on plateaus, and
# the shipped model's note F1 fell by at most 0.02 (median 0.001) on the 20 files under 1 %, by 0.026-0.119
# on 16 of the 18 over 1 % at +12 dB: where a warning starts to matter.
CLIP_FLOOR = 0.25  # a plateau is at least this far from zero (a quiet passage's equal samples are not one)
CLIP_RUN = 3  # equal samples in a row (a low note's 16-bit peak can repeat one sample, not two)
CLIPPED_SHARE = 0.01  # a recording with at least this share of its samples on plateaus is called clipped


def flat_samples(block: np.ndarray) -> int:
    """How many samples of a [samples] or [samples, channels] block sit on plateaus: in runs of at
    least :data:`CLIP_RUN` equal values at least :data:`CLIP_FLOOR` from zero, each channel apart."""
    x = np.asarray(block)
    x = x[:, None] if x.ndim == 1 else x
    if len(x) < CLIP_RUN:
        return 0
    same = x[1:] == x[:-1]  # [n-1, c]: sample i+1 equals sample i
    same &= np.abs(x[1:]) >= CLIP_FLOOR
    if not same.any():  # a clean block: done in a few passes
        return 0
    # a sample is on a plateau when a window of CLIP_RUN equal samples holds it
    win = np.ones((len(x) - CLIP_RUN + 1, x.shape[1]), dtype=bool)
    for k in range(CLIP_RUN - 1):
        win &= same[k:len(same) - (CLIP_RUN - 2) + k]
    on = np.zeros(x.shape, dtype=bool)
    for k in range(CLIP_RUN):
        on[k:k + len(win)] |= win
    return int(on.sum())


class _Plateaus:
    """The count behind :attr:`AudioStream.clipped_share`: samples on plateaus
    (:func:`flat_samples`) and samples read, every channel's, added block by block as the source
    is decoded."""

    def __init__(self) -> None:
        self.flat = self.total = 0

    def add(self, block: np.ndarray) -> None:
        self.flat += flat_samples(block)
        self.total += block.size

    @property
    def share(self) -> float:
        return self.flat / self.total if self.total else 0.0


class _NotSndfile(Exception):
    """libsndfile cannot open the file; the message is its reason."""


def _mono(block: np.ndarray) -> np.ndarray:
    """A [samples, channels] block mixed down to mono float32 (a copy)."""
    return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy()


@contextlib.contextmanager
def decoder_messages(sink: list[str]) -> Iterator[None]:
    """Collect what C decoders (libsndfile, mpg123) print on the process's stderr meanwhile
    into ``sink`` instead of letting it reach the terminal without a file name."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to capture
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read(1 << 16).decode(errors="replace")
    sink.extend(line.strip() for line in text.splitlines() if line.strip())


def summarise_messages(lines: list[str]) -> str:
    """Decoder messages as one warning: the distinct lines, with their counts."""
    counts = dict.fromkeys(lines, 0)
    for line in lines:
        counts[line] += 1
    return "decoder said: " + "; ".join(f"{line}" + (f" ({n}x)" if n > 1 else "") for line, n in counts.items())


def _mp3_stated_bytes(path: Path) -> tuple[int, int] | None:
    """``(stream start, stream bytes)`` of an MP3 as its Xing/Info or VBRI header announces them
    (mutagen: the announced duration at its bitrate; without such a header mutagen estimates the
    duration from the file's size, so nothing is missing), or None where mutagen cannot read it."""
    from mutagen import MutagenError
    from mutagen.mp3 import MP3

    try:
        info = MP3(path).info
    except (MutagenError, OSError):
        return None
    return int(info.frame_offset), int(info.length * info.bitrate / 8)


def _check_mp3_length(path: Path, seconds: float) -> None:
    """Raise :class:`AudioError` for an MP3 cut short: libsndfile pads such a file to the length
    its header announces, with silence or repeated garbage, so it would pass as complete."""
    stated = _mp3_stated_bytes(path)
    if not stated or stated[1] <= 0:
        return
    have = path.stat().st_size - stated[0]
    if have < TRUNCATED_FRACTION * stated[1]:
        raise AudioError(path, f"truncated: the file holds about {seconds * have / stated[1]:.1f} s of the "
                         f"{seconds:.1f} s its header announces ({have} of {stated[1]} bytes)")


TRUNCATED_FRACTION = 0.9  # less than this share of the announced audio: truncated


def _open_sndfile(path: Path, messages: list[str]):
    import soundfile as sf

    try:
        with decoder_messages(messages):
            return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _NotSndfile(str(err).split(":")[-1].strip()) from None


def _stream_sndfile(path: Path, sample_rate: int, messages: list[str],
                    tally: _Plateaus | None) -> Iterator[np.ndarray]:
    """Decode with libsndfile block by block, mixing to mono and resampling each block, so a
    long multichannel file never sits in memory at its source rate. Raises :class:`_NotSndfile`
    (before yielding anything) if libsndfile cannot open the file. ``tally`` (None: not counted)
    is added to as the source's samples are read."""
    import soundfile as sf
    import soxr

    f = _open_sndfile(path, messages)
    with f:
        if f.frames == 0:
            raise AudioError(path, "contains no audio samples")
        if f.format == "MPEG" or path.suffix.lower() == ".mp3":
            _check_mp3_length(path, f.frames / f.samplerate)
        resampler = soxr.ResampleStream(f.samplerate, sample_rate, 1, dtype="float32", quality="HQ") \
            if f.samplerate != sample_rate else None
        block, decoded = int(f.samplerate * BLOCK_SECONDS), 0
        while True:
            try:
                with decoder_messages(messages):
                    y = f.read(block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise AudioError(path, f"corrupt audio data ({err})") from err
            if len(y) == 0:
                break
            decoded += len(y)
            if tally is not None:  # a plateau straddling two 30 s blocks is missed: a few samples
                tally.add(y)
            y = _mono(y)
            if not np.all(np.isfinite(y)):
                raise AudioError(path, "contains NaN or infinite samples")
            yield resampler.resample_chunk(y) if resampler else y
        if decoded < TRUNCATED_FRACTION * f.frames:
            raise AudioError(path, f"truncated: decoded {decoded / f.samplerate:.1f} s of the "
                             f"{f.frames / f.samplerate:.1f} s its header announces")
        if resampler:
            yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


NEEDS_FFMPEG = (".m4a", ".aac", ".mp4", ".opus", ".wma")


def _decode_other(path: Path, sample_rate: int, sndfile_reason: str, tally: _Plateaus | None) -> np.ndarray:
    """Formats libsndfile does not read (m4a/aac, opus in mp4, wma, some mp3): ffmpeg decodes
    the whole file to 32-bit float AU on a pipe (its own rate and channels), which soundfile
    reads; then mixed to mono and resampled with soxr as every other format is. ``sndfile_reason``
    is why libsndfile refused the file, for the error message; ``tally`` as for
    :func:`_stream_sndfile`. (Calling ffmpeg directly, rather
    than through librosa/audioread, keeps librosa's 420 MB out of the base install.)"""
    import io
    import shutil
    import subprocess

    import soundfile as sf

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        if path.suffix.lower() in NEEDS_FFMPEG:
            raise AudioError(path, f"cannot decode {path.suffix} files without ffmpeg: install it "
                             "(e.g. apt-get install ffmpeg, brew install ffmpeg or conda install ffmpeg)")
        raise AudioError(path, f"not a readable audio file ({sndfile_reason}; "
                         "with ffmpeg installed, more formats could be tried)")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-map", "0:a:0", "-f", "au",
           "-c:a", "pcm_f32be", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except OSError as err:
        raise AudioError(path, f"cannot run ffmpeg ({err.strerror or err})") from err
    if proc.returncode != 0 or len(proc.stdout) <= 24:  # 24 bytes: an AU header and no samples
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = said[-1].replace(str(path), "").strip(": ") if said else sndfile_reason
        if proc.returncode == 0:
            raise AudioError(path, "contains no audio samples")
        raise AudioError(path, f"not a readable audio file ({reason or sndfile_reason})")
    try:
        y, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(path, f"not a readable audio file (ffmpeg's output: {err})") from err
    if y.size == 0:
        raise AudioError(path, "contains no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(path, "contains NaN or infinite samples")
    if tally is not None:
        tally.add(y)
    return to_mono_rate(y, sr, sample_rate)


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "no such file")
    if path.is_dir():
        raise AudioError(path, "is a directory")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise AudioError(path, f"cannot open ({err.strerror})") from err


class AudioStream:
    """A file as consecutive blocks of mono float32 samples at ``sample_rate`` (about
    ``BLOCK_SECONDS`` each), decoded, mixed down and resampled one block at a time.

    Iterate once. Raises :class:`AudioError` (naming the file) for a missing, empty,
    unreadable, corrupt or truncated file. What the C decoders print while reading it is
    collected in :attr:`messages` (not printed), so it can be reported with the file's name;
    how much of it is clipped, in :attr:`clipped_share` (unless ``count_clipping`` is False: where
    nobody reads it, as in the level pass and :func:`load_audio`, the count is skipped: 0.04 s a pass
    over 5 minutes of 44.1 kHz stereo, where the whole transcription takes 5.5 s).
    """

    def __init__(self, path: str | Path, sample_rate: int, count_clipping: bool = True):
        self.path, self.sample_rate = Path(path), sample_rate
        self.messages: list[str] = []
        self.samples = 0  # yielded so far
        self._tally = _Plateaus() if count_clipping else None

    @property
    def clipped_share(self) -> float:
        """The share of the samples read so far (at the source's rate, every channel) that sit on
        plateaus (:func:`flat_samples`): 0 for a clean recording; a recording is called clipped
        from :data:`CLIPPED_SHARE`."""
        return self._tally.share if self._tally is not None else 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        _check_readable(self.path)
        try:
            blocks = _stream_sndfile(self.path, self.sample_rate, self.messages, self._tally)
            first = next(blocks, None)
        except _NotSndfile as err:
            blocks, first = iter(()), _decode_other(self.path, self.sample_rate, str(err), self._tally)
        if first is not None:
            self.samples += len(first)
            yield first
        for y in blocks:
            self.samples += len(y)
            yield y
        if self.samples == 0:
            raise AudioError(self.path, "contains no audio samples")


def to_mono_rate(audio: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """A waveform held in memory as the model wants it: ``audio`` [samples] or [samples, channels]
    (soundfile's layout) at ``sample_rate`` → mono float32 at ``target_rate`` (soxr, high quality)."""
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim == 2:
        y = _mono(y)
    elif y.ndim != 1:
        raise ValueError(f"audio must be [samples] or [samples, channels], not shape {y.shape}")
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be positive, not {sample_rate}")
    if int(sample_rate) != int(target_rate):
        import soxr

        y = soxr.resample(y, int(sample_rate), int(target_rate), quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` and return a mono float32 waveform resampled to ``sample_rate``.

    Raises :class:`AudioError` for a missing, empty, unreadable, corrupt or truncated file.
    Files that libsndfile reads (wav, flac, ogg, mp3, aiff, ...) are decoded in blocks, so memory
    stays near the size of the result however long the file and whatever its rate and channels.
    """
    parts = list(AudioStream(path, sample_rate, count_clipping=False))  # the stream, and its count, are not kept
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def read_segment(path: str | Path, start: int, n_samples: int, sample_rate: int) -> np.ndarray:
    """Samples ``start : start + n_samples`` (at ``sample_rate``) of ``path``, mono float32, read
    without decoding the rest of the file; positions before the start or past the end of the
    audio are zeros. For training crops: a file at another rate is read at its own rate (with a
    margin for the resampler) and resampled."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        src, frames = f.samplerate, f.frames
        if src == sample_rate:
            lo, hi, skip = start, start + n_samples, 0
        else:  # start on a sample both rates share, with a margin for the resampling filter
            g = math.gcd(src, sample_rate)
            step_src, step_dst = src // g, sample_rate // g
            units = (start - _RESAMPLE_MARGIN) // step_dst
            lo, skip = units * step_src, start - units * step_dst
            hi = lo + int(np.ceil((skip + n_samples + _RESAMPLE_MARGIN) * src / sample_rate))
        a, b = max(lo, 0), min(hi, frames)
        y = np.zeros(hi - lo, dtype=np.float32)
        if b > a:
            f.seek(a)
            block = f.read(b - a, dtype="float32", always_2d=True)
            y[a - lo: a - lo + len(block)] = _mono(block)
    if src != sample_rate:
        import soxr

        y = soxr.resample(y, src, sample_rate, quality="HQ")[skip: skip + n_samples]
        end = int(np.ceil(frames * sample_rate / src)) - start  # the file's end, in this segment
        y[: max(-start, 0)] = 0  # no resampler ringing outside the file
        y[max(end, 0):] = 0
    out = np.zeros(n_samples, dtype=np.float32)
    out[: len(y)] = y[:n_samples]
    return out


def find_audio_files(folder: str | Path, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[Path]:
    """All audio files under ``folder`` (recursively), sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def scan_folder(folder: str | Path, extensions: tuple[str, ...] = AUDIO_EXTENSIONS
                ) -> tuple[list[Path], list[Path], list[Path]]:
    """Audio files under ``folder`` (recursively, as :func:`find_audio_files`), and what a
    search passes over: dangling links with an audio name, and links to folders (not
    followed, so a link cannot make a file be found twice or a search loop). Each sorted."""
    files, dangling, folder_links = [], [], []
    for root, dirs, names in os.walk(folder):
        base = Path(root)
        folder_links += [base / d for d in dirs if (base / d).is_symlink()]
        for name in names:
            p = base / name
            if p.suffix.lower() not in extensions:
                continue
            if p.is_file():
                files.append(p)
            elif p.is_symlink() and not p.exists():
                dangling.append(p)
    return sorted(files), sorted(dangling), sorted(folder_links)
