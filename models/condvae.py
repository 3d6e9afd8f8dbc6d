"""CondVAE, the conditional VAE baseline of CSVAE (Klys, Snell & Zemel, NeurIPS 2018, §3.2; Kingma et al., 2014;
Sohn et al., 2015), for several non-exclusive binary labels.

For each datum, with labels y ∈ {0, 1}^k given::

    z ~ N(0, I_d)                                   p(z)
    x ~ p(x | decoder([z, y]))                      p_θ(x | z, y)

and the bound (Klys et al., eq. 2) E_q[log p(x | z, y)] − KL(q(z | x, y) ‖ p(z)). The labels reach the encoder
and the decoder (guide ``condvae-labelled``); CondVAE-info (§3.3) is the same model fitted with an encoder that
ignores the label (guide ``condvae-unlabelled``) and an adversary removing label information from z (objective
``condvae-info``). Switching an attribute (§4.3): encode with the true label, decode with the switched one
(:mod:`pyro_vaes.analysis.switch`); the decoder accepts any real y, so a label can be scaled for a stronger attribute.

Choices where the paper is silent: y enters the decoder concatenated with z; when generating without labels,
y_i ~ Bernoulli(½) independently.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch

from pyro_vaes.models.base import ModelBase, positive_int, standard_normal
from pyro_vaes.models.csvae import check_binary_labels, draw_labels
from pyro_vaes.nets import broadcast_cat
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import MODELS


@MODELS.register("condvae", help="CondVAE: z ~ N(0, I), x ~ p(x | decoder([z, y])), binary labels y")
class CondVAE(ModelBase):
    """CondVAE: z ~ N(0, I), x ~ p(x | decoder([z, y])) for binary labels y (k columns).

    :param input_shape: shape of one observation.
    :param num_labels: k, the number of binary labels (filled in from the data).
    :param latent_dim: dimension of z.
    :param likelihood: ``bernoulli``, ``continuous-bernoulli``, ``gaussian`` or ``auto`` (from the data).
    :param obs_scale: standard deviation of the Gaussian likelihood.
    :param arch: decoder architecture (see :mod:`pyro_vaes.nets`). :param hidden: its hidden width.
    """

    latent_sites = ("z",)
    labels = "binary"
    pyro_name = "condvae"
    example_shape = (1, 12, 12)
    example_args = {"latent_dim": 3, "hidden": 16, "likelihood": "bernoulli"}

    def __init__(
        self,
        input_shape: Sequence[int],
        num_labels: int,
        latent_dim: int = 10,
        likelihood: str = "auto",
        obs_scale: float = 1.0,
        arch: str = "auto",
        hidden: int = 400,
    ):
        super().__init__(input_shape)
        self.num_labels = positive_int("num_labels", num_labels)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.decoder = self.likelihood_decoder(self.latent_dim + self.num_labels, likelihood, obs_scale, arch, hidden)

    def params(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Decoder output for codes z (..., d) and labels y (n, k) (broadcast over particle dims)."""
        return self.decoder(broadcast_cat([z, y.to(z.dtype)]))

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(x, z | y) = p(z) p(x | z, y) per datum."""
        self.check_input(x)
        y = check_binary_labels(self, y, x.shape[0])
        register(self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", standard_normal(x.shape[0], self.latent_dim, x))
            pyro.sample("x", self.observation_dist(self.params(z, y)), obs=x)

    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, y]; y may be any real value per label (a scaled label gives a stronger attribute)."""
        z = latents["z"]
        return self.observation_mean(self.params(z, check_binary_labels(self, y, z.shape[-2])))

    def sample_prior(self, n: int, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        y = draw_labels(self, n) if y is None else check_binary_labels(self, y.to(self.device), n)
        return {"z": torch.randn(n, self.latent_dim, device=self.device), "y": y}

    def marginal_prior(self, site: str):
        return self.standard_normal_marginal(self.latent_dim) if site == "z" else None
