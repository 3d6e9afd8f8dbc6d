"""Posterior heads shared by the guides: positive scales, lower-triangular covariance factors, and the
precision-weighted product of Gaussians.

These are functions of a network's raw output, not modules, so a guide keeps its own ``nn.Linear`` layers
(and their ``state_dict`` names) and calls them on what the layers return.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

#: added to every positive scale and Cholesky diagonal, so no posterior collapses to a point
JITTER = 1e-4


def positive_scale(raw: torch.Tensor) -> torch.Tensor:
    """softplus(raw) + 1e-4: a standard deviation from an unconstrained output."""
    return F.softplus(raw) + JITTER


def scale_tril(raw: torch.Tensor, dim: int) -> torch.Tensor:
    """A Cholesky factor L (..., d, d) from ``raw`` (..., d·d): the strictly lower triangle of ``raw`` as is,
    and softplus(diagonal) + 1e-4 on the diagonal, so L L^T is positive definite for any input."""
    raw = raw.reshape(*raw.shape[:-1], dim, dim)
    diag = positive_scale(torch.diagonal(raw, dim1=-2, dim2=-1))
    return torch.tril(raw, diagonal=-1) + torch.diag_embed(diag)


def covariance_from_raw(raw: torch.Tensor, dim: int) -> torch.Tensor:
    """S = L L^T + 1e-4·I with L = :func:`scale_tril` (the CHyVAE authors' full covariance)."""
    L = scale_tril(raw, dim)
    eye = torch.eye(dim, dtype=raw.dtype, device=raw.device)
    return L @ L.transpose(-1, -2) + JITTER * eye


def product_of_gaussians(loc: torch.Tensor, log_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision-weighted product of per-sample diagonal Gaussians over the data dim (-2).

    Λ = Σ_i Λ_i,  μ = Λ⁻¹ Σ_i Λ_i μ_i  (Bromiley, 2003), with Λ_i = exp(−log s_i²): UG-VAE's q(β | X, Z)
    (Peis et al., eq. 8) and ML-VAE's q(C | X) (Bouchacourt et al., eq. 7). Returns the mean and standard
    deviation, shaped (D,) for inputs (B, D), or (..., 1, D) for inputs (..., B, D) with extra leading
    (particle) dims, so a site drawn from them sits outside the data plate.
    """
    precision = torch.exp(-log_var)
    total = precision.sum(-2)
    mean = (precision * loc).sum(-2) / total
    scale = total.rsqrt()
    if mean.dim() > 1:
        mean, scale = mean.unsqueeze(-2), scale.unsqueeze(-2)
    return mean, scale


def inv_softplus(y: float) -> float:
    """x with softplus(x) = y (for initialising a bias so that a head starts at a given value)."""
    return y + math.log(-math.expm1(-y))
