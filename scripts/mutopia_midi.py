#!/usr/bin/env python
"""Score MIDI of keyboard solos from the Mutopia Project (LilyPond sources under Public Domain or
Creative Commons licences), compiled by LilyPond, in the layout ``train_beat_model.py
--extra-midi`` reads (:func:`quantised_files`, :func:`quantised_piece`):

    data/midi/mutopia/midis/<stem>.mid    one file per \\score with a \\midi block (LilyPond writes
                                          the time signatures and tempi; one track per staff)
    data/midi/mutopia/metadata.csv        midi, composer, title, license, source, ...
    data/midi/mutopia/log.jsonl           one record per main .ly file tried (resume state)
    data/midi/mutopia/test_works.csv      pieces left out as works of the test set

    python scripts/mutopia_midi.py --extract /work/.mirror/MutopiaProject+MutopiaProject/repo
    nice -n 19 python scripts/mutopia_midi.py --limit 300 --max-minutes 60

Kept: ``mutopiainstrument`` made only of piano, pianoforte, fortepiano, harpsichord, clavichord
or clavier (``--piano-only``: the first three); licences that allow commercial use (Public
Domain, CC0, CC BY, CC BY-SA; no NonCommercial or NoDerivatives one). Works of the test set
(``transcribe.render.filter.check`` on composer and title + subtitle + opus) and the files of
ASAP's held-out works (``--exclude-stems``) are never compiled.
Of a score kept per paper size (``-a4``/``-let``) one copy is compiled, and of a score with a
MIDI version (``X-mid.ly``) only that.

Sources of an older LilyPond are converted by ``convert-ly -e`` in a temporary copy. Only the
\\midi output is made: a settings file drops every \\layout from the scores, so nothing is
engraved (a file with no \\midi block at all gets the default one), and logs where the bars
start. Each MIDI file is then made to read as the score in pretty_midi (:func:`align_bars`): key
signatures moved into the first track, a pickup given the silence that completes its bar (else
every downbeat would be a pickup's length early), time signatures moved onto bar starts and
restated after a bar cut short; a file whose downbeats still are not its bars is not kept, nor
one whose notes equal another's of the same piece. One LilyPond process at a time, each at ``nice -n 19``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYBOARDS = {"piano", "pianoforte", "fortepiano", "harpsichord", "clavichord", "clavier"}
PIANOS = {"piano", "pianoforte", "fortepiano"}
LICENCE_KEYS = ("license", "mutopialicense", "mutopiacopyright", "copyright")
TITLE_KEYS = ("title", "subtitle", "subsubtitle", "opus", "mutopiatitle", "mutopiaopus")
META_COLUMNS = ["midi", "composer", "title", "license", "source", "ly", "instrument", "opus",
                "maintainer", "mutopia_id", "ly_version"]
#: Mutopia files of the works on ASAP's validation side (``transcribe.data.asap.split``: Bach fugue
#: BWV 860, Beethoven sonata 17 mvt 1, Chopin ballade 4; its others, BWV 867's prelude, sonata 29
#: mvt 4, Liszt's Paganini étude 6 and Prokofiev's toccata, are not in Mutopia's keyboard solos)
HELD_OUT_STEMS = ("BachJS_BWV860_BWV860_Fuga15", "BeethovenLv_O31_LVB_Sonate_31no2_1", "ChopinFF_O52_ballade-4")
REPO_URL = "https://github.com/MutopiaProject/MutopiaProject/blob"

#: LilyPond settings (``-dinclude-settings``): every score keeps only its \midi output
#: definitions, so no page is laid out (``mutopia-add-midi`` gives scores without one the default),
#: and a Score performer prints where its bars start and how long they are (``start:length`` in
#: whole notes from the start, at every time step where they change; with a pickup LilyPond's
#: measurePosition is negative, so the first start is the pickup's length), one line a score.
MIDI_ONLY = r"""
#(define (mutopia-bar-logger context)
   (let ((starts '()))
     (make-performer
      ((stop-translation-timestep performer)
       (let ((now (ly:moment-main (ly:context-current-moment context)))
             (pos (ly:context-property context 'measurePosition #f))
             (len (ly:context-property context 'measureLength #f)))
         (if (and (ly:moment? pos) (ly:moment? len) (ly:context-property context 'timing #f))
             (let ((bar (cons (- now (ly:moment-main pos)) (ly:moment-main len))))
               (if (or (null? starts) (not (equal? bar (car starts))))
                   (set! starts (cons bar starts)))))))
      ((finalize performer)
       (ly:message "MUTOPIA-BARS ~a"
                   (string-join (map (lambda (b) (format #f "~a:~a" (car b) (cdr b))) (reverse starts)) " "))))))
\midi { \context { \Score \consists #mutopia-bar-logger } }
#(define unfold-repeats  ; for \applyMusic #unfold-repeats of old sources, where it took only the music
   (let ((unfold (@ (lily) unfold-repeats)))
     (case-lambda ((music) (unfold '() music)) ((types music) (unfold types music)))))
#(define (mutopia-midi-only score)
   (let* ((defs (filter (lambda (d) (eq? (ly:output-def-lookup d 'output-def-kind #f) 'midi))
                        (ly:score-output-defs score)))
          (defs (if (and (null? defs) mutopia-add-midi) (list $defaultmidi) defs)))
     (and (pair? defs)
          (let ((s (ly:make-score (ly:score-music score))))
            (if (module? (ly:score-header score)) (ly:score-set-header! s (ly:score-header score)))
            (for-each (lambda (d) (ly:score-add-output-def! s d)) defs)
            s))))
#(define (mutopia-wrap handler)
   (lambda args
     (let ((s (mutopia-midi-only (last args))))
       (if s (apply handler (append (drop-right args 1) (list s)))))))
#(define toplevel-score-handler (mutopia-wrap toplevel-score-handler))
#(define book-score-handler (mutopia-wrap book-score-handler))
#(define bookpart-score-handler (mutopia-wrap bookpart-score-handler))
"""


# ---------------------------------------------------------------- reading LilyPond sources

def strip_comments(text: str) -> str:
    """LilyPond text without ``% line`` and ``%{ block %}`` comments (strings kept intact)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("%{", i):
            j = text.find("%}", i + 2)
            i = n if j < 0 else j + 2
        elif c == "%":
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


_FIELD = re.compile(r'([A-Za-z][\w-]*)\s*=\s*#?"((?:[^"\\]|\\.)*)"')
_INCLUDE = re.compile(r'\\include\s*"([^"]+)"')
_VERSION = re.compile(r'\\version\s*"(\d+)\.(\d+)(?:\.(\d+))?"')


def header_blocks(text: str) -> list[str]:
    """The bodies of the ``\\header { ... }`` blocks of comment-free LilyPond text, in order."""
    blocks = []
    for m in re.finditer(r"\\header\s*\{", text):
        depth, i, in_str = 1, m.end(), False
        while i < len(text) and depth:
            c = text[i]
            if in_str:
                if c == "\\":
                    i += 1
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        blocks.append(text[m.end():i - 1])
    return blocks


def header_fields(text: str) -> dict[str, str]:
    """``key = "value"`` fields of the header blocks (the first value of a key wins; keys lower-cased;
    values with ``\\"`` unescaped and white space collapsed)."""
    fields: dict[str, str] = {}
    for block in header_blocks(strip_comments(text)):
        for m in _FIELD.finditer(block):
            fields.setdefault(m.group(1).lower(), " ".join(m.group(2).replace('\\"', '"').split()))
    return fields


def inline_includes(path: Path, depth: int = 0, seen: set[Path] | None = None) -> str:
    """The text of ``path`` with the files it ``\\include``-s inlined (relative to the including
    file, as LilyPond 2.24 resolves them; system files such as ``english.ly`` are not found and
    left out). A file is read once."""
    seen = set() if seen is None else seen
    path = path.resolve()
    if path in seen or depth > 10:
        return ""
    seen.add(path)
    text = path.read_text(encoding="utf-8", errors="replace")

    def sub(m: re.Match) -> str:
        target = path.parent / m.group(1)
        return inline_includes(target, depth + 1, seen) if target.is_file() else ""

    return _INCLUDE.sub(sub, strip_comments(text))


def source_version(text: str) -> tuple[int, int, int] | None:
    """The ``\\version`` of LilyPond text, or None."""
    m = _VERSION.search(strip_comments(text))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


# ---------------------------------------------------------------- what is kept

def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9.]+", " ", text.lower()).split())


def licence_name(text: str) -> str | None:
    """The licence of a Mutopia ``license``/``copyright`` field when it allows commercial use and
    derivatives (``"Public Domain"``, ``"CC0"``, ``"CC BY 4.0"``, ``"CC BY-SA 3.0"``), else None
    (NonCommercial, NoDerivatives, or not recognised)."""
    t = _words(text)
    tokens = set(t.replace(".", " ").split()) | set(t.split())
    if "public domain" in t or "domaine public" in t:
        return "Public Domain"
    if tokens & {"cc0", "zero"} and ("creative commons" in t or "cc0" in tokens):
        return "CC0"
    cc = "creative commons" in t or "cc" in tokens
    if not cc or not ("attribution" in t or "by" in tokens):
        return None
    if (tokens & {"nc", "noncommercial", "nd", "noderivs", "noderivatives"}
            or "non commercial" in t or "no derivatives" in t or "no derivs" in t):
        return None
    version = re.search(r"\b(\d\.\d)\b", t)
    sa = "sharealike" in t or "share alike" in t or "sa" in tokens
    return f"CC BY{'-SA' if sa else ''}{' ' + version.group(1) if version else ''}"


def header_licence(fields: dict[str, str]) -> tuple[str, str | None]:
    """(the header's licence text, its accepted name or None): the first non-empty field of
    ``license``, ``mutopialicense``, ``mutopiacopyright``, ``copyright``."""
    text = next((fields[k] for k in LICENCE_KEYS if fields.get(k, "").strip()), "")
    return text, licence_name(text) if text else None


def keyboard_solo(instrument: str, piano_only: bool = False) -> bool:
    """Whether a ``mutopiainstrument`` names only solo keyboards (``"Piano"``, ``"Harpsichord,
    Piano"``, ``"Piano/Harpsichord/Clavichord"``), not a duet, organ, voice or other instrument."""
    parts = [p.strip() for p in re.split(r",|/|&|;|\band\b|\bor\b", instrument.lower())]
    allowed = PIANOS if piano_only else KEYBOARDS
    return bool(parts) and all(p in allowed for p in parts)


def title_of(fields: dict[str, str]) -> str:
    """The title text the test-set check reads: title, subtitle, opus and Mutopia's title and opus
    (each once)."""
    seen: list[str] = []
    for k in TITLE_KEYS:
        v = fields.get(k, "").strip()
        if v and v.lower() not in (s.lower() for s in seen):
            seen.append(v)
    return " ".join(seen)


def composer_of(fields: dict[str, str]) -> str:
    """The header's composer, else Mutopia's composer code (``BeethovenLv``)."""
    return fields.get("composer", "").strip() or fields.get("mutopiacomposer", "").strip()


def test_work(fields: dict[str, str], pieces: list) -> str | None:
    """Why a piece is a work of the test set (``check`` on its composer and on Mutopia's
    composer code, with :func:`title_of`), or None."""
    from transcribe.render.filter import check, composer_key

    title = title_of(fields)
    names = [n for n in dict.fromkeys([composer_of(fields), fields.get("mutopiacomposer", "").strip()]) if n]
    if not title and any(composer_key(n) for n in names):
        return "a test-set composer and no readable title"
    for name in names:
        verdict = check(name, title, pieces)
        if verdict.excluded:
            return f"{verdict.piece.work if verdict.piece else ''}: {verdict.reason}"
    return None


# ---------------------------------------------------------------- finding the pieces

class Piece:
    """A main ``.ly`` file of the Mutopia tree and what its header says: ``ly`` (the file),
    ``root`` (its piece folder: the parent of a ``*-lys`` folder), ``rel`` (the file relative to
    the source folder), ``fields`` (:func:`header_fields` with its includes inlined)."""

    def __init__(self, ly: Path, root: Path, rel: str, fields: dict[str, str] | None = None):
        self.ly, self.root, self.rel, self.fields = ly, root, rel, dict(fields or {})

    @property
    def root_rel(self) -> str:
        """The piece folder relative to the source folder."""
        return str(Path(self.rel).parents[len(self.ly.relative_to(self.root).parts) - 1])

    @property
    def stem(self) -> str:
        """A unique file stem: the path's folders (``ftp`` and ``*-lys`` dropped, repeats once)."""
        parts = [p for p in Path(self.rel).with_suffix("").parts if p != "ftp" and not p.endswith("-lys")]
        out: list[str] = []
        for p in parts:
            if not out or out[-1] != p:
                out.append(p)
        return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(out))

    def __repr__(self) -> str:
        return f"Piece({self.rel!r})"


def piece_root(ly: Path) -> Path:
    """The piece folder of a LilyPond file: the parent of its nearest ``*-lys`` folder, else its own."""
    for parent in ly.parents:
        if parent.name.endswith("-lys"):
            return parent.parent
    return ly.parent


_PAPER = re.compile(r"(?:^|[-_])(?:a4|let|letter)(?=[-_]|$)")
_MIDI_VARIANT = re.compile(r"[-_]midi?$")
_PART = re.compile(r"four-?hands|primo|secondo", re.I)


def drop_variants(pieces: list[Piece]) -> list[Piece]:
    """``pieces`` without the copies of one score that Mutopia keeps per paper size
    (``X-a4.ly``/``X-let.ly``/``letter-X.ly``: the A4 one is kept), without ``X.ly`` where
    the same folder has a MIDI version ``X-mid.ly``/``X-midi.ly``, and without the four-hands
    arrangements and parts (``-four-hands``, ``primo``, ``secondo``) some solo pieces come with."""
    groups: dict[tuple[Path, str], list[Piece]] = {}
    for p in pieces:
        if _PART.search(p.ly.stem):
            continue
        groups.setdefault((p.root, _PAPER.sub("", p.ly.stem)), []).append(p)
    kept = [min(g, key=lambda p: ("a4" not in p.ly.stem, p.rel)) for g in groups.values()]
    midi = {(p.root, _MIDI_VARIANT.sub("", p.ly.stem)) for p in kept if _MIDI_VARIANT.search(p.ly.stem)}
    return [p for p in kept if _MIDI_VARIANT.search(p.ly.stem) or (p.root, p.ly.stem) not in midi]


def find_pieces(src: Path) -> list[Piece]:
    """Every main ``.ly`` file under ``src`` (one that no other file ``\\include``-s), with its
    header fields (includes inlined), in a stable shuffled order (CRC-32 of its path under ``src``)."""
    files = [p for p in src.rglob("*") if p.suffix in (".ly", ".ily", ".lyi") and p.is_file()]
    included: set[Path] = set()
    for f in files:
        for m in _INCLUDE.finditer(strip_comments(f.read_text(encoding="utf-8", errors="replace"))):
            included.add((f.parent / m.group(1)).resolve())
    pieces = []
    for ly in files:
        if ly.suffix != ".ly" or ly.resolve() in included:
            continue
        rel = str(ly.relative_to(src))
        pieces.append(Piece(ly, piece_root(ly), rel, header_fields(inline_includes(ly))))
    return sorted(pieces, key=lambda p: (zlib.crc32(p.rel.encode()), p.rel))


# ---------------------------------------------------------------- compiling

def lilypond_version() -> tuple[int, int, int]:
    """The installed LilyPond's version (an error saying how to install it if there is none)."""
    if shutil.which("lilypond") is None:
        sys.exit("lilypond not found: apt-get install -y --no-install-recommends lilypond")
    out = subprocess.run(["lilypond", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    if not m:
        sys.exit(f"cannot read the LilyPond version from {out[:80]!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _run(cmd: list[str], cwd: Path, deadline: float) -> tuple[int, str]:
    """Run ``cmd`` at the lowest priority until ``deadline`` (its process group killed then):
    (exit status, stderr + stdout); 124 on a timeout."""
    proc = subprocess.Popen(["nice", "-n", "19", *cmd], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return 124, "timed out"


def _error_line(log: str, copy: Path, source: str) -> str:
    """The first error line of a LilyPond or convert-ly log (else its last line), the temporary
    copy's path replaced by the source folder's."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    err = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
    return err.replace(str(copy), source)[:300]


def bar_starts(line: str) -> list[Fraction]:
    """Where the bars start (whole notes) from a ``MUTOPIA-BARS`` line of ``start:length`` pairs
    (the bars between two logged ones, where no note starts, filled in at the length)."""
    pairs = [tuple(Fraction(x) for x in tok.split(":")) for tok in line.split()]
    starts: list[Fraction] = []
    for k, (start, length) in enumerate(pairs):
        nxt = pairs[k + 1][0] if k + 1 < len(pairs) else start
        bar = start
        while True:
            if not starts or bar > starts[-1]:
                starts.append(bar)
            bar += length
            if length <= 0 or bar >= nxt:
                break
    return starts


def compile_piece(piece: Piece, work: Path, settings: dict[bool, Path], installed: tuple[int, int, int],
                  timeout: float) -> tuple[list[tuple[Path, list[Fraction]]], str | None]:
    """Compile ``piece`` in a copy of its folder under ``work``: ([(a MIDI file written, where its
    bars start)], None) or ([], why not). Sources of another LilyPond minor version go through
    ``convert-ly -e`` first."""
    deadline = time.monotonic() + timeout
    copy = work / "src"
    shutil.copytree(piece.root, copy, symlinks=True)
    main = copy / piece.ly.relative_to(piece.root)
    version = source_version(inline_includes(main))  # the main file's, or that of a file it includes
    if version is None:
        return [], "no \\version in the main file or its includes"
    sources = sorted(p for p in copy.rglob("*") if p.suffix in (".ly", ".ily", ".lyi") and p.is_file())
    if version[:2] != installed[:2]:
        for f in sources:
            own = source_version(f.read_text(encoding="utf-8", errors="replace"))
            if own is not None and own[:2] == installed[:2]:
                continue
            cmd = ["convert-ly", "-e"] + ([] if own else ["--from", ".".join(map(str, version))]) + [f.name]
            rc, log = _run(cmd, f.parent, deadline)
            if rc == 124:
                return [], "timed out in convert-ly"
            if rc != 0:
                return [], f"convert-ly {f.relative_to(copy)}: {_error_line(log, copy, piece.root_rel)}"
    for f in sources:  # a later patch release of the installed version (2.24.3 for 2.24.1): refused as is
        text = f.read_text(encoding="utf-8", errors="replace")
        own = source_version(text)
        if own is not None and own[:2] == installed[:2] and own > installed:
            stated = '\\version "%d.%d.%d"' % installed
            f.write_text(_VERSION.sub(lambda m: stated, text, count=1), encoding="utf-8")
    out = work / "out"
    out.mkdir()
    has_midi = "\\midi" in inline_includes(main)
    rc, log = _run(["lilypond", f"-dinclude-settings={settings[not has_midi]}", "-dno-print-pages",
                    "-dmidi-extension=mid", "-o", str(out / piece.stem), main.name], main.parent, deadline)
    if rc == 124:
        return [], f"timed out after {timeout:.0f} s"
    if rc != 0:
        return [], f"lilypond: {_error_line(log, copy, piece.root_rel)}"
    written = [out / m for m in re.findall(r"MIDI output to `([^']+)'", log)]  # LilyPond works in -o's folder
    bars = [bar_starts(line) for line in re.findall(r"^MUTOPIA-BARS ?(.*)$", log, re.M)]
    if not written:
        return [], "lilypond wrote no MIDI file"
    if len(bars) != len(written) or not all(m.is_file() for m in written):
        return [], f"{len(bars)} bar logs for {len(written)} MIDI files"
    return list(zip(written, bars)), None


def align_bars(path: Path, bars: list[Fraction], tolerance: float = 0.002) -> tuple[str | None, int]:
    """Make a LilyPond MIDI file read by ``pretty_midi`` as the score is (the file rewritten);
    ``bars``: where the score's bars start, in whole notes (:func:`bar_starts`).

    - Key signatures, which LilyPond writes into every staff's track, go into the first track
      (the only one pretty_midi reads them from).
    - A pickup (the first bar starting at ``b0`` in a bar of ``L``) gets ``-b0 mod L`` of silence
      before it: every event but the meta events at 0 moves later, so the bars start at 0, L, ...
    - pretty_midi lays downbeats on a grid from each time-signature event: an event off the bars
      (LilyPond puts a \\time before a bar's grace notes) moves to the next bar start, and one of
      the meter in force is restated at every bar start off that grid (a bar cut short by a
      \\partial within the piece, a cadenza's end).

    (None, time signatures moved or restated) when every bar start is then a downbeat and every
    downbeat a bar start, up to the last note; else (why not, 0): such a file is not kept."""
    import bisect
    import warnings

    import mido
    import numpy as np
    import pretty_midi

    if not bars:
        return "no bars", 0
    mid = mido.MidiFile(str(path))
    ticks = 4 * mid.ticks_per_beat  # a whole note
    sig = next((m for m in mid.tracks[0] if m.type == "time_signature"), None) if mid.tracks else None
    bar = Fraction(sig.numerator, sig.denominator) if sig else Fraction(1)
    if not -bar < bars[0] < bar:
        return f"first bar at {bars[0]} whole notes, the time signature's bar is {bar}", 0
    shift = -bars[0] % bar
    starts = sorted({b + shift for b in bars} | ({Fraction(0)} if shift else set()))  # the pickup's bar at 0
    bar_ticks = [round(b * ticks) for b in starts]
    tracks: list[list[tuple[int, mido.Message]]] = []
    keys: dict[int, mido.MetaMessage] = {}
    for k, track in enumerate(mid.tracks):
        now, events = 0, []
        for msg in track:
            now += msg.time
            if msg.type == "end_of_track":
                continue
            when = now if now == 0 and msg.is_meta else now + round(shift * ticks)
            if msg.type == "key_signature" and k > 0:
                keys.setdefault(when, msg)  # the first staff's where staves differ
            else:
                events.append((when, msg))
        tracks.append(events)
    changed = 0
    if tracks:
        have = {when for when, msg in tracks[0] if msg.type == "key_signature"}
        tracks[0] += [(when, msg) for when, msg in keys.items() if when not in have]
        sigs: dict[int, mido.MetaMessage] = {}
        for when, msg in sorted((e for e in tracks[0] if e[1].type == "time_signature"), key=lambda e: e[0]):
            i = bisect.bisect_left(bar_ticks, when)
            if i < len(bar_ticks):
                changed += bar_ticks[i] != when
                sigs[bar_ticks[i]] = msg  # the last of a bar's
        current, origin = mido.MetaMessage("time_signature", numerator=4, denominator=4), 0
        for t in bar_ticks:
            if t in sigs:
                current, origin = sigs[t], t
                continue
            length = round(Fraction(current.numerator, current.denominator) * ticks)
            if (t - origin) % length:
                sigs[t], origin = current.copy(), t
                changed += 1
        tracks[0] = [e for e in tracks[0] if e[1].type != "time_signature"] + sorted(sigs.items())
    for track, events in zip(mid.tracks, tracks):
        events.sort(key=lambda e: e[0])  # stable: the meta events at 0 stay first
        last = 0
        for when, msg in events:
            msg.time, last = when - last, when
        track[:] = [msg for _, msg in events]
    mid.save(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(str(path))
    end = max((n.end for i in pm.instruments for n in i.notes), default=0.0)
    score = np.array([pm.tick_to_time(t) for t in bar_ticks])
    score = score[score < end - tolerance]
    if len(score) == 0:
        return "no bar starts before the last note", 0
    down = pm.get_downbeats()
    down = down[down < min(end, score[-1]) + tolerance]
    gap = max(np.abs(score[:, None] - down[None, :]).min(axis=1).max(),
              np.abs(down[:, None] - score[None, :]).min(axis=1).max() if len(down) else np.inf)
    if gap > tolerance:
        return f"the downbeats are not the score's bars ({gap:.3f} s off)", 0
    return None, changed


def midi_summary(path: Path) -> tuple[int, int, str]:
    """(tracks holding notes (pretty_midi instruments, drums aside), notes, a digest of the notes'
    onsets, offsets and pitches): what the output is checked and deduplicated by."""
    import hashlib
    import warnings

    import pretty_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracks = [i for i in pretty_midi.PrettyMIDI(str(path)).instruments if i.notes and not i.is_drum]
    notes = sorted((round(n.start, 3), round(n.end, 3), n.pitch) for t in tracks for n in t.notes)
    return len(tracks), len(notes), hashlib.sha1(repr(notes).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- outputs

def metadata_row(piece: Piece, midi_name: str, commit: str) -> dict[str, str]:
    """The ``metadata.csv`` row of one MIDI file of ``piece``."""
    f = piece.fields
    text, licence = header_licence(f)
    return {"midi": f"midis/{midi_name}", "composer": composer_of(f), "title": title_of(f),
            "license": licence or text, "source": f"{REPO_URL}/{commit}/{piece.rel}", "ly": piece.rel,
            "instrument": f.get("mutopiainstrument", ""), "opus": f.get("opus", "") or f.get("mutopiaopus", ""),
            "maintainer": f.get("maintainer", ""), "mutopia_id": _mutopia_id(f.get("footer", "")),
            "ly_version": ".".join(map(str, source_version(piece.ly.read_text(encoding="utf-8",
                                                                                errors="replace")) or ()))}


def _mutopia_id(footer: str) -> str:
    m = re.search(r"Mutopia-\d{4}/\d\d/\d\d-\d+", footer)
    return m.group(0) if m else ""


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    """Write ``rows`` to ``path`` atomically (:func:`transcribe.files.atomic_write`)."""
    from transcribe.files import atomic_write

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_write(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def read_log(path: Path) -> dict[str, dict]:
    """The latest record per main file of ``log.jsonl``."""
    records: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                records[r["ly"]] = r
    return records


def extract(snapshot: Path, src: Path) -> None:
    """``ftp/`` of a MutopiaProject git snapshot into ``src`` (and its commit into ``src/COMMIT``)."""
    if (src / "ftp").is_dir():
        print(f"{src / 'ftp'} exists: not extracted again")
        return
    commit = subprocess.run(["git", "-C", str(snapshot), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    src.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(snapshot), "archive", "HEAD", "ftp"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(src, filter="data")
    (src / "COMMIT").write_text(commit + "\n")
    print(f"extracted ftp/ of {snapshot} at {commit} into {src}")


def select(pieces: list[Piece], tests: list, piano_only: bool = False, exclude: tuple[str, ...] = ()
           ) -> tuple[list[Piece], list[dict[str, str]], list[str], dict[str, int]]:
    """(pieces to compile, test-set works left out as ``test_works.csv`` rows, lines naming the
    keyboard solos whose licence is not kept, counts): keyboard solos with a kept licence, variants
    dropped (:func:`drop_variants`), test-set works (:func:`test_work`) and the stems in
    ``exclude`` left out."""
    counts = {"main files": len(pieces)}
    solo = [p for p in pieces if keyboard_solo(p.fields.get("mutopiainstrument", ""), piano_only)]
    refused = [f"{p.rel}: licence {header_licence(p.fields)[0]!r} not kept" for p in solo
               if header_licence(p.fields)[1] is None]
    licensed = [p for p in solo if header_licence(p.fields)[1] is not None]
    unique = drop_variants(licensed)
    kept, tested = [], []
    for p in unique:
        why = "excluded by name (--exclude-stems)" if p.stem in exclude else test_work(p.fields, tests)
        if why:
            tested.append({"ly": p.rel, "composer": composer_of(p.fields), "title": title_of(p.fields), "reason": why})
        else:
            kept.append(p)
    counts.update({"keyboard solo": len(solo), "licence ok": len(licensed), "variants": len(licensed) - len(unique),
                   "test works": len(tested)})
    return kept, tested, refused, counts


def nested(a: str, b: str) -> bool:
    """Whether two piece folders are one, or one holds the other (a collection and its pieces)."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def process(piece: Piece, midis_dir: Path, tmp_root: Path, settings: dict[bool, Path],
            installed: tuple[int, int, int], timeout: float, seen: set[str]) -> dict:
    """Compile one piece and move its MIDI files into ``midis_dir`` (made to read as the score,
    :func:`align_bars`; a file whose downbeats are still not its bars, or whose notes equal one in
    ``seen`` (the digests of this piece folder's and :func:`nested` ones' files) or another of this
    compile, is dropped): its ``log.jsonl`` record."""
    start = time.monotonic()
    names, tracks, digests, dropped, sigs = [], [], [], [], []
    with tempfile.TemporaryDirectory(dir=tmp_root) as work:
        try:
            made, why = compile_piece(piece, Path(work), settings, installed, timeout)
        except OSError as err:
            made, why = [], f"{type(err).__name__}: {err}"
        keep = []
        for m, bars in made:
            try:
                irregular, restated = align_bars(m, bars)
                k, n, digest = midi_summary(m)
            except Exception as err:  # noqa: BLE001 - a file mido/pretty_midi cannot read is named, not kept
                why = f"{m.name}: unreadable MIDI ({type(err).__name__}: {err})"
                break
            if irregular:
                dropped.append(f"{m.name}: {irregular}")
            elif n and digest not in seen and digest not in digests:
                keep.append(m)
                names.append(m.name)
                tracks.append(k)
                sigs.append(restated)
            digests.append(digest)
        if why is None:
            for m in keep:
                os.replace(m, midis_dir / m.name)
    if why is None and not names and dropped:
        why = "; ".join(dropped)
    status = "failed" if why else "ok" if names else "duplicate"
    return {"ly": piece.rel, "root": piece.root_rel, "status": status, "reason": why,
            "midis": names if not why else [], "note_tracks": tracks if not why else [],
            "signatures_moved": sigs if not why else [],
            "digests": digests if not why else [], "dropped": dropped, "seconds": round(time.monotonic() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=ROOT / "data/mutopia_src",
                    help="the extracted Mutopia tree (its ftp/ folder is read)")
    ap.add_argument("--out", type=Path, default=ROOT / "data/midi/mutopia", help="the output folder")
    ap.add_argument("--extract", type=Path, default=None, metavar="GIT_DIR",
                    help="first extract ftp/ of this MutopiaProject git snapshot into --src")
    ap.add_argument("--test-pieces", type=Path, default=ROOT.parent / "shared/data/test_pieces.csv",
                    help="the test set's works (never in the output)")
    ap.add_argument("--exclude-stems", nargs="*", default=list(HELD_OUT_STEMS),
                    help="stems left out besides the test set's works (default: the Mutopia files of the held-out "
                         "ASAP works, so they stay unseen)")
    ap.add_argument("--limit", type=int, default=300, help="compile at most this many main files in this run")
    ap.add_argument("--max-minutes", type=float, default=60.0, help="start no compile after this many minutes")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per piece (convert-ly + lilypond)")
    ap.add_argument("--piano-only", action="store_true", help="piano/pianoforte/fortepiano only (no harpsichord, "
                                                             "clavichord, clavier)")
    ap.add_argument("--retry-failed", action="store_true", help="try again the pieces that failed before (first)")
    ap.add_argument("--scan-only", action="store_true", help="count the pieces kept and stop")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from transcribe.render.filter import load_test_pieces

    if args.extract is not None:
        extract(args.extract, args.src)
    ftp = args.src / "ftp"
    if not ftp.is_dir():
        ap.error(f"{ftp}: no Mutopia tree (extract one with --extract GIT_DIR)")
    if not args.test_pieces.is_file():
        ap.error(f"{args.test_pieces}: the test set's works are needed (--test-pieces)")
    tests = load_test_pieces(args.test_pieces)
    commit = (args.src / "COMMIT").read_text().strip() if (args.src / "COMMIT").is_file() else "master"

    t0 = time.monotonic()
    kept, tested, refused, counts = select(find_pieces(args.src), tests, args.piano_only,
                                           tuple(args.exclude_stems))
    print(f"{counts['main files']} main .ly files; {counts['keyboard solo']} keyboard solos; "
          f"{counts['licence ok']} with a kept licence; {counts['variants']} variants dropped (paper sizes, MIDI "
          f"versions, four-hands parts); "
          f"{counts['test works']} left out as test-set works or by name; {len(kept)} to compile "
          f"(scanned in {time.monotonic() - t0:.0f} s)", flush=True)
    for line in refused:
        print(f"  {line}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "test_works.csv", tested, ["ly", "composer", "title", "reason"])
    if args.scan_only:
        return 0

    installed = lilypond_version()
    midis_dir, tmp_root = args.out / "midis", args.out / "tmp"
    midis_dir.mkdir(exist_ok=True)
    if tmp_root.is_dir():  # what an interrupted run left
        shutil.rmtree(tmp_root)
    tmp_root.mkdir()
    settings = {}
    for add in (False, True):
        settings[add] = tmp_root / f"midi-only{'-add' if add else ''}.ly"
        settings[add].write_text(f"#(define mutopia-add-midi {'#t' if add else '#f'})\n{MIDI_ONLY}")
    log_path = args.out / "log.jsonl"
    done = read_log(log_path)
    retry = [p for p in kept if args.retry_failed and done.get(p.rel, {}).get("status") == "failed"]
    todo = retry + [p for p in kept if p.rel not in done]  # failed ones first
    print(f"{len(kept) - len(todo)} done before; compiling up to {args.limit} of {len(todo)}", flush=True)
    tried = 0
    with open(log_path, "a", encoding="utf-8") as log:
        for p in todo:
            if tried >= args.limit or time.monotonic() - t0 > 60 * args.max_minutes:
                break
            tried += 1
            seen = {h for r in done.values() if nested(r.get("root", ""), p.root_rel) for h in r.get("digests", [])}
            record = process(p, midis_dir, tmp_root, settings, installed, args.timeout, seen)
            log.write(json.dumps(record) + "\n")
            log.flush()
            done[p.rel] = record
            made = ", ".join(f"{n} ({k} note tracks)" for n, k in zip(record["midis"], record["note_tracks"]))
            state = {"ok": f"ok {made}", "duplicate": "a duplicate of MIDI written before"}.get(
                record["status"], f"FAILED: {record['reason']}")
            print(f"[{tried}/{min(args.limit, len(todo))}] {p.rel} {record['seconds']} s: {state}", flush=True)

    shutil.rmtree(tmp_root)
    by_rel = {p.rel: p for p in kept}
    rows = [metadata_row(by_rel[r["ly"]], n, commit) for r in done.values()
            if r["status"] == "ok" and r["ly"] in by_rel for n in r["midis"]]
    write_csv(args.out / "metadata.csv", sorted(rows, key=lambda r: r["midi"]), META_COLUMNS)
    listed = {Path(r["midi"]).name for r in rows}
    for f in sorted(midis_dir.glob("*.mid")):  # a piece no longer kept (say, a work added to the test set)
        if f.name not in listed:
            f.unlink()
            print(f"removed {f}: no longer kept")
    ours = [r for r in done.values() if r["ly"] in by_rel]
    status = {k: sum(r["status"] == k for r in ours) for k in ("ok", "duplicate", "failed")}
    print(f"this run: {tried} compiled in {(time.monotonic() - t0) / 60:.1f} min; in all: {status['ok']} pieces ok, "
          f"{status['duplicate']} duplicates, {status['failed']} failed; {len(rows)} MIDI files in "
          f"{args.out / 'metadata.csv'}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
