"""The installed package: models and guides live under pyro_vaes, never as top-level packages."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pyro_vaes


def test_models_and_guides_install_under_the_pyro_vaes_namespace(tmp_path):
    code = (
        "import importlib.util, pyro_vaes.models, pyro_vaes.guides\n"
        "assert pyro_vaes.models.ModelBase and pyro_vaes.guides.GuideBase\n"
        "print(importlib.util.find_spec('models'), importlib.util.find_spec('guides'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None"]


def test_public_api():
    assert callable(pyro_vaes.fit) and callable(pyro_vaes.load)
    assert pyro_vaes.__version__ == importlib.metadata.version("pyro-vaes")
