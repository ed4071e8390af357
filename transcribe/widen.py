"""Widen a trained network without changing what it computes (Net2Net's goal, by zero fan-out):
a checkpoint of a narrower :class:`~transcribe.model.ModelConfig` (fewer convolution channels, a
smaller front end, smaller BiLSTMs) is loaded into a wider network so that every old unit keeps
its weights, every new unit gets its fresh random fan-in, and the weights from new units into old
units and into the heads start at zero. The wider network's outputs are then those of the
narrow one (to float rounding), and training grows the new units from there.

Why: on 2026-11-22 the shipped 1.9 M-parameter network scored the same note F1 on its own
training files as on held-out ones (renders 0.827 / 0.807, MAPS pianos 0.808 / 0.854;
``scripts/error_analysis.py``) with a flat training loss: it underfits, so more capacity is the
lever; widening keeps the weeks of training already in it.
"""

from __future__ import annotations

import numpy as np
import torch

from .model import ModelConfig, OnsetsAndFrames
from .notes import N_KEYS


def can_widen(old: ModelConfig, new: ModelConfig) -> bool:
    """Whether ``new`` is ``old`` with every size the same or larger (and at least one larger)."""
    if len(old.conv_channels) != len(new.conv_channels) or old.without_pedal() == new.without_pedal():
        return False
    if not old.arch == new.arch == "onsets_frames" or old.harmonic_branch != new.harmonic_branch:
        return False  # only the onsets-and-frames sizes widen (a harmonic branch is grafted instead)
    sizes = [*zip(old.conv_channels, new.conv_channels), (old.frontend_size, new.frontend_size),
             (old.lstm_hidden, new.lstm_hidden)]
    if old.pedal_head and new.pedal_head:
        sizes.append((old.pedal_hidden, new.pedal_hidden))
    return all(a <= b for a, b in sizes)


def _gates(h_old: int, h_new: int) -> np.ndarray:
    """Rows of an LSTM's four stacked gates (i, f, g, o) of ``h_old`` units in one of ``h_new``."""
    return np.concatenate([g * h_new + np.arange(h_old) for g in range(4)])


def _blocks(*parts: tuple[int, int]) -> np.ndarray:
    """Positions of concatenated inputs: ``parts`` are (old size, new size) in order; each old
    block is the prefix of its new block."""
    out, start = [], 0
    for old, new in parts:
        out.append(start + np.arange(old))
        start += new
    return np.concatenate(out)


def _index_maps(key: str, old: ModelConfig, new: ModelConfig, f4: int) -> list[np.ndarray]:
    """For the tensor ``key`` of the state dict: per leading axis, where each old index goes
    (``f4``: the frequency bins after the front end's pooling)."""
    c_old, c_new = old.conv_channels, new.conv_channels
    f, h, ph = (old.frontend_size, new.frontend_size), (old.lstm_hidden, new.lstm_hidden), \
        (old.pedal_hidden, new.pedal_hidden)
    keys = (N_KEYS, N_KEYS)
    module, _, name = key.rpartition(".")
    if module.startswith("frontend.conv."):
        layer = int(module.rsplit(".", 1)[1])
        conv_out = {0: 0, 1: 0, 3: 1, 4: 1, 8: 2, 9: 2}[layer]
        rows = np.arange(c_old[conv_out])
        if name == "weight" and layer in (3, 8):  # a convolution's input channels: the previous layer's
            return [rows, np.arange(c_old[conv_out - 1])]
        return [rows]
    if module == "frontend.fc.0":
        if name == "weight":  # channel-major [C, F/4] flattening: each old channel's block
            return [np.arange(f[0]), np.concatenate([c * f4 + np.arange(f4) for c in range(c_old[-1])])]
        return [np.arange(f[0])]
    if module.endswith("_rnn.rnn"):
        hid = ph if module.startswith("pedal") else h
        rows = _gates(*hid)
        if name.startswith("bias"):
            return [rows]
        if name.startswith("weight_hh"):
            return [rows, np.arange(hid[0])]
        inputs = {"onset_rnn.rnn": _blocks(f),
                  "frame_rnn.rnn": _blocks(f, keys, keys),
                  "pedal_rnn.rnn": _blocks(f, keys)}[module]
        return [rows, inputs]
    if module in ("onset_head", "offset_head", "frame_head", "velocity_head", "pedal_head"):
        n_out = 3 if module == "pedal_head" else N_KEYS
        rows = np.arange(n_out)
        if name == "bias":
            return [rows]
        hid = ph if module == "pedal_head" else h
        inputs = _blocks(f) if module == "velocity_head" else _blocks(hid, hid, f)
        return [rows, inputs]
    raise KeyError(f"no widening rule for {key}")


def widen_state(weights: dict[str, torch.Tensor], old: ModelConfig, model: OnsetsAndFrames) -> dict[str, torch.Tensor]:
    """A state dict for ``model`` (the wider network, freshly initialised) that computes what
    ``weights`` (of a network of config ``old``) computed. Tensors of ``model`` that ``weights``
    lacks (a pedal head the checkpoint has not) keep their fresh values."""
    new = model.cfg
    if not can_widen(old, new):
        raise ValueError(f"cannot widen {old} into {new}: every size must be the same or larger")
    f4 = model.n_bins // 4
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for key, value in weights.items():
        if key not in state:
            continue
        target = state[key]
        if key.endswith("num_batches_tracked"):
            target.copy_(value)
            continue
        maps = _index_maps(key, old, new, f4)
        if len(maps) > 1:
            target[torch.as_tensor(maps[0])] = 0.0  # old units: nothing from new inputs
        index = np.ix_(*maps) if len(maps) > 1 else maps[0]
        target[index] = value.to(target.dtype)
    return state
