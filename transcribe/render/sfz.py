"""SFZ sample libraries → SoundFont 2 presets that FluidSynth plays (through Polyphone).

Polyphone (Debian ``polyphone``) converts an SFZ file to SF2 headless, but it does not expand the
``#define``/``#include`` macros that most SFZ libraries use, ignores ``amp_veltrack``, and turns
the opcodes an SF2 cannot express into wrong sound (``group=``/``off_by=`` become an exclusive
class, i.e. a monophonic piano; regions without ``loop_mode`` are looped; ``trigger=release``
regions are played at the note-on). So an SFZ is first read here:

1. :func:`expand_macros` — ``#define $NAME value`` (in file order, a later define replaces an
   earlier one; a value may itself use macros) and ``#include "file"`` (relative to the top SFZ's
   folder, then to the including file's), comments removed;
2. :func:`parse_sfz` — ``<control>`` (``default_path``, ``set_cc``/``set_hdcc``),
   ``<global>``/``<master>``/``<group>``/``<region>`` inheritance, ``<curve>`` tables;
3. :func:`resolve_region` — the sound of each region with every MIDI controller at its default
   (``set_cc``/``set_hdcc``, else 0): CC-conditioned regions that are off at the defaults are
   dropped, ``*_oncc``/``*_curvecc`` modulations of release, hold, decay, volume and
   ``amp_veltrack`` are folded into plain values, ``group_volume``/``amplitude`` into ``volume``;
4. :func:`write_flat_sfz` — a macro-free SFZ of one ``<group>`` per source group with only the
   opcodes Polyphone maps to SF2, ``loop_mode=no_loop``, ``volume`` on every region (Polyphone
   drops a group's volume when its samples are stereo), sample paths relative to it (samples
   Polyphone cannot read, e.g. Ogg Vorbis, are transcoded to FLAC);
5. :func:`sfz_to_sf2` — runs Polyphone (``QT_QPA_PLATFORM=offscreen polyphone -1 ...``).

Release-triggered regions cannot be played by an SF2 preset; :func:`convert` writes them to a
second SF2 (program 1) that a renderer can play at the note-offs.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

HEADERS = ("control", "global", "master", "group", "region", "curve", "effect", "midi", "sample")
_MACRO = re.compile(r"\$[A-Za-z0-9_]+")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_LINE_COMMENT = re.compile(r"//[^\n]*")
_DIRECTIVE = re.compile(r"#(define|include)\b")
_TOKEN = re.compile(r"<(\w+)>|(?<![^\s>])([A-Za-z0-9_]+)=")
#: samples Polyphone 2.2 reads; others are transcoded to FLAC
POLYPHONE_SAMPLE_TYPES = (".wav", ".flac")
#: opcodes written to the flat SFZ (the ones Polyphone maps to SF2 generators)
FLAT_OPCODES = ("lokey", "hikey", "lovel", "hivel", "pitch_keycenter", "pitch_keytrack", "tune", "transpose",
                "volume", "pan", "offset", "end", "ampeg_delay", "ampeg_attack", "ampeg_hold", "ampeg_decay",
                "ampeg_sustain", "ampeg_release", "cutoff", "resonance", "fil_type")


class SfzError(RuntimeError):
    """An SFZ file that cannot be read or converted (the message names the file)."""


# ---------------------------------------------------------------------------------------------
# Macros


def _strip_comments(text: str) -> str:
    return _LINE_COMMENT.sub("", _BLOCK_COMMENT.sub(" ", text))


def substitute(text: str, defines: dict[str, str]) -> str:
    """Replace every ``$NAME`` of ``defines`` in ``text``. A ``$`` word that is not defined is
    replaced by its longest defined prefix (``$ART_$DYN`` = ``$ART`` + ``_`` + ``$DYN``), as ARIA
    does; a ``$`` word with no defined prefix is left as it is."""

    def one(m: re.Match) -> str:
        word = m.group(0)
        for end in range(len(word), 1, -1):
            if word[:end] in defines:
                return defines[word[:end]] + word[end:]
        return word

    return _MACRO.sub(one, text)


def _define_value(rest: str) -> tuple[str, int]:
    """The value of a ``#define`` (``rest`` starts after its name): up to the end of the line, or
    up to the next opcode, header or directive on the same line. Returns (value, length used)."""
    line_end = rest.find("\n")
    line = rest if line_end < 0 else rest[:line_end]
    m = re.search(r"\s+(?=<|#|[A-Za-z0-9_$]+=)", line.lstrip())
    lead = len(line) - len(line.lstrip())
    value = line.lstrip()[: m.start()] if m else line.strip()
    used = lead + (m.start() if m else len(line.lstrip()))
    return value.strip(), used


def _include_path(name: str, including: Path, root_dir: Path) -> Path:
    name = name.replace("\\", "/")
    for base in (root_dir, including.parent):
        p = base / name
        if p.is_file():
            return p
    raise SfzError(f"{including}: #include \"{name}\": no such file (looked in {root_dir} and {including.parent})")


def expand_macros(path: str | Path, defines: dict[str, str] | None = None, _root: Path | None = None,
                  _depth: int = 0) -> str:
    """The text of the SFZ file ``path`` with its ``#include`` files inserted, its ``#define``
    macros substituted and its comments removed. ``defines`` (updated in place) holds the macros
    defined so far, so an included file sees its includer's macros and vice versa."""
    path = Path(path)
    defines = {} if defines is None else defines
    root = path.parent if _root is None else _root
    if _depth > 32:
        raise SfzError(f"{path}: #include nested more than 32 deep (a file including itself?)")
    try:
        text = _strip_comments(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as err:
        raise SfzError(f"{path}: {err}") from err
    out: list[str] = []
    pos = 0
    while True:
        m = _DIRECTIVE.search(text, pos)
        if m is None:
            out.append(substitute(text[pos:], defines))
            break
        out.append(substitute(text[pos:m.start()], defines))
        rest = text[m.end():]
        if m.group(1) == "define":
            d = re.match(r"[ \t]+(\$[A-Za-z0-9_]+)", rest)
            if d is None:
                raise SfzError(f"{path}: #define without a $NAME: {rest.splitlines()[0] if rest else ''!r}")
            value, used = _define_value(rest[d.end():])
            defines[d.group(1)] = substitute(value, defines)
            pos = m.end() + d.end() + used
        else:
            inc = re.match(r"\s*\"([^\"]+)\"", rest)
            if inc is None:
                raise SfzError(f"{path}: #include without a quoted file name")
            target = _include_path(substitute(inc.group(1), defines), path, root)
            out.append("\n" + expand_macros(target, defines, root, _depth + 1) + "\n")
            pos = m.end() + inc.end()
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Headers and inheritance


@dataclass
class Region:
    """One ``<region>`` with every opcode it inherits (global < master < group < region)."""

    opcodes: dict[str, str]
    master: int          # index of the <master> (or -1) and <group> (or -1) it belongs to
    group: int
    default_path: str = ""

    def sample_path(self, sfz_dir: Path) -> Path:
        """The sample file: ``default_path`` + ``sample``, relative to the SFZ's folder."""
        sample = self.opcodes.get("sample", "").replace("\\", "/")
        return (Path(sfz_dir) / self.default_path.replace("\\", "/") / sample)


@dataclass
class Instrument:
    """An SFZ file read by :func:`parse_sfz`."""

    path: Path
    regions: list[Region]
    control: dict[str, str] = field(default_factory=dict)
    curves: dict[int, dict[int, float]] = field(default_factory=dict)

    def cc_defaults(self) -> dict[int, float]:
        """Controller values (0..1) before any MIDI arrives: ``set_cc`` (0..127), ``set_hdcc``
        (0..1); unset controllers are 0."""
        out: dict[int, float] = {}
        for k, v in self.control.items():
            m = re.fullmatch(r"set_(hd)?cc(\d+)", k)
            if m:
                out[int(m.group(2))] = float(v) if m.group(1) else float(v) / 127.0
        return out


def tokenize(text: str) -> list[tuple[str, str]]:
    """(``"<header>"``, "") and (opcode, value) pairs in order. A value runs to the next opcode
    or header, so values may contain spaces (``sample=PP C#1.flac``)."""
    out: list[tuple[str, str]] = []
    matches = list(_TOKEN.finditer(text))
    for i, m in enumerate(matches):
        if m.group(1):
            out.append((f"<{m.group(1)}>", ""))
            continue
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = " ".join(text[m.end():end].split())
        out.append((m.group(2), value))
    return out


def parse_text(text: str, path: str | Path = "<text>") -> Instrument:
    """Read macro-free SFZ text (see :func:`expand_macros`) into regions with inherited opcodes."""
    control: dict[str, str] = {}
    curves: dict[int, dict[int, float]] = {}
    levels: dict[str, dict[str, str]] = {"global": {}, "master": {}, "group": {}}
    regions: list[Region] = []
    current: dict[str, str] | None = None
    kind = None
    master = group = -1
    default_path = ""

    def close() -> None:
        nonlocal current
        if kind == "region" and current is not None:
            regions.append(Region({**levels["global"], **levels["master"], **levels["group"], **current},
                                  master, group, default_path))
        elif kind == "curve" and current is not None and "curve_index" in current:
            curves[int(current["curve_index"])] = {int(k[1:]): float(v) for k, v in current.items()
                                                   if re.fullmatch(r"v\d+", k)}
        current = None

    for key, value in tokenize(text):
        if key.startswith("<"):
            close()
            kind = key[1:-1]
            if kind not in HEADERS:
                raise SfzError(f"{path}: unknown header {key}")
            if kind == "global":
                levels = {"global": {}, "master": {}, "group": {}}
                current = levels["global"]
            elif kind == "master":
                master += 1
                levels["master"], levels["group"] = {}, {}
                current = levels["master"]
            elif kind == "group":
                group += 1
                levels["group"] = {}
                current = levels["group"]
            elif kind == "control":
                current = control
            else:  # region, curve, effect, ...
                current = {}
            continue
        if current is None:  # opcodes before any header: ignored, as samplers do
            continue
        current[key] = value
        if kind == "control" and key == "default_path":
            default_path = value
    close()
    return Instrument(Path(path), regions, control, curves)


def parse_sfz(path: str | Path, defines: dict[str, str] | None = None) -> Instrument:
    """Read an SFZ file: macros expanded (:func:`expand_macros`), headers inherited."""
    path = Path(path)
    return parse_text(expand_macros(path, dict(defines or {})), path)


# ---------------------------------------------------------------------------------------------
# The sound of a region at default controller values


_NOTE = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def note_number(value: str) -> int:
    """A MIDI key from an SFZ key value: ``60``, ``060``, ``c4``, ``C#4``, ``db4`` (C4 = 60)."""
    v = value.strip()
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    m = re.fullmatch(r"([a-gA-G])([#b]?)(-?\d+)", v)
    if m is None:
        raise ValueError(f"not a key: {value!r}")
    acc = {"#": 1, "b": -1, "": 0}[m.group(2)]
    return 12 * (int(m.group(3)) + 1) + _NOTE[m.group(1).lower()] + acc


def _builtin_curve(index: int, x: float) -> float:
    # ARIA's predefined curves (0..6); unknown ones are taken as linear
    return {0: x, 1: 2 * x - 1, 2: 1 - x, 3: 1 - 2 * x, 4: x * x, 5: math.sqrt(x), 6: math.sqrt(1 - x)}.get(index, x)


def curve_value(curves: dict[int, dict[int, float]], index: int, x: float) -> float:
    """Curve ``index`` at ``x`` (0..1): a ``<curve>`` of the file (points ``vNNN``, linear in
    between; missing ends are 0 and 1), else ARIA's predefined curve."""
    if index not in curves:
        return _builtin_curve(index, x)
    pts = dict(curves[index])
    pts.setdefault(0, 0.0)
    pts.setdefault(127, 1.0)
    xs = sorted(pts)
    pos = x * 127
    for a, b in zip(xs, xs[1:]):
        if a <= pos <= b:
            return pts[a] + (pts[b] - pts[a]) * ((pos - a) / (b - a) if b > a else 0.0)
    return pts[xs[-1]]


def _cc_value(cc: int, region_key: int, defaults: dict[int, float]) -> float:
    if cc == 131:            # note-on velocity: taken as full (the layers carry the dynamics)
        return 1.0
    if cc == 133:            # key number (ARIA extended CC)
        return region_key / 127.0
    return defaults.get(cc, 0.0)


def _cc_condition(op: str, value: str, defaults: dict[int, float]) -> bool | None:
    """Whether a ``loccN``/``hiccN`` condition holds at default values (None: not a condition)."""
    m = re.fullmatch(r"(lo|hi)cc(\d+)", op)
    if not m:
        return None
    cc = round(defaults.get(int(m.group(2)), 0.0) * 127)
    return cc >= float(value) if m.group(1) == "lo" else cc <= float(value)


#: folded modulations: base opcode → (kind); `X_onccN`, `X_curveccN` (and SFZ 1 `ampeg_XccN`)
_FOLD = ("ampeg_release", "ampeg_hold", "ampeg_decay", "ampeg_attack", "ampeg_sustain", "amp_veltrack",
         "volume", "amplitude", "pan")
#: modulations that scale (percent of full) rather than add
_MULTIPLY = ("amplitude",)


def resolve_region(region: Region, inst: Instrument) -> dict[str, str] | None:
    """The opcodes of ``region`` as it sounds with every controller at its default, or None if
    it is silent then (a ``loccN``/``hiccN`` condition fails, ``on_loccN``/``on_hiccN`` or
    ``trigger`` other than attack/release/first/legato, no sample, keys outside 0..127).

    Folded into plain values: ``X_onccN`` (times the curve ``X_curveccN`` of the controller's
    default value, CC133 = the region's key) for release/hold/decay/attack/sustain, volume,
    amplitude, pan and ``amp_veltrack``; ``group_volume``, ``master_volume``, ``global_volume``
    and ``amplitude``/``*_amplitude`` (percent) into ``volume``; ``key`` into
    ``lokey``/``hikey``/``pitch_keycenter``; note names into numbers."""
    ops = dict(region.opcodes)
    defaults = inst.cc_defaults()
    if not ops.get("sample") or ops.get("sample", "").startswith("*"):
        return None
    if any(k.startswith(("on_locc", "on_hicc", "start_locc", "start_hicc")) for k in ops):
        return None
    if ops.get("trigger", "attack") not in ("attack", "release", "first", "legato"):
        return None
    for k, v in ops.items():
        if _cc_condition(k, v, defaults) is False:
            return None
    if "key" in ops:
        k = note_number(ops.pop("key"))
        ops.setdefault("lokey", str(k))
        ops.setdefault("hikey", str(k))
        ops.setdefault("pitch_keycenter", str(k))
    for k in ("lokey", "hikey", "pitch_keycenter"):
        if k in ops:
            ops[k] = str(note_number(ops[k]))
    lo, hi = int(ops.get("lokey", 0)), int(ops.get("hikey", 127))
    if lo < 0 or hi < 0 or lo > 127 or lo > hi:
        return None
    key = int(ops.get("pitch_keycenter", (lo + hi) // 2))

    base: dict[str, float] = {}
    defaults_of = {"amp_veltrack": 100.0, "amplitude": 100.0}
    for name in _FOLD:
        if name in ops:
            base[name] = float(ops[name])
    for k, v in list(ops.items()):
        m = re.fullmatch(r"(\w+?)_?oncc(\d+)", k) or re.fullmatch(r"(ampeg_\w+?)cc(\d+)", k)
        if not m or m.group(1) not in _FOLD:
            continue
        name, cc = m.group(1), int(m.group(2))
        curve = int(float(ops.get(f"{name}_curvecc{cc}", 0)))
        x = _cc_value(cc, key, defaults)
        if name in _MULTIPLY:  # amplitude_onccN=100: times the controller's (curved) value
            base[name] = base.get(name, 100.0) * float(v) / 100.0 * curve_value(inst.curves, curve, x)
        else:
            base[name] = base.get(name, defaults_of.get(name, 0.0)) + float(v) * curve_value(inst.curves, curve, x)
    volume = base.get("volume", 0.0)
    for k in ("group_volume", "master_volume", "global_volume"):
        volume += float(ops.get(k, 0.0))
    amp = base.get("amplitude", 100.0) / 100.0
    for k in ("group_amplitude", "master_amplitude", "global_amplitude"):
        amp *= float(ops.get(k, 100.0)) / 100.0
    if amp <= 0:
        return None
    volume += 20 * math.log10(amp)
    out = {k: v for k, v in ops.items() if not (re.search(r"(on)?cc\d+$", k) or k.endswith(("_volume", "_amplitude")))}
    out.pop("amplitude", None)
    for name in ("ampeg_release", "ampeg_hold", "ampeg_decay", "ampeg_attack", "ampeg_sustain", "pan", "amp_veltrack"):
        if name in base:
            value = base[name]
            if name.startswith("ampeg_") and name != "ampeg_sustain":
                value = max(value, 0.0)
            out[name] = _fmt(value)
    out["volume"] = _fmt(volume)
    return out


def _fmt(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


# ---------------------------------------------------------------------------------------------
# Flat SFZ and Polyphone


@dataclass
class FlatGroup:
    """Regions of one source ``<group>``, resolved (:func:`resolve_region`), with samples."""

    key: tuple[int, int]
    regions: list[dict[str, str]]


def flat_groups(inst: Instrument, keep: Callable[[dict[str, str]], bool] | None = None,
                trigger: str = "attack") -> list[FlatGroup]:
    """Resolved regions of ``inst`` whose trigger is ``trigger`` (``attack`` also takes
    ``first``/``legato``), grouped by their source group; ``keep(opcodes)`` filters further.
    Every kept region's sample must exist (``SfzError`` names the missing ones)."""
    groups: dict[tuple[int, int], FlatGroup] = {}
    missing = []
    for r in inst.regions:
        ops = resolve_region(r, inst)
        if ops is None:
            continue
        t = ops.get("trigger", "attack")
        if (t == "release") != (trigger == "release"):
            continue
        if keep is not None and not keep(ops):
            continue
        sample = r.sample_path(inst.path.parent)
        if not sample.is_file():
            missing.append(str(sample))
            continue
        ops["sample"] = str(sample.resolve())
        groups.setdefault((r.master, r.group), FlatGroup((r.master, r.group), [])).regions.append(ops)
    if missing:
        raise SfzError(f"{inst.path}: {len(missing)} sample(s) not found, e.g. {missing[:3]}")
    return list(groups.values())


def _transcode(sample: Path, cache: Path) -> Path:
    """``sample`` as FLAC in ``cache`` (for sample types Polyphone cannot read)."""
    import soundfile as sf

    tag = hashlib.sha1(str(sample.resolve()).encode()).hexdigest()[:8]  # same name in every run
    out = cache / f"{sample.stem}-{tag}.flac"
    if not out.is_file():
        y, sr = sf.read(str(sample), dtype="float32", always_2d=True)
        cache.mkdir(parents=True, exist_ok=True)
        sf.write(str(out), y, sr, subtype="PCM_24")
    return out


def write_flat_sfz(groups: Iterable[FlatGroup], out: str | Path, transcode_dir: str | Path | None = None,
                   release_as_attack: bool = False) -> Path:
    """Write a macro-free SFZ Polyphone can read: one ``<group>`` per source group holding the
    opcodes its regions share, ``loop_mode=no_loop``, only :data:`FLAT_OPCODES` (volumes shifted
    down together when one is above 0 dB, which an SF2 cannot play), and sample
    paths relative to ``out``. Samples that are not WAV/FLAC are transcoded to FLAC in
    ``transcode_dir`` (default: ``<out stem>_samples/`` beside ``out``). ``release_as_attack``
    is for the release SF2: the release regions become ordinary ones (played by a note-on)."""
    out = Path(out)
    groups = list(groups)
    out.parent.mkdir(parents=True, exist_ok=True)
    # an SF2 attenuation cannot be negative: shift every volume so that the loudest is 0 dB
    top = max((float(ops.get("volume", 0)) for g in groups for ops in g.regions), default=0.0)
    cache = Path(transcode_dir) if transcode_dir else out.parent / f"{out.stem}_samples"
    lines = [f"// flat SFZ written by transcribe.render.sfz ({'release' if release_as_attack else 'attack'} regions)"]
    for g in groups:
        regs = []
        for ops in g.regions:
            sample = Path(ops["sample"])
            if sample.suffix.lower() not in POLYPHONE_SAMPLE_TYPES:
                sample = _transcode(sample, cache)
            r = {k: v for k, v in ops.items() if k in FLAT_OPCODES}
            if top > 0:
                r["volume"] = _fmt(float(ops.get("volume", 0)) - top)
            r["sample"] = os.path.relpath(sample, out.parent).replace(os.sep, "/")
            regs.append(r)
        if not regs:
            continue
        # volume and pan stay on the regions: Polyphone 2.2 replaces a group's volume by its -3 dB
        # stereo compensation when the samples are stereo (measured), so it would be lost there
        common = {k: v for k, v in regs[0].items()
                  if k not in ("sample", "volume", "pan") and all(r.get(k) == v for r in regs)}
        lines.append("")
        lines.append("<group> " + " ".join(f"{k}={v}" for k, v in {**common, "loop_mode": "no_loop"}.items()))
        for r in regs:
            own = [f"{k}={v}" for k, v in r.items() if k not in common and k != "sample"]
            lines.append("<region> " + " ".join(own + [f"sample={r['sample']}"]))
    out.write_text("\n".join(lines) + "\n")
    return out


def polyphone_binary(binary: str = "polyphone") -> str | None:
    """Path of the Polyphone command, or None when it is not installed."""
    return shutil.which(binary)


def sfz_to_sf2(sfz: str | Path, sf2: str | Path, binary: str = "polyphone", timeout_s: float = 1800) -> list[str]:
    """Convert a flat SFZ (:func:`write_flat_sfz`) to ``sf2`` with Polyphone, headless. Returns
    Polyphone's warnings (e.g. ``opcode not supported: ...``); raises :class:`SfzError` naming
    the file when Polyphone is missing, fails, or writes nothing."""
    sfz, sf2 = Path(sfz), Path(sf2)
    exe = polyphone_binary(binary)
    if exe is None:
        raise SfzError(f"{sfz}: cannot convert to SF2: {binary} not found (Debian: apt-get install polyphone)")
    if not sfz.is_file():
        raise SfzError(f"{sfz}: no such SFZ file")
    sf2.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sfz2sf2-", dir=sf2.parent) as tmp:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": tmp}
        cmd = [exe, "-1", "-i", str(sfz.resolve()), "-d", tmp, "-o", "out"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired as err:
            raise SfzError(f"{sfz}: polyphone took more than {timeout_s:.0f} s") from err
        log = (proc.stdout + proc.stderr).strip()
        made = Path(tmp) / "out.sf2"
        if proc.returncode != 0 or not made.is_file() or made.stat().st_size == 0:
            raise SfzError(f"{sfz}: polyphone failed (exit {proc.returncode}): {log[-2000:]}")
        os.replace(made, sf2)
    return [line.strip('"') for line in log.splitlines() if "not supported" in line or "rror" in line]


def set_sf2_preset(sf2: str | Path, bank: int = 0, program: int = 0, name: str | None = None) -> None:
    """Set the bank/program (and name) of the first preset of an SF2 file in place (Polyphone's
    SFZ import always writes 0/0, named after the file)."""
    path = Path(sf2)
    data = bytearray(path.read_bytes())
    pos = data.find(b"phdr")
    if pos < 0:
        raise SfzError(f"{path}: no preset headers (not an SF2 file?)")
    rec = pos + 8
    if name is not None:
        data[rec:rec + 20] = name.encode("ascii", "replace")[:19].ljust(20, b"\0")
    struct.pack_into("<HH", data, rec + 20, program, bank)
    path.write_bytes(bytes(data))


@dataclass
class Conversion:
    """What :func:`convert` made: the SF2 (and the release SF2, if the SFZ has release
    samples), the number of regions in each, and Polyphone's warnings."""

    sf2: Path
    regions: int
    release_sf2: Path | None
    release_regions: int
    warnings: list[str]


def convert(sfz: str | Path, sf2: str | Path, keep: Callable[[dict[str, str]], bool] | None = None,
            work_dir: str | Path | None = None, name: str | None = None, binary: str = "polyphone",
            release: bool = True, instrument: Instrument | None = None) -> Conversion:
    """SFZ file → ``sf2`` (one preset, bank 0 program 0, named ``name``): macros expanded, flat
    SFZ written to ``work_dir`` (default: beside ``sf2``), converted with Polyphone. Release
    regions (``trigger=release``), which an SF2 preset cannot trigger, go to
    ``<sf2 stem>-release.sf2`` as bank 0 program 1 (``release=False``: dropped)."""
    sf2 = Path(sf2)
    work = Path(work_dir) if work_dir else sf2.parent
    inst = instrument or parse_sfz(sfz)
    name = name or sf2.stem
    attack = flat_groups(inst, keep, "attack")
    n = sum(len(g.regions) for g in attack)
    if n == 0:
        raise SfzError(f"{sfz}: no playable regions")
    flat = write_flat_sfz(attack, work / f"{sf2.stem}.flat.sfz", work / f"{sf2.stem}_samples")
    warnings = sfz_to_sf2(flat, sf2, binary)
    set_sf2_preset(sf2, 0, 0, name)
    rel_path, n_rel = None, 0
    rel = flat_groups(inst, keep, "release") if release else []
    n_rel = sum(len(g.regions) for g in rel)
    if n_rel:
        rel_path = sf2.with_name(f"{sf2.stem}-release.sf2")
        flat_rel = write_flat_sfz(rel, work / f"{sf2.stem}-release.flat.sfz", work / f"{sf2.stem}_samples",
                                  release_as_attack=True)
        warnings += sfz_to_sf2(flat_rel, rel_path, binary)
        set_sf2_preset(rel_path, 0, 1, f"{name}-release")
    return Conversion(sf2, n, rel_path, n_rel, warnings)


def layer_velocities(groups: Iterable[FlatGroup]) -> list[int]:
    """Every velocity at which a layer starts or ends (``lovel``/``hivel`` of the regions, 1 and
    127 included). Attack latency is a property of each sample, so measuring it at these
    velocities (``latency.velocities``) and interpolating between them never mixes two layers'
    samples; a grid that straddles a layer boundary does (measured: onset errors up to 5.6 ms on
    Salamander and 14.5 ms on Headroom's Decca preset with the default 9-velocity grid, 1.5 and
    1.6 ms with their layer edges)."""
    out = {1, 127}
    for g in groups:
        for ops in g.regions:
            out.add(min(max(int(ops.get("lovel", 1)), 1), 127))
            out.add(min(max(int(ops.get("hivel", 127)), 1), 127))
    return sorted(out)
