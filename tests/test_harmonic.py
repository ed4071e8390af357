"""Harmonic networks (issue 26): the harmonic convolution's reach, a branch grafted onto a trained
network, the pitch-invariant harmonic network trained, exported and run by ``transcribe``."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from transcribe.checkpoint import Checkpoint, config_dict
from transcribe.decode import DecodeConfig
from transcribe.features import FeatureConfig
from transcribe.harmonic import HarmonicConv, harmonic_offsets
from transcribe.model import HarmonicKeyNet, ModelConfig, OnsetsAndFrames, build_network
from transcribe.notefiles import read_midi
from transcribe.runtime import OnnxRunner, TorchRunner, export_onnx

from .conftest import SR, far_batch_norm, random_notes, synth, write_tsv

N_BINS = 264
TINY = ModelConfig(conv_channels=(4, 4, 8), frontend_size=32, lstm_hidden=16, dropout=0.0, pedal_head=True,
                   pedal_hidden=8)
TINY_HARMONIC = replace(TINY, arch="harmonic", front_channels=4, width=8, time_layers=1, key_lstm=8)


def test_offsets_are_the_partials_in_semitones():
    assert harmonic_offsets(8) == (0, 12, 19, 24, 28, 31, 34, 36)


def test_a_key_hears_its_harmonics_and_not_its_neighbours():
    torch.manual_seed(0)
    conv = HarmonicConv(1, 1, harmonic_offsets(8), time_kernel=1)
    torch.nn.init.constant_(conv.conv.weight, 1.0)
    torch.nn.init.zeros_(conv.conv.bias)
    key = 30

    def response(source_key: int) -> float:
        x = torch.zeros(1, 1, 1, 88)
        x[..., source_key] = 1.0
        with torch.no_grad():
            return float(conv(x)[0, 0, 0, key])

    assert [response(key + o) for o in harmonic_offsets(8)] == [1.0] * 8  # itself and its partials
    assert response(key + 13) == response(key + 1) == response(key - 12) == 0.0  # not a neighbour, not below


def trained_like(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``model`` with random weights and batch-norm statistics far from their defaults, in eval mode."""
    torch.manual_seed(seed)
    for p in model.parameters():
        p.data.normal_(0, 0.3)
    return far_batch_norm(model)


def test_a_grafted_branch_starts_where_the_network_was():
    base = trained_like(OnsetsAndFrames(N_BINS, TINY), 0)
    grafted_cfg = replace(TINY, harmonic_branch=4)
    assert grafted_cfg.grafts_onto(TINY) and not TINY.grafts_onto(grafted_cfg)
    assert not replace(grafted_cfg, lstm_hidden=32).grafts_onto(TINY)  # a graft changes nothing else
    grafted = build_network(N_BINS, grafted_cfg)
    result = grafted.load_state_dict(base.state_dict(), strict=False)
    assert result.missing_keys and all(k.startswith("harmonic_branch.") for k in result.missing_keys)
    grafted.eval()
    x = torch.randn(2, 60, N_BINS)
    with torch.no_grad():
        a, b = base(x), grafted(x)
        assert all(torch.equal(a[k], b[k]) for k in a)
        # and the branch is live: once its output layer moves, so do the outputs
        grafted.harmonic_branch.fc.weight.add_(0.1)
        assert not torch.allclose(grafted(x)["onset"], a["onset"])


def test_the_harmonic_network_exports_to_onnx_with_the_same_outputs():
    net = trained_like(HarmonicKeyNet(N_BINS, TINY_HARMONIC), 1)
    features = FeatureConfig()
    onnx = OnnxRunner(export_onnx(net, config_dict(features, TINY_HARMONIC, DecodeConfig()), N_BINS))
    x = np.random.default_rng(0).standard_normal((1, 90, N_BINS)).astype(np.float32)
    a, b = TorchRunner(net)(x), onnx(x)
    assert set(a) == set(b) == set(TINY_HARMONIC.heads)
    for k in a:
        assert a[k].shape == (1, 90, 88 if not k.startswith("pedal") else 1)
        np.testing.assert_allclose(a[k], b[k], atol=1e-4)


def test_an_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="model.arch"):
        ModelConfig.from_dict({"arch": "transformer"})


def test_old_checkpoint_configs_build_the_onsets_and_frames_network():
    # a config written before model.arch existed (stage 7's and older): the shipped one less that key
    cfg = ModelConfig.from_dict({k: v for k, v in Checkpoint().config["model"].items() if k != "arch"})
    assert cfg.arch == "onsets_frames" and isinstance(build_network(N_BINS, cfg), OnsetsAndFrames)


def test_the_harmonic_convolution_spans_the_frames_the_config_names():
    def kernel(cfg: ModelConfig) -> tuple[int, ...]:
        trunk = HarmonicKeyNet(N_BINS, cfg).trunk
        return next(m.conv.kernel_size for m in trunk.modules() if isinstance(m, HarmonicConv))

    old = {k: v for k, v in config_dict(FeatureConfig(), TINY_HARMONIC, DecodeConfig())["model"].items()
           if k != "harmonic_frames"}  # a checkpoint from before the key
    assert kernel(ModelConfig.from_dict(old)) == (3, 1)
    assert kernel(replace(TINY_HARMONIC, harmonic_frames=1)) == (1, 1)


def run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_train_a_harmonic_network_then_transcribe_with_it(tmp_path: Path):
    """A real run: ``transcribe-train model=harmonic`` for a few steps, then ``transcribe`` with its
    checkpoint (exported to ONNX on the way) writes a MIDI file; a second run grafts a branch onto
    an onsets-and-frames checkpoint and starts from its exact validation score."""
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(3):
        name = f"piece{i}_{'val' if i == 2 else 'train'}"
        notes = random_notes(i, seconds=4.0, n=8)
        sf.write(folder / f"{name}.wav", synth(notes, seed=i), SR)
        write_tsv(notes, folder / f"{name}.tsv")
    common = [f"data.root={folder}", "data.val_glob=*_val*", f"paths.cache={tmp_path / 'cache'}",
              "train.batch_size=2", "train.crop_seconds=2", "train.num_workers=1", "train.num_threads=1",
              "train.loader_workers=0", "augment.p=0", "train.log_every=2", "train.val_thresholds.onset=[]",
              "train.val_thresholds.frame=[]"]
    harm = tmp_path / "harmonic"
    run("transcribe.train", *common, f"hydra.run.dir={harm}", "model=harmonic", "model.width=8",
        "model.front_channels=4", "model.key_lstm=8", "model.time_layers=1", "train.max_steps=4", "train.val_every=4")
    rows = [json.loads(line) for line in (harm / "metrics.jsonl").read_text().splitlines()]
    cpu = [r["cpu_s"] for r in rows if "loss_total" in r]
    assert len(cpu) == 2 and 0 < cpu[0] < cpu[1]  # the run's CPU time is logged and grows
    ckpt = harm / "checkpoints" / "best.pt"
    assert Checkpoint(ckpt).config["model"]["arch"] == "harmonic"
    out = tmp_path / "out"
    run("transcribe", str(folder / "piece2_val.wav"), "--model", str(ckpt), "-o", str(out), "--format", "mid")
    read_midi(out / "piece2_val.mid")  # a MIDI file (an untrained network may write no notes)

    # a narrow onsets-and-frames checkpoint, then the same network with a harmonic branch grafted on
    plain, grafted = tmp_path / "plain", tmp_path / "grafted"
    tiny = ["model.conv_channels=[4,4,8]", "model.frontend_size=32", "model.lstm_hidden=16"]
    run("transcribe.train", *common, f"hydra.run.dir={plain}", *tiny, "train.max_steps=2", "train.val_every=2")
    run("transcribe.train", *common, f"hydra.run.dir={grafted}", *tiny, "model.harmonic_branch=4",
        f"train.init_from={plain / 'checkpoints' / 'last.pt'}", "train.learning_rate=0", "train.max_steps=1",
        "train.val_every=1")

    before = torch.load(plain / "checkpoints" / "last.pt", weights_only=False)
    after = torch.load(grafted / "checkpoints" / "last.pt", weights_only=False)
    params = {n for n, _ in build_network(N_BINS, ModelConfig.from_dict(after["config"]["model"])).named_parameters()}
    branch = {k for k in after["model_state"] if k.startswith("harmonic_branch.")}
    assert branch and set(after["model_state"]) == set(before["model_state"]) | branch
    # learning rate 0: every weight is the plain checkpoint's (batch-norm statistics move in a training step),
    # and the branch's output layer is still zero, so the network computes what the checkpoint did
    assert all(torch.equal(before["model_state"][k], after["model_state"][k]) for k in before["model_state"] if k in params)
    assert not after["model_state"]["harmonic_branch.fc.weight"].any()


@pytest.mark.parametrize("time_kernel", [1, 3])
def test_the_harmonic_convolution_is_one_convolution_over_the_stacked_shifted_maps(time_kernel):
    """HarmonicConv sums one convolution per harmonic, shifted after it (no stacked copies): the
    same function as its one convolution (its weights) over the eight shifted maps stacked."""
    from torch.nn import functional as F

    torch.manual_seed(time_kernel)
    conv = HarmonicConv(6, 5, harmonic_offsets(8), time_kernel=time_kernel)
    x = torch.randn(2, 6, 17, 88)
    stacked = torch.cat([x if o == 0 else F.pad(x[..., o:], (0, o)) for o in conv.offsets], dim=1)
    torch.testing.assert_close(conv(x), conv.conv(stacked), atol=1e-5, rtol=1e-5)
