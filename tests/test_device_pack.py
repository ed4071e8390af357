"""scripts/pack_device_data.py: the training data that travels to a lent GPU machine. A seeded
subset of labelled renders as Opus, their labels and pedal sidecars (only those of the files
packed), a prefix of the room bank; a second pack leaves out what an earlier one holds."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf

from transcribe.config import compose
from transcribe.data.pairs import find_pairs
from transcribe.data.rooms import bank_path

from .conftest import SR, random_notes, synth, write_tsv

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pack_device_data.py"
SECONDS = 3.0


def renders(root: Path, n: int) -> dict[str, Path]:
    """``n`` labelled renders in the renders' layout (performance set / preset / piece); every
    other one has a pedal sidecar. Returns the stem -> label path."""
    labels = {}
    for i in range(n):
        folder = root / "asap" / ("pianoA" if i % 2 else "pianoB")
        folder.mkdir(parents=True, exist_ok=True)
        notes = random_notes(i, seconds=SECONDS - 0.5, n=8)
        y = np.zeros(int(SECONDS * SR), dtype=np.float32)
        music = synth(notes, seed=i, tail=0.5)[: len(y)]
        y[: len(music)] = music
        sf.write(folder / f"piece{i}.flac", y, SR)
        write_tsv(notes, folder / f"piece{i}.tsv")
        if i % 2 == 0:
            (folder / f"piece{i}.pedal.tsv").write_text("onset\toffset\n0.5\t1.5\n")
        labels[f"piece{i}"] = folder / f"piece{i}.tsv"
    return labels


def pack(out: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--jobs", "1", *args],
                          capture_output=True, text=True, timeout=300, cwd=out.parent)  # no room bank there
    assert done.returncode == 0, done.stderr
    return json.loads((out / "pack.json").read_text())


def test_pack_holds_opus_audio_with_its_labels_and_a_second_pack_the_rest(tmp_path):
    root = tmp_path / "renders"
    labels = renders(root, 6)
    first = pack(tmp_path / "pack1", "--roots", str(root), "--max-mb", "0.000001", "--seed", "3")
    oggs = sorted((tmp_path / "pack1" / "train").rglob("*.ogg"))
    # One batch (4 files with one job) passes the tiny budget: the pack stops there.
    assert first["files"] == len(oggs) == 4
    assert abs(first["hours"] - 4 * SECONDS / 3600) < 1e-3
    for ogg in oggs:
        y, sr = sf.read(ogg)
        source = root / ogg.relative_to(tmp_path / "pack1" / "train").with_suffix(".flac")
        assert ogg.read_bytes()[:4] == b"OggS" and abs(len(y) / sr - SECONDS) < 0.05
        ref, _ = sf.read(source)
        n = min(len(ref), len(y) * SR // sr)
        assert sr == SR and np.corrcoef(ref[:n], y[:n])[0, 1] > 0.9  # the same music, lossy
    with tarfile.open(tmp_path / "pack1" / "labels.tar.gz") as tar:
        names = sorted(tar.getnames())
        tar.extractall(tmp_path / "pack1" / "train", filter="data")
    stems = sorted(o.stem for o in oggs)
    expected = sorted([str(o.relative_to(tmp_path / "pack1" / "train").with_suffix(".tsv")) for o in oggs]
                      + [str(o.relative_to(tmp_path / "pack1" / "train").with_suffix(".pedal.tsv"))
                         for o in oggs if int(o.stem[5:]) % 2 == 0])
    assert names == expected  # only the packed files' labels, pedal sidecars where they exist
    for ogg in oggs:
        label = ogg.with_suffix(".tsv")
        assert label.read_bytes() == labels[ogg.stem].read_bytes()
    assert sorted(a.stem for a, _ in find_pairs(tmp_path / "pack1" / "train")) == stems  # trainable as is

    second = pack(tmp_path / "pack2", "--roots", str(root), "--max-mb", "100", "--exclude", str(tmp_path / "pack1"))
    rest = sorted(o.stem for o in (tmp_path / "pack2" / "train").rglob("*.ogg"))
    assert second["files"] == 2 and sorted(rest + stems) == sorted(labels)
    assert not (tmp_path / "pack2" / "rooms").exists()  # no room bank simulated here: none carried


def test_pack_carries_the_first_rooms_of_the_bank(tmp_path):
    root = tmp_path / "renders"
    renders(root, 1)
    irs = {f"ir{i}": np.random.default_rng(i).standard_normal(100 + i).astype(np.float32) for i in range(5)}
    np.savez(tmp_path / "bank.npz", **irs)
    pack(tmp_path / "pack", "--roots", str(root), "--room-bank", str(tmp_path / "bank.npz"), "--rooms", "2")
    room = compose("train").augment.room
    room.bank_size = 2  # the device trains with augment.room.bank_size=2 and finds the file by its name
    with np.load(tmp_path / "pack" / "rooms" / bank_path(room, SR).name) as z:
        assert sorted(z.files) == ["ir0", "ir1"]
        assert all(np.array_equal(z[k], irs[k]) for k in z.files)


def test_maps_share_holds_only_the_training_pianos(tmp_path):
    """``--maps-mb``: MAPS's training side goes under ``maps/`` beside the renders, with its labels
    (from the MAPS ``labels/`` folder); the held-out piano (``val_glob`` of conf/data/maps) never."""
    maps = tmp_path / "maps"
    (maps / "audio").mkdir(parents=True)
    (maps / "labels").mkdir()
    for i, piano in enumerate(["AkPnBcht", "SptkBGCl", "AkPnStgb", "SptkBGCl"]):
        notes = random_notes(10 + i, seconds=SECONDS - 0.5, n=8)
        sf.write(maps / "audio" / f"MAPS_MUS-p{i}_{piano}.flac", synth(notes, seed=i), SR)
        write_tsv(notes, maps / "labels" / f"MAPS_MUS-p{i}_{piano}.tsv")
    root = tmp_path / "renders"
    renders(root, 2)
    info = pack(tmp_path / "pack", "--roots", str(root), "--maps", str(maps), "--maps-mb", "100")
    train = tmp_path / "pack" / "train"
    with tarfile.open(tmp_path / "pack" / "labels.tar.gz") as tar:
        tar.extractall(train, filter="data")
    found = sorted(str(a.relative_to(train)) for a, _ in find_pairs(train))
    assert found == ["asap/pianoA/piece1.ogg", "asap/pianoB/piece0.ogg",
                     "maps/audio/MAPS_MUS-p0_AkPnBcht.ogg", "maps/audio/MAPS_MUS-p2_AkPnStgb.ogg"]
    assert info["files_by_group"] == {"maps": 2, "renders": 2}
    label = train / "maps" / "audio" / "MAPS_MUS-p2_AkPnStgb.tsv"
    assert label.read_bytes() == (maps / "labels" / "MAPS_MUS-p2_AkPnStgb.tsv").read_bytes()
