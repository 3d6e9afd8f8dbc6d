"""The variational autoencoder (Kingma & Welling, 2014; Rezende et al., 2014).

Generative model, for each datum i of a batch::

    z_i ~ N(0, I_d)                          (prior)
    x_i ~ p(x | f_θ(z_i))                    (Bernoulli, continuous Bernoulli or fixed-variance Gaussian)

β-VAE is *not* a separate model here: its KL weight is an objective (``--objective beta-vae-h``) that
scales the latent sites of any model and guide.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import pyro
import pyro.distributions as dist
import torch

from pyro_vaes import likelihoods
from pyro_vaes.models.base import ModelBase, positive_int
from pyro_vaes.nets import Decoder, resolve_arch
from pyro_vaes.params import register
from pyro_vaes.registry import MODELS


@MODELS.register("vae")
class VAE(ModelBase):
    """VAE: z ~ N(0, I), x ~ p(x | decoder(z)).

    :param input_shape: shape of one observation, e.g. ``(1, 28, 28)`` or ``(D,)``.
    :param latent_dim: dimension d of z.
    :param likelihood: ``bernoulli``, ``continuous-bernoulli``, ``gaussian`` or ``auto`` (the engine picks the one
        that fits the data: Bernoulli for binary, continuous Bernoulli for grey levels, Gaussian otherwise).
    :param obs_scale: standard deviation of the Gaussian likelihood.
    :param arch: decoder architecture (see :mod:`pyro_vaes.nets`); ``linear`` gives a linear-Gaussian model.
    :param hidden: hidden width of the decoder.
    """

    latent_sites = ("z",)
    example_shape = (1, 28, 28)
    example_args = {"latent_dim": 3, "hidden": 16, "likelihood": "bernoulli"}

    def __init__(
        self,
        input_shape: Sequence[int],
        latent_dim: int = 10,
        likelihood: str = "auto",
        obs_scale: float = 1.0,
        arch: str = "auto",
        hidden: int = 400,
    ):
        super().__init__(input_shape)
        likelihoods.check_likelihood(likelihood, obs_scale)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.likelihood = likelihood
        self.obs_scale = float(obs_scale)
        self.arch = resolve_arch(arch, self.input_shape)
        self.decoder = Decoder(self.arch, self.latent_dim, self.input_shape, positive_int("hidden", hidden))

    def model(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> None:
        """p(x, z) = Π_i N(z_i; 0, I) p(x_i | decoder(z_i))."""
        self.check_input(x)
        register(self)
        with pyro.plate("data", x.shape[0]):
            prior = dist.Normal(x.new_zeros(self.latent_dim), 1.0).expand([x.shape[0], self.latent_dim])
            z = pyro.sample("z", prior.to_event(1))
            params = self.decoder(z)
            pyro.sample("x", likelihoods.observation(self.likelihood, params, self.input_shape, self.obs_scale), obs=x)

    def decode(self, latents: Dict[str, torch.Tensor], y: Optional[torch.Tensor] = None) -> torch.Tensor:
        return likelihoods.mean(self.likelihood, self.decoder(latents["z"]))

    def sample_prior(self, n: int, y: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        return {"z": torch.randn(n, self.latent_dim, device=self.device)}
