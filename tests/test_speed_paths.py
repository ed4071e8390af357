"""The fast inference paths give the answers of the plain ones: the numpy CQT equals
librosa's, batched chunks equal one-at-a-time chunks, the ONNX runtime equals torch, the
export cache is keyed by checkpoint content, and the command-line path imports neither torch
nor librosa once the export is cached. No test here measures time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transcribe import features as F
from transcribe.features import FeatureConfig, cqt_features, cqt_features_librosa
from transcribe.notes import Notes

from .conftest import (EIGHT_TONES_NOTE_F1, EIGHT_TONES_NOTE_F1_INT8, SR, cache_dir_env, eight_tones, random_notes,
                       require_dev, synth)



@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> Path:
    """A private export cache for this module (the shipped model is exported once); the tests
    that use it need onnxruntime and onnx."""
    require_dev("onnxruntime", "onnx")
    with cache_dir_env(tmp_path_factory.mktemp("onnx-cache")) as path:
        yield path


@pytest.fixture(scope="module")
def piece() -> tuple[np.ndarray, Notes]:
    notes = random_notes(7, seconds=12.0, n=24, low=30, high=100)
    return synth(notes, seed=7), notes


# ----------------------------------------------------------------------------- CQT


def assert_same_cqt(a: np.ndarray, b: np.ndarray) -> None:
    """Equal to float32 rounding: magnitudes within 0.1% (or 1e-6 absolute, which matters only
    near the -80 dB floor); the training cache stores float16 logs, which is 1000x coarser."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(np.exp(a), np.exp(b), rtol=1e-3, atol=1e-6)
    assert np.abs(a - b).mean() < 1e-4


@pytest.mark.parametrize("n_samples", [100, 511, 512, 3 * SR + 77])
def test_numpy_cqt_equals_librosa(n_samples):
    rng = np.random.default_rng(n_samples)
    notes = random_notes(1, seconds=max(n_samples / SR, 1.5), n=6)
    y = synth(notes)[:n_samples] + rng.normal(0, 1e-3, n_samples).astype(np.float32)
    cfg = FeatureConfig()
    ours, ref = cqt_features(y, cfg), cqt_features_librosa(y, cfg)
    assert ours.shape == (cfg.n_frames(n_samples), cfg.n_bins)
    assert_same_cqt(ours, ref)


def test_numpy_cqt_blocks_do_not_change_the_result(monkeypatch, piece):
    y, _ = piece
    cfg = FeatureConfig()
    whole = cqt_features(y, cfg)
    monkeypatch.setattr(F, "_BLOCK_FRAMES", 7)  # many block seams in every octave
    assert_same_cqt(cqt_features(y, cfg), whole)


@pytest.mark.parametrize("cfg", [
    FeatureConfig(bins_per_semitone=4, hop_length=256),
    FeatureConfig(sample_rate=44100),  # librosa downsamples early by 2
    FeatureConfig(hop_length=320),  # the hop turns odd: the last octave keeps the rate
    FeatureConfig(sample_rate=22050, hop_length=256, bins_per_semitone=4),
], ids=["4bins-hop256", "44k", "hop320", "22k"])
def test_numpy_cqt_other_configurations(cfg):
    y = synth(random_notes(3, seconds=3.0, n=8), sr=cfg.sample_rate)
    assert_same_cqt(cqt_features(y, cfg), cqt_features_librosa(y, cfg))


# ----------------------------------------------------------------------------- chunk batching


@pytest.fixture(scope="module")
def torch_transcriber():
    from transcribe.infer import Transcriber

    return Transcriber.from_checkpoint(backend="torch")


def test_batched_chunks_equal_one_at_a_time(torch_transcriber, piece):
    from transcribe.infer import chunk_spans, run_network

    y, _ = piece
    feats = cqt_features(y, torch_transcriber.features)
    chunk, context = 40, 15
    lengths = [hi - lo for _, _, lo, hi in chunk_spans(len(feats), chunk, context)]
    assert len(lengths) >= 6 and len(set(lengths)) >= 2  # several batches of equal length, and odd ones
    model = torch_transcriber.runner
    one = run_network(model, feats, chunk, context, batch_chunks=1)
    for batch in (2, 3, 16):
        many = run_network(model, feats, chunk, context, batch_chunks=batch)
        for k in one:
            np.testing.assert_allclose(many[k], one[k], atol=1e-5, rtol=0)


def test_chunk_spans_cover_every_frame_once():
    from transcribe.infer import chunk_spans

    for n in (1, 39, 40, 41, 1000):
        spans = chunk_spans(n, 40, 15)
        kept = np.concatenate([np.arange(a, b) for a, b, _, _ in spans])
        np.testing.assert_array_equal(kept, np.arange(n))
        assert all(lo <= a and b <= hi and a - lo <= 15 and hi - b <= 15 for a, b, lo, hi in spans)


# ----------------------------------------------------------------------------- ONNX runtime


def test_onnx_activations_equal_torch(onnx_cache, torch_transcriber, piece):
    from transcribe.infer import Transcriber, run_network

    fast = Transcriber.from_checkpoint(backend="onnx")
    assert fast.backend == "onnx"
    assert fast.features == torch_transcriber.features and fast.decode == torch_transcriber.decode
    y, _ = piece
    feats = cqt_features(y, fast.features)
    a = run_network(fast.runner, feats, 60, 20, batch_chunks=3)
    b = run_network(torch_transcriber.runner, feats, 60, 20, batch_chunks=1)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-4, rtol=0)
    n_fast, n_torch = fast.transcribe(y, SR), torch_transcriber.transcribe(y, SR)
    np.testing.assert_array_equal(n_fast.pitches, n_torch.pitches)
    np.testing.assert_allclose(n_fast.onsets, n_torch.onsets)


@pytest.mark.parametrize("int8", [False, True])
def test_onnx_transcribes_a_synthesised_scale(onnx_cache, int8):
    from transcribe.infer import Transcriber
    from transcribe.metrics import transcription_metrics

    notes = eight_tones()
    t = Transcriber.from_checkpoint(backend="onnx", int8=int8, threads=1)
    assert t.backend == ("onnx-int8" if int8 else "onnx")
    est = t.transcribe(synth(notes), SR)
    # every tone found, as by the command-line test with the shipped model (int8 adds two partials)
    m = transcription_metrics(notes, est)
    assert m["note_recall"] == 1.0 and m["note_f1"] >= (EIGHT_TONES_NOTE_F1_INT8 if int8 else EIGHT_TONES_NOTE_F1), m


def test_export_cache_is_keyed_by_checkpoint_content(onnx_cache, tmp_path, piece):
    import torch

    from transcribe.checkpoint import build_model, load_checkpoint, save_checkpoint, typed_configs
    from transcribe.infer import Transcriber, run_network
    from transcribe.runtime import onnx_cache_path

    state = load_checkpoint()
    model, (features, _) = build_model(state), typed_configs(state["config"])
    with torch.no_grad():
        model.onset_head.bias += 3.0  # a different network under the same kind of file
    ckpt = tmp_path / "changed.pt"
    save_checkpoint(ckpt, model, state["config"])
    t = Transcriber.from_checkpoint(ckpt, backend="onnx")
    assert onnx_cache_path(ckpt).is_file() and onnx_cache_path(ckpt) != onnx_cache_path(state_path())
    y, _ = piece
    feats = cqt_features(y, features)[:200]
    a = run_network(t.runner, feats, 1000, 0)
    b = run_network(model, feats, 1000, 0)
    np.testing.assert_allclose(a["onset"], b["onset"], atol=1e-4)

    # a damaged cache entry is rebuilt, not trusted
    onnx_cache_path(ckpt).write_bytes(b"not onnx")
    again = Transcriber.from_checkpoint(ckpt, backend="onnx")
    np.testing.assert_allclose(run_network(again.runner, feats, 1000, 0)["onset"], a["onset"], atol=1e-6)


def state_path() -> Path:
    from transcribe.checkpoint import SHIPPED_CHECKPOINT

    return SHIPPED_CHECKPOINT


def test_bad_checkpoints_are_clear_errors_with_onnx(onnx_cache, tmp_path):
    from transcribe.checkpoint import CheckpointError
    from transcribe.infer import Transcriber

    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Transcriber.from_checkpoint(tmp_path / "missing.pt", backend="onnx")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(CheckpointError):
        Transcriber.from_checkpoint(bad, backend="onnx")
    with pytest.raises(ValueError, match="backend"):
        Transcriber.from_checkpoint(backend="tensorflow")


def test_cached_onnx_path_imports_neither_torch_nor_librosa(onnx_cache, tmp_path):
    from transcribe.infer import Transcriber

    Transcriber.from_checkpoint(backend="onnx")  # make sure the export is cached
    code = ("import sys, json, numpy as np\n"
            "from transcribe.infer import Transcriber\n"
            "t = Transcriber.from_checkpoint(threads=1)\n"
            "notes = t.transcribe(np.zeros(16000, np.float32), 16000)\n"
            "print(json.dumps([t.backend, 'torch' in sys.modules, 'librosa' in sys.modules, len(notes)]))\n")
    env = {**os.environ, "TRANSCRIBE_CACHE_DIR": str(onnx_cache)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["onnx", False, False, 0]


def test_checkpoint_builds_its_network_in_eval_mode_once_read(onnx_cache):
    from transcribe.checkpoint import Checkpoint

    ckpt = Checkpoint()
    model = ckpt.build_model()
    assert model.training is False and sum(p.numel() for p in model.parameters()) > 0
    assert ckpt.state is ckpt.state  # read once
