"""Regenerate the figures under docs/figures/ (committed; the site build never runs this).

    python docs/make_figures.py              # everything (the quick-start fit: 1,000 steps, ~4 min on 2 idle cores)
    python docs/make_figures.py --data-only  # only the dataset grids (seconds)

Every figure is what a documented command writes, unchanged except for an 8-bit palette to keep the repository
small: the quick-start fit is exactly ``pyro-vaes fit vae`` (README, *Set up*) and the grids are
``pyro-vaes data show NAME -n 32`` (docs/data.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

FIGURES = Path(__file__).resolve().parent / "figures"


def save_small(src: Path, dst: Path) -> None:
    """``src`` as an optimised 8-bit palette PNG (the figures are grey images and text: nothing visible changes)."""
    with Image.open(src) as im:
        im.convert("RGB").quantize(colors=256).save(dst, optimize=True)
    print(f"wrote {dst} ({dst.stat().st_size // 1024} KiB)")


def run(cmd: list[str], cwd: Path) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-only", action="store_true", help="only the dataset grids, not the quick-start fit")
    args = parser.parse_args()
    FIGURES.mkdir(exist_ok=True)
    exe = shutil.which("pyro-vaes") or sys.exit("pyro-vaes is not installed: pip install -e . first")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("shapes2d", "ellipses"):
            run([exe, "data", "show", name, "--out", str(tmp / f"{name}.png"), "-n", "32"], tmp)
            save_small(tmp / f"{name}.png", FIGURES / f"data-{name}.png")
        if args.data_only:
            return
        run([exe, "fit", "vae"], tmp)  # the README's first command, in an empty folder
        for png in sorted((tmp / "runs" / "vae-shapes2d-seed0" / "figures").glob("*.png")):
            save_small(png, FIGURES / f"quickstart-{png.name}")


if __name__ == "__main__":
    main()
