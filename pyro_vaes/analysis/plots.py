"""Figures of a fitted run, as PNG files a person can read: reconstructions, prior samples, latent traversals.

Image data is tiled with :func:`torchvision.utils.make_grid` and drawn with matplotlib's object-oriented API
(:class:`matplotlib.figure.Figure`, no ``pyplot``), so drawing never changes the user's matplotlib backend or
any other global state. Flat data is drawn as scatter plots with labelled axes: one panel for 2-D data, one per
pair of features (the first four) for more; histograms for 1-D data. Flat traversals get one panel per latent
dimension, the decoded points coloured by the swept value (a colour bar).

Everything goes through the model/guide contract: reconstructions decode the posterior means of every latent
(:func:`~pyro_vaes.metrics.reconstruction.reconstruct`); traversals sweep one dimension of the model's
``code_site`` around a test item's posterior mean with the other latents (batch-level ones included) at their
posterior means (a guide-less model sweeps around a prior draw); samples of a class-conditioned model are drawn
one row per class.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from pyro_vaes.analysis.training_curves import loss_curves
from pyro_vaes.guides.base import posterior_means
from pyro_vaes.metrics.reconstruction import reconstruct
from pyro_vaes.plumbing.isolation import eval_mode, isolated_rng

#: resolution of every figure written (a few hundred KB at most)
DPI = 100
#: flat data of more features is drawn as the pairwise projections of its first ``MAX_FEATURES``
MAX_FEATURES = 4


def _to_image(x: torch.Tensor, nrow: int) -> torch.Tensor:
    from torchvision.utils import make_grid  # imported here: torchvision's import costs ~3 s of every command's start

    grid = make_grid(x.clamp(0, 1).cpu(), nrow=nrow, padding=2, pad_value=1.0)  # white: apart from grey outputs
    return grid.permute(1, 2, 0)


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def wrap_title(title: str, width_inches: float, fontsize: float = 10) -> str:
    """``title`` wrapped to the width of a figure ``width_inches`` wide (kept as is when it has line breaks)."""
    if "\n" in title:
        return title
    most = max(30, int(width_inches * 72 / (0.6 * fontsize)))  # characters on a line, at ~0.6 em a character
    lines = -(-len(title) // most)
    return textwrap.fill(title, min(most, -(-len(title) // lines) + 10))  # lines of about equal length


def feature_pairs(dim: int, max_features: int = MAX_FEATURES) -> list[tuple[int, int]]:
    """The pairs of features drawn for flat data of ``dim`` features: (0, 1) for 2-D data, every pair of the
    first ``max_features`` otherwise (three panels for 3-D data); none for 1-D data (drawn as a histogram)."""
    k = min(dim, max_features)
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def features_note(dim: int, max_features: int = MAX_FEATURES) -> str:
    """What a title adds when only some features of flat data are drawn."""
    return f"; pairs of features 0-{max_features - 1} of {dim}" if dim > max_features else ""


def panel_axes(fig: Figure, n: int, ncols: int = 3, **kwargs) -> list:
    """``n`` axes on a grid of at most ``ncols`` columns (the unused cells left empty); ``kwargs`` to
    :meth:`~matplotlib.figure.Figure.add_subplot` (e.g. ``projection="3d"``)."""
    ncols = max(1, min(n, ncols))
    nrows = -(-n // ncols)
    return [fig.add_subplot(nrows, ncols, k + 1, **kwargs) for k in range(n)]


def _flat_figure(
    title: str,
    path: Path,
    sets: Sequence[tuple[str, torch.Tensor, dict]],
    links: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Path:
    """Flat data sets (label, (N, D) points, scatter style), one colour each, on the panels of
    :func:`feature_pairs` (histograms for 1-D data), with one legend for the figure; ``links``: two (N, D) tensors
    whose rows are joined by grey lines (each point and its reconstruction)."""
    from matplotlib.collections import LineCollection

    dim = sets[0][1].shape[-1]
    pairs = feature_pairs(dim)
    n = max(1, len(pairs))
    ncols = min(n, 3)
    width = max(5.0, 3.4 * ncols + 0.3)  # one panel: still room for the legend under it
    fig = Figure(figsize=(width, 3.1 * (-(-n // ncols)) + 0.9), layout="constrained")
    axes = panel_axes(fig, n, ncols)
    if not pairs:  # 1-D data
        for label, x, style in sets:
            axes[0].hist(x[:, 0].numpy(), bins=40, alpha=0.5, label=label, color=style.get("color"))
        axes[0].set_xlabel("x[0]")
        axes[0].set_ylabel("count")
    for ax, (i, j) in zip(axes, pairs):
        if links is not None:
            segments = torch.stack([links[0][:, [i, j]], links[1][:, [i, j]]], 1).numpy()
            ax.add_collection(LineCollection(segments, colors="0.65", linewidths=0.6, zorder=1))
        for label, x, style in sets:
            ax.scatter(x[:, i].numpy(), x[:, j].numpy(), label=label, zorder=2, **{"s": 8, "alpha": 0.7, **style})
        ax.set_xlabel(f"x[{i}]")
        ax.set_ylabel(f"x[{j}]")
    handles, labels = axes[0].get_legend_handles_labels()
    if links is not None:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="0.65", linewidth=0.8))
        labels.append("a test point to its reconstruction")
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(len(labels), 3 if width > 7 else 2),
        fontsize=8,
        markerscale=2,
    )
    fig.suptitle(wrap_title(title + features_note(dim), width, 10), fontsize=10)
    return save_figure(fig, path)


def _flat_traversals(
    out: torch.Tensor, values: torch.Tensor, ref: torch.Tensor, names: Sequence[str], title: str, path: Path
) -> Path:
    """Flat traversals ``out`` (d, steps, D): one panel per swept dimension (``names``). 2-D and 3-D data: the
    decoded points over the test data (grey), joined in order and coloured by the swept value (one colour bar);
    other data: each feature (the first eight) against the swept value."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    d, _, dim = out.shape
    ncols = min(d, 3 if dim == 3 else 4)
    width = (3.4 if dim == 3 else 2.9) * ncols + 1.2
    fig = Figure(figsize=(width, (3.2 if dim == 3 else 2.7) * (-(-d // ncols)) + 1.0), layout="constrained")
    values = values.cpu()
    if dim in (2, 3):
        norm, cmap = Normalize(float(values[0]), float(values[-1])), "viridis"
        axes = panel_axes(fig, d, ncols, **({"projection": "3d"} if dim == 3 else {}))
        flat = {} if dim == 2 else {"depthshade": False}  # 3-D: the colours stay those of the colour bar
        for k, ax in enumerate(axes):
            ax.scatter(*ref[:, :dim].T.numpy(), s=2, color="0.6", alpha=0.3, label="test data", **flat)
            ax.plot(*out[k].T.numpy(), color="0.3", linewidth=0.7, zorder=2)
            ax.scatter(
                *out[k].T.numpy(),
                c=values.numpy(),
                cmap=cmap,
                norm=norm,
                s=22,
                zorder=3,
                edgecolors="black",
                linewidths=0.3,
                label="decoded traversal",
                **flat,
            )
            ax.set_title(names[k], fontsize=9)
            ax.set_xlabel("x[0]", fontsize=8, labelpad=0)
            ax.set_ylabel("x[1]", fontsize=8, labelpad=0)
            if dim == 3:
                ax.set_zlabel("x[2]", fontsize=8, labelpad=0)
                ax.set_box_aspect(None, zoom=0.85)  # room for the axis labels inside the panel
            ax.tick_params(labelsize=6, pad=0)
        shrink = 0.9 if d <= ncols else 0.6  # one row of panels: the bar as tall as they are
        fig.colorbar(
            ScalarMappable(norm, cmap), ax=axes, label="value of the swept dimension", shrink=shrink, aspect=30
        )
        handles, labels = axes[0].get_legend_handles_labels()
    else:
        from matplotlib import colormaps

        shown = min(dim, 8)
        axes = panel_axes(fig, d, ncols)
        for k, ax in enumerate(axes):
            for f in range(shown):
                ax.plot(values.numpy(), out[k, :, f].numpy(), marker=".", color=colormaps["tab10"](f), label=f"x[{f}]")
            ax.set_title(names[k], fontsize=9)
            ax.set_xlabel(f"value of {names[k]}", fontsize=8)
            ax.set_ylabel("decoded feature", fontsize=8)
            ax.tick_params(labelsize=7)
        handles, labels = axes[0].get_legend_handles_labels()
        if dim > shown:
            title += f" (features 0-{shown - 1} of {dim})"
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 8), fontsize=8, markerscale=1.5)
    fig.suptitle(wrap_title(title, width, 10), fontsize=10)
    return save_figure(fig, path)


def _grid_ticks(set_ticks, set_ticklabels, labels: Sequence[str] | None, step: int) -> None:
    """One tick label at the middle of each row (or column) of a grid whose cells are ``step`` pixels apart (after
    the grid's 2-pixel margin); no tick where there is no label."""
    shown = [(i, label) for i, label in enumerate(labels or []) if label]  # no tick where a label is empty
    set_ticks([2 + step * (i + 0.5) for i, _ in shown])
    if shown:
        set_ticklabels([label for _, label in shown], fontsize=7)


def image_grid(
    x: torch.Tensor,
    nrow: int,
    title: str,
    path: Path,
    row_labels: Sequence[str] | None = None,
    xlabel: str | None = None,
    col_labels: Sequence[str] | None = None,
    ylabel: str | None = None,
) -> Path:
    """Tile images ``x`` (N, C, H, W) in [0, 1], ``nrow`` per row, with a title and optional row and column
    labels (one per row / column of the grid) and axis labels."""
    img = _to_image(x, nrow)
    rows = -(-x.shape[0] // nrow)
    fig = Figure(figsize=(max(4, nrow * 0.6 + 1), max(2, rows * 0.6 + 0.8)), layout="constrained")
    ax = fig.subplots()
    if img.shape[-1] == 1:
        ax.imshow(img.squeeze(-1), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")
    ax.set_title(wrap_title(title, fig.get_figwidth(), 10), fontsize=10)
    if ylabel:
        ax.set_ylabel(ylabel)
    _grid_ticks(ax.set_yticks, ax.set_yticklabels, row_labels, x.shape[-2] + 2)
    _grid_ticks(ax.set_xticks, ax.set_xticklabels, col_labels, x.shape[-1] + 2)
    if xlabel:
        ax.set_xlabel(xlabel)
    return save_figure(fig, path)


def _test_batch(run, n: int):
    x, y = run.data.test.batch(torch.arange(min(n, len(run.data.test))))
    return x.to(run.parts.device), None if y is None else y.to(run.parts.device)


@torch.no_grad()
def reconstructions(run, path: Path, n: int | None = None) -> Path | None:
    """The first ``n`` test items (default 16 images, 200 flat points) and the decoded posterior means: images in
    two rows, flat data as two scatters with each point joined to its reconstruction."""
    if run.guide is None:
        return None
    x, y = _test_batch(run, n or (16 if run.data.is_image else 200))
    recon = reconstruct(run.model, run.guide, x, y).cpu()
    x = x.cpu()
    what = "reconstructions (the posterior mean decoded)"
    if run.data.is_image:
        title = f"{run.config.model} on {run.config.data}: {len(x)} test images (top row) and their {what}"
        both = torch.cat([x, recon], 0)
        return image_grid(both, len(x), title, path, row_labels=["data", "reconstruction"])
    title = f"{run.config.model} on {run.config.data}: {len(x)} test points and their {what}"
    sets = [("test data", x, {"color": "tab:blue"}), ("reconstruction", recon, {"color": "tab:orange"})]
    return _flat_figure(title, path, sets, links=(x, recon))


def sample_labels(model, n: int) -> torch.Tensor | None:
    """Labels for a grid of ``n`` samples: one row per class for a class-conditioned model, else None."""
    if model.labels != "class":
        return None
    per_class = max(1, n // model.num_classes)
    return torch.arange(model.num_classes, device=model.device).repeat_interleave(per_class)


@torch.no_grad()
def samples(run, path: Path, n: int | None = None) -> Path:
    """``n`` prior samples (default 64 images, 500 flat points; one row, or colour, per class for a
    class-conditioned model): an image grid, or a scatter over as many test points."""
    n = n or (64 if run.data.is_image else 500)
    y = sample_labels(run.model, n)
    x = run.sample(len(y) if y is not None else n, y=y)
    title = f"{run.config.model} on {run.config.data}: {len(x)} samples (decoder means of prior draws)"
    if run.data.is_image:
        if y is not None:
            per_class = len(y) // run.model.num_classes
            names = run.data.label_names or [str(k) for k in range(run.model.num_classes)]
            return image_grid(
                x, per_class, title + ", one row per class", path, row_labels=names[: run.model.num_classes]
            )
        return image_grid(x, 8, title, path)
    x = x.cpu()
    ref, _ = run.data.test.batch(torch.arange(min(len(run.data.test), len(x))))
    title += f" over {len(ref)} test points"
    sets = [("test data", ref.cpu(), {"color": "0.7", "s": 6})]
    if y is None:
        sets.append(("samples", x, {"color": "tab:orange"}))
    else:  # one colour per class
        from matplotlib import colormaps

        names = run.data.label_names or [str(k) for k in range(run.model.num_classes)]
        y = y.cpu()
        for k in range(run.model.num_classes):
            sets.append((f"samples, {names[k]}", x[y == k], {"color": colormaps["tab10"](k % 10)}))
    return _flat_figure(title, path, sets)


@torch.no_grad()
def traversals(
    run, path: Path, steps: int = 9, span: float = 3.0, max_dims: int = 20, space: str = "representation"
) -> Path:
    """One row per dimension of the model's code: that dimension swept over [-span, span] around the posterior
    mean of a test item, every other latent (a batch-level one at its posterior mean for the first test batch)
    fixed; around a prior draw for a model without a guide.

    ``space="generation"`` sweeps the dimensions of z₀ = g(z) instead, where p(z₀) = N(0, I), and decodes
    g⁻¹(z₀) (dpVAE's generation space under a flow prior; the same as representation space otherwise)."""
    if space not in ("representation", "generation"):
        raise ValueError(f"space must be representation or generation, got {space!r}")
    model, site = run.model, run.model.code_site
    x, y = _test_batch(run, 64)  # a batch, for batch-level latents
    if run.guide is not None:
        latents = posterior_means(run.guide.encode(x, y))
    else:
        latents = model.sample_prior(len(x), y)
    y0 = None if y is None else y[:1]
    center = latents[site][0]
    g_inv = None
    if space == "generation":
        from pyro_vaes.distributions.flows import generation_space
        from pyro_vaes.metrics.generative import code_prior

        _, g, g_inv = generation_space(code_prior(model, 1, y[:1] if y is not None else None))
        center = g(center.unsqueeze(0))[0]
    d = min(center.shape[-1], max_dims)
    values = torch.linspace(-span, span, steps, device=center.device)
    z = center.repeat(d, steps, 1)
    for i in range(d):
        z[i, :, i] = values
    label = site
    if g_inv is not None:
        z = g_inv(z.reshape(d * steps, -1)).reshape(d, steps, -1)
        label = f"{site}0"  # the generation-space coordinate swept
    swept = {k: v for k, v in latents.items() if k not in model.global_sites}
    fixed = {k: v for k, v in latents.items() if k in model.global_sites}
    item = {k: v[:1].expand(d * steps, *v.shape[1:]) for k, v in swept.items()}
    item[site] = z.reshape(d * steps, -1)
    labels = None if y0 is None else y0.expand(d * steps, *y0.shape[1:])
    out = model.decode({**item, **fixed}, labels).cpu()
    where = f"{label} = g({site}), generation space" if g_inv is not None else label
    around = "test item 0's posterior mean" if run.guide is not None else "a prior draw"
    if run.data.is_image:
        title = (
            f"{run.config.model} on {run.config.data}: latent traversals around {around} (row = dimension of "
            f"{where}, value from {-span:g} to {span:g})"
        )
        rows = [f"{site}{i}" for i in range(d)] if g_inv is None else [f"{label}_{i}" for i in range(d)]
        return image_grid(
            out,
            steps,
            title,
            path,
            row_labels=rows,
            xlabel=f"value of {label}_d",
            col_labels=[f"{v:.2g}" for v in values.tolist()],
        )
    title = (
        f"{run.config.model} on {run.config.data}: latent traversals around {around} (panel = dimension of "
        f"{where}, {steps} values from {-span:g} to {span:g})"
    )
    ref, _ = run.data.test.batch(torch.arange(min(len(run.data.test), 500)))
    names = [f"{site}{i}" for i in range(d)] if g_inv is None else [f"{label}_{i}" for i in range(d)]
    return _flat_traversals(out.reshape(d, steps, -1), values, ref.cpu(), names, title, path)


def generation_traversals(run, path: Path) -> Path | None:
    """Traversals in generation space (:func:`traversals` with ``space="generation"``) for a model whose only latent
    is a code with a flow prior; None for any other model."""
    from pyro_vaes.metrics.generative import code_prior

    model = run.model
    if tuple(model.latent_sites) != (model.code_site,) or model.labels is not None or not model.has_guide:
        return None
    if not isinstance(code_prior(model, 1), torch.distributions.TransformedDistribution):
        return None
    return traversals(run, path, space="generation")


PLOTTERS = {
    "reconstructions": reconstructions,
    "samples": samples,
    "traversals": traversals,
    "generation-traversals": generation_traversals,
    "loss": loss_curves,  # from metrics.jsonl: train and held-out loss against the step (analysis/training_curves.py)
}

#: what ``kind="all"`` draws: the model's figures (the loss curves are asked for by name: ``kind="loss"``)
ALL = tuple(k for k in PLOTTERS if k != "loss")


def plot_run(run, kind: str = "all", out: Path | None = None) -> list[Path]:
    """Write the figures of ``kind`` (or ``all``: every kind in :data:`ALL`) into ``out`` (default: the run's ``figures/``), with the modules
    in eval mode and a random stream of their own."""
    if kind != "all" and kind not in PLOTTERS:
        raise ValueError(f"unknown figure kind {kind!r}; valid: all, {', '.join(PLOTTERS)}")
    out = Path(out) if out is not None else run.run_dir / "figures"
    kinds = ALL if kind == "all" else [kind]
    paths = []
    with eval_mode(run.model, run.guide), isolated_rng(run.config.seed):
        for k in kinds:
            path = PLOTTERS[k](run, out / f"{k}.png")
            if path is not None:
                paths.append(path)
    return paths
