"""scripts/asap_render_crops.py: the openings of ASAP performances' renders, named as the renders are."""

import numpy as np
import soundfile as sf

from .conftest import load_script


def test_the_opening_of_each_listed_performances_render(tmp_path, capsys):
    crops = load_script("asap_render_crops")
    asap, renders, out = tmp_path / "asap", tmp_path / "renders", tmp_path / "crops"
    (asap / "Bach" / "Fugue").mkdir(parents=True)
    (renders / "piano-a").mkdir(parents=True)
    rate = 16000
    tone = np.sin(2 * np.pi * 440 * np.arange(5 * rate) / rate).astype(np.float32) * 0.1
    sf.write(renders / "piano-a" / "Bach_Fugue_Ko04M.flac", tone, rate)
    listed = tmp_path / "list.txt"
    listed.write_text(f"{asap / 'Bach' / 'Fugue' / 'Ko04M.mid'}\n{asap / 'Bach' / 'Fugue' / 'Missing01.mid'}\n")
    assert crops.main(["--asap", str(asap), "--renders", str(renders), "--files", str(listed), "--seconds", "2",
                       "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["Bach_Fugue_Ko04M.flac"]
    audio, sr = sf.read(out / "Bach_Fugue_Ko04M.flac", dtype="float32")
    assert sr == rate and len(audio) == 2 * rate
    assert np.allclose(audio, tone[: 2 * rate], atol=1e-4)
    captured = capsys.readouterr()
    assert "Missing01.mid: no render" in captured.err and "1 of 2 performances" in captured.out
