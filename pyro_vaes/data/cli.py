"""The ``pyro-vaes data`` command: ``data list`` and ``data show NAME --out grid.png``.

The main CLI adds it with :func:`add_data_parser` and dispatches to :func:`run_data_command`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

DATA_EXAMPLES = """examples:
  pyro-vaes data list
  pyro-vaes data show shapes2d --out shapes2d.png
  pyro-vaes data show mnist --data-root ../shared/data --split test -n 32 --out mnist.png
  pyro-vaes data show moons --out moons.png -n 2000
"""


def add_data_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``data`` (with ``list`` and ``show``) to a top-level ``subparsers``; returns the ``data`` parser."""
    p = subparsers.add_parser(
        "data",
        help="list datasets or write a grid of examples",
        description="See what a dataset holds before fitting on it: 'list' shows every dataset (where it comes\n"
        "from, one example's shape, its ground-truth factors); 'show' writes a labelled grid of examples (a\n"
        "scatter plot for flat data) to a PNG. Real datasets are read from --data-root or $PYRO_VAES_DATA;\n"
        "procedural and synthetic ones are generated: nothing to download.",
        epilog=DATA_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="data_command", metavar="{list,show}")
    sub.required = True
    sub.add_parser(
        "list",
        help="every registered dataset: kind, shape, factors, description",
        description="Every registered dataset: kind (real, procedural, synthetic), one example's shape, its "
        "ground-truth factors and a description. `pyro-vaes list NAME` shows a dataset's --data-arg arguments.",
    )
    s = sub.add_parser(
        "show",
        help="write a labelled grid of examples of one dataset to a PNG",
        description="Write the first N examples of a dataset's train or test split to a PNG: images as a grid,\n"
        "each captioned with its factors or labels; flat 2-D/3-D data as a scatter plot coloured by label.",
        epilog=DATA_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("name", help="registered dataset name (see `pyro-vaes data list`)")
    s.add_argument("--out", required=True, help="output PNG path")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    s.add_argument("--data-root", default=None, help="folder holding real datasets (default: $PYRO_VAES_DATA)")
    s.add_argument(
        "--data-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset argument (repeatable; `pyro-vaes list NAME` lists them)",
    )
    s.add_argument("-n", type=int, default=64, help="number of examples (default 64)")
    s.add_argument("--split", choices=("train", "test"), default="train", help="which split (default train)")
    s.add_argument(
        "--seed", type=int, default=0, help="the dataset's seed: its split, binarization, generation (default 0)"
    )
    return p


def _describe_shape(entry) -> str:
    return str(entry.meta.get("shape", "?"))


def list_datasets(out=None) -> list[dict[str, str]]:
    """Rows (name, kind, shape, factors, help) read from the registry; printed as a table to ``out``."""
    from pyro_vaes.registry import DATASETS

    rows = []
    for e in DATASETS.entries():
        shape = e.meta.get("shape")
        factors = e.meta.get("factors")
        if (shape is None or factors is None) and e.meta.get("kind") == "synthetic":
            try:  # synthetic sets are cheap: build a tiny one to read its shape
                d = e.obj(root=None, seed=0)
                shape = shape or "x".join(map(str, d.shape))
                factors = factors if factors is not None else (",".join(d.factors.factor_names) if d.factors else "")
            except Exception:  # pragma: no cover - defensive
                pass
        rows.append(
            {
                "name": e.name,
                "kind": str(e.meta.get("kind", "?")),
                "shape": str(shape if shape is not None else "?"),
                "factors": str(factors) if factors else "-",
                "help": e.help,
            }
        )
    if out is not None:
        cols = ("name", "kind", "shape", "factors")
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
        print("  ".join(c.upper().ljust(widths[c]) for c in cols) + "  DESCRIPTION", file=out)
        for r in rows:
            print("  ".join(r[c].ljust(widths[c]) for c in cols) + "  " + r["help"], file=out)
    return rows


def _captions(data, split, n: int) -> list[str]:
    """One short caption per shown example: factor classes, or labels by name."""
    if split.factors is not None and data.factors is not None:
        names = list(data.factors.factor_names)
        short = [k[:3] if k not in ("posX", "posY") else k[-1].lower() for k in names]
        out = []
        for f in split.factors[:n].tolist():
            parts = []
            for k, v in zip(names, f):
                if k == "shape" and hasattr(data.factors, "shape_names"):
                    parts.append(data.factors.shape_names[v][:3])
                else:
                    parts.append(f"{short[names.index(k)]}{v}")
            out.append(" ".join(parts))
        return out
    if split.y is None:
        return [""] * n
    y = split.y[:n]
    ln = data.label_names
    if y.dim() == 1:
        return [ln[v] if ln is not None and 0 <= v < len(ln) and len(ln) > 2 else str(v) for v in y.tolist()]
    cols = data.info.get("y_columns")
    if cols:  # e.g. yaleb with angles: subject, azimuth, elevation
        return [" ".join(f"{c[:3]}{v}" for c, v in zip(cols, row)) for row in y.tolist()]
    if ln is not None and len(ln) == y.shape[1] and bool(((y == 0) | (y == 1)).all()):
        out = []
        for row in y.tolist():
            on = [ln[k] for k, v in enumerate(row) if v]
            out.append(",".join(a[:8] for a in on[:3]) + ("…" if len(on) > 3 else "") if on else "(none)")
        return out
    return [",".join(map(str, row)) for row in y.tolist()]


def show_dataset(
    name: str,
    out: str,
    n: int = 64,
    data_root: str | None = None,
    data_args: dict[str, Any] | None = None,
    split: str = "train",
    seed: int = 0,
) -> str:
    """Write a grid of the first ``n`` examples of ``split`` (images) or a scatter plot (flat 2-D/3-D data)."""
    from matplotlib.figure import Figure

    from pyro_vaes.data import load_dataset

    if n < 1:
        raise ValueError(f"-n must be at least 1, got {n}")
    data = load_dataset(name, root=data_root, seed=seed, **(data_args or {}))
    sp = data.train if split == "train" else data.test
    n = min(n, len(sp))
    title = f"{name} ({split}: {len(sp)} examples, shape {'x'.join(map(str, data.shape))})"
    if data_args:
        title += "  " + " ".join(f"{k}={v}" for k, v in data_args.items())
    if data.is_image:
        import torchvision.utils as vu

        x = sp.x[:n].clamp(0, 1)
        if x.shape[1] not in (1, 3):
            raise ValueError(f"cannot show images with {x.shape[1]} channels")
        caps = _captions(data, sp, n)
        ncol = min(8, n)
        nrow = -(-n // ncol)
        fig = Figure(figsize=(1.25 * ncol, 1.45 * nrow + 0.5))
        axes = fig.subplots(nrow, ncol, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i >= n:
                continue
            # make_grid of one image: a 1-pixel grey frame, 3 channels, as the big grids elsewhere look
            tile = vu.make_grid(x[i : i + 1], nrow=1, padding=1, pad_value=0.5)
            ax.imshow(tile.permute(1, 2, 0).numpy(), interpolation="nearest", vmin=0, vmax=1)
            ax.set_title(caps[i], fontsize=5.5, pad=2)
        fig.suptitle(title, fontsize=8)
        fig.tight_layout(pad=0.3, h_pad=0.4, w_pad=0.2)
    else:
        x = sp.x[: max(n, min(len(sp), 2000))]
        y = None if sp.y is None else sp.y[: len(x)]
        c = None if y is None or y.dim() != 1 else y.numpy()
        fig = Figure(figsize=(6, 5))
        if x.shape[1] >= 3:
            ax = fig.add_subplot(projection="3d")
            sc = ax.scatter(x[:, 0], x[:, 1], x[:, 2], c=c, s=3, cmap="coolwarm")
        else:
            ax = fig.add_subplot()
            sc = ax.scatter(x[:, 0], x[:, 1] if x.shape[1] > 1 else torch.zeros(len(x)), c=c, s=3, cmap="coolwarm")
        if c is not None:
            fig.colorbar(sc, ax=ax, label=", ".join(data.label_names or ["y"]))
        ax.set_title(title.replace(f"{split}: ", f"{split}: {len(x)} of "), fontsize=8)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    return out


def run_data_command(args: argparse.Namespace) -> int:
    """Run ``data list`` / ``data show`` (errors are raised; the main command prints them as one line)."""
    if args.data_command == "list":
        list_datasets(out=sys.stdout)
        return 0
    from pyro_vaes.config import parse_assignments
    from pyro_vaes.engine.run_folder import check_output

    data_args = parse_assignments(args.data_arg, "--data-arg")
    check_output(Path(args.out), args.overwrite)
    path = show_dataset(args.name, args.out, args.n, args.data_root, data_args, args.split, args.seed)
    print(f"wrote {path}")
    return 0
