"""UG-VAE's image grids (Peis et al., arXiv 2012.08234): the global/local sampling grid per cluster (paper Fig. 3,
the authors' ``interpolation.sampling``), the same grid for ML-VAE, and the interpolation between two batches
(paper Fig. 5, their ``interpolation.py``), each as a tensor and as the labelled figure the experiments write."""

from __future__ import annotations

from pathlib import Path

import torch

from pyro_vaes.experiments.common import image_grid_figure


@torch.no_grad()
def ugvae_sampling_grid(
    model, k: int, rows: int = 7, cols: int = 7, beta_span: float = 1.0, z_span: float = 3.0
) -> torch.Tensor:
    """Paper Fig. 3 / ``interpolation.sampling``: fix d = k; rows sweep β = t·1 for t from +beta_span to
    −beta_span (the diagonal), columns sweep z = μ_k(β) + s·1 for s in [−z_span, z_span]. (rows, cols, C, H, W)."""
    ts = torch.linspace(beta_span, -beta_span, rows)
    ss = torch.linspace(-z_span, z_span, cols)
    out = []
    for t in ts:
        beta = torch.full((model.beta_dim,), float(t))
        loc, _ = model.prior_z(beta)
        z = loc[k] + ss[:, None] * torch.ones(model.latent_dim)
        out.append(model.decode({"z": z, "beta": beta}))
    return torch.stack(out)


@torch.no_grad()
def mlvae_sampling_grid(model, rows: int = 7, cols: int = 7, c_span: float = 1.0, s_span: float = 3.0) -> torch.Tensor:
    """The same grid for ML-VAE: rows sweep C = t·1, columns sweep s = u·1 (its prior is N(0, I), no clusters)."""
    out = []
    for t in torch.linspace(c_span, -c_span, rows):
        c = torch.full((model.c_dim,), float(t))
        s = torch.linspace(-s_span, s_span, cols)[:, None] * torch.ones(model.latent_dim)
        out.append(model.decode({"s": s, "c": c}))
    return torch.stack(out)


@torch.no_grad()
def interpolation_grid(model, guide, xa: torch.Tensor, xb: torch.Tensor, steps: int = 7) -> torch.Tensor:
    """Paper Fig. 5 / ``interpolation.py``: z from the first image of batch A and of batch B, μ_β of each batch;
    rows interpolate β (A → B), columns interpolate z (A → B). (steps, steps, C, H, W)."""
    ea, eb = guide.encode(xa), guide.encode(xb)
    za, zb, ba, bb = ea["z"]["loc"][0], eb["z"]["loc"][0], ea["beta"]["loc"], eb["beta"]["loc"]
    ws = torch.linspace(0, 1, steps)
    rows = []
    for wb in ws:
        beta = (1 - wb) * ba + wb * bb
        z = (1 - ws[:, None]) * za + ws[:, None] * zb
        rows.append(model.decode({"z": z, "beta": beta}))
    return torch.stack(rows)


def _fmt(values: torch.Tensor) -> list[str]:
    return [f"{float(v):+.1f}" if abs(float(v)) > 1e-6 else "0" for v in values]


#: the sampling grids' row (global, t from +1 to −1) and column (local, s from −3 to +3) labels
_T, _S = _fmt(torch.linspace(1.0, -1.0, 7)), _fmt(torch.linspace(-3.0, 3.0, 7))


def ugvae_sampling_figure(model, k: int, path: Path) -> Path:
    """``path``: UG-VAE's sampling grid of cluster ``k``, labelled."""
    return image_grid_figure(
        ugvae_sampling_grid(model, k),
        path,
        f"UG-VAE sampling, cluster d={k}\nrow t sets β = t·1, column s sets z = μ_k(β) + s·1",
        "local z: s (offset from the cluster mean μ_k(β))",
        "global β: t (along the diagonal)",
        _S,
        _T,
    )


def mlvae_sampling_figure(model, path: Path) -> Path:
    """``path``: ML-VAE's sampling grid, labelled."""
    return image_grid_figure(
        mlvae_sampling_grid(model),
        path,
        "ML-VAE sampling\nrow t sets C = t·1, column u sets s = u·1",
        "local s: u",
        "global C: t (along the diagonal)",
        _S,
        _T,
    )


def interpolation_figure(model, guide, xa: torch.Tensor, xb: torch.Tensor, path: Path) -> Path:
    """``path``: the interpolation grid from a CelebA batch A to a Yale B batch B, labelled with the weights."""
    w = [f"{float(v):.2f}" for v in torch.linspace(0.0, 1.0, 7)]
    return image_grid_figure(
        interpolation_grid(model, guide, xa, xb),
        path,
        "UG-VAE interpolation\nCelebA batch A → Yale B batch B",
        "local z: weight of image B's z",
        "global β: weight of batch B's μ_β",
        w,
        w,
    )
