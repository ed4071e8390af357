"""scripts/mutopia_midi.py: reading Mutopia headers, the licence and instrument filters, the
test-set exclusion and the metadata that train_beat_model.py's ``quantised_files`` reads (no
LilyPond needed: nothing here compiles)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from transcribe.render.filter import load_test_pieces

from .conftest import load_script

TEST_PIECES = """maps_code,composer,work
chpn-p4,Chopin,Prelude op. 28 no. 4
mz_331_3,Mozart,Piano Sonata K. 331 mvt 3 (Alla turca)
"""


@pytest.fixture(scope="module")
def mm():
    return load_script("mutopia_midi")


def header(**fields: str) -> str:
    return "\\header {\n" + "".join(f'  {k} = "{v}"\n' for k, v in fields.items()) + "}\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_header_fields_skip_comments_and_read_escaped_quotes(mm):
    text = ('\\version "2.18.2"\n% license = "Creative Commons Attribution-NonCommercial 4.0"\n'
            '%{ mutopiainstrument = "Organ" %}\n'
            '\\header {\n  title = "Sonata \\"Facile\\" 100% fun"  % a comment\n'
            '  mutopiainstrument = "Piano"\n  license = "Public Domain"\n'
            '  copyright = \\markup { "ignored" }\n  composer = #"W. A.   Mozart"\n}\n'
            '\\score { \\new Staff { c4 } \\header { piece = "I." title = "not the title" } }\n')
    f = mm.header_fields(text)
    assert f["title"] == 'Sonata "Facile" 100% fun'
    assert f["mutopiainstrument"] == "Piano"
    assert f["license"] == "Public Domain"
    assert f["composer"] == "W. A. Mozart"
    assert f["piece"] == "I."
    assert "copyright" not in f
    assert mm.source_version(text) == (2, 18, 2)


def test_find_pieces_main_files_includes_inlined_and_stems(mm, tmp_path):
    """A multi-file piece (``X-lys/`` with a main file that includes its header and notes) is one
    piece, named from its folders; an included ``.ly`` is not a main file; a single-file piece
    beside it is another."""
    src = tmp_path / "src"
    lys = src / "ftp/ChopinFF/O28/Chop-28-7/Chop-28-7-lys"
    write(lys / "header.ily", header(mutopiainstrument="Piano", license="Creative Commons Attribution 4.0",
                                     composer="Frédéric Chopin", title="Prélude", opus="Op. 28, No. 7",
                                     mutopiacomposer="ChopinFF"))
    write(lys / "notes.ly", "upper = { a'4 }\n")
    write(lys / "chopin-28-7.ly", '\\version "2.24.0"\n\\include "header.ily"\n\\include "notes.ly"\n'
                                  '\\score { \\upper \\layout { } \\midi { } }\n')
    write(src / "ftp/CzernyC/O599/no1/no1.ly", '\\version "2.10.0"\n'
          + header(mutopiainstrument="Harpsichord, Piano", copyright="Public Domain", mutopiacomposer="CzernyC",
                   title="Übung 1"))
    pieces = {p.rel: p for p in mm.find_pieces(src)}
    assert sorted(pieces) == ["ftp/ChopinFF/O28/Chop-28-7/Chop-28-7-lys/chopin-28-7.ly",
                              "ftp/CzernyC/O599/no1/no1.ly"]
    chopin = pieces["ftp/ChopinFF/O28/Chop-28-7/Chop-28-7-lys/chopin-28-7.ly"]
    assert chopin.root == src / "ftp/ChopinFF/O28/Chop-28-7"
    assert chopin.root_rel == "ftp/ChopinFF/O28/Chop-28-7"
    assert chopin.stem == "ChopinFF_O28_Chop-28-7_chopin-28-7"
    assert chopin.fields["license"] == "Creative Commons Attribution 4.0"
    assert mm.title_of(chopin.fields) == "Prélude Op. 28, No. 7"
    assert mm.composer_of(chopin.fields) == "Frédéric Chopin"
    czerny = pieces["ftp/CzernyC/O599/no1/no1.ly"]
    assert czerny.stem == "CzernyC_O599_no1"
    assert mm.composer_of(czerny.fields) == "CzernyC"  # no composer field: Mutopia's code
    assert mm.header_licence(czerny.fields) == ("Public Domain", "Public Domain")


@pytest.mark.parametrize("text, name", [
    ("Public Domain", "Public Domain"),
    ("Domaine public - Public Domain", "Public Domain"),
    ("Creative Commons Attribution 2.5", "CC BY 2.5"),
    ("Creative Commons Attribution 4.0", "CC BY 4.0"),
    ("Creative Commons Attribution-ShareAlike 3.0 (Unported)", "CC BY-SA 3.0"),
    ("Creative Commons Attribution-ShareAlike 4.0 International", "CC BY-SA 4.0"),
    ("Creative Commons BY-SA 2.5", "CC BY-SA 2.5"),
    ("cc-by-sa", "CC BY-SA"),
    ("CC0 1.0 Universal", "CC0"),
    ("Creative Commons Attribution-NonCommercial-ShareAlike 4.0", None),
    ("Creative Commons Attribution-Non-Commercial 3.0", None),
    ("CC BY-NC 4.0", None),
    ("cc-by-nc-sa", None),
    ("Creative Commons Attribution-NoDerivs 3.0", None),
    ("Creative Commons \\texttt{http://creativecommons.org}", None),
    ("Copyright MDCCCLXXXI, by O.DITSON & CO.", None),
    ("", None),
])
def test_licence_filter(mm, text, name):
    assert mm.licence_name(text) == name


def test_licence_field_order(mm):
    """``license`` first; an engraved ``copyright`` line is read only when no licence field is there."""
    assert mm.header_licence({"license": "Creative Commons Attribution-NonCommercial 4.0",
                              "copyright": "Public Domain"})[1] is None
    assert mm.header_licence({"mutopiacopyright": "Creative Commons Attribution-ShareAlike 3.0",
                              "copyright": "Copyright 2007"})[1] == "CC BY-SA 3.0"
    assert mm.header_licence({"mutopialicense": "Public Domain"})[1] == "Public Domain"
    assert mm.header_licence({"copyright": " "}) == ("", None)


@pytest.mark.parametrize("instrument, keep, piano_only", [
    ("Piano", True, True), ("piano", True, True), ("Pianoforte", True, True),
    ("Harpsichord, Piano", True, False), ("Harpsichord,Clavichord", True, False),
    ("Piano/Harpsichord/Clavichord", True, False), ("Clavier", True, False),
    ("Piano Duet", False, False), ("Voice and Piano", False, False), ("Organ", False, False),
    ("Piano, Orgue", False, False), ("Violin, Piano", False, False), ("", False, False),
])
def test_keyboard_solo(mm, instrument, keep, piano_only):
    assert mm.keyboard_solo(instrument) is keep
    assert mm.keyboard_solo(instrument, piano_only=True) is piano_only


def _piece(mm, tmp_path: Path, rel: str, **fields: str):
    ly = write(tmp_path / rel, "")
    return mm.Piece(ly, mm.piece_root(ly), rel, fields)


def test_select_leaves_out_test_works_licences_and_variants(mm, tmp_path):
    """The real check of transcribe.render.filter: Chopin's op. 28 no. 4 (a test work, also under
    Mutopia's composer code only) and Alla turca are left out and listed; op. 28 no. 7 is kept;
    a NonCommercial piece and a duet are not kept; of an A4/letter pair one is kept, of a
    score with a MIDI version the MIDI version, and no four-hands part; a stem in ``exclude``
    is left out."""
    (tmp_path / "test_pieces.csv").write_text(TEST_PIECES, encoding="utf-8")
    tests = load_test_pieces(tmp_path / "test_pieces.csv")
    pd = {"mutopiainstrument": "Piano", "license": "Public Domain"}
    pieces = [
        _piece(mm, tmp_path, "ftp/ChopinFF/O28/p4/p4.ly", **pd, composer="Frédéric Chopin",
               title="Prélude", opus="Op. 28, No. 4"),
        _piece(mm, tmp_path, "ftp/ChopinFF/O28/p4b/p4b.ly", **pd, mutopiacomposer="ChopinFF",
               title="Prelude e-moll Opus 28, No. 4"),
        _piece(mm, tmp_path, "ftp/ChopinFF/O28/p7/p7.ly", **pd, composer="Frédéric Chopin",
               title="Prélude", opus="Op. 28, No. 7"),
        _piece(mm, tmp_path, "ftp/MozartWA/KV331/turca/turca.ly", **pd, composer="W. A. Mozart",
               title="Rondo alla turca"),
        _piece(mm, tmp_path, "ftp/ChopinFF/Misc/untitled/untitled.ly", **pd, composer="F. Chopin"),
        _piece(mm, tmp_path, "ftp/SatieE/gym/gym.ly", mutopiainstrument="Piano", composer="Erik Satie",
               title="Gymnopédie 1", license="Creative Commons Attribution-NonCommercial-ShareAlike 4.0"),
        _piece(mm, tmp_path, "ftp/DiabelliA/duet/duet.ly", mutopiainstrument="Piano Duet", license="Public Domain"),
        _piece(mm, tmp_path, "ftp/BachJS/BWV999/p-lys/p-a4.ly", **pd, composer="J. S. Bach", title="Prelude"),
        _piece(mm, tmp_path, "ftp/BachJS/BWV999/p-lys/p-let.ly", **pd, composer="J. S. Bach", title="Prelude"),
        _piece(mm, tmp_path, "ftp/GriegE/O12/a/a.ly", **pd, composer="Edvard Grieg", title="Arietta"),
        _piece(mm, tmp_path, "ftp/GriegE/O12/a/a-mid.ly", **pd, composer="Edvard Grieg", title="Arietta"),
        _piece(mm, tmp_path, "ftp/BachJS/BWV860/fuga/fuga.ly", **pd, composer="J. S. Bach", title="Fuga 15"),
        _piece(mm, tmp_path, "ftp/MozartWA/KV401/k401/k401-lys/k401-four-hands1.ly", **pd, title="Fugue KV 401"),
    ]
    kept, tested, refused, counts = mm.select(pieces, tests, exclude=("BachJS_BWV860_fuga",))
    assert sorted(p.rel for p in kept) == ["ftp/BachJS/BWV999/p-lys/p-a4.ly", "ftp/ChopinFF/O28/p7/p7.ly",
                                           "ftp/GriegE/O12/a/a-mid.ly"]
    left_out = {r["ly"]: r["reason"] for r in tested}
    assert sorted(left_out) == ["ftp/BachJS/BWV860/fuga/fuga.ly", "ftp/ChopinFF/Misc/untitled/untitled.ly",
                                "ftp/ChopinFF/O28/p4/p4.ly", "ftp/ChopinFF/O28/p4b/p4b.ly",
                                "ftp/MozartWA/KV331/turca/turca.ly"]
    assert "Prelude op. 28 no. 4" in left_out["ftp/ChopinFF/O28/p4/p4.ly"]
    assert "excluded by name" in left_out["ftp/BachJS/BWV860/fuga/fuga.ly"]
    assert refused == ["ftp/SatieE/gym/gym.ly: licence 'Creative Commons Attribution-NonCommercial-ShareAlike "
                       "4.0' not kept"]
    assert counts == {"main files": 13, "keyboard solo": 12, "licence ok": 11, "variants": 3, "test works": 5}


def test_metadata_rows_are_what_quantised_files_reads(mm, tmp_path):
    """metadata.csv beside midis/: train_beat_model.quantised_files takes composer and title from
    it by the file's stem and leaves out a test work even if one were in the folder."""
    (tmp_path / "test_pieces.csv").write_text(TEST_PIECES, encoding="utf-8")
    out = tmp_path / "mutopia"
    (out / "midis").mkdir(parents=True)
    kept_piece = _piece(mm, tmp_path, "ftp/ChopinFF/O28/p7/p7.ly", mutopiainstrument="Piano",
                        license="Creative Commons Attribution-ShareAlike 3.0", composer="Frédéric Chopin",
                        title="Prélude", opus="Op. 28, No. 7", maintainer="A. Typesetter",
                        footer="Mutopia-2008/03/01-1234")
    kept_piece.ly.write_text('\\version "2.18.2"\n', encoding="utf-8")
    test_piece = _piece(mm, tmp_path, "ftp/ChopinFF/O28/p4/p4.ly", mutopiainstrument="Piano",
                        license="Public Domain", composer="Chopin", title="Prelude op. 28 no. 4")
    rows = [mm.metadata_row(kept_piece, f"{kept_piece.stem}.mid", "abc123"),
            mm.metadata_row(test_piece, f"{test_piece.stem}.mid", "abc123")]
    assert rows[0] == {
        "midi": "midis/ChopinFF_O28_p7.mid", "composer": "Frédéric Chopin", "title": "Prélude Op. 28, No. 7",
        "license": "CC BY-SA 3.0",
        "source": "https://github.com/MutopiaProject/MutopiaProject/blob/abc123/ftp/ChopinFF/O28/p7/p7.ly",
        "ly": "ftp/ChopinFF/O28/p7/p7.ly", "instrument": "Piano", "opus": "Op. 28, No. 7",
        "maintainer": "A. Typesetter", "mutopia_id": "Mutopia-2008/03/01-1234", "ly_version": "2.18.2"}
    mm.write_csv(out / "metadata.csv", rows, mm.META_COLUMNS)
    with open(out / "metadata.csv", newline="", encoding="utf-8") as fh:
        assert list(csv.DictReader(fh)) == rows
    for r in rows:
        (out / r["midi"]).write_bytes(b"MThd")
    kept, dropped = load_script("train_beat_model").quantised_files(out / "midis", tmp_path / "test_pieces.csv")
    assert kept == [out / "midis/ChopinFF_O28_p7.mid"]
    assert len(dropped) == 1 and "ChopinFF_O28_p4.mid" in dropped[0]


def test_midi_summary_counts_note_tracks_and_digests_notes(mm, tmp_path):
    pretty_midi = pytest.importorskip("pretty_midi")

    def write_midi(path: Path, names: tuple[str, str]) -> Path:
        pm = pretty_midi.PrettyMIDI()
        for name, pitch in zip(names, (72, 48)):
            inst = pretty_midi.Instrument(0, name=name)
            inst.notes = [pretty_midi.Note(80, pitch + k, 0.5 * k, 0.5 * k + 0.4) for k in range(4)]
            pm.instruments.append(inst)
        pm.instruments.append(pretty_midi.Instrument(0, name="empty"))
        pm.write(str(path))
        return path

    a = mm.midi_summary(write_midi(tmp_path / "a.mid", ("up", "down")))
    b = mm.midi_summary(write_midi(tmp_path / "b.mid", ("right", "left")))
    assert a[:2] == (2, 8)
    assert a[2] == b[2]  # the same notes under other track names: a duplicate


def test_nested_piece_folders(mm):
    assert mm.nested("ftp/A/set", "ftp/A/set")
    assert mm.nested("ftp/A/set", "ftp/A/set/set-lys/no-1") and mm.nested("ftp/A/set/set-lys/no-1", "ftp/A/set")
    assert not mm.nested("ftp/A/set", "ftp/A/set-2")


def test_read_log_keeps_the_latest_record(mm, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"ly": "a.ly", "status": "failed"}\n{"ly": "b.ly", "status": "ok"}\n\n'
                   '{"ly": "a.ly", "status": "ok"}\n', encoding="utf-8")
    assert {k: r["status"] for k, r in mm.read_log(log).items()} == {"a.ly": "ok", "b.ly": "ok"}
    assert mm.read_log(tmp_path / "missing.jsonl") == {}


def test_bar_starts_fill_bars_without_notes(mm):
    """``start:length`` pairs logged at time steps; bars in between (a long rest) are filled in,
    a start that goes back (LilyPond's view of a bar cut short) is not a new bar."""
    from fractions import Fraction as F

    assert mm.bar_starts("1/8:3/4 7/8:3/4 25/8:3/4") == [F(1, 8), F(7, 8), F(13, 8), F(19, 8), F(25, 8)]
    assert mm.bar_starts("0:1 0:3/4 3/4:3/4 1/2:3/4 1:3/4") == [0, F(3, 4), 1]
    assert mm.bar_starts("") == []


def _lilypond_like_midi(path: Path, sig: tuple[int, int], onsets: list[int], tpq: int = 384) -> None:
    """A MIDI file laid out as LilyPond writes one: the time signature and tempo (120 a quarter)
    at 0 in the first track, a track of notes at ``onsets`` (ticks) with a key signature at 0."""
    mido = pytest.importorskip("mido")
    mid = mido.MidiFile(ticks_per_beat=tpq)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("time_signature", numerator=sig[0], denominator=sig[1]),
                                      mido.MetaMessage("set_tempo", tempo=500000)]))
    events, now = [mido.MetaMessage("key_signature", key="G")], 0
    for k, on in enumerate(onsets):
        events.append(mido.Message("note_on", note=60 + k % 12, velocity=90, time=on - now))
        events.append(mido.Message("note_off", note=60 + k % 12, velocity=0, time=tpq // 4))
        now = on + tpq // 4
    mid.tracks.append(mido.MidiTrack(events))
    mid.save(str(path))


def test_align_bars_puts_a_pickup_before_the_first_downbeat(mm, tmp_path):
    """6/8 with an eighth-note pickup (LilyPond: the first bar starts 1/8 in): 5/8 of silence is
    put before the pickup, so pretty_midi's downbeats (from the time signature at 0) fall on the
    first beat of every bar; the time signature, tempo and key stay at 0."""
    from fractions import Fraction as F

    import pretty_midi

    f = tmp_path / "pickup.mid"
    whole = 4 * 384
    _lilypond_like_midi(f, (6, 8), [0] + [whole // 8 + k * 3 * whole // 4 for k in range(4)])
    assert mm.align_bars(f, [F(1, 8), F(7, 8), F(13, 8), F(19, 8)]) == (None, 0)
    pm = pretty_midi.PrettyMIDI(str(f))
    onsets = sorted(n.start for i in pm.instruments for n in i.notes)
    assert onsets == pytest.approx([1.25, 1.5, 3.0, 4.5, 6.0])  # a whole note is 2 s
    assert pm.get_downbeats()[:4] == pytest.approx([0.0, 1.5, 3.0, 4.5])
    assert [(t.numerator, t.denominator, t.time) for t in pm.time_signature_changes] == [(6, 8, 0.0)]
    assert [k.time for k in pm.key_signature_changes] == [0.0]  # moved from the staff's track
    assert pm.get_tempo_changes()[0].tolist() == [0.0]


def test_align_bars_keeps_regular_files_and_restates_the_meter_after_a_short_bar(mm, tmp_path):
    """A regular 3/4 file keeps its notes (its key signature now read); a bar cut short within
    the piece (a \\partial after a section) gets the 3/4 restated where the next bar starts, so
    pretty_midi's downbeats are the score's bars again; a time signature LilyPond put before a
    bar's grace notes moves onto the bar; a first bar that cannot be is refused."""
    from fractions import Fraction as F

    import mido
    import pretty_midi

    whole = 4 * 384
    regular = tmp_path / "regular.mid"
    _lilypond_like_midi(regular, (3, 4), [k * 3 * whole // 4 for k in range(4)])
    assert mm.align_bars(regular, [F(0), F(3, 4), F(3, 2), F(9, 4)]) == (None, 0)
    pm = pretty_midi.PrettyMIDI(str(regular))
    assert sorted(n.start for i in pm.instruments for n in i.notes) == pytest.approx([0.0, 1.5, 3.0, 4.5])
    assert [(k.key_number, k.time) for k in pm.key_signature_changes] == [(7, 0.0)]  # G major, now read

    cut = tmp_path / "cut.mid"  # bars at 0, 3/4, 1 (a bar of 1/4), 7/4, 5/2
    _lilypond_like_midi(cut, (3, 4), [0, 3 * whole // 4, whole, 7 * whole // 4, 10 * whole // 4, 13 * whole // 4])
    assert mm.align_bars(cut, [F(0), F(3, 4), F(1), F(7, 4), F(5, 2), F(13, 4)]) == (None, 1)
    pm = pretty_midi.PrettyMIDI(str(cut))
    assert pm.get_downbeats()[:5] == pytest.approx([0.0, 1.5, 2.0, 3.5, 5.0])  # a whole note is 2 s
    assert [(t.numerator, t.denominator, t.time) for t in pm.time_signature_changes] == [(3, 4, 0.0), (3, 4, 2.0)]

    graced = tmp_path / "graced.mid"  # 4/4, then a 3/4 stated 1/16 before its bar (grace notes)
    _lilypond_like_midi(graced, (4, 4), [0, whole, 7 * whole // 4])
    mid = mido.MidiFile(str(graced))
    mid.tracks[0].insert(2, mido.MetaMessage("time_signature", numerator=3, denominator=4, time=whole - whole // 16))
    mid.save(str(graced))
    assert mm.align_bars(graced, [F(0), F(1), F(7, 4)]) == (None, 1)
    pm = pretty_midi.PrettyMIDI(str(graced))
    assert [(t.numerator, t.time) for t in pm.time_signature_changes] == [(4, 0.0), (3, 2.0)]
    assert pm.get_downbeats()[:3] == pytest.approx([0.0, 2.0, 3.5])

    why, _ = mm.align_bars(regular, [F(1), F(7, 4)])
    assert "first bar" in why
