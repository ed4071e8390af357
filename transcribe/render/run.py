"""SoundFont rendering: note lists (MIDI files, MAPS-style ``.tsv``, music21 scores, generated
material) → FluidSynth piano audio + ``.tsv`` labels, in the layout the datasets read.

``transcribe-render`` (Hydra, ``conf/render.yaml``) writes
``<output_dir>/<source>/<piano>/<stem>.flac`` with ``<stem>.tsv`` beside it (and, where the
source knows its sustain pedal, ``<stem>.pedal.tsv``: :mod:`transcribe.pedal`), so
:func:`transcribe.data.pairs.find_pairs` finds every render, and the same notes rendered
through another piano sit at the same relative path under its folder (see
:mod:`transcribe.data.layout`).

What is labelled is what is rendered. A note list is first made playable by
:func:`prepare_notes` (piano keys only, a key struck again ends its previous note); those
notes are written as the labels and played note-on/note-off by note-on/note-off, with no
pedal events: MIDI sources get their sustain pedal applied to the offsets first
(:func:`transcribe.notefiles.read_midi`), MAPS ``.tsv`` lists are already pedal-extended and are
played as given. The attack latency of each SoundFont key (how long after the note-on its
sample becomes audible) is measured once per piano (:func:`.latency.measure_latency`) and compensated
by sending each note-on that much earlier, so the audible onset lands on the label.

``transcribe-render pedal_only=true`` (same other settings as the render) writes only the pedal
sidecars of existing renders (:func:`backfill_all`), after checking that the recomputed labels
equal the rendered ones byte for byte.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ..data.layout import MANIFEST, record_partners, render_path
from ..files import atomic_write
from ..notefiles import read_tsv, tsv_text, write_tsv
from ..notes import Notes
from ..pedal import pedal_sidecar, read_pedal, write_pedal
from .latency import piano_latency
from .prepare import Piece, prepare_notes, prepare_piece
from .sources import iter_sources, pianos_for
from .synth import Piano, fluidsynth_binary, pianos_from_cfg, synthesize, write_render_midi





def render_notes(notes: Notes, piano: Piano, cfg) -> tuple[np.ndarray, Notes]:
    """Render ``notes`` through ``piano``: (mono float32 audio at ``cfg.sample_rate``, the notes
    as rendered = the labels). The audio lasts until ``cfg.synth.tail_s`` after the last
    offset; audio whose peak exceeds ``cfg.max_peak`` is scaled down to it."""
    import soxr

    notes = prepare_notes(notes, cfg.min_duration_s, cfg.min_start_s)
    latency = piano_latency(piano, cfg.synth, cfg.latency) if cfg.latency.compensate else None
    with tempfile.TemporaryDirectory(prefix="transcribe-render-") as tmp:
        midi = Path(tmp) / "notes.mid"
        write_render_midi(notes, piano, midi, latency, cfg.synth.tail_s)
        y, sr = synthesize(midi, piano, cfg.synth)
    if sr != cfg.sample_rate:
        y = soxr.resample(y, sr, cfg.sample_rate, quality="HQ")
    n = int(round((notes.end + cfg.synth.tail_s) * cfg.sample_rate))
    y = np.pad(y[:n], (0, max(n - len(y), 0)))
    peak = float(np.abs(y).max()) if n else 0.0
    if peak > cfg.max_peak:
        y = y * (cfg.max_peak / peak)
    return y.astype(np.float32), notes


def render_piece(notes: Notes | Piece, piano: Piano, cfg, audio: str | Path) -> tuple[Notes, float]:
    """Render ``notes`` (or a :class:`~.prepare.Piece`) through ``piano`` to ``audio``
    (``cfg.audio_format``) and write the labels (the notes as rendered) beside it as
    ``<stem>.tsv``, and a piece's known sustain pedal, in the labels' time frame, as
    ``<stem>.pedal.tsv`` (:mod:`transcribe.pedal`). Returns (labels, seconds)."""
    audio = Path(audio)
    piece = notes if isinstance(notes, Piece) else Piece(notes, None)
    y, rendered = render_notes(piece.notes, piano, cfg)
    pedal = prepare_piece(piece, cfg.min_duration_s, cfg.min_start_s).pedal
    with atomic_write(audio) as tmp:
        sf.write(str(tmp), y, int(cfg.sample_rate), format=str(cfg.audio_format).upper(), subtype=cfg.subtype)
    label = audio.with_suffix(".tsv")
    if pedal is not None:
        write_pedal(pedal, pedal_sidecar(label))
    else:
        pedal_sidecar(label).unlink(missing_ok=True)  # an overwritten render of a piece without pedal information
    write_tsv(rendered, label)
    return rendered, len(y) / cfg.sample_rate


def backfill_pedal(piece: Piece, cfg, audio: Path) -> str:
    """Write the pedal sidecar of an existing render of ``piece`` without synthesising audio: the
    piece is prepared as :func:`render_piece` prepares it, and the sidecar is written only if
    those notes give, byte for byte, the render's ``.tsv`` (so the pedal is provably in the
    labels' time frame). Returns ``"written"``, ``"exists"`` (kept unless ``cfg.overwrite``),
    ``"unknown"`` (the source has no pedal information), ``"missing"`` (no render / labels) or
    ``"mismatch"`` (the labels differ: nothing written)."""
    label = audio.with_suffix(".tsv")
    if not (audio.is_file() and label.is_file()):
        return "missing"
    sidecar = pedal_sidecar(label)
    if sidecar.is_file() and not cfg.overwrite:
        return "exists"
    prepared = prepare_piece(piece, cfg.min_duration_s, cfg.min_start_s)
    if prepared.pedal is None:
        return "unknown"
    if tsv_text(prepared.notes) != label.read_text():
        return "mismatch"
    write_pedal(prepared.pedal, sidecar)
    return "written"


def backfill_all(cfg, progress=print) -> dict:
    """``transcribe-render pedal_only=true``: :func:`backfill_pedal` for every render the same
    command (same sources, pianos and ``output_dir``) made. Returns counts by outcome and the
    renders whose labels did not match."""
    out_root = Path(cfg.output_dir)
    pianos = pianos_from_cfg(cfg)
    counts = {k: 0 for k in ("written", "exists", "unknown", "missing", "mismatch")}
    mismatched: list[str] = []
    for source, stem, piece_of, _ in iter_sources(cfg):
        targets = [render_path(out_root, source, piano.name, stem, cfg.audio_format)
                   for piano in pianos_for(cfg.sources[source], stem, pianos, int(cfg.seed),
                                           tuple(cfg.held_out_pianos), bool(cfg.held_out))]
        if not any(a.is_file() for a in targets):
            counts["missing"] += len(targets)
            continue
        piece = piece_of() if callable(piece_of) else piece_of
        for audio in targets:
            outcome = backfill_pedal(piece, cfg, audio)
            counts[outcome] += 1
            if outcome == "mismatch":
                mismatched.append(str(audio))
                progress(f"{audio}: MISMATCH: the notes recomputed from the source differ from its .tsv; no sidecar")
            elif outcome == "written":
                progress(f"{pedal_sidecar(audio.with_suffix('.tsv'))}  {len(read_pedal(pedal_sidecar(audio.with_suffix('.tsv'))))} pedal spans")
    summary = {"pedal_sidecars": counts, "mismatched": mismatched}
    progress(json.dumps(summary))
    return summary


def render_all(cfg, progress=print) -> dict:
    """Render every source piece through its pianos into ``cfg.output_dir`` (existing renders
    are kept unless ``cfg.overwrite``). Returns a summary and writes it, with every render, to
    ``<output_dir>/manifest.json`` (each render with its piece and its partners, the renders of the
    same piece through other pianos: :func:`transcribe.data.layout.partners_of`). With ``cfg.shard`` = ``"I/N"`` only the pieces whose
    position in the (seeded, fixed) source order is I modulo N are rendered, so N processes can
    share one render; each merges its records into the manifest under a lock."""
    out_root = Path(cfg.output_dir)
    out_root.mkdir(parents=True, exist_ok=True)
    pianos = pianos_from_cfg(cfg)
    manifest_path = out_root / MANIFEST
    shard = parse_shard(cfg.get("shard"))
    ours: dict[str, dict] = {}  # this run's renders, merged into the manifest on disk
    known = json.loads(manifest_path.read_text())["renders"] if manifest_path.is_file() else {}
    t0, done, skipped, seconds = time.time(), 0, 0, 0.0
    for i, (source, stem, notes_of, origin) in enumerate(iter_sources(cfg)):
        if shard is not None and i % shard[1] != shard[0]:
            continue
        src_cfg = cfg.sources[source]
        todo = []
        for piano in pianos_for(src_cfg, stem, pianos, int(cfg.seed), tuple(cfg.held_out_pianos), bool(cfg.held_out)):
            audio = render_path(out_root, source, piano.name, stem, cfg.audio_format)
            if audio.is_file() and audio.with_suffix(".tsv").is_file() and not cfg.overwrite:
                skipped += 1
                rel = audio.relative_to(out_root).as_posix()
                # rendered by a run stopped before it wrote its records, or recorded before pieces were
                if "piece" not in known.get(rel, {}):
                    ours[rel] = _record(source, stem, piano, origin, len(read_tsv(audio.with_suffix(".tsv"))),
                                        sf.info(str(audio)).duration)
            else:
                todo.append((piano, audio))
        if not todo:
            continue
        piece = notes_of() if callable(notes_of) else notes_of
        if len(piece.notes) == 0:
            progress(f"{source}/{stem}: no notes, skipped")
            continue
        for piano, audio in todo:
            t1 = time.time()
            rendered, dur = render_piece(piece, piano, cfg, audio)
            seconds += dur
            done += 1
            ours[audio.relative_to(out_root).as_posix()] = _record(source, stem, piano, origin, len(rendered), dur)
            progress(f"{audio}  {len(rendered)} notes  {dur:.1f} s audio  {time.time() - t1:.1f} s")
            if done % 20 == 0:  # a long render that is stopped keeps its record
                _merge_manifest(ours, manifest_path)
    manifest = _merge_manifest(ours, manifest_path)
    summary = {"rendered": done, "skipped": skipped, "rendered_hours": round(seconds / 3600, 3),
               "wall_seconds": round(time.time() - t0, 1), "total_files": len(manifest["renders"]),
               "total_hours": manifest["summary"]["hours"]}
    progress(json.dumps(summary))
    return summary


def _record(source: str, stem: str, piano: Piano, origin: str, notes: int, seconds: float) -> dict:
    """A render's entry in manifest.json (``piece``: the notes rendered, the same for the renders
    of one piece through other pianos; :func:`_merge_manifest` adds the ``partners``)."""
    return {"source": source, "piece": f"{source}/{stem}", "piano": piano.name, "soundfont": piano.soundfont, "bank": piano.bank,
            "program": piano.program, "release_soundfont": piano.release_soundfont, "notes": notes,
            "seconds": round(seconds, 3), "from": origin, "room": "dry (rooms are added in training: conf/augment)"}


def parse_shard(value) -> tuple[int, int] | None:
    """``cfg.shard``: null, or ``"I/N"`` with 0 <= I < N (:func:`transcribe.jobs.parse_shard`;
    a usage error otherwise)."""
    from ..jobs import parse_shard as parse

    if value is None:
        return None
    try:
        return parse(value, "shard=I/N")
    except ValueError as err:
        raise SystemExit(f"transcribe-render: shard must be I/N with 0 <= I < N (e.g. shard=0/2): {err}") from None


def _merge_manifest(renders: dict, path: Path) -> dict:
    """Add ``renders`` to the manifest at ``path`` (re-read under an exclusive lock, so processes
    rendering shards of one folder keep each other's records) and rewrite it atomically."""
    from filelock import FileLock

    with FileLock(path.with_name(path.name + ".lock")):
        manifest = json.loads(path.read_text()) if path.is_file() else {"renders": {}}
        manifest["renders"].update(renders)
        record_partners(manifest["renders"])
        total = sum(r["seconds"] for r in manifest["renders"].values())
        manifest["summary"] = {"files": len(manifest["renders"]), "hours": round(total / 3600, 3),
                               "by_source_piano": _hours_by(manifest["renders"])}
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def _hours_by(renders: dict) -> dict:
    out: dict[str, float] = {}
    for r in renders.values():
        key = f"{r['source']}/{r['piano']}"
        out[key] = round(out.get(key, 0.0) + r["seconds"] / 3600, 3)
    return out


def _hydra_main():
    import hydra

    from ..config import conf_dir

    @hydra.main(version_base="1.3", config_path=conf_dir(), config_name="render")
    def run(cfg) -> None:
        if cfg.pedal_only:
            if backfill_all(cfg)["mismatched"]:
                sys.exit("error: some renders' labels differ from their sources' notes (listed above); "
                         "their pedal sidecars were not written")
            return
        if fluidsynth_binary(cfg.synth.binary) is None:
            sys.exit(f"error: {cfg.synth.binary} not found; install FluidSynth (Debian: apt-get install fluidsynth)")
        render_all(cfg)

    return run


def main() -> None:
    """``transcribe-render``: render the configured sources (see ``conf/render.yaml``)."""
    _hydra_main()()


if __name__ == "__main__":
    main()
