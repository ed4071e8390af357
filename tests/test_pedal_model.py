"""The sustain-pedal head: targets and their mask, the masked loss, checkpoints without the head
(the shipped model) unchanged, the ONNX export, decoding to spans and CC64 in the written MIDI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from transcribe.checkpoint import Checkpoint, config_dict, save_checkpoint
from transcribe.config import compose
from transcribe.data.cache import FeatureCache
from transcribe.data.dataset import CropDataset
from transcribe.decode import DecodeConfig, decode_pedal
from transcribe.features import FeatureConfig
from transcribe.infer import Transcriber, run_network
from transcribe.model import ModelConfig, OnsetsAndFrames, build_network, loss, probabilities
from transcribe.notes import Notes
from transcribe.pedal import pedal_sidecar, write_pedal
from transcribe.runtime import TorchRunner
from transcribe.targets import HEADS, PEDAL_HEADS, pedal_rolls

from .conftest import SR, random_notes, require_dev, synth, write_tsv

TINY = ModelConfig(conv_channels=(4, 4, 8), frontend_size=32, lstm_hidden=16, dropout=0.0, pedal_head=True,
                   pedal_hidden=8)


def test_pedal_rolls_mark_down_press_and_lift_and_crops_agree():
    spans = np.array([[0.1, 0.5], [0.5, 0.9], [2.0, 9.0]])
    whole = pedal_rolls(spans, 30, 10.0)
    assert np.flatnonzero(whole["pedal"][:, 0]).tolist() == list(range(1, 9)) + list(range(20, 30))
    assert np.flatnonzero(whole["pedal_onset"][:, 0]).tolist() == [1, 5, 20]
    assert np.flatnonzero(whole["pedal_offset"][:, 0]).tolist() == [5, 9]  # the lift at 9 s is past the end
    for start, stop in [(0, 7), (4, 21), (25, 30)]:
        crop = pedal_rolls(spans, 30, 10.0, start, stop)
        for k in PEDAL_HEADS:
            np.testing.assert_array_equal(crop[k], whole[k][start:stop])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two synthetic recordings: one with a pedal sidecar (pedal known), one without (unknown)."""
    root = tmp_path_factory.mktemp("pedal_data")
    for i, name in enumerate(["known", "unknown"]):
        notes = random_notes(i)
        sf.write(root / f"{name}.wav", synth(notes, seed=i), SR)
        write_tsv(notes, root / f"{name}.tsv")
    write_pedal(np.array([[1.0, 2.5], [3.0, 4.0]]), pedal_sidecar(root / "known.tsv"))
    return root


def test_dataset_reads_sidecars_and_masks_unknown_pedal(folder, tmp_path):
    features = FeatureConfig.from_dict(compose("train").features)
    pairs = [(folder / f"{n}.wav", folder / f"{n}.tsv") for n in ("known", "unknown")]
    data = CropDataset(pairs, features, FeatureCache(tmp_path / "cache", features))
    assert data.recordings[1].pedal is None
    _, known = data.crop(0, 0, 160)
    _, unknown = data.crop(1, 0, 160)
    fr = features.frame_rate
    assert known["pedal_mask"].min() == 1 and unknown["pedal_mask"].max() == 0
    down = np.flatnonzero(known["pedal"][:, 0])
    assert down[0] == round(1.0 * fr) and down[-1] == round(4.0 * fr) - 1
    assert known["pedal_onset"][:, 0].sum() == 2 and unknown["pedal"].sum() == 0
    batch = data.sample(np.random.default_rng(0), 4, 64)
    assert batch["pedal"].shape == (4, 64, 1) and batch["pedal_mask"].shape == (4, 64, 1)


def test_pedal_loss_counts_only_known_frames():
    torch.manual_seed(0)
    model = OnsetsAndFrames(48, TINY)
    x = torch.randn(2, 40, 48)
    targets = {k: torch.zeros(2, 40, 88) for k in HEADS}
    targets.update({k: torch.ones(2, 40, 1) for k in PEDAL_HEADS})
    weights = compose("train").train.loss_weights
    for mask, pedal_learns in ((torch.zeros(2, 40, 1), False), (torch.ones(2, 40, 1), True)):
        model.zero_grad()
        losses = loss(model(x), {**targets, "pedal_mask": mask}, weights)
        losses["total"].backward()
        grad = model.pedal_head.weight.grad
        assert (losses["pedal"].item() > 0) == pedal_learns
        assert (grad is not None and grad.abs().sum().item() > 0) == pedal_learns
        assert model.onset_head.weight.grad.abs().sum().item() > 0  # the notes learn either way
    half = torch.zeros(2, 40, 1)
    half[0] = 1  # only the first crop's pedal is known: its loss alone
    out = model(x)
    masked = loss(out, {**targets, "pedal_mask": half}, weights)["pedal"]
    alone = loss({k: v[:1] for k, v in out.items()}, {**{k: v[:1] for k, v in targets.items()},
                                                         "pedal_mask": half[:1]}, weights)["pedal"]
    assert torch.allclose(masked, alone)


def test_the_pedal_loss_never_changes_the_note_network():
    """The pedal head reads the note network's features without training them: the gradient of
    the pedal loss alone reaches the pedal head's parameters and no other."""
    torch.manual_seed(0)
    model = OnsetsAndFrames(48, TINY)
    out = model(torch.randn(2, 40, 48))
    sum(out[k].sum() for k in PEDAL_HEADS).backward()
    moved = {name for name, prm in model.named_parameters() if prm.grad is not None and prm.grad.abs().sum() > 0}
    assert moved and all(name.startswith("pedal_") for name in moved), moved


def test_the_shipped_checkpoint_runs_as_before():
    """The shipped model has a pedal head trained alone on its note network (train.train_only=pedal):
    it loads strictly, outputs the note and pedal heads, writes no pedal by default (decode.pedal
    false), and without its pedal head the note network gives the same notes."""
    ckpt = Checkpoint()
    assert ckpt.config["model"]["pedal_head"] is True and ckpt.config["decode"]["pedal"] is False
    model = ckpt.build_model()  # load_state_dict is strict: every tensor used, none missing
    assert model.heads == HEADS + PEDAL_HEADS
    x = np.random.default_rng(0).normal(-3, 1, (1, 100, model.n_bins)).astype(np.float32)
    both = TorchRunner(model)(x)
    assert set(both) == set(HEADS + PEDAL_HEADS) and both["pedal"].shape == (1, 100, 1)
    cfg = ModelConfig.from_dict({**ckpt.config["model"], "pedal_head": False})
    plain = build_network(model.n_bins, cfg)
    unexpected = plain.load_state_dict(ckpt.state["model_state"], strict=False).unexpected_keys
    assert unexpected and all(k.startswith("pedal_") for k in unexpected)
    notes_only = TorchRunner(plain.eval())(x)
    assert set(notes_only) == set(HEADS)
    for k in HEADS:
        np.testing.assert_array_equal(both[k], notes_only[k])
    stored = ModelConfig.from_dict(ckpt.config["model"])
    # the config it was trained with (conf/model/harmonic.yaml, no pedal head) builds the same note network
    assert stored.without_pedal().same_network(ModelConfig.from_dict(compose("train", ["model=harmonic"]).model))


def save_tiny(path: Path, model: OnsetsAndFrames) -> None:
    cfg = compose("train")
    save_checkpoint(path, model, config_dict(FeatureConfig.from_dict(cfg.features), model.cfg,
                                             DecodeConfig.from_dict(cfg.decode)))


def test_onnx_export_carries_the_pedal_outputs(tmp_path, monkeypatch):
    require_dev("onnxruntime")
    monkeypatch.setenv("TRANSCRIBE_CACHE_DIR", str(tmp_path / "cache"))
    features = FeatureConfig.from_dict(compose("train").features)
    torch.manual_seed(0)
    save_tiny(tmp_path / "pedal.pt", OnsetsAndFrames(features.n_bins, TINY).eval())
    x = np.random.default_rng(0).normal(-3, 1, (700, features.n_bins)).astype(np.float32)
    for path, heads in ((tmp_path / "pedal.pt", HEADS + PEDAL_HEADS), (None, HEADS + PEDAL_HEADS)):
        onnx_t = Transcriber.from_checkpoint(path, backend="onnx")
        torch_t = Transcriber.from_checkpoint(path, backend="torch")
        a, b = onnx_t.run_network(x), torch_t.run_network(x)
        assert tuple(a) == heads and tuple(b) == heads
        for k in heads:
            np.testing.assert_allclose(a[k], b[k], atol=1e-4)


def test_decode_pedal_spans_and_presses_inside_a_held_stretch():
    fr, cfg = 10.0, DecodeConfig()
    pedal = np.zeros(60)
    pedal[5:20] = 0.9   # held 0.5-2.0 s, re-pressed at 1.2 s without a gap the frames can see
    pedal[30:31] = 0.9  # one frame: too short
    pedal[40:50] = 0.7
    onset = np.zeros(60)
    onset[[5, 6, 12, 13, 40]] = 0.8
    spans = decode_pedal(pedal, onset, fr, cfg)
    np.testing.assert_allclose(spans, [[0.5, 1.2], [1.2, 2.0], [4.0, 5.0]])
    np.testing.assert_allclose(decode_pedal(pedal, None, fr, cfg), [[0.5, 2.0], [4.0, 5.0]])
    assert decode_pedal(pedal, onset, fr, DecodeConfig(pedal_threshold=0.8)).tolist() == [[0.5, 1.2], [1.2, 2.0]]


def cc64(path: Path) -> list[tuple[float, int]]:
    """(seconds, value) of the CC64 events of a MIDI file, read with mido."""
    import mido

    mid = mido.MidiFile(str(path))
    out, t = [], 0.0
    for msg in mido.merge_tracks(mid.tracks):
        t += mido.tick2second(msg.time, mid.ticks_per_beat, 500000)
        if msg.type == "control_change" and msg.control == 64:
            out.append((round(t, 3), msg.value))
    return out


def test_pedal_spans_become_cc64_in_midi_and_json(tmp_path):
    import json

    from transcribe.notefiles import read_midi_pedal
    from transcribe.outputs import write_notes

    notes = Notes([0.5, 1.0], [1.5, 2.5], [60, 64], [80, 90])
    spans = decode_pedal(np.r_[np.zeros(8), np.full(12, 0.9), np.zeros(5), np.full(6, 0.9)], None, 10.0)
    write_notes(notes, tmp_path / "a.mid", "mid", pedal=spans)
    assert cc64(tmp_path / "a.mid") == [(0.8, 127), (2.0, 0), (2.5, 127), (3.1, 0)]
    np.testing.assert_allclose(read_midi_pedal(tmp_path / "a.mid")[1], spans, atol=1e-3)
    write_notes(notes, tmp_path / "a.json", "json", pedal=spans)
    assert json.loads((tmp_path / "a.json").read_text())["pedal"] == [{"down": 0.8, "up": 2.0}, {"down": 2.5, "up": 3.1}]
    write_notes(notes, tmp_path / "b.mid", "mid")
    assert cc64(tmp_path / "b.mid") == []


def test_cli_writes_cc64_for_a_pedal_model_and_not_with_no_pedal(folder, tmp_path):
    import subprocess
    import sys

    features = FeatureConfig.from_dict(compose("train").features)
    torch.manual_seed(0)
    model = OnsetsAndFrames(features.n_bins, TINY).eval()
    with torch.no_grad():
        model.pedal_head.bias[:] = torch.tensor([4.0, -4.0, -4.0])  # the pedal held throughout
    save_tiny(tmp_path / "pedal.pt", model)
    audio = folder / "known.wav"
    t = Transcriber.from_checkpoint(tmp_path / "pedal.pt", backend="torch")
    expected = t.transcribe_stream(audio).pedal
    assert expected is not None and len(expected) >= 1
    base = [sys.executable, "-m", "transcribe.cli", str(audio), "--model", str(tmp_path / "pedal.pt"),
            "--backend", "torch", "-q"]
    subprocess.run(base + ["-o", str(tmp_path / "with")], check=True, capture_output=True)
    subprocess.run(base + ["-o", str(tmp_path / "without"), "--no-pedal"], check=True, capture_output=True)
    events = cc64(tmp_path / "with" / "known.mid")
    assert len(events) == 2 * len(expected)
    np.testing.assert_allclose([e[0] for e in events], expected.reshape(-1), atol=2e-3)
    assert cc64(tmp_path / "without" / "known.mid") == []
    assert Transcriber.from_checkpoint(None, backend="torch").transcribe_stream(audio).pedal is None
