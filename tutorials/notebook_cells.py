"""What every ``make_*_notebook.py`` script shares: its cells, collected in order, written as ``NAME.ipynb`` beside
the scripts (``--execute`` runs the notebook with nbclient first; ``--out DIR`` writes ``DIR/NAME.ipynb`` instead,
leaving the tracked notebook alone).

    from notebook_cells import Notebook
    nb = Notebook("vae")
    md, code = nb.md, nb.code
    md("# Title")
    code("x = 1")
    nb.write()
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line every ``make_*_notebook.py`` script takes."""
    p = argparse.ArgumentParser(description=f"write NAME.ipynb from the cells of {Path(sys.argv[0]).name}")
    p.add_argument("--execute", action="store_true", help="run the notebook with nbclient before writing it")
    p.add_argument(
        "--out",
        type=Path,
        default=HERE,
        help="folder to write NAME.ipynb in (default: tutorials/, over the tracked notebook); with --execute the "
        "notebook also runs there",
    )
    return p.parse_args(sys.argv[1:] if argv is None else argv)


class Notebook:
    """The cells of ``tutorials/NAME.ipynb``, in the order they are added."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = HERE / f"{name}.ipynb"
        self.cells: list = []

    def md(self, source: str) -> None:
        self.cells.append(new_markdown_cell(source.strip()))

    def code(self, source: str) -> None:
        self.cells.append(new_code_cell(source.strip()))

    def build(self) -> nbformat.NotebookNode:
        nb = new_notebook(cells=self.cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        return nb

    def write(self, argv: list[str] | None = None) -> Path:
        """Write the notebook to ``--out`` (default: beside the scripts), executed first when the script was given
        ``--execute``. Returns the path written."""
        opts = options(argv)
        out = Path(opts.out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.name}.ipynb"
        nb = self.build()
        if opts.execute:
            from nbclient import NotebookClient

            NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(out)}}).execute()
        nbformat.write(nb, path)
        print(f"wrote {path}")
        return path
