"""The objective base class and the site-restricted KL weight."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import pyro
import pyro.infer as infer
import torch
from pyro.poutine.messenger import Messenger
from torch import nn


class ScaleLatents(Messenger):
    """``poutine.scale`` restricted to latent (unobserved) sample sites.

    Applied to both the model and the guide it multiplies log p(z) and log q(z | x) by ``scale``, so every
    ELBO estimator — including ``TraceMeanField_ELBO``, which reads only the guide-side scale of its
    analytic KL — sees ``scale · KL`` while the likelihood keeps weight 1.
    """

    def __init__(self, scale: float):
        if not scale > 0:
            raise ValueError(f"a KL weight must be > 0 (poutine.scale refuses 0), got {scale}")
        super().__init__()
        self.scale = scale

    def _process_message(self, msg: Dict[str, Any]) -> None:
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = self.scale * msg["scale"]


def scale_latents(fn: Callable, scale: float) -> Callable:
    """``fn`` with every latent sample site's log-density multiplied by ``scale``."""

    def scaled(*args, **kwargs):
        with ScaleLatents(scale):
            return fn(*args, **kwargs)

    return scaled


class Objective:
    """Base class: a Pyro ELBO (or a custom loss) applied to a bound model and guide."""

    #: the auxiliary module trained by a second optimizer, if any
    auxiliary: Optional[nn.Module] = None
    #: Adam's betas for the auxiliary optimizer (FactorVAE's discriminator uses (0.5, 0.9))
    auxiliary_betas: Tuple[float, float] = (0.9, 0.999)

    def __init__(self) -> None:
        self.model: Any = None
        self.guide: Any = None
        self.elbo: Any = None

    # -- binding ---------------------------------------------------------------------------------------------
    def bind(self, model: nn.Module, guide: nn.Module) -> "Objective":
        self.model, self.guide = model, guide
        self.elbo = self.make_elbo()
        return self

    def model_and_guide(self) -> Tuple[Callable, Callable]:
        """The model and guide callables the ELBO sees (objectives wrap them, e.g. with a KL weight)."""
        return self.model.model, self.guide.guide

    def make_elbo(self) -> Any:
        """The Pyro ELBO (or a callable ``loss(model, guide, *args)``) this objective minimises."""
        raise NotImplementedError

    # -- the two backends --------------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The differentiable loss for one batch (the negative of the bound, summed over the batch)."""
        model_fn, guide_fn = self.model_and_guide()
        fn = self.elbo.differentiable_loss if isinstance(self.elbo, infer.ELBO) else self.elbo
        return fn(model_fn, guide_fn, x, y)

    @torch.no_grad()
    def evaluate_loss(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> float:
        """The loss for one batch without gradients (held-out evaluation)."""
        model_fn, guide_fn = self.model_and_guide()
        if isinstance(self.elbo, infer.ELBO):  # Pyro's .loss runs under no_grad (TraceEnum's
            return float(self.elbo.loss(model_fn, guide_fn, x, y))  # differentiable_loss refuses to)
        return float(self.loss(x, y))

    def svi(self, optim: pyro.optim.PyroOptim) -> infer.SVI:
        model_fn, guide_fn = self.model_and_guide()
        return infer.SVI(model_fn, guide_fn, optim, loss=self.elbo)

    # -- hooks ---------------------------------------------------------------------------------------------
    def at_step(self, step: int) -> None:
        """Called before each training step (for schedules)."""

    def auxiliary_loss(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary module")
