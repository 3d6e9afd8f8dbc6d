"""The variational autoencoder (Kingma & Welling, 2014; Rezende et al., 2014).

Generative model, for each datum i of a batch::

    z_i ~ N(0, I_d)                          (prior; ``prior="flow"``: the decoupled prior below)
    x_i ~ p(x | f_θ(z_i))                    (Bernoulli, continuous Bernoulli or fixed-variance Gaussian)

``prior="flow"`` is dpVAE's decoupled prior (Bhalodia et al., 2020, §4.2): z = g⁻¹(z₀) with z₀ ~ N(0, I) and g a
stack of ``flow_layers`` affine coupling layers (:mod:`pyro_vaes.distributions.flows`), so that
log p(z) = log N(g(z); 0, I) + log |det ∂g/∂z| (paper eq. 2) and every objective's KL(q(z | x) ‖ p(z)) becomes
the change-of-variables KL of paper eq. 5 (estimated as log q − log p: no analytic KL exists). The flow is trained
jointly with the VAE; its parameters are the module ``prior_flow`` (present only with ``prior="flow"``, so a
normal-prior VAE's state_dict is unchanged).

β-VAE is *not* a separate model here: its KL weight is an objective (``--objective beta-vae-h``) that
scales the latent sites of any model and guide.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch

from pyro_vaes.distributions.flows import INITS, MASKS, DecoupledFlow
from pyro_vaes.models.base import ModelBase, positive_int, standard_normal
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import MODELS

PRIORS = ("normal", "flow")


@MODELS.register("vae")
class VAE(ModelBase):
    """VAE: z ~ p(z) (N(0, I), or dpVAE's decoupled flow prior), x ~ p(x | decoder(z)).

    :param input_shape: shape of one observation, e.g. ``(1, 28, 28)`` or ``(D,)``.
    :param latent_dim: dimension d of z.
    :param likelihood: ``bernoulli``, ``continuous-bernoulli``, ``gaussian`` or ``auto`` (the engine picks the one
        that fits the data: Bernoulli for binary, continuous Bernoulli for grey levels, Gaussian otherwise).
    :param obs_scale: standard deviation of the Gaussian likelihood.
    :param arch: decoder architecture (see :mod:`pyro_vaes.nets`); ``linear`` gives a linear-Gaussian model.
    :param hidden: hidden width of the decoder.
    :param prior: ``normal`` (N(0, I)) or ``flow`` (dpVAE's decoupled prior: N(0, I) pushed through g⁻¹).
    :param flow_layers: number of affine coupling layers of the flow (paper: 6).
    :param flow_hidden: hidden width of each coupling layer's scale and shift networks (paper: 64).
    :param flow_mask: ``alternate`` (every other dimension, complemented layer to layer; the authors' masks for
        d = 2) or ``half`` (first half / second half).
    :param flow_init: ``identity`` (last layer of s and t zeroed: the flow starts as the identity, the prior as
        N(0, I); our choice, the paper is silent) or ``random`` (PyTorch's default, as the authors' code).
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
        prior: str = "normal",
        flow_layers: int = 6,
        flow_hidden: int = 64,
        flow_mask: str = "alternate",
        flow_init: str = "identity",
    ):
        super().__init__(input_shape)
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; valid: {', '.join(PRIORS)}")
        if flow_mask not in MASKS or flow_init not in INITS:
            raise ValueError(
                f"flow_mask must be one of {', '.join(MASKS)} and flow_init one of {', '.join(INITS)}, "
                f"got {flow_mask!r} and {flow_init!r}"
            )
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.decoder = self.likelihood_decoder(self.latent_dim, likelihood, obs_scale, arch, hidden)
        self.prior_kind = prior
        if prior == "flow":
            self.prior_flow = DecoupledFlow(
                self.latent_dim,
                positive_int("flow_layers", flow_layers),
                positive_int("flow_hidden", flow_hidden),
                flow_mask,
                flow_init,
            )

    def prior(self, n: int, like: torch.Tensor) -> dist.TorchDistribution:
        """p(z) for ``n`` items (batch shape (n,), event shape (latent_dim,)), on ``like``'s device and dtype."""
        if self.prior_kind == "flow":
            return self.prior_flow.distribution(n, like.device)
        return standard_normal(n, self.latent_dim, like)

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(x, z) = Π_i p(z_i) p(x_i | decoder(z_i)), p(z) = N(0, I) or the decoupled prior."""
        self.check_input(x)
        register(self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior(x.shape[0], x))
            pyro.sample("x", self.observation_dist(self.decoder(z)), obs=x)

    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        return self.observation_mean(self.decoder(latents["z"]))

    def sample_prior(self, n: int, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """z ~ N(0, I); with the flow prior z = g⁻¹(z₀), z₀ ~ N(0, I) (reparameterised: differentiable in the flow)."""
        if self.prior_kind == "flow":
            return {"z": self.prior_flow.distribution(n).rsample()}
        return {"z": torch.randn(n, self.latent_dim, device=self.device)}

    def marginal_prior(self, site: str):
        if site != "z" or self.prior_kind == "flow":  # the flow prior's marginals have no closed form
            return None
        return self.standard_normal_marginal(self.latent_dim)
