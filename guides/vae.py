"""Amortized Gaussian variational families for the VAE.

* ``diagonal``         q(z | x) = N(μ_φ(x), diag σ_φ(x)²)                 (Kingma & Welling, 2014)
* ``full-covariance``  q(z | x) = N(μ_φ(x), L_φ(x) L_φ(x)ᵀ), L lower-triangular with a softplus diagonal
"""

from __future__ import annotations

from typing import Dict, Optional

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from pyro_vaes.params import register
from pyro_vaes.guides.base import GuideBase
from pyro_vaes.models.vae import VAE
from pyro_vaes.nets import Encoder
from pyro_vaes.registry import GUIDES


@GUIDES.register("diagonal", models=("vae",), default_for=("vae",))
class DiagonalGaussianGuide(GuideBase):
    """q(z | x) = N(μ(x), diag σ(x)²), σ = softplus(·) + 1e-4."""

    def __init__(self, model: VAE, hidden: int = 400):
        super().__init__(model)
        self.latent_dim = model.latent_dim
        self.encoder = Encoder(model.arch, model.input_shape, hidden)
        self.loc = nn.Linear(hidden, model.latent_dim)
        self.raw_scale = nn.Linear(hidden, model.latent_dim)

    def encode(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        h = self.encoder(x)
        return {"loc": self.loc(h), "scale": F.softplus(self.raw_scale(h)) + 1e-4}

    def guide(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> None:
        register(self)
        with pyro.plate("data", x.shape[0]):
            q = self.encode(x)
            pyro.sample("z", dist.Normal(q["loc"], q["scale"]).to_event(1))


@GUIDES.register("full-covariance", models=("vae",))
class FullCovarianceGuide(GuideBase):
    """q(z | x) = N(μ(x), L(x) L(x)ᵀ) with L lower-triangular, diagonal softplus(·) + 1e-4."""

    def __init__(self, model: VAE, hidden: int = 400):
        super().__init__(model)
        d = self.latent_dim = model.latent_dim
        self.encoder = Encoder(model.arch, model.input_shape, hidden)
        self.loc = nn.Linear(hidden, d)
        self.raw_tril = nn.Linear(hidden, d * d)
        self.register_buffer("tril_mask", torch.tril(torch.ones(d, d), diagonal=-1), persistent=False)

    def encode(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        h = self.encoder(x)
        d = self.latent_dim
        raw = self.raw_tril(h).reshape(*h.shape[:-1], d, d)
        diag = F.softplus(torch.diagonal(raw, dim1=-2, dim2=-1)) + 1e-4
        scale_tril = raw * self.tril_mask + torch.diag_embed(diag)
        return {"loc": self.loc(h), "scale_tril": scale_tril}

    def guide(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> None:
        register(self)
        with pyro.plate("data", x.shape[0]):
            q = self.encode(x)
            pyro.sample("z", dist.MultivariateNormal(q["loc"], scale_tril=q["scale_tril"]))
