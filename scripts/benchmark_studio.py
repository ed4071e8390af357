"""Loopback load probe of ``transcribe studio`` against the ``transcribe`` command, in one run.

1. The same real clips go (a) to the studio as concurrent uploads (at most ``--concurrency`` at a
   time, each polled until its result is ready) and (b) to the command as one batch with the same
   ``--jobs``. Reported: audio seconds per wall second (throughput) and the 95th percentile of time
   to result (from the start of the run to each file's result; for the command, the moment its
   line appears) -- the studio's as a ratio of the command's.
2. The re-decode of a slider move on a 5-minute recording (the demo clip repeated): the request's
   round trip and the server's own decode time, over ``--moves`` different onset thresholds
   (target: under 200 ms).

Only loopback; the server is a subprocess started and stopped here. Timings depend on the machine
and what else runs on it: compare the ratios, not the seconds.

    python scripts/benchmark_studio.py [--files a.flac b.wav ...] [--copies 6] [--jobs 1] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.studio_server import DEMO, StudioServer, wait_done  # noqa: E402


def p95(xs: list[float]) -> float:
    return float(np.percentile(np.asarray(xs), 95))


def duration(path: Path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


def studio_run(server: StudioServer, files: list[Path], concurrency: int) -> tuple[float, list[float]]:
    """Upload ``files`` with at most ``concurrency`` in flight; (wall seconds, time to each result)."""
    times: list[float] = []
    sem = threading.Semaphore(concurrency)
    t0 = time.perf_counter()

    def one(path: Path) -> None:
        with sem, server.client() as c:
            while True:
                r = c.post("/api/upload", params={"name": path.name}, content=path.read_bytes())
                if r.status_code != 429:  # the queue is full: try again shortly
                    break
                time.sleep(0.2)
            r.raise_for_status()
            job = wait_done(c, r.json()["id"], timeout=3600)
            assert job["status"] == "done", job
            times.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=one, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, times


def cli_run(files: list[Path], jobs: int, out: Path) -> tuple[float, list[float]]:
    """The command on the same files; (wall seconds, time to each file's result line)."""
    cmd = [sys.executable, "-m", "transcribe", *map(str, files), "-o", str(out), "--jobs", str(jobs), "--overwrite"]
    times = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**__import__("os").environ, "CI": "true"})
    for line in proc.stdout:
        if " -> " in line:
            times.append(time.perf_counter() - t0)
    proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.read())
    return time.perf_counter() - t0, times


def draw_probe(server: StudioServer, job_id: str, chromium: str) -> None:
    """The page's piano roll with an hour of notes (the 5-minute recording's notes, 12 times over):
    milliseconds to draw one frame at a few scroll positions, in headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, viewport={"width": 1400, "height": 820},
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        page.goto(server.url + "/")
        page.wait_for_function("() => state.jobs.length > 0")
        page.evaluate(f"() => selectJob('{job_id}')")
        page.wait_for_function("() => state.notes && state.notes.count > 0")
        result = page.evaluate("""() => {
            const n = state.notes, hour = {onset: [], offset: [], pitch: [], velocity: [], pedal: []};
            for (let k = 0; k < 12; k++) for (let i = 0; i < n.onset.length; i++) {
                hour.onset.push(n.onset[i] + 300 * k); hour.offset.push(n.offset[i] + 300 * k);
                hour.pitch.push(n.pitch[i]); hour.velocity.push(n.velocity[i]);
            }
            state.notes = hour; state.seconds = 3600;
            const times = [];
            for (const zoom of [80, 8]) {
                state.pxPerSec = zoom;
                for (let t = 0; t < 3600; t += 97) {
                    state.view = t;
                    const t0 = performance.now(); draw(); times.push(performance.now() - t0);
                }
            }
            times.sort((a, b) => a - b);
            return {notes: hour.onset.length, frames: times.length, median: times[times.length >> 1],
                    p95: times[Math.floor(times.length * 0.95)]};
        }""")
        ctx.close()
    print(f"piano roll with an hour of notes ({result['notes']} notes) in headless Chromium: "
          f"{result['frames']} frames at 80 and 8 px/s, draw median {result['median']:.1f} ms, p95 {result['p95']:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", nargs="*", type=Path, default=None, help="real clips (default: the demo clip, copied)")
    ap.add_argument("--copies", type=int, default=6, help="copies of the demo clip without --files")
    ap.add_argument("--jobs", type=int, default=1, help="studio --jobs and the command's --jobs")
    ap.add_argument("--concurrency", type=int, default=4, help="uploads in flight at once")
    ap.add_argument("--moves", type=int, default=20, help="slider moves timed on the 5-minute recording")
    ap.add_argument("--browser", default=None, metavar="CHROMIUM",
                    help="also time the page's piano roll with an hour of notes in this Chromium (Playwright)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-studio-"))
    try:
        if args.files:
            files = args.files
        else:
            files = []
            for i in range(args.copies):
                files.append(tmp / f"clip{i}.flac")
                shutil.copy(DEMO, files[-1])
        audio = sum(duration(f) for f in files)
        server = StudioServer(tmp / "server", args=["--jobs", str(args.jobs), "--queue", str(len(files) + 1)])
        try:
            s_wall, s_times = studio_run(server, files, args.concurrency)
            c_wall, c_times = cli_run(files, args.jobs, tmp / "cli")
            print(f"{len(files)} files, {audio:.1f} s of audio; --jobs {args.jobs}, {args.concurrency} uploads in flight")
            print(f"studio : {audio / s_wall:7.1f} audio s per wall s, p95 time to result {p95(s_times):6.2f} s "
                  f"(wall {s_wall:.2f} s)")
            print(f"command: {audio / c_wall:7.1f} audio s per wall s, p95 time to result {p95(c_times):6.2f} s "
                  f"(wall {c_wall:.2f} s; includes its start-up and model load)")
            print(f"studio / command: throughput x{c_wall / s_wall:.2f}, p95 time to result x{p95(s_times) / p95(c_times):.2f}")

            y, sr = sf.read(DEMO, dtype="float32")
            reps = int(np.ceil(300 * sr / len(y)))
            long = tmp / "five_minutes.flac"
            sf.write(long, np.tile(y, reps)[: 300 * sr], sr)
            with server.client() as c:
                job = wait_done(c, c.post("/api/upload", params={"name": long.name},
                                          content=long.read_bytes()).json()["id"], timeout=1800)
                runs = c.get("/api/stats").json()["network_runs"]
                trip, server_ms, counts = [], [], []
                for onset in np.linspace(0.2, 0.8, args.moves):
                    t = time.perf_counter()
                    d = c.post(f"/api/jobs/{job['id']}/decode", json={"onset_threshold": round(float(onset), 4)}).json()
                    trip.append((time.perf_counter() - t) * 1000)
                    server_ms.append(d["decode_ms"])
                    counts.append(d["count"])
                assert c.get("/api/stats").json()["network_runs"] == runs
            print(f"slider move on a 5-minute recording ({job['notes']} notes at the default settings, "
                  f"{min(counts)}-{max(counts)} over the moves): round trip median {statistics.median(trip):.1f} ms, "
                  f"p95 {p95(trip):.1f} ms; decode in the server median {statistics.median(server_ms):.1f} ms "
                  f"(target < 200 ms); no network run")
            if args.browser:
                draw_probe(server, job["id"], args.browser)
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
