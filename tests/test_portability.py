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
            print("held", "refused-again" if again is None else "twice",
                  "gone" if not lock_path(out).exists() else "left")
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


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (module level, functions, TYPE_CHECKING)."""
    import ast

    package = ROOT / "transcribe"

    def name(path: Path) -> str:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name(p): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        here = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here.split(".")[: len(here.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != mod}
        graph[mod] = deps
    return graph


def test_the_package_has_no_import_circles():
    """No module imports (at module level or inside a function) one that imports it back,
    directly or around a longer circle: transcribe/ is a layered graph."""
    graph = import_graph()
    assert len(graph) > 40 and "transcribe.notefiles" in graph["transcribe.outputs"]
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[list[str]] = []

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(graph[mod]):
            if state.get(dep) == 1:
                circles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert circles == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_package_imports_and_the_cli_runs_without_fcntl_or_sighup(tmp_path):
    """Every module of the package imports, and ``transcribe --demo`` (two worker processes,
    --report) runs to the end, where ``import fcntl`` fails and ``signal.SIGHUP`` does not
    exist (as on Windows)."""
    cmd, env = python(tmp_path, hide=True)
    imports = textwrap.dedent("""
        import importlib, pkgutil, signal, sys
        import transcribe
        assert sys.modules.get("fcntl", 0) is None and not hasattr(signal, "SIGHUP")
        failed = []
        for m in pkgutil.walk_packages(transcribe.__path__, "transcribe."):
            if m.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(m.name)
            except Exception as err:
                failed.append(f"{m.name}: {type(err).__name__}: {err}")
        print("\\n".join(failed) or "all imported")
    """)
    done = subprocess.run(cmd + ["-c", imports], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.stdout.strip() == "all imported", done.stdout + done.stderr
    out, report = tmp_path / "out", tmp_path / "report.json"
    run = subprocess.run(cmd + ["-m", "transcribe", "--demo", "-o", str(out), "--jobs", "2", "--report", str(report)],
                         env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    import json

    from transcribe.notefiles import read_midi

    assert json.loads(report.read_text())["summary"]["done"] == 1
    assert len(read_midi(out / "demo.mid")) > 50
    assert sorted(p.name for p in out.iterdir()) == ["demo.mid"]  # no lock or temporary files left
