"""Lint and type checks as tests: ``ruff check .`` and ``mypy`` with no arguments, from the repository root.

Both take their settings from the repository (``ruff.toml``; the ``[mypy]`` section of ``setup.cfg``, which
names the checked folders) and run the executables installed next to this interpreter, so the versions are
the pinned ones of the venv. mypy keeps its incremental cache in ``.mypy_cache`` (gitignored): a fresh clone
pays the full analysis once, later runs take seconds. The package.xml files are checked (well-formed, format
3) by ``test_package_xml.py``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TIMEOUT_S = 600                       # mypy on a fresh cache; a warm run takes seconds

pytestmark = pytest.mark.linter


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    exe = BIN / tool
    if not exe.is_file():
        pytest.fail(f"{tool} is not installed in {BIN}: install the pinned requirements (make install)")
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)


def test_ruff_reports_nothing():
    proc = _run("ruff", "check", ".", "--output-format", "concise")
    assert proc.returncode == 0, f"ruff check . found problems:\n{proc.stdout}{proc.stderr}"


def test_mypy_reports_nothing():
    proc = _run("mypy")
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"
    assert proc.stdout.startswith("Success"), proc.stdout      # it checked the configured files


def test_the_lint_tests_catch_a_finding(tmp_path):
    """Both tools, run the way the tests above run them, report a planted error (the tests can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n\ndef f(x: int) -> str:\n    return x\n", encoding="utf-8")
    ruff = _run("ruff", "check", "--output-format", "concise", "--config", str(ROOT / "ruff.toml"), str(bad))
    assert ruff.returncode == 1 and "F401" in ruff.stdout, ruff.stdout + ruff.stderr
    mypy = _run("mypy", "--config-file", str(ROOT / "setup.cfg"), "--cache-dir", str(tmp_path / "cache"), str(bad))
    assert mypy.returncode == 1 and "[return-value]" in mypy.stdout, mypy.stdout + mypy.stderr
