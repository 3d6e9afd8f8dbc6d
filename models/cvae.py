"""The conditional VAE (Sohn, Lee & Yan, *Learning Structured Output Representation using Deep Conditional
Generative Models*, NeurIPS 2015), conditioned on a class label: N-VAE's first baseline (Antorán & Miguel, 2019,
§IV-C).

Generative model, for each datum i with class y_i (observed; drawn uniformly when generating)::

    z_i ~ N(0, I)                              p(z | y): Sohn et al. allow a learned prior network; N(0, I) here
    x_i ~ p(x | f_θ([z_i, y_i]))               the label (one-hot) enters the decoder

with the variational family q(z | x, y) = N(μ_φ([e(x), y]), diag σ_φ²) (``guides/cvae.py``): the label enters the
encoder too, and the bound is Sohn et al.'s eq. 4, E_q[log p(x | z, y)] − KL(q(z | x, y) ‖ p(z)), which the
project's ``elbo`` objectives fit. The prior is N(0, I) (not a prior network) so that the augmentation experiment
can draw codes from N(0, σ² I) for every model alike. The decoder is the project's ``pyro_vaes.nets`` decoder for
the data's shape (``hidden`` 400), the same network N-VAE uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch.nn import functional as F

from pyro_vaes.distributions import likelihoods
from pyro_vaes.models.base import ModelBase, positive_int
from pyro_vaes.nets import Decoder, broadcast_cat, resolve_arch
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import MODELS


@MODELS.register("cvae")
class CVAE(ModelBase):
    """CVAE (Sohn et al., 2015): z ~ N(0, I), x ~ p(x | f([z, onehot(y)])).

    :param input_shape: shape of one observation.
    :param num_classes: K (filled in from the data by the engine).
    :param latent_dim: size of z.
    :param likelihood: ``bernoulli``, ``continuous-bernoulli``, ``gaussian`` or ``auto`` (picked from the data).
    :param obs_scale: standard deviation of the Gaussian likelihood.
    :param arch: decoder architecture (:mod:`pyro_vaes.nets`).
    :param hidden: hidden width of the decoder.
    """

    latent_sites = ("z",)
    labels = "class"
    example_shape = (1, 28, 28)
    example_args = {"latent_dim": 3, "hidden": 16, "likelihood": "bernoulli"}

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        latent_dim: int = 10,
        likelihood: str = "auto",
        obs_scale: float = 1.0,
        arch: str = "auto",
        hidden: int = 400,
    ):
        super().__init__(input_shape)
        likelihoods.check_likelihood(likelihood, obs_scale)
        self.num_classes = positive_int("num_classes", num_classes)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.likelihood = likelihood
        self.obs_scale = float(obs_scale)
        self.arch = resolve_arch(arch, self.input_shape)
        self.decoder = Decoder(
            self.arch, self.latent_dim + self.num_classes, self.input_shape, positive_int("hidden", hidden)
        )

    def params(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(y.long(), self.num_classes).to(z.dtype)
        return self.decoder(broadcast_cat([z, onehot]))

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(x, z | y) = Π_i N(z_i; 0, I) p(x_i | f([z_i, y_i]))."""
        self.check_input(x)
        if y is None:
            raise ValueError("the CVAE is conditioned on the class: pass labels y (a dataset with class labels)")
        register(self)
        B = x.shape[0]
        with pyro.plate("data", B):
            z = pyro.sample(
                "z", dist.Normal(x.new_zeros(self.latent_dim), 1.0).expand([B, self.latent_dim]).to_event(1)
            )
            pyro.sample(
                "x",
                likelihoods.observation(self.likelihood, self.params(z, y), self.input_shape, self.obs_scale),
                obs=x,
            )

    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, y]; the class comes from ``y`` or, failing that, ``latents["y"]``."""
        y = latents.get("y") if y is None else y
        if y is None:
            raise ValueError("the CVAE decodes a code for a class: pass y (integer classes) or latents['y']")
        return likelihoods.mean(self.likelihood, self.params(latents["z"], y))

    def marginal_prior(self, site: str):
        """N(0, 1) for each dimension of z (what evaluation's KL per dimension is taken against)."""
        return self.standard_normal_marginal(self.latent_dim) if site == "z" else None

    def sample_prior(self, n: int, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """z ~ N(0, I); y uniform over the classes unless given."""
        dev = self.device
        y = torch.randint(self.num_classes, (n,), device=dev) if y is None else y.to(dev).long()
        return {"z": torch.randn(n, self.latent_dim, device=dev), "y": y}
