"""The documentation: the README is a front page, the pages agree with the code and the README, the Sphinx site builds
with warnings as errors, and the built pages render in a real browser (headless Chromium).

The build takes ~30–60 s on 2 busy cores (most of it importing the package for the API page and writing the
pages); it is built once for the module and skipped, with the reason, when Sphinx or the browser is missing.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
OWN_PAGES = [p for p in PAGES if p.name != "design.md"]  # design.md is the lead's contract, checked elsewhere
DOC_TOOLS = ("sphinx", "myst_nb", "furo", "sphinx-mathjax-offline")
CHROMIUM = Path("/usr/bin/chromium")


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


# -- the README and the pages, as text (no Sphinx needed) ----------------------------------------------------------


def test_readme_is_a_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 250, "README.md is a front page: move detail to a page under docs/"
    for command in (
        "pip install -e . && pyro-vaes fit vae",
        'pip install -e ".[test]" && pytest',  # what CI runs, verbatim
        "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu",
        "sphinx-build -W -b html docs docs/_build/html",
    ):
        assert command in text, f"README.md lost {command!r}"


def test_getting_started_has_the_readme_commands_and_example():
    """The README's set-up commands and Python example are repeated on the first page: the two must not drift."""
    readme, page = README.read_text(), (DOCS / "getting-started.md").read_text()
    shared = code_blocks(readme, "python") + [b for b in code_blocks(readme, "bash") if "pyro-vaes list" not in b]
    for block in shared:
        if "sphinx-build" in block:  # the README's docs command carries a comment the page does not need
            continue
        assert block in page, f"docs/getting-started.md differs from README.md in:\n{block}"


def test_every_tutorial_is_on_the_site():
    index = (DOCS / "tutorials" / "index.md").read_text()
    toctree = index.split("```{toctree}", 1)[1]
    for nb in sorted((ROOT / "tutorials").glob("*.ipynb")):
        assert f"\n{nb.stem}\n" in toctree, f"tutorials/{nb.name} is not in docs/tutorials/index.md's toctree"
        assert f"(../../tutorials/{nb.name})" in index, f"docs/tutorials/index.md does not link tutorials/{nb.name}"


@pytest.mark.parametrize("page", OWN_PAGES + [README], ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_named_on_a_page_exist(page):
    """Every repository path a page names in code (`pyro_vaes/...py`, `tests/...`, `benchmarks/...`) exists, so a
    moved module shows up here rather than as a stale page."""
    text = page.read_text()
    named = set(
        re.findall(r"`((?:pyro_vaes|models|guides|tests|benchmarks|tutorials|docs)/[\w/.-]+\.(?:py|ipynb|md))`", text)
    )
    missing = sorted(p for p in named if not (ROOT / p).exists() and "*" not in p)
    assert not missing, f"{page.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("page", OWN_PAGES + [README], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_unshipped_locations(page):
    text = page.read_text()
    for where in ("/work/shared", "shared/research"):
        assert where not in text, f"{page.name} points at {where}, which is not shipped"


def test_speed_page_has_current_numbers_only():
    text = (DOCS / "speed.md").read_text()
    assert not re.search(r"\bcommit [0-9a-f]{7}", text), "speed.md: history (commit hashes) belongs in git"
    assert not re.search(r"\bbefore it they were\b|, before\b|\| [^|]*, before \|", text), "speed.md: history"


# -- the built site ----------------------------------------------------------------------------------------------------


def _missing_tools() -> list[str]:
    return [m for m in DOC_TOOLS if importlib.util.find_spec(m) is None]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    missing = _missing_tools()
    if missing:
        pytest.skip(f"the docs extra is not installed ({', '.join(missing)} missing): pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    html = out / "html"
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(DOCS),
            str(html),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - start
    print(f"sphinx-build -W: {seconds:.1f} s")
    assert proc.returncode == 0, f"sphinx-build -W failed ({seconds:.0f} s):\n{proc.stderr[-6000:]}"
    return html


def test_site_builds_with_math_offline(site):
    for page in (
        ["index.html", "getting-started.html", "api.html", "design.html", "tutorials/index.html"]
        + [f"papers/{p}.html" for p in ("ugvae", "chyvae", "dpvae", "nvae", "csvae")]
        + [f"tutorials/{nb.stem}.html" for nb in (ROOT / "tutorials").glob("*.ipynb")]
    ):
        assert (site / page).is_file(), f"{page} was not built"
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax was not copied into the site"
    vae = (site / "tutorials" / "vae.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in vae, "the tutorial does not load the site's own MathJax"
    for page in site.rglob("*.html"):
        scripts = re.findall(r'<script[^>]+src="([^"]+)"', page.read_text())
        remote = [s for s in scripts if s.startswith(("http:", "https:", "//"))]
        assert not remote, f"{page.relative_to(site)} loads scripts from the network: {remote}"
    api = (site / "api.html").read_text()
    for name in (
        "fit",
        "load",
        "Run",
        "compare",
        "evaluate",
        "FitConfig",
        "VAEData",
        "ArraySplit",
        "load_dataset",
        "Registry",
        "mig",
        "factor_vae_metric",
    ):
        assert 'id="pyro_vaes.' in api and re.search(rf'id="pyro_vaes\.[\w.]*\b{name}"', api), f"api: no {name}"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: the browser check needs headless Chromium")
def test_pages_render_in_a_browser(site):
    """The index, a tutorial and a paper page in headless Chromium: math typeset, images loaded, no console error."""
    sys.path.insert(0, str(DOCS))
    try:
        from check_site import check_site
    finally:
        sys.path.remove(str(DOCS))
    results = check_site(site, chromium=str(CHROMIUM))
    failures = {r["page"]: r["failures"] for r in results if r["failures"]}
    assert not failures, failures
    by_page = {r["page"]: r for r in results}
    assert by_page["tutorials/vae.html"]["mjx_containers"] > 10, "the VAE tutorial's math was not typeset"
    assert (
        by_page["index.html"]["images"] >= 1
        and by_page["index.html"]["images_loaded"] == by_page["index.html"]["images"]
    )
