"""SoundFont rendering: note lists (MIDI files, MAPS-style ``.tsv``, music21 scores, generated
material) → FluidSynth piano audio + ``.tsv`` labels, in the layout the datasets read.

``transcribe-render`` (Hydra, ``conf/render.yaml``) writes
``<output_dir>/<source>/<piano>/<stem>.flac`` with ``<stem>.tsv`` beside it, so
:func:`transcribe.data.pairs.find_pairs` finds every render, and the same notes rendered
through another piano sit at the same relative path under its folder (see :func:`partner_of`).

What is labelled is what is rendered. A note list is first made playable by
:func:`prepare_notes` (piano keys only, a key struck again ends its previous note); those
notes are written as the labels and played note-on/note-off by note-on/note-off, with no
pedal events: MIDI sources get their sustain pedal applied to the offsets first
(:func:`transcribe.midi.read_midi`), MAPS ``.tsv`` lists are already pedal-extended and are
played as given. The attack latency of each SoundFont key (how long after the note-on its
sample becomes audible) is measured once per piano (:func:`measure_latency`) and compensated
by sending each note-on that much earlier, so the audible onset lands on the label.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .midi import atomic_write
from .notes import MAX_PITCH, MIN_PITCH, N_KEYS, Notes

TICKS_PER_BEAT = 10000  # with a tempo of one beat per second: 0.1 ms ticks
TEMPO_US = 1_000_000


@dataclass(frozen=True)
class Piano:
    """A piano preset of a SoundFont: ``bank``/``program`` as FluidSynth lists them."""

    name: str
    soundfont: str
    bank: int = 0
    program: int = 0


def pianos_from_cfg(cfg) -> dict[str, Piano]:
    """All pianos of ``cfg.pianos`` (``{name: {soundfont, bank, program}}``), by name."""
    return {name: Piano(name, str(p.soundfont), int(p.get("bank", 0)), int(p.get("program", 0)))
            for name, p in cfg.pianos.items()}


def fluidsynth_binary(binary: str = "fluidsynth") -> str | None:
    """Path of the FluidSynth command, or None when it is not installed."""
    return shutil.which(binary)


# ---------------------------------------------------------------------------------------------
# Notes as they are rendered and labelled


def prepare_notes(notes: Notes, min_duration: float = 0.02, min_start: float = 0.05) -> Notes:
    """The notes as they will be rendered and labelled.

    - only the 88 piano keys; velocities clipped to 1..127;
    - strikes of one key at the same time (within 1 ms) become one note (the longest, loudest);
    - a key struck again ends its previous note (same-key overlaps are cut at the next onset),
      as a piano (and a MIDI synthesiser) does;
    - notes shorter than ``min_duration`` are lengthened up to it where the key is free;
    - if the first onset is earlier than ``min_start`` seconds, all notes are shifted later by
      the difference (the latency compensation needs room to send note-ons earlier).
    """
    notes = notes.piano_range().sorted()
    if len(notes) == 0:
        return notes
    on, off = notes.onsets.copy(), np.maximum(notes.offsets, notes.onsets)
    pitch, vel = notes.pitches.copy(), np.clip(notes.velocities, 1, 127)
    keep = np.ones(len(on), dtype=bool)
    for p in np.unique(pitch):
        idx = np.flatnonzero(pitch == p)
        idx = idx[np.argsort(on[idx], kind="stable")]
        prev = idx[0]
        for i in idx[1:]:
            if on[i] - on[prev] < 1e-3:  # the same strike twice
                off[prev], vel[prev] = max(off[prev], off[i]), max(vel[prev], vel[i])
                keep[i] = False
                continue
            off[prev] = min(off[prev], on[i])
            prev = i
        kept = idx[keep[idx]]
        nxt = np.append(on[kept][1:], np.inf)
        off[kept] = np.maximum(off[kept], np.minimum(on[kept] + min_duration, nxt))
    out = Notes(on[keep], off[keep], pitch[keep], vel[keep]).sorted()
    shift = min_start - out.onsets[0]
    if shift > 0:
        out = Notes(out.onsets + shift, out.offsets + shift, out.pitches, out.velocities)
    return out


def write_tsv(notes: Notes, path: str | Path) -> None:
    """MAPS-format labels (read back by :func:`transcribe.midi.read_tsv`)."""
    rows = "".join(f"{a:.6f}\t{b:.6f}\t{int(p)}\t{int(v)}\n"
                   for a, b, p, v in zip(notes.onsets, notes.offsets, notes.pitches, notes.velocities))
    with atomic_write(path) as tmp:
        tmp.write_text("# onset,offset,note,velocity\n" + rows)


def read_source(path: str | Path) -> Notes:
    """Notes of a source file: ``.tsv`` as given (MAPS offsets already include the pedal),
    ``.mid``/``.midi`` with the sustain pedal applied to the offsets
    (:func:`transcribe.midi.read_midi`: a note sounds while its key or the pedal holds it, and
    until the same key is struck again)."""
    from .midi import read_labels

    return read_labels(path)


# ---------------------------------------------------------------------------------------------
# FluidSynth


def write_render_midi(notes: Notes, piano: Piano, path: str | Path, latency: "Latency | None" = None,
                      tail: float = 1.0) -> None:
    """A one-track MIDI file that plays ``notes`` (from :func:`prepare_notes`) with ``piano``'s
    preset on channel 0: bank select, program change, then note-ons ``latency(pitch, velocity)``
    seconds before each onset and note-offs at the offsets (never after the key's next note-on; at
    equal ticks note-offs go first). No pedal events: offsets already hold the pedal. The file
    ends ``tail`` seconds after the last offset (FluidSynth renders until then)."""
    import mido

    lat = np.zeros(len(notes)) if latency is None else latency(notes.pitches, notes.velocities)
    on_t = np.maximum(np.round((notes.onsets - lat) * TICKS_PER_BEAT).astype(np.int64), 0)
    off_t = np.round(notes.offsets * TICKS_PER_BEAT).astype(np.int64)
    for p in np.unique(notes.pitches):  # a note-off must not silence the key's next note
        idx = np.flatnonzero(notes.pitches == p)
        idx = idx[np.argsort(on_t[idx], kind="stable")]
        off_t[idx[:-1]] = np.minimum(off_t[idx[:-1]], on_t[idx[1:]])
    off_t = np.maximum(off_t, on_t + 1)
    events = [(int(t), 1, mido.Message("note_on", note=int(p), velocity=int(v)))
              for t, p, v in zip(on_t, notes.pitches, notes.velocities)]
    events += [(int(t), 0, mido.Message("note_off", note=int(p), velocity=0)) for t, p in zip(off_t, notes.pitches)]
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0),
        mido.Message("control_change", control=0, value=piano.bank, time=0),
        mido.Message("control_change", control=32, value=0, time=0),
        mido.Message("program_change", program=piano.program, time=0),
    ])
    last = 0
    for t, _, msg in events:
        track.append(msg.copy(time=t - last))
        last = t
    end = int(round((notes.duration + tail) * TICKS_PER_BEAT)) if len(notes) else int(tail * TICKS_PER_BEAT)
    track.append(mido.MetaMessage("end_of_track", time=max(end - last, 0)))
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(track)
    mid.save(str(path))


def synthesize(midi_path: str | Path, piano: Piano, synth) -> tuple[np.ndarray, int]:
    """Render a MIDI file with the FluidSynth command (faster than real time, no audio device):
    mono float32 audio at ``synth.sample_rate``. ``synth`` holds binary, sample_rate, gain,
    polyphony, reverb, chorus, timeout_s (``conf/render.yaml``)."""
    import soundfile as sf

    binary = fluidsynth_binary(synth.binary)
    if binary is None:
        raise FileNotFoundError(f"{synth.binary}: FluidSynth not found (Debian: apt-get install fluidsynth)")
    if not Path(piano.soundfont).is_file():
        raise FileNotFoundError(f"{piano.soundfont}: SoundFont of piano {piano.name!r} not found")
    with tempfile.TemporaryDirectory(prefix="transcribe-render-") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [binary, "-n", "-i", "-q", "-R", "1" if synth.reverb else "0", "-C", "1" if synth.chorus else "0",
               "-g", str(synth.gain), "-r", str(int(synth.sample_rate)), "-O", "float", "-T", "wav",
               "-o", f"synth.polyphony={int(synth.polyphony)}", "-o", "synth.dynamic-sample-loading=1",
               "-F", str(wav), str(piano.soundfont), str(midi_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=synth.timeout_s)
        if proc.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"fluidsynth failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    return y.mean(axis=1), int(sr)


def detect_onset(y: np.ndarray, sr: int, threshold: float = 0.05) -> float | None:
    """Seconds from the start of ``y`` to the first sample whose magnitude reaches ``threshold``
    times the peak magnitude of ``y``; None for silence."""
    mag = np.abs(np.asarray(y, dtype=np.float64))
    peak = mag.max() if mag.size else 0.0
    if peak <= 0:
        return None
    return float(np.argmax(mag >= threshold * peak)) / sr


@dataclass(frozen=True)
class Latency:
    """Attack latency (seconds) of a piano: ``seconds[i, key]`` at ``velocities[i]``, for the 88 keys."""

    velocities: np.ndarray
    seconds: np.ndarray

    def __call__(self, pitches: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        """Latency of each note, interpolated linearly over velocity."""
        keys = np.asarray(pitches, dtype=np.int64) - MIN_PITCH
        v = np.asarray(velocities, dtype=np.float64)
        out = np.empty(len(keys))
        for i, (k, vel) in enumerate(zip(keys, v)):
            out[i] = np.interp(vel, self.velocities, self.seconds[:, k])
        return out


def measure_latency(piano: Piano, synth, latency_cfg) -> Latency:
    """Attack latency of ``piano``: every one of the 88 keys is played alone (after an
    all-sound-off) at each of ``latency_cfg.velocities``, at times that fall at varying
    positions of FluidSynth's processing blocks; its latency is the time from note-on to
    :func:`detect_onset` (``latency_cfg.threshold``) less ``latency_cfg.target_s``."""
    import mido

    vels = sorted(int(v) for v in latency_cfg.velocities)
    spacing, length = 0.3, 0.15
    with tempfile.TemporaryDirectory(prefix="transcribe-latency-") as tmp:
        midi = Path(tmp) / "latency.mid"
        track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0),
                                mido.Message("control_change", control=0, value=piano.bank, time=0),
                                mido.Message("control_change", control=32, value=0, time=0),
                                mido.Message("program_change", program=piano.program, time=0)])
        onsets, t, last, k = [], 0.5, 0, 0
        for v in vels:
            for key in range(MIN_PITCH, MAX_PITCH + 1):
                on = round((t + 1e-4 * (k % 29)) * TICKS_PER_BEAT)  # vary the position in the block
                for tick, msg in ((on - 500, mido.Message("control_change", control=120, value=0)),
                                  (on, mido.Message("note_on", note=key, velocity=v)),
                                  (on + round(length * TICKS_PER_BEAT), mido.Message("note_off", note=key))):
                    track.append(msg.copy(time=tick - last))
                    last = tick
                onsets.append(on / TICKS_PER_BEAT)
                t += spacing
                k += 1
        track.append(mido.MetaMessage("end_of_track", time=TICKS_PER_BEAT))
        mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
        mid.tracks.append(track)
        mid.save(str(midi))
        y, sr = synthesize(midi, piano, synth)
    lat = np.full(len(onsets), np.nan)
    for i, on in enumerate(onsets):
        a, b = int(round((on - 0.04) * sr)), int(round((on + spacing - 0.06) * sr))
        found = detect_onset(y[a:b], sr, latency_cfg.threshold)
        if found is not None:
            lat[i] = a / sr + found - on
    lat = lat.reshape(len(vels), N_KEYS)
    if np.isnan(lat).any():
        silent = sorted(set((np.argwhere(np.isnan(lat))[:, 1] + MIN_PITCH).tolist()))
        raise RuntimeError(f"piano {piano.name!r}: keys {silent} are silent")
    return Latency(np.array(vels, dtype=np.float64), np.maximum(lat - float(latency_cfg.target_s), 0.0))


_LATENCY: dict[tuple, Latency] = {}


def piano_latency(piano: Piano, synth, latency_cfg) -> Latency:
    """:func:`measure_latency`, measured once per process for each piano and synth setting."""
    st = Path(piano.soundfont).stat()
    key = (piano, st.st_size, st.st_mtime, int(synth.sample_rate), float(synth.gain), float(latency_cfg.threshold),
           float(latency_cfg.target_s), tuple(latency_cfg.velocities))
    if key not in _LATENCY:
        _LATENCY[key] = measure_latency(piano, synth, latency_cfg)
    return _LATENCY[key]


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
    n = int(round((notes.duration + cfg.synth.tail_s) * cfg.sample_rate))
    y = np.pad(y[:n], (0, max(n - len(y), 0)))
    peak = float(np.abs(y).max()) if n else 0.0
    if peak > cfg.max_peak:
        y = y * (cfg.max_peak / peak)
    return y.astype(np.float32), notes


# ---------------------------------------------------------------------------------------------
# Sources and the render command


def render_piece(notes: Notes, piano: Piano, cfg, audio: str | Path) -> tuple[Notes, float]:
    """Render ``notes`` through ``piano`` to ``audio`` (``cfg.audio_format``) and write the
    labels (the notes as rendered) beside it as ``<stem>.tsv``. Returns (labels, seconds)."""
    import soundfile as sf

    audio = Path(audio)
    y, rendered = render_notes(notes, piano, cfg)
    with atomic_write(audio) as tmp:
        sf.write(str(tmp), y, int(cfg.sample_rate), format=str(cfg.audio_format).upper(), subtype=cfg.subtype)
    write_tsv(rendered, audio.with_suffix(".tsv"))
    return rendered, len(y) / cfg.sample_rate


def partner_of(audio: str | Path, piano: str) -> Path:
    """The render of the same notes through ``piano``: ``<source>/<piano>/<stem>.<ext>``
    beside ``<source>/<this piano>/<stem>.<ext>`` (for mixing two pianos in augmentation)."""
    audio = Path(audio)
    return audio.parent.parent / piano / audio.name


def iter_sources(cfg) -> Iterator[tuple[str, str, object]]:
    """(source name, stem, notes or a callable returning notes) for every enabled source of
    ``cfg.sources`` (``maps``/``midi``: folders of label files; ``music21``: the corpus;
    ``generated``: :mod:`transcribe.data.generate`)."""
    for name, src in cfg.sources.items():
        if not src.get("enabled", False):
            continue
        kind = src.get("kind", name)
        if kind == "files":
            folder = Path(src.folder)
            if not folder.is_dir():
                raise FileNotFoundError(f"source {name}: {folder}: no such folder")
            files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".tsv", ".mid", ".midi"))
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
            for p in files[: src.get("limit")]:
                yield name, p.stem, (lambda p=p: read_source(p))
        elif kind == "music21":
            try:
                import music21  # noqa: F401
            except ImportError as err:
                raise ImportError(f"source {name}: needs music21 (pip install music21), "
                                  f"or sources.{name}.enabled=false") from err
            from .data.scores import corpus_pieces

            for stem, make in corpus_pieces(src):
                yield name, stem, make
        elif kind == "generated":
            from .data.generate import generate_piece

            for i in range(int(src.count)):
                yield name, f"gen_{int(src.seed):04d}_{i:04d}", (lambda i=i: generate_piece(int(src.seed) * 100003 + i, src))
        else:
            raise ValueError(f"source {name}: unknown kind {kind!r} (files, music21, generated)")


def pianos_for(source_cfg, stem: str, pianos: dict[str, Piano], seed: int) -> list[Piano]:
    """The pianos a piece of a source is rendered with: ``source.pianos`` (names; default all),
    of which ``source.pianos_per_piece`` (default all) are drawn per piece, seeded by its name."""
    names = list(source_cfg.get("pianos") or pianos)
    unknown = [n for n in names if n not in pianos]
    if unknown:
        raise ValueError(f"unknown piano(s) {unknown}; defined: {sorted(pianos)}")
    k = source_cfg.get("pianos_per_piece")
    if k and k < len(names):
        import zlib

        rng = np.random.default_rng([seed, zlib.crc32(stem.encode())])
        names = [names[i] for i in sorted(rng.choice(len(names), size=int(k), replace=False))]
    return [pianos[n] for n in names]


def render_all(cfg, progress=print) -> dict:
    """Render every source piece through its pianos into ``cfg.output_dir`` (existing renders
    are kept unless ``cfg.overwrite``). Returns a summary and writes it, with every render, to
    ``<output_dir>/manifest.json``."""
    out_root = Path(cfg.output_dir)
    out_root.mkdir(parents=True, exist_ok=True)
    pianos = pianos_from_cfg(cfg)
    manifest_path = out_root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"renders": {}}
    t0, done, skipped, seconds = time.time(), 0, 0, 0.0
    for source, stem, notes_of in iter_sources(cfg):
        src_cfg = cfg.sources[source]
        todo = []
        for piano in pianos_for(src_cfg, stem, pianos, int(cfg.seed)):
            audio = out_root / source / piano.name / f"{stem}.{cfg.audio_format}"
            if audio.is_file() and audio.with_suffix(".tsv").is_file() and not cfg.overwrite:
                skipped += 1
            else:
                todo.append((piano, audio))
        if not todo:
            continue
        notes = notes_of() if callable(notes_of) else notes_of
        if len(notes) == 0:
            progress(f"{source}/{stem}: no notes, skipped")
            continue
        for piano, audio in todo:
            t1 = time.time()
            rendered, dur = render_piece(notes, piano, cfg, audio)
            seconds += dur
            done += 1
            manifest["renders"][str(audio.relative_to(out_root))] = {
                "source": source, "piano": piano.name, "soundfont": piano.soundfont, "bank": piano.bank,
                "program": piano.program, "notes": len(rendered), "seconds": round(dur, 3)}
            progress(f"{audio}  {len(rendered)} notes  {dur:.1f} s audio  {time.time() - t1:.1f} s")
    total = sum(r["seconds"] for r in manifest["renders"].values())
    manifest["summary"] = {"files": len(manifest["renders"]), "hours": round(total / 3600, 3),
                           "by_source_piano": _hours_by(manifest["renders"])}
    with atomic_write(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    summary = {"rendered": done, "skipped": skipped, "rendered_hours": round(seconds / 3600, 3),
               "wall_seconds": round(time.time() - t0, 1), "total_files": len(manifest["renders"]),
               "total_hours": manifest["summary"]["hours"]}
    progress(json.dumps(summary))
    return summary


def _hours_by(renders: dict) -> dict:
    out: dict[str, float] = {}
    for r in renders.values():
        key = f"{r['source']}/{r['piano']}"
        out[key] = round(out.get(key, 0.0) + r["seconds"] / 3600, 3)
    return out


def _hydra_main():
    import hydra

    from .config import conf_dir

    @hydra.main(version_base="1.3", config_path=conf_dir(), config_name="render")
    def run(cfg) -> None:
        if fluidsynth_binary(cfg.synth.binary) is None:
            sys.exit(f"error: {cfg.synth.binary} not found; install FluidSynth (Debian: apt-get install fluidsynth)")
        render_all(cfg)

    return run


def main() -> None:
    """``transcribe-render``: render the configured sources (see ``conf/render.yaml``)."""
    _hydra_main()()


if __name__ == "__main__":
    main()
