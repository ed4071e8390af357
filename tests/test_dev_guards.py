"""The import guard of the tests (:func:`tests.conftest.require_dev`): a package that ``.[dev]``
installs, missing, skips on a developer's machine and fails under CI (``CI=true``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import require_dev
from .test_no_torch import Blocked

TESTS = Path(__file__).resolve().parent


def test_a_missing_dev_package_skips_here_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    require_dev("json")  # there: nothing happens
    with pytest.raises(pytest.skip.Exception, match=r"no_such_package_t24 cannot be imported.*\.\[dev\]"):
        require_dev("json", "no_such_package_t24")
    for value in ("true", "1"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match=r"CI: no_such_package_t24 cannot be imported"):
            require_dev("no_such_package_t24")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_dev("no_such_package_t24")


def test_a_module_guarded_by_it_fails_under_ci_when_matplotlib_is_missing(tmp_path):
    """tests/test_plot.py, run by pytest under CI=true where importing matplotlib fails: an error
    naming the package, not a skip."""
    blocked = Blocked(tmp_path, ("matplotlib",))
    blocked.env["CI"] = "true"
    proc = blocked.run("-m", "pytest", "-n", "0", "-q", "-rs", "-p", "no:cacheprovider", str(TESTS / "test_plot.py"))
    assert proc.returncode == 2 and "CI: matplotlib cannot be imported" in proc.stdout, proc.stdout[-2000:]
    assert "skipped" not in proc.stdout and "pip install -e '.[dev]'" in proc.stdout
