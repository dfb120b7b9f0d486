"""The repository passes the linter: ``ruff check``, configured in pyproject.toml.

Ruff comes with the ``dev`` extra (``pip install -e '.[dev]'``); without it the test skips
with the reason.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str] | None:
    """The command that runs ruff: the executable beside this Python, else the module."""
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if exe:
        return [exe]
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    return None


def test_ruff_check_is_clean():
    command = _ruff()
    if command is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    result = subprocess.run([*command, "check", "--no-cache", "--output-format", "full", "."],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail("ruff check found problems (fix them; 'ruff check --fix' makes the safe "
                    f"fixes):\n{result.stdout}{result.stderr}", pytrace=False)
