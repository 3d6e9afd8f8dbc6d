"""The CVAE's variational family (Sohn et al., 2015): q(z | x, y) = N(μ_φ([e(x), y]), diag σ_φ([e(x), y])²).

``e`` is the project's encoder for the data's shape (``pyro_vaes.nets``, ``hidden`` units); the one-hot label is
concatenated to its features before the two linear heads.

``encode(x)`` without labels (the label-free metrics call it so) returns the moments of the uniform mixture over
classes, (1/K) Σ_k q(z | x, k): its mean and the per-dimension standard deviation matched to it.

``cvae-unlabelled``: q(z | x) = N(μ_φ(e(x)), diag σ_φ(e(x))²), the encoder blind to the label — the family to compare
with the paper's when asking how much the label in the encoder buys (with the label in the decoder, the true
posterior p(z | x, y) depends on y; this family cannot follow that dependence).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from pyro_vaes.guides.base import AmortizedGaussianGuide, Encoded
from pyro_vaes.guides.vae import DiagonalGaussianGuide
from pyro_vaes.models.base import one_hot
from pyro_vaes.models.cvae import CVAE
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES


@GUIDES.register("cvae", models=("cvae",), default_for=("cvae",))
class CVAEGuide(AmortizedGaussianGuide):
    """q(z | x, y) = N(μ([e(x), onehot(y)]), diag σ²), σ = softplus(·) + 1e-4.

    :param hidden: encoder width.
    """

    mean_field = True
    example_args = {"hidden": 16}

    def __init__(self, model: CVAE, hidden: int = 400):
        super().__init__(model, hidden, extra_inputs=model.num_classes)
        self.num_classes = model.num_classes

    def _given(self, h: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.gaussian(torch.cat([h, one_hot(y, self.num_classes, h)], -1))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """``z``: loc, scale (B, latent_dim) of q(z | x, y); without y, the moments of (1/K) Σ_k q(z | x, k)."""
        h = self.encoder(x)
        if y is not None:
            return {"z": self._given(h, y)}
        B, K = h.shape[0], self.num_classes
        classes = torch.arange(K, device=h.device).repeat(B)
        q = self._given(h.repeat_interleave(K, 0), classes)
        loc, scale = q["loc"].reshape(B, K, -1), q["scale"].reshape(B, K, -1)
        mean = loc.mean(1)
        var = (scale**2 + loc**2).mean(1) - mean**2
        return {"z": {"loc": mean, "scale": var.clamp_min(1e-8).sqrt()}}

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        if y is None:
            raise ValueError("the CVAE's guide q(z | x, y) needs the labels y")
        register(self)
        q = self._given(self.encoder(x), y)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(q["loc"], q["scale"]).to_event(1))


@GUIDES.register("cvae-unlabelled", models=("cvae",))
class CVAEUnlabelledGuide(DiagonalGaussianGuide):
    """q(z | x) = N(μ(e(x)), diag σ²): the VAE's diagonal family, the label not an input of the encoder (``y`` is
    accepted and ignored)."""
