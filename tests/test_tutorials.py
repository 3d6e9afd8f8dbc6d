"""Every notebook in tutorials/ executes top to bottom in its small setting (PYRO_VAES_SMOKE=1), and is what its
generator ``tutorials/make_NAME_notebook.py`` writes: regenerated into a temporary folder (``--out``, never over the
tracked notebook), the same cells (types and sources; ids, outputs, execution counts and metadata ignored)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
GENERATORS = sorted(TUTORIALS.glob("make_*_notebook.py"))


def _name(generator: Path) -> str:
    return generator.name.removeprefix("make_").removesuffix("_notebook.py")


def _cells(path: Path) -> list[tuple[str, str]]:
    nbformat = pytest.importorskip("nbformat")
    return [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]


def test_every_notebook_has_its_generator_and_every_generator_its_notebook():
    assert NOTEBOOKS and GENERATORS
    assert [p.stem for p in NOTEBOOKS] == sorted(_name(g) for g in GENERATORS)


@pytest.mark.parametrize("generator", GENERATORS, ids=[_name(g) for g in GENERATORS])
def test_committed_notebook_is_what_its_generator_writes(generator, tmp_path):
    pytest.importorskip("nbformat")
    tracked = TUTORIALS / f"{_name(generator)}.ipynb"
    before = tracked.read_bytes() if tracked.exists() else None
    res = subprocess.run(
        [sys.executable, str(generator), "--out", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    written = tmp_path / tracked.name
    assert written.exists(), res.stdout
    assert (tracked.read_bytes() if tracked.exists() else None) == before, "the generator wrote over the tracked file"
    assert tracked.exists(), f"{tracked.name} is not committed: run python tutorials/{generator.name}"
    committed, generated = _cells(tracked), _cells(written)
    assert committed, f"{tracked.name} has no cells"
    assert committed == generated, (
        f"{tracked.name} differs from what {generator.name} writes: regenerate it "
        f"(python tutorials/{generator.name}) or edit the generator, not the notebook"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_executes(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PYRO_VAES_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)  # figures and runs the notebook writes stay out of the repository
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    assert time.perf_counter() - start < 180, f"{path.name} took too long in its small setting"
