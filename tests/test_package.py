"""The installed package: every subpackage ships in the wheel, models and guides live under pyro_vaes (never as
top-level packages), and importing the package or looking up a registry name changes no global state."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

import pyro_vaes

REPO = Path(__file__).resolve().parents[1]


def test_models_and_guides_install_under_the_pyro_vaes_namespace(tmp_path):
    code = (
        "import importlib.util, pyro_vaes.models, pyro_vaes.guides\n"
        "assert pyro_vaes.models.ModelBase and pyro_vaes.guides.GuideBase\n"
        "print(importlib.util.find_spec('models'), importlib.util.find_spec('guides'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None"]


def test_built_wheel_contains_every_subpackage(tmp_path):
    """Build the wheel (no network, no build isolation) and check every folder with an __init__.py is in it."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("pyro_vaes-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for root, prefix in (
        (REPO / "pyro_vaes", "pyro_vaes"),
        (REPO / "models", "pyro_vaes/models"),
        (REPO / "guides", "pyro_vaes/guides"),
    ):
        for init in root.rglob("__init__.py"):
            expected.add(f"{prefix}/{init.parent.relative_to(root).as_posix()}/__init__.py".replace("/./", "/"))
    missing = sorted(expected - names)
    assert not missing, f"packages missing from the wheel: {missing}"
    assert not any(n.startswith(("models/", "guides/", "tests/")) for n in names)


def test_import_and_registry_lookups_change_no_global_state(tmp_path):
    """Importing pyro_vaes and looking up every registry (which imports every component, experiments included)
    leaves the user's matplotlib backend alone."""
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import pyro_vaes\n"
        "from pyro_vaes.registry import DATASETS, EXPERIMENTS, GUIDES, MODELS, OBJECTIVES\n"
        "for r in (DATASETS, EXPERIMENTS, GUIDES, MODELS, OBJECTIVES): r.names()\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in __import__('sys').modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["svg", "False"]


def test_registry_module_imports_no_component():
    """The registry is a leaf: importing it (with the package) imports no model, guide, objective, experiment or
    dataset module; they are imported on the first lookup."""
    code = "import sys, pyro_vaes.registry\nprint(sorted(m for m in sys.modules if m.startswith('pyro_vaes')))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    loaded = eval(out.stdout)
    components = ("pyro_vaes.models", "pyro_vaes.guides", "pyro_vaes.objectives", "pyro_vaes.experiments")
    assert not [m for m in loaded if m.startswith(components)]
    assert not [m for m in loaded if m.startswith("pyro_vaes.data.") and m != "pyro_vaes.data.base"]


def test_public_api():
    assert callable(pyro_vaes.fit) and callable(pyro_vaes.load)
    assert pyro_vaes.__version__ == importlib.metadata.version("pyro-vaes")


def test_moved_import_paths_keep_working():
    """0.1.0's flat module paths import the same module object as the new grouped ones, with a DeprecationWarning."""
    import importlib
    import sys
    import warnings

    from pyro_vaes._moved import MOVED

    for old, new in MOVED.items():
        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new), old
        assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught), old
    from pyro_vaes import evaluation  # the package-attribute form too

    assert evaluation is importlib.import_module("pyro_vaes.analysis.evaluation")
