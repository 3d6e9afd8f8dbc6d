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
import torch

from pyro_vaes.models.base import ClassConditionalModel, draw_classes, one_hot, positive_int, standard_normal
from pyro_vaes.nets import broadcast_cat
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import MODELS


@MODELS.register("cvae")
class CVAE(ClassConditionalModel):
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
        self.num_classes = positive_int("num_classes", num_classes)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.decoder = self.likelihood_decoder(self.latent_dim + self.num_classes, likelihood, obs_scale, arch, hidden)

    def params(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Decoder output for codes z (..., d) and classes y, the one-hot label concatenated to the code."""
        return self.decoder(broadcast_cat([z, one_hot(y, self.num_classes, z)]))

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(x, z | y) = Π_i N(z_i; 0, I) p(x_i | f([z_i, y_i]))."""
        self.check_input(x)
        if y is None:
            raise ValueError("the CVAE is conditioned on the class: pass labels y (a dataset with class labels)")
        register(self)
        B = x.shape[0]
        with pyro.plate("data", B):
            z = pyro.sample("z", standard_normal(B, self.latent_dim, x))
            pyro.sample("x", self.observation_dist(self.params(z, y)), obs=x)

    def sample_prior(self, n: int, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """z ~ N(0, I); y uniform over the classes unless given."""
        y = draw_classes(self, n, y)
        return {"z": torch.randn(n, self.latent_dim, device=self.device), "y": y}
