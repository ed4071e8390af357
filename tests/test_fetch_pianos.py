"""scripts/fetch_pianos.py: extracting the kept files of a repository from a git snapshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import load_script


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_snapshot_extraction_keeps_nested_performances_and_drops_the_rest(tmp_path):
    """The ASAP layout: performances nested two or three folders deep, beside score MIDI,
    MusicXML and annotations. Only performances, metadata and licence files are kept, and the
    score MIDI is removed (a snapshot's git has no ``:(glob)`` support in ``ls-tree``: the
    performances were silently left out before)."""
    fp = load_script("fetch_pianos")
    work = tmp_path / "work"
    files = {
        "Bach/Fugue/bwv_846/Shi05M.mid": b"MThd-a",
        "Bach/Fugue/bwv_846/midi_score.mid": b"MThd-score",
        "Bach/Fugue/bwv_846/xml_score.musicxml": b"<score/>",
        "Bach/Fugue/bwv_846/Shi05M_annotations.txt": b"0.0\tdb",
        "Chopin/Ballade_1/Lee01M.mid": b"MThd-b",
        "metadata.csv": b"composer,title\n",
        "README.md": b"# asap\n",
    }
    for rel, data in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
    _git(tmp_path, "init", "-q", str(work))
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "snapshot")
    snapshots = tmp_path / "mirror"
    (snapshots / "fosfrancesco+asap-dataset").mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(snapshots / "fosfrancesco+asap-dataset" / "repo")],
                   check=True, capture_output=True)

    data = tmp_path / "data"
    repo, paths = fp.REPOS["midi/asap"]
    fp.fetch_repo(data, "midi/asap", repo, paths, snapshots)
    got = sorted(str(p.relative_to(data / "midi/asap")) for p in (data / "midi/asap").rglob("*") if p.is_file())
    assert got == ["Bach/Fugue/bwv_846/Shi05M.mid", "Chopin/Ballade_1/Lee01M.mid", "README.md", "metadata.csv"]
    assert (data / "midi/asap/Chopin/Ballade_1/Lee01M.mid").read_bytes() == b"MThd-b"
    # a second run skips what exists
    (data / "midi/asap/README.md").write_text("kept")
    fp.fetch_repo(data, "midi/asap", repo, paths, snapshots)
    assert (data / "midi/asap/README.md").read_text() == "kept"
