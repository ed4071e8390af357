"""A real ``transcribe studio`` server in a subprocess on a loopback port, for the studio's tests
and scripts/benchmark_studio.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "transcribe" / "demo" / "demo.flac"


def _interruptible() -> None:
    """The server as a terminal starts it: Ctrl-C (SIGINT) at its default. A shell running the tests
    in the background (``cmd &``) sets SIGINT to ignored, which children inherit, and then the
    Ctrl-C tests would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class StudioServer:
    """``python -m transcribe studio --port 0 --no-browser`` with ``args``; its work folder under ``tmp``."""

    def __init__(self, tmp: Path, token: str = "test-token", args: list[str] = (), env: dict | None = None):
        self.tmp, self.token = Path(tmp), token
        self.tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(self.tmp), "PYTHONPATH": os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]), **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "transcribe", "studio", "--port", "0", "--no-browser",
                                      "--token", token, *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=self.tmp,
                                     preexec_fn=_interruptible if os.name == "posix" else None)
        line = self.proc.stdout.readline()
        match = re.search(r"(http://\S+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"the studio did not start: {line}{self.proc.stderr.read()}")
        self.url = match.group(1).split("?")[0].rstrip("/")
        self.work = Path(re.search(r"kept in (\S+) until", line).group(1))
        import httpx

        for _ in range(200):  # listening once uvicorn is up
            try:
                httpx.get(self.url + "/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)

    @property
    def headers(self) -> dict:
        return {"X-Studio-Token": self.token}

    def client(self):
        import httpx

        return httpx.Client(base_url=self.url, headers=self.headers, timeout=120)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def wait_done(client, job_id: str, timeout: float = 120) -> dict:
    """Poll a job until it is no longer queued or running."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running", "uploading"):
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} not finished after {timeout} s")
