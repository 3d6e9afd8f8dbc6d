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
            short = on if len(on) == 1 else [a[:8] for a in on[:3]]  # one attribute: its whole name
            out.append(",".join(short) + ("…" if len(on) > 3 else "") if on else "(none)")
        return out
    return [",".join(map(str, row)) for row in y.tolist()]


def _label_columns(data, y: torch.Tensor | None) -> list[dict[str, Any]]:
    """What flat data is coloured by, one entry per label column: its name, its values, and either its classes
    (value, legend label) for a column of at most 10 integer values, or None (a colour bar). Labels (N,), (N, 1)
    and (N, k) are all handled; class names come from ``label_names`` (1-D labels) and column names from
    ``info["y_columns"]`` or ``label_names`` (one per column)."""
    if y is None:
        return []
    ln = data.label_names
    if y.dim() == 1:
        values, names = y.unsqueeze(1), ["label"]
        class_names = ln
    else:
        values = y.reshape(len(y), -1)
        cols = data.info.get("y_columns") or (ln if ln is not None and len(ln) == values.shape[1] else None)
        names = [str(c) for c in cols] if cols else [f"y[{k}]" for k in range(values.shape[1])]
        class_names = None
    out = []
    for k, name in enumerate(names):
        v = values[:, k]
        uniq = torch.unique(v)
        discrete = not v.is_floating_point() or bool((uniq == uniq.round()).all())
        classes = None
        if discrete and len(uniq) <= 10:
            classes = []
            for u in uniq.tolist():
                u = int(u)
                if class_names is not None and 0 <= u < len(class_names):
                    classes.append((u, str(class_names[u])))
                else:
                    classes.append((u, f"{name} = {u}"))
        out.append({"name": name, "values": v, "classes": classes})
    return out


def _coloured_scatter(ax, coords: list[torch.Tensor], column: dict[str, Any] | None, legend: bool = True):
    """Scatter ``coords`` (2 or 3 tensors) on ``ax`` coloured by ``column`` (:func:`_label_columns`; one colour
    without labels): its classes in a legend (when ``legend``), or a colour map; returns the scatter to make a
    colour bar of (a column without classes), else None."""
    from matplotlib import colormaps

    three_d = len(coords) == 3
    style = {"s": 3, **({"depthshade": False} if three_d else {})}
    if column is None:
        ax.scatter(*[c.numpy() for c in coords], color="tab:blue", **style)
        return None
    if column["classes"] is not None:
        for i, (value, label) in enumerate(column["classes"]):
            m = column["values"] == value
            ax.scatter(*[c[m].numpy() for c in coords], color=colormaps["tab10"](i % 10), label=label, **style)
        if legend:
            ax.legend(fontsize=7, markerscale=3, loc="upper left" if three_d else "best")
        return None
    return ax.scatter(*[c.numpy() for c in coords], c=column["values"].float().numpy(), cmap="viridis", **style)


def dataset_figure(data, split: str = "train", n: int = 64, note: str = "", name: str | None = None):
    """The figure of :func:`show_dataset` for a loaded dataset: the first ``n`` images of ``split`` in a captioned
    grid, or flat data (at least 2,000 points where there are) as scatter plots with labelled axes — 2-D: one
    panel; 3-D: a 3-D scatter; more: the pairwise projections of the first four features; 1-D: a histogram —
    coloured by label (a legend of classes, or a colour bar; one panel per label column for multi-column labels
    of 2-D/3-D data). ``note`` is appended to the title, which names the data ``name`` (default ``data.name``)."""
    from matplotlib.figure import Figure

    from pyro_vaes.analysis.plots import feature_pairs, features_note, panel_axes, wrap_title

    name = name or data.name
    sp = data.train if split == "train" else data.test
    n = min(n, len(sp))
    shape = "x".join(map(str, data.shape))
    if data.is_image:
        import torchvision.utils as vu

        x = sp.x[:n].clamp(0, 1)
        if x.shape[1] not in (1, 3):
            raise ValueError(f"cannot show images with {x.shape[1]} channels")
        caps = _captions(data, sp, n)
        ncol = min(8, n)
        nrow = -(-n // ncol)
        cell = 1.05 if max(map(len, caps), default=0) > 14 else 0.85  # inches: room for the longest caption
        fig = Figure(figsize=(cell * ncol, (cell + 0.15) * nrow + 0.4), layout="constrained")
        fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)
        axes = fig.subplots(nrow, ncol, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i >= n:
                continue
            # make_grid of one image: a 1-pixel grey frame, 3 channels, as the big grids elsewhere look
            tile = vu.make_grid(x[i : i + 1], nrow=1, padding=1, pad_value=0.5)
            ax.imshow(tile.permute(1, 2, 0).numpy(), interpolation="nearest", vmin=0, vmax=1)
            ax.set_title(caps[i], fontsize=5 if cell > 1 else 6, pad=2)
        title = f"{name} ({split}: the first {n} of {len(sp)} examples, shape {shape}){note}"
        fig.suptitle(wrap_title(title, fig.get_figwidth(), 9), fontsize=9)
        return fig
    x = sp.x[: max(n, 2000)]
    x = x.reshape(len(x), -1)
    dim = x.shape[1]
    columns = _label_columns(data, None if sp.y is None else sp.y[: len(x)])
    title = f"{name} ({split}: the first {len(x)} of {len(sp)} examples, shape {shape}){note}"
    if dim in (2, 3):  # one panel per label column (at most four), or one without labels
        shown = columns[:4] or [None]
        ncols = min(len(shown), 2)
        width = 5.2 * ncols
        fig = Figure(figsize=(width, 4.6 * (-(-len(shown) // ncols)) + 0.4), layout="constrained")
        axes = panel_axes(fig, len(shown), ncols, **({"projection": "3d"} if dim == 3 else {}))
        for ax, column in zip(axes, shown):
            sc = _coloured_scatter(ax, [x[:, c] for c in range(dim)], column)
            if sc is not None:
                fig.colorbar(sc, ax=ax, label=column["name"], shrink=0.7)
            ax.set_xlabel("x[0]")
            ax.set_ylabel("x[1]")
            if dim == 3:
                ax.set_zlabel("x[2]")
                ax.set_box_aspect(None, zoom=0.9)  # room for the axis labels inside the panel
            if column is not None:
                ax.set_title(f"coloured by {column['name']}", fontsize=9)
        if len(columns) > len(shown):
            title += f"; the first {len(shown)} of {len(columns)} label columns"
    else:
        pairs = feature_pairs(dim)
        column = columns[0] if columns else None
        ncols = min(max(1, len(pairs)), 3)
        width = 3.6 * ncols + (1.0 if column is not None and column["classes"] is None else 0.3)
        fig = Figure(figsize=(width, 3.3 * (-(-max(1, len(pairs)) // ncols)) + 0.6), layout="constrained")
        axes = panel_axes(fig, max(1, len(pairs)), ncols)
        if not pairs:  # 1-D: a histogram per class
            groups = [(None, x[:, 0])] if column is None or column["classes"] is None else []
            if column is not None and column["classes"] is not None:
                groups = [(label, x[column["values"] == v, 0]) for v, label in column["classes"]]
            for label, values in groups:
                axes[0].hist(values.numpy(), bins=40, alpha=0.6, label=label)
            axes[0].set_xlabel("x[0]")
            axes[0].set_ylabel("count")
            if groups[0][0] is not None:
                axes[0].legend(fontsize=7)
        scatters = []
        for k, (ax, (i, j)) in enumerate(zip(axes, pairs)):  # the classes' legend in the first panel only
            scatters.append(_coloured_scatter(ax, [x[:, i], x[:, j]], column, legend=k == 0))
            ax.set_xlabel(f"x[{i}]")
            ax.set_ylabel(f"x[{j}]")
        if scatters and scatters[0] is not None:
            fig.colorbar(scatters[0], ax=axes, label=column["name"], shrink=0.7)
        title += features_note(dim)
        if column is not None:
            title += f"; coloured by {column['name']}"
    fig.suptitle(wrap_title(title, width, 9), fontsize=9)
    return fig


def show_dataset(
    name: str,
    out: str,
    n: int = 64,
    data_root: str | None = None,
    data_args: dict[str, Any] | None = None,
    split: str = "train",
    seed: int = 0,
) -> str:
    """Write :func:`dataset_figure` of a registered dataset to ``out``: a grid of the first ``n`` examples of
    ``split`` (images) or scatter plots (flat data) coloured by label."""
    from pyro_vaes.analysis.plots import DPI
    from pyro_vaes.data import load_dataset

    if n < 1:
        raise ValueError(f"-n must be at least 1, got {n}")
    data = load_dataset(name, root=data_root, seed=seed, **(data_args or {}))
    note = ("  " + " ".join(f"{k}={v}" for k, v in data_args.items())) if data_args else ""
    fig = dataset_figure(data, split, n, note, name)
    fig.savefig(out, dpi=DPI, bbox_inches="tight")
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
