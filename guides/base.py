"""The guide contract: what every variational family offers the engine, evaluation, plots and metrics.

A guide is an ``nn.Module`` built from the model it approximates, ``Guide(model, **guide_args)``, so it knows
the observation shape and the latent sizes. It offers

* ``guide(x, y=None)`` — q(latents | x, y) as a Pyro guide: one sample site per latent site of the model
  (a discrete site the model enumerates may be left out; the model then sums it out), ``pyro.plate("data")``
  around the per-datum ones;
* ``encode(x, y=None)`` — the posterior parameters per latent site: ``{site: {param: tensor}}``, e.g.
  ``{"z": {"loc": (B, d), "scale": (B, d)}}`` or UG-VAE's ``{"z": ..., "d": {"probs": (B, K)},
  "beta": {"loc": (d_β,), "scale": (d_β,)}}``. Every continuous site has ``loc``, its posterior mean (for a
  site whose q depends on another sampled latent, the parameters at that latent's posterior mean).

and declares ``enumerated_sites`` (discrete sites it marks for parallel enumeration) and ``mean_field``
(q factorises over the sites given x, in the model's site order).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pyro_vaes.models.base import ModelBase, positive_int
from pyro_vaes.nets import Encoder
from pyro_vaes.nets.heads import positive_scale

Encoded = dict[str, dict[str, torch.Tensor]]


class GuideBase(nn.Module):
    """A variational family q(latents | x, y) written as a Pyro ``guide(x, y=None)`` method."""

    pyro_name: str = "guide"
    #: discrete sites this guide samples with ``infer={"enumerate": "parallel"}``
    enumerated_sites: tuple[str, ...] = ()
    #: whether q factorises over the latent sites given x, sampled in the model's site order (what analytic
    #: per-site KLs, ``TraceMeanField_ELBO`` included, need)
    mean_field: bool = False
    #: the objective ``pyro-vaes fit`` uses with this guide when none is given (None: the model's default)
    default_objective: str | None = None
    #: small constructor arguments for the contract tests
    example_args: dict[str, Any] = {}

    def __init__(self, model: ModelBase):
        super().__init__()
        self.input_shape = model.input_shape

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        raise NotImplementedError

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """Posterior parameters per latent site for a batch ``x`` (see the module docstring)."""
        raise NotImplementedError


class AmortizedGaussianGuide(GuideBase):
    """A guide whose q of the code is a diagonal Gaussian amortised by the project's encoder for the model's data:
    ``encoder`` (``hidden`` features) and two linear heads, ``loc`` and ``raw_scale`` (σ = softplus(·) + 1e-4), on
    its features and ``extra_inputs`` more (a label concatenated to them)."""

    def __init__(self, model: ModelBase, hidden: int, extra_inputs: int = 0):
        super().__init__(model)
        hidden = positive_int("hidden", hidden)
        self.encoder = Encoder(model.arch, model.input_shape, hidden)
        self.loc = nn.Linear(hidden + extra_inputs, model.latent_dim)
        self.raw_scale = nn.Linear(hidden + extra_inputs, model.latent_dim)

    def gaussian(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """``loc`` and ``scale`` of the code's diagonal Gaussian from the heads' inputs ``h`` (..., hidden + extra)."""
        return {"loc": self.loc(h), "scale": positive_scale(self.raw_scale(h))}


def posterior_means(encoded: Encoded) -> dict[str, torch.Tensor]:
    """``{site: loc}`` for every site of an :meth:`GuideBase.encode` result that has a posterior mean."""
    return {site: params["loc"] for site, params in encoded.items() if "loc" in params}
