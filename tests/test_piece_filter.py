"""The test-piece filter (:mod:`transcribe.render.filter`): real rows of ASAP's ``metadata.csv``
and GiantMIDI-Piano evaluation file names that must be dropped (performances of the 53 works of
the real-piano test set) and ones that must be kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcribe.render.filter import (check, check_asap_row, check_giantmidi, composer_key, features,
                                      giantmidi_title, load_test_pieces, normalise)

# ../shared/data/test_pieces.csv (copied: the tests do not need the shared data folder)
TEST_PIECES_CSV = """\
maps_code,composer,work
alb_se2,Albéniz,Suite española op. 47 no. 2 (Cataluña)
bk_xmas1,(Christmas carol arrangement),MAPS bk_xmas1
bk_xmas4,(Christmas carol arrangement),MAPS bk_xmas4
bk_xmas5,(Christmas carol arrangement),MAPS bk_xmas5
bor_ps6,Borodin,Petite Suite no. 6
chpn-e01,Chopin,Étude (MAPS chpn-e01; treat every Chopin étude op. 10 no. 1 as excluded)
chpn-p4,Chopin,Prelude op. 28 no. 4
chpn-p14,Chopin,Prelude op. 28 no. 14
chpn-p15,Chopin,Prelude op. 28 no. 15
chpn-p19,Chopin,Prelude op. 28 no. 19
chpn_op25_e3,Chopin,Étude op. 25 no. 3
chpn_op25_e4,Chopin,Étude op. 25 no. 4
chpn_op33_2,Chopin,Mazurka op. 33 no. 2
chpn_op35_1,Chopin,Piano Sonata no. 2 op. 35 mvt 1
chpn_op66,Chopin,Fantaisie-Impromptu op. 66
chpn_op7_1,Chopin,Mazurka op. 7 no. 1
deb_clai,Debussy,Suite bergamasque: Clair de lune
deb_menu,Debussy,Suite bergamasque: Menuet
grieg_butterfly,Grieg,Lyric Pieces op. 43 no. 1 (Butterfly)
grieg_kobold,Grieg,Lyric Pieces op. 71 no. 3 (Puck / Kobold)
liz_et6,Liszt,Étude no. 6 (MAPS liz_et6; treat Paganini and Transcendental Étude no. 6 as excluded)
liz_et_trans5,Liszt,Transcendental Étude no. 5 (Feux follets)
liz_rhap02,Liszt,Hungarian Rhapsody no. 2
liz_rhap09,Liszt,Hungarian Rhapsody no. 9
liz_rhap12,Liszt,Hungarian Rhapsody no. 12
mendel_op62_5,Mendelssohn,Songs without Words op. 62 no. 5
muss_1,Mussorgsky,Pictures at an Exhibition: Promenade
mz_311_1,Mozart,Piano Sonata K. 311 mvt 1
mz_331_2,Mozart,Piano Sonata K. 331 mvt 2
mz_331_3,Mozart,Piano Sonata K. 331 mvt 3 (Alla turca)
mz_332_2,Mozart,Piano Sonata K. 332 mvt 2
mz_333_2,Mozart,Piano Sonata K. 333 mvt 2
mz_333_3,Mozart,Piano Sonata K. 333 mvt 3
mz_545_3,Mozart,Piano Sonata K. 545 mvt 3
mz_570_1,Mozart,Piano Sonata K. 570 mvt 1
pathetique_1,Beethoven,Piano Sonata no. 8 op. 13 (Pathétique) mvt 1
pathetique_2,Beethoven,Piano Sonata no. 8 op. 13 (Pathétique) mvt 2
pathetique_3,Beethoven,Piano Sonata no. 8 op. 13 (Pathétique) mvt 3
schu_143_1,Schubert,Piano Sonata D 784 (op. 143) mvt 1
schu_143_3,Schubert,Piano Sonata D 784 (op. 143) mvt 3
schub_d760_3,Schubert,Wanderer Fantasy D 760 mvt 3
schuim-1,Schubert,Impromptu D 899 (op. 90) no. 1
schumm-1,Schubert,Moments musicaux D 780 no. 1
scn15_6,Schumann,Kinderszenen op. 15 no. 6
scn15_9,Schumann,Kinderszenen op. 15 no. 9
scn15_11,Schumann,Kinderszenen op. 15 no. 11
scn15_12,Schumann,Kinderszenen op. 15 no. 12
scn16_3,Schumann,Kreisleriana op. 16 no. 3
scn16_4,Schumann,Kreisleriana op. 16 no. 4
ty_maerz,Tchaikovsky,The Seasons op. 37a: March
ty_mai,Tchaikovsky,The Seasons op. 37a: May
ty_november,Tchaikovsky,The Seasons op. 37a: November
waldstein_1,Beethoven,Piano Sonata no. 21 op. 53 (Waldstein) mvt 1
"""
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "test_pieces.csv"


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    path = tmp_path_factory.mktemp("pieces") / "test_pieces.csv"
    path.write_text(TEST_PIECES_CSV, encoding="utf-8")
    return load_test_pieces(path)


def test_copy_matches_the_shared_list(pieces):
    assert len(pieces) == 53
    if not SHARED.is_file():
        pytest.skip(f"{SHARED} not present")
    assert load_test_pieces(SHARED) == pieces


# Real rows of ASAP's metadata.csv: (composer, title, folder, midi_performance) → test work or None
ASAP_ROWS = [
    # performances of test works: dropped
    (("Chopin", "Etudes_op_10_1", "Chopin/Etudes_op_10/1", "Chopin/Etudes_op_10/1/Avdeeva02.mid"), "chpn-e01"),
    (("Chopin", "Etudes_op_25_4", "Chopin/Etudes_op_25/4", "Chopin/Etudes_op_25/4/Taverna02.mid"), "chpn_op25_e4"),
    (("Chopin", "Sonata_2_1st", "Chopin/Sonata_2/1st_no_repeat", "Chopin/Sonata_2/1st_no_repeat/Giltburg02.mid"), "chpn_op35_1"),
    (("Beethoven", "Piano_Sonatas_8-2", "Beethoven/Piano_Sonatas/8-2", "Beethoven/Piano_Sonatas/8-2/Na06.mid"), "pathetique_2"),
    (("Beethoven", "Piano_Sonatas_21-1", "Beethoven/Piano_Sonatas/21-1", "Beethoven/Piano_Sonatas/21-1/HAGINO02.mid"), "waldstein_1"),
    (("Beethoven", "Piano_Sonatas_21-1", "Beethoven/Piano_Sonatas/21-1_no_repeat",
      "Beethoven/Piano_Sonatas/21-1_no_repeat/Dulu01.mid"), "waldstein_1"),
    (("Liszt", "Transcendental_Etudes_5", "Liszt/Transcendental_Etudes/5",
      "Liszt/Transcendental_Etudes/5/Gryaznov02.mid"), "liz_et_trans5"),
    (("Liszt", "Gran_Etudes_de_Paganini_6_Theme_and_Variations",
      "Liszt/Gran_Etudes_de_Paganini/6_Theme_and_Variations_repeat",
      "Liszt/Gran_Etudes_de_Paganini/6_Theme_and_Variations_repeat/KanM09M.mid"), "liz_et6"),
    (("Mozart", "Piano_Sonatas_11-3", "Mozart/Piano_Sonatas/11-3", "Mozart/Piano_Sonatas/11-3/Stahievitch02.mid"), "mz_331_3"),
    (("Mozart", "Piano_Sonatas_12-2", "Mozart/Piano_Sonatas/12-2", "Mozart/Piano_Sonatas/12-2/MunA04.mid"), "mz_332_2"),
    (("Schubert", "Impromptu_op.90_D.899_1", "Schubert/Impromptu_op.90_D.899/1",
      "Schubert/Impromptu_op.90_D.899/1/Duepree08M.mid"), "schuim-1"),
    (("Schubert", "Moment_Musical_no_1", "Schubert/Moment_Musical_no_1",
      "Schubert/Moment_Musical_no_1/MunA10M.mid"), "schumm-1"),
    (("Schubert", "Wanderer_fantasie", "Schubert/Wanderer_fantasie",           # the whole fantasy holds mvt 3
      "Schubert/Wanderer_fantasie/Kolessova02.mid"), "schub_d760_3"),
    (("Schumann", "Kreisleriana_3", "Schumann/Kreisleriana/3", "Schumann/Kreisleriana/3/JohannsonP04.mid"), "scn16_3"),
    # other works (other numbers, movements, composers): kept
    (("Chopin", "Etudes_op_10_12", "Chopin/Etudes_op_10/12", "Chopin/Etudes_op_10/12/Bult-ItoS04M.mid"), None),
    (("Chopin", "Etudes_op_25_11", "Chopin/Etudes_op_25/11", "Chopin/Etudes_op_25/11/ChenS02.mid"), None),
    (("Chopin", "Sonata_2_2nd", "Chopin/Sonata_2/2nd_no_repeat", "Chopin/Sonata_2/2nd_no_repeat/Giltburg02.mid"), None),
    (("Chopin", "Sonata_3_2nd", "Chopin/Sonata_3/2nd", "Chopin/Sonata_3/2nd/GarritsonL09.mid"), None),
    (("Beethoven", "Piano_Sonatas_8-1", "Beethoven/Piano_Sonatas/8-1", "Beethoven/Piano_Sonatas/8-1/ChenS01.mid"),
     "pathetique_1"),
    (("Beethoven", "Piano_Sonatas_11-3", "Beethoven/Piano_Sonatas/11-3",   # Beethoven's no. 11, not Mozart's K. 331
      "Beethoven/Piano_Sonatas/11-3/MaximovI05.mid"), None),
    (("Beethoven", "Piano_Sonatas_21-2", "Beethoven/Piano_Sonatas/21-2", "Beethoven/Piano_Sonatas/21-2/KimSY03.mid"), None),
    (("Beethoven", "Piano_Sonatas_24-1", "Beethoven/Piano_Sonatas/24-1_no_2_repeat",
      "Beethoven/Piano_Sonatas/24-1_no_2_repeat/DeTurck06M.mid"), None),
    (("Beethoven", "Piano_Sonatas_31-3_4", "Beethoven/Piano_Sonatas/31-3_4",
      "Beethoven/Piano_Sonatas/31-3_4/ADIG05M.mid"), None),
    (("Mozart", "Piano_Sonatas_8-1", "Mozart/Piano_Sonatas/8-1", "Mozart/Piano_Sonatas/8-1/Bogdanovitch01.mid"), None),
    (("Mozart", "Piano_Sonatas_12-1", "Mozart/Piano_Sonatas/12-1", "Mozart/Piano_Sonatas/12-1/ADIG01.mid"), None),
    (("Schubert", "Impromptu_op.90_D.899_2", "Schubert/Impromptu_op.90_D.899/2",
      "Schubert/Impromptu_op.90_D.899/2/Denisova11M.mid"), None),
    (("Schubert", "Impromptu_op142_1", "Schubert/Impromptu_op142/1", "Schubert/Impromptu_op142/1/Kleisen02.mid"), None),
    (("Schubert", "Moment_musical_no_3", "Schubert/Moment_musical_no_3",
      "Schubert/Moment_musical_no_3/Tetzloff09M.mid"), None),
    (("Schubert", "Piano_Sonatas_664-1", "Schubert/Piano_Sonatas/664-1", "Schubert/Piano_Sonatas/664-1/BuiJL06M.mid"), None),
    (("Liszt", "Transcendental_Etudes_10", "Liszt/Transcendental_Etudes/10",
      "Liszt/Transcendental_Etudes/10/CaoJ03M.mid"), None),
    (("Liszt", "Hungarian_Rhapsodies_6", "Liszt/Hungarian_Rhapsodies/6", "Liszt/Hungarian_Rhapsodies/6/KaiRuiR04.mid"), None),
    (("Liszt", "Concert_Etude_S145_1", "Liszt/Concert_Etude_S145/1", "Liszt/Concert_Etude_S145/1/FEINER03.mid"), None),
    (("Liszt", "Gran_Etudes_de_Paganini_2_La_campanella", "Liszt/Gran_Etudes_de_Paganini/2_La_campanella",
      "Liszt/Gran_Etudes_de_Paganini/2_La_campanella/Albright04.mid"), None),
    (("Schumann", "Kreisleriana_1", "Schumann/Kreisleriana/1_no_first_repeat",
      "Schumann/Kreisleriana/1_no_first_repeat/JohannsonP02M.mid"), None),
    (("Debussy", "Pour_le_Piano_1", "Debussy/Pour_le_Piano/1", "Debussy/Pour_le_Piano/1/MunA12M.mid"), None),
    (("Bach", "Fugue_bwv_858", "Bach/Fugue/bwv_858", "Bach/Fugue/bwv_858/VuV01M.mid"), None),
]


@pytest.mark.parametrize("row,code", ASAP_ROWS, ids=[f"{r[0][1]}@{r[0][2]}" for r in ASAP_ROWS])
def test_asap_rows(pieces, row, code):
    composer, title, folder, midi = row
    v = check_asap_row({"composer": composer, "title": title, "folder": folder, "midi_performance": midi}, pieces)
    assert v.excluded == (code is not None), v
    assert (v.piece.code if v.piece else None) == code


# GiantMIDI-Piano midis_for_evaluation/ (file name, evaluation table name) → test work or None
GIANTMIDI = [
    ("Debussy_Suite_bergamasque_xAKeiyjjTKk_cut_no_3.mid", "Debussy, Suite Bergamasque, L. 75, No. 3", "deb_clai"),
    ("Debussy_Suite_bergamasque_xAKeiyjjTKk_cut_no_2.mid", "Debussy, Suite Bergamasque, L. 75, No. 2", "deb_menu"),
    ("Liszt_Hungarian_Rhapsody_No9_S244_9_JZfp5VsyIsc.mid", "Liszt, Hungarian Rhapsody S. 244, No. 9", "liz_rhap09"),
    ("Schubert_Fantasie_in_C_major_D760_lR43Ti4w5MM_cut_mov_3.mid", "Schubert, Fantasie in C major, D. 760, Mov. 3",
     "schub_d760_3"),
    ("Debussy_Suite_bergamasque_xAKeiyjjTKk_cut_no_4.mid", "Debussy, Suite Bergamasque, L. 75, No. 4", None),
    ("Schubert_Fantasie_in_C_major_D760_lR43Ti4w5MM_cut_mov_1.mid", "Schubert, Fantasie in C major, D. 760, Mov. 1", None),
    ("Schubert_Impromptus_D899_24DugWBRkYg_cut_no_4.mid", "Schubert, Impromptus, D. 899, No. 4", None),
    ("Chopin_Etudes_Op10_g0hoN6_HDVU_no_12_cut.mid", "Chopin, Etude, Op. 10, No. 12", None),
    ("Beethoven_Piano_Sonata_No_3_Op_2_No_3_3asWeutbY0c_cut_midi.mid", "Beethoven, Sonata No. 3 in C major, Op. 2, No. 3",
     None),
    ("Liszt_2_Konzertetuden_S_145_6GQ2otGSr0k_cut_no_2.mid", "Liszt, Two Concert Études, S. 145, No. 2", None),
]


@pytest.mark.parametrize("name,table_name,code", GIANTMIDI, ids=[g[0] for g in GIANTMIDI])
def test_giantmidi_eval(pieces, name, table_name, code):
    for v in (check_giantmidi(name, pieces), check_giantmidi(name, pieces, table_name)):
        assert (v.piece.code if v.excluded else None) == code, v


def test_giantmidi_title_drops_the_youtube_id():
    assert giantmidi_title("Chopin_Polonaise_in_F-sharp_minor_Op44_ehm_kDU563Q.mid") == \
        ("Chopin", "Polonaise_in_F-sharp_minor_Op44")
    assert giantmidi_title("Bach_Prelude_and_Fugue_in_A-flat_major_BWV862_gCL5Zvnt0TU_a.mid") == \
        ("Bach", "Prelude_and_Fugue_in_A-flat_major_BWV862_a")


@pytest.mark.parametrize("a,b", [("Suite española op. 47 no. 2 (Cataluña)", "Suite Espanola, Op.47 No.2"),
                                 ("Suite española op. 47 no. 2", "suite_espanola_op47_2"),
                                 ("Étude op. 10 no. 1", "Etude Op.10, No.1"),
                                 ("Étude op. 10 no. 1", "Etudes_op_10_1")])
def test_spellings_give_the_same_features(a, b):
    fa, fb = features(a), features(b)
    for key in ("op", "no", "set"):
        if fa.get(key) and fb.get(key):
            assert fa.get(key) == fb.get(key)
    assert fa.get("op") == fb.get("op") and fa.get("no") == fb.get("no")


def test_normalise_and_composers():
    assert normalise("Albéniz: Op.47 No.2 (Cataluña)") == "albeniz op 47 no 2 cataluna"
    assert normalise("BWV858") == "bwv 858"
    assert composer_key("Schumann, Robert") == "schumann" and composer_key("Moussorgsky") == "mussorgsky"
    assert composer_key("Scriabin") is None
    assert features("Prelude and Fugue BWV 858").get("bwv") == {"858"}


@pytest.mark.parametrize("composer,title,code", [
    ("Albeniz", "Suite Espanola Op.47 No.2 Cataluna", "alb_se2"),
    ("Isaac Albéniz", "Cataluña (Suite española)", "alb_se2"),
    ("Albéniz", "Suite española op. 47 no. 3 (Sevilla)", None),
    ("Chopin", "Prelude Op.28 No.4 in E minor", "chpn-p4"),
    ("Chopin", "Preludes, Op. 28: No. 14", "chpn-p14"),
    ("Chopin", "Prelude op 28 no 7", None),
    ("Chopin", "24 Preludes, Op. 28", "chpn-p4"),                 # the whole set holds the test preludes
    ("Chopin", "Etude", "chpn-e01"),                              # no number: unsure, dropped
    ("Chopin", "Nocturne Op. 9 No. 2", None),
    ("Mozart", "Piano Sonata No. 11 in A major, K. 331: Rondo alla turca", "mz_331_3"),
    ("Mozart", "Rondo alla Turca", "mz_331_3"),
    ("Mozart", "Piano Sonata in C major, K. 545", "mz_545_3"),     # whole sonata
    ("Mozart", "Piano Sonata K. 545 mvt 1", None),
    ("Beethoven", "Piano Sonata No. 8 'Pathétique', Op. 13", "pathetique_1"),
    ("Beethoven", "Sonata Pathetique 2nd movement", "pathetique_2"),
    ("Beethoven", "Piano Sonata No. 23, Op. 57", None),
    ("Debussy", "Clair de Lune", "deb_clai"),
    ("Grieg", "Lyric Pieces, Op. 43: No. 1, Butterfly", "grieg_butterfly"),
    ("Grieg", "Kobold Op. 71 No. 3", "grieg_kobold"),
    ("Tchaikovsky", "The Seasons, Op. 37a: No. 5, May", "ty_mai"),
    ("Tschaikowsky", "Jahreszeiten Op. 37b November", "ty_november"),
    ("Tchaikovsky", "The Seasons Op. 37a: June", None),
    ("Mussorgsky", "Pictures at an Exhibition", "muss_1"),
    ("Schumann, Robert", "Kinderszenen, Op. 15: No. 7 Träumerei", None),
    ("Schumann, Robert", "Kinderszenen Op.15 No.12", "scn15_12"),
    ("Liszt", "Hungarian Rhapsody No. 2", "liz_rhap02"),
    ("Liszt", "Etude S. 139 No. 5", "liz_et_trans5"),
    ("Mendelssohn", "Lieder ohne Worte Op.62 No.5", "mendel_op62_5"),
    ("Borodin", "Petite Suite: No. 6 Sérénade", "bor_ps6"),
    ("Traditional", "Christmas Carol Medley", "bk_xmas1"),
])
def test_titles_in_other_spellings(pieces, composer, title, code):
    v = check(composer, title, pieces)
    assert (v.piece.code if v.excluded else None) == code, v
