"""Rooms for augmentation, simulated with pyroomacoustics: shoebox rooms of random size and
reverberation time, the piano and the microphone placed at random 0.3 to 6 m apart; the early
reflections by the image-source method, the late tail by ray tracing (the hybrid simulator).

Simulating one room takes 0.1 to 1 s, too slow for every training crop, so a bank of rooms is
simulated once per configuration (:func:`room_bank`), cached as ``.npz`` in
``augment.room.cache_dir``, and each augmented crop draws one of them.

Measured impulse responses (real halls and rooms, :func:`measured_irs`) can join them:
``augment.room.measured_dir`` names a folder of IR recordings, and ``augment.room.measured_p`` of
the room draws take one of those instead (docs/DATA.md says which were used and under what licence).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..files import atomic_write


def _uniform(rng: np.random.Generator, bounds) -> float:
    lo, hi = (float(b) for b in bounds)
    return float(rng.uniform(lo, hi))


def place(rng: np.random.Generator, dims: np.ndarray, distance: float, margin: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A source (the piano, 0.6 to 1.2 m high) and a microphone ``distance`` metres away (or as
    far as the room allows), both at least ``margin`` from every wall."""
    lo, hi = np.full(3, margin), dims - margin
    src = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]), rng.uniform(0.6, min(1.2, hi[2]))])
    for _ in range(100):
        direction = rng.standard_normal(3)
        direction[2] *= 0.3  # microphones are mostly beside the piano, not above it
        mic = src + distance * direction / np.linalg.norm(direction)
        if np.all(mic >= lo) and np.all(mic <= hi):
            return src, mic
        distance *= 0.9  # the room is too small for this distance in this direction: come closer
    return src, np.clip(src + np.array([margin, 0, 0]), lo, hi)


def _surface(dims: np.ndarray) -> float:
    """The wall, floor and ceiling area of a shoebox room."""
    length, width, height = (float(d) for d in dims)
    return 2 * (length * width + length * height + width * height)


def simulate_room(rng: np.random.Generator, sample_rate: int, cfg) -> tuple[np.ndarray, dict]:
    """One room impulse response (float32, peak-normalised direct path) and its parameters,
    drawn within ``cfg`` (``augment.room``: rt60_s, length_m, width_m, height_m, distance_m,
    max_order, n_rays). ``rt60_s`` in the parameters is the (Sabine) reverberation time of the
    room simulated, ``rt60_wanted_s`` the one drawn: they differ where the room cannot reach it
    (absorption kept within 0.01..0.99; a large room asked for a short RT60 gets the deadest walls)."""
    import pyroomacoustics as pra

    dims = np.array([_uniform(rng, cfg.length_m), _uniform(rng, cfg.width_m), _uniform(rng, cfg.height_m)])
    dims[1] = min(dims[1], dims[0])  # width <= length
    wanted = _uniform(rng, cfg.rt60_s)
    # Sabine's absorption for the wanted RT60 (pra.inverse_sabine's formula, which raises where it
    # is above 1: a large room cannot die away that fast), kept within what walls can do; the
    # RT60 reported is the one these walls give, not the one asked for.
    sabine = 24 * np.log(10) * np.prod(dims) / (pra.constants.get("c") * _surface(dims))
    absorption = float(np.clip(sabine / wanted, 0.01, 0.99))
    rt60 = float(sabine / absorption)
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=int(cfg.max_order),
                       ray_tracing=True, air_absorption=True)
    room.set_ray_tracing(receiver_radius=0.5, n_rays=int(cfg.n_rays), energy_thres=1e-5)
    src, mic = place(rng, dims, _uniform(rng, cfg.distance_m))
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    ir = from_direct_sound(np.asarray(room.rir[0][0], dtype=np.float64))
    params = {"dims_m": [round(float(d), 2) for d in dims], "rt60_s": round(rt60, 3),
              "rt60_wanted_s": round(wanted, 3), "absorption": round(absorption, 4),
              "distance_m": round(float(np.linalg.norm(mic - src)), 2)}
    return (ir / np.abs(ir).max()).astype(np.float32), params


def from_direct_sound(ir: np.ndarray) -> np.ndarray:
    """``ir`` from its direct sound on (the first sample at half its peak, less 8 samples of a
    fractional-delay filter's lead-in), so the room adds no delay and labels stay aligned with
    the audio (an untrimmed measured IR can move every onset by tens of milliseconds)."""
    return ir[max(int(np.argmax(np.abs(ir) > 0.5 * np.abs(ir).max())) - 8, 0):]


MEASURED_SUFFIXES = (".wav", ".aif", ".aiff", ".flac")


def measured_irs(folder: str | Path, sample_rate: int, max_seconds: float = 4.0) -> list[np.ndarray]:
    """Every impulse response recorded under ``folder`` (``.wav``, ``.aif(f)``, ``.flac``, searched
    recursively, in sorted order), each channel its own response: resampled to ``sample_rate``
    (soxr), started at its direct sound (:func:`from_direct_sound`), cut to ``max_seconds`` and
    peak-normalised as the simulated ones are. Raises ``FileNotFoundError`` naming the folder when
    it holds none, and ``ValueError`` naming a file that is silent."""
    import soundfile as sf
    import soxr

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in MEASURED_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no impulse responses ({', '.join(MEASURED_SUFFIXES)}) "
                                "(augment.room.measured_dir)")
    irs = []
    for path in files:
        data, sr = sf.read(str(path), dtype="float64", always_2d=True)
        for channel in data.T:
            if not np.any(channel):
                raise ValueError(f"{path}: a silent channel is not an impulse response")
            ir = soxr.resample(channel, sr, sample_rate) if sr != sample_rate else channel
            ir = from_direct_sound(ir)[: int(max_seconds * sample_rate)]
            irs.append((ir / np.abs(ir).max()).astype(np.float32))
    return irs


def bank_path(cfg, sample_rate: int) -> Path:
    """Where the room bank of this configuration (``augment.room``) is cached."""
    keys = ("bank_size", "seed", "rt60_s", "length_m", "width_m", "height_m", "distance_m", "max_order", "n_rays")
    spec = {k: (list(cfg[k]) if hasattr(cfg[k], "__len__") and not isinstance(cfg[k], str) else cfg[k]) for k in keys}
    spec["sample_rate"] = int(sample_rate)
    spec["version"] = 2  # 2: rooms that cannot reach a short RT60 get the deadest walls (were the most live)
    key = hashlib.sha1(json.dumps(spec, sort_keys=True, default=float).encode()).hexdigest()[:12]
    return Path(cfg.cache_dir) / f"rooms-{key}.npz"


def room_bank(cfg, sample_rate: int, progress=None) -> list[np.ndarray]:
    """``cfg.bank_size`` room impulse responses drawn with ``cfg.seed``: read from the cache when
    this configuration was simulated before, else simulated (minutes) and cached. A bank's first
    rooms have the shapes, absorptions and placements of those of any larger bank with the same
    seed, but not the same samples: pyroomacoustics's ray tracer draws its own random numbers
    (a device pack therefore copies rooms out of the bank file, scripts/pack_device_data.py)."""
    path = bank_path(cfg, sample_rate)
    if path.is_file():
        with np.load(path) as z:
            return [z[f"ir{i}"] for i in range(int(cfg.bank_size))]
    rng = np.random.default_rng(int(cfg.seed))
    irs = []
    for i in range(int(cfg.bank_size)):
        ir, params = simulate_room(rng, sample_rate, cfg)
        irs.append(ir)
        if progress:
            progress(f"room {i + 1}/{cfg.bank_size}: {params}")
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{f"ir{i}": ir for i, ir in enumerate(irs)})
    return irs
