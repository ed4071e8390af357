"""User-level: a real (tiny) training run of the pedal head with the pedal of one recording unknown
(masked), fine-tuned from a checkpoint without the head; runs of older checkpoints resume; the
evaluation scores the pedal where it is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transcribe.notefiles import apply_sustain
from transcribe.notes import Notes
from transcribe.pedal import pedal_sidecar, write_pedal

from .conftest import SR, synth, write_tsv
from .test_end_to_end import TINY, run

PEDAL_F1 = 0.3  # press and lift F1 on d_val after the PEDAL_LEARN run (base-rate learning: see base_rate_pedal_scores)


def pedalled_piece(seed: int, seconds: float = 8.0) -> tuple[Notes, np.ndarray]:
    """Short notes under a pedal changed every 1-1.5 s (the sounding notes ring to each lift)."""
    rng = np.random.default_rng(seed)
    on = np.sort(rng.uniform(0.2, seconds - 1.0, 24))
    played = Notes(on, on + 0.15, rng.integers(45, 80, len(on)), rng.integers(50, 110, len(on)))
    changes = np.cumsum(rng.uniform(1.0, 1.5, 10)) - 0.6
    changes = changes[changes < seconds]
    pedal = np.stack([changes[:-1] + 0.05, changes[1:] - 0.03], axis=1)
    return apply_sustain(played, pedal).sorted(), pedal


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three training recordings (one without a pedal sidecar: unknown, masked) and one for validation."""
    root = tmp_path_factory.mktemp("pedal_train")
    for i, name in enumerate(["a_train", "b_train", "c_train", "d_val"]):
        notes, pedal = pedalled_piece(i)
        sf.write(root / f"{name}.wav", synth(notes, seed=i), SR)
        write_tsv(notes, root / f"{name}.tsv")
        if name != "c_train":
            write_pedal(pedal, pedal_sidecar(root / f"{name}.tsv"))
    return root


# The pedal head learns presses and lifts in 300 steps at a high learning rate with its press and
# lift losses weighted up (measured from scratch on this fixture: press and lift F1 0 at step 100,
# 0.53 and 0.53 at step 300; pedal-frame F1 0.86 throughout, which "always down" also gets).
PEDAL_LEARN = ["train.learning_rate=1e-2", "train.loss_weights.pedal_onset=4", "train.loss_weights.pedal_offset=4"]


def common(folder: Path, tmp: Path) -> list[str]:
    return ["transcribe.train", f"data.root={folder}", "data.val_glob=*_val*", f"data.cache_dir={tmp / 'cache'}",
            *TINY, "augment.p=0", "train.loader_workers=0"]


@pytest.fixture(scope="module")
def runs(folder, tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pedal_runs")
    plain, tuned = tmp / "plain", tmp / "tuned"
    run(*common(folder, tmp), f"hydra.run.dir={plain}", "train.max_steps=10", "train.val_every=1000")
    run(*common(folder, tmp), f"hydra.run.dir={tuned}", "model.pedal_head=true", *PEDAL_LEARN, "train.max_steps=300",
        "train.val_every=300", f"train.init_from={plain / 'checkpoints' / 'last.pt'}")
    return {"tmp": tmp, "plain": plain, "tuned": tuned}


def test_fine_tuning_adds_a_fresh_pedal_head_and_trains_it(runs, folder):
    import torch

    log = (runs["tuned"] / "train.log").read_text()
    assert "has no pedal head: the pedal head starts fresh" in log
    assert "sustain pedal known for" in log
    rows = [json.loads(line) for line in (runs["tuned"] / "metrics.jsonl").read_text().splitlines()]
    pedal = [r["loss_pedal"] for r in rows if "loss_pedal" in r]
    assert len(pedal) >= 5 and pedal[-1] < 0.8 * pedal[0], pedal
    val = [r for r in rows if "val_note_f1" in r]
    assert len(val) == 1 and val[0]["step"] == 300
    # the pedal head learned d_val's presses and lifts, which base-rate learning cannot
    base = base_rate_pedal_scores(folder, runs["tuned"] / "checkpoints" / "last.pt")
    for k in ("onset", "offset"):
        assert val[0][f"val_pedal_{k}_f1"] >= max(PEDAL_F1, base[f"pedal_{k}_f1"] + 0.2), (k, val[0], base)
    state = torch.load(runs["tuned"] / "checkpoints" / "last.pt", weights_only=False)
    assert state["config"]["model"]["pedal_head"] is True
    plain = torch.load(runs["plain"] / "checkpoints" / "last.pt", weights_only=False)
    assert not any(k.startswith("pedal_") for k in plain["model_state"])
    assert any(k.startswith("pedal_") for k in state["model_state"])


def base_rate_pedal_scores(folder: Path, checkpoint: Path) -> dict[str, float]:
    """What base-rate learning gets on d_val: pedal and press activations at their shares of the
    frames in the training sidecars, everywhere, decoded as ``checkpoint`` decodes (the pedal
    down throughout: one press at the start, one lift at the end)."""
    from transcribe.checkpoint import Checkpoint, typed_configs
    from transcribe.decode import decode_pedal
    from transcribe.metrics import pedal_metrics
    from transcribe.pedal import read_pedal

    features, decode = typed_configs(Checkpoint(checkpoint).config)
    fps = features.frame_rate
    known = [(read_pedal(pedal_sidecar(folder / f"{n}.tsv")), sf.info(str(folder / f"{n}.wav")).duration)
             for n in ("a_train", "b_train")]
    down = sum(float(np.sum(p[:, 1] - p[:, 0])) for p, _ in known) / sum(d for _, d in known)
    pressed = sum(len(p) for p, _ in known) / sum(d * fps for _, d in known)
    n = int(sf.info(str(folder / "d_val.wav")).duration * fps)
    spans = decode_pedal(np.full((n, 1), down, np.float32), np.full((n, 1), pressed, np.float32), fps, decode)
    return pedal_metrics(read_pedal(pedal_sidecar(folder / "d_val.tsv")), spans)


def test_a_run_from_before_the_pedal_head_resumes(runs, folder):
    """A last.pt whose config has no pedal keys (written before they existed) resumes under the
    default config (no pedal head) instead of being refused as another network."""
    import torch

    from transcribe.checkpoint import save_checkpoint
    from transcribe.features import FeatureConfig
    from transcribe.model import ModelConfig, OnsetsAndFrames

    state = torch.load(runs["plain"] / "checkpoints" / "last.pt", weights_only=False)
    config = {**state["config"], "model": {k: v for k, v in state["config"]["model"].items() if "pedal" not in k}}
    old = runs["tmp"] / "old"
    model = OnsetsAndFrames(FeatureConfig.from_dict(config["features"]).n_bins, ModelConfig.from_dict(config["model"]))
    model.load_state_dict(state["model_state"])
    extra = {k: state[k] for k in ("step", "optimizer_state", "scheduler_state")}
    save_checkpoint(old / "checkpoints" / "last.pt", model, config, **extra)
    proc = run(*common(folder, runs["tmp"]), f"hydra.run.dir={old}", f"train.max_steps={state['step'] + 2}",
               "train.val_every=1000")
    assert "resumed from" in (old / "train.log").read_text(), proc.stderr


def test_eval_scores_the_pedal_where_it_is_known(runs, folder, tmp_path):
    out = tmp_path / "scores.json"
    proc = run("transcribe.evaluate", f"data.root={folder}", "split=all",
               f"checkpoint={runs['tuned'] / 'checkpoints' / 'last.pt'}", f"output_json={out}",
               "pedal_thresholds=[0.3,0.5]", f"hydra.run.dir={tmp_path / 'evalrun'}")
    report = json.loads(out.read_text())
    by_name = {Path(f["file"]).stem: f for f in report["files"]}
    assert "pedal_onset_f1" not in by_name["c_train"]  # unknown pedal: not scored
    for name in ("a_train", "b_train", "d_val"):
        assert {"pedal_frame_f1@0.3", "pedal_onset_f1@0.5"} <= set(by_name[name])
    # the network the run validated last (step 300): transcribe-eval finds d_val's presses and lifts too
    base = base_rate_pedal_scores(folder, runs["tuned"] / "checkpoints" / "last.pt")
    for k in ("onset", "offset"):
        assert by_name["d_val"][f"pedal_{k}_f1"] >= max(PEDAL_F1, base[f"pedal_{k}_f1"] + 0.2), (k, by_name["d_val"])
    assert "pedal_onset_f1" in proc.stdout and "pedal thresholds" in proc.stdout


def test_training_only_the_pedal_head_leaves_the_note_network_as_it_was(runs, folder):
    """``train.train_only=pedal``: the note network (weights and batch-norm statistics) ends the run
    bit for bit as ``init_from`` left it, the pedal head learns, best.pt is chosen by ``select_by``."""
    import torch

    only = runs["tmp"] / "pedal_only"
    init = runs["plain"] / "checkpoints" / "last.pt"
    run(*common(folder, runs["tmp"]), f"hydra.run.dir={only}", "model.pedal_head=true", "train.max_steps=40",
        "train.val_every=20", "train.train_only=pedal", "train.select_by=pedal_frame_f1", f"train.init_from={init}")
    before = torch.load(init, weights_only=False)["model_state"]
    after = torch.load(only / "checkpoints" / "last.pt", weights_only=False)["model_state"]
    note_keys = [k for k in after if not k.startswith("pedal_")]
    assert set(note_keys) == set(before)
    changed = [k for k in note_keys if not torch.equal(after[k], before[k])]
    assert not changed, changed  # running means of batch norm included
    pedal = torch.load(only / "checkpoints" / "best.pt", weights_only=False)
    assert pedal["best_f1"] == pedal["val_metrics"]["pedal_frame_f1"]
    rows = [json.loads(line) for line in (only / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss_pedal"] for r in rows if "loss_pedal" in r]
    assert losses[-1] < losses[0], losses
    # the note losses do not move the network: the same note network, the same note F1 at each validation
    f1 = [r["val_note_f1"] for r in rows if "val_note_f1" in r]
    assert len(f1) == 2 and f1[0] == f1[1]


@pytest.mark.parametrize("args, message", [
    (["train.train_only=notes"], "train.train_only=notes: expected one of none, pedal"),
    (["train.train_only=pedal"], "train.train_only=pedal needs model.pedal_head=true"),
    (["model.pedal_head=true", "train.select_by=pedal_speed"], "train.select_by=pedal_speed: validation has no"),
])
def test_bad_training_choices_are_refused_clearly(runs, folder, args, message, tmp_path):
    proc = run(*common(folder, runs["tmp"]), f"hydra.run.dir={tmp_path / 'refused'}", "train.max_steps=1",
               "train.val_every=1", *args, check=False)
    assert proc.returncode != 0 and message in proc.stderr + proc.stdout, proc.stderr[-2000:]


def test_shipping_a_pedal_model_tunes_its_pedal_thresholds(runs, folder, tmp_path):
    """scripts/ship_model.py on a checkpoint with a pedal head: the pedal thresholds are chosen on
    the tuning files whose pedal is known, the octave suppression with the note thresholds, all
    stored in the shipped checkpoint, and exported."""
    import subprocess
    import sys

    import torch

    out = tmp_path / "shipped" / "model.pt"
    script = Path(__file__).resolve().parents[1] / "scripts" / "ship_model.py"
    proc = subprocess.run([sys.executable, str(script), str(runs["tuned"] / "checkpoints" / "last.pt"),
                           "--data-dir", str(folder), "--tune-files", "4", "--onset", "0.3,0.5", "--frame", "0.3,0.5",
                           "--octave", "0,0.5", "--twelfth", "0,0.25", "--pedal", "0.2,0.5,0.8", "--pedal-onset", "0.5", "--pedal-off",
                           "--chunk-seconds", "20", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "chosen on 3 files with a known pedal" in proc.stdout  # c_train's pedal is unknown
    shipped = torch.load(out, weights_only=False)
    decode = shipped["config"]["decode"]
    assert decode["pedal_threshold"] in (0.2, 0.5, 0.8) and decode["pedal_onset_threshold"] == 0.5
    assert decode["pedal"] is False  # --pedal-off: written only on request
    assert f"pedal_threshold={decode['pedal_threshold']}" in proc.stdout
    assert decode["octave_suppression"] in (0.0, 0.5)  # chosen with the note thresholds
    assert f"octave_suppression={decode['octave_suppression']}" in proc.stdout and "octave 0.50 twelfth 0.25 onset" in proc.stdout
    assert decode["twelfth_suppression"] in (0.0, 0.25) and f"twelfth_suppression={decode['twelfth_suppression']}" in proc.stdout
    assert set(shipped["provenance"]["pedal_tuning_scores"]) >= {"pedal_onset_f1", "pedal_frame_f1"}
    assert (out.parent / "model.onnx").is_file() and (out.parent / "model.onnx.json").is_file()
    # --chunk-seconds: the network runs on 20-s chunks one at a time (the ONNX export carries it, so the
    # torch-free install does too), unless a chunk length is asked for or conf/infer's model_chunking is off
    from transcribe.infer import InferConfig, Transcriber

    assert shipped["config"]["infer"] == {"chunk_seconds": 20.0, "batch_chunks": 1}
    for backend in ("onnx", "torch"):
        t = Transcriber.from_checkpoint(out, backend=backend)
        assert (t.infer.chunk_seconds, t.infer.batch_chunks) == (20.0, 1)
        assert t.chunk_frames == int(20 * t.features.frame_rate)
    assert Transcriber.from_checkpoint(out, chunk_seconds=30).infer.chunk_seconds == 30
    off = InferConfig.default().with_overrides(model_chunking=False)
    assert Transcriber.from_checkpoint(out, infer=off).infer.chunk_seconds == InferConfig.default().chunk_seconds


def test_eval_scores_a_pedal_head_whose_output_is_off_by_default(runs, folder, tmp_path):
    """A checkpoint shipped with decode.pedal false (transcribe writes no CC64 unless asked) still
    has its pedal head scored by transcribe-eval; decode.pedal=false there turns the scoring off."""
    from transcribe.checkpoint import Checkpoint, save_checkpoint

    ckpt = Checkpoint(runs["tuned"] / "checkpoints" / "last.pt")
    off = tmp_path / "off.pt"
    save_checkpoint(off, ckpt.build_model(), {**ckpt.config, "decode": {**ckpt.config["decode"], "pedal": False}})
    scored = {}
    for name, extra in (("default", []), ("off", ["+decode.pedal=false"])):
        out = tmp_path / f"{name}.json"
        run("transcribe.evaluate", f"data.root={folder}", "split=all", f"checkpoint={off}", f"output_json={out}",
            f"hydra.run.dir={tmp_path / name}", *extra)
        scored[name] = json.loads(out.read_text())["mean"]
    assert "pedal_onset_f1" in scored["default"] and "pedal_onset_f1" not in scored["off"]


def test_eval_refuses_key_release_offsets(folder, tmp_path):
    """decode.notes=key (estimated key releases, a --notes choice for scores and DAWs) is not what
    the labels hold; transcribe-eval says so instead of scoring it as offset errors."""
    proc = run("transcribe.evaluate", f"data.root={folder}", "split=all", "+decode.notes=key",
               f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 1 and "decode.notes=key cannot be scored" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "mean over" not in proc.stdout


def test_a_narrower_checkpoint_is_widened_without_changing_what_it_computes(runs, folder):
    """``train.init_from`` a narrower network (:mod:`transcribe.widen`): a real run with wider
    model sizes starts from it. With only the pedal head learning, the note network that the run
    saves is the widened init itself, so its note outputs must equal the narrow checkpoint's."""
    import torch

    from transcribe.checkpoint import Checkpoint

    wide = runs["tmp"] / "wide"
    sizes = {"model.conv_channels": "[6,6,12]", "model.frontend_size": "48", "model.lstm_hidden": "24"}
    args = [a for a in common(folder, runs["tmp"]) if a.split("=")[0] not in sizes]
    init = runs["tuned"] / "checkpoints" / "last.pt"
    run(*args, *(f"{k}={v}" for k, v in sizes.items()), f"hydra.run.dir={wide}", "model.pedal_head=true",
        "train.max_steps=4", "train.val_every=1000", "train.train_only=pedal", f"train.init_from={init}")
    assert "widening" in (wide / "train.log").read_text()
    narrow, widened = Checkpoint(init).build_model().eval(), Checkpoint(wide / "checkpoints" / "last.pt").build_model().eval()
    assert (widened.cfg.lstm_hidden, widened.cfg.frontend_size, tuple(widened.cfg.conv_channels)) == (24, 48, (6, 6, 12))
    assert sum(p.numel() for p in widened.parameters()) > 1.5 * sum(p.numel() for p in narrow.parameters())
    x = torch.randn(2, 150, narrow.n_bins)
    with torch.no_grad():
        a, b = narrow(x), widened(x)
    for head in ("onset", "offset", "frame", "velocity"):
        assert torch.allclose(a[head], b[head], atol=1e-5), head
    assert not torch.allclose(a["pedal"], b["pedal"], atol=1e-5)  # the head that trained did change
