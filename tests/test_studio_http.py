"""``transcribe studio`` at the HTTP level: the real server (a subprocess on a loopback port),
driven with httpx. Misuse is refused with a clear message and the server goes on answering."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from tests.studio_server import DEMO, StudioServer, wait_done  # noqa: E402

SETTINGS = {"onset_threshold": 0.4, "frame_threshold": 0.45, "min_note_ms": 40}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = StudioServer(tmp_path_factory.mktemp("studio"), args=["--jobs", "1", "--queue", "2", "--max-upload-mb", "2"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def demo_job(client):
    r = client.post("/api/upload", params={"name": "demo.flac"}, content=DEMO.read_bytes())
    assert r.status_code == 201, r.text
    job = wait_done(client, r.json()["id"])
    assert job["status"] == "done", job
    return job


def alive(client) -> None:
    r = client.get("/api/stats")
    assert r.status_code == 200 and "network_runs" in r.json()


def upload(client, data: bytes, name: str):
    return client.post("/api/upload", params={"name": name}, content=data)


def test_without_the_token_nothing_is_done(server, client):
    bare = httpx.Client(base_url=server.url, timeout=30)
    for method, path in (("GET", "/api/jobs"), ("GET", "/api/config"), ("POST", "/api/upload")):
        r = bare.request(method, path, content=DEMO.read_bytes() if method == "POST" else None)
        assert r.status_code == 403 and "token" in r.json()["error"]
    r = bare.post("/api/upload", content=b"x", headers={"X-Studio-Token": "wrong"})
    assert r.status_code == 403
    # a page of another site that somehow has the token still cannot change anything
    r = client.post("/api/upload", content=b"x", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "another site" in r.json()["error"]
    # a DNS-rebound name reaching the loopback port is refused before any handler
    assert bare.get("/", headers={"Host": "evil.example"}).status_code == 400
    # the page itself carries the token (same origin only: no CORS headers)
    page = bare.get("/")
    assert page.status_code == 200 and server.token in page.text
    assert "access-control-allow-origin" not in page.headers
    assert server.work.is_dir() and list(server.work.iterdir()) == []  # nothing was stored
    alive(client)


def test_garbage_and_empty_uploads_get_a_clear_message(client):
    rng = np.random.default_rng(0)
    r = upload(client, rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes(), "noise.wav")
    assert r.status_code == 400 and "noise.wav" in r.json()["error"] and "not audio" in r.json()["error"]
    alive(client)
    r = upload(client, b"", "empty.flac")
    assert r.status_code == 400 and "empty" in r.json()["error"]
    alive(client)
    r = upload(client, b"<html>not music</html>", "page.mp3")
    assert r.status_code == 400
    alive(client)


def test_truncated_upload_fails_its_job_only(client):
    data = DEMO.read_bytes()
    r = upload(client, data[: len(data) // 3], "cut.flac")
    if r.status_code == 201:  # its first block decodes: the job finds the rest broken
        job = wait_done(client, r.json()["id"])
        assert job["status"] == "failed" and "cut.flac" in job["error"] and "corrupt" in job["error"], job
    else:
        assert r.status_code == 400 and "cut.flac" in r.json()["error"]
    alive(client)


def test_huge_uploads_are_refused_while_they_arrive(server, client):
    big = b"\0" * (3 << 20)  # --max-upload-mb 2
    r = upload(client, big, "big.wav")
    assert r.status_code == 413 and "--max-upload-mb" in r.json()["error"]

    def chunks():  # no Content-Length: the server counts what arrives
        for _ in range(48):
            yield b"\0" * (64 << 10)

    r = client.post("/api/upload", params={"name": "stream.wav"}, content=chunks())
    assert r.status_code == 413
    alive(client)
    assert [p for p in server.work.iterdir()] == [p for p in server.work.iterdir() if (p / "act_onset.npy").exists()]


def test_names_never_become_paths(server, client, demo_job):
    for name in ("../../../etc/passwd\x00.flac", "..\\..\\x.flac", "/abs/olute.flac", "a\x00b/../c.flac"):
        r = upload(client, DEMO.read_bytes(), name)
        assert r.status_code == 201, r.text
        job = wait_done(client, r.json()["id"])
        assert job["status"] == "done" and "\x00" not in job["name"]
        folder = server.work / job["id"]
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("act_")) == ["upload.flac"]
        d = client.get(f"/api/jobs/{job['id']}/download/mid")
        assert d.status_code == 200
        written = [p for p in folder.rglob("*.mid")]
        assert len(written) == 1 and written[0].is_relative_to(folder) and "/" not in written[0].name
        assert ".." not in written[0].name.split(".")[0] and "\x00" not in str(written[0])
        client.delete(f"/api/jobs/{job['id']}")
        assert not folder.exists()
    assert not (server.tmp / "etc").exists() and not Path("/abs").exists()
    alive(client)


def test_many_uploads_at_once_are_bounded(server, client, demo_job):
    data = DEMO.read_bytes()
    codes: list[int] = []
    ids: list[str] = []
    seen_running: list[int] = []

    def one(i):
        with server.client() as c:
            r = upload(c, data, f"many{i}.flac")
            codes.append(r.status_code)
            if r.status_code == 201:
                ids.append(r.json()["id"])
            else:
                assert "busy" in r.json()["error"]

    def watch(stop):
        with server.client() as c:
            while not stop.is_set():
                seen_running.append(c.get("/api/stats").json()["running"])

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,))
    watcher.start()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in ids:
        assert wait_done(client, i)["status"] == "done"
    stop.set()
    watcher.join()
    assert sorted(set(codes)) in ([201, 429], [201])
    assert 429 in codes, codes  # --jobs 1 --queue 2: ten at once cannot all wait
    assert max(seen_running) <= 1  # never more networks than --jobs
    for i in ids:
        client.delete(f"/api/jobs/{i}")
    alive(client)


def test_slider_settings_re_decode_without_the_network(client, demo_job):
    jid = demo_job["id"]
    runs = client.get("/api/stats").json()["network_runs"]
    counts = set()
    for onset in (0.2, 0.5, 0.8, 0.95):
        r = client.post(f"/api/jobs/{jid}/decode", json={"onset_threshold": onset})
        assert r.status_code == 200
        d = r.json()
        assert d["count"] == len(d["onset"]) == len(d["pitch"])
        counts.add(d["count"])
    assert len(counts) > 1  # the threshold changes the notes
    r = client.post(f"/api/jobs/{jid}/decode", json={"min_pitch": 60, "max_pitch": 72})
    assert all(60 <= p <= 72 for p in r.json()["pitch"])
    assert client.get("/api/stats").json()["network_runs"] == runs
    bad = client.post(f"/api/jobs/{jid}/decode", json={"onset_threshold": 1.5})
    assert bad.status_code == 400 and "onset_threshold" in bad.json()["error"]
    bad = client.post(f"/api/jobs/{jid}/decode", json={"notes": "key", "pedal": False})
    assert bad.status_code == 400 and "pedal" in bad.json()["error"]
    bad = client.post(f"/api/jobs/{jid}/decode", content=b"{not json")
    assert bad.status_code == 400
    alive(client)


def test_downloads_are_what_the_command_writes(client, demo_job, tmp_path):
    src = tmp_path / "demo.flac"
    shutil.copy(DEMO, src)
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "transcribe", str(src), "-o", str(out), "--format", "mid,csv,json,musicxml", "--plot",
           "--onset-threshold", "0.4", "--frame-threshold", "0.45", "--min-note-ms", "40", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for fmt in ("mid", "csv", "json", "musicxml", "png"):
        r = client.get(f"/api/jobs/{demo_job['id']}/download/{fmt}", params={"settings": json.dumps(SETTINGS)})
        assert r.status_code == 200, r.text
        assert f'demo.{fmt}' in r.headers["content-disposition"]
        want = (out / f"demo.{fmt}").read_bytes()
        if fmt == "musicxml":  # music21 names parts by object id: two runs of the command differ there alone
            assert part_ids_numbered(r.content) == part_ids_numbered(want)
        else:
            assert r.content == want, fmt


def test_sonified_download_is_what_sonify_writes(client, demo_job, tmp_path):
    """The page's "Piano" playback is the command's --sonify output for the same settings."""
    if not client.get("/api/config").json()["sonify"]:
        pytest.skip("needs FluidSynth and a SoundFont (apt-get install fluidsynth fluid-soundfont-gm)")
    src = tmp_path / "demo.flac"
    shutil.copy(DEMO, src)
    cmd = [sys.executable, "-m", "transcribe", str(src), "-o", str(tmp_path / "cli"), "--sonify", "-q",
           "--onset-threshold", "0.4", "--frame-threshold", "0.45", "--min-note-ms", "40"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    r = client.get(f"/api/jobs/{demo_job['id']}/download/sonified", params={"settings": json.dumps(SETTINGS)})
    assert r.status_code == 200 and r.headers["content-type"].startswith("audio/")
    assert r.content == (tmp_path / "cli" / "demo.sonified.wav").read_bytes()


def part_ids_numbered(xml: bytes) -> bytes:
    """MusicXML with music21's random part and instrument IDs replaced by X1, X2, ... in order of appearance."""
    import re

    ids: dict[bytes, bytes] = {}
    return re.sub(rb'"[PI][0-9a-f]{8,}"', lambda m: ids.setdefault(m.group(0), b'"X%d"' % (len(ids) + 1)), xml)


def test_score_view_has_svg_and_estimates(client, demo_job):
    r = client.get(f"/api/jobs/{demo_job['id']}/score")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["pages"] and d["pages"][0].lstrip().startswith("<svg") or "<svg" in d["pages"][0]
    assert d["tempo"] and d["key"] and d["time_signature"]
    b = client.get(f"/api/jobs/{demo_job['id']}/beats").json()  # the roll's bar grid: the score's beats
    assert b["time_signature"] == d["time_signature"] and round(b["tempo"]) == round(d["tempo"])
    assert len(b["times"]) > 8 and b["times"] == sorted(b["times"])


def test_engraving_embeds_its_font_and_prints_no_verovio_error(tmp_path, capfd):
    """render_svg asks the installed verovio for its text font inside the SVG by the option name that version knows
    (an unknown option made verovio print "[Error] Unsupported option" on every engraving): the SVG carries an
    @font-face and points at nothing outside it, and verovio writes nothing to stderr."""
    import re

    from transcribe.notes import Notes
    from transcribe.score import write_musicxml
    from transcribe.studio.server import render_svg

    xml = tmp_path / "scale.musicxml"  # a C major scale at 120 (the score's tempo mark is text)
    on = 0.5 * np.arange(16)
    write_musicxml(Notes(on, on + 0.45, np.resize([60, 62, 64, 65, 67, 69, 71, 72], 16), np.full(16, 80)), xml)
    capfd.readouterr()
    pages = render_svg(xml)
    err = capfd.readouterr().err
    assert "Error" not in err and "Unsupported" not in err, err
    assert len(pages) == 1 and "@font-face" in pages[0]
    assert not re.findall(r"url\((?!data:)", pages[0])  # no font fetched from a link


def test_cancel_a_waiting_job(server, client):
    import io

    audio, sr = sf.read(DEMO)
    long = io.BytesIO()  # four minutes (mostly silence: the upload limit is 2 MB), so the second
    sf.write(long, np.concatenate([audio, np.zeros(220 * sr)]), sr, format="FLAC")  # job still waits
    data = DEMO.read_bytes()
    first = upload(client, long.getvalue(), "first.flac").json()
    second = upload(client, data, "second.flac").json()
    r = client.post(f"/api/jobs/{second['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"  # it was waiting, not running or done
    assert wait_done(client, second["id"])["status"] == "cancelled"
    assert wait_done(client, first["id"])["status"] == "done"
    import time

    for _ in range(100):  # its turn comes: nothing of it is kept
        if not (server.work / second["id"]).exists():
            break
        time.sleep(0.05)
    assert not (server.work / second["id"]).exists()
    assert client.get("/api/jobs/nope").status_code == 400
    alive(client)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stopping_deletes_the_work_folder(tmp_path, sig, code):
    s = StudioServer(tmp_path)
    with s.client() as c:
        r = upload(c, DEMO.read_bytes(), "demo.flac")
        assert r.status_code == 201
    assert s.work.is_dir()
    assert s.stop(sig) == code
    assert not s.work.exists()


def test_without_the_extra_one_clear_line(tmp_path):
    code = ("import sys; sys.modules['starlette'] = None; from transcribe.cli import main; "
            "sys.exit(main(['studio', '--no-browser']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'transcribe-piano[studio]'" in lines[0], proc.stderr


def test_another_host_warns_and_the_page_needs_the_token(tmp_path):
    s = StudioServer(tmp_path, args=["--host", "127.0.0.2"])  # not the default address: treated as exposed
    try:
        assert s.url.startswith("http://127.0.0.2:")
        bare = httpx.Client(base_url=s.url, timeout=30)
        assert bare.get("/").status_code == 403
        page = bare.get("/", params={"token": s.token})
        assert page.status_code == 200 and s.token in page.text
        assert bare.get("/api/jobs", params={"token": "nope"}).status_code == 403
    finally:
        s.stop()
    assert "warning" in s.proc.stderr.read()


def test_expired_recordings_are_deleted(tmp_path, monkeypatch):
    import time

    from transcribe.studio.state import Studio, StudioConfig

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    studio = Studio(StudioConfig.default())
    try:
        job = studio.new_job("../x.flac")
        job.audio.write_bytes(DEMO.read_bytes())
        studio.check_upload(job)
        assert job.folder.parent == studio.work and job.audio.name == "upload.flac"
        assert studio.expire() == 0 and job.folder.exists()
        assert studio.expire(time.time() + studio.cfg.ttl_minutes * 60 + 1) == 1
        assert not job.folder.exists() and studio.get(job.id) is None
    finally:
        studio.close()
    assert not studio.work.exists()


def test_cancel_a_running_job(server, client, tmp_path):
    import time

    y, sr = sf.read(DEMO, dtype="float32")
    long = tmp_path / "long.flac"
    sf.write(long, np.tile(y, 8), sr)  # about 3 minutes (under --max-upload-mb 2): two network calls
    r = upload(client, long.read_bytes(), "long.flac")
    assert r.status_code == 201
    jid = r.json()["id"]
    t0 = time.monotonic()
    while client.get(f"/api/jobs/{jid}").json()["status"] != "running" and time.monotonic() - t0 < 60:
        time.sleep(0.05)
    client.post(f"/api/jobs/{jid}/cancel")
    job = wait_done(client, jid)
    assert job["status"] == "cancelled"
    assert not (server.work / jid).exists()  # its upload and activations are gone
    alive(client)


def test_studio_path_needs_no_torch(tmp_path):
    """Transcribe, re-decode, write every download and engrave the score where torch cannot be
    imported (the base install has none; scipy, under librosa, may look for it and not find it)."""
    from tests.test_no_torch import Blocked

    blocked = Blocked(tmp_path, ("torch",))
    code = f"""
import sys, tempfile
tempfile.tempdir = {str(tmp_path)!r}
from pathlib import Path
from transcribe.studio.state import Studio, StudioConfig
from transcribe.studio.server import render_svg
s = Studio(StudioConfig.default())
job = s.new_job('demo.flac')
job.audio.write_bytes(Path({str(DEMO)!r}).read_bytes())
s.check_upload(job)
s._run(job)
assert job.status == 'done', job.error
cfg = s.decode_config({{'onset_threshold': 0.6}})
for fmt in ('mid', 'csv', 'json', 'musicxml', 'png'):
    assert s.output(job, cfg, fmt).stat().st_size > 0
assert render_svg(s.output(job, cfg, 'musicxml'))
s.close()
print('ok', 'torch' in sys.modules and sys.modules['torch'] is not None)
"""
    proc = blocked.run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok False"


def test_progress_is_reported_as_it_goes(tmp_path, monkeypatch):
    """A job's progress rises through values between 0 and 1 while the network runs, then is 1."""
    import tempfile
    import time

    from transcribe.studio.state import Studio, StudioConfig

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    y, sr = sf.read(DEMO, dtype="float32")
    studio = Studio(StudioConfig.default())
    try:
        job = studio.new_job("long.flac")
        sf.write(job.audio, np.tile(y, 12), sr)  # about 4 minutes: several network calls
        studio.check_upload(job)
        seen = []
        studio.submit(job)
        while job.status in ("queued", "running"):
            seen.append(job.progress)
            time.sleep(0.002)
        assert job.status == "done" and job.progress == 1.0
        assert seen == sorted(seen) and any(0 < p < 1 for p in seen), sorted(set(seen))
        assert studio.network_runs >= 2  # chunks of 60 s, two at a time
    finally:
        studio.close()


def test_a_taken_port_is_one_clear_error(server, tmp_path):
    port = server.url.rsplit(":", 1)[1]
    proc = subprocess.run([sys.executable, "-m", "transcribe", "studio", "--no-browser", "--port", port],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**__import__("os").environ, "TMPDIR": str(tmp_path),
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert not list(tmp_path.glob("transcribe-studio-*"))  # its work folder is gone again


def test_the_studio_runs_without_fcntl_or_sighup(tmp_path):
    """Where ``import fcntl`` fails and ``signal.SIGHUP`` does not exist (as on Windows; imitated by
    the portability tests' sitecustomize), the studio starts, transcribes an upload, writes its
    MIDI and stops on Ctrl-C."""
    from tests.test_portability import python

    _, env = python(tmp_path, hide=True)
    s = StudioServer(tmp_path / "studio", env={"PYTHONPATH": env["PYTHONPATH"]})
    try:
        with s.client() as c:
            r = upload(c, DEMO.read_bytes(), "demo.flac")
            assert r.status_code == 201, r.text
            job = wait_done(c, r.json()["id"])
            assert job["status"] == "done" and job["notes"] > 50, job
            mid = c.get(f"/api/jobs/{job['id']}/download/mid")
            assert mid.status_code == 200 and mid.content.startswith(b"MThd")
    finally:
        assert s.stop(signal.SIGINT) == 130
