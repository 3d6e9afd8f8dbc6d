"""Guides of CondVAE and CondVAE-info (Klys, Snell & Zemel, NeurIPS 2018, §3.2–3.3).

* ``condvae-labelled`` (default for ``condvae``): q(z | x, y) = N(μ_φ(x, y), diag σ_φ(x, y)²), CondVAE's encoder
  (the label enters concatenated with the trunk's features; the paper does not say where).
* ``condvae-unlabelled``: q(z | x) = N(μ_φ(x), diag σ_φ(x)²), CondVAE-info's encoder, which ignores the label
  (§3.3: "with q_φ(z | x, y) replaced with q_φ(z | x)"); its default objective is ``condvae-info`` (the ELBO plus
  the adversary that removes label information from z). Fitted with ``elbo`` it is a CondVAE whose encoder does
  not see y.

σ = softplus(·) + 1e-4.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from pyro_vaes.guides.base import AmortizedGaussianGuide, Encoded
from pyro_vaes.models.condvae import CondVAE
from pyro_vaes.models.csvae import check_binary_labels
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES

#: the labelled encoder without labels averages over every label vector up to this many labels
MAX_ENUMERATED_LABELS = 10


class _CondVAEGuide(AmortizedGaussianGuide):
    mean_field = True
    pyro_name = "condvae_guide"
    example_args = {"hidden": 16}
    #: whether the encoder sees the labels
    uses_labels = True

    def __init__(self, model: CondVAE, hidden: int = 400):
        super().__init__(model, hidden, extra_inputs=model.num_labels if self.uses_labels else 0)
        self.num_labels, self.latent_dim = model.num_labels, model.latent_dim

    def _params(self, h: torch.Tensor, y: torch.Tensor | None) -> dict[str, torch.Tensor]:
        if self.uses_labels:
            h = torch.cat([h, check_binary_labels(self, y, h.shape[0]).to(h.dtype)], -1)
        return self.gaussian(h)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """q(z | x, y); without labels (a label-free metric) the labelled encoder gives the mixture
        Σ_y p(y) q(z | x, y) over the model's label prior y_i ~ Bernoulli(½): its mean and per-dimension std."""
        h = self.encoder(x)
        if y is not None or not self.uses_labels:
            return {"z": self._params(h, y)}
        if self.num_labels > MAX_ENUMERATED_LABELS:
            raise ValueError(
                f"{type(self).__name__} needs the labels y to encode (batch, {self.num_labels}); without "
                f"them it averages over all 2^k label vectors, done for k <= {MAX_ENUMERATED_LABELS} only"
            )
        grid = torch.cartesian_prod(*[torch.tensor([0.0, 1.0])] * self.num_labels).reshape(-1, self.num_labels)
        parts = [self._params(h, row.to(h).expand(h.shape[0], -1)) for row in grid]
        loc = torch.stack([p["loc"] for p in parts]).mean(0)
        second = torch.stack([p["scale"] ** 2 + p["loc"] ** 2 for p in parts]).mean(0)
        return {"z": {"loc": loc, "scale": (second - loc**2).clamp_min(0).sqrt()}}

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        q = self._params(self.encoder(x), y)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(q["loc"], q["scale"]).to_event(1))


@GUIDES.register(
    "condvae-labelled",
    models=("condvae",),
    default_for=("condvae",),
    help="q(z | x, y): CondVAE's encoder (label concatenated with the features)",
)
class CondVAELabelledGuide(_CondVAEGuide):
    """q(z | x, y) = N(μ([h(x), y]), diag σ([h(x), y])²). :param hidden: width of the trunk's features."""

    uses_labels = True


@GUIDES.register(
    "condvae-unlabelled",
    models=("condvae",),
    help="q(z | x): CondVAE-info's encoder, which ignores the label (default objective condvae-info)",
)
class CondVAEUnlabelledGuide(_CondVAEGuide):
    """q(z | x) = N(μ(h(x)), diag σ(h(x))²), the label ignored. :param hidden: width of the trunk's features."""

    uses_labels = False
    default_objective = "condvae-info"
