"""What every ``make_*_notebook.py`` script shares: its cells, collected in order, written as ``NAME.ipynb`` beside
the scripts (``--execute`` runs the notebook with nbclient first).

    from notebook_cells import Notebook
    nb = Notebook("vae")
    md, code = nb.md, nb.code
    md("# Title")
    code("x = 1")
    nb.write()
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


class Notebook:
    """The cells of ``tutorials/NAME.ipynb``, in the order they are added."""

    def __init__(self, name: str) -> None:
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

    def write(self) -> None:
        """Write the notebook (executed first when the script was given ``--execute``)."""
        nb = self.build()
        if "--execute" in sys.argv:
            from nbclient import NotebookClient

            NotebookClient(
                nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
            ).execute()
        nbformat.write(nb, self.path)
        print(f"wrote {self.path}")
