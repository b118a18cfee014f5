"""Locating ../shared/data for the replay tests (skipped cleanly when a data set is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def shared_data_or_skip(dataset: str) -> Path:
    """``<project root>/../shared/data``, skipping the test when ``dataset`` is not in it."""
    if not (SHARED_DATA / dataset).is_dir():
        pytest.skip(f"shared data set absent: {SHARED_DATA / dataset}")
    return SHARED_DATA
