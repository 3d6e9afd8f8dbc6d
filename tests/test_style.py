"""The code's one style: ``ruff check`` and ``ruff format --check`` (configured in ``pyproject.toml``) pass on the
whole repository, so CI, which runs this suite, refuses unformatted or lint-failing code."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO


@pytest.mark.parametrize("command", [["check", "--no-cache"], ["format", "--check", "--no-cache"]])
def test_ruff(command):
    ruff = shutil.which("ruff")
    assert ruff, "ruff is not installed: pip install -e '.[test]'"
    done = subprocess.run([ruff, *command, str(REPO)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, f"ruff {' '.join(command)} failed:\n{done.stdout}{done.stderr}"
