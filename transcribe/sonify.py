"""``transcribe --sonify``: the transcribed MIDI played back through FluidSynth, so a user can hear
what was transcribed next to the recording.

The notes and sustain pedal are written as the ``.mid`` output holds them
(:func:`~transcribe.notefiles.midi_bytes`; with key-release notes the pedal, CC64, keeps them
sounding), with the preset of ``conf/sonify/default.yaml`` (General MIDI's Acoustic Grand Piano),
rendered by the FluidSynth command as :mod:`transcribe.render.synth` renders training data
(:func:`~transcribe.fluidsynth.run_fluidsynth`), and written atomically as
``<stem>.sonified.wav`` (or ``.flac``), as long as the recording, peaks scaled down to
``max_peak``. The audio is read and written in blocks, so memory stays flat in the length of a
recording (FluidSynth's float output goes to a temporary file).

Needs the FluidSynth command and a SoundFont: ``--soundfont PATH``, else the first of
``soundfont_search`` that exists (Debian's ``fluid-soundfont-gm`` and others). :func:`checked`
finds both before any work and says what to install when one is missing.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from .notes import Notes

SONIFY_FORMATS = ("wav", "flac")
SONIFIED = "sonified"  # outputs are <stem>.sonified.<format>
INSTALL = "apt-get install fluidsynth fluid-soundfont-gm"  # Debian, Ubuntu
BLOCK = 1 << 16  # frames read and written at a time


class SonifyError(RuntimeError):
    """Sonification cannot be done (FluidSynth or a SoundFont missing, FluidSynth failed); the
    message says why and what to install."""


@dataclass(frozen=True)
class SynthSettings:
    """How FluidSynth plays (the ``synth`` block of ``conf/sonify``; what
    :func:`~transcribe.fluidsynth.run_fluidsynth` reads)."""

    binary: str
    sample_rate: int
    gain: float
    polyphony: int
    reverb: bool
    chorus: bool
    timeout_s: float


@dataclass(frozen=True)
class SonifyConfig:
    """``conf/sonify/default.yaml``: output format, SoundFont (or where to look for one), preset,
    peak level and FluidSynth's settings."""

    format: str
    soundfont: str | None
    soundfont_search: tuple[str, ...]
    bank: int
    program: int
    max_peak: float
    synth: SynthSettings

    def __post_init__(self) -> None:
        if self.format not in SONIFY_FORMATS:
            raise ValueError(f"format must be one of {', '.join(SONIFY_FORMATS)}, got {self.format!r}")
        if not (0.0 < self.max_peak <= 1.0):
            raise ValueError(f"max_peak must be in (0, 1], got {self.max_peak!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "SonifyConfig":
        """From a mapping with every field (the YAML file)."""
        missing = [f.name for f in fields(cls) if f.name not in d]
        missing += [f"synth.{f.name}" for f in fields(SynthSettings) if f.name not in (d.get("synth") or {})]
        if missing:
            raise ValueError(f"sonify config lacks {', '.join(missing)}")
        synth = SynthSettings(**{f.name: d["synth"][f.name] for f in fields(SynthSettings)})
        return cls(**{**{f.name: d[f.name] for f in fields(cls)}, "synth": synth,
                      "soundfont_search": tuple(str(p) for p in d["soundfont_search"] or ())})

    @classmethod
    def default(cls) -> "SonifyConfig":
        """``conf/sonify/default.yaml`` (errors name the file)."""
        from .config import from_group

        return from_group("sonify", cls.from_dict)

    @property
    def extension(self) -> str:
        """What follows an output's stem: ``sonified.wav`` or ``sonified.flac``."""
        return f"{SONIFIED}.{self.format}"


def is_sonified(path: str | Path) -> bool:
    """Whether ``path`` is named as a sonified output (``NAME.sonified.wav`` / ``.flac``)."""
    return any(Path(path).name.endswith(f".{SONIFIED}.{fmt}") for fmt in SONIFY_FORMATS)


def sonified_source(path: str | Path) -> Path:
    """``x/NAME.sonified.wav`` -> ``x/NAME``: the output stem a sonified file belongs to."""
    path = Path(path)
    return path.with_name(path.name.rsplit(f".{SONIFIED}.", 1)[0])


def is_soundfont(path: Path) -> bool:
    """Whether ``path`` starts as a SoundFont 2 (or 3) file does: a RIFF ``sfbk`` chunk."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"sfbk"


def find_soundfont(cfg: SonifyConfig) -> Path:
    """The SoundFont to play with: ``cfg.soundfont`` if given (it must be a SoundFont file),
    else the first of ``cfg.soundfont_search`` that is one. Raises :class:`SonifyError`."""
    if cfg.soundfont:
        path = Path(cfg.soundfont).expanduser()
        if not path.is_file():
            raise SonifyError(f"--soundfont {path}: no such file")
        if not is_soundfont(path):
            raise SonifyError(f"--soundfont {path}: not a SoundFont (.sf2 / .sf3 files start with a RIFF 'sfbk' chunk)")
        return path
    for candidate in cfg.soundfont_search:
        path = Path(candidate)
        if path.is_file() and is_soundfont(path):
            return path
    raise SonifyError(f"--sonify needs a SoundFont and none was found (looked for {', '.join(cfg.soundfont_search)}): "
                      f"{INSTALL}, or give one with --soundfont PATH")


def checked(cfg: SonifyConfig) -> SonifyConfig:
    """``cfg`` with its SoundFont found (:func:`find_soundfont`), once FluidSynth is known to be
    installed; raises :class:`SonifyError` saying what to install. Done before any work."""
    from .fluidsynth import fluidsynth_binary

    if fluidsynth_binary(cfg.synth.binary) is None:
        raise SonifyError(f"--sonify needs FluidSynth (the {cfg.synth.binary!r} command, not found): {INSTALL}")
    return replace(cfg, soundfont=str(find_soundfont(cfg)))


def playback_midi(notes: Notes, pedal: np.ndarray | None, cfg: SonifyConfig, seconds: float | None) -> bytes:
    """The MIDI file FluidSynth plays: the ``.mid`` output's notes and CC64
    (:func:`~transcribe.notefiles.midi_bytes`, its tempo and resolution), the piano track on the
    configured bank and program, and its end at ``seconds`` so sound ringing then is heard."""
    from .notefiles import midi_bytes

    return midi_bytes(notes, pedal=pedal, program=cfg.program, bank=cfg.bank, seconds=seconds)


def sonify(notes: Notes, path: str | Path, cfg: SonifyConfig | None = None, pedal: np.ndarray | None = None,
           seconds: float | None = None) -> None:
    """Play ``notes`` (and the sustain pedal spans ``pedal``) through FluidSynth into ``path``
    (16-bit WAV or FLAC as its name says, else ``cfg.format``), ``seconds`` long when given (the recording's length: cut or padded
    with silence), written atomically. ``cfg``: a :func:`checked` config (default:
    ``conf/sonify/default.yaml``, checked here). From Python::

        res = Transcriber.from_checkpoint().transcribe_stream("song.wav")
        sonify(res.notes, "song.sonified.wav", pedal=res.pedal, seconds=res.audio_seconds)

    Raises :class:`SonifyError` when FluidSynth or a SoundFont is missing or FluidSynth fails,
    OSError when ``path`` cannot be written."""
    import subprocess

    import soundfile as sf

    from .files import atomic_write
    from .fluidsynth import run_fluidsynth

    cfg = cfg if cfg is not None else checked(SonifyConfig.default())
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = suffix if suffix in SONIFY_FORMATS else cfg.format
    with tempfile.TemporaryDirectory(prefix="transcribe-sonify-") as tmp:
        midi, wav = Path(tmp) / "notes.mid", Path(tmp) / "played.wav"
        midi.write_bytes(playback_midi(notes, pedal, cfg, seconds))
        try:
            run_fluidsynth(midi, [str(cfg.soundfont)], cfg.synth, wav, cfg.synth.timeout_s + (seconds or 0.0))
        except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as err:
            raise SonifyError(f"sonifying failed: {err}") from None
        with sf.SoundFile(str(wav)) as played:
            peak = max((float(np.abs(b).max()) for b in played.blocks(BLOCK, dtype="float32") if len(b)), default=0.0)
            scale = min(1.0, cfg.max_peak / peak) if peak > 0 else 1.0
            rate, channels = played.samplerate, played.channels
            total = played.frames if seconds is None else int(round(seconds * rate))
            played.seek(0)
            with atomic_write(path) as part, sf.SoundFile(str(part), "w", rate, channels, subtype="PCM_16",
                                                          format=fmt.upper()) as out:
                left = total
                for block in played.blocks(BLOCK, dtype="float32"):
                    if left <= 0:
                        break
                    out.write(block[:left] * scale)
                    left -= len(block[:left])
                while left > 0:  # FluidSynth stopped before the recording's end: silence
                    n = min(left, BLOCK)
                    out.write(np.zeros((n, channels), np.float32))
                    left -= n
