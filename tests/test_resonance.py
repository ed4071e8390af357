"""Sympathetic resonance under the sustain pedal (transcribe.data.resonance), measured on the audio:
the string bank rings at the keys' pitches, only while the pedal is down, at the drawn level; and
the augmentation chain and training crops use it only where the pedal is known and down."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from transcribe.config import compose
from transcribe.data.augment import augment
from transcribe.data.cache import FeatureCache
from transcribe.data.dataset import CropDataset
from transcribe.data.pairs import find_pairs
from transcribe.data.resonance import pedal_down_mask, string_bank_ir, sympathetic
from transcribe.features import FeatureConfig
from transcribe.pedal import pedal_sidecar, write_pedal

from .conftest import SR, random_notes, synth, write_tsv


def augment_config():
    return compose("train").augment


def spectrum_at(y: np.ndarray, freqs: list[float]) -> np.ndarray:
    """|FFT| of ``y`` (zero-padded to 0.25 Hz bins) at ``freqs``."""
    n = 4 * SR * 4
    spec = np.abs(np.fft.rfft(y, n))
    return np.array([spec[int(round(f * n / SR))] for f in freqs])


def test_the_string_bank_rings_at_the_keys_and_not_between_them():
    ir = string_bank_ir(SR)
    assert ir.dtype == np.float32 and len(ir) == 3 * SR
    assert abs(float(np.sum(ir.astype(np.float64) ** 2)) - 1.0) < 1e-3
    a4, between, b_flat4 = spectrum_at(ir, [440.0, 440.0 * 2 ** (0.5 / 12), 440.0 * 2 ** (1 / 12)])
    assert a4 > 10 * between and b_flat4 > 10 * between
    low_a, low_between = spectrum_at(ir, [55.0, 55.0 * 2 ** (0.5 / 12)])  # A1, its quarter tone
    assert low_a > 5 * low_between  # (the 3 s cut of the long bass decay leaks more)


def test_the_ring_lasts_while_the_pedal_is_down_and_stops_when_it_is_lifted():
    t = np.arange(3 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * (t < 1.0)).astype(np.float32)  # A4 for one second
    down = pedal_down_mask(np.array([[0.0, 2.0]]), 0.0, len(t), SR)
    assert down[: 2 * SR].all() and not down[2 * SR:].any()
    out = sympathetic(tone, SR, down, -12.0, string_bank_ir(SR))
    wet = out - tone
    # the level: the ring's RMS over the pedalled samples is the drawn level below the dry one
    ratio_db = 20 * np.log10(np.sqrt(np.mean(wet[down] ** 2)) / np.sqrt(np.mean(tone[down] ** 2)))
    assert abs(ratio_db + 12.0) < 0.1
    ring = wet[int(1.1 * SR): int(1.9 * SR)]  # after the key is released, pedal still down
    assert np.sqrt(np.mean(ring ** 2)) > 0.01
    a4, other = spectrum_at(ring, [440.0, 415.3])  # it rings at the pitch played, not at G#4
    assert a4 > 10 * other
    assert np.all(out[int(2.1 * SR):] == 0)  # the dampers are back: silence
    # with the pedal up throughout, nothing is added
    assert np.array_equal(sympathetic(tone, SR, np.zeros(len(t), bool), -12.0, string_bank_ir(SR)), tone)


def test_pedal_down_mask_of_spans_relative_to_a_segment():
    spans = np.array([[0.5, 1.0], [2.0, 2.5]])
    m = pedal_down_mask(spans, 0.75, SR * 2, SR)  # the segment 0.75-2.75 s
    assert m[: SR // 4].all() and not m[SR // 4 + 1: SR + SR // 4 - 1].any() and m[SR + SR // 4: SR + 3 * SR // 4].all()
    assert pedal_down_mask(None, 0.0, 10, SR) is None


def test_augment_adds_the_ring_only_when_on_and_the_pedal_is_down():
    y = synth(random_notes(4, seconds=3.0, n=10), seed=0)
    down = np.ones(len(y), dtype=bool)
    base = augment_config()
    base.p = 1.0
    on = augment_config()
    on.p = 1.0
    on.resonance.p = 1.0
    plain = augment(y, SR, np.random.default_rng(3), base)
    # off, or no pedal known, or the pedal up throughout: the same draws, the same audio
    assert np.array_equal(augment(y, SR, np.random.default_rng(3), base, pedal_down=down), plain)
    assert np.array_equal(augment(y, SR, np.random.default_rng(3), on), plain)
    assert np.array_equal(augment(y, SR, np.random.default_rng(3), on, pedal_down=~down), plain)
    rung, params = augment(y, SR, np.random.default_rng(3), on, pedal_down=down, return_params=True)
    lo, hi = on.resonance.level_db
    assert lo <= params["resonance"]["level_db"] <= hi
    assert len(rung) == len(y) and not np.allclose(rung, plain)


def test_training_crops_ring_where_their_recording_has_the_pedal_down(tmp_path):
    notes = random_notes(7, seconds=6.0, n=20)
    for name in ("pedalled", "unknown"):
        sf.write(tmp_path / f"{name}.flac", synth(notes, seed=1), SR)
        write_tsv(notes, tmp_path / f"{name}.tsv")
    write_pedal(np.array([[0.0, 6.0]]), pedal_sidecar(tmp_path / "pedalled.tsv"))
    cfg = FeatureConfig()
    data = CropDataset(find_pairs(tmp_path), cfg, FeatureCache(tmp_path / "cache", cfg))

    def chain(resonance: float):
        cfg = augment_config()
        cfg.p = 1.0
        for effect in ("mix", "detune", "eq", "reverb", "room", "noise", "compress", "gain", "codec"):
            cfg[effect].p = 0.0
        cfg.resonance.p, cfg.resonance.level_db = resonance, [-6.0, -6.0]
        return cfg

    aug_off, aug_on = chain(0.0), chain(1.0)
    for i, name in enumerate(r.audio.stem for r in data.recordings):
        off, _ = data.augmented_crop(i, 20, 200, np.random.default_rng(0), aug_off, 16)
        on, _ = data.augmented_crop(i, 20, 200, np.random.default_rng(0), aug_on, 16)
        if "unknown" in name:
            assert np.array_equal(on, off)  # no pedal known: no ring
        else:
            assert np.abs(on - off).max() > 0.1  # the ring changes the features
