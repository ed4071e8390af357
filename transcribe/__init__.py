"""Automatic piano transcription: audio -> CQT -> BiLSTM onsets-and-frames -> notes -> MIDI.

Heavy dependencies (torch, librosa) are imported by the modules that need them, so that
``import transcribe`` and ``transcribe --help`` stay fast.
"""

__version__ = "0.1.0"
