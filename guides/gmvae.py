"""The GMVAE guide as the UG-VAE authors implement it (Peis et al., arXiv 2012.08234; their ``GMVAE`` class).

``gmvae-structured`` (default): q(z_i | x_i) q(w_i | x_i) q(d_i | z_i, w_i), both Gaussians with variance
exp(tanh(·)) on the shared pre-encoder features, q(d | z, w) an MLP on [z, w]; d enumerated in the guide,
so TraceEnum_ELBO gives Σ_k π_ik [...] exactly (the authors' Σπ·KL_z + KL_d terms, z and w sampled).

``gmvae-meanfield``: q(z_i | x_i) q(w_i | x_i) q(d_i | x_i) — the same Gaussians, but the cluster posterior read
from x's features alone instead of from the sampled (z, w); d still enumerated, so the bound is exact in d. The
family every factor of which is amortized from x (no conditional network), to compare with the structured one (as
UG-VAE's ``ugvae-meanfield``); its q(d | x) has local parameters of its own, which the inference-gap refinement
optimises with the Gaussians'.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_vaes.guides.base import Encoded, GuideBase
from pyro_vaes.models.gmvae import GMVAE
from pyro_vaes.nets import broadcast_cat
from pyro_vaes.nets.ugvae import PreEncoder
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES


@GUIDES.register("gmvae-structured", models=("gmvae",), default_for=("gmvae",))
class GMVAEGuide(GuideBase):
    """q(z | x) q(w | x) q(d | z, w)."""

    enumerated_sites = ("d",)

    def __init__(self, model: GMVAE, hidden: int | None = None):
        super().__init__(model)
        hidden = model.hidden if hidden is None else int(hidden)
        self.latent_dim, self.w_dim, self.K = model.latent_dim, model.w_dim, model.K
        self.pre_encoder = PreEncoder(model.arch, model.input_shape, hidden)
        self.z_head = nn.Linear(hidden, 2 * self.latent_dim)
        self.w_head = nn.Linear(hidden, 2 * self.w_dim)
        self.d_net = nn.Sequential(nn.Linear(self.latent_dim + self.w_dim, 256), nn.Tanh(), nn.Linear(256, self.K))

    @staticmethod
    def _gaussian(out: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        loc, pre = out.split(dim, dim=-1)
        return loc, torch.exp(0.5 * torch.tanh(pre))  # variance exp(tanh(·)) (authors' GMVAE)

    def local(self, x: torch.Tensor):
        h = self.pre_encoder(x)
        return self._gaussian(self.z_head(h), self.latent_dim), self._gaussian(self.w_head(h), self.w_dim)

    def d_logits(self, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.d_net(broadcast_cat([z, w])), -1)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        (z_loc, z_scale), (w_loc, w_scale) = self.local(x)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(z_loc, z_scale).to_event(1))
            w = pyro.sample("w", dist.Normal(w_loc, w_scale).to_event(1))
            pyro.sample("d", dist.Categorical(logits=self.d_logits(z, w)), infer={"enumerate": "parallel"})

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """q(z | x), q(w | x) and q(d | μ_z, μ_w) (``probs`` (B, K))."""
        (z_loc, z_scale), (w_loc, w_scale) = self.local(x)
        pi = self.d_logits(z_loc, w_loc).exp()
        return {"z": {"loc": z_loc, "scale": z_scale}, "w": {"loc": w_loc, "scale": w_scale}, "d": {"probs": pi}}


@GUIDES.register("gmvae-meanfield", models=("gmvae",))
class GMVAEMeanFieldGuide(GMVAEGuide):
    """q(z | x) q(w | x) q(d | x): the cluster posterior from x's features, not from the sampled (z, w)."""

    mean_field = True

    def __init__(self, model: GMVAE, hidden: int | None = None):
        super().__init__(model, hidden)
        hidden = model.hidden if hidden is None else int(hidden)
        del self.d_net
        self.d_head = nn.Sequential(nn.Linear(hidden, 256), nn.Tanh(), nn.Linear(256, self.K))

    def _all(self, x: torch.Tensor):
        h = self.pre_encoder(x)
        z, w = self._gaussian(self.z_head(h), self.latent_dim), self._gaussian(self.w_head(h), self.w_dim)
        return z, w, torch.log_softmax(self.d_head(h), -1)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        (z_loc, z_scale), (w_loc, w_scale), logits = self._all(x)
        with pyro.plate("data", x.shape[0]):  # w, d, z in the model's order (TraceMeanField_ELBO checks it)
            pyro.sample("w", dist.Normal(w_loc, w_scale).to_event(1))
            pyro.sample("d", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
            pyro.sample("z", dist.Normal(z_loc, z_scale).to_event(1))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """q(z | x), q(w | x) and q(d | x) (``probs`` (B, K))."""
        (z_loc, z_scale), (w_loc, w_scale), logits = self._all(x)
        return {
            "z": {"loc": z_loc, "scale": z_scale},
            "w": {"loc": w_loc, "scale": w_scale},
            "d": {"probs": logits.exp()},
        }
