"""MAESTRO-layout data sets and split tables, sustain-pedal labels from MIDI, and crops read
from the memory-mapped feature cache."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir

from transcribe.config import conf_dir
from transcribe.data.cache import FeatureCache
from transcribe.data.dataset import CropDataset
from transcribe.data.pairs import dataset_splits, pairs_from_table
from transcribe.features import FeatureConfig
from transcribe.targets import notes_to_rolls
from transcribe.notefiles import read_labels, read_midi, write_midi
from transcribe.notes import MIN_PITCH

from .conftest import SR, PEDAL_EVENTS, pedal_notes, random_notes, synth, write_maestro, write_pedal_midi

SPLITS = {"pedal_piece": "train", "second": "train", "held_out": "validation", "exam": "test"}


def data_cfg(root: Path, cache: Path, *overrides: str):
    with initialize_config_dir(conf_dir(), version_base="1.3"):
        return compose("train", overrides=["data=maestro", f"data.root={root}", f"data.cache_dir={cache}",
                                           *overrides]).data


@pytest.fixture(scope="module")
def maestro(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("maestro-v3.0.0")
    return root, write_maestro(root, SPLITS)


def test_midi_labels_extend_offsets_by_the_sustain_pedal(tmp_path):
    path = tmp_path / "pedal.midi"
    write_pedal_midi(pedal_notes(sustained=False), PEDAL_EVENTS, path)
    expected = pedal_notes(sustained=True)
    for notes in (read_labels(path), read_midi(path)):
        assert np.array_equal(notes.pitches, expected.pitches)
        np.testing.assert_allclose(notes.onsets, expected.onsets, atol=1e-6)
        np.testing.assert_allclose(notes.offsets, expected.offsets, atol=1e-6)
    raw = read_midi(path, sustain=False)  # the key releases, as written
    np.testing.assert_allclose(raw.offsets, pedal_notes(sustained=False).offsets, atol=1e-6)


def test_maestro_split_selection_csv_and_json(maestro, tmp_path):
    root, files = maestro
    cfg = data_cfg(root, tmp_path / "cache")
    train, val = dataset_splits(cfg)
    assert train == [files["pedal_piece"], files["second"]]
    assert val == [files["held_out"]]
    assert pairs_from_table(root, "maestro-v3.0.0.csv", "test") == [files["exam"]]  # never trained on

    json_root = tmp_path / "json"
    json_files = write_maestro(json_root, SPLITS, fmt="json")
    train, val = dataset_splits(data_cfg(json_root, tmp_path / "cache", "data.metadata=maestro-v3.0.0.json",
                                         "data.train_split=[train,test]"))
    assert train == [json_files["pedal_piece"], json_files["second"], json_files["exam"]]
    assert val == [json_files["held_out"]]


def test_pedal_extended_labels_reach_the_training_targets(maestro, tmp_path):
    root, files = maestro
    cfg = data_cfg(root, tmp_path / "cache")
    features = FeatureConfig()
    train, _ = dataset_splits(cfg)
    data = CropDataset(train, features, FeatureCache(cfg.cache_dir, features, mmap=cfg.mmap))
    rec = data.recordings[0]
    assert rec.audio == files["pedal_piece"][0]
    expected = pedal_notes(sustained=True)
    np.testing.assert_allclose(rec.notes.offsets, expected.offsets, atol=1e-6)
    # key 60 is struck at 0.5 s and released at 1.5 s under the pedal, lifted at 3.0 s
    fps = features.frame_rate
    feats, targets = data.crop(0, 0, rec.n_frames)
    frames = np.flatnonzero(targets["frame"][:, 60 - MIN_PITCH])
    assert frames[0] == round(0.5 * fps) and frames[-1] == round(3.0 * fps) - 1
    assert np.flatnonzero(targets["offset"][:, 60 - MIN_PITCH]).tolist() == [round(3.0 * fps)]
    # key 67: the sustained note ends where the key is struck again (2.0 s), the second at 3.0 s
    assert np.flatnonzero(targets["onset"][:, 67 - MIN_PITCH]).tolist() == [round(1.2 * fps), round(2.0 * fps)]
    assert np.flatnonzero(targets["offset"][:, 67 - MIN_PITCH]).tolist() == [round(2.0 * fps), round(3.0 * fps)]


def test_crops_read_from_memory_mapped_cache_match_full_rolls(maestro, tmp_path):
    root, _ = maestro
    cfg = data_cfg(root, tmp_path / "cache")
    features = FeatureConfig()
    train, _ = dataset_splits(cfg)
    mapped = CropDataset(train, features, FeatureCache(cfg.cache_dir, features, mmap=True))
    loaded = CropDataset(train, features, FeatureCache(cfg.cache_dir, features, mmap=False))
    assert isinstance(mapped.recordings[0].features, np.memmap) and mapped.recordings[0].in_memory is None
    assert not isinstance(loaded.recordings[0].features, np.memmap)
    for i, rec in enumerate(mapped.recordings):
        full = notes_to_rolls(rec.notes, rec.n_frames, features.frame_rate)
        whole = np.asarray(loaded.recordings[i].features, dtype=np.float32)
        for start in range(0, rec.n_frames, 13):
            a_feats, a_targets = mapped.crop(i, start, 40)
            b_feats, b_targets = loaded.crop(i, start, 40)
            n = min(40, rec.n_frames - start)
            assert np.array_equal(a_feats, b_feats) and np.array_equal(a_feats[:n], whole[start : start + n])
            assert (a_feats[n:] == np.float32(np.log(features.log_floor))).all()  # padding past the end
            for k in full:
                assert np.array_equal(a_targets[k], b_targets[k])
                assert np.array_equal(a_targets[k][:n], full[k][start : start + n].astype(np.float16)), (k, start)
                assert not a_targets[k][n:].any()


def test_folder_of_pairs_with_split_file(tmp_path):
    rows = [("a.wav", "a.mid", "train"), ("b.wav", "b.mid", "validation"), ("c.wav", "c.mid", "train")]
    for audio, midi, _ in rows:
        notes = random_notes(len(audio))
        sf.write(tmp_path / audio, synth(notes), SR)
        write_midi(notes, tmp_path / midi)
    with open(tmp_path / "splits.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audio", "midi", "split"])
        w.writerows(rows)
    with initialize_config_dir(conf_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["data=pairs", f"data.root={tmp_path}"]).data
    train, val = dataset_splits(cfg)
    assert train == [(tmp_path / "a.wav", tmp_path / "a.mid"), (tmp_path / "c.wav", tmp_path / "c.mid")]
    assert val == [(tmp_path / "b.wav", tmp_path / "b.mid")]

    (tmp_path / "c.wav").unlink()  # a listed file that is missing is an error, not a smaller data set
    with pytest.raises(FileNotFoundError, match="missing"):
        dataset_splits(cfg)


def test_evaluate_on_the_test_split_of_a_split_table(maestro):
    from transcribe.evaluate import evaluate_folder
    from transcribe.infer import Transcriber

    root, files = maestro
    report = evaluate_folder(Transcriber.from_checkpoint(), root, progress=lambda _: None,
                             metadata="maestro-v3.0.0.csv", split="test")
    assert [row["file"] for row in report["files"]] == [str(files["exam"][0])]
    # the exam's 10 labelled notes, read from its MIDI, nearly all found by the shipped model (measured on these
    # synthetic tones: stage 7 wrote 13 notes, note F1 0.870, frame F1 0.916; stage 8 12 notes, all 10 found,
    # 0.909, 0.857; stage 9 12 notes, 9 found, 0.818, 0.828)
    row = report["files"][0]
    assert row["n_ref"] == 10 and row["note_recall"] >= 0.8, row
    assert row["note_f1"] >= 0.75 and row["frame_f1"] >= 0.8, row
    assert report["mean"]["note_f1"] == row["note_f1"]
