"""Every entry config composes from the shared groups, and every group turns into the typed
config the code uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from transcribe.config import compose
from transcribe.data.pairs import eval_pairs
from transcribe.decode import DecodeConfig
from transcribe.features import FeatureConfig
from transcribe.infer import InferConfig
from transcribe.model import ModelConfig, OnsetsAndFrames
from transcribe.render.synth import pianos_from_cfg

from .conftest import SR, random_notes, synth, write_tsv

ENTRY_CONFIGS = ("train", "evaluate", "render")


@pytest.mark.parametrize("name", ENTRY_CONFIGS)
def test_entry_config_composes_and_resolves(name):
    cfg = compose(name)
    assert cfg.paths.maps == "../shared/data/maps"  # one paths group, interpolated everywhere
    if name == "render":
        assert cfg.output_dir == cfg.paths.renders and cfg.sources.maps.folder == f"{cfg.paths.maps}/labels"
        assert set(pianos_from_cfg(cfg)) >= {"fluidr3-grand", "musescore-grand"}
        return
    assert InferConfig.from_dict(cfg.infer) == InferConfig.default()
    assert cfg.data.root == cfg.paths.maps and cfg.data.cache_dir == cfg.paths.features_cache
    if name == "train":
        features = FeatureConfig.from_dict(cfg.features)
        model = OnsetsAndFrames(features.n_bins, ModelConfig.from_dict(cfg.model))
        assert sum(p.numel() for p in model.parameters()) > 0
        DecodeConfig.from_dict(cfg.decode)
        assert 0 < cfg.augment.p <= 1 and cfg.train.loader_workers == 2


@pytest.mark.parametrize("data", ["maps", "maestro", "pairs"])
def test_every_data_config_has_the_same_keys(data):
    keys = set(compose("train", [f"data={data}", "data.root=/x"]).data)
    assert keys == set(compose("train").data)


def test_experiment_bundles_overrides():
    cfg = compose("train", ["experiment=maps_renders"])
    assert list(cfg.data.extra_train_roots) == [cfg.paths.renders]
    assert cfg.data.val_glob == "*_SptkBGCl*"


def test_infer_overrides_are_checked():
    base = InferConfig.default()
    assert base.with_overrides(backend="torch", threads=None).backend == "torch"
    assert base.with_overrides(threads=None) == base
    with pytest.raises(ValueError, match="chunk_secs"):
        base.with_overrides(chunk_secs=3)


def test_eval_splits_of_a_data_config(tmp_path):
    for stem in ("a_PianoA", "b_Held", "c_Held"):
        notes = random_notes(len(stem), seconds=2.0, n=3)
        import soundfile as sf

        sf.write(tmp_path / f"{stem}.wav", synth(notes), SR)
        write_tsv(notes, tmp_path / f"{stem}.tsv")
    data = compose("evaluate", [f"data.root={tmp_path}", "data.val_glob=*_Held*"]).data
    assert [a.name for a, _ in eval_pairs(data, "validation")] == ["b_Held.wav", "c_Held.wav"]
    assert len(eval_pairs(data, "all")) == 3
    assert [a.name for a, _ in eval_pairs(data, "all", glob="c_*")] == ["c_Held.wav"]
    with pytest.raises(ValueError, match="split table"):
        eval_pairs(data, "test")


def test_print_config_of_every_command():
    """`--cfg job` prints the composed config (what a run can be repeated from)."""
    for module in ("transcribe.train", "transcribe.evaluate", "transcribe.render"):
        proc = subprocess.run([sys.executable, "-m", module, "--cfg", "job"], capture_output=True, text=True,
                              timeout=120, cwd=Path(__file__).parents[1])
        assert proc.returncode == 0, proc.stderr
        assert "paths:" in proc.stdout


def test_public_api_is_lazy_and_works(tmp_path, scale_notes):
    import soundfile as sf

    code = ("import sys, transcribe; assert 'torch' not in sys.modules and 'transcribe.infer' not in sys.modules;"
            "from transcribe import Transcriber, transcribe_file; print(Transcriber.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "transcribe.infer", proc.stderr
    from transcribe import transcribe_file

    path = tmp_path / "scale.wav"
    sf.write(path, synth(scale_notes), SR)
    assert len(transcribe_file(path)) == len(transcribe_file(path, backend="torch")) > 0


def test_extra_validation_folders_are_interleaved(tmp_path):
    import soundfile as sf

    from transcribe.data.pairs import dataset_splits

    for folder, stems in (("main", ["a_Piano", "b_Held", "c_Held"]), ("heldout", ["x", "y"])):
        (tmp_path / folder).mkdir()
        for stem in stems:
            notes = random_notes(len(stem), seconds=2.0, n=3)
            sf.write(tmp_path / folder / f"{stem}.wav", synth(notes), SR)
            write_tsv(notes, tmp_path / folder / f"{stem}.tsv")
    data = compose("train", [f"data.root={tmp_path / 'main'}", "data.val_glob=*_Held*",
                             f"data.extra_val_roots=[{tmp_path / 'heldout'}]"]).data
    train, val = dataset_splits(data)
    assert [a.name for a, _ in train] == ["a_Piano.wav"]
    assert [a.name for a, _ in val] == ["b_Held.wav", "x.wav", "c_Held.wav", "y.wav"]
    cfg = compose("train", ["experiment=sampled"])
    assert list(cfg.data.extra_val_roots) == [cfg.paths.renders_heldout]


def test_api_on_an_array_with_its_rate_equals_the_file(tmp_path, scale_notes):
    """`Transcriber.transcribe(audio, sample_rate)`: 44.1 kHz stereo in memory gives the notes the
    same audio gives as a file; a wrongly shaped array is a clear error."""
    import numpy as np
    import soundfile as sf
    import soxr

    from transcribe import Transcriber

    mono16 = synth(scale_notes)
    y = soxr.resample(mono16, SR, 44100)
    stereo = np.stack([y, 0.5 * y], axis=1).astype(np.float32)
    path = tmp_path / "stereo44.flac"
    sf.write(path, stereo, 44100, subtype="PCM_24")
    tr = Transcriber.from_checkpoint()
    a, b = tr.transcribe(stereo, 44100), tr.transcribe_file(path)
    assert len(a) >= len(scale_notes) and a.pitches.tolist() == b.pitches.tolist()
    np.testing.assert_allclose(a.onsets, b.onsets, atol=1.5 / tr.features.frame_rate)
    with pytest.raises(ValueError, match="shape"):
        tr.transcribe(np.zeros((2, 2, 2), np.float32), 44100)
