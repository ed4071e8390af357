"""Audio augmentation for training: what real recordings do to a piano that clean renders do not.

:func:`augment` applies, each with its own probability and parameter ranges from
``conf/augment/default.yaml``, in the order a recording chain would:

1. ``mix``: mix in a second render of the same notes through another piano (``partner``);
1b. ``resonance``: the ring of the undamped strings while the sustain pedal is down
   (:mod:`transcribe.data.resonance`; needs the crop's pedal, ``pedal_down``);
2. ``detune``: a global tuning deviation of a few cents, by resampling;
3. ``eq``: random shelf/peaking filters, sometimes band limiting (phone/laptop microphones);
4. ``reverb``: a synthetic room (exponentially decaying noise) at a random direct-to-reverberant ratio;
5. ``room``: a simulated room (:mod:`transcribe.data.rooms`, pyroomacoustics), drawn from a bank
   the caller passes (``rooms``);
6. ``noise``: white/pink/brown noise at a random signal-to-noise ratio;
7. ``compress``: a microphone's / recorder's automatic gain and compression;
8. ``gain``: a random level;
8b. ``clip``: a recording made too hot: driven past full scale and clipped there, brought back to its level
   (:func:`overdrive`; inference levels a loud recording down the same way);
9. ``codec``: a lossy codec round trip (MP3, Ogg Vorbis or Opus through libsndfile).

Every random draw comes from the ``numpy.random.Generator`` the caller passes, so the same seed
gives the same output. The output has the input's length. Labels stay valid except for
``detune``: resampling by ``r = 2**(cents/1200)`` moves an event at ``t`` seconds (from the start
of the crop) to ``t * time_scale`` with ``time_scale = 1/r`` (0.6 % at 10 cents: 58 ms over a
10-second crop), so a caller that detunes must scale its label times by the ``time_scale`` that
``augment(..., return_params=True)`` reports. Training does
(:meth:`transcribe.data.dataset.CropDataset.augmented_crop`, reading :func:`detune_headroom` more
audio so that a crop detuned upward still has sound to its end).
"""

from __future__ import annotations

import io

import numpy as np

NOISE_COLORS = ("white", "pink", "brown")
CODECS = {"mp3": ("MP3", "MPEG_LAYER_III"), "vorbis": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS")}


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0


def _at_rms_of(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``out`` scaled to the RMS level of ``ref`` (float32): an effect's change, not its loudness."""
    return (out * (_rms(ref) / max(_rms(out), 1e-12))).astype(np.float32)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` cut or zero-padded to ``n`` samples."""
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def _uniform(rng: np.random.Generator, bounds) -> float:
    lo, hi = (float(b) for b in bounds)
    return float(rng.uniform(lo, hi))


# ---------------------------------------------------------------------------------------------
# The single effects (deterministic given their parameters, except where an rng is passed)


def apply_gain(y: np.ndarray, gain_db: float) -> np.ndarray:
    """``y`` scaled by ``gain_db`` decibels."""
    return y * np.float32(10.0 ** (gain_db / 20.0))


def colored_noise(rng: np.random.Generator, n: int, color: str = "white") -> np.ndarray:
    """Unit-RMS noise of ``n`` samples: white (flat), pink (power ~ 1/f) or brown (~ 1/f^2)."""
    if color not in NOISE_COLORS:
        raise ValueError(f"noise color {color!r}: choose from {NOISE_COLORS}")
    white = rng.standard_normal(n)
    if color != "white" and n > 1:
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = f[1]
        spec /= f ** (0.5 if color == "pink" else 1.0)
        white = np.fft.irfft(spec, n)
    white -= white.mean()
    return white / max(_rms(white), 1e-12)


def add_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator, color: str = "white") -> np.ndarray:
    """``y`` plus noise whose power is ``snr_db`` below the power of ``y`` (the whole signal)."""
    power = max(float(np.mean(np.square(y, dtype=np.float64))), 1e-10)
    noise = colored_noise(rng, len(y), color) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return (y + noise).astype(np.float32)


def room_impulse_response(rng: np.random.Generator, sample_rate: int, rt60: float, drr_db: float,
                          pre_delay: float = 0.01, damping: float = 0.0) -> np.ndarray:
    """A synthetic room: a direct path (1 at t=0), then after ``pre_delay`` seconds Gaussian noise
    decaying exponentially by 60 dB in ``rt60`` seconds, with energy ``drr_db`` below the direct
    path; ``damping`` (0..1) low-passes the tail (a one-pole filter) as walls absorb highs."""
    from scipy.signal import lfilter

    n_tail = max(int(rt60 * sample_rate), 1)
    t = np.arange(n_tail) / sample_rate
    tail = rng.standard_normal(n_tail) * np.exp(-np.log(1000.0) * t / rt60)
    if damping > 0:
        tail = lfilter([1.0 - damping], [1.0, -damping], tail)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / max(np.sum(tail**2), 1e-12))
    delay = int(round(pre_delay * sample_rate))
    ir = np.zeros(delay + n_tail)
    ir[0] = 1.0
    ir[delay:] += tail
    return ir


def apply_reverb(y: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """``y`` convolved with the impulse response ``ir``, cut to the length of ``y`` and scaled
    back to the RMS of ``y`` (the room changes the sound, ``gain`` changes the level)."""
    from scipy.signal import fftconvolve

    if len(y) == 0:
        return y
    wet = fftconvolve(y.astype(np.float64), ir)[: len(y)]
    return _at_rms_of(wet, y)


def biquad(kind: str, freq: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """Second-order section [1, 6] of an Audio-EQ-Cookbook (R. Bristow-Johnson) filter:
    ``peak`` (gain ``gain_db`` at ``freq``, bandwidth by ``q``), ``lowshelf`` or ``highshelf``
    (gain ``gain_db`` below / above ``freq``, slope by ``q``)."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2 * np.pi * min(freq, 0.49 * sample_rate) / sample_rate
    cw, alpha = np.cos(w0), np.sin(w0) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    elif kind in ("lowshelf", "highshelf"):
        s = 2 * np.sqrt(a) * alpha
        sign = 1 if kind == "lowshelf" else -1
        b = [a * ((a + 1) - sign * (a - 1) * cw + s), sign * 2 * a * ((a - 1) - sign * (a + 1) * cw),
             a * ((a + 1) - sign * (a - 1) * cw - s)]
        den = [(a + 1) + sign * (a - 1) * cw + s, -sign * 2 * ((a - 1) + sign * (a + 1) * cw),
               (a + 1) + sign * (a - 1) * cw - s]
    else:
        raise ValueError(f"filter kind {kind!r}: choose peak, lowshelf or highshelf")
    return np.array([*b, *den], dtype=np.float64) / den[0]


def equalize(y: np.ndarray, sample_rate: int, filters: list[dict], band: tuple[float, float] | None = None) -> np.ndarray:
    """``y`` through the cookbook filters ``filters`` (dicts of :func:`biquad`'s arguments) and,
    with ``band = (highpass Hz, lowpass Hz)``, 4th-order Butterworth band limiting."""
    from scipy.signal import butter, sosfilt

    sos = [biquad(f["kind"], f["freq"], f["gain_db"], f["q"], sample_rate) for f in filters]
    if band is not None:
        nyq = sample_rate / 2
        sos += list(butter(2, band[0], "highpass", fs=sample_rate, output="sos"))
        if band[1] < 0.98 * nyq:
            sos += list(butter(2, band[1], "lowpass", fs=sample_rate, output="sos"))
    if not sos:
        return y
    return sosfilt(np.array(sos), y.astype(np.float64)).astype(np.float32)


def detune(y: np.ndarray, sample_rate: int, cents: float) -> tuple[np.ndarray, float]:
    """Raise the pitch of ``y`` by ``cents`` (lower if negative) by resampling (the way a
    differently tuned piano sounds; no phase-vocoder smearing of onsets). Returns (audio of the
    input's length, ``time_scale``): an event at ``t`` s is now at ``t * time_scale``."""
    import soxr

    ratio = 2.0 ** (cents / 1200.0)
    out = soxr.resample(y.astype(np.float32), sample_rate * ratio, sample_rate, quality="HQ")
    return _fit(out, len(y)).astype(np.float32), 1.0 / ratio


def detune_headroom(cfg, n_samples: int) -> int:
    """Extra samples to read after a segment of ``n_samples`` so that, detuned by up to the
    largest ``|cents|`` of ``cfg.detune`` (shortened by ``time_scale``), it still covers
    ``n_samples``; 0 when ``cfg`` never detunes."""
    c = cfg.get("detune") if cfg is not None else None
    if c is None or float(c.p) <= 0:
        return 0
    most = max(abs(float(x)) for x in c.cents)
    return int(np.ceil(n_samples * (2.0 ** (most / 1200.0) - 1.0))) + 1


def codec_roundtrip(y: np.ndarray, sample_rate: int, codec: str = "mp3", compression_level: float = 0.5) -> np.ndarray:
    """``y`` encoded with a lossy codec (``mp3``, ``vorbis`` or ``opus``, via libsndfile;
    ``compression_level`` 0 = best quality .. 1 = smallest file) and decoded again, same length."""
    import soundfile as sf

    if codec not in CODECS:
        raise ValueError(f"codec {codec!r}: choose from {sorted(CODECS)}")
    fmt, subtype = CODECS[codec]
    peak = float(np.abs(y).max()) if len(y) else 0.0
    scale = 0.99 / peak if peak > 0.99 else 1.0  # encoders clip at full scale; keep the level instead
    buf = io.BytesIO()
    sf.write(buf, y * scale, sample_rate, format=fmt, subtype=subtype, compression_level=compression_level)
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    if out.ndim > 1:
        out = out.mean(axis=1)
    return (_fit(out, len(y)) / scale).astype(np.float32)


def compress(y: np.ndarray, sample_rate: int, threshold_db: float, ratio: float, time_s: float) -> np.ndarray:
    """A feed-forward compressor (automatic gain control of a recorder or phone): the level above
    ``threshold_db`` (relative to the peak RMS of ``y``) is divided by ``ratio``, the level
    followed with a one-pole RMS detector of time constant ``time_s``; the result is scaled back
    to the RMS of ``y``. Hand-written (a dozen numpy lines) rather than another dependency."""
    from scipy.signal import lfilter

    if len(y) == 0:
        return y
    a = 1.0 - np.exp(-1.0 / max(time_s * sample_rate, 1.0))
    power = lfilter([a], [1.0, a - 1.0], np.square(y, dtype=np.float64))
    level = 10.0 * np.log10(np.maximum(power, 1e-12))
    over = level - (level.max() + threshold_db)
    gain_db = -np.maximum(over, 0.0) * (1.0 - 1.0 / ratio)
    out = y * 10.0 ** (gain_db / 20.0)
    return _at_rms_of(out, y)


def overdrive(y: np.ndarray, drive_db: float) -> np.ndarray:
    """``y`` as a recorder set ``drive_db`` too loud writes it: scaled so that its peak lies ``drive_db``
    above full scale and clipped at full scale (the harmonics clipping adds are what the harmonic network
    mistakes for notes: a clipped recording cost stage 8 0.105 note F1, MODEL_CARD), then brought back to
    the input's RMS level, as inference levels a loud recording (``infer.level_db``): the distortion is
    what is added, not loudness."""
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak <= 0.0:
        return y
    out = np.clip(y * (10.0 ** (drive_db / 20.0) / peak), -1.0, 1.0)
    return _at_rms_of(out, y)


def mix_partner(y: np.ndarray, partner: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * y + weight * partner'``, with ``partner'`` the partner (cut or padded to
    the length of ``y``) scaled to the RMS of ``y``."""
    partner = _fit(np.asarray(partner, dtype=np.float32), len(y))
    scale = _rms(y) / max(_rms(partner), 1e-12) if _rms(y) > 0 else 1.0
    return ((1.0 - weight) * y + weight * scale * partner).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The chain


def augment(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, cfg, partner: np.ndarray | None = None,
            return_params: bool = False, rooms: list[np.ndarray] | None = None,
            measured: list[np.ndarray] | None = None, pedal_down: np.ndarray | None = None):
    """``audio`` (mono float32) through the chain of the module docstring, each effect applied
    with probability ``cfg.<effect>.p`` and parameters drawn from ``rng`` within the ranges of
    ``cfg`` (``conf/augment/default.yaml``); ``partner`` is a render of the same notes through
    another piano, aligned with ``audio`` (``mix`` needs it); ``rooms`` a bank of room impulse
    responses (``room`` needs it, see :func:`transcribe.data.rooms.room_bank`) and ``measured``
    recorded ones, of which ``room.measured_p`` of the room draws take one
    (:func:`transcribe.data.rooms.measured_irs`); ``pedal_down`` [len(audio)] where the sustain
    pedal is down (``resonance`` needs it). Returns audio of the same length,
    and with ``return_params`` also a dict of what was applied (``detune.time_scale``: see the
    module docstring)."""
    y = np.asarray(audio, dtype=np.float32).copy()
    n = len(y)
    params: dict = {}
    if rng.random() >= float(cfg.get("p", 1.0)):
        return (y, params) if return_params else y

    c = cfg.mix
    if partner is not None and rng.random() < c.p:
        w = _uniform(rng, c.weight)
        y = mix_partner(y, partner, w)
        params["mix"] = {"weight": w}

    c = cfg.get("resonance")
    # drawn only where it can apply, so a chain with it off (or a crop without pedal) draws as before
    if c is not None and float(c.p) > 0 and pedal_down is not None and pedal_down.any() and rng.random() < c.p:
        from .resonance import string_bank_ir, sympathetic

        level = _uniform(rng, c.level_db)
        ir = string_bank_ir(int(sample_rate), float(c.seconds), int(c.partials))
        y = sympathetic(y, sample_rate, pedal_down[:n], level, ir, float(c.damper_s))
        params["resonance"] = {"level_db": level}

    c = cfg.detune
    if rng.random() < c.p:
        cents = _uniform(rng, c.cents)
        y, scale = detune(y, sample_rate, cents)
        params["detune"] = {"cents": cents, "time_scale": scale}

    c = cfg.eq
    if rng.random() < c.p:
        filters = []
        for _ in range(int(rng.integers(int(c.n_filters[0]), int(c.n_filters[1]) + 1))):
            kind = str(rng.choice(list(c.kinds)))
            freq = float(np.exp(_uniform(rng, np.log(np.array(c[f"{kind}_hz"], dtype=np.float64)))))
            filters.append({"kind": kind, "freq": freq, "gain_db": _uniform(rng, c.gain_db), "q": _uniform(rng, c.q)})
        band = None
        if rng.random() < c.band_p:
            band = (_uniform(rng, c.highpass_hz), _uniform(rng, c.lowpass_hz))
        y = equalize(y, sample_rate, filters, band)
        params["eq"] = {"filters": filters, "band": band}

    c = cfg.reverb
    if rng.random() < c.p:
        r = {"rt60": _uniform(rng, c.rt60_s), "drr_db": _uniform(rng, c.drr_db),
             "pre_delay": _uniform(rng, c.pre_delay_s), "damping": _uniform(rng, c.damping)}
        y = apply_reverb(y, room_impulse_response(rng, sample_rate, **r))
        params["reverb"] = r

    c = cfg.get("room")
    if c is not None and (rooms or measured) and rng.random() < c.p:
        # The draw between the two pools is made only where there are measured responses, so a
        # chain without them draws exactly as before.
        real = bool(measured) and (not rooms or rng.random() < float(c.get("measured_p", 0.0)))
        pool = measured if real else rooms
        i = int(rng.integers(len(pool)))
        y = apply_reverb(y, pool[i])
        params["room"] = {"index": i, "measured": real}

    c = cfg.noise
    if rng.random() < c.p:
        snr, color = _uniform(rng, c.snr_db), str(rng.choice(list(c.colors)))
        y = add_noise(y, snr, rng, color)
        params["noise"] = {"snr_db": snr, "color": color}

    c = cfg.get("compress")
    if c is not None and rng.random() < c.p:
        k = {"threshold_db": _uniform(rng, c.threshold_db), "ratio": _uniform(rng, c.ratio),
             "time_s": _uniform(rng, c.time_s)}
        y = compress(y, sample_rate, **k)
        params["compress"] = k

    c = cfg.gain
    if rng.random() < c.p:
        g = _uniform(rng, c.db)
        y = apply_gain(y, g)
        params["gain"] = {"db": g}

    c = cfg.get("clip")
    if c is not None and float(c.p) > 0 and rng.random() < c.p:  # drawn only when on: chains without it draw as before
        d = _uniform(rng, c.drive_db)
        y = overdrive(y, d)
        params["clip"] = {"drive_db": d}

    c = cfg.codec
    if rng.random() < c.p:
        codec, level = str(rng.choice(list(c.codecs))), _uniform(rng, c.compression_level)
        y = codec_roundtrip(y, sample_rate, codec, level)
        params["codec"] = {"codec": codec, "compression_level": level}

    y = _fit(y, n).astype(np.float32)
    return (y, params) if return_params else y
