"""scripts/run.sh reinstalls when the source changed (a stale .venv must not run old code).

Run on a scratch copy of the scripts with a fake ``.venv/bin/python`` that logs pip installs instead of
running them (no network, no compiler): the first run installs, a second run with the same source does
not, any change to a file under src/, to pyproject.toml or setup.py makes the next run install again, and
a [dev] install (test.sh) also serves run.sh.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE_PYTHON = """#!/usr/bin/env bash
# fake interpreter: "import bastion" works once installed; pip installs are logged.
if [ "$1" = "-c" ]; then [ -f "$(dirname "$0")/../installed" ]; exit $?; fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  case "$*" in *--upgrade*) exit 0;; esac
  echo "install ${@: -1}" >> "$(dirname "$0")/../pip.log"; touch "$(dirname "$0")/../installed"; exit 0
fi
exit 3
"""
FAKE_BASTION = "#!/usr/bin/env bash\necho ran bastion \"$@\"\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    (tmp_path / "scripts").mkdir()
    for name in ("run.sh", "_install.sh"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "setup.py").write_text("pass\n")
    (tmp_path / "src" / "bastion").mkdir(parents=True)
    (tmp_path / "src" / "bastion" / "__init__.py").write_text("x = 1\n")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("bastion", FAKE_BASTION)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def _run(project: Path) -> str:
    done = subprocess.run(["bash", str(project / "scripts" / "run.sh"), "--seed", "3"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ran bastion replay --out out/replay --seed 3"
    return (project / ".venv" / "pip.log").read_text() if (project / ".venv" / "pip.log").exists() else ""


def test_run_sh_reinstalls_exactly_when_the_source_changes(project: Path) -> None:
    assert _run(project).count("install") == 1  # nothing installed yet
    assert _run(project).count("install") == 1  # same source: the stamp matches, no reinstall
    (project / "src" / "bastion" / "__init__.py").write_text("x = 2\n")
    assert _run(project).count("install") == 2
    (project / "src" / "bastion" / "new.py").write_text("")
    assert _run(project).count("install") == 3
    (project / "setup.py").write_text("pass  # changed\n")
    assert _run(project).count("install") == 4
    (project / "src" / "bastion" / "__pycache__").mkdir()
    (project / "src" / "bastion" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    assert _run(project).count("install") == 4  # caches are not source


def test_a_dev_install_serves_run_sh(project: Path) -> None:
    assert _run(project).count("install") == 1
    stamp = project / ".venv" / ".bastion-source-stamp"
    source, extras = stamp.read_text().rstrip("\n").split(" ", 1)
    assert len(source) == 64 and extras == ""
    stamp.write_text(f"{source} [dev]\n")  # what test.sh leaves behind
    assert _run(project).count("install") == 1
