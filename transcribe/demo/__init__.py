"""The demo clip shipped with the package: ``transcribe --demo`` transcribes it.

``demo.flac`` (about 21 s, 16 kHz mono) is the first 16 bars of the Minuet in G major,
BWV Anh. 114 (Christian Petzold, from the 1725 Notebook for Anna Magdalena Bach), played through
the Splendid Grand Piano (public-domain AKAI Steinway samples) by the project's FluidSynth
renderer; ``demo.tsv`` and ``demo.pedal.tsv`` are its labels (the notes and sustain pedal as
rendered), ``demo.json`` what the command says about it. ``scripts/make_demo.py`` (settings in
``conf/demo.yaml``) makes all four; README.md here says where everything comes from.
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
DEMO_AUDIO = DEMO_DIR / "demo.flac"
DEMO_LABELS = DEMO_DIR / "demo.tsv"
DEMO_PEDAL = DEMO_DIR / "demo.pedal.tsv"
DEMO_ABOUT = DEMO_DIR / "demo.json"


def about() -> dict:
    """What the clip is: ``piece``, ``piano``, ``licence``, ``seconds``, ``notes``, ... (demo.json)."""
    return json.loads(DEMO_ABOUT.read_text())


def describe() -> str:
    """One line for people: the piece, the piano, the length."""
    a = about()
    return f"{a['piece']}, played by the {a['piano']} ({a['seconds']:.0f} s)"
