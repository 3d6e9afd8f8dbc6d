"""The objective contract: how a model/guide pair is fitted, chosen independently of both.

An objective is built from its own arguments (``Objective(**objective_args)``), checked against a model and a
guide by name *before* anything is built (:meth:`Objective.incompatibility`), then bound to the built pair
and the training-set size (:meth:`Objective.bind`). Bound, it gives

* :meth:`Objective.loss` — the main differentiable loss of a batch (the negative of a bound, summed over the
  batch), minimised by the main optimizer over the model's and guide's parameters;
* :meth:`Objective.networks` — the auxiliary networks it brings (FactorVAE's discriminator, CSVAE's adversary,
  a GAN's discriminator), each with its own optimizer settings, and :meth:`Objective.network_loss` for each;
* ``step_order`` — the order in which the optimizers step within one training step (``"main"`` is the model
  and guide; by default the main step, then each auxiliary network);
* :meth:`Objective.svi` — a :class:`pyro.infer.SVI` over the main loss (the classic Pyro backend);
* :meth:`Objective.at_step` — a hook for schedules (annealed capacities).

Compatibility is declared, not discovered by failing: ``models`` / ``guides`` name what an objective is written
for (None: any), and ``requires`` lists what it needs of the pair:

=================  ============================================================================================
``guide``          a Pyro guide (refuses guide-less models such as a GAN)
``no-enumeration`` no discrete site summed out by enumeration (estimators that would sample it instead)
``code``           a per-datum continuous code site (B, d) (``model.code_site``), e.g. for a TC estimate
``labels``         a label-conditioned model (``model.labels`` is set)
``mean-field``     a guide that factorises over the latent sites in the model's order (analytic per-site KLs)
=================  ============================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.infer as infer
import torch
from pyro.poutine.messenger import Messenger
from torch import nn

REQUIREMENTS = ("guide", "no-enumeration", "code", "labels", "mean-field")


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

    def _process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = self.scale * msg["scale"]


def scale_latents(fn: Callable, scale: float) -> Callable:
    """``fn`` with every latent sample site's log-density multiplied by ``scale``."""

    def scaled(*args, **kwargs):
        with ScaleLatents(scale):
            return fn(*args, **kwargs)

    return scaled


@dataclass
class AuxiliaryNetwork:
    """A network an objective brings, stepped by its own Adam optimizer.

    ``lr`` None uses the run's ``aux_lr``; ``betas`` are Adam's (FactorVAE's discriminator: (0.5, 0.9)).
    ``loss_reduction`` says how :meth:`Objective.network_loss` aggregates the batch's rows, ``"sum"`` or ``"mean"``:
    data-parallel training sums the ranks' gradients of a summed loss and averages those of a mean, so that W ranks
    step on the gradient of the whole batch's loss.
    """

    module: nn.Module
    lr: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    loss_reduction: str = "sum"

    def __post_init__(self) -> None:
        if self.loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {self.loss_reduction!r}")


class Objective:
    """Base class: a Pyro ELBO (or a custom loss) applied to a bound model and guide."""

    #: model names this objective is written for (None: any model that meets ``requires``)
    models: tuple[str, ...] | None = None
    #: guide names it is written for (None: any guide of the model)
    guides: tuple[str, ...] | None = None
    #: what it needs of the model/guide pair (see the module docstring)
    requires: frozenset[str] = frozenset({"guide", "no-enumeration"})
    #: Adam's betas for the main optimizer (model and guide)
    main_betas: tuple[float, float] = (0.9, 0.999)
    #: order of the optimizer steps within one training step; None: "main", then every auxiliary network
    step_order: tuple[str, ...] | None = None
    #: small constructor arguments for the contract tests
    example_args: dict[str, Any] = {}

    def __init__(self) -> None:
        self.model: Any = None
        self.guide: Any = None
        self.elbo: Any = None
        self.num_data: int | None = None

    # -- compatibility, checked before anything is built ---------------------------------------------------------
    @classmethod
    def incompatibility(
        cls, model_name: str, model_cls: type, guide_name: str | None, guide_cls: type | None
    ) -> str | None:
        """Why this objective cannot fit the pair, or None when it can (reads class declarations only)."""
        if cls.models is not None and model_name not in cls.models:
            return f"it is written for model {', '.join(cls.models)}"
        if cls.guides is not None and guide_name not in cls.guides:
            return f"it is written for guide {', '.join(cls.guides)}"
        if "guide" in cls.requires and guide_cls is None:
            return f"it fits a model/guide pair and model {model_name!r} has no guide"
        if "no-enumeration" in cls.requires and model_cls.enumerated_sites:
            return (
                f"model {model_name!r} sums out {', '.join(model_cls.enumerated_sites)} by enumeration, "
                "which this estimator would sample instead"
            )
        if "code" in cls.requires and not model_cls.code_site:
            return f"model {model_name!r} has no per-datum code site"
        if "labels" in cls.requires and model_cls.labels is None:
            return f"model {model_name!r} is not label-conditioned"
        if "mean-field" in cls.requires and guide_cls is not None and not guide_cls.mean_field:
            return f"guide {guide_name!r} is not mean-field (it conditions one latent on another)"
        return None

    # -- binding -------------------------------------------------------------------------------------------------
    def bind(self, model: nn.Module, guide: nn.Module | None, num_data: int | None = None) -> Objective:
        """Attach the built model and guide (and the training-set size, for estimators that need it)."""
        self.model, self.guide, self.num_data = model, guide, num_data
        self.elbo = self.make_elbo()
        return self

    def model_and_guide(self) -> tuple[Callable, Callable]:
        """The model and guide callables the loss sees (objectives wrap them, e.g. with a KL weight)."""
        return self.model.model, self.guide.guide

    def make_elbo(self) -> Any:
        """The Pyro ELBO (or a callable ``loss(model, guide, x, y)``) this objective minimises; None for an objective
        that overrides :meth:`loss` itself."""
        return None

    def networks(self) -> dict[str, AuxiliaryNetwork]:
        """The auxiliary networks this objective trains with their own optimizers (built by :meth:`bind`)."""
        return {}

    def optimizer_order(self) -> tuple[str, ...]:
        """The optimizers in the order they step: ``step_order``, or "main" followed by every auxiliary."""
        return self.step_order if self.step_order is not None else ("main", *self.networks())

    # -- losses --------------------------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The main differentiable loss for one batch (the negative of the bound, summed over the batch)."""
        model_fn, guide_fn = self.model_and_guide()
        fn = self.elbo.differentiable_loss if isinstance(self.elbo, infer.ELBO) else self.elbo
        return fn(model_fn, guide_fn, x, y)

    def network_loss(self, name: str, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The loss the auxiliary network ``name`` minimises on this batch."""
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary network {name!r}")

    @torch.no_grad()
    def evaluate_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
        """The main loss for one batch without gradients (held-out evaluation)."""
        model_fn, guide_fn = self.model_and_guide()
        if isinstance(self.elbo, infer.ELBO):  # Pyro's .loss runs under no_grad (TraceEnum's
            return float(self.elbo.loss(model_fn, guide_fn, x, y))  # differentiable_loss refuses to)
        return float(self.loss(x, y))

    def svi(self, optim: pyro.optim.PyroOptim) -> infer.SVI:
        """Classic Pyro SVI over the main loss (custom losses receive the model and guide callables)."""
        model_fn, guide_fn = self.model_and_guide()
        loss = self.elbo if self.elbo is not None else (lambda model, guide, x, y=None: self.loss(x, y))
        return infer.SVI(model_fn, guide_fn, optim, loss=loss)

    # -- hooks ---------------------------------------------------------------------------------------------------
    def at_step(self, step: int) -> None:
        """Called before each training step (for schedules)."""


def check_particles(num_particles: int) -> int:
    """``num_particles`` as an int >= 1."""
    if isinstance(num_particles, bool) or int(num_particles) != num_particles or int(num_particles) < 1:
        raise ValueError(f"num_particles must be an integer >= 1, got {num_particles!r}")
    return int(num_particles)
