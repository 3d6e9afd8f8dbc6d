"""Amortized Gaussian variational families for the VAE.

* ``diagonal``         q(z | x) = N(μ_φ(x), diag σ_φ(x)²)                 (Kingma & Welling, 2014)
* ``full-covariance``  q(z | x) = N(μ_φ(x), L_φ(x) L_φ(x)ᵀ), L lower-triangular with a softplus diagonal
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_vaes.guides.base import AmortizedGaussianGuide, Encoded, GuideBase
from pyro_vaes.models.base import positive_int
from pyro_vaes.models.vae import VAE
from pyro_vaes.nets import Encoder
from pyro_vaes.nets.heads import scale_tril
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES


@GUIDES.register("diagonal", models=("vae",), default_for=("vae",))
class DiagonalGaussianGuide(AmortizedGaussianGuide):
    """q(z | x) = N(μ(x), diag σ(x)²), σ = softplus(·) + 1e-4."""

    mean_field = True
    example_args = {"hidden": 16}

    def __init__(self, model: VAE, hidden: int = 400):
        super().__init__(model, hidden)
        self.latent_dim = model.latent_dim

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        return {"z": self.gaussian(self.encoder(x))}

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        with pyro.plate("data", x.shape[0]):
            q = self.encode(x)["z"]
            pyro.sample("z", dist.Normal(q["loc"], q["scale"]).to_event(1))


@GUIDES.register("full-covariance", models=("vae",))
class FullCovarianceGuide(GuideBase):
    """q(z | x) = N(μ(x), L(x) L(x)ᵀ) with L lower-triangular, diagonal softplus(·) + 1e-4."""

    mean_field = True
    example_args = {"hidden": 16}

    def __init__(self, model: VAE, hidden: int = 400):
        super().__init__(model)
        hidden = positive_int("hidden", hidden)
        d = self.latent_dim = model.latent_dim
        self.encoder = Encoder(model.arch, model.input_shape, hidden)
        self.loc = nn.Linear(hidden, d)
        self.raw_tril = nn.Linear(hidden, d * d)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        h = self.encoder(x)
        return {"z": {"loc": self.loc(h), "scale_tril": scale_tril(self.raw_tril(h), self.latent_dim)}}

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        with pyro.plate("data", x.shape[0]):
            q = self.encode(x)["z"]
            pyro.sample("z", dist.MultivariateNormal(q["loc"], scale_tril=q["scale_tril"]))
