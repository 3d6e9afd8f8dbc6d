"""UG-VAE: Unsupervised Global VAE (Peis, Olmos & Artés-Rodríguez, "Unsupervised Learning of Global
Factors in Deep Generative Models", arXiv 2012.08234).

Generative model for one batch X = {x_1..x_B} (paper §3.1, eq. (1)-(5))::

    β   ~ N(0, I)                                   once per batch, outside the data plate   (eq. 5)
    d_i ~ Cat(1/K, ..., 1/K)                        uniform, marginalised by enumeration     (eq. 4)
    z_i ~ N(μ_{d_i}(β), diag σ²_{d_i}(β))           K networks fed with β, σ² = exp(tanh(·)) (eq. 3)
    x_i ~ p(x | decoder([z_i, β]))                  fixed-variance Gaussian (var 0.2) or Bernoulli (eq. 2)

No subsample scaling: every batch is its own group, as in the authors' code (``UGVAE.loss_function``).
The networks are the authors' (:mod:`pyro_vaes.nets.ugvae`): ``k_vae`` (MLP) and ``beta_vae`` (conv, 64x64).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex

from pyro_vaes.distributions import likelihoods
from pyro_vaes.models.base import ModelBase, global_to_plate, positive_int
from pyro_vaes.nets import broadcast_cat
from pyro_vaes.nets.ugvae import ComponentNets, ImageDecoder, resolve_ugvae_arch
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import MODELS

#: the authors' train.py default observation variance var_x = 0.2 (UG-VAE)
DEFAULT_OBS_SCALE = math.sqrt(0.2)
#: the authors' GMVAE and MLVAE losses sum squared errors (no var_x): a Gaussian of variance 0.5 up to a constant
BASELINE_OBS_SCALE = math.sqrt(0.5)


class UGVAEBase(ModelBase):
    """Shared constructor checks and the likelihood for the UG-VAE family."""

    renamed_args = {"z_dim": "latent_dim"}
    #: the Gaussian likelihood's standard deviation when ``obs_scale`` is not given
    default_obs_scale: float = DEFAULT_OBS_SCALE

    def _setup(
        self,
        likelihood: str,
        obs_scale: float | None,
        arch: str,
        hidden: int,
        decoder_in: int,
        components_in: int | None = None,
    ) -> None:
        """Check and keep the likelihood, resolve the authors' architecture for the data's shape and build their
        networks: with ``components_in``, the K component networks of p(z | d, ·) fed with a latent of that size
        (``self.components``), then the decoder from ``decoder_in`` features (``self.decoder``)."""
        if likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(f"likelihood must be 'gaussian' (the authors') or 'bernoulli', got {likelihood!r}")
        obs_scale = self.default_obs_scale if obs_scale is None else float(obs_scale)
        likelihoods.check_likelihood(likelihood, obs_scale)
        self.likelihood, self.obs_scale = likelihood, obs_scale
        self.arch = resolve_ugvae_arch(arch, self.input_shape)
        self.hidden = positive_int("hidden", hidden)
        if components_in is not None:
            self.components = ComponentNets(components_in, self.latent_dim, self.K, self.hidden)
        self.decoder = ImageDecoder(self.arch, decoder_in, self.input_shape, self.hidden)

    def obs_params(self, raw: torch.Tensor) -> torch.Tensor:
        """Decoder output -> likelihood parameters: sigmoid mean (Gaussian, as the authors) or logits."""
        return torch.sigmoid(raw) if self.likelihood == "gaussian" else raw

    def observation(self, raw: torch.Tensor) -> dist.Distribution:
        return self.observation_dist(self.obs_params(raw))

    def mean_image(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(raw)

    def decode_with_global(self, local: torch.Tensor, batch_latent: torch.Tensor | None, dim: int) -> torch.Tensor:
        """E[x | local code, batch-level latent] from the decoder of [local, batch_latent]; the batch-level latent,
        (dim,) or broadcastable, is taken at its prior mean 0 when absent."""
        if batch_latent is None:
            batch_latent = local.new_zeros(dim)
        return self.mean_image(self.decoder(broadcast_cat([local, batch_latent])))

    #: the number of prior draws of the parent latent (β or w) behind the marginal prior of z
    MARGINAL_DRAWS = 64

    def mixture_marginal(self, parent_dim: int, parent: str) -> tuple[dist.Distribution, str]:
        """z's per-dimension marginal prior: the mixture over the K components and ``MARGINAL_DRAWS`` fixed prior
        draws of the parent latent, (1/(MK)) Σ_m Σ_k N(z_d; μ_kd(u_m), σ_kd(u_m))."""
        g = torch.Generator().manual_seed(0)
        u = torch.randn(self.MARGINAL_DRAWS, parent_dim, generator=g).to(self.device)
        loc, scale = self.components(u)  # (M, K, d)
        loc, scale = loc.reshape(-1, loc.shape[-1]).T, scale.reshape(-1, scale.shape[-1]).T  # (d, M·K)
        mix = dist.Categorical(logits=torch.zeros_like(loc))
        return (
            dist.MixtureSameFamily(mix, dist.Normal(loc, scale)),
            f"mixture over d and {self.MARGINAL_DRAWS} prior draws of {parent}",
        )


@MODELS.register("ugvae")
class UGVAE(UGVAEBase):
    """UG-VAE: global β per batch, mixture-of-Gaussians local space whose K components are networks of β.

    :param input_shape: shape of one observation, e.g. ``(1, 28, 28)`` or ``(3, 64, 64)``.
    :param latent_dim: dimension of the local latent z (authors' ``dim_z``: 20; MNIST run 10).
    :param beta_dim: global latent dimension (authors: 20; CelebA attributes 50).
    :param K: number of mixture components / clusters (authors: 20; MNIST run 10).
    :param likelihood: ``gaussian`` (fixed variance, the authors') or ``bernoulli``.
    :param obs_scale: Gaussian standard deviation (default sqrt(0.2): the authors' var_x = 0.2).
    :param arch: ``k_vae`` (MLP), ``beta_vae`` (conv, 64x64) or ``auto``.
    :param hidden: hidden width of the pre-encoder / decoder / component networks (authors: 256).
    """

    latent_sites = ("beta", "d", "z")
    global_sites = ("beta",)
    enumerated_sites = ("d",)
    default_objective = "enum-elbo"
    example_shape = (1, 64, 64)  # the conv nets, with BatchNorm
    example_args = {"latent_dim": 2, "beta_dim": 3, "K": 3, "hidden": 16}

    def __init__(
        self,
        input_shape: Sequence[int],
        latent_dim: int = 20,
        beta_dim: int = 20,
        K: int = 20,
        likelihood: str = "gaussian",
        obs_scale: float | None = None,
        arch: str = "auto",
        hidden: int = 256,
    ):
        super().__init__(input_shape)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.beta_dim = positive_int("beta_dim", beta_dim)
        self.K = positive_int("K", K)
        self._setup(likelihood, obs_scale, arch, hidden, self.latent_dim + self.beta_dim, components_in=self.beta_dim)

    # -- the generative story ------------------------------------------------------------------------------
    def prior_z(self, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ_k(β), σ_k(β) for k = 1..K, each (..., K, latent_dim) (paper eq. 3)."""
        return self.components(beta)

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(X, Z, d, β) = p(β) Π_i p(d_i) p(z_i | d_i, β) p(x_i | z_i, β) (paper eq. 1)."""
        self.check_input(x)
        register(self)
        B = x.shape[0]
        beta = pyro.sample("beta", dist.Normal(x.new_zeros(self.beta_dim), 1.0).to_event(1))
        beta_b = global_to_plate(beta)
        loc, scale = self.prior_z(beta_b)  # (..., 1, K, latent_dim)
        with pyro.plate("data", B):
            d = pyro.sample("d", dist.Categorical(logits=x.new_zeros(self.K)), infer={"enumerate": "parallel"})
            # d is (B,) when sampled, (K, 1) under parallel enumeration: Vindex broadcasts either.
            z = pyro.sample("z", dist.Normal(Vindex(loc)[..., d, :], Vindex(scale)[..., d, :]).to_event(1))
            raw = self.decoder(broadcast_cat([z, beta_b]))
            pyro.sample("x", self.observation(raw), obs=x)

    # -- what users and metrics need -------------------------------------------------------------------------
    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, β] for ``latents["z"]`` (..., latent_dim) and ``latents["beta"]`` (beta_dim,) or broadcastable
        (..., beta_dim); β is its prior mean 0 when absent."""
        return self.decode_with_global(latents["z"], latents.get("beta"), self.beta_dim)

    def marginal_prior(self, site: str):
        if site == "beta":
            return self.standard_normal_marginal(self.beta_dim)
        return self.mixture_marginal(self.beta_dim, "β") if site == "z" else None

    def sample_prior(
        self,
        n: int,
        y: torch.Tensor | None = None,
        beta: torch.Tensor | None = None,
        d: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One β (shared by the ``n`` items) and ``n`` (d_i, z_i) from the prior; ``beta`` or ``d`` may be fixed."""
        dev = self.device
        if beta is None:
            beta = torch.randn(self.beta_dim, device=dev)
        if d is None:
            d = torch.randint(self.K, (n,), device=dev)
        loc, scale = self.prior_z(beta)
        z = loc[d] + scale[d] * torch.randn(n, self.latent_dim, device=dev)
        return {"beta": beta, "d": d, "z": z}
