"""``bastion.core`` is pure: an AST scan of every module under src/bastion/core fails on an import of a
clock, randomness, environment, file, network or thread module, on a shell module of bastion, on float
literals, ``float(...)`` calls and true division (``/``, which makes floats of ints), and on the I/O
builtins ``open``, ``print`` and ``input``.

Allowed exceptions are listed in ALLOWED with their justification; an entry that no longer matches
anything fails too, so the list cannot rot.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "src" / "bastion" / "core"

FORBIDDEN_MODULES = frozenset({
    # the brief's list: clock, randomness, environment, files, sockets, threads, ids
    "os", "time", "datetime", "random", "secrets", "pathlib", "io", "socket", "threading", "uuid",
    # the same kinds of thing under other names
    "sys", "subprocess", "multiprocessing", "concurrent", "asyncio", "tempfile", "shutil", "glob",
    "signal", "select", "selectors", "mmap", "fcntl", "ssl", "http", "urllib", "zoneinfo", "calendar",
})
FORBIDDEN_BUILTINS = frozenset({"float", "open", "print", "input", "__import__", "eval", "exec"})
SHELL_PREFIX = "bastion."
CORE_PREFIX = "bastion.core"

# (module path relative to core, violation) -> justification
ALLOWED: dict[tuple[str, str], str] = {
    ("__init__.py", "import bastion.config"):
        "lazy compatibility shim: bastion.core.load_venue_config resolves to the shell's file reader only "
        "when that name is used; importing the core never imports the shell",
    ("instruments.py", "import bastion.config"):
        "the same shim for bastion.core.instruments.load_venue_config",
}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        for module in modules:
            top = module.split(".")[0]
            if top in FORBIDDEN_MODULES:
                found.append(f"import {module}")
            elif module.startswith(SHELL_PREFIX) and not module.startswith(CORE_PREFIX):
                found.append(f"import {module}")
        if isinstance(node, ast.Constant) and type(node.value) in (float, complex):
            found.append(f"float literal {node.value!r} at line {node.lineno}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_BUILTINS:
            found.append(f"{node.func.id}() call at line {node.lineno}")
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            found.append(f"true division at line {node.lineno}")
    return found


def _all_violations() -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE).as_posix()
        for violation in _violations(path):
            out[(rel, violation)] = str(path)
    return out


def test_core_modules_are_pure() -> None:
    found = _all_violations()
    unexpected = sorted(key for key in found if key not in ALLOWED)
    assert not unexpected, "impure constructs in bastion.core: " + "; ".join(f"{m}: {v}" for m, v in unexpected)


def test_allow_list_entries_still_match_something() -> None:
    found = _all_violations()
    stale = sorted(key for key in ALLOWED if key not in found)
    assert not stale, f"allow-list entries that match nothing (remove them): {stale}"


@pytest.mark.parametrize("source, expected", [
    ("import os\n", "import os"),
    ("from time import monotonic_ns\n", "import time"),
    ("import random as r\n", "import random"),
    ("from pathlib import Path\n", "import pathlib"),
    ("import threading, uuid\n", "import threading"),
    ("from bastion.venue import Venue\n", "import bastion.venue"),
    ("x = 0.5\n", "float literal"),
    ("x = float('1')\n", "float() call"),
    ("x = 3 / 2\n", "true division"),
    ("x = 3\nx /= 2\n", "true division"),
    ("open('f')\n", "open() call"),
])
def test_the_scan_catches_each_kind_of_violation(tmp_path: Path, source: str, expected: str) -> None:
    """The scan can fail: each planted construct is reported."""
    module = tmp_path / "planted.py"
    module.write_text(source, encoding="utf-8")
    assert any(v.startswith(expected) for v in _violations(module)), _violations(module)


def test_importing_the_core_does_not_import_the_shell_config_module() -> None:
    """Run in a fresh interpreter: importing bastion.core leaves bastion.config and pathlib-based
    readers unloaded (the shims resolve lazily)."""
    import subprocess
    import sys

    code = ("import sys; import bastion.core, bastion.core.instruments; "
            "print('bastion.config' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(CORE.parents[1])})
    assert out.stdout.strip() == "False"
    from bastion.config import load_venue_config
    import bastion.core
    import bastion.core.instruments

    assert bastion.core.load_venue_config is load_venue_config  # type: ignore[attr-defined]
    assert bastion.core.instruments.load_venue_config is load_venue_config  # type: ignore[attr-defined]
