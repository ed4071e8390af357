"""The one MIDI event builder and writer: every MIDI file the package makes (the transcription's
``.mid``, the beat-aligned ``.mid`` of ``--midi-tempo``, the file FluidSynth plays for
``--sonify`` and the renderer's files) is built from :class:`Events` and written by
:func:`track` / :func:`midi_file`.

One ordering rule for events at the same tick (pretty_midi's, so the transcription's ``.mid`` is
byte for byte what pretty_midi writes): control changes first, then notes by key, then by
velocity, so a key's note-off (velocity 0) comes before its next note-on; then by channel.
Tracks use running status as mido writes it (a meta event breaks it).

Hand-written rather than through mido's message objects: the events are numpy arrays and the
track is encoded vectorised, a few bytes per note (mido or pretty_midi objects took hundreds of
MB for the notes of a 10-hour recording).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

NOTE_ON, NOTE_OFF, CONTROL_CHANGE, PROGRAM_CHANGE = 0x90, 0x80, 0xB0, 0xC0
SUSTAIN = 64  # the sustain pedal's controller
_RANK = {CONTROL_CHANGE: 8, NOTE_ON: 10, NOTE_OFF: 10}  # pretty_midi's secondary order at a tick


@dataclass
class Events:
    """Channel events as parallel int64 arrays: absolute tick, status (with channel), data bytes."""

    ticks: np.ndarray
    status: np.ndarray
    data1: np.ndarray
    data2: np.ndarray

    def __post_init__(self) -> None:
        self.ticks, self.status, self.data1, self.data2 = (np.asarray(a, dtype=np.int64).reshape(-1) for a in
                                                           (self.ticks, self.status, self.data1, self.data2))

    @classmethod
    def empty(cls) -> "Events":
        return cls(*(np.zeros(0, np.int64) for _ in range(4)))

    def __len__(self) -> int:
        return len(self.ticks)

    def __add__(self, other: "Events") -> "Events":
        return Events(*(np.concatenate([a, b]) for a, b in zip(
            (self.ticks, self.status, self.data1, self.data2), (other.ticks, other.status, other.data1, other.data2))))

    def sorted(self) -> "Events":
        """In file order: by tick, then the module's rule (control changes, then notes by key and
        velocity, note-off first; then channel)."""
        kind = self.status & 0xF0
        rank = np.where(kind == CONTROL_CHANGE, _RANK[CONTROL_CHANGE], _RANK[NOTE_ON])
        order = np.lexsort((self.status & 0x0F, rank * 65536 + self.data1 * 256 + self.data2, self.ticks))
        return Events(self.ticks[order], self.status[order], self.data1[order], self.data2[order])


def note_events(on_ticks: np.ndarray, off_ticks: np.ndarray, pitches: np.ndarray, velocities: np.ndarray,
                channel: int = 0, note_off: bool = False) -> Events:
    """A note-on (velocity clipped to 1..127) at each ``on_ticks`` and its note-off at ``off_ticks``:
    a note-on of velocity 0 (as pretty_midi writes them), or with ``note_off`` a note-off message."""
    n = len(on_ticks)
    off_status = (NOTE_OFF if note_off else NOTE_ON) | channel
    return Events(np.concatenate([off_ticks, on_ticks]),
                  np.concatenate([np.full(n, off_status), np.full(n, NOTE_ON | channel)]),
                  np.concatenate([pitches, pitches]),
                  np.concatenate([np.zeros(n, np.int64), np.clip(velocities, 1, 127)]))


def control_events(ticks: np.ndarray, control: int, values: np.ndarray, channel: int = 0) -> Events:
    """Control change ``control`` to ``values`` at ``ticks``."""
    n = len(ticks)
    return Events(ticks, np.full(n, CONTROL_CHANGE | channel), np.full(n, control), values)


def sustain_events(spans: np.ndarray) -> list[tuple[float, int]]:
    """(time s, CC64 value) events of the sustain pedal spans [n, 2] (down, up seconds): 127 at
    each press, 0 at each release."""
    from .notes import as_spans

    return [e for a, b in as_spans(spans) for e in ((float(a), 127), (float(b), 0))]


def pedal_events(spans: np.ndarray, ticks_per_second: float) -> Events:
    """The sustain pedal spans [n, 2] (down, up seconds) as CC64 127 / 0 (:func:`sustain_events`)."""
    events = sustain_events(spans)
    if not events:
        return Events.empty()
    t, v = np.array(events, dtype=np.float64).T
    return control_events(np.round(t * ticks_per_second).astype(np.int64), SUSTAIN, v.astype(np.int64))


# ---------------------------------------------------------------------------- messages at a tick


def vlq(n: int) -> bytes:
    """``n`` as a MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def meta(kind: int, data: bytes) -> bytes:
    """A meta event (no delta time)."""
    return bytes([0xFF, kind]) + vlq(len(data)) + data


def tempo(us_per_beat: int) -> bytes:
    return meta(0x51, int(us_per_beat).to_bytes(3, "big"))


def time_signature(numerator: int, denominator: int) -> bytes:
    return meta(0x58, bytes([numerator, int(np.log2(denominator)), 24, 8]))


def key_signature(sharps: int, minor: bool) -> bytes:
    return meta(0x59, struct.pack(">bB", sharps, int(minor)))


def track_name(name: str) -> bytes:
    return meta(0x03, name.encode("latin-1"))


def channel(status: int, *data: int) -> bytes:
    """A channel message (e.g. ``channel(PROGRAM_CHANGE | 0, 5)``)."""
    return bytes([status, *data])


# ---------------------------------------------------------------------------- the writer


def _encode(events: Events, running: int | None, first_tick: int) -> bytes:
    """``events`` (sorted, at ticks >= ``first_tick``) as delta times and messages with running
    status (``running``: the status in force before them); vectorised."""
    if len(events) == 0:
        return b""
    ticks, status, data1, data2 = events.ticks, events.status, events.data1, events.data2
    delta = np.diff(ticks, prepend=first_tick)
    size = 1 + (delta >= 1 << 7) + (delta >= 1 << 14) + (delta >= 1 << 21)
    has_status = status != np.concatenate(([-1 if running is None else running], status[:-1]))
    two = (status & 0xF0) != PROGRAM_CHANGE  # program change has one data byte
    length = size + 1 + two + has_status
    start = np.concatenate(([0], np.cumsum(length)[:-1]))
    out = np.zeros(int(length.sum()), dtype=np.uint8)
    for k in range(4):
        has = size > k
        out[start[has] + size[has] - 1 - k] = ((delta[has] >> (7 * k)) & 0x7F) | (0x80 if k else 0)
    data = start + size
    out[data[has_status]] = status[has_status]
    data = data + has_status
    out[data] = data1
    out[data[two] + 1] = data2[two]
    return out.tobytes()


def track(timed: list[tuple[int, bytes]] = (), events: Events | None = None, end_tick: int | None = None,
          end_delta: int = 0) -> bytes:
    """An ``MTrk`` chunk: the messages ``timed`` (tick, message bytes from :func:`meta` /
    :func:`channel`; sorted by tick, stable), then ``events`` (sorted here by the module's rule;
    none may come before the last of ``timed``), then the end of the track at ``end_tick`` (not
    before the last event), or ``end_delta`` ticks after the last event."""
    body, last, running = bytearray(), 0, None
    for tick, msg in sorted(timed, key=lambda e: e[0]):
        body += vlq(tick - last)
        if msg[0] < 0xF0 and msg[0] == running:
            body += msg[1:]
        else:
            body += msg
        running = msg[0] if msg[0] < 0xF0 else None
        last = tick
    if events is not None and len(events):
        events = events.sorted()
        if events.ticks[0] < last:
            raise ValueError("channel events before the track's timed messages")
        body += _encode(events, running, last)
        last = int(events.ticks[-1])
    end = max(end_tick - last, 0) if end_tick is not None else end_delta
    body += vlq(end) + meta(0x2F, b"")
    return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def midi_file(tracks: list[bytes], resolution: int) -> bytes:
    """A standard MIDI file (format 1) of ``tracks`` at ``resolution`` ticks a beat."""
    return b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), resolution) + b"".join(tracks)
