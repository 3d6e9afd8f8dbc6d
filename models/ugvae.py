"""UG-VAE: Unsupervised Global VAE (Peis, Olmos & Artés-Rodríguez, "Unsupervised Learning of Global
Factors in Deep Generative Models", arXiv 2012.08234).

Generative model for one batch X = {x_1..x_B} (paper §3.1, eq. (1)-(5))::

    β   ~ N(0, I)                                   once per batch, outside the data plate   (eq. 5)
    d_i ~ Cat(1/K, ..., 1/K)                        uniform, marginalised by enumeration     (eq. 4)
    z_i ~ N(μ_{d_i}(β), diag σ²_{d_i}(β))           K networks fed with β, σ² = exp(tanh(·)) (eq. 3)
    x_i ~ p(x | decoder([z_i, β]))                  fixed-variance Gaussian (var 0.2) or Bernoulli (eq. 2)

No subsample scaling: every batch is its own group, as in the authors' code (papers.md §1.3).

This module also holds the two architectures of the authors' code (papers.md §1.4) that the UG-VAE,
GMVAE and ML-VAE modules share: ``k_vae`` (MLP, 28x28 or flat data) and ``beta_vae`` (conv, 64x64).
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import pyro
import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex
from pyro_vaes.params import register
from pyro_vaes.models.base import ModelBase
from torch import nn

from pyro_vaes import likelihoods
from pyro_vaes.nets import broadcast_cat
from pyro_vaes.registry import MODELS

UGVAE_ARCHS = ("auto", "k_vae", "beta_vae")
#: the authors' train.py default observation variance var_x = 0.2
DEFAULT_OBS_SCALE = math.sqrt(0.2)


def resolve_ugvae_arch(arch: str, shape: Sequence[int]) -> str:
    """``auto`` -> ``beta_vae`` for Cx64x64 images, ``k_vae`` otherwise; refuses a net that cannot take ``shape``."""
    shape = tuple(shape)
    if arch not in UGVAE_ARCHS:
        raise ValueError(f"unknown arch {arch!r} for UG-VAE family models; valid: {', '.join(UGVAE_ARCHS)}")
    if arch == "auto":
        return "beta_vae" if len(shape) == 3 and shape[1:] == (64, 64) else "k_vae"
    if arch == "beta_vae" and (len(shape) != 3 or shape[1:] != (64, 64)):
        raise ValueError(f"arch beta_vae expects observations of shape (C, 64, 64), got {shape}")
    return arch


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(int(s) for s in shape))


class PreEncoder(nn.Module):
    """The authors' shared pre-encoder h(x): x (..., *shape) -> (..., hidden).

    ``k_vae``: Linear(D, hidden)-ReLU. ``beta_vae``: Conv(c,32,4,2,1)-BN-ReLU, Conv(32,32,4,2,1)-BN-ReLU,
    Conv(32,64,4,2,1)-BN-ReLU, Conv(64,64,4,2,1)-BN-ReLU, Conv(64,hidden,4,1)-BN-ReLU (papers.md §1.4).
    Inputs are flattened to 2-D / 4-D around the net, so BatchNorm always sees a plain batch.
    """

    def __init__(self, arch: str, shape: Sequence[int], hidden: int = 256):
        super().__init__()
        self.shape = tuple(shape)
        self.arch = resolve_ugvae_arch(arch, shape)
        self.out_features = int(hidden)
        if self.arch == "k_vae":
            self.net = nn.Sequential(nn.Linear(_numel(shape), hidden), nn.ReLU())
        else:
            c = self.shape[0]
            self.net = nn.Sequential(
                nn.Conv2d(c, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
                nn.Conv2d(32, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
                nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
                nn.Conv2d(64, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
                nn.Conv2d(64, hidden, 4, 1), nn.BatchNorm2d(hidden), nn.ReLU(), nn.Flatten(),
            )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[: x.dim() - len(self.shape)]
        if self.arch == "k_vae":
            return self.net(x.reshape(*batch, -1))
        return self.net(x.reshape(-1, *self.shape)).reshape(*batch, self.out_features)


class ImageDecoder(nn.Module):
    """The authors' decoder: (..., in_features) -> (..., *shape) (pre-sigmoid).

    ``k_vae``: Linear(in, hidden)-ReLU-Linear(hidden, D). ``beta_vae``: Linear(in, 256), view 256x1x1, ReLU,
    ConvT(256,64,4), ReLU, ConvT(64,64,4,2,1), ReLU, ConvT(64,32,4,2,1), ReLU, ConvT(32,32,4,2,1), ReLU,
    ConvT(32,c,4,2,1). The authors end in a Sigmoid; the models apply it (Gaussian mean) or read the output
    as logits (Bernoulli).
    """

    def __init__(self, arch: str, in_features: int, shape: Sequence[int], hidden: int = 256):
        super().__init__()
        self.shape = tuple(shape)
        self.arch = resolve_ugvae_arch(arch, shape)
        if self.arch == "k_vae":
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, _numel(shape)))
        else:
            c = self.shape[0]
            self.net = nn.Sequential(
                nn.Linear(in_features, 256), nn.Unflatten(-1, (256, 1, 1)), nn.ReLU(),
                nn.ConvTranspose2d(256, 64, 4), nn.ReLU(),
                nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(32, c, 4, 2, 1),
            )  # fmt: skip

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        batch = u.shape[:-1]
        return self.net(u.reshape(-1, u.shape[-1])).reshape(*batch, *self.shape)


class ComponentNets(nn.Module):
    """K separate networks ``Linear(in, hidden)-ReLU-Linear(hidden, 2·out)``, evaluated together.

    ``forward(u)`` with u (..., in) returns the K Gaussians' means and standard deviations, each
    (..., K, out), with variance exp(tanh(·)) as the authors' p(z | d, β) (paper eq. 3). The K networks
    have separate weights (stored as (K, in, hidden) and (K, hidden, 2·out) tensors, initialised as K
    ``nn.Linear`` layers would be); one einsum per layer replaces a Python loop over K.
    """

    def __init__(self, in_features: int, out_features: int, num_components: int, hidden: int = 256):
        super().__init__()
        K = self.num_components = int(num_components)
        self.out_features = int(out_features)
        self.w1 = nn.Parameter(torch.empty(K, in_features, hidden))
        self.b1 = nn.Parameter(torch.empty(K, hidden))
        self.w2 = nn.Parameter(torch.empty(K, hidden, 2 * out_features))
        self.b2 = nn.Parameter(torch.empty(K, 2 * out_features))
        for w, b, fan_in in ((self.w1, self.b1, in_features), (self.w2, self.b2, hidden)):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default init, per component
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def forward(self, u: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(torch.einsum("...i,kih->...kh", u, self.w1) + self.b1)
        out = torch.einsum("...kh,kho->...ko", h, self.w2) + self.b2
        loc, pre = out.split(self.out_features, dim=-1)
        return loc, torch.exp(0.5 * torch.tanh(pre))  # σ = sqrt(exp(tanh(·)))


def global_to_plate(g: torch.Tensor) -> torch.Tensor:
    """A batch-level latent (..., D) made broadcastable against the data plate at dim -1.

    Drawn outside every plate it has shape (D,) -> (1, D); under a particles plate at dim -2 it already
    has shape (S, 1, D) and is returned as is.
    """
    return g.unsqueeze(0) if g.dim() == 1 else g


class UGVAEBase(ModelBase):
    """Shared constructor checks and the likelihood for the UG-VAE family."""

    def _setup_likelihood(self, likelihood: str, obs_scale: Optional[float]) -> None:
        if likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(f"likelihood must be 'gaussian' (the authors') or 'bernoulli', got {likelihood!r}")
        obs_scale = DEFAULT_OBS_SCALE if obs_scale is None else float(obs_scale)
        likelihoods.check_likelihood(likelihood, obs_scale)
        self.likelihood, self.obs_scale = likelihood, obs_scale

    def obs_params(self, raw: torch.Tensor) -> torch.Tensor:
        """Decoder output -> likelihood parameters: sigmoid mean (Gaussian, as the authors) or logits."""
        return torch.sigmoid(raw) if self.likelihood == "gaussian" else raw

    def observation(self, raw: torch.Tensor) -> dist.Distribution:
        return likelihoods.observation(self.likelihood, self.obs_params(raw), self.input_shape, self.obs_scale)

    def mean_image(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(raw)


def _positive_int(name: str, v: int) -> int:
    if int(v) < 1:
        raise ValueError(f"{name} must be >= 1, got {v}")
    return int(v)


@MODELS.register("ugvae")
class UGVAE(UGVAEBase):
    """UG-VAE: global β per batch, mixture-of-Gaussians local space whose K components are networks of β.

    :param input_shape: shape of one observation, e.g. ``(1, 28, 28)`` or ``(3, 64, 64)``.
    :param z_dim: local latent dimension (authors: 20; MNIST run 10).
    :param beta_dim: global latent dimension (authors: 20; CelebA attributes 50).
    :param K: number of mixture components / clusters (authors: 20; MNIST run 10).
    :param likelihood: ``gaussian`` (fixed variance, the authors') or ``bernoulli``.
    :param obs_scale: Gaussian standard deviation (default sqrt(0.2): the authors' var_x = 0.2).
    :param arch: ``k_vae`` (MLP), ``beta_vae`` (conv, 64x64) or ``auto``.
    :param hidden: hidden width of the pre-encoder / decoder / component networks (authors: 256).
    """

    latent_sites = ("beta", "d", "z")
    global_sites = ("beta",)
    max_plate_nesting = 1

    def __init__(
        self,
        input_shape: Sequence[int],
        z_dim: int = 20,
        beta_dim: int = 20,
        K: int = 20,
        likelihood: str = "gaussian",
        obs_scale: Optional[float] = None,
        arch: str = "auto",
        hidden: int = 256,
    ):
        super().__init__(input_shape)
        self.z_dim = _positive_int("z_dim", z_dim)
        self.beta_dim = _positive_int("beta_dim", beta_dim)
        self.K = _positive_int("K", K)
        self._setup_likelihood(likelihood, obs_scale)
        self.arch = resolve_ugvae_arch(arch, self.input_shape)
        self.hidden = int(hidden)
        self.components = ComponentNets(self.beta_dim, self.z_dim, self.K, self.hidden)
        self.decoder = ImageDecoder(self.arch, self.z_dim + self.beta_dim, self.input_shape, self.hidden)

    # -- the generative story ------------------------------------------------------------------------------
    def prior_z(self, beta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """μ_k(β), σ_k(β) for k = 1..K, each (..., K, z_dim) (paper eq. 3)."""
        return self.components(beta)

    def model(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> None:
        """p(X, Z, d, β) = p(β) Π_i p(d_i) p(z_i | d_i, β) p(x_i | z_i, β) (paper eq. 1)."""
        self.check_input(x)
        register(self)
        B = x.shape[0]
        beta = pyro.sample("beta", dist.Normal(x.new_zeros(self.beta_dim), 1.0).to_event(1))
        beta_b = global_to_plate(beta)
        loc, scale = self.prior_z(beta_b)  # (..., 1, K, z_dim)
        with pyro.plate("data", B):
            d = pyro.sample(
                "d", dist.Categorical(logits=x.new_zeros(self.K)), infer={"enumerate": "parallel"}
            )
            # d is (B,) when sampled, (K, 1) under parallel enumeration: Vindex broadcasts either.
            z = pyro.sample("z", dist.Normal(Vindex(loc)[..., d, :], Vindex(scale)[..., d, :]).to_event(1))
            raw = self.decoder(broadcast_cat([z, beta_b]))
            pyro.sample("x", self.observation(raw), obs=x)

    # -- what users and metrics need -------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, beta: Optional[torch.Tensor] = None) -> torch.Tensor:
        """E[x | z, β] for z (..., z_dim) and β (beta_dim,) or broadcastable (..., beta_dim); β = 0 if omitted."""
        if beta is None:
            beta = z.new_zeros(self.beta_dim)
        return self.mean_image(self.decoder(broadcast_cat([z, beta])))

    def sample_prior(self, n: int, beta: Optional[torch.Tensor] = None, d: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """One β (shared) and ``n`` (d_i, z_i) from the prior; ``beta`` or ``d`` may be fixed."""
        dev = self.device
        if beta is None:
            beta = torch.randn(self.beta_dim, device=dev)
        if d is None:
            d = torch.randint(self.K, (n,), device=dev)
        loc, scale = self.prior_z(beta)
        z = loc[d] + scale[d] * torch.randn(n, self.z_dim, device=dev)
        return {"beta": beta, "d": d, "z": z}

    def sample(self, n: int) -> torch.Tensor:
        lat = self.sample_prior(n)
        return self.decode(lat["z"], lat["beta"])
