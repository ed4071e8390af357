"""Training data: audio segments, augmented crops aligned with the cached features, batches that
do not depend on how many loader processes make them, extra training folders, partner renders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from transcribe.config import compose
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from transcribe.audio import load_audio, read_segment
from transcribe.data.cache import FeatureCache
from transcribe.data.dataset import BatchStream, CropDataset
from transcribe.data.layout import partners_of
from transcribe.data.pairs import dataset_splits, find_pairs
from transcribe.features import FeatureConfig
from transcribe.notes import Notes

from .conftest import SR, random_notes, synth, write_tsv

EFFECTS = ("mix", "detune", "eq", "reverb", "room", "noise", "compress", "gain", "codec")


def aug_config(**on: float):
    """The default augmentation config with every effect off except those named (their p)."""
    cfg = augment_config()
    cfg.p = 1.0
    for name in EFFECTS:
        cfg[name].p = on.get(name, 0.0)
    return cfg


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> CropDataset:
    folder = tmp_path_factory.mktemp("pieces")
    for i in range(3):
        notes = random_notes(10 + i, seconds=8.0, n=24)
        sf.write(folder / f"piece{i}.flac", synth(notes, seed=i), SR)
        write_tsv(notes, folder / f"piece{i}.tsv")
    cfg = FeatureConfig()
    return CropDataset(find_pairs(folder), cfg, FeatureCache(tmp_path_factory.mktemp("cache"), cfg))


def test_read_segment_matches_whole_file_decoding(tmp_path):
    t = np.arange(int(44100 * 2.5)) / 44100
    y = 0.4 * np.sin(2 * np.pi * 330 * t) * np.exp(-t)
    sf.write(tmp_path / "a.wav", np.stack([y, 0.5 * y], axis=1), 44100)  # another rate, stereo
    whole = load_audio(tmp_path / "a.wav", SR)
    np.testing.assert_allclose(read_segment(tmp_path / "a.wav", 12345, 8000, SR), whole[12345:20345], atol=1e-5)
    before = read_segment(tmp_path / "a.wav", -500, 1500, SR)  # before the start: zeros, then the audio
    assert np.all(before[:500] == 0)
    np.testing.assert_allclose(before[500 + 64:], whole[64:1000], atol=1e-4)  # resampler edge aside
    after = read_segment(tmp_path / "a.wav", len(whole) - 300, 1000, SR)  # past the end: zeros
    assert len(after) == 1000 and np.all(after[400:] == 0)
    sf.write(tmp_path / "b.flac", y[:SR].astype(np.float32), SR)  # the training case: read as stored
    stored = sf.read(tmp_path / "b.flac", dtype="float32")[0]
    np.testing.assert_array_equal(read_segment(tmp_path / "b.flac", 100, 700, SR), stored[100:800])


@pytest.mark.parametrize("start", [0, 70])
def test_unaugmented_audio_crop_equals_the_cached_features(dataset, start):
    """The audio path (segment with context, CQT, context dropped) lands on the same frames as
    the cached whole-file features: a one-frame slip would show as a large difference."""
    crop_frames, context = 96, 32
    cached, targets = dataset.crop(0, start, crop_frames)
    feats, aug_targets = dataset.augmented_crop(0, start, crop_frames, np.random.default_rng(0), aug_config(), context)
    assert feats.shape == cached.shape and feats.dtype == np.float32
    for k in targets:
        np.testing.assert_array_equal(aug_targets[k], targets[k])
    audible = cached > np.log(1e-3)  # compare where there is signal (silence sits at the log floor)
    assert audible.mean() > 0.05
    assert np.abs(feats - cached)[audible].max() < 0.05
    shifted, _ = dataset.crop(0, start + 1, crop_frames)
    assert np.abs(shifted - cached)[audible].max() > 1.0  # the check above can tell frames apart


def test_augmented_crop_changes_the_features_not_the_targets(dataset):
    clean, targets = dataset.crop(1, 40, 96)
    noisy, noisy_targets = dataset.augmented_crop(1, 40, 96, np.random.default_rng(1), aug_config(noise=1.0, reverb=1.0), 32)
    assert np.abs(noisy - clean).mean() > 0.5
    for k in targets:
        np.testing.assert_array_equal(noisy_targets[k], targets[k])


@pytest.mark.parametrize("cents", [-20.0, 20.0])
def test_detuned_crop_targets_line_up_with_the_detuned_audio(tmp_path, cents):
    """Detune moves the crop's events by its time_scale (at 20 cents, about 6 frames 17 s into a
    crop); the targets move with them: each target onset sits on a rise of the detuned features."""
    onsets = np.arange(0.4, 21.0, 0.7)
    notes = Notes(onsets, onsets + 0.3, 48 + (np.arange(len(onsets)) * 5) % 36, np.full(len(onsets), 100))
    sf.write(tmp_path / "steps.flac", synth(notes, seed=1), SR)
    write_tsv(notes, tmp_path / "steps.tsv")
    cfg = FeatureConfig()
    data = CropDataset(find_pairs(tmp_path), cfg, FeatureCache(tmp_path / "cache", cfg))
    aug = aug_config(detune=1.0)
    aug.detune.cents = [cents, cents]
    start, crop, context = 40, 600, 32
    feats, targets = data.augmented_crop(0, start, crop, np.random.default_rng(0), aug, context)
    rise = np.maximum(np.diff(feats, axis=0), 0).sum(axis=1)  # onset strength; rise[i]: frame i -> i + 1
    hits = np.flatnonzero(targets["onset"].any(axis=1))
    assert len(hits) >= 25
    for t in hits[hits > 8]:
        window = np.arange(t - 8, min(t + 8, crop - 1))
        peak = window[np.argmax(rise[window])] + 1
        assert abs(peak - t) <= 1, (t, peak)
    late = hits[hits > 500]
    moved = (1 - 2 ** (-cents / 1200)) * (late + context)  # frames the late events moved
    assert np.abs(moved).max() >= 5  # the check above can tell moved targets from unmoved ones


def test_feature_cache_sees_a_same_size_file_replaced_within_a_second(tmp_path):
    """The cache key has the modification time in nanoseconds: a file replaced by another of the
    same size within the same second gets fresh features (whole seconds kept the old ones)."""
    import os

    cfg = FeatureConfig()
    cache = FeatureCache(tmp_path / "cache", cfg)
    audio = tmp_path / "a.wav"

    def clip(seed: int) -> np.ndarray:  # 3 s of tones: every version of the file has the same size
        return np.resize(synth(random_notes(seed, seconds=3.0, n=6), seed=seed), 3 * SR)

    sf.write(audio, clip(1), SR, subtype="FLOAT")
    os.utime(audio, ns=(1_700_000_000_100_000_000,) * 2)
    first = np.array(cache.load(audio))
    size = audio.stat().st_size
    sf.write(audio, clip(2), SR, subtype="FLOAT")
    assert audio.stat().st_size == size
    os.utime(audio, ns=(1_700_000_000_600_000_000,) * 2)  # the same whole second
    second = np.array(cache.load(audio))
    assert first.shape == second.shape and np.abs(first.astype(np.float32) - second).max() > 1.0


def test_feature_cache_takes_over_whole_second_entries_only_when_newer_than_the_audio(tmp_path):
    """Caches made before the nanosecond key are not recomputed: an entry under the old name
    that was written after the audio last changed is renamed to the new one; an older one is not used."""
    import hashlib
    import os

    cfg = FeatureConfig()
    cache = FeatureCache(tmp_path / "cache", cfg)
    audio = tmp_path / "a.wav"
    sf.write(audio, synth(random_notes(1, seconds=2.0, n=4), seed=1), SR)
    st = audio.stat()
    ident = f"{audio.resolve()}|{st.st_size}|{int(st.st_mtime)}"
    old = cache.dir / f"a-{hashlib.sha1(ident.encode()).hexdigest()[:10]}.npy"
    old.parent.mkdir(parents=True)
    marker = np.full((3, 4), 7, np.float16)  # not what the audio gives: shows which entry is read
    np.save(old, marker)
    os.utime(old, ns=(st.st_mtime_ns - 10**9,) * 2)  # written before the audio changed: stale
    assert not np.array_equal(np.array(cache.load(audio)), marker) and old.exists()
    cache.path(audio).unlink()
    os.utime(old, ns=(st.st_mtime_ns + 10**9,) * 2)  # written after: taken over
    assert np.array_equal(np.array(cache.load(audio)), marker) and not old.exists()


def test_batches_do_not_depend_on_loader_processes_or_resume_point(dataset):
    stream = BatchStream(dataset, batch_size=4, crop_frames=64, seed=3, aug=OmegaConf.create(
        {**OmegaConf.to_container(aug_config(noise=0.5, eq=0.5, gain=0.5)), "p": 0.5}), context_frames=16)
    inline = list(stream.batches(5, 8, workers=0))
    loaded = list(stream.batches(5, 8, workers=2))
    resumed = list(stream.batches(6, 8, workers=0))
    assert len(inline) == len(loaded) == 3
    for a, b in zip(inline, loaded):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    assert torch.equal(resumed[0]["features"], inline[1]["features"])
    assert not torch.equal(inline[0]["features"], inline[1]["features"])
    other_rank = BatchStream(dataset, 4, 64, seed=3, rank=1)
    assert not torch.equal(other_rank[5]["features"], BatchStream(dataset, 4, 64, seed=3)[5]["features"])


def test_partners_are_renders_of_the_same_notes_through_other_pianos(tmp_path):
    """Partners are what the render manifest records (render/run.py's writer), found in the
    audio's own format (a re-encoded pack keeps them)."""
    from transcribe.render.run import _merge_manifest, _record
    from transcribe.render.synth import Piano

    records = {}
    for piano, stems in (("grand", "x"), ("bright", "x"), ("upright", "xy")):
        (tmp_path / "maps" / piano).mkdir(parents=True)
        for stem in stems:
            (tmp_path / "maps" / piano / f"{stem}.flac").write_bytes(b"")
            records[f"maps/{piano}/{stem}.flac"] = _record("maps", stem, Piano(piano, "p.sf2"), stem, 1, 1.0)
    _merge_manifest(records, tmp_path / "manifest.json")
    assert partners_of(tmp_path / "maps" / "grand" / "x.flac") == (
        tmp_path / "maps" / "bright" / "x.flac", tmp_path / "maps" / "upright" / "x.flac")
    assert partners_of(tmp_path / "maps" / "upright" / "y.flac") == ()
    (tmp_path / "maps" / "bright" / "x.ogg").write_bytes(b"")  # a pack: the same renders as Opus
    (tmp_path / "maps" / "grand" / "x.ogg").write_bytes(b"")
    assert partners_of(tmp_path / "maps" / "grand" / "x.ogg") == (tmp_path / "maps" / "bright" / "x.ogg",)
    (tmp_path / "audio").mkdir()
    assert partners_of(tmp_path / "audio" / "x.flac") == ()  # the MAPS layout has no piano folders


def test_same_named_files_in_sibling_folders_are_not_partners_unless_recorded(tmp_path):
    """Per-year (or per-performer) folders hold different recordings under the same name: without
    a manifest saying so they are not renders of the same notes; an older manifest that records no
    partners gives none."""
    for year in ("2004", "2006"):
        (tmp_path / "maestro" / year).mkdir(parents=True)
        (tmp_path / "maestro" / year / "take1.flac").write_bytes(b"")
    assert partners_of(tmp_path / "maestro" / "2004" / "take1.flac") == ()
    old = {"renders": {f"maestro/{y}/take1.flac": {"source": "maestro", "piano": y, "seconds": 1.0}
                       for y in ("2004", "2006")}}
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    assert partners_of(tmp_path / "maestro" / "2004" / "take1.flac") == ()


def test_extra_training_folders_join_training_but_never_validation(tmp_path):
    def folder(name: str, stems: list[str]) -> Path:
        root = tmp_path / name
        root.mkdir()
        for stem in stems:
            notes = random_notes(len(stem), seconds=2.0, n=3)
            sf.write(root / f"{stem}.wav", synth(notes), SR)
            write_tsv(notes, root / f"{stem}.tsv")
        return root

    main = folder("main", ["a_PianoA", "b_Held"])
    renders = folder("renders", ["c_render", "d_Held"])  # d imitates the held-out piano: dropped
    data = compose("train", [f"data.root={main}", "data.val_glob=*_Held*", f"data.extra_train_roots=[{renders}]"]).data
    train, val = dataset_splits(data)
    assert [a.name for a, _ in train] == ["a_PianoA.wav", "c_render.wav"]
    assert [a.name for a, _ in val] == ["b_Held.wav"]
    data.extra_train_roots = [str(tmp_path / "absent")]
    with pytest.raises(FileNotFoundError, match="absent"):
        dataset_splits(data)


def augment_config():
    """conf/augment/default.yaml as training composes it."""
    return compose("train").augment


def test_validation_reports_each_folder_on_its_own(tmp_path):
    """Validation over several folders (data.root and data.extra_val_roots) also scores each folder
    alone, at the pair of thresholds the whole set chose: the shipped model on clean tones in one
    folder and on the same kind of tones buried in noise in a nested one."""
    from transcribe.checkpoint import Checkpoint
    from transcribe.decode import DecodeConfig
    from transcribe.infer import InferConfig
    from transcribe.train import validate

    clean, noisy = tmp_path / "val", tmp_path / "val" / "noisy"  # nested: a file belongs to the deepest
    noisy.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        notes = random_notes(30 + i, seconds=6.0, n=16)
        y = synth(notes, seed=i)
        sf.write(clean / f"a{i}.flac", y, SR)
        write_tsv(notes, clean / f"a{i}.tsv")
        sf.write(noisy / f"b{i}.flac", y + rng.normal(0, 3 * np.sqrt(np.mean(y ** 2)), len(y)), SR)
        write_tsv(notes, noisy / f"b{i}.tsv")
    ckpt = Checkpoint(Path(__file__).resolve().parents[1] / "transcribe" / "weights" / "model.pt")
    cfg = compose("train")
    features = FeatureConfig.from_dict(ckpt.config["features"])
    data = CropDataset(find_pairs(clean), features, FeatureCache(tmp_path / "cache", features))
    roots = [str(clean), str(noisy)]
    # the shipped decoding without its own suppressions (stage 8 ships octave and twelfth 0.5), so that
    # the variants below are measured from the plain decoding
    decode = dataclasses.replace(DecodeConfig.from_dict(ckpt.config["decode"]), octave_suppression=0.0,
                                 twelfth_suppression=0.0)
    m = validate(ckpt.build_model(), data, features, decode,
                 InferConfig.from_dict(cfg.infer), None, cfg.train.val_thresholds, roots, octave=(0.0, 1.0))
    a, b = (m[f"set[{r}]_note_f1"] for r in roots)
    # train.val_octave: the same activations decoded again with octave suppression; share 0 is the
    # plain decoding, key for key, and full suppression can only take onsets away at fixed thresholds
    plain = {k: v for k, v in m.items() if not k.startswith("octave[")}
    assert {k: m[f"octave[0]_{k}"] for k in plain if f"octave[0]_{k}" in m} == {
        k: v for k, v in plain.items() if f"octave[0]_{k}" in m}
    assert {f"octave[0]_{k}" for k in ("note_f1", "tuned_note_f1", f"set[{roots[0]}]_note_f1")} <= set(m)
    assert f"octave[1]_tuned_note_f1" in m and m["octave[1]_note_recall"] <= m["note_recall"] + 1e-9
    assert a > 0.5 and a > b + 0.1  # the clean folder scores on its own, above the noisy one
    assert (a + b) / 2 == pytest.approx(m["tuned_note_f1"])  # two files each: the mean of the means
    alone = validate(ckpt.build_model(), data, features, decode,
                     InferConfig.from_dict(cfg.infer), None, cfg.train.val_thresholds, roots[:1])
    assert not any(k.startswith("set[") for k in alone)  # one folder: nothing to split


def test_lr_drops_lower_the_rate_once_and_the_step_schedule_goes_on_from_it():
    """train.lr_drops on a real Adam and StepLR: the rate falls by the factor at its step (both
    parameter groups, as with a grafted branch at its own scale), the schedule's later halvings act
    on the lowered rate, and a resume from the saved state (past the drop) keeps it without applying it again."""
    import torch

    from transcribe.train import apply_lr_drops

    def fresh():
        a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
        opt = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.2}], lr=0.1)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5), [a, b]

    def run(opt, sched, params, start, stop, drops):
        rates = []
        for step in range(start + 1, stop + 1):
            sum(p.sum() for p in params).backward()
            opt.step()
            sched.step()
            apply_lr_drops(opt, sched, step, drops)
            rates.append([g["lr"] for g in opt.param_groups])
        return rates

    drops = [[3, 0.1]]
    opt, sched, params = fresh()
    rates = run(opt, sched, params, 0, 6, drops)
    assert np.allclose(rates, [[0.1, 0.2], [0.1, 0.2], [0.01, 0.02], [0.005, 0.01], [0.005, 0.01], [0.005, 0.01]])
    assert sched.get_last_lr() == pytest.approx([0.005, 0.01])
    assert apply_lr_drops(opt, sched, 7, drops) is None and apply_lr_drops(opt, sched, 7, []) is None
    saved = {"opt": opt.state_dict(), "sched": sched.state_dict()}
    opt2, sched2, params2 = fresh()
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert np.allclose(run(opt2, sched2, params2, 6, 8, drops), [[0.005, 0.01], [0.0025, 0.005]])
