"""Test hygiene: is a performance one of the works of the real-piano test set?

``../shared/data/test_pieces.csv`` (columns ``maps_code, composer, work``) lists the works whose
recordings are the test set (MAPS configuration 2); no performance of them may be rendered or
trained on. Performances come with a composer and a free-form title: ASAP's ``metadata.csv``
(``Chopin``, ``Etudes_op_10_1``, folder ``Chopin/Etudes_op_10/1``), GiantMIDI-Piano file names
(``Liszt_Hungarian_Rhapsody_No9_S244_9_JZfp5VsyIsc.mid``) or its evaluation table
(``Debussy, Suite Bergamasque, L. 75, No. 3``).

Both sides are reduced to catalogue features by :func:`features`: accents and case removed,
``op. 47 no. 2`` / ``Op.47 No.2`` / ``op_47_2`` → ``op=47, no=2``; ``K. 331``, ``D 899``,
``BWV 858``, ``Hob. XVI/49``, ``S. 244``; sonata numbers (``Piano Sonata no. 8``,
``Piano_Sonatas_8-1``) and movements (``mvt 1``, ``Mov. 1``, ``1st``); named collections and
movements (``Transcendental``, ``Kreisleriana``, ``Clair de lune`` = Suite bergamasque no. 3,
``Alla turca`` = K. 331 mvt 3, ...). A test work is matched by any of its identities (e.g.
Pathétique mvt 1 = op. 13 mvt 1 = sonata no. 8 mvt 1; Mozart K. 331 = sonata no. 11): the
catalogue number must agree, and each sub-number (``no``, ``mvt``) must agree *or be absent*
from the performance — a performance of the whole work, or one whose number cannot be read,
is excluded (when unsure, exclude). A performance of a test composer with no catalogue number
at all is excluded when it shares the test work's form (``étude``, ``prelude``, ...).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

PRIMARY = ("op", "k", "d", "bwv", "hob", "s", "sonata", "set")
SUB = ("no", "mvt")

#: composer spellings → one name
COMPOSER_ALIASES = {
    "albeniz": ("albeniz",), "borodin": ("borodin",), "chopin": ("chopin",), "debussy": ("debussy",),
    "grieg": ("grieg",), "liszt": ("liszt",), "mendelssohn": ("mendelssohn",),
    "mussorgsky": ("mussorgsky", "moussorgsky", "musorgsky", "mussorgskij", "moussorgski"),
    "mozart": ("mozart",), "beethoven": ("beethoven",), "schubert": ("schubert",), "schumann": ("schumann",),
    "tchaikovsky": ("tchaikovsky", "tchaikowsky", "tschaikowsky", "chaikovsky", "tschaikovsky", "ciaikovsky"),
}
#: named collections: regex on normalised text → set name
SETS = [
    (r"\btranscendental|\betudes? d execution", "transcendental"),
    (r"\bpaganini", "paganini"),
    (r"\bhungarian rhapsod|\brhapsodies hongroises|\bungarische rhapsodie", "hungarian_rhapsody"),
    (r"\bkreisleriana", "kreisleriana"),
    (r"\bkinderszenen|\bscenes (from|of) childhood", "kinderszenen"),
    (r"\bmoments? musica", "moments_musicaux"),
    (r"\bwanderer", "wanderer"),
    (r"\bbergamasque", "suite_bergamasque"),
    (r"\bpictures at an exhibition|\btableaux d une exposition|\bbilder einer ausstellung|\bpromenade", "pictures"),
    (r"\bseasons\b|\bsaisons\b|\bjahreszeiten", "seasons"),
    (r"\blyric pieces|\blyrische stucke|\bpieces lyriques", "lyric_pieces"),
    (r"\bsongs? without words|\blieder ohne worte|\bromances sans paroles", "songs_without_words"),
    (r"\bsuite espanola", "suite_espanola"),
    (r"\bpetite suite", "petite_suite"),
    (r"\bfantais\w* impromptu", "fantaisie_impromptu"),
    (r"\bpathetique", "pathetique"),
    (r"\bwaldstein", "waldstein"),
]
#: named pieces: regex → features they imply (with the set they belong to)
NAMED = [
    (r"\bclair de lune", {"set": "suite_bergamasque", "no": "3"}),
    (r"\bbergamasque\b.*\bmenuet|\bmenuet\b.*\bbergamasque", {"set": "suite_bergamasque", "no": "2"}),
    (r"\balla turca|\brondo alla turca|\bturkish march", {"k": "331", "mvt": "3"}),
    (r"\bfeux follets", {"set": "transcendental", "no": "5"}),
    (r"\bbutterfly|\bpapillon|\bsommerfugl", {"op": "43", "no": "1"}),
    (r"\bkobold|\bpuck\b|\btroldspil", {"op": "71", "no": "3"}),
    (r"\bcataluna|\bcatalonia", {"set": "suite_espanola", "no": "2"}),
]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
FORMS = ["etude", "prelude", "sonata", "mazurka", "impromptu", "rhapsod", "fantas", "fantaisie", "suite",
         "promenade", "song", "lyric", "moment", "kinderszenen", "kreisleriana", "seasons", "carol"]
#: catalogue synonyms: (composer, key, value) → more identities
SONATA_OF = {
    ("mozart", "k"): {"279": ["1"], "280": ["2"], "281": ["3"], "282": ["4"], "283": ["5"], "284": ["6"],
                      "309": ["7"], "310": ["8"], "311": ["9"], "330": ["10"], "331": ["11"], "332": ["12"],
                      "333": ["13"], "457": ["14"], "533": ["15"], "545": ["15", "16"], "570": ["16", "17"],
                      "576": ["17", "18"]},
    ("beethoven", "op"): {"13": ["8"], "53": ["21"]},
}
SET_ALIASES = {("beethoven", "set", "pathetique"): {"op": "13", "sonata": "8"},
               ("beethoven", "set", "waldstein"): {"op": "53", "sonata": "21"},
               ("schubert", "set", "wanderer"): {"d": "760"},
               ("liszt", "set", "transcendental"): {"s": "139"},
               ("liszt", "set", "paganini"): {"s": "141"},
               ("liszt", "set", "hungarian_rhapsody"): {"s": "244"}}
XMAS = re.compile(r"\b(christmas|xmas|carol|noel|weihnacht)")


def normalise(text: str) -> str:
    """Lower-case ASCII words and numbers: accents removed, ``op47`` → ``op 47``, ``No.2`` →
    ``no 2``, ``1st`` → ``1 st``, punctuation and underscores → spaces."""
    t = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    t = t.replace("'", "")
    t = re.sub(r"[^a-z0-9]+", " ", t)
    t = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", t)
    return " ".join(t.split())


def composer_key(name: str) -> str | None:
    """The test-set spelling of a composer name (``"Schumann, Robert"`` → ``schumann``), else None."""
    n = normalise(name)
    for key, aliases in COMPOSER_ALIASES.items():
        if any(re.search(rf"\b{a}", n) for a in aliases):
            return key
    return None


@dataclass
class Features:
    """Catalogue features of a title (values are strings of numbers or set names)."""

    values: dict[str, set[str]] = field(default_factory=dict)
    forms: set[str] = field(default_factory=set)

    def add(self, key: str, value: str) -> None:
        self.values.setdefault(key, set()).add(value.lstrip("0") or "0")

    def get(self, key: str) -> set[str]:
        return self.values.get(key, set())


_ORD = {"1 st": "1", "2 nd": "2", "3 rd": "3", "4 th": "4", "first": "1", "second": "2", "third": "3", "fourth": "4"}


def features(title: str) -> Features:
    """Catalogue features of a work title (see the module docstring)."""
    t = normalise(title)
    f = Features()
    for word in FORMS:
        if re.search(rf"\b{word}", t):
            f.forms.add(word)
    for pat, name in SETS:
        if re.search(pat, t):
            f.add("set", name)
    for pat, implied in NAMED:
        if re.search(pat, t):
            for k, v in implied.items():
                f.add(k, v)
    # op N [no M | M]; a bare number straight after "op N" is its number in the opus
    # catalogue numbers; a bare number straight after one is the number within it
    # ("op 10 1", "op 47 no 2", "d 899 1"; "37a" = "37 a")
    for key, pat in (("op", r"\bop(?:us)? (\d+)(?: (?:a|b|bis)\b)?"), ("k", r"\b(?:k|kv) (\d+)"),
                     ("d", r"\bd (\d{2,3})"), ("bwv", r"\bbwv (\d+)"), ("hob", r"\bhob (?:xvi )?(\d+)"),
                     ("s", r"\bs (\d{2,3})")):
        for m in re.finditer(pat + r"\b(?: (?:no |nr |n )?(\d+)\b)?", t):
            f.add(key, m.group(1))
            if m.group(2):
                f.add("no", m.group(2))
    # sonata numbers: "sonata no 8", "sonatas 8 1" (ASAP: sonata 8, movement 1)
    for m in re.finditer(r"\bsonatas? (?:no |nr )?(\d+)(?: (\d+)\b)?", t):
        f.add("sonata", m.group(1))
        if int(m.group(1)) >= 100:  # Schubert's (D) and Mozart's/Scarlatti's (K) sonatas go by catalogue
            f.add("d", m.group(1))
            f.add("k", m.group(1))
        if m.group(2):
            f.add("mvt", m.group(2))
    for m in re.finditer(r"\b(?:mvt|mov|movement|mvmt|satz) (\d+)", t):
        f.add("mvt", m.group(1))
    for word, n in _ORD.items():
        if re.search(rf"\b{word}\b", t):
            f.add("mvt", n)
    # "no 6", and a bare trailing number after a named set ("kreisleriana 3", "etudes 5")
    for m in re.finditer(r"\b(?:no|nr|nos|number) (\d+)\b", t):
        if not re.search(rf"\bsonatas? (?:no |nr )?{m.group(1)}\b", t[: m.end()]):
            f.add("no", m.group(1))
    if f.get("set") and not f.get("no"):
        m = re.search(r"(?:etudes?|rhapsod\w*|kreisleriana|kinderszenen|musica\w*|suite|paganini|"
                      r"transcendental)(?: [a-z]+)*? (\d+)\b", t)
        if m:
            f.add("no", m.group(1))
    for i, month in enumerate(MONTHS, 1):
        if "seasons" in f.get("set") or f.get("op") & {"37"}:
            if re.search(rf"\b{month}\b", t):
                f.add("no", str(i))
    return f


@dataclass(frozen=True)
class TestPiece:
    """One row of ``test_pieces.csv``."""

    code: str
    composer: str
    work: str


def load_test_pieces(path: str | Path) -> list[TestPiece]:
    """The rows of ``test_pieces.csv`` (columns ``maps_code, composer, work``)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [TestPiece(r["maps_code"], r["composer"], r["work"]) for r in csv.DictReader(fh)]


def identities(piece: TestPiece) -> list[dict[str, str]]:
    """The ways a test work can be named: each a dict of one catalogue key (op, k, d, bwv, hob,
    sonata, set) and the sub-numbers (no, mvt) of the work."""
    comp = composer_key(piece.composer)
    f = features(piece.work)
    subs = {k: next(iter(f.get(k))) for k in SUB if len(f.get(k)) == 1}
    prim: list[tuple[str, str]] = [(k, v) for k in PRIMARY for v in sorted(f.get(k))]
    extra: list[tuple[str, str]] = []
    for k, v in prim:
        for n in SONATA_OF.get((comp, k), {}).get(v, []):
            extra.append(("sonata", n))
        for k2, v2 in SET_ALIASES.get((comp, k, v), {}).items():
            extra.append((k2, v2))
    return [{k: v, **subs} for k, v in dict.fromkeys(prim + extra)]


def _matches(ident: dict[str, str], f: Features) -> bool:
    for k, v in ident.items():
        have = f.get(k)
        if k in SUB:
            if have and v not in have:
                return False
        elif v not in have:
            return False
    return True


@dataclass(frozen=True)
class Verdict:
    """Whether a performance is excluded, and which test work (and why)."""

    excluded: bool
    piece: TestPiece | None = None
    reason: str = ""


def check(composer: str, title: str, pieces: list[TestPiece]) -> Verdict:
    """Is the work ``title`` by ``composer`` one of ``pieces``? Unsure cases are excluded."""
    text = f"{composer} {title}"
    if XMAS.search(normalise(text)):
        xmas = [p for p in pieces if "christmas" in normalise(p.composer)]
        if xmas:
            return Verdict(True, xmas[0], "a Christmas carol (MAPS bk_xmas arrangements)")
    comp = composer_key(composer) or composer_key(title)
    if comp is None:
        return Verdict(False)
    f = features(title)
    has_primary = any(f.get(k) for k in PRIMARY)
    for p in pieces:
        if composer_key(p.composer) != comp:
            continue
        for ident in identities(p):
            if _matches(ident, f):
                return Verdict(True, p, f"matches {ident}")
        if not has_primary and f.forms & features(p.work).forms:
            return Verdict(True, p, f"no catalogue number; same form as {p.work!r}")
    return Verdict(False)


def check_asap_row(row: dict[str, str], pieces: list[TestPiece]) -> Verdict:
    """:func:`check` for a row of ASAP's ``metadata.csv`` (composer, title, and its folder,
    e.g. ``Beethoven/Piano_Sonatas/8-1``)."""
    folder = row.get("folder", "")
    title = f"{row.get('title', '')} {folder.split('/', 1)[1] if '/' in folder else ''}"
    # ASAP's "Piano_Sonatas_21-1_no_repeat": the "no" of "no repeat" is not a number
    title = re.sub(r"no_(?:\d_)?repeat|no_trio|no_first_repeat|_repeat", " ", title)
    return check(row.get("composer", ""), title, pieces)


_YT = re.compile(r"_[A-Za-z0-9_-]{11}(?=(?:_cut)?(?:_(?:no|mov|part)_?\d+|_a|_midi)?(?:_cut)?\.midi?$)")


def giantmidi_title(file_name: str) -> tuple[str, str]:
    """(composer, title) of a GiantMIDI-Piano evaluation file name
    (``Liszt_Hungarian_Rhapsody_No9_S244_9_JZfp5VsyIsc.mid``; the YouTube id is dropped)."""
    stem = _YT.sub("", Path(file_name).name)
    stem = re.sub(r"\.midi?$", "", stem)
    composer, _, title = stem.partition("_")
    return composer, title


def check_giantmidi(file_name: str, pieces: list[TestPiece], name: str | None = None) -> Verdict:
    """:func:`check` for a GiantMIDI-Piano file; ``name`` (the evaluation table's ``Name``,
    e.g. ``Debussy, Suite Bergamasque, L. 75, No. 3``) is read too when given; excluded if either
    says so."""
    composer, title = giantmidi_title(file_name)
    v = check(composer, title, pieces)
    if v.excluded or not name:
        return v
    return check(composer, name, pieces)
