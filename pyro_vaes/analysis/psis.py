"""Pareto-smoothed importance sampling's diagnostic k̂: is an importance-sampled estimate trustworthy?

An importance-sampled log p(x) (:mod:`pyro_vaes.analysis.evaluation`) is a mean of weights w_s = p(x, z_s) /
q(z_s | x). When the weights are heavy-tailed (a guide narrower than the posterior), their variance is infinite
and both the estimate and its delta-method standard error understate the truth, while the effective sample size
(Σ w)² / Σ w² can still look healthy. The tail's shape tells: Vehtari, Simpson, Gelman, Yao & Gabry (2024),
"Pareto smoothed importance sampling" (JMLR 25), fit a generalized Pareto distribution to the M = ⌈min(S / 5,
3 √S)⌉ largest of S weights (in excess of the next largest); its shape k̂ estimates the tail index: the weights
have finite variance only for k < 1/2, and the estimate is reliable for k̂ below min(1 − 1 / log₁₀ S, 0.7)
(their §3.2.3, :func:`khat_threshold`).

The fit is Zhang & Stephens's (2009) empirical-Bayes estimate with Vehtari et al.'s weakly informative prior
shrinking k̂ toward 1/2 (the estimator of the authors' ``loo`` package and ArviZ's ``psislw``), written here in
torch; ``tests/test_psis.py`` checks it against the known tail index of Pareto weights, against scipy's
maximum-likelihood fit on the same exceedances, and on light-tailed weights. With fewer than five tail weights
(S < 25) k̂ cannot be estimated and is NaN: the effective sample size is then the only check.
"""

from __future__ import annotations

import math

import torch


def tail_length(num_samples: int) -> int:
    """M = ⌈min(S / 5, 3 √S)⌉, the number of largest weights the Pareto fit reads (Vehtari et al., 2024, §3)."""
    return math.ceil(min(0.2 * num_samples, 3.0 * math.sqrt(num_samples)))


def khat_threshold(num_samples: int) -> float:
    """The largest k̂ at which S draws give a reliable estimate: min(1 − 1 / log₁₀ S, 0.7) (Vehtari et al., 2024)."""
    return min(1.0 - 1.0 / math.log10(num_samples), 0.7) if num_samples > 10 else 0.0


def gpd_fit(exceedances: torch.Tensor, prior_n: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(k̂, σ̂) of a generalized Pareto distribution fitted to positive, ascending ``exceedances`` (…, n): Zhang &
    Stephens's (2009) posterior-mean estimate of θ = −k/σ over a grid, then k̂ shrunk toward 1/2 with weight
    ``prior_n`` / (n + ``prior_n``) (Vehtari et al.'s prior). Batched over leading dimensions; float64 inside."""
    x = exceedances.double()
    n = x.shape[-1]
    m = 30 + int(math.sqrt(n))
    grid = 1.0 - torch.sqrt(m / (torch.arange(1, m + 1, dtype=x.dtype, device=x.device) - 0.5))  # (m,)
    quartile = x[..., int(n / 4 + 0.5) - 1 : int(n / 4 + 0.5)]  # the first quartile, as Zhang & Stephens
    theta = grid / (3.0 * quartile) + 1.0 / x[..., -1:]  # (…, m)
    k = torch.log1p(-theta.unsqueeze(-1) * x.unsqueeze(-2)).mean(-1)  # (…, m): k(θ) = mean log(1 − θ x)
    profile = n * (torch.log(-theta / k) - k - 1.0)  # the profile log-likelihood of θ
    weights = torch.softmax(profile, -1)
    theta_hat = (weights * theta).sum(-1, keepdim=True)
    k_hat = torch.log1p(-theta_hat * x).mean(-1)
    sigma = -k_hat / theta_hat.squeeze(-1)
    return (n * k_hat + prior_n * 0.5) / (n + prior_n), sigma


def pareto_khat(log_weights: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """k̂ of the importance weights exp(``log_weights``) along ``dim`` (one k̂ per other index): the shape of a
    generalized Pareto fit to the M largest weights' excess over the (M+1)-th largest. NaN where S < 25 (fewer
    than five tail weights) or the tail is flat (all its weights equal)."""
    lw = log_weights.movedim(dim, -1).double()
    s = lw.shape[-1]
    m = tail_length(s)
    if m <= 4:
        return torch.full(lw.shape[:-1], float("nan"), dtype=log_weights.dtype, device=log_weights.device)
    top = lw.topk(m + 1, dim=-1).values.flip(-1)  # ascending: the cutoff, then the M largest
    cutoff, tail = top[..., :1], top[..., 1:]
    shift = tail[..., -1:]  # the largest: exceedances exp(tail) − exp(cutoff) computed in a safe range
    exceedances = torch.exp(tail - shift) - torch.exp(cutoff - shift)
    flat = (exceedances[..., -1] <= 0) | (exceedances <= 0).all(-1)
    k, _ = gpd_fit(exceedances.clamp_min(torch.finfo(torch.float64).tiny))
    return torch.where(flat, torch.full_like(k, float("nan")), k).to(log_weights.dtype)
