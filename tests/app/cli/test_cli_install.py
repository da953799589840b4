"""`scalpel` where scalpel_client is not installed (a plain `pip install .`: the root project
does not declare it): one line naming the package to install and exit code 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT

MESSAGE = "error: the scalpel CLI needs the scalpel-client package: pip install ./client\n"
# What the console script the root project declares (app.cli.main:app) runs.
CONSOLE_SCRIPT = "import sys\nfrom app.cli.main import app\nsys.exit(app())\n"


def without_client(tmp_path: Path) -> dict[str, str]:
    """An environment whose interpreter cannot import scalpel_client (as if not installed)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['scalpel_client'] = None\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


@pytest.mark.parametrize(
    "argv",
    [["-c", CONSOLE_SCRIPT, "jobs"], ["-m", "app.cli.main", "--help"]],
    ids=["console-script", "python-m"],
)
def test_without_the_client_package_one_clear_line(tmp_path: Path, argv: list[str]) -> None:
    r = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=without_client(tmp_path),
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (r.returncode, r.stderr, r.stdout) == (2, MESSAGE, "")


def test_with_the_client_package_the_command_runs(tmp_path: Path) -> None:
    """The same run with the package importable: the check is not what failed above."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT, "--help"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0 and "Usage: " in r.stdout, r.stderr
