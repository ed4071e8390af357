"""Sympathetic resonance of a piano under the sustain pedal, for augmentation.

With the pedal down every damper is lifted, so every string rings along with what is played:
a note excites the strings whose partials it shares (its octaves below, its fifth below...),
and they sound on after it. The renders apply the pedal to the note offsets only, so that ring
is missing from them (issue 26); this module adds it to a crop's audio while the pedal is down.

The strings are one linear bank: 88 keys, each a sum of decaying partials (amplitude 1/n,
mild inharmonicity, a decay from ``t60_bass`` at A0 to ``t60_treble`` at C8), summed into one
impulse response; a crop's audio while the pedal is down is convolved with it, the result is
silenced where the pedal is up (the dampers fall back within ``damper_s``) and added at
``level_db`` below the dry signal's level over the pedalled samples. No library models this,
so it is written here; it is a few lines of numpy and one FFT convolution per crop.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

N_KEYS = 88
LOWEST_MIDI = 21


@lru_cache(maxsize=8)
def string_bank_ir(sample_rate: int, seconds: float = 3.0, partials: int = 8, inharmonicity: float = 1e-4,
                   t60_bass: float = 8.0, t60_treble: float = 0.5) -> np.ndarray:
    """The impulse response (float32, unit energy, ``seconds`` long, the last 10 % faded out) of
    all 88 undamped strings: per key, ``partials`` sinusoids at n·f·sqrt(1 + B·n²) below
    0.45·``sample_rate``, amplitude 1/n, all decaying by 60 dB in a time going log-linearly
    from ``t60_bass`` (A0) to ``t60_treble`` (C8)."""
    t = np.arange(int(round(seconds * sample_rate)), dtype=np.float64) / sample_rate
    ir = np.zeros_like(t)
    for k in range(N_KEYS):
        f0 = 440.0 * 2.0 ** ((LOWEST_MIDI + k - 69) / 12.0)
        t60 = t60_bass * (t60_treble / t60_bass) ** (k / (N_KEYS - 1))
        env = np.exp(-6.907755 * t / t60)  # ln(1000): -60 dB at t60
        n = np.arange(1, partials + 1, dtype=np.float64)
        f = n * f0 * np.sqrt(1.0 + inharmonicity * n ** 2)
        keep = f < 0.45 * sample_rate
        ir += env * (np.sin(2 * np.pi * np.outer(f[keep], t)) / n[keep, None]).sum(axis=0)
    fade = max(1, len(t) // 10)
    ir[-fade:] *= np.linspace(1.0, 0.0, fade)
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-12
    return ir.astype(np.float32)


def pedal_down_mask(spans: np.ndarray | None, start_s: float, n: int, sample_rate: int) -> np.ndarray | None:
    """[n] bool: where the sustain pedal is down in the ``n`` samples from ``start_s`` s, from
    pedal spans [k, 2] (down, up s); None when the pedal is unknown."""
    if spans is None:
        return None
    down = np.zeros(n, dtype=bool)
    for a, b in np.asarray(spans, dtype=np.float64).reshape(-1, 2):
        lo, hi = int(round((a - start_s) * sample_rate)), int(round((b - start_s) * sample_rate))
        if hi > 0 and lo < n:
            down[max(lo, 0): min(hi, n)] = True
    return down


def sympathetic(y: np.ndarray, sample_rate: int, down: np.ndarray, level_db: float, ir: np.ndarray,
                damper_s: float = 0.08) -> np.ndarray:
    """``y`` with the ring of the undamped strings added where ``down`` (per sample) is True: the
    pedalled audio convolved with ``ir`` (:func:`string_bank_ir`), faded out over ``damper_s``
    after each release, at ``level_db`` relative to the dry RMS over the pedalled samples.
    Audio without a pedalled sample is returned unchanged."""
    from scipy.signal import fftconvolve

    y = np.asarray(y, dtype=np.float32)
    down = np.asarray(down, dtype=bool)
    if not down.any():
        return y
    wet = fftconvolve(y * down, ir, mode="full")[: len(y)]
    # the dampers: a gate that follows the pedal, falling linearly over damper_s after each release
    fall = max(1, int(round(damper_s * sample_rate)))
    # (samples since the pedal was last down: 0 while it is down, so the gate is 1 there)
    since_up = np.arange(len(y)) - np.maximum.accumulate(np.where(down, np.arange(len(y)), -10 * fall))
    wet *= np.clip(1.0 - since_up / fall, 0.0, 1.0)
    dry_rms = float(np.sqrt(np.mean(y[down].astype(np.float64) ** 2)))
    wet_rms = float(np.sqrt(np.mean(wet[down] ** 2)))
    if dry_rms <= 0 or wet_rms <= 0:
        return y
    return (y + wet * (dry_rms / wet_rms * 10.0 ** (level_db / 20.0))).astype(np.float32)
