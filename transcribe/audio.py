"""Load any supported audio file as mono float32 at the model's sample rate."""

from __future__ import annotations

import math
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


class _NotSndfile(Exception):
    """libsndfile cannot open the file; the message is its reason."""


def _mono(block: np.ndarray) -> np.ndarray:
    """A [samples, channels] block mixed down to mono float32 (a copy)."""
    return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy()


def _stream_sndfile(path: Path, sample_rate: int) -> np.ndarray:
    """Decode with libsndfile block by block, mixing to mono and resampling each block, so a
    long multichannel file never sits in memory at its source rate. Raises :class:`_NotSndfile`
    if libsndfile cannot open the file."""
    import soundfile as sf
    import soxr

    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _NotSndfile(str(err).split(":")[-1].strip()) from None
    with f:
        if f.frames == 0:
            raise AudioError(path, "contains no audio samples")
        resampler = soxr.ResampleStream(f.samplerate, sample_rate, 1, dtype="float32", quality="HQ") \
            if f.samplerate != sample_rate else None
        parts = []
        try:
            for block in f.blocks(blocksize=int(f.samplerate * BLOCK_SECONDS), dtype="float32", always_2d=True):
                y = _mono(block)
                if not np.all(np.isfinite(y)):
                    raise AudioError(path, "contains NaN or infinite samples")
                parts.append(resampler.resample_chunk(y) if resampler else y)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(path, f"corrupt audio data ({err})") from err
        if resampler:
            parts.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    if not parts or sum(len(p) for p in parts) == 0:
        raise AudioError(path, "contains no audio samples")
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _decode_other(path: Path, sample_rate: int, sndfile_reason: str) -> np.ndarray:
    """Formats libsndfile does not read (m4a/aac, some mp3): audioread / ffmpeg via librosa.
    ``sndfile_reason`` is why libsndfile refused the file, for the error message."""
    try:
        import warnings

        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, sr = librosa.load(str(path), sr=None, mono=True)
    except Exception as err:  # noqa: BLE001 - any decoder failure becomes one clear message
        raise AudioError(path, f"not a readable audio file ({sndfile_reason or type(err).__name__})") from err
    if y.size == 0:
        raise AudioError(path, "contains no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(path, "contains NaN or infinite samples")
    if sr != sample_rate:
        import soxr

        y = soxr.resample(y, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` and return a mono float32 waveform resampled to ``sample_rate``.

    Raises :class:`AudioError` for a missing, empty, unreadable or corrupt file. Files that
    libsndfile reads (wav, flac, ogg, mp3, aiff, ...) are decoded in blocks, so memory stays
    near the size of the result however long the file and whatever its rate and channels.
    """
    path = Path(path)
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
    try:
        return _stream_sndfile(path, sample_rate)
    except _NotSndfile as err:
        return _decode_other(path, sample_rate, str(err))


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
