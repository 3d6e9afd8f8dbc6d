"""Variational families for N-VAE (``models/nvae.py``): two ways to infer the class information.

* ``nvae-dirichlet`` (default, the paper's, Antorán & Miguel 2019 §III-B): q(z, π | x) = N(z; μ(x), diag σ(x)²)
  Dir(π; α̂(x)), both heads on one shared encoder. y is observed in training; the guide's classifier is the
  Dirichlet's predictive q(y | x) = E_q[π_y] = α̂_y(x) / Σ_k α̂_k(x).
* ``nvae-enum``: q(z | x) the same Gaussian, a categorical q(y | x) = Cat(softmax(g(x))) on the same encoder,
  enumerated in parallel when y is not given (``TraceEnum_ELBO`` sums the bound over the K classes exactly), and
  q(π | x) = Dir(α 1 + q̃), q̃ = y one-hot when y is given, else the probabilities q(y | x). This q(π | x) has no
  parameters of its own: it is the best Dirichlet for the bound given q(y | x) (the π-terms
  E_q[Σ_k q̃_k log π_k] − KL(q(π) ‖ Dir(α 1)) are −KL(q(π) ‖ Dir(α 1 + q̃)) plus a constant), and given y it is the
  exact conditional posterior p(π | y). It depends on q(y | x), not on the enumerated value of y (Pyro refuses a
  model site y whose distribution Cat(π) would vary along y's own enumeration dimension). Given y (training with
  labels, evaluation) nothing is enumerated and the bound is the labelled one; the objective ``nvae-enum`` hides
  the labels from the bound to marginalise y, and uses them in a classification term.

Network sizes (the paper gives none): the project's encoder for the data's shape (``pyro_vaes.nets``) with
``hidden`` 400 units, one linear head per parameter; Gaussian scales softplus(·) + 1e-4, Dirichlet
concentrations softplus(·) + ``min_concentration`` (1e-2; the reparameterised Dirichlet sampler's gradients
are unreliable for smaller concentrations).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from pyro_vaes.guides.base import AmortizedGaussianGuide, Encoded
from pyro_vaes.models.base import one_hot
from pyro_vaes.models.nvae import NVAE
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES


class _NVAEEncoder(AmortizedGaussianGuide):
    """The shared encoder and the Gaussian head of q(z | x), common to both N-VAE guides."""

    example_args = {"hidden": 16}

    def __init__(self, model: NVAE, hidden: int = 400):
        super().__init__(model, hidden)
        self.num_classes, self.latent_dim, self.alpha = model.num_classes, model.latent_dim, model.alpha

    def class_probs(self, x: torch.Tensor) -> torch.Tensor:
        """The guide's classifier q(y | x), (B, K)."""
        raise NotImplementedError


@GUIDES.register("nvae-dirichlet", models=("nvae",), default_for=("nvae",))
class NVAEDirichletGuide(_NVAEEncoder):
    """q(z | x) q(π | x) = N(μ(x), diag σ(x)²) Dir(α̂(x)), one shared encoder (the paper's guide, §III-B).

    :param hidden: encoder width.
    :param min_concentration: lower bound added to every Dirichlet concentration.
    """

    mean_field = True
    example_args = {"hidden": 16}

    def __init__(self, model: NVAE, hidden: int = 400, min_concentration: float = 1e-2):
        super().__init__(model, hidden)
        if not float(min_concentration) > 0:
            raise ValueError(f"min_concentration must be > 0, got {min_concentration}")
        self.min_concentration = float(min_concentration)
        self.raw_concentration = nn.Linear(self.encoder.out_features, model.num_classes)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """``z``: loc, scale (B, latent_dim); ``pi``: concentration α̂ (B, K). Neither depends on y."""
        h = self.encoder(x)
        return {
            "z": self.gaussian(h),
            "pi": {"concentration": F.softplus(self.raw_concentration(h)) + self.min_concentration},
        }

    def class_probs(self, x: torch.Tensor) -> torch.Tensor:
        """q(y | x) = E_{Dir(α̂)}[π] = α̂ / Σ_k α̂_k."""
        a = self.encode(x)["pi"]["concentration"]
        return a / a.sum(-1, keepdim=True)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        q = self.encode(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(q["z"]["loc"], q["z"]["scale"]).to_event(1))
            pyro.sample("pi", dist.Dirichlet(q["pi"]["concentration"]))


@GUIDES.register("nvae-enum", models=("nvae",))
class NVAEEnumGuide(_NVAEEncoder):
    """q(z | x) q(y | x) q(π | x): Gaussian z, categorical y enumerated when unobserved, π ~ Dir(α 1 + q̃).

    :param hidden: encoder width.
    """

    enumerated_sites = ("y",)
    mean_field = True  # z, y and π independent given x (π's concentration is a function of x, not of y's draw)
    default_objective = "nvae-enum"
    example_args = {"hidden": 16}

    def __init__(self, model: NVAE, hidden: int = 400):
        super().__init__(model, hidden)
        self.class_logits = nn.Linear(self.encoder.out_features, model.num_classes)

    def _parts(self, x: torch.Tensor, y: torch.Tensor | None):
        h = self.encoder(x)
        z = self.gaussian(h)
        logits = self.class_logits(h)
        soft = torch.softmax(logits, -1) if y is None else one_hot(y, self.num_classes, logits)
        return z, logits, self.alpha + soft

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """``z``: loc, scale (B, latent_dim); ``pi``: concentration α 1 + q̃ (B, K), q̃ = y one-hot or q(y | x)."""
        z, _, concentration = self._parts(x, y)
        return {"z": z, "pi": {"concentration": concentration}}

    def class_probs(self, x: torch.Tensor) -> torch.Tensor:
        """q(y | x) = softmax(g(x))."""
        return torch.softmax(self.class_logits(self.encoder(x)), -1)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        z, logits, concentration = self._parts(x, y)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(z["loc"], z["scale"]).to_event(1))
            pyro.sample("pi", dist.Dirichlet(concentration))
            if y is None:
                pyro.sample("y", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
