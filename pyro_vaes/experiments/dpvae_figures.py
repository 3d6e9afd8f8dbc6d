"""dpVAE's figures (Bhalodia, Lee & Elhabian, 2020): the latent spaces of Fig. 3, the interpolations of Fig. 6 and
the leakage curves of Fig. 4, shared by ``dpvae-moons`` and ``dpvae-mnist`` (and the dpVAE tutorial)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from pyro_vaes.analysis.plots import image_grid, save_figure
from pyro_vaes.distributions.flows import generation_space
from pyro_vaes.experiments.common import colour
from pyro_vaes.plumbing.isolation import eval_mode, isolated_rng


@torch.no_grad()
def latent_views(run, n: int, n_mix: int, lp: int, seed: int) -> dict[str, torch.Tensor]:
    """Aggregate-posterior and prior draws, low- and high-posterior codes, in representation and generation space."""
    from pyro_vaes.metrics.generative import (
        code_prior,
        encode_split,
        high_posterior_samples,
        low_posterior_samples,
        sample_aggregate_posterior,
    )

    model = run.model
    with eval_mode(model, run.guide), isolated_rng(seed):
        params = encode_split(model, run.guide, run.data.train, n_mix, seed=seed)
        _, g, _ = generation_space(code_prior(model, 1))
        q = sample_aggregate_posterior(params, n)
        p = model.sample_prior(n)["z"]
        low = low_posterior_samples(model, params, lp, 10 * n)["z"]
        high = high_posterior_samples(model, params, lp, 10 * n)["z"]
        views = {"q": q, "p": p, "low": low, "high": high}
        out = {k: v.cpu() for k, v in views.items()}
        out.update({f"{k}0": g(v).cpu() for k, v in views.items()})
        out.update({f"x_{k}": model.decode({"z": v}).cpu() for k, v in (("p", p), ("low", low), ("high", high))})
    return out


def density_grid(run, views: dict[str, torch.Tensor], steps: int = 120):
    """log p(z) of the code's prior on a grid covering the drawn codes, and contour levels: the log-density at the
    prior draws' 1, 10, 50 and 90 % quantiles (the regions holding 99, 90, 50, 10 % of the prior's mass)."""
    from pyro_vaes.metrics.generative import code_prior

    pts = torch.cat([views["q"], views["p"]])
    lo, hi = pts.quantile(0.005, 0).tolist(), pts.quantile(0.995, 0).tolist()
    gx = torch.linspace(lo[0] - 0.5, hi[0] + 0.5, steps)
    gy = torch.linspace(lo[1] - 0.5, hi[1] + 0.5, steps)
    xx, yy = torch.meshgrid(gx, gy, indexing="ij")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
    with torch.no_grad(), eval_mode(run.model):
        lp = code_prior(run.model, len(grid)).log_prob(grid.to(run.model.device)).cpu()
        at_draws = code_prior(run.model, len(views["p"])).log_prob(views["p"].to(run.model.device)).cpu()
    levels = sorted(set(at_draws.quantile(torch.tensor([0.01, 0.1, 0.5, 0.9])).tolist()))
    return xx.numpy(), yy.numpy(), lp.reshape(steps, steps).numpy(), levels


def latent_figure(
    rows: list[dict[str, Any]],
    path: Path,
    title: str,
    data: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> Path:
    """One row per (name, run, views): (a) data space when ``data`` is 2-D flat, (b) representation space with the
    prior's density contours, (c) generation space."""
    cols = 3 if data is not None else 2
    fig = Figure(figsize=(4.2 * cols, 3.8 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, row in enumerate(rows):
        v = row["views"]
        panels = []
        if data is not None:
            ax = axes[r][0]
            ax.scatter(data[:, 0], data[:, 1], s=3, c="0.75", label="data")
            ax.scatter(v["x_p"][:, 0], v["x_p"][:, 1], s=3, c="tab:blue", alpha=0.5, label="decoded prior samples")
            ax.scatter(v["x_low"][:, 0], v["x_low"][:, 1], s=8, c="tab:red", label="low-posterior samples")
            ax.scatter(v["x_high"][:, 0], v["x_high"][:, 1], s=8, c="tab:green", label="high-posterior samples")
            ax.set_title(f"{row['name']}: (a) data space", fontsize=9)
            ax.set_xlabel("x₁", fontsize=8)
            ax.set_ylabel("x₂", fontsize=8)
            panels.append(ax)
        for c, (suffix, space) in enumerate(
            (("", "(b) representation space z"), ("0", "(c) generation space z₀ = g(z)"))
        ):
            ax = axes[r][c + (1 if data is not None else 0)]
            q = v["q" + suffix]
            if labels is not None:
                ax.scatter(
                    q[:, 0],
                    q[:, 1],
                    s=2,
                    c=labels[: len(q)] if len(labels) >= len(q) else "0.6",
                    cmap="tab10",
                    alpha=0.4,
                )
            else:
                ax.scatter(q[:, 0], q[:, 1], s=2, c="0.6", alpha=0.4, label="aggregate posterior q(z)")
            p = v["p" + suffix]
            ax.scatter(p[:, 0], p[:, 1], s=2, c="tab:blue", alpha=0.25, label="prior draws")
            if suffix == "" and "grid" in row:
                xx, yy, lp, levels = row["grid"]
                ax.contour(xx, yy, lp, levels=levels, colors="k", linewidths=0.6, alpha=0.7)
            ax.scatter(v["low" + suffix][:, 0], v["low" + suffix][:, 1], s=8, c="tab:red", label="low-posterior")
            ax.scatter(v["high" + suffix][:, 0], v["high" + suffix][:, 1], s=8, c="tab:green", label="high-posterior")
            ax.set_title(f"{row['name']}: {space}", fontsize=9)
            name = "z₀" if suffix else "z"
            ax.set_xlabel(f"{name}, dimension 1", fontsize=8)
            ax.set_ylabel(f"{name}, dimension 2", fontsize=8)
            panels.append(ax)
        if r == 0:
            for ax in panels:
                ax.legend(fontsize=6, markerscale=2, loc="best")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


@torch.no_grad()
def interpolation_figure(runs: dict[str, Any], x: torch.Tensor, path: Path, title: str, steps: int = 10) -> Path:
    """Rows: the normal-prior run linear in z; the flow run linear in z₀ (g⁻¹ of a line); the flow run linear in z."""
    from pyro_vaes.metrics.generative import code_prior

    t = torch.linspace(0, 1, steps).unsqueeze(1)
    images, names = [], []
    for prior, spaces in (("normal", ("z",)), ("flow", ("z0", "z"))):
        run = runs[prior]
        with eval_mode(run.model, run.guide):
            ends = run.guide.encode(x.to(run.model.device))["z"]["loc"]
            _, g, g_inv = generation_space(code_prior(run.model, 2))
            for space in spaces:
                if space == "z0":
                    e = g(ends)
                    path_z = g_inv(e[0] + t * (e[1] - e[0]))
                else:
                    path_z = ends[0] + t * (ends[1] - ends[0])
                images.append(run.model.decode({"z": path_z}).cpu())
                names.append(f"{prior}: linear in {space}")
    return image_grid(torch.cat(images), steps, title, path, row_labels=names)


def leakage_figure(rows: list[dict[str, Any]], path: Path, names: dict[str, tuple[str, str]]) -> Path:
    """The leakage score against the threshold τ, one panel per regulariser, one curve per prior (the mean over
    seeds); ``names``: each regulariser's (N(0, I) prior, flow prior) model names."""
    regs = list(dict.fromkeys(r["regularizer"] for r in rows))
    cols = min(3, len(regs))
    nrow = -(-len(regs) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.3 * nrow), layout="constrained")
    axes = fig.subplots(nrow, cols, squeeze=False)
    for i, reg in enumerate(regs):
        ax = axes[i // cols][i % cols]
        for prior in ("normal", "flow"):
            rs = [r for r in rows if r["regularizer"] == reg and r["prior"] == prior]
            if not rs:
                continue
            tau = rs[0]["leakage"]["thresholds"]
            score = np.mean([r["leakage"]["score"] for r in rs], 0)
            ax.plot(tau, score, "o-", color=colour(prior), label=f"{names[reg][prior == 'flow']}")
        ax.set_xlabel("threshold τ on log N(g(z); 0, I)")
        ax.set_ylabel("leakage score E_q[ℓ_τ]")
        ax.set_title(names[reg][0], fontsize=9)
        ax.legend(fontsize=7)
    for j in range(len(regs), nrow * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle(
        "Leakage score vs threshold (paper Fig. 4): τ_k has prior tail probability 10⁻ᵏ, k = 1 (right) … 6", fontsize=9
    )
    return save_figure(fig, path)
