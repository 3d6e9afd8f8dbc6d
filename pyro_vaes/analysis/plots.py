"""Figures of a fitted run, as PNG files a person can read: reconstructions, prior samples, latent traversals.

Image data is tiled with :func:`torchvision.utils.make_grid` and drawn with matplotlib's object-oriented API
(:class:`matplotlib.figure.Figure`, no ``pyplot``), so drawing never changes the user's matplotlib backend or
any other global state. 2-D flat data is drawn as scatter plots, other flat data as heat maps.

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

from pyro_vaes.guides.base import posterior_means
from pyro_vaes.metrics.reconstruction import reconstruct
from pyro_vaes.plumbing.isolation import eval_mode, isolated_rng


def _to_image(x: torch.Tensor, nrow: int) -> torch.Tensor:
    from torchvision.utils import make_grid  # imported here: torchvision's import costs ~3 s of every command's start

    grid = make_grid(x.clamp(0, 1).cpu(), nrow=nrow, padding=2, pad_value=0.5)
    return grid.permute(1, 2, 0)


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _grid_ticks(set_ticks, set_ticklabels, labels: Sequence[str] | None, step: int) -> None:
    """One tick label at the middle of each row (or column) of a grid whose cells are ``step`` pixels apart (after
    the grid's 2-pixel margin); no ticks without labels."""
    if labels:
        set_ticks([2 + step * (i + 0.5) for i in range(len(labels))])
        set_ticklabels(labels, fontsize=7)
    else:
        set_ticks([])


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
    fig = Figure(figsize=(max(4, nrow * 0.6 + 1), max(2, rows * 0.6 + 0.8)))
    ax = fig.subplots()
    if img.shape[-1] == 1:
        ax.imshow(img.squeeze(-1), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")
    ax.set_title(title if "\n" in title else textwrap.fill(title, 75), fontsize=10)
    if ylabel:
        ax.set_ylabel(ylabel)
    _grid_ticks(ax.set_yticks, ax.set_yticklabels, row_labels, x.shape[-2] + 2)
    _grid_ticks(ax.set_xticks, ax.set_xticklabels, col_labels, x.shape[-1] + 2)
    if xlabel:
        ax.set_xlabel(xlabel)
    return save_figure(fig, path)


def _flat_plot(x: torch.Tensor, title: str, path: Path, other: torch.Tensor | None = None, labels=("data", "model")):
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    if x.shape[-1] == 2:
        ax.scatter(x[:, 0], x[:, 1], s=6, alpha=0.6, label=labels[0])
        if other is not None:
            ax.scatter(other[:, 0], other[:, 1], s=6, alpha=0.6, label=labels[1])
            ax.legend()
        ax.set_xlabel("x[0]")
        ax.set_ylabel("x[1]")
    else:
        shown = x if other is None else torch.cat([x, other], 0)
        im = ax.imshow(shown, aspect="auto", cmap="viridis")
        fig.colorbar(im, ax=ax)
        ax.set_xlabel("feature")
        ax.set_ylabel("observation" if other is None else f"rows 0-{len(x) - 1}: {labels[0]}; then {labels[1]}")
    ax.set_title(title)
    return save_figure(fig, path)


def _test_batch(run, n: int):
    x, y = run.data.test.batch(torch.arange(min(n, len(run.data.test))))
    return x.to(run.parts.device), None if y is None else y.to(run.parts.device)


@torch.no_grad()
def reconstructions(run, path: Path, n: int = 16) -> Path | None:
    if run.guide is None:
        return None
    x, y = _test_batch(run, n)
    recon = reconstruct(run.model, run.guide, x, y).cpu()
    x = x.cpu()
    title = f"{run.config.model} on {run.config.data}: test data (top) and reconstructions from the posterior mean"
    if run.data.is_image:
        both = torch.cat([x, recon], 0)
        return image_grid(both, len(x), title, path, row_labels=["data", "reconstruction"])
    return _flat_plot(x, title, path, recon, labels=("data", "reconstruction"))


def sample_labels(model, n: int) -> torch.Tensor | None:
    """Labels for a grid of ``n`` samples: one row per class for a class-conditioned model, else None."""
    if model.labels != "class":
        return None
    per_class = max(1, n // model.num_classes)
    return torch.arange(model.num_classes, device=model.device).repeat_interleave(per_class)


@torch.no_grad()
def samples(run, path: Path, n: int = 64) -> Path:
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
    ref, _ = run.data.test.batch(torch.arange(min(len(run.data.test), 500)))
    return _flat_plot(ref, title, path, run.sample(min(len(ref), 500)), labels=("test data", "samples"))


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
    title = f"{run.config.model}: latent traversals (row = dimension of {where}, value from {-span:g} to {span:g})"
    if run.data.is_image:
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
    return _flat_plot(out.reshape(d * steps, -1), title, path)


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
}


def plot_run(run, kind: str = "all", out: Path | None = None) -> list[Path]:
    """Write the figures of ``kind`` (or ``all``) into ``out`` (default: the run's ``figures/``), with the modules
    in eval mode and a random stream of their own."""
    if kind != "all" and kind not in PLOTTERS:
        raise ValueError(f"unknown figure kind {kind!r}; valid: all, {', '.join(PLOTTERS)}")
    out = Path(out) if out is not None else run.run_dir / "figures"
    kinds = list(PLOTTERS) if kind == "all" else [kind]
    paths = []
    with eval_mode(run.model, run.guide), isolated_rng(run.config.seed):
        for k in kinds:
            path = PLOTTERS[k](run, out / f"{k}.png")
            if path is not None:
                paths.append(path)
    return paths
