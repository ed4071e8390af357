"""scripts/make_room_sets.py: a labelled folder through a fixed bank of rooms, labels kept aligned."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from omegaconf import OmegaConf

from .conftest import SR, load_script, random_notes, synth, write_tsv


def test_room_sets_keep_labels_level_and_timing(tmp_path):
    mod = load_script("make_room_sets")
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "piano").mkdir(parents=True)
    clicks = np.zeros(3 * SR, dtype=np.float32)
    clicks[[SR // 2, 2 * SR]] = 0.5  # two clicks: where they are must not move
    sf.write(src / "piano" / "clicks.wav", clicks, SR)
    write_tsv(random_notes(0, seconds=2.0, n=3), src / "piano" / "clicks.tsv")
    notes = random_notes(1, seconds=3.0, n=6)
    sf.write(src / "piano" / "tune.wav", synth(notes), SR)
    write_tsv(notes, src / "piano" / "tune.tsv")
    (src / "piano" / "tune.pedal.tsv").write_text("0.5\t1.5\n")
    cfg = OmegaConf.merge(OmegaConf.load(mod.ROOT / "conf" / "validation_rooms.yaml"),
                          {"bank_size": 2, "n_rays": 300, "cache_dir": str(tmp_path / "rooms"),
                           "length_m": [6, 8], "width_m": [5, 6], "height_m": [3, 4], "distance_m": [2.5, 3]})
    rows = mod.make_set(src, out, None, cfg)
    assert sorted(r["file"] for r in rows) == ["piano/clicks.flac", "piano/tune.flac"]
    assert (out / "piano" / "tune.tsv").read_text() == (src / "piano" / "tune.tsv").read_text()
    assert (out / "piano" / "tune.pedal.tsv").read_text() == "0.5\t1.5\n"
    dry, wet = sf.read(src / "piano" / "tune.wav")[0], sf.read(out / "piano" / "tune.flac")[0]
    assert len(wet) == len(dry) and not np.allclose(wet, dry, atol=1e-3)  # a room, not a copy
    assert abs(20 * np.log10(np.sqrt(np.mean(wet ** 2)) / np.sqrt(np.mean(dry ** 2)))) < 0.5  # level kept
    w = np.abs(sf.read(out / "piano" / "clicks.flac")[0])
    for t in (SR // 2, 2 * SR):  # each click's direct sound is where the click was (within 1 ms)
        first = t - 40 + int(np.argmax(w[t - 40: t + 400] > 0.3 * w[t - 40: t + 400].max()))
        assert abs(first - t) <= 16
    before = (out / "piano" / "tune.flac").stat().st_mtime_ns
    mod.make_set(src, out, None, cfg)  # a second run keeps what exists
    assert (out / "piano" / "tune.flac").stat().st_mtime_ns == before
