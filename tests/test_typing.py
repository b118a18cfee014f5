"""The code is typed: ``mypy --strict`` over ``bastion.core`` and plain ``mypy`` over the package find nothing.

It is also what lets mypyc compile the hot modules, so a type error here is a build error there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def test_core_is_mypy_strict_clean() -> None:
    if shutil.which("mypy") is None and subprocess.run([sys.executable, "-c", "import mypy"]).returncode:
        pytest.skip("mypy is not installed (it comes with the dev extras)")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(SRC / "bastion" / "core")],
        capture_output=True, text=True, cwd=SRC.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_whole_package_is_mypy_clean() -> None:
    """The shell (journal, audit, feeds, sim, CLI) at mypy's default strictness: it finds nothing."""
    if shutil.which("mypy") is None and subprocess.run([sys.executable, "-c", "import mypy"]).returncode:
        pytest.skip("mypy is not installed (it comes with the dev extras)")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", str(SRC / "bastion")],
        capture_output=True, text=True, cwd=SRC.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
