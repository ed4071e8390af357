"""Where the notes to render come from (``sources`` in ``conf/render.yaml``): folders of label
files, music21's corpus (:mod:`.scores`), generated material (:mod:`.generate`); and which
pianos play each piece."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..notefiles import LABEL_EXTENSIONS, read_labels, read_midi_pedal
from ..pedal import is_sidecar
from .prepare import Piece
from .synth import Piano


def iter_sources(cfg) -> Iterator[tuple[str, str, object, str]]:
    """(source name, stem, a callable returning the :class:`~.prepare.Piece` (notes and pedal), where
    they come from) for every enabled source of
    ``cfg.sources`` (``maps``/``midi``: folders of label files; ``music21``: the corpus;
    ``generated``: :mod:`transcribe.render.generate`)."""
    for name, src in cfg.sources.items():
        if not src.get("enabled", False):
            continue
        kind = src.get("kind", name)
        if kind == "files":
            for stem, path in label_files(name, src):
                if held_out_side(src, path) == bool(cfg.held_out):
                    yield name, stem, (lambda p=path: label_piece(p)), str(path)
        elif cfg.held_out:
            continue  # only performances of a validation split are rendered through held-out pianos
        elif kind == "music21":
            try:
                import music21  # noqa: F401
            except ImportError as err:
                raise ImportError(f"source {name}: needs music21 (pip install music21), "
                                  f"or sources.{name}.enabled=false") from err
            from .scores import corpus_pieces

            for stem, make in corpus_pieces(src):
                yield name, stem, make, f"music21 corpus: {stem}"
        elif kind == "generated":
            from .generate import generate

            for i in range(int(src.count)):
                yield (name, f"gen_{int(src.seed):04d}_{i:04d}",
                       (lambda i=i: generate(int(src.seed) * 100003 + i, src)), "generated")
        else:
            raise ValueError(f"source {name}: unknown kind {kind!r} (files, music21, generated)")


def label_piece(path: Path) -> Piece:
    """The piece of a label file: a MIDI file's notes (pedal applied to the offsets) and its CC64
    spans; a ``.tsv``'s notes with the pedal unknown (its offsets already hold it)."""
    if path.suffix.lower() in (".mid", ".midi"):
        return Piece(*read_midi_pedal(path))
    return Piece(read_labels(path), None)


def label_files(name: str, src) -> list[tuple[str, Path]]:
    """(stem, path) of the label files of a ``files`` source: every ``.tsv``/``.mid``/``.midi``
    under ``src.folder`` except names matching ``src.exclude``, byte-identical files once
    (``dedupe``), performances of the test set's works never (``test_pieces``, see
    :mod:`transcribe.render.filter`), at most ``limit``. The stem is the path under the folder
    with ``/`` as ``_`` (``Bach/Fugue/bwv_846/Shi05M.mid`` → ``Bach_Fugue_bwv_846_Shi05M``), so
    performances of different folders never share a name."""
    folder = Path(src.folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"source {name}: {folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in LABEL_EXTENSIONS and not is_sidecar(p))
    files = [p for p in files if not any(fnmatch.fnmatch(p.name, g) for g in src.get("exclude") or [])]
    if src.get("dedupe", True):  # MAPS has byte-identical label files of one piece per piano
        seen: set[str] = set()
        unique = []
        for p in files:
            digest = hashlib.sha1(p.read_bytes()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                unique.append(p)
        files = unique
    if src.get("test_pieces"):
        dropped = test_piece_performances(folder, files, src)
        files = [p for p in files if p not in dropped]
    return [(render_stem(p, folder), p) for p in files[: src.get("limit")]]


def render_stem(path: Path, folder: Path) -> str:
    """The stem a render of the label file ``path`` of a source rooted at ``folder`` gets: its
    path under the folder, parts joined by ``_`` (``Bach/Fugue/bwv_860/Ko04M.mid`` →
    ``Bach_Fugue_bwv_860_Ko04M``)."""
    return "_".join(Path(path).relative_to(folder).with_suffix("").parts)


def test_piece_performances(folder: Path, files: list[Path], src) -> set[Path]:
    """The files of a source that are (or may be) performances of a work of the test set
    (``src.test_pieces``, the CSV of ``../shared/data/test_pieces.csv``): with ``src.metadata``
    (ASAP's ``metadata.csv``, relative to the folder) by its composer and title, and every file
    the table does not list; otherwise by the file name (GiantMIDI-Piano's naming)."""
    from .filter import check, check_asap_row, check_giantmidi, load_test_pieces

    pieces = load_test_pieces(src.test_pieces)
    if not src.get("metadata"):
        return {p for p in files if check_giantmidi(p.name, pieces).excluded}
    import csv

    with open(folder / src.metadata, newline="", encoding="utf-8") as f:
        rows = {(folder / r["midi_performance"]).resolve(): r for r in csv.DictReader(f)}
    return {p for p in files if p.resolve() not in rows or check_asap_row(rows[p.resolve()], pieces).excluded
            or check(rows[p.resolve()]["composer"], rows[p.resolve()]["title"], pieces).excluded}


def held_out_side(src, path: Path) -> bool:
    """Whether a label file of a ``files`` source is on the validation side: its work (the folder
    it is in, so all performances of one work fall on one side) hashes into the first
    ``src.val_percent`` percent. Such pieces are rendered only through the held-out pianos."""
    import zlib

    percent = float(src.get("val_percent") or 0)
    work = str(path.parent.relative_to(Path(src.folder)))
    return percent > 0 and zlib.crc32(work.encode()) % 10000 < percent * 100


def pianos_for(source_cfg, stem: str, pianos: dict[str, Piano], seed: int,
               held_out: tuple[str, ...] = (), render_held_out: bool = False) -> list[Piano]:
    """The pianos a piece of a source is rendered with: ``source.pianos`` (names; default all but
    the ``held_out`` pianos), of which ``source.pianos_per_piece`` (default all) are drawn per
    piece, seeded by its name. With ``render_held_out``: the ``held_out`` pianos, all of them."""
    if render_held_out:
        return [pianos[n] for n in held_out]
    names = list(source_cfg.get("pianos") or [n for n in pianos if n not in held_out])
    leaked = [n for n in names if n in held_out]
    if leaked:
        raise ValueError(f"held-out piano(s) {leaked} listed for training renders; remove them from the source")
    unknown = [n for n in names if n not in pianos]
    if unknown:
        raise ValueError(f"unknown piano(s) {unknown}; defined: {sorted(pianos)}")
    k = source_cfg.get("pianos_per_piece")
    if k and k < len(names):
        import zlib

        rng = np.random.default_rng([seed, zlib.crc32(stem.encode())])
        names = [names[i] for i in sorted(rng.choice(len(names), size=int(k), replace=False))]
    return [pianos[n] for n in names]
