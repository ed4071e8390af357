"""Load any supported audio file as mono float32 at the model's sample rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".opus")


class AudioError(Exception):
    """An audio file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode to float32 [samples, channels] with libsndfile, falling back to audioread."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data, sr
    except (sf.LibsndfileError, RuntimeError) as err:
        sndfile_error = err
    try:  # formats libsndfile does not read (m4a/aac, some mp3): audioread / ffmpeg
        import warnings

        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, sr = librosa.load(str(path), sr=None, mono=False)
    except Exception as err:  # noqa: BLE001 - any decoder failure becomes one clear message
        reason = str(sndfile_error).split(":")[-1].strip() or type(err).__name__
        raise AudioError(path, f"not a readable audio file ({reason})") from err
    y = np.atleast_2d(y).T.astype(np.float32)
    return y, int(sr)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read ``path`` and return a mono float32 waveform resampled to ``sample_rate``.

    Raises :class:`AudioError` for a missing, empty, unreadable or corrupt file.
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
    data, sr = _decode(path)
    if data.size == 0 or data.shape[0] == 0:
        raise AudioError(path, "contains no audio samples")
    y = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(y)):
        raise AudioError(path, "contains NaN or infinite samples")
    if sr != sample_rate:
        import soxr

        y = soxr.resample(y, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)


def find_audio_files(folder: str | Path, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[Path]:
    """All audio files under ``folder`` (recursively), sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
