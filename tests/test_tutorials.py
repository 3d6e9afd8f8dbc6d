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


#: the largest a committed notebook may be: its figures are small images, not full-resolution files
MAX_NOTEBOOK_BYTES = 400_000


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_executed_with_figures_and_no_warnings(path):
    """Committed executed at its tutorial settings (not smoke mode): every code cell ran, at least one figure, small
    images, and no warning, error or traceback in its outputs."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{path.name} is not executed: see docs/tutorials/index.md"
    outputs = [o for c in code for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no figure"
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES, f"{path.name} is {path.stat().st_size} bytes: shrink its figures"
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "smoke mode" not in text, f"{path.name} was executed in smoke mode"
    assert not [o for o in outputs if o.output_type == "error"], f"{path.name} has an error output"
    stderr = "\n".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "Warning" not in stderr, f"{path.name} shows a warning: {stderr[:300]}"


@pytest.mark.parametrize("generator", GENERATORS, ids=[_name(g) for g in GENERATORS])
def test_no_tutorial_swallows_errors(generator):
    """A tutorial whose data is missing says so (a notice); none catches every error to swap in a silent stand-in."""
    source = generator.read_text()
    assert "except Exception" not in source and "except:" not in source


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
