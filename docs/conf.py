"""Sphinx configuration of the pyro_vaes documentation site.

Build (from the repository root; ``pip install -e ".[docs]"`` first):

    sphinx-build -W -b html docs docs/_build/html

Every page is a MyST markdown file under ``docs/`` (readable as plain markdown on GitHub). The tutorials are the
notebooks in ``tutorials/``: this file copies them into ``docs/tutorials/`` (git-ignored) at the start of every
build and myst-nb renders them from their stored cells; they are never executed here (``nb_execution_mode``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
NOTEBOOKS = ROOT / "tutorials"  # the one copy in git
NOTEBOOK_COPIES = DOCS / "tutorials"  # git-ignored: *.ipynb here are build inputs only


def copy_notebooks() -> list[str]:
    """Mirror ``tutorials/*.ipynb`` into ``docs/tutorials/``: copy what is new or changed (atomically, so two
    builds at once never read half a file), remove copies whose notebook is gone. Unchanged copies keep their
    modification time, so an incremental build re-reads only what changed."""
    NOTEBOOK_COPIES.mkdir(exist_ok=True)
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    for name in names:
        src, dst = NOTEBOOKS / name, NOTEBOOK_COPIES / name
        data = _with_language(src.read_bytes())
        if dst.exists() and dst.read_bytes() == data:
            continue
        fd, tmp = tempfile.mkstemp(dir=NOTEBOOK_COPIES, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dst)
    for stale in NOTEBOOK_COPIES.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()
    return names


def _with_language(data: bytes) -> bytes:
    """The notebook with ``language_info`` set where it has none (two of them record only a kernelspec
    without a language), so its code cells are highlighted as Python; nothing else of it changes."""
    nb = json.loads(data)
    if "language_info" in nb.get("metadata", {}):
        return data
    nb.setdefault("metadata", {})["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()


TUTORIALS = copy_notebooks()

# -- project ---------------------------------------------------------------------------------------------------------

project = "pyro_vaes"
author = "the pyro_vaes authors"
copyright = "the pyro_vaes authors, Apache-2.0"
try:
    from pyro_vaes import __version__ as release
except ImportError:  # the API pages then fail loudly in autodoc; the rest still builds
    release = ""
version = release

extensions = [
    "myst_nb",  # MyST markdown pages and .ipynb notebooks (brings myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/mathjax: math renders with no network
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "tutorials/.*.tmp"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# -- MyST and notebooks ----------------------------------------------------------------------------------------------

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3  # [text](page.md#a-heading) works here as it does on GitHub
nb_execution_mode = "off"  # render the stored notebooks as they are; never run them during a build
nb_merge_streams = True

# -- API reference ---------------------------------------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": False}
autosummary_generate = False  # the API page lists its entries itself: nothing generated into the source tree
add_module_names = False

# -- HTML ------------------------------------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"pyro_vaes {release}"
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}

# -- links into tutorials/ -------------------------------------------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s#]+\.ipynb)(#[^)\s]*)?\)")


def _rewrite_tutorial_links(app, docname: str, source: list[str]) -> None:
    """A page links a tutorial by its path in the repository (``../tutorials/vae.ipynb`` from ``docs/``), so the
    link works where the page is read as plain markdown (GitHub); in the site it points at the rendered copy."""
    here = (DOCS / docname).parent

    def fix(m: re.Match) -> str:
        target = (here / m.group(1)).resolve()
        if target.parent != NOTEBOOKS or target.name not in TUTORIALS:
            return m.group(0)
        rel = os.path.relpath(NOTEBOOK_COPIES / target.name, here)
        return f"]({Path(rel).as_posix()}{m.group(2) or ''})"

    if f"{docname}.ipynb" not in {f"tutorials/{name}" for name in TUTORIALS}:  # a page, not a notebook
        source[0] = _LINK.sub(fix, source[0])


# -- docstrings that are not valid reStructuredText -----------------------------------------------------------------
# Narrow fixes, applied to the text autodoc reads (the code is not edited from here): each names the object and
# the exact text. A docstring fixed in the code makes its entry a no-op; remove it then.
def setup(app):
    # MathJax on every page, not only on pages with math of their own: the navigation shows the tutorials' titles,
    # and a title with math in it would stay raw TeX on the other pages.
    app.set_html_assets_policy("always")
    app.connect("source-read", _rewrite_tutorial_links)
    return {"parallel_read_safe": True}
