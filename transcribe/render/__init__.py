"""Rendering labelled training audio: note sources → playable notes → a synthesiser → audio +
labels in the layout the datasets read (:mod:`transcribe.data.layout`).

- :mod:`.sources` — where notes come from (label folders, :mod:`.scores` for music21's corpus,
  :mod:`.generate` for generated material) and which pianos play each piece;
- :mod:`.prepare` — notes as they will be rendered and labelled;
- :mod:`.synth` — piano presets and FluidSynth;
- :mod:`.latency` — per-key attack latency, compensated so onsets land on the labels;
- :mod:`.run` — ``transcribe-render`` (Hydra, ``conf/render.yaml``).
"""
