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

#: a code cell for a tutorial that reads real data: where it is (``$PYRO_VAES_DATA``, else ``shared/data`` beside the
#: repository pyro_vaes runs from, wherever the notebook runs) and ``notice(text)``, a boxed warning no reader can
#: miss. A tutorial whose data is absent says so with it; it never swaps in other data silently.
DATA_CELL = r'''
import os
from pathlib import Path
from IPython.display import display
import pyro_vaes
from pyro_vaes.data import load_dataset
from pyro_vaes.data.real import MissingDataError

DATA_ROOT = os.environ.get("PYRO_VAES_DATA") or str(Path(pyro_vaes.__file__).resolve().parents[2] / "shared" / "data")


def notice(text):
    """A boxed warning in the notebook (and plain text where markdown is not shown)."""
    display({"text/markdown": f"> ⚠️ **{text}**", "text/plain": f"NOTICE: {text}"}, raw=True)
'''

#: a code cell: ``ll_text(res)``, an importance-sampled log-likelihood as ``pyro-vaes evaluate`` prints it, with the
#: verdict of :func:`pyro_vaes.analysis.evaluation.reliability` on its weights
RELIABILITY_CELL = r'''
from pyro_vaes.analysis.evaluation import reliability


def ll_text(res, num_particles=None, prefix="log_likelihood"):
    """'value ± standard error' and the weights' effective sample size, or UNRELIABLE and why (as the CLI says)."""
    ess, k, particles = res[f"{prefix}_ess"], res.get(f"{prefix}_pareto_k"), num_particles or res["num_particles"]
    ok, why = reliability(ess, k, particles)
    text = f"{res[prefix]:.3f} ± {res[prefix + '_se']:.3f} nats ({particles} particles"
    if not ok:
        return (text + f") UNRELIABLE: {why}, so this is a loose lower bound and its standard error understates "
                "its error (more particles or a better guide)")
    return text + f"; effective sample size {ess:.0f}" + ("" if k is None else f", Pareto k {k:.2f}") + ")"
'''


#: a code cell: ``show(path)``, a figure file in the notebook at most 900 pixels wide and in 256 colours, so that a
#: committed notebook stays small (the file itself keeps its resolution)
FIGURE_CELL = r'''
import io
from IPython.display import Image, display
from PIL import Image as PILImage


def show(path, width=900):
    """A figure file in the notebook, at most ``width`` pixels wide, in 256 colours (the file keeps its own)."""
    img = PILImage.open(path).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), PILImage.LANCZOS)
    buf = io.BytesIO()
    img.quantize(256).save(buf, "PNG", optimize=True)
    display(Image(data=buf.getvalue()))
'''


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

            # no time limit per cell: a tutorial's fits at their full settings take minutes each on one CPU thread
            NotebookClient(
                nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(out)}}
            ).execute()
        nbformat.write(nb, path)
        print(f"wrote {path}")
        return path
