"""SFZ → SF2: the macro expander and header parser (:mod:`transcribe.render.sfz`) on small SFZ
fixtures, and, where Polyphone and FluidSynth are installed, a converted two-layer instrument
played by FluidSynth."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from transcribe.render.sfz import (SfzError, convert, expand_macros, flat_groups, layer_velocities, note_number,
                                   parse_sfz, parse_text, resolve_region, substitute, write_flat_sfz)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------
# Macros


def test_substitute_uses_longest_defined_prefix():
    d = {"$ART": "mcg", "$DYN": "p", "$KEY": "021", "$EXT": "flac", "$KEYS": "x"}
    assert substitute("sample=$ART_$DYN_$KEY.$EXT", d) == "sample=mcg_p_021.flac"
    assert substitute("$KEYS $KEY2 $UNKNOWN", d) == "x 0212 $UNKNOWN"


def test_defines_apply_in_file_order_and_can_be_redefined(tmp_path):
    sfz = write(tmp_path / "a.sfz", """
#define $EXT flac
#define $DYN pp
<group> lovel=1 hivel=60
<region> key=60 sample=$DYN.$EXT
#define $DYN ff
<group> lovel=61 hivel=127
<region> key=60 sample=$DYN.$EXT
""")
    inst = parse_sfz(sfz)
    assert [r.opcodes["sample"] for r in inst.regions] == ["pp.flac", "ff.flac"]
    assert [r.opcodes["lovel"] for r in inst.regions] == ["1", "61"]


def test_define_value_may_use_macros_and_contain_spaces(tmp_path):
    sfz = write(tmp_path / "a.sfz", "#define $A PIANO\n#define $NAME My $A Left\n<region> key=1 sample=$NAME 1.wav\n")
    assert parse_sfz(sfz).regions[0].opcodes["sample"] == "My PIANO Left 1.wav"


def test_inline_define_and_include_inside_a_region_line(tmp_path):
    # Headroom / Maestro style: `<region> #define $KEY 21 lokey=21 #include "Data/sample.txt" opcode=...`
    write(tmp_path / "Data" / "sample.txt", "sample=S $VEL $KEY.flac\npitch_keycenter=$KEY")  # no final newline
    sfz = write(tmp_path / "p.sfz", """
#define $VEL L1
<group> lovel=1 hivel=127
<region> #define $KEY 21 lokey=21 hikey=22 #include "Data/sample.txt"
<region> #define $KEY 24 lokey=23 hikey=25 #include "Data/sample.txt" ampeg_release=10
""")
    r = parse_sfz(sfz).regions
    assert [x.opcodes["sample"] for x in r] == ["S L1 21.flac", "S L1 24.flac"]
    assert [x.opcodes["pitch_keycenter"] for x in r] == ["21", "24"]
    assert [x.opcodes["lokey"] for x in r] == ["21", "23"]
    assert r[1].opcodes["ampeg_release"] == "10" and "ampeg_release" not in r[0].opcodes


def test_nested_includes_resolve_against_the_top_file_then_the_includer(tmp_path):
    # group.txt (in Data/) includes "Data/region.txt" relative to the top SFZ's folder, and
    # "local.txt" relative to itself; the include path uses macros
    write(tmp_path / "Data" / "region.txt", "<region> key=$K sample=$DYN.wav\n")
    write(tmp_path / "Data" / "local.txt", "#define $K 62\n")
    write(tmp_path / "Data" / "group.txt", '<group> hivel=50\n#include "local.txt"\n#include "$DIR/region.txt"\n')
    sfz = write(tmp_path / "top.sfz", '#define $DIR Data\n#define $DYN mp\n#define $K 60\n'
                                      '#include "$DIR/region.txt"\n#include "$DIR/group.txt"\n')
    text = expand_macros(sfz)
    assert "$" not in text and "#" not in text
    r = parse_sfz(sfz).regions
    assert [(x.opcodes["key"], x.opcodes["sample"], x.opcodes.get("hivel")) for x in r] == \
        [("60", "mp.wav", None), ("62", "mp.wav", "50")]


def test_missing_include_names_the_file(tmp_path):
    sfz = write(tmp_path / "bad.sfz", '<region> sample=a.wav\n#include "nowhere/x.txt"\n')
    with pytest.raises(SfzError, match=r"bad\.sfz.*nowhere/x\.txt"):
        parse_sfz(sfz)


def test_self_include_is_an_error_not_a_hang(tmp_path):
    sfz = write(tmp_path / "loop.sfz", '#include "loop.sfz"\n')
    with pytest.raises(SfzError, match="nested"):
        parse_sfz(sfz)


def test_comments_are_removed(tmp_path):
    sfz = write(tmp_path / "c.sfz", """// a comment <region> sample=no.wav
<region> key=60 sample=yes.wav // trailing comment lokey=1
/* a block
<region> sample=no2.wav
*/ <region> key=61 /* inline */ sample=yes2.wav
""")
    r = parse_sfz(sfz).regions
    assert [(x.opcodes["sample"], x.opcodes["key"]) for x in r] == [("yes.wav", "60"), ("yes2.wav", "61")]
    assert "lokey" not in r[0].opcodes


# ---------------------------------------------------------------------------------------------
# Headers


def test_header_inheritance_and_resets():
    inst = parse_text("""
<control> default_path=Samples/
<global> volume=-3 ampeg_release=1
<master> pan=10
<group> lovel=1 hivel=64
<region> key=60 sample=a.wav
<group> lovel=65
<region> key=60 sample=b.wav ampeg_release=2
<master> tune=5
<region> key=61 sample=c.wav
<global> cutoff=500
<region> key=62 sample=d.wav
""")
    a, b, c, d = (r.opcodes for r in inst.regions)
    assert a == {"volume": "-3", "ampeg_release": "1", "pan": "10", "lovel": "1", "hivel": "64", "key": "60", "sample": "a.wav"}
    assert b["lovel"] == "65" and "hivel" not in b and b["ampeg_release"] == "2" and b["pan"] == "10"
    assert "pan" not in c and "lovel" not in c and c["tune"] == "5" and c["volume"] == "-3"   # new master: group reset
    assert d == {"cutoff": "500", "key": "62", "sample": "d.wav"}                               # new global: all reset
    assert [(r.master, r.group) for r in inst.regions] == [(0, 0), (0, 1), (1, 1), (1, 1)]
    assert all(r.default_path == "Samples/" for r in inst.regions)


def test_default_path_and_backslashes(tmp_path):
    inst = parse_text("<control> default_path=Samples\\Dir/\n<region> key=60 sample=sub\\A 1.flac\n", tmp_path / "x.sfz")
    assert inst.regions[0].sample_path(tmp_path) == tmp_path / "Samples" / "Dir" / "sub" / "A 1.flac"


def test_values_with_spaces_and_note_names():
    r = parse_text("<region> sample=HEADROOM PIANO LEVEL1 21.flac lokey=c#4 hikey=60\n").regions[0]
    assert r.opcodes["sample"] == "HEADROOM PIANO LEVEL1 21.flac"
    assert note_number(r.opcodes["lokey"]) == 61 and note_number("a0") == 21 and note_number("Bb3") == 58


def test_unknown_header_is_an_error():
    with pytest.raises(SfzError, match="unknown header <regoin>"):
        parse_text("<regoin> sample=a.wav")


# ---------------------------------------------------------------------------------------------
# Sound at default controller values


def resolved(text: str) -> list[dict | None]:
    inst = parse_text(text)
    return [resolve_region(r, inst) for r in inst.regions]


def test_cc_conditions_and_cc_triggers_at_defaults():
    out = resolved("""
<control> set_hdcc74=1 set_cc80=0
<region> key=60 sample=plain.wav
<region> key=60 sample=pedal_res.wav locc64=65
<region> key=60 sample=mic.wav locc74=1
<region> key=60 sample=noise.wav locc80=1
<region> sample=pedal_down.wav on_locc64=127 lokey=-1 hikey=-1
<region> key=60 sample=release.wav trigger=release
""")
    kept = [o["sample"] if o else None for o in out]
    assert kept == ["plain.wav", None, "mic.wav", None, None, "release.wav"]


def test_oncc_modulations_fold_into_plain_values():
    r = resolved("""
<control> set_hdcc72=0.4 set_hdcc67=0 set_cc7=127 set_hdcc77=0.5
<curve> curve_index=7 v000=1 v001=0 v127=0
<global> amp_veltrack=0 amp_veltrack_oncc73=100 ampeg_release_oncc72=2 ampeg_release_curvecc67=7
<group> group_volume=6 amplitude_oncc77=100 ampeg_hold=8 ampeg_hold_oncc133=-6
<region> key=60 sample=low.wav
<region> key=100 sample=high.wav ampeg_release_oncc67=10
""")
    low, high = r
    assert float(low["ampeg_release"]) == pytest.approx(0.8)            # 2 x 0.4
    assert float(high["ampeg_release"]) == pytest.approx(10.8)          # + 10 x curve 7 at CC67=0
    assert float(low["amp_veltrack"]) == pytest.approx(0.0)             # CC73 unset: 0
    assert float(low["volume"]) == pytest.approx(6 + 20 * np.log10(0.5), abs=1e-3)
    assert float(low["ampeg_hold"]) == pytest.approx(8 - 6 * 60 / 127, abs=1e-3)   # CC133 = key
    assert float(high["ampeg_hold"]) == pytest.approx(8 - 6 * 100 / 127, abs=1e-3)
    assert low["lokey"] == low["hikey"] == low["pitch_keycenter"] == "60"


def test_flat_sfz_is_macro_free_grouped_and_points_at_existing_samples(tmp_path):
    lib = tmp_path / "lib"
    for name in ("pp 60.wav", "ff 60.wav", "rel.wav"):
        write(lib / "Samples" / name, "x")
    write(lib / "Data" / "layer.txt", "<group> lovel=$LO hivel=$HI group_volume=$V\n<region> key=60 sample=$DYN 60.$EXT\n")
    sfz = write(lib / "p.sfz", """#define $EXT wav
<control> default_path=Samples/
<global> group=1 off_by=1 note_polyphony=1 ampeg_release=0.5
#define $LO 1
#define $HI 63
#define $V 4
#define $DYN pp
#include "Data/layer.txt"
#define $LO 64
#define $HI 127
#define $V 0
#define $DYN ff
#include "Data/layer.txt"
<group> trigger=release volume=-20
<region> key=60 sample=rel.wav
""")
    inst = parse_sfz(sfz)
    attack = flat_groups(inst, trigger="attack")
    release = flat_groups(inst, trigger="release")
    assert [len(g.regions) for g in attack] == [1, 1] and [len(g.regions) for g in release] == [1]
    out = write_flat_sfz(attack, tmp_path / "out" / "flat.sfz")
    text = out.read_text()
    assert "$" not in text and "#" not in text
    for bad in ("group=", "off_by", "polyphony", "trigger"):
        assert bad not in text.replace("<group>", "")
    flat = parse_text(text, out)
    assert [(r.opcodes["lovel"], r.opcodes["hivel"], r.opcodes["volume"]) for r in flat.regions] == \
        [("1", "63", "0"), ("64", "127", "-4")]                      # +4 dB is not playable: all shifted by -4
    assert "volume" not in text.split("<region>")[0]                # on the regions, never on a <group>
    assert all(r.opcodes["loop_mode"] == "no_loop" and r.opcodes["ampeg_release"] == "0.5" for r in flat.regions)
    assert all(r.sample_path(out.parent).resolve().is_file() for r in flat.regions)
    assert text.count("<group>") == 2
    assert layer_velocities(attack) == [1, 63, 64, 127]


def test_missing_sample_is_reported_with_the_sfz(tmp_path):
    sfz = write(tmp_path / "m.sfz", "<region> key=60 sample=gone.wav\n")
    with pytest.raises(SfzError, match=r"m\.sfz: 1 sample\(s\) not found"):
        flat_groups(parse_sfz(sfz))


# ---------------------------------------------------------------------------------------------
# Polyphone + FluidSynth


needs_tools = pytest.mark.skipif(shutil.which("polyphone") is None or shutil.which("fluidsynth") is None,
                                 reason="needs polyphone and fluidsynth (Debian packages)")
SR = 44100
F0 = 261.63  # C4


def centroid(y: np.ndarray, sr: int) -> float:
    """Spectral centroid (Hz) of the magnitude spectrum, normalised to unit sum."""
    mag = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    f = np.fft.rfftfreq(len(y), 1 / sr)
    return float((f * mag).sum() / mag.sum())


@pytest.fixture(scope="module")
def two_layer_sf2(tmp_path_factory):
    import soundfile as sf

    d = tmp_path_factory.mktemp("sfz2sf2")
    t = np.arange(int(SR * 1.5)) / SR
    env = np.exp(-t * 1.5)
    soft = 0.2 * np.sin(2 * np.pi * F0 * t) * env                                   # pure tone
    loud = 0.5 * sum(np.sin(2 * np.pi * F0 * k * t) / k for k in range(1, 25)) * env  # sawtooth-like
    click = np.zeros(SR // 5)
    click[:300] = np.random.default_rng(0).normal(0, 0.3, 300)
    (d / "Samples").mkdir()
    sf.write(str(d / "Samples" / "soft C4.wav"), soft, SR)
    sf.write(str(d / "Samples" / "loud C4.flac"), loud, SR)
    sf.write(str(d / "Samples" / "rel.wav"), click, SR)
    write(d / "Data" / "layer.txt", "<group> lovel=$LO hivel=$HI\n<region> lokey=48 hikey=72 pitch_keycenter=60 "
                                    "sample=$DYN C4.$EXT\n")
    sfz = write(d / "tiny.sfz", """
<control> default_path=Samples/
<global> group=1 off_by=1 ampeg_release=0.2 ampeg_release_oncc72=1
#define $LO 1
#define $HI 63
#define $DYN soft
#define $EXT wav
#include "Data/layer.txt"
#define $LO 64
#define $HI 127
#define $DYN loud
#define $EXT flac
#include "Data/layer.txt"
<group> trigger=release
<region> lokey=48 hikey=72 sample=rel.wav
""")
    return convert(sfz, d / "sf2" / "tiny.sf2", name="tiny")


def play(sf2: Path, events: list[tuple[float, str, dict]], seconds: float, tmp: Path, program: int = 0) -> np.ndarray:
    """Render (time s, mido message type, fields) events on channel 0 with the SF2's preset."""
    import mido

    from transcribe.render.synth import Piano, synthesize

    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=1_000_000, time=0),
                            mido.Message("program_change", program=program, time=0)])
    last = 0
    for t, kind, fields in sorted(events, key=lambda e: e[0]):
        tick = int(round(t * 10000))
        track.append(mido.Message(kind, time=tick - last, **fields))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=int(seconds * 10000) - last))
    mid = mido.MidiFile(ticks_per_beat=10000)
    mid.tracks.append(track)
    path = tmp / f"play{len(list(tmp.glob('play*.mid')))}.mid"
    mid.save(str(path))
    synth = SimpleNamespace(binary="fluidsynth", sample_rate=SR, gain=0.5, polyphony=256, reverb=False,
                            chorus=False, timeout_s=60)
    y, sr = synthesize(path, Piano("tiny", str(sf2), 0, program), synth)
    assert sr == SR
    return y


def note(t_on: float, t_off: float, key: int, vel: int) -> list:
    return [(t_on, "note_on", {"note": key, "velocity": vel}), (t_off, "note_off", {"note": key, "velocity": 0})]


@needs_tools
def test_converted_layers_differ_in_timbre_and_onsets_are_on_time(two_layer_sf2, tmp_path):
    from transcribe.render.latency import detect_onset

    assert two_layer_sf2.regions == 2 and two_layer_sf2.release_regions == 1
    cents, onsets = {}, {}
    for vel in (30, 110):
        y = play(two_layer_sf2.sf2, note(0.5, 1.2, 60, vel), 2.0, tmp_path)
        assert np.abs(y).max() > 1e-3
        onsets[vel] = detect_onset(y, SR, 0.05)
        seg = y[int(0.55 * SR):int(1.05 * SR)]
        cents[vel] = centroid(seg / np.sqrt(np.mean(seg ** 2)), SR)
    assert cents[30] < 1.3 * F0                               # the sine layer (leakage and dither lift it a little)
    assert cents[110] > 3 * cents[30], cents                 # the bright layer, whatever the level
    for vel, on in onsets.items():
        assert on is not None and abs(on - 0.5) < 0.005, (vel, on)


@needs_tools
def test_converted_sf2_is_polyphonic_unlooped_and_pedalled(two_layer_sf2, tmp_path):
    sf2 = two_layer_sf2.sf2
    # group=1/off_by=1 must not become an SF2 exclusive class: C4 keeps sounding under G4
    y = play(sf2, note(0.2, 1.5, 60, 30) + note(0.6, 1.5, 67, 30), 2.0, tmp_path)
    seg = y[int(0.8 * SR):int(1.3 * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    f = np.fft.rfftfreq(len(seg), 1 / SR)
    at = lambda hz: spec[np.abs(f - hz) < 5].max()  # noqa: E731
    assert at(F0) > 0.3 * at(F0 * 2 ** (7 / 12))
    # no loop: a 1.5-s sample held for 4 s is silent after it ends
    y = play(sf2, note(0.2, 4.2, 60, 110), 4.5, tmp_path)
    peak = np.abs(y).max()
    assert np.abs(y[int(2.0 * SR):int(4.0 * SR)]).max() < 1e-3 * peak
    # sustain pedal (CC64): a key released under the pedal sounds on; without it, it stops
    dry = play(sf2, note(0.2, 0.4, 60, 110), 1.5, tmp_path)
    ped = play(sf2, [(0.1, "control_change", {"control": 64, "value": 127})] + note(0.2, 0.4, 60, 110), 1.5, tmp_path)
    late = slice(int(0.9 * SR), int(1.2 * SR))
    rms = lambda x: float(np.sqrt(np.mean(x[late] ** 2)))  # noqa: E731
    assert rms(ped) > 10 * rms(dry)                           # > 20 dB louder after the key release


@needs_tools
def test_release_samples_go_to_their_own_preset(two_layer_sf2, tmp_path):
    from transcribe.render.latency import detect_onset

    rel = two_layer_sf2.release_sf2
    assert rel is not None and rel.is_file()
    # the main preset has no click at the note-on (the release region was not turned into an
    # attack region): its first 5 ms are the sine's onset, not broadband noise
    y = play(two_layer_sf2.sf2, note(0.3, 0.8, 60, 30), 1.0, tmp_path)
    seg = y[int(0.3 * SR):int(0.4 * SR)]
    assert centroid(seg, SR) < 2 * F0
    # the release preset (program 1) plays the click when it gets a note-on
    y = play(rel, note(0.3, 0.35, 60, 100), 0.8, tmp_path, program=1)
    assert detect_onset(y, SR) == pytest.approx(0.3, abs=0.005)
    assert centroid(y[int(0.3 * SR):int(0.32 * SR)], SR) > 2000


@needs_tools
def test_volumes_of_stereo_samples_survive_the_conversion(tmp_path):
    # Polyphone replaces a <group>'s volume by its stereo compensation; the flat SFZ must not lose it
    import soundfile as sf

    t = np.arange(int(SR * 1.0)) / SR
    tone = 0.3 * np.sin(2 * np.pi * F0 * t) * np.exp(-t)
    sf.write(str(tmp_path / "st.wav"), np.stack([tone, tone], axis=1), SR)
    sfz = write(tmp_path / "st.sfz", "<group> group_volume=-20\n<region> key=60 sample=st.wav\n"
                                     "<group> volume=0\n<region> key=62 pitch_keycenter=62 sample=st.wav\n")
    res = convert(sfz, tmp_path / "st.sf2")
    rms = {k: float(np.sqrt(np.mean(play(res.sf2, note(0.2, 0.9, k, 100), 1.2, tmp_path) ** 2))) for k in (60, 62)}
    assert 20 * np.log10(rms[62] / rms[60]) == pytest.approx(20, abs=2)


def test_missing_polyphone_is_a_clear_error(tmp_path):
    from transcribe.render.sfz import sfz_to_sf2

    sfz = write(tmp_path / "x.sfz", "<region> key=60 sample=a.wav\n")
    with pytest.raises(SfzError, match=r"x\.sfz: cannot convert to SF2: no-such-polyphone not found"):
        sfz_to_sf2(sfz, tmp_path / "x.sf2", binary="no-such-polyphone")
