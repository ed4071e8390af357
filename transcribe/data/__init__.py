"""Datasets: folders of audio with note labels (MAPS layout, audio + MIDI pairs) and split tables (MAESTRO)."""
