"""The FluidSynth command: found on the PATH, and run on a MIDI file into a WAV file (faster than
real time, no audio device). Its one home, used by the renderer of training audio
(:mod:`transcribe.render.synth`) and by the playback of transcriptions (:mod:`transcribe.sonify`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def fluidsynth_binary(binary: str = "fluidsynth") -> str | None:
    """Path of the FluidSynth command, or None when it is not installed."""
    return shutil.which(binary)


def run_fluidsynth(midi_path: str | Path, soundfonts: list[str], synth, wav_path: str | Path,
                   timeout_s: float | None = None) -> None:
    """Render a MIDI file with the FluidSynth command into a float WAV file at ``wav_path`` (stereo,
    ``synth.sample_rate``; faster than real time, no audio device). ``synth`` holds binary,
    sample_rate, gain, polyphony, reverb, chorus, timeout_s (``conf/render.yaml``, or
    :class:`transcribe.sonify.SynthSettings`); ``timeout_s`` overrides its timeout. Raises
    FileNotFoundError when FluidSynth is not installed, RuntimeError when it fails or cannot load
    a SoundFont (it then exits 0 and writes silence, so its messages are read)."""
    binary = fluidsynth_binary(synth.binary)
    if binary is None:
        raise FileNotFoundError(f"{synth.binary}: FluidSynth not found (Debian: apt-get install fluidsynth)")
    wav = Path(wav_path)
    cmd = [binary, "-n", "-i", "-q", "-R", "1" if synth.reverb else "0", "-C", "1" if synth.chorus else "0",
           "-g", str(synth.gain), "-r", str(int(synth.sample_rate)), "-O", "float", "-T", "wav",
           "-o", f"synth.polyphony={int(synth.polyphony)}", "-o", "synth.dynamic-sample-loading=1",
           "-F", str(wav), *map(str, soundfonts), str(midi_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s or synth.timeout_s)
    said = (proc.stderr.strip() or proc.stdout.strip()).replace("\n", " ")
    if proc.returncode != 0 or not wav.is_file():
        raise RuntimeError(f"fluidsynth failed ({proc.returncode}): {said}")
    if "Failed to load" in said or "not a SoundFont" in said:
        raise RuntimeError(f"fluidsynth could not load a SoundFont of {', '.join(map(str, soundfonts))}: {said}")
