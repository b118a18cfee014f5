"""Build hook: compile the hot core modules with mypyc (a compiler for typed Python, part of mypy).

The modules stay plain Python source — the same files run uncompiled with ``BASTION_NATIVE=0`` or from
``src/`` on ``PYTHONPATH`` — and the test suite runs in both modes. Compilation needs a C compiler and the
Python headers; when either is missing the build falls back to pure Python (and says so).
The reference book (``core/book/reference.py``) is never compiled: it is the slow, obviously correct twin.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

NATIVE_MODULES = [
    "src/bastion/core/book/base.py",
    "src/bastion/core/book/fast.py",
    "src/bastion/core/accounts.py",
    "src/bastion/core/margin.py",
    "src/bastion/core/engine.py",
    "src/bastion/core/risk_engine.py",
    "src/bastion/core/risk/margin_math.py",
    "src/bastion/core/risk/liquidation.py",
    "src/bastion/core/risk/liquidation_index.py",
    "src/bastion/journal/records.py",
    "src/bastion/journal/file.py",
]

ext_modules = []
if os.environ.get("BASTION_NATIVE", "1") != "0":
    try:
        from mypyc.build import mypycify

        ext_modules = mypycify(NATIVE_MODULES, opt_level="3")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure means: ship pure Python
        print(f"bastion: mypyc compilation unavailable ({exc!r}); building pure Python", file=sys.stderr)
        ext_modules = []

setup(ext_modules=ext_modules)
