"""Figures of a fitted run, as PNG files a person can read: reconstructions, prior samples, latent traversals.

Image data is tiled with :func:`torchvision.utils.make_grid` and drawn with matplotlib (titles, row labels);
2-D flat data is drawn as scatter plots, other flat data as heat maps (one row per observation).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from pyro_vaes.evaluation import decode_latents  # noqa: E402

def _to_image(x: torch.Tensor, nrow: int) -> torch.Tensor:
    grid = make_grid(x.clamp(0, 1).cpu(), nrow=nrow, padding=2, pad_value=0.5)
    return grid.permute(1, 2, 0)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def image_grid(
    x: torch.Tensor,
    nrow: int,
    title: str,
    path: Path,
    row_labels: Optional[Sequence[str]] = None,
    xlabel: Optional[str] = None,
    col_labels: Optional[Sequence[str]] = None,
    ylabel: Optional[str] = None,
) -> Path:
    """Tile images ``x`` (N, C, H, W) in [0, 1], ``nrow`` per row, with a title and optional row and column
    labels (one per row / column of the grid) and axis labels."""
    img = _to_image(x, nrow)
    rows = -(-x.shape[0] // nrow)
    fig, ax = plt.subplots(figsize=(max(4, nrow * 0.6 + 1), max(2, rows * 0.6 + 0.8)))
    if img.shape[-1] == 1:
        ax.imshow(img.squeeze(-1), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")
    ax.set_title(title if "\n" in title else textwrap.fill(title, 75), fontsize=10)
    if ylabel:
        ax.set_ylabel(ylabel)
    h = x.shape[-2] + 2
    if row_labels:
        ax.set_yticks([2 + h * (i + 0.5) for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels, fontsize=7)
    else:
        ax.set_yticks([])
    w = x.shape[-1] + 2
    if col_labels:
        ax.set_xticks([2 + w * (i + 0.5) for i in range(len(col_labels))])
        ax.set_xticklabels(col_labels, fontsize=7)
    else:
        ax.set_xticks([])
    if xlabel:
        ax.set_xlabel(xlabel)
    return _save(fig, path)


def _flat_plot(x: torch.Tensor, title: str, path: Path, other: Optional[torch.Tensor] = None, labels=("data", "model")):
    fig, ax = plt.subplots(figsize=(5, 4))
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
    return _save(fig, path)


@torch.no_grad()
def reconstructions(run, path: Path, n: int = 16) -> Path:
    x, _ = run.data.test.batch(torch.arange(min(n, len(run.data.test))))
    x = x.to(run.parts.device)
    recon = decode_latents(run.model, run.guide.encode(x)).cpu()
    x = x.cpu()
    title = f"{run.config.model} on {run.config.data}: test data (top) and reconstructions from the posterior mean"
    if run.data.is_image:
        both = torch.cat([x, recon], 0)
        return image_grid(both, len(x), title, path, row_labels=["data", "reconstruction"])
    return _flat_plot(x, title, path, recon, labels=("data", "reconstruction"))


@torch.no_grad()
def samples(run, path: Path, n: int = 64) -> Path:
    x = run.sample(n)
    title = f"{run.config.model} on {run.config.data}: {n} samples (decoder means of prior draws)"
    if run.data.is_image:
        return image_grid(x, 8, title, path)
    ref, _ = run.data.test.batch(torch.arange(min(len(run.data.test), 500)))
    return _flat_plot(ref, title, path, run.sample(min(len(ref), 500)), labels=("test data", "samples"))


@torch.no_grad()
def traversals(run, path: Path, steps: int = 9, span: float = 3.0, max_dims: int = 20) -> Path:
    """One row per latent dimension: that dimension swept over [-span, span] around the posterior mean of a
    test image, the others (and a batch-level latent, at its posterior mean for the first test batch) fixed."""
    x, _ = run.data.test.batch(torch.arange(min(64, len(run.data.test))))  # a batch, for batch-level latents
    encoded = run.guide.encode(x.to(run.parts.device))
    z0 = encoded["loc"][0]
    d = min(z0.shape[-1], max_dims)
    values = torch.linspace(-span, span, steps, device=z0.device)
    z = z0.repeat(d, steps, 1)
    for i in range(d):
        z[i, :, i] = values
    out = decode_latents(run.model, encoded, z.reshape(d * steps, -1)).cpu()
    title = f"{run.config.model}: latent traversals (row = dimension, z_d from {-span:g} to {span:g})"
    if run.data.is_image:
        return image_grid(out, steps, title, path, row_labels=[f"z{i}" for i in range(d)], xlabel="value of z_d",
                          col_labels=[f"{v:.2g}" for v in values.tolist()])  # fmt: skip
    return _flat_plot(out.reshape(d * steps, -1), title, path)


PLOTTERS = {"reconstructions": reconstructions, "samples": samples, "traversals": traversals}


def plot_run(run, kind: str = "all", out: Optional[Path] = None) -> List[Path]:
    """Write the figures of ``kind`` (or ``all``) into ``out`` (default: the run's ``figures/``)."""
    if kind != "all" and kind not in PLOTTERS:
        raise ValueError(f"unknown figure kind {kind!r}; valid: all, {', '.join(PLOTTERS)}")
    out = Path(out) if out is not None else run.run_dir / "figures"
    kinds = list(PLOTTERS) if kind == "all" else [kind]
    paths = []
    was_training = run.model.training
    run.model.eval(), run.guide.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.config.seed)
        for k in kinds:
            paths.append(PLOTTERS[k](run, out / f"{k}.png"))
    run.model.train(was_training), run.guide.train(was_training)
    return paths
