"""Constant-Q transform features: the one implementation used by training and inference.

:func:`cqt_features` computes the same transform as ``librosa.cqt`` (librosa's recursive
multirate algorithm: the top octave of bins at the full rate, then the signal halved with soxr
for each lower octave; Hann-windowed, L1-normalised, sparsified filters; ``scale=True``) with
numpy and soxr only. Importing ``librosa.core.constantq`` pulls in scipy.signal, scipy.stats
and numba and takes 1.5 to 4 s, far longer than the transform of a 5-minute recording, so the
command-line tool does not import librosa at all. :func:`cqt_features_librosa` is the
reference it is tested against (agreement to float32 rounding; see tests/test_speed_paths.py).

The filters are built once per configuration (:func:`cqt_plan`, cached). Each octave's
sparse frequency-domain filter bank times the FFT of a frame equals one real matrix product
of the frame with the bank's time-domain equivalent, so an octave is a single float32 GEMM of
the framed signal (computed block by block, so memory stays bounded for long recordings).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureConfig:
    """CQT parameters (conf/features/*.yaml); stored in every checkpoint."""

    sample_rate: int = 16000
    hop_length: int = 512
    fmin: float = 27.5
    n_keys: int = 88
    bins_per_semitone: int = 3
    log_floor: float = 1e-4

    @classmethod
    def from_dict(cls, d: Mapping) -> "FeatureConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def n_bins(self) -> int:
        return self.n_keys * self.bins_per_semitone

    @property
    def bins_per_octave(self) -> int:
        return 12 * self.bins_per_semitone

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def cqt_fmin(self) -> float:
        """Frequency of the lowest bin: ``fmin`` shifted down so each key's bins are centred on it."""
        offset = (self.bins_per_semitone - 1) / 2
        return self.fmin * 2.0 ** (-offset / self.bins_per_octave)

    def n_frames(self, n_samples: int) -> int:
        """Number of feature frames for a waveform of ``n_samples`` (librosa, centred)."""
        return 1 + n_samples // self.hop_length


# ------------------------------------------------------------------------ the filter bank

_SPARSITY = 0.01  # librosa.cqt's default: drop up to 1% of each filter's energy
_RES_TYPE = "soxr_hq"  # the resampler librosa.cqt uses between octaves
_BLOCK_FRAMES = 8192  # frames per matrix product: bounds memory on long recordings


@dataclass(frozen=True)
class _Octave:
    halve: bool  # halve the signal's rate before this octave (librosa does unless the hop is odd)
    hop: int  # hop in samples at this octave's rate
    n_fft: int  # frame length
    kernel: np.ndarray  # float32 [n_fft, 2 * bins]: real parts, then imaginary parts (scaled)
    first_bin: int  # where this octave's bins go in the output


@dataclass(frozen=True)
class CQTPlan:
    """Per-octave kernels of the CQT for one :class:`FeatureConfig` (top octave first)."""

    octaves: tuple[_Octave, ...]
    n_bins: int
    early_factor: int  # librosa's early downsampling of the input (1: none)


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window('hann', n), as librosa uses it)."""
    if n == 1:
        return np.ones(1)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _frequencies(cfg: FeatureConfig) -> np.ndarray:
    """librosa.interval_frequencies(..., intervals='equal'): equal-tempered bin frequencies."""
    bpo = cfg.bins_per_octave
    ratios = 2.0 ** ((0.0 + np.arange(0, bpo, dtype=float)) / bpo)
    n_octaves = np.ceil(cfg.n_bins / bpo)
    all_ratios = np.multiply.outer(2.0 ** np.arange(n_octaves), ratios).flatten()[: cfg.n_bins]
    return np.sort(all_ratios) * (cfg.cqt_fmin * 2.0 ** (0.0 / bpo))


def _relative_bandwidth(freqs: np.ndarray) -> np.ndarray:
    """librosa.filters._relative_bandwidth."""
    bpo = np.empty_like(freqs)
    logf = np.log2(freqs)
    bpo[0] = 1 / (logf[1] - logf[0])
    bpo[-1] = 1 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    return (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)


def _filter_fft(sr: float, freqs: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, int]:
    """The sparsified frequency-domain filters of one octave (librosa's __vqt_filter_fft with
    filters.wavelet, Hann window, L1 norm, gamma=0, filter_scale=1): complex64 [bins, n_fft//2+1]."""
    lengths = (1.0 / alpha) * sr / (freqs + 0.0 / alpha)
    filters = []
    for ilen, freq in zip(lengths, freqs):
        angles = np.arange(-ilen // 2, ilen // 2, dtype=float) * 2 * np.pi * freq / sr
        sig = np.cos(angles) + 1j * np.sin(angles)
        n_min, n_max = int(np.floor(len(sig))), int(np.ceil(len(sig)))
        window = np.pad(_hann(n_min), (0, n_max - n_min))
        sig = sig * window
        sig = sig / np.sum(np.abs(sig).astype(float))
        filters.append(sig)
    n_fft = int(2.0 ** np.ceil(np.log2(max(lengths))))
    basis = np.zeros((len(filters), n_fft), dtype=np.complex64)
    for row, filt in zip(basis, filters):
        lpad = (n_fft - len(filt)) // 2
        row[lpad : lpad + len(filt)] = filt
    basis *= lengths[:, np.newaxis] / float(n_fft)
    fft_basis = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
    # librosa.util.sparsify_rows: keep the largest coefficients holding 99% of each row's magnitude
    mags = np.abs(fft_basis)
    norms = np.sum(mags, axis=1, keepdims=True)
    mag_sort = np.sort(mags, axis=1)
    cumulative = np.cumsum(mag_sort / norms, axis=1)
    threshold_idx = np.argmin(cumulative < _SPARSITY, axis=1)
    keep = mags >= mag_sort[np.arange(len(mags)), threshold_idx][:, np.newaxis]
    return np.where(keep, fft_basis, 0).astype(np.complex64), n_fft


@functools.lru_cache(maxsize=8)
def cqt_plan(cfg: FeatureConfig) -> CQTPlan:
    """Build (once per config) the per-octave time-domain kernels equivalent to librosa's
    sparse frequency-domain filter banks."""
    sr, bpo, n_bins = float(cfg.sample_rate), cfg.bins_per_octave, cfg.n_bins
    freqs = _frequencies(cfg)
    alpha = _relative_bandwidth(freqs)
    f_cutoff = max(freqs * (1 + 0.5 * 1.50018310546875 * alpha))  # Hann window bandwidth
    if f_cutoff > sr / 2:
        raise ValueError(f"CQT bins reach {f_cutoff:.0f} Hz, above the Nyquist frequency {sr / 2:.0f} Hz")
    n_octaves = int(np.ceil(n_bins / bpo))
    n_filters = min(bpo, n_bins)
    hop = cfg.hop_length
    # librosa's early downsampling: by 2^k when the filters leave headroom below Nyquist and
    # the hop has enough factors of two (never for the piano range at 16 kHz)
    twos = (hop & -hop).bit_length() - 1
    early = min(max(0, int(np.ceil(np.log2(sr / 2 / f_cutoff)) - 1) - 1), max(0, twos - n_octaves + 1))
    early_factor = 2**early
    sr, hop = sr / early_factor, hop // early_factor
    lengths = (1.0 / alpha) * sr / freqs  # for scale=True, at the (early-downsampled) rate

    octaves = []
    my_sr, my_hop, halve = sr, hop, False
    for i in range(n_octaves):
        first, stop = max(n_bins - n_filters * (i + 1), 0), n_bins - n_filters * i
        basis, n_fft = _filter_fft(my_sr, freqs[first:stop], alpha[first:stop])
        basis = basis * np.float32(np.sqrt(sr / my_sr))
        # sum_f B[k, f] rfft(x)[f] = sum_n x[n] K[k, n] with K[k, n] = sum_{f <= N/2} B[k, f] e^{-2 pi i f n / N},
        # i.e. K = the FFT of B zero-padded to N; with scale=True each row is divided by sqrt(filter length)
        kernel = np.fft.fft(basis.astype(np.complex128), n=n_fft, axis=1)
        kernel /= np.sqrt(lengths[first:stop])[:, np.newaxis]
        k = np.concatenate([kernel.real.T, kernel.imag.T], axis=1).astype(np.float32)
        octaves.append(_Octave(halve, my_hop, n_fft, np.ascontiguousarray(k), first))
        halve = my_hop % 2 == 0  # as librosa: an odd hop keeps the rate for the next octave
        if halve:
            my_hop //= 2
            my_sr /= 2.0
    return CQTPlan(tuple(octaves), n_bins, early_factor)


def _downsample(y: np.ndarray, factor: int) -> np.ndarray:
    """librosa.resample(y, orig_sr=factor, target_sr=1, res_type='soxr_hq', scale=True)."""
    import soxr

    n_out = int(np.ceil(len(y) / factor))
    y_hat = soxr.resample(y, factor, 1, quality=_RES_TYPE)
    if len(y_hat) != n_out:  # librosa.util.fix_length
        y_hat = y_hat[:n_out] if len(y_hat) > n_out else np.pad(y_hat, (0, n_out - len(y_hat)))
    y_hat /= np.sqrt(1.0 / factor)  # in place, as librosa does
    return np.asarray(y_hat, dtype=y.dtype)


def _octave_magnitude(y: np.ndarray, octave: _Octave, n_frames: int, out: np.ndarray) -> None:
    """|CQT| of one octave for ``n_frames`` centred frames, written into ``out`` [frames, bins].

    Frame t covers ``y[t * hop - n_fft // 2 : t * hop + n_fft // 2]``, zero outside the signal
    (librosa's ``center=True, pad_mode='constant'``). Blocks of frames are cut from ``y`` one
    at a time, so no padded copy of the whole signal is made."""
    half, hop, n_fft = octave.n_fft // 2, octave.hop, octave.n_fft
    nb = octave.kernel.shape[1] // 2
    for start in range(0, n_frames, _BLOCK_FRAMES):
        stop = min(start + _BLOCK_FRAMES, n_frames)
        lo, hi = start * hop - half, (stop - 1) * hop - half + n_fft  # samples this block reads
        seg = np.zeros(hi - lo, dtype=np.float32)
        a, b = max(lo, 0), min(hi, len(y))
        if b > a:
            seg[a - lo : b - lo] = y[a:b]
        frames = np.lib.stride_tricks.as_strided(seg, shape=(stop - start, n_fft), strides=(hop * 4, 4),
                                                 writeable=False)
        z = np.matmul(frames, octave.kernel)  # [block, 2 * bins]: real, imaginary
        np.square(z, out=z)
        np.sqrt(z[:, :nb] + z[:, nb:], out=out[start:stop, octave.first_bin : octave.first_bin + nb])


@functools.lru_cache(maxsize=1)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _single_threaded_blas():
    """The octave products are small (~70 MFLOP for 30 s of audio): BLAS threads cost more in
    start-up and waiting than they save, and far more on a busy machine (measured in
    scripts/SPEED_NOTES.md), so the CQT runs them on one thread."""
    controller = _blas_controller()
    return controller.limit(limits=1, user_api="blas") if controller else contextlib.nullcontext()


def cqt_magnitude(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """|CQT| of a mono waveform, float32 [frames, n_bins], frames = ``cfg.n_frames(len(y))``;
    equal to ``np.abs(librosa.cqt(y, ..., res_type='soxr_hq')).T`` to float32 rounding."""
    plan = cqt_plan(cfg)
    y = np.ascontiguousarray(y, dtype=np.float32)
    n_frames = cfg.n_frames(len(y))
    out = np.empty((n_frames, plan.n_bins), dtype=np.float32)
    with _single_threaded_blas():
        if plan.early_factor > 1:
            y = _downsample(y, plan.early_factor)
        for octave in plan.octaves:
            if octave.halve:
                y = _downsample(y, 2)
            _octave_magnitude(y, octave, n_frames, out)
    return out


def _log(mag: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    return np.log(np.maximum(mag, cfg.log_floor, out=mag), out=mag).astype(np.float32, copy=False)


def cqt_features(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Log-magnitude CQT of a mono waveform: float32 array [frames, n_bins].

    The bins start on A0 (``fmin``) and cover the 88 keys with ``bins_per_semitone``
    bins each, so bin ``k * bins_per_semitone + bins_per_semitone // 2`` is centred on key k.
    """
    n = len(y)
    if n < cfg.hop_length:  # as the librosa reference: pad very short inputs with silence
        y = np.pad(y, (0, cfg.hop_length - n))
    return _log(cqt_magnitude(y, cfg)[: cfg.n_frames(n)], cfg)


def cqt_features_librosa(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The reference: :func:`cqt_features` computed by ``librosa.cqt`` (slow to import)."""
    import librosa

    n = len(y)
    if n < cfg.hop_length:  # librosa needs a few samples; pad very short inputs with silence
        y = np.pad(y, (0, cfg.hop_length - n))
    with warnings.catch_warnings():  # librosa warns about its own n_fft on short inputs
        warnings.filterwarnings("ignore", message="n_fft=.* is too large")
        c = librosa.cqt(
            y,
            sr=cfg.sample_rate,
            hop_length=cfg.hop_length,
            fmin=cfg.cqt_fmin,
            n_bins=cfg.n_bins,
            bins_per_octave=cfg.bins_per_octave,
            res_type=_RES_TYPE,
        )
    mag = np.abs(c).T[: cfg.n_frames(n)]
    return np.log(np.maximum(mag, cfg.log_floor)).astype(np.float32)
