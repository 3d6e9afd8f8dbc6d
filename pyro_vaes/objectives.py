"""Objectives: how a model/guide pair is fitted, chosen independently of both.

An :class:`Objective` is bound to a model and a guide (:meth:`Objective.bind`) and then gives

* :meth:`Objective.loss` — the differentiable loss (a negative bound) for one batch, used with one
  ``torch.optim`` optimizer over the model's and guide's parameters (the engine's default backend);
* :meth:`Objective.svi` — a :class:`pyro.infer.SVI` over the same loss for the classic Pyro backend;
* optionally an ``auxiliary`` module with its own loss (:meth:`Objective.auxiliary_loss`) that the engine
  steps with a second optimizer (FactorVAE's discriminator, adversaries);
* :meth:`Objective.at_step` for schedules (annealed capacities).

Registered here:

=================  ==========================================================================================
``elbo``           ``Trace_ELBO``: Monte-Carlo ELBO, E_q[log p(x, z) − log q(z | x)]
``meanfield-elbo`` ``TraceMeanField_ELBO``: the same bound with analytic KL(q ‖ p) where one is registered
``enum-elbo``      ``TraceEnum_ELBO``: discrete sites marked for enumeration are summed out exactly
``iwae``           ``RenyiELBO(alpha=0)``: the importance-weighted bound of Burda et al. (2016), K particles
``renyi``          ``RenyiELBO(alpha)``: the Rényi-α bound of Li & Turner (2016)
``beta-vae-h``     β-VAE (Higgins et al., 2017): E_q[log p(x | z)] − β KL(q(z | x) ‖ p(z)); β scales every
                   latent site in model *and* guide (a site-restricted ``poutine.scale``)
=================  ==========================================================================================
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional, Tuple

import pyro
import pyro.infer as infer
import torch
from pyro.poutine.messenger import Messenger
from torch import nn

from pyro_vaes.registry import OBJECTIVES


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

    def svi(self, optim: pyro.optim.PyroOptim) -> infer.SVI:
        model_fn, guide_fn = self.model_and_guide()
        return infer.SVI(model_fn, guide_fn, optim, loss=self.elbo)

    # -- hooks ---------------------------------------------------------------------------------------------
    def at_step(self, step: int) -> None:
        """Called before each training step (for schedules)."""

    def auxiliary_loss(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary module")

    def hyperparameters(self) -> Dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self" and hasattr(self, k)}


def _check_particles(num_particles: int) -> int:
    if int(num_particles) < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    return int(num_particles)


@OBJECTIVES.register("elbo")
class ELBO(Objective):
    """Trace_ELBO: the Monte-Carlo ELBO, every term sampled."""

    def __init__(self, num_particles: int = 1):
        super().__init__()
        self.num_particles = _check_particles(num_particles)

    def make_elbo(self) -> infer.ELBO:
        return infer.Trace_ELBO(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=self.model.max_plate_nesting,
        )


@OBJECTIVES.register("meanfield-elbo")
class MeanFieldELBO(ELBO):
    """TraceMeanField_ELBO: the ELBO with analytic KL(q ‖ p) per latent site."""

    def make_elbo(self) -> infer.ELBO:
        return infer.TraceMeanField_ELBO(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=self.model.max_plate_nesting,
        )


@OBJECTIVES.register("enum-elbo")
class EnumELBO(ELBO):
    """TraceEnum_ELBO: discrete sites marked ``infer={'enumerate': 'parallel'}`` are summed out exactly."""

    def make_elbo(self) -> infer.ELBO:
        return infer.TraceEnum_ELBO(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=self.model.max_plate_nesting,
            strict_enumeration_warning=False,
        )


@OBJECTIVES.register("renyi")
class Renyi(Objective):
    """RenyiELBO: the Rényi-α bound (Li & Turner, 2016) with K particles; α = 0 is the IWAE bound."""

    def __init__(self, alpha: float = 0.5, num_particles: int = 5):
        super().__init__()
        if float(alpha) == 1.0:
            raise ValueError("alpha = 1 is the ELBO itself: use --objective elbo")
        self.alpha = float(alpha)
        self.num_particles = _check_particles(num_particles)

    def make_elbo(self) -> infer.ELBO:
        return infer.RenyiELBO(
            alpha=self.alpha,
            num_particles=self.num_particles,
            vectorize_particles=True,
            max_plate_nesting=self.model.max_plate_nesting,
        )


@OBJECTIVES.register("iwae")
class IWAE(Renyi):
    """IWAE (Burda et al., 2016): log (1/K) Σ_k p(x, z_k) / q(z_k | x), as RenyiELBO(alpha=0)."""

    def __init__(self, num_particles: int = 5):
        super().__init__(alpha=0.0, num_particles=num_particles)

    def hyperparameters(self) -> Dict[str, Any]:
        return {"num_particles": self.num_particles}


@OBJECTIVES.register("beta-vae-h")
class BetaVAEH(Objective):
    """β-VAE (Higgins et al., 2017, eq. 4): E_q[log p(x | z)] − β KL(q(z | x) ‖ p(z)).

    β multiplies every latent site's log-density in model and guide (:class:`ScaleLatents`). With
    ``estimator="meanfield"`` (default) the KL is analytic where registered; ``"trace"`` samples it.
    """

    def __init__(self, beta: float = 4.0, estimator: str = "meanfield", num_particles: int = 1):
        super().__init__()
        if not float(beta) > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if estimator not in ("meanfield", "trace"):
            raise ValueError(f"unknown estimator {estimator!r}; valid: meanfield, trace")
        self.beta = float(beta)
        self.estimator = estimator
        self.num_particles = _check_particles(num_particles)

    def model_and_guide(self) -> Tuple[Callable, Callable]:
        return scale_latents(self.model.model, self.beta), scale_latents(self.guide.guide, self.beta)

    def make_elbo(self) -> infer.ELBO:
        cls = infer.TraceMeanField_ELBO if self.estimator == "meanfield" else infer.Trace_ELBO
        return cls(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=self.model.max_plate_nesting,
        )
