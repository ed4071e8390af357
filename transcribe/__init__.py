"""Automatic piano transcription: audio -> CQT -> BiLSTM onsets-and-frames -> notes -> MIDI.

The user API, imported lazily so that ``import transcribe`` and ``transcribe --help`` stay fast::

    from transcribe import Transcriber, transcribe_file
    notes = transcribe_file("recording.wav")              # the shipped model
    tr = Transcriber.from_checkpoint(backend="onnx")      # load once, transcribe many
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__

__all__ = ["Notes", "Transcriber", "transcribe_file", "__version__"]

if TYPE_CHECKING:
    from .infer import Transcriber, transcribe_file
    from .notes import Notes

_LAZY = {"Transcriber": "infer", "transcribe_file": "infer", "Notes": "notes"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
