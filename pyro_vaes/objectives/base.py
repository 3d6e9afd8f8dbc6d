r"""The objective contract: how a model/guide pair is fitted, chosen independently of both.

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
for (None: any), and ``requires`` lists what it needs of the pair (:data:`REQUIREMENTS`):

==================  ===========================================================================================
``guide``           a Pyro guide (refuses guide-less models such as a GAN)
``no-enumeration``  no discrete site summed out by enumeration (estimators that would sample it instead)
``code``            a per-datum continuous code site (B, d) (``model.code_site``), e.g. for a TC estimate
``labels``          a label-conditioned model of either kind (``model.labels`` is ``"class"`` or ``"binary"``)
``class-labels``    a model of one integer class per datum (``model.labels == "class"``: N-VAE, the GANs)
``binary-labels``   a model of k non-exclusive 0/1 labels per datum (``model.labels == "binary"``: CSVAE)
``mean-field``      a guide that factorises over the latent sites in the model's order (analytic per-site KLs)
==================  ===========================================================================================

Seams for objectives with networks (an objective's main loss and its networks' losses meet only through these):

* :func:`frozen_call` — a network evaluated with its parameters detached. The main loss reads a network's output
  through it, so gradients reach the inputs (the encoder's codes, the generator's fakes) and never the network's
  parameters: the main step writes no gradient into a network, whatever the order of the steps.
* :class:`Handoff` (``objective.handoff``) — values the main loss passes to a network's loss within one training
  step, keyed by a name and by the batch: the main loss records (``put``), e.g., the detached codes it drew for
  (x, y); the network's loss collects them (``take``) for the batch it is given (an equal batch, not necessarily the
  same tensor object), or gets None and draws afresh. FactorVAE's discriminator and CSVAE's adversary train on the very codes
  the main step drew (:meth:`~pyro_vaes.objectives.terms.RegularizedELBO.network_codes`), so a step consumes the
  random stream once, and a resumed run repeats the uninterrupted one bit for bit.
* :class:`ScaleSites` — ``poutine.scale`` on chosen sites, wrapped around the model and the guide
  (:meth:`Objective.model_and_guide`): a KL weight on every latent site (β-VAE) or one weight per named site
  (CSVAE's β1–β3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.infer as infer
import torch
from pyro.poutine.messenger import Messenger
from torch import nn
from torch.func import functional_call

#: what an objective may require of a model/guide pair (see the module docstring)
REQUIREMENTS = ("guide", "no-enumeration", "code", "labels", "class-labels", "binary-labels", "mean-field")

#: the label kinds a model declares (``model.labels``), and how a refusal names them
LABEL_KINDS = {
    "class": "class labels (one integer class per datum)",
    "binary": "binary labels (k 0/1 labels per datum)",
}


class ScaleSites(Messenger):
    """``poutine.scale`` on chosen sample sites: multiplies their log-densities by a weight.

    ``scale`` a number: every latent (unobserved) sample site, by that weight — around the model **and** the guide it
    multiplies log p(z) and log q(z | x), so every ELBO estimator (``TraceMeanField_ELBO`` included, which reads only
    the guide-side scale of its analytic KL) sees ``scale · KL`` while the likelihood keeps weight 1 (β-VAE's β).
    ``scale`` a mapping ``{site: weight}``: each named site, observed or latent, by its own weight (others
    untouched): a likelihood weight and a KL weight per site (CSVAE's β1–β3). Weights must be > 0 (``poutine.scale``
    refuses 0).
    """

    def __init__(self, scale: float | Mapping[str, float]):
        super().__init__()
        if isinstance(scale, Mapping):
            for name, s in scale.items():
                if not s > 0:
                    raise ValueError(f"the weight of site {name!r} must be > 0, got {s}")
            self.scales: dict[str, float] | None = dict(scale)
            self.scale = None
        else:
            if not scale > 0:
                raise ValueError(f"a KL weight must be > 0 (poutine.scale refuses 0), got {scale}")
            self.scales, self.scale = None, scale

    def _process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] != "sample":
            return
        if self.scales is None:
            if not msg["is_observed"]:
                msg["scale"] = self.scale * msg["scale"]
        elif msg["name"] in self.scales:
            msg["scale"] = self.scales[msg["name"]] * msg["scale"]


def scale_sites(fn: Callable, scale: float | Mapping[str, float]) -> Callable:
    """``fn`` run under :class:`ScaleSites` (``scale`` a number: every latent site; a mapping: each named site)."""

    def scaled(*args, **kwargs):
        with ScaleSites(scale):
            return fn(*args, **kwargs)

    return scaled


#: the 0.2.0 names: a KL weight on every latent site is ``ScaleSites(scale)``
ScaleLatents = ScaleSites
scale_latents = scale_sites


def frozen_call(module: nn.Module, *inputs: Any) -> Any:
    """``module(*inputs)`` computed with the module's parameters detached (``torch.func.functional_call``).

    The output is the same as ``module(*inputs)`` and its gradient flows into ``inputs`` only: a loss that reads a
    network through this — a generator's loss reading its discriminator, an encoder's penalty reading an adversary —
    writes no gradient into the network's parameters. Buffers are the module's own (a train-mode batch norm still
    updates its statistics).
    """
    params = {k: v.detach() for k, v in module.named_parameters()}
    return functional_call(module, params, inputs)


def _same_tensor(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Whether two (optional) batch tensors hold the same values: the same object, or equal shape, dtype, device
    and elements."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and bool(torch.equal(a, b))


class Handoff:
    """Values an objective's main loss hands to a network's loss within one training step, keyed by name and batch.

    ``put(name, value, x, y)`` records ``value`` (detach it: the network's step must not reach back into the main
    graph) for the batch (x, y); ``take(name, x, y)`` returns the value recorded under ``name`` for an equal batch —
    the same tensors, or tensors of equal shape, dtype, device and values — and forgets it, or returns None when
    nothing was recorded for that batch (then the caller draws afresh). The newest matching record wins; at most
    ``capacity`` batches are kept per name (the oldest dropped), enough for a step's data-parallel shards stepped in
    one process. The batch must not be modified in place between the two losses.
    """

    def __init__(self, capacity: int = 4):
        if isinstance(capacity, bool) or int(capacity) < 1:
            raise ValueError(f"a handoff's capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = int(capacity)
        self._records: dict[str, list[tuple[torch.Tensor, torch.Tensor | None, Any]]] = {}

    def put(self, name: str, value: Any, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Record ``value`` under ``name`` for the batch (x, y)."""
        records = self._records.setdefault(name, [])
        records.append((x, y, value))
        del records[: -self.capacity]

    def take(self, name: str, x: torch.Tensor, y: torch.Tensor | None = None) -> Any | None:
        """The value recorded under ``name`` for a batch equal to (x, y), forgotten once taken; None if none is."""
        records = self._records.get(name, [])
        for i in range(len(records) - 1, -1, -1):
            rx, ry, value = records[i]
            if _same_tensor(rx, x) and _same_tensor(ry, y):
                del records[i]
                return value
        return None

    def clear(self) -> None:
        """Forget every record."""
        self._records.clear()

    def __len__(self) -> int:
        return sum(len(r) for r in self._records.values())


@dataclass
class AuxiliaryNetwork:
    """A network an objective brings, stepped by its own Adam optimizer.

    ``lr`` None uses the run's ``aux_lr``; ``betas`` are Adam's (FactorVAE's discriminator: (0.5, 0.9)).
    ``loss_reduction`` says how :meth:`Objective.network_loss` aggregates the batch's rows, ``"sum"`` or ``"mean"``:
    data-parallel training sums the ranks' gradients of a summed loss and averages those of a mean, so that W ranks
    step on the gradient of the whole batch's loss. The main loss reads the network through :func:`frozen_call`.
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
        #: what the main loss hands to the networks' losses within a training step (see :class:`Handoff`)
        self.handoff = Handoff()

    # -- compatibility, checked before anything is built ---------------------------------------------------------
    @classmethod
    def incompatibility(
        cls, model_name: str, model_cls: type, guide_name: str | None, guide_cls: type | None
    ) -> str | None:
        """Why this objective cannot fit the pair, or None when it can (reads class declarations only).

        Raises ValueError when ``requires`` names something that is not a requirement (a typo in a declaration)."""
        unknown = sorted(set(cls.requires) - set(REQUIREMENTS))
        if unknown:
            raise ValueError(
                f"objective {cls.__name__} requires unknown {', '.join(map(repr, unknown))}; "
                f"declare requires from: {', '.join(REQUIREMENTS)}"
            )
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
        labels = getattr(model_cls, "labels", None)
        if "labels" in cls.requires and labels is None:
            return f"model {model_name!r} is not label-conditioned"
        for kind in LABEL_KINDS:
            if f"{kind}-labels" in cls.requires and labels != kind:
                has = (
                    "is not label-conditioned"
                    if labels is None
                    else f"is conditioned on {LABEL_KINDS.get(labels, labels)}"
                )
                return f"it needs a model of {LABEL_KINDS[kind]} and model {model_name!r} {has}"
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
