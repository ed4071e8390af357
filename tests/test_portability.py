"""Portability: output claims through filelock, and nothing Linux-only needed at import time or
on the CLI's path. Systems without fcntl or SIGHUP (Windows) are imitated on Linux by a
sitecustomize that makes ``import fcntl`` fail and deletes ``signal.SIGHUP``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HIDE_LINUX = """
import signal
import sys
sys.modules["fcntl"] = None  # import fcntl -> ImportError, as on Windows
for name in ("SIGHUP",):
    if hasattr(signal, name):
        delattr(signal, name)
"""


def python(tmp_path: Path, hide: bool) -> tuple[list[str], dict]:
    """The command and environment of a Python that imports this checkout, with fcntl and
    SIGHUP hidden when ``hide``."""
    paths = [str(ROOT)]
    if hide:
        site = tmp_path / "hide"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(HIDE_LINUX)
        paths.insert(0, str(site))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]))
    return [sys.executable], env


HOLD = """
import sys, time
from pathlib import Path
from transcribe.files import try_claim
claim = try_claim(Path(sys.argv[1]))
print("held" if claim else "refused", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("hide", [False, True], ids=["linux", "no-fcntl"])
def test_claims_are_exclusive_released_and_die_with_their_owner(tmp_path, hide):
    """A claim held by one process refuses another; released, its lock file is gone; the claim of
    a process killed with SIGKILL is taken over. With fcntl hidden the same holds (filelock's
    soft lock) where the hand-written flock could not even import."""
    cmd, env = python(tmp_path, hide)
    out = tmp_path / "out" / "a.mid"
    check = textwrap.dedent("""
        import sys
        from pathlib import Path
        from transcribe.files import lock_path, try_claim
        out = Path(sys.argv[1])
        claim = try_claim(out)
        if claim is None:
            print("refused")
        else:
            again = try_claim(out)
            claim.release()
            print("held", "refused-again" if again is None else "twice", "gone" if not lock_path(out).exists() else "left")
    """)
    done = subprocess.run(cmd + ["-c", check, str(out)], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["held", "refused-again", "gone"], done.stderr
    holder = subprocess.Popen(cmd + ["-c", HOLD, str(out)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        other = subprocess.run(cmd + ["-c", check, str(out)], env=env, capture_output=True, text=True, timeout=60)
        assert other.stdout.split() == ["refused"], other.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.time() + 30
    while True:
        after = subprocess.run(cmd + ["-c", check, str(out)], env=env, capture_output=True, text=True, timeout=60)
        if after.stdout.split() == ["held", "refused-again", "gone"] or time.time() > deadline:
            break
        time.sleep(0.5)
    assert after.stdout.split() == ["held", "refused-again", "gone"], after.stderr
