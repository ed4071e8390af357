"""``transcribe studio`` in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright against the real server on a loopback port. ``STUDIO_SCREENSHOTS=docs`` saves a
screenshot of each view there (``studio_*.png``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

pytest.importorskip("starlette")
pytest.importorskip("httpx")
playwright = pytest.importorskip("playwright.sync_api")

from tests.studio_server import DEMO, StudioServer  # noqa: E402

CHROMIUM = Path(os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
SHOTS = os.environ.get("STUDIO_SCREENSHOTS")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = StudioServer(tmp_path_factory.mktemp("studio-browser"), args=["--jobs", "1"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def fake_take(tmp_path_factory) -> Path:
    """The first 8 s of the demo: what Chromium's fake capture device plays into the microphone."""
    wav = tmp_path_factory.mktemp("fake-mic") / "take.wav"
    y, sr = sf.read(DEMO, dtype="float32")
    sf.write(wav, y[: 8 * sr], sr, subtype="PCM_16")
    return wav


@pytest.fixture(scope="module")
def chromium(fake_take):
    """One Playwright driver and one headless Chromium for the module (starting them is most of a
    short test's CPU); each test opens its own context (:func:`browser`: fresh storage, cookies and
    downloads). Its microphone is the fake capture device playing :func:`fake_take`."""
    pw = playwright.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                               args=ARGS + ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                                            f"--use-file-for-fake-audio-capture={fake_take}"])
        yield b
        b.close()
    finally:
        pw.stop()


@contextlib.contextmanager
def browser(chromium, permissions: list[str] = ()):
    """A fresh context of the module's Chromium (nothing kept from another test) and a page in it."""
    ctx = chromium.new_context(accept_downloads=True, viewport={"width": 1400, "height": 820},
                               permissions=list(permissions))
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"studio_{name}.png"))


def note_count(page) -> int:
    return int(page.inner_text("#note-count"))


def wait_count(page, timeout: float = 60_000) -> int:
    page.wait_for_function("() => /^\\d+$/.test(document.getElementById('note-count').textContent)", timeout=timeout)
    return note_count(page)


def set_slider(page, sel: str, value: float) -> None:
    page.eval_on_selector(sel, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", value)


def network_runs(server) -> int:
    with server.client() as c:
        return c.get("/api/stats").json()["network_runs"]


def test_upload_tune_play_score_download(server, chromium, tmp_path):
    with browser(chromium) as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        page.set_input_files("#picker", str(DEMO))
        first = wait_count(page)
        assert first > 20
        assert page.locator("#jobs li[data-status=done]").count() == 1
        page.select_option("#grid", "bars")  # the bar grid: the beats the score uses
        page.wait_for_function("() => state.beats && state.beats.times.length > 8")
        shot(page, "roll")

        # a slider re-decodes from the kept activations: the count changes, the network does not run
        runs = network_runs(server)
        set_slider(page, "#onset", 0.9)
        page.wait_for_function(f"() => document.getElementById('note-count').textContent !== '{first}'")
        assert note_count(page) < first
        assert network_runs(server) == runs

        # the transcription plays in the browser and the cursor moves
        page.click("#play-notes")
        page.wait_for_function("() => +document.getElementById('roll').dataset.playhead > 0.5", timeout=10_000)
        page.click("#stop")
        # the recording plays from the server, and a click on the roll seeks
        box = page.locator("#roll").bounding_box()
        page.mouse.click(box["x"] + 46 + 400, box["y"] + box["height"] / 2)  # 400 px at 80 px/s: 5 s
        assert abs(float(page.get_attribute("#roll", "data-playhead")) - 5.0) < 0.2
        page.click("#play-audio")
        page.wait_for_function("() => +document.getElementById('roll').dataset.playhead > 5.3", timeout=10_000)
        page.click("#stop")
        if page.evaluate("() => state.config.sonify"):  # FluidSynth's rendering, made on the server
            page.click("#play-rendered")
            page.wait_for_function("() => +document.getElementById('roll').dataset.playhead > 5.9", timeout=30_000)
            page.click("#stop")

        # download MIDI: what the command writes with the page's settings, byte for byte
        settings = page.evaluate("() => settings()")
        assert settings["onset_threshold"] == 0.9
        with page.expect_download() as dl:
            page.click("#dl-mid")
        got = Path(dl.value.path()).read_bytes()
        assert dl.value.suggested_filename == "demo.mid"
        src = tmp_path / "demo.flac"
        shutil.copy(DEMO, src)
        cmd = [sys.executable, "-m", "transcribe", str(src), "-o", str(tmp_path / "cli"), "-q",
               "--onset-threshold", str(settings["onset_threshold"]), "--frame-threshold",
               str(settings["frame_threshold"]), "--min-note-ms", str(settings["min_note_ms"]),
               "--pitch-range", f"{settings['min_pitch']}:{settings['max_pitch']}", "--notes", settings["notes"],
               "--pedal" if settings["pedal"] else "--no-pedal"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert got == (tmp_path / "cli" / "demo.mid").read_bytes()

        # the score tab: an engraved SVG with notes, and the estimates
        set_slider(page, "#onset", 0.5)
        wait_count(page)
        page.click("button.tab[data-tab=score]")
        page.wait_for_selector("#score svg", timeout=60_000)
        assert page.locator("#score svg g.note").count() > 20
        info = page.inner_text("#score-info")
        assert "Key:" in info and "Time:" in info and "?" not in info, info
        shot(page, "score")
        assert not errors, errors


def test_record_from_the_fake_microphone(server, chromium):
    # the module's Chromium records from its fake capture device, which plays fake_take (8 s of the demo)
    with browser(chromium, ["microphone"]) as page:
        page.goto(server.url + "/")
        before = page.locator("#jobs li").count()
        page.click("#record")
        page.wait_for_selector("#record.recording")
        time.sleep(5)
        page.click("#record")
        page.wait_for_function(f"() => document.querySelectorAll('#jobs li').length > {before}", timeout=30_000)
        page.wait_for_function("() => [...document.querySelectorAll('#jobs li')].some("
                               "li => li.dataset.status === 'done' && li.textContent.includes('recording-'))",
                               timeout=60_000)
        assert wait_count(page) > 5
        shot(page, "record")
        jobs = page.evaluate("() => state.jobs")
        rec = [j for j in jobs if j["name"].startswith("recording-")]
        assert rec and rec[0]["status"] == "done" and rec[0]["seconds"] > 3, json.dumps(jobs)


def test_drop_many_files_and_a_bad_one(server, chromium):
    """Files dropped on the page (a DataTransfer built in it): each is uploaded; a bad one gets a
    clear message in the page, and the good ones are transcribed."""
    import base64

    with browser(chromium) as page:
        page.goto(server.url + "/")
        files = [("first.flac", DEMO.read_bytes()), ("not-audio.wav", b"RIFF....garbage" * 100),
                 ("second.flac", DEMO.read_bytes())]
        page.evaluate("""(files) => {
            const dt = new DataTransfer();
            for (const [name, b64] of files) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], name));
            }
            document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
        }""", [[n, base64.b64encode(b).decode()] for n, b in files])
        # wait for these two by name: jobs of earlier tests on the same server are listed too, and may
        # appear in the list only after the page has loaded (counting them first raced with that)
        page.wait_for_function("""() => {
            const done = [...document.querySelectorAll('#jobs li[data-status=done] .name')].map((e) => e.textContent);
            return done.includes('first.flac') && done.includes('second.flac');
        }""", timeout=60_000)
        done = page.locator("#jobs li[data-status=done] .name").all_inner_texts()
        assert "first.flac" in done and "second.flac" in done and "not-audio.wav" not in done
        # the bad file's reason stays in the list, and was said in the status line
        refused = page.locator("#jobs li[data-status=refused]")
        assert refused.count() == 1
        assert "not-audio.wav" in refused.inner_text() and "not audio" in refused.inner_text()
        assert page.evaluate("() => window.__messages.some((m) => m.includes('not-audio.wav') && m.includes('not audio'))")
        shot(page, "jobs")
