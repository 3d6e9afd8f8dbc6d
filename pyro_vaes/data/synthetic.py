"""Small synthetic datasets generated in memory (no files, no download)."""

from __future__ import annotations

import torch

from pyro_vaes.data.base import ArraySplit, VAEData
from pyro_vaes.registry import DATASETS


@DATASETS.register("linear-gaussian", kind="synthetic")
def linear_gaussian(
    root: str | None = None,
    seed: int = 0,
    n_train: int = 2000,
    n_test: int = 500,
    dim: int = 8,
    latent_dim: int = 2,
    noise: float = 0.5,
) -> VAEData:
    """Flat data x = W z + b + noise with z ~ N(0, I): a VAE with a linear decoder has an exact log p(x).

    The true parameters are kept in ``info`` (``W``, ``b``, ``noise``) so tests can compare against
    log N(x; b, W Wᵀ + noise² I).
    """
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(dim, latent_dim, generator=g)
    b = torch.randn(dim, generator=g) * 0.5
    n = n_train + n_test
    z = torch.randn(n, latent_dim, generator=g)
    x = z @ W.T + b + noise * torch.randn(n, dim, generator=g)
    return VAEData(
        "linear-gaussian",
        ArraySplit(x[:n_train]),
        ArraySplit(x[n_train:]),
        info={"W": W, "b": b, "noise": noise},
    )
