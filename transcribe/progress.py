"""Progress of a batch: a one-line bar (files, audio hours, ETA) on a terminal, plain log lines
otherwise (pipes, log files, ``CI=true``).

Hand-written (about 100 lines) rather than tqdm: off a terminal it prints one plain line per
file, which CI and SLURM logs need (tqdm redraws with carriage returns or prints nothing); its
ETA counts audio seconds, not files (an archive's files differ a thousandfold in length); and
the base install gains no dependency."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO


def audio_duration(path: Path) -> float | None:
    """Duration in seconds from the file header, or None when it cannot be read cheaply."""
    from .audio import decoder_messages

    try:
        import soundfile as sf

        with decoder_messages([]):  # what the decoder says is reported when the file is transcribed
            info = sf.info(str(path))
        return info.frames / info.samplerate if info.samplerate else None
    except Exception:  # noqa: BLE001 - unknown duration only weakens the ETA
        return None


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts files and audio time; redraws a status line or prints one line per file."""

    def __init__(self, total_files: int, total_audio: float | None, quiet: bool = False,
                 stream: TextIO = sys.stderr, interactive: bool | None = None):
        if interactive is None:
            interactive = stream.isatty() and not os.environ.get("CI")
        self.interactive, self.quiet, self.stream = interactive, quiet, stream
        self.total_files, self.total_audio = total_files, total_audio
        self.files = 0
        self.audio = 0.0
        self.t0 = time.monotonic()
        self._line = False

    def start(self) -> None:
        """The model is loaded: measure speed from here."""
        self.t0 = time.monotonic()
        self._draw()

    def eta(self) -> float | None:
        """Seconds left, from audio seconds done per wall second (or files per second)."""
        elapsed = time.monotonic() - self.t0
        if elapsed <= 0 or self.files == 0:
            return None
        if self.total_audio and self.audio > 0:
            return (self.total_audio - self.audio) / (self.audio / elapsed)
        return (self.total_files - self.files) * elapsed / self.files

    def status(self) -> str:
        hours = f"{self.audio / 3600:.2f}" + (f"/{self.total_audio / 3600:.2f}" if self.total_audio else "")
        eta = self.eta()
        return (f"[{self.files}/{self.total_files} files | {hours} h audio | "
                f"ETA {_clock(eta) if eta is not None else '?'}]")

    def _draw(self) -> None:
        if self.interactive and not self.quiet:
            self.stream.write("\r\033[K" + self.status())
            self.stream.flush()
            self._line = True

    def message(self, text: str, important: bool = False, stream: TextIO | None = None) -> None:
        """Print a line (to ``stream``, default the progress stream) above the bar on a terminal;
        ``important`` lines show even when quiet."""
        if self.quiet and not important:
            return
        if self._line:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._line = False
        out = stream or self.stream
        out.write(text + "\n")
        out.flush()
        self._draw()

    def advance(self, audio_seconds: float, line: str) -> None:
        """One file finished (done or failed)."""
        self.files += 1
        self.audio += audio_seconds
        if self.interactive:
            self._draw()
        else:
            self.message(f"{self.status()} {line}")

    def close(self) -> None:
        if self._line:
            self.stream.write("\n")
            self.stream.flush()
            self._line = False
