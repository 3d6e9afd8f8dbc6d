"""The ML-VAE guide (Bouchacourt et al., 2018) as the UG-VAE authors implement it (their ``MLVAE`` class).

``mlvae-product`` (default): q(s_i | x_i) = N(μ, diag exp(tanh(·))) per sample, and q(C | X) the product
of per-sample Gaussians (μ_i, log s_i² = tanh(·)) over the batch (Bouchacourt et al., eq. 7).

``mlvae-average``: the same per-sample evidence, **averaged** instead of multiplied: q(C | X) = N(μ, Λ⁻¹) with
Λ = (1/B) Σ_i Λ_i and μ = Λ⁻¹ (1/B) Σ_i Λ_i μ_i — the product raised to the power 1/B, i.e. the average of the
per-sample natural parameters. Its mean is the product's; its variance does not shrink as 1/B, so a group posterior
from many samples is not B times more confident than one sample's (the product's tendency to become overconfident
when the per-sample factors are not the exact likelihood terms). The paper is silent on this family; it is here to
compare inference choices.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_vaes.guides.base import Encoded, GuideBase
from pyro_vaes.models.mlvae import MLVAE
from pyro_vaes.nets.heads import product_of_gaussians
from pyro_vaes.nets.ugvae import PreEncoder
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES


@GUIDES.register("mlvae-product", models=("mlvae",), default_for=("mlvae",))
class MLVAEGuide(GuideBase):
    """q(S, C | X) = Π_i q(s_i | x_i) · Π_i N(C; μ_i, s_i²) (renormalised product)."""

    mean_field = True
    #: the per-sample natural parameters of q(C | X) are summed (``product``) or averaged (``average``)
    combine = "product"

    def __init__(self, model: MLVAE, hidden: int | None = None):
        super().__init__(model)
        hidden = model.hidden if hidden is None else int(hidden)
        self.latent_dim, self.c_dim = model.latent_dim, model.c_dim
        self.pre_encoder = PreEncoder(model.arch, model.input_shape, hidden)
        self.s_head = nn.Linear(hidden, 2 * self.latent_dim)
        self.c_head = nn.Linear(hidden, 2 * self.c_dim)

    def params(self, x: torch.Tensor):
        h = self.pre_encoder(x)
        s_loc, s_pre = self.s_head(h).split(self.latent_dim, -1)
        c_loc_i, c_pre = self.c_head(h).split(self.c_dim, -1)
        c_loc, c_scale = product_of_gaussians(c_loc_i, torch.tanh(c_pre))
        if self.combine == "average":  # Λ/B: the same mean, the scale sqrt(B) times larger
            c_scale = c_scale * math.sqrt(x.shape[0])
        return s_loc, torch.exp(0.5 * torch.tanh(s_pre)), c_loc, c_scale

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        s_loc, s_scale, c_loc, c_scale = self.params(x)
        pyro.sample("c", dist.Normal(c_loc, c_scale).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("s", dist.Normal(s_loc, s_scale).to_event(1))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        s_loc, s_scale, c_loc, c_scale = self.params(x)
        return {"s": {"loc": s_loc, "scale": s_scale}, "c": {"loc": c_loc, "scale": c_scale}}


@GUIDES.register("mlvae-average", models=("mlvae",))
class MLVAEAverageGuide(MLVAEGuide):
    """q(S, C | X) = Π_i q(s_i | x_i) · N(C; μ, Λ⁻¹), Λ = (1/B) Σ_i Λ_i, μ = Λ⁻¹ (1/B) Σ_i Λ_i μ_i (averaged evidence)."""

    combine = "average"
