"""scripts/robustness_eval.py: the level conditions of issue #12 (gain x0.01 and x30, clipped)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from .conftest import load_script


def _tone(seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_gain_conditions_scale_and_clip():
    rb = load_script("robustness_eval")
    assert rb.CONDITIONS["gain x0.01"] == ("gain x0.01",) and rb.CONDITIONS["gain x30"] == ("gain x30",)
    y = _tone()
    quiet = rb.degrade(y, rb.CONDITIONS["gain x0.01"], seed=0)
    np.testing.assert_allclose(quiet, y * 0.01, rtol=1e-6, atol=0)
    loud = rb.degrade(y, rb.CONDITIONS["gain x30"], seed=0)
    assert loud.dtype == np.float32 and loud.shape == y.shape
    assert np.abs(loud).max() == 1.0
    small = np.abs(y) < 1 / 30
    np.testing.assert_allclose(loud[small], y[small] * 30, rtol=1e-6)  # below full scale: only scaled
    np.testing.assert_array_equal(loud[~small], np.sign(y[~small]))  # above it: clipped
    assert np.mean(~small) > 0.9  # a 0.5 sine at x30 is clipped nearly everywhere


def test_gain_files_are_written_clipped_and_quiet(tmp_path, monkeypatch):
    rb = load_script("robustness_eval")
    monkeypatch.setattr(rb, "CONDITIONS", {k: rb.CONDITIONS[k] for k in ("clean", "gain x0.01", "gain x30")})
    labels = tmp_path / "piece.tsv"
    labels.write_text("onset\toffset\tnote\tvelocity\n0.1\t0.5\t69\t64\n")
    y = _tone()
    rb.write_conditions("piece", y, labels, tmp_path / "out")
    read = {c: sf.read(tmp_path / "out" / c / "piece.flac", dtype="float32")[0] for c in rb.CONDITIONS}
    assert all((tmp_path / "out" / c / "piece.tsv").is_file() for c in rb.CONDITIONS)
    np.testing.assert_allclose(read["clean"], y, atol=1 / 32768)
    np.testing.assert_allclose(read["gain x0.01"], y * 0.01, atol=1 / 32768)
    assert abs(np.abs(read["gain x30"]).max() - 0.95) < 1e-3  # clipped at full scale, written at 0.95
    assert np.mean(np.isclose(np.abs(read["gain x30"]), 0.95, atol=1e-3)) > 0.9


def test_an_unknown_effect_is_an_error():
    with pytest.raises(ValueError, match="gain x3"):
        load_script("robustness_eval").degrade(_tone(), ("gain x3",), seed=0)


def test_real_only_builds_no_render(tmp_path, monkeypatch):
    """--real-only (build(render=False)): the real recording's conditions are written, no SoundFont render."""
    rb = load_script("robustness_eval")
    monkeypatch.setattr(rb, "CONDITIONS", {k: rb.CONDITIONS[k] for k in ("clean", "gain x30")})
    maps = tmp_path / "maps"
    maps.mkdir()
    sf.write(maps / "MAPS_MUS-x_SptkBGCl.flac", _tone(), 16000)
    (maps / "MAPS_MUS-x_SptkBGCl.tsv").write_text("onset\toffset\tnote\tvelocity\n0.1\t0.5\t69\t64\n")
    out = tmp_path / "out"
    assert rb.build(maps, "*_SptkBGCl*", "musescore-mellow", out, render=False) == ["real"]
    assert sorted(p.name for p in (out / "real").iterdir()) == ["clean", "gain x30"]
    assert (out / "real" / "gain x30" / "MAPS_MUS-x_SptkBGCl.flac").is_file() and not (out / "render").exists()
