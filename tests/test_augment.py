"""Audio augmentation (transcribe.data.augment): reproducible, length-preserving, and each
effect does what it claims, measured on the audio."""

from __future__ import annotations

import numpy as np
import pytest

from transcribe.config import compose

from transcribe.data.augment import (add_noise, apply_reverb, augment, codec_roundtrip, detune, equalize,
                                     mix_partner, room_impulse_response)
from transcribe.notes import Notes

from .conftest import SR, eight_tones, random_notes, synth

EFFECTS = ("mix", "detune", "eq", "reverb", "noise", "compress", "gain", "codec")  # room: tests/test_rooms.py


def only(*effects: str):
    """The default config with exactly ``effects`` switched on (probability 1)."""
    cfg = augment_config()
    cfg.p = 1.0
    for name in EFFECTS:
        cfg[name].p = 1.0 if name in effects else 0.0
    cfg.room.p = 0.0  # needs a bank of rooms (tests/test_rooms.py)
    return cfg


def rms_db(y: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(y, dtype=np.float64)))


def sine(freq: float, seconds: float = 2.0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def peak_frequency(y: np.ndarray) -> float:
    """Frequency of the largest spectral peak, refined by parabolic interpolation of the log magnitude."""
    spec = np.log(np.abs(np.fft.rfft(y * np.hanning(len(y)))) + 1e-12)
    k = int(np.argmax(spec))
    a, b, c = spec[k - 1], spec[k], spec[k + 1]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / len(y)


@pytest.fixture(scope="module")
def piano() -> tuple[np.ndarray, np.ndarray]:
    """About six seconds of piano-like music and the same notes through a second 'piano'."""
    notes = random_notes(3, seconds=6.0)
    a, b = synth(notes, seed=1), synth(notes, seed=2, tail=0.8) * 0.5
    n = min(len(a), len(b))
    return a[:n], b[:n]


def test_augment_is_reproducible_and_keeps_length(piano):
    y, partner = piano
    cfg = only(*EFFECTS)
    a, pa = augment(y, SR, np.random.default_rng(5), cfg, partner=partner, return_params=True)
    b = augment(y, SR, np.random.default_rng(5), cfg, partner=partner)
    c = augment(y, SR, np.random.default_rng(6), cfg, partner=partner)
    assert set(pa) == set(EFFECTS)  # every effect ran
    assert a.dtype == np.float32 and len(a) == len(y) and np.array_equal(a, b)
    assert not np.allclose(a, c)
    for seed in range(6):  # the default config, with its probabilities
        out = augment(y, SR, np.random.default_rng(seed), augment_config(), partner=partner)
        assert len(out) == len(y) and np.all(np.isfinite(out))
    assert np.array_equal(y, piano[0])  # the input is not modified


def test_noise_at_the_drawn_snr(piano):
    y, _ = piano
    for seed in range(3):
        out, params = augment(y, SR, np.random.default_rng(seed), only("noise"), return_params=True)
        snr = rms_db(y) - rms_db(out - y)
        assert abs(snr - params["noise"]["snr_db"]) < 1.0
    for color in ("white", "pink", "brown"):
        noisy = add_noise(y, 20.0, np.random.default_rng(0), color)
        assert rms_db(y) - rms_db(noisy - y) == pytest.approx(20.0, abs=1.0)
    pink = add_noise(np.full(SR * 4, 1e-3, np.float32), 0.0, np.random.default_rng(0), "pink") - 1e-3
    spec = np.abs(np.fft.rfft(pink)) ** 2
    f = np.fft.rfftfreq(len(pink), 1 / SR)
    low, high = spec[(f > 100) & (f < 200)].mean(), spec[(f > 3200) & (f < 6400)].mean()
    assert 10 * np.log10(low / high) == pytest.approx(10 * np.log10(32), abs=3)  # power ~ 1/f: 15 dB over 5 octaves


def test_gain_changes_rms_by_the_drawn_amount(piano):
    y, _ = piano
    out, params = augment(y, SR, np.random.default_rng(1), only("gain"), return_params=True)
    assert rms_db(out) - rms_db(y) == pytest.approx(params["gain"]["db"], abs=0.01)
    lo, hi = augment_config().gain.db
    assert lo <= params["gain"]["db"] <= hi


def test_clip_adds_the_distortion_of_an_overdriven_recorder_at_the_same_level():
    """``clip``: the peak driven drive_db above full scale and cut there, then brought back to the
    input's RMS: a sine's peaks are flattened (its third harmonic appears) at the same level, and a
    chain with clip off draws exactly as before (the draw is made only when it is on)."""
    from transcribe.data.augment import overdrive

    y = sine(440.0, amp=0.3)
    out = overdrive(y, 12.0)
    flat = np.max(np.abs(out))
    assert np.mean(np.abs(out) > 0.999 * flat) > 0.5  # most samples sit on the clipped plateau (a sine: about 0.9 at 12 dB)
    spec = lambda a: np.abs(np.fft.rfft(a * np.hanning(len(a))))  # noqa: E731
    third = int(round(3 * 440.0 * len(y) / SR))
    assert spec(out)[third] > 100 * spec(y)[third]  # clipping's odd harmonic
    assert rms_db(out) == pytest.approx(rms_db(y), abs=0.01)
    assert np.allclose(overdrive(y, -6.0), y, atol=1e-6)  # a peak below full scale: nothing clipped
    assert np.array_equal(overdrive(np.zeros(100, np.float32), 12.0), np.zeros(100, np.float32))
    cfg = only("clip")
    cfg.clip.p = 1.0
    got, params = augment(y, SR, np.random.default_rng(3), cfg, return_params=True)
    lo, hi = augment_config().clip.drive_db
    assert lo <= params["clip"]["drive_db"] <= hi and np.allclose(got, overdrive(y, params["clip"]["drive_db"]), atol=1e-6)
    from omegaconf import OmegaConf

    off = only("noise", "codec")  # clip at p 0 (the default): the draws of the effects after it are unchanged
    a = augment(y, SR, np.random.default_rng(5), off)
    without = OmegaConf.create({k: v for k, v in OmegaConf.to_container(off).items() if k != "clip"})
    assert np.array_equal(a, augment(y, SR, np.random.default_rng(5), without))


def test_reverb_lengthens_the_decay():
    rng = np.random.default_rng(0)
    burst = np.zeros(3 * SR, np.float32)
    burst[SR // 2: SR // 2 + 400] = rng.standard_normal(400)  # 25 ms of noise at 0.5 s

    def decay_time(x: np.ndarray) -> float:
        """Time from the end of the burst until the level is 40 dB below the burst's (10 ms windows)."""
        frames = np.square(x[: len(x) // 160 * 160].astype(np.float64)).reshape(-1, 160).mean(1)
        level = 10 * np.log10(frames + 1e-20)
        ref = level.max()
        after = np.arange(len(level)) * 0.01 > 0.525
        return float(np.argmax(after & (level < ref - 40)) * 0.01 - 0.525)

    assert decay_time(burst) < 0.02
    for rt60 in (0.4, 1.2):
        ir = room_impulse_response(np.random.default_rng(1), SR, rt60=rt60, drr_db=0.0, pre_delay=0.01)
        wet = apply_reverb(burst, ir)
        assert len(wet) == len(burst) and rms_db(wet) == pytest.approx(rms_db(burst), abs=0.01)
        # exponential decay of 60 dB in rt60: 40 dB below the start of the tail after ~2/3 rt60
        assert decay_time(wet) == pytest.approx(2 / 3 * rt60, rel=0.3)
        # Schroeder backward integration of the impulse response gives back its rt60 (T20 fit)
        edc = 10 * np.log10(np.cumsum(ir[::-1] ** 2)[::-1] / np.sum(ir**2))
        t = np.arange(len(ir)) / SR
        sel = (edc < -5) & (edc > -25)
        slope = np.polyfit(t[sel], edc[sel], 1)[0]
        assert -60 / slope == pytest.approx(rt60, rel=0.15)
    out, params = augment(burst, SR, np.random.default_rng(2), only("reverb"), return_params=True)
    assert decay_time(out) > decay_time(burst) + 0.05 and params["reverb"]["rt60"] > 0


def test_equalisation_filters_boost_and_cut_where_they_say():
    tone_1k, tone_100 = sine(1000.0), sine(100.0)
    mid = slice(SR // 2, -SR // 2)  # away from the filter's start-up
    boosted = equalize(tone_1k, SR, [{"kind": "peak", "freq": 1000.0, "gain_db": 9.0, "q": 1.0}])
    assert rms_db(boosted[mid]) - rms_db(tone_1k[mid]) == pytest.approx(9.0, abs=0.2)
    far = equalize(tone_100, SR, [{"kind": "peak", "freq": 4000.0, "gain_db": 9.0, "q": 2.0}])
    assert rms_db(far[mid]) - rms_db(tone_100[mid]) == pytest.approx(0.0, abs=0.3)
    shelf = [{"kind": "lowshelf", "freq": 300.0, "gain_db": -8.0, "q": 0.707}]
    assert rms_db(equalize(sine(50.0), SR, shelf)[mid]) - rms_db(sine(50.0)[mid]) == pytest.approx(-8.0, abs=1.0)
    assert rms_db(equalize(sine(5000.0), SR, shelf)[mid]) - rms_db(sine(5000.0)[mid]) == pytest.approx(0.0, abs=0.3)
    high = [{"kind": "highshelf", "freq": 2000.0, "gain_db": 6.0, "q": 0.707}]
    assert rms_db(equalize(sine(6000.0), SR, high)[mid]) - rms_db(sine(6000.0)[mid]) == pytest.approx(6.0, abs=1.0)
    band = equalize(tone_100, SR, [], band=(400.0, 3000.0))
    assert rms_db(band[mid]) - rms_db(tone_100[mid]) < -15
    y, params = augment(tone_1k, SR, np.random.default_rng(3), only("eq"), return_params=True)
    assert len(y) == len(tone_1k) and 1 <= len(params["eq"]["filters"]) <= 3


@pytest.mark.parametrize("codec", ["mp3", "vorbis", "opus"])
def test_codec_round_trip_keeps_length_and_shape(piano, codec):
    y, _ = piano
    for level in (0.3, 0.95):
        out = codec_roundtrip(y, SR, codec, level)
        assert len(out) == len(y)
        assert np.corrcoef(y, out)[0, 1] > 0.95
        assert not np.array_equal(out, y)
    loud = codec_roundtrip(y * 4, SR, codec, 0.5)  # above full scale: the level survives, no clipping
    assert rms_db(loud) == pytest.approx(rms_db(y * 4), abs=1.0)


def test_detune_shifts_frequency_by_the_drawn_cents():
    tone = sine(440.0, seconds=4.0)
    for cents in (-15.0, 7.5):
        out, scale = detune(tone, SR, cents)
        assert len(out) == len(tone)
        measured = 1200 * np.log2(peak_frequency(out[: int(3.5 * SR)]) / 440.0)
        assert measured == pytest.approx(cents, abs=0.5)
        assert scale == pytest.approx(2 ** (-cents / 1200))
    click = np.zeros(4 * SR, np.float32)
    click[3 * SR] = 1.0
    out, scale = detune(click, SR, 12.0)
    assert np.argmax(np.abs(out)) / SR == pytest.approx(3.0 * scale, abs=1.5 / SR)  # events move by time_scale
    y, params = augment(tone, SR, np.random.default_rng(4), only("detune"), return_params=True)
    drawn = params["detune"]["cents"]
    assert 1200 * np.log2(peak_frequency(y[: int(3.5 * SR)]) / 440.0) == pytest.approx(drawn, abs=0.5)


def test_mix_adds_the_partner_at_the_drawn_weight(piano):
    y, partner = piano
    out, params = augment(y, SR, np.random.default_rng(0), only("mix"), partner=partner, return_params=True)
    w = params["mix"]["weight"]
    scale = np.sqrt(np.mean(y.astype(np.float64) ** 2) / np.mean(partner.astype(np.float64) ** 2))
    np.testing.assert_allclose(out, (1 - w) * y + w * scale * partner, atol=1e-6)
    assert augment(y, SR, np.random.default_rng(0), only("mix")).tolist() == y.tolist()  # no partner: no mix
    short = mix_partner(y, partner[: SR], 0.5)  # a shorter partner is padded
    assert len(short) == len(y)


def test_augmented_audio_still_transcribes_to_its_notes():
    """A sanity check on labels: after eq, reverb, noise, gain and codec the shipped model still
    finds every labelled note where the labels put it (pitch, and onset within 50 ms). Measured
    (onnx backend): note F1 0.889 on the clean clip, 0.80 / 0.889 / 0.941 / 0.889 after these four
    draws, recall 1.0 on each."""
    from transcribe.infer import Transcriber
    from transcribe.metrics import transcription_metrics

    notes = eight_tones()
    y = synth(notes)
    model = Transcriber.from_checkpoint(threads=1)
    for seed in (9, 1, 2, 3):
        out = augment(y, SR, np.random.default_rng(seed), only("eq", "reverb", "noise", "gain", "codec"))
        m = transcription_metrics(notes, model.transcribe(out, SR))
        # every note found; the synthetic tones' partials cost some precision (stage 8, seed 9: 0.73)
        assert m["note_recall"] == 1.0 and m["note_f1"] >= 0.7, (seed, m)


def augment_config():
    """conf/augment/default.yaml as training composes it."""
    return compose("train").augment
