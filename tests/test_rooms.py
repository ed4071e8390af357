"""Simulated rooms (pyroomacoustics) and the recorder's compression, as augmentation uses them."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from transcribe.config import compose
from transcribe.data.augment import augment, compress
from transcribe.data.rooms import measured_irs, room_bank, simulate_room

SR = 16000


def room_cfg(tmp_path, **over):
    cfg = compose("train", [f"augment.room.cache_dir={tmp_path}", "augment.room.n_rays=1000"]).augment.room
    for k, v in over.items():
        OmegaConf.update(cfg, k, v)
    return cfg


def decay_time(ir: np.ndarray) -> float:
    """T20 from the Schroeder energy decay curve, in seconds (x3 for a 60 dB decay)."""
    e = np.cumsum(ir[::-1].astype(np.float64) ** 2)[::-1]
    edc = 10 * np.log10(e / e[0] + 1e-20)
    return 3 * (np.argmax(edc < -25) - np.argmax(edc < -5)) / SR


def direct_to_reverberant_db(ir: np.ndarray) -> float:
    k = int(0.0025 * SR)  # the direct sound: the first 2.5 ms
    return 10 * np.log10(np.sum(ir[:k] ** 2) / max(np.sum(ir[k:] ** 2), 1e-20))


def test_longer_reverberation_and_distance_are_heard(tmp_path):
    rng = np.random.default_rng(0)
    dry, _ = simulate_room(rng, SR, room_cfg(tmp_path, rt60_s=[0.25, 0.25], length_m=[10, 10], width_m=[8, 8],
                                             height_m=[4, 4], distance_m=[1.0, 1.0]))
    wet, params = simulate_room(rng, SR, room_cfg(tmp_path, rt60_s=[1.6, 1.6], length_m=[10, 10], width_m=[8, 8],
                                                  height_m=[4, 4], distance_m=[1.0, 1.0]))
    assert params["rt60_s"] == pytest.approx(1.6) and params["distance_m"] == pytest.approx(1.0, abs=0.05)
    assert decay_time(wet) > 2.5 * decay_time(dry)
    assert np.argmax(np.abs(dry)) < 10 and np.abs(dry).max() == pytest.approx(1.0)  # starts at the direct sound
    near, _ = simulate_room(rng, SR, room_cfg(tmp_path, rt60_s=[1.0, 1.0], length_m=[12, 12], width_m=[9, 9],
                                              height_m=[4, 4], distance_m=[0.3, 0.3]))
    far, _ = simulate_room(rng, SR, room_cfg(tmp_path, rt60_s=[1.0, 1.0], length_m=[12, 12], width_m=[9, 9],
                                             height_m=[4, 4], distance_m=[6.0, 6.0]))
    assert direct_to_reverberant_db(near) > direct_to_reverberant_db(far) + 10


def test_a_reverberation_the_room_cannot_reach_is_reported_as_simulated(tmp_path):
    """A 25 x 18 x 10 m hall cannot die away in 0.2 s (Sabine needs absorption 2): it gets the
    deadest walls (0.99), its parameters report the RT60 those walls give (about 0.42 s) beside
    the one asked for, and the simulated decay is that short, not a live hall's."""
    rng = np.random.default_rng(0)
    ir, params = simulate_room(rng, SR, room_cfg(tmp_path, rt60_s=[0.2, 0.2], length_m=[25, 25], width_m=[18, 18],
                                                 height_m=[10, 10], distance_m=[2.0, 2.0]))
    assert params["rt60_wanted_s"] == pytest.approx(0.2) and params["absorption"] == pytest.approx(0.99)
    assert params["rt60_s"] == pytest.approx(0.416, abs=0.01)
    energy = ir.astype(np.float64) ** 2
    assert len(ir) < 0.5 * SR and energy[int(0.3 * SR):].sum() < 1e-4 * energy.sum()  # no live hall's tail


def test_room_bank_is_seeded_and_cached(tmp_path):
    cfg = room_cfg(tmp_path, bank_size=3)
    first = room_bank(cfg, SR)
    assert len(first) == 3 and len(list(tmp_path.glob("rooms-*.npz"))) == 1
    again = room_bank(cfg, SR)  # from the cache
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other = room_bank(room_cfg(tmp_path, bank_size=3, seed=1), SR)
    assert len(list(tmp_path.glob("rooms-*.npz"))) == 2 and not np.array_equal(other[0], first[0])


def test_augment_draws_a_room_from_the_bank(tmp_path):
    cfg = compose("train").augment
    for effect in ("mix", "detune", "eq", "reverb", "noise", "compress", "gain", "codec"):
        cfg[effect].p = 0.0
    cfg.room.p = 1.0
    y = np.zeros(SR, dtype=np.float32)
    y[1000] = 1.0
    bank = room_bank(room_cfg(tmp_path, bank_size=2), SR)
    out, params = augment(y, SR, np.random.default_rng(0), cfg, rooms=bank, return_params=True)
    i = params["room"]["index"]
    assert len(out) == len(y) and np.count_nonzero(np.abs(out) > 1e-4) > 1000  # a tail after the click
    assert np.corrcoef(out[1000:1000 + len(bank[i])], bank[i][: SR - 1000])[0, 1] > 0.99
    _, none = augment(y, SR, np.random.default_rng(0), cfg, return_params=True)  # no bank: no room
    assert "room" not in none


def write_measured_ir(path, sr=48000, delay_s=0.05, seconds=1.0):
    """A stereo recording of a room: silence before the direct sound (as a measurement has),
    then a decaying tail; the right channel's direct sound 1 ms later than the left's."""
    import soundfile as sf

    rng = np.random.default_rng(3)
    n, d = int(seconds * sr), int(delay_s * sr)
    ir = np.zeros((n, 2))
    for ch, lag in ((0, 0), (1, sr // 1000)):
        ir[d + lag, ch] = 0.9
        tail = rng.normal(0, 0.05, n - d - lag - 100) * np.exp(-np.arange(n - d - lag - 100) / (0.1 * sr))
        ir[d + lag + 100:, ch] += tail
    sf.write(path, ir, sr, subtype="FLOAT")
    return ir


def test_measured_irs_start_at_the_direct_sound(tmp_path):
    write_measured_ir(tmp_path / "hall.wav")
    irs = measured_irs(tmp_path, SR)
    assert len(irs) == 2  # one room per channel
    for ir in irs:
        assert ir.dtype == np.float32 and np.abs(ir).max() == pytest.approx(1.0)
        # the 50 ms of silence before the direct sound is gone: a click stays in place (within
        # the resampler's few samples), it is not moved by the measurement's lead-in
        assert np.argmax(np.abs(ir)) <= 12
        assert len(ir) == pytest.approx(SR * 0.95, abs=SR * 0.01)
    with pytest.raises(FileNotFoundError, match="no impulse responses"):
        measured_irs(tmp_path / "empty", SR)


def test_augment_takes_measured_rooms_in_their_share(tmp_path):
    cfg = compose("train", ["augment.room.measured_p=1.0", "augment.p=1.0"]).augment
    for effect in ("mix", "detune", "eq", "reverb", "noise", "compress", "gain", "codec"):
        cfg[effect].p = 0.0
    cfg.room.p = 1.0
    write_measured_ir(tmp_path / "hall.wav")
    real = measured_irs(tmp_path, SR)
    simulated = [np.eye(1, 800, 0, dtype=np.float32)[0]]  # a dry "room": the click itself
    y = np.zeros(SR, dtype=np.float32)
    y[1000] = 1.0
    out, params = augment(y, SR, np.random.default_rng(0), cfg, rooms=simulated, measured=real, return_params=True)
    assert params["room"]["measured"] is True
    i = params["room"]["index"]
    assert np.corrcoef(out[1000:1000 + len(real[i])], real[i][: SR - 1000])[0, 1] > 0.99
    cfg.room.measured_p = 0.0
    out, params = augment(y, SR, np.random.default_rng(0), cfg, rooms=simulated, measured=real, return_params=True)
    assert params["room"]["measured"] is False and np.count_nonzero(np.abs(out) > 1e-4) == 1
    # without measured rooms no draw between the pools is made: the simulated room is taken
    # even where measured_p asks for recorded ones
    cfg.room.measured_p = 1.0
    assert augment(y, SR, np.random.default_rng(5), cfg, rooms=simulated, return_params=True)[1]["room"] == \
        {"index": 0, "measured": False}


def test_compression_narrows_the_dynamic_range_and_keeps_the_level():
    t = np.arange(2 * SR) / SR
    y = (np.sin(2 * np.pi * 440 * t) * np.where(t < 1, 0.02, 0.5)).astype(np.float32)  # soft, then loud
    out = compress(y, SR, threshold_db=-20, ratio=6, time_s=0.02)

    def ratio_db(x):
        return 20 * np.log10(np.sqrt(np.mean(x[SR + 2000:] ** 2)) / np.sqrt(np.mean(x[2000:SR] ** 2)))

    assert ratio_db(y) == pytest.approx(27.96, abs=0.1)
    assert ratio_db(out) < 27.96 - 10  # the loud half is held down
    assert np.sqrt(np.mean(out ** 2)) == pytest.approx(np.sqrt(np.mean(y ** 2)), rel=1e-3)
