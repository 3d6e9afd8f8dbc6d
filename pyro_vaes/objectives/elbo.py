"""Pyro's ELBO estimators as objectives: ``elbo``, ``meanfield-elbo``, ``enum-elbo``, ``renyi``, ``iwae``."""

from __future__ import annotations

import math
from typing import Any

import pyro.infer as infer
import torch
from pyro.infer.util import get_dependent_plate_dims, torch_sum

from pyro_vaes.objectives.base import Objective, check_particles
from pyro_vaes.plumbing.fastpaths import LeanTrace_ELBO, LeanTraceEnum_ELBO
from pyro_vaes.registry import OBJECTIVES


@OBJECTIVES.register("elbo")
class ELBO(Objective):
    """Trace_ELBO: the Monte-Carlo ELBO, every term sampled (stepped through ``fastpaths.LeanTrace_ELBO``: Trace_ELBO
    with less bookkeeping, bitwise the same gradients)."""

    #: the Pyro estimator; subclasses swap it
    elbo_class: Any = LeanTrace_ELBO
    extra_elbo_args: dict[str, Any] = {}

    def __init__(self, num_particles: int = 1):
        super().__init__()
        self.num_particles = check_particles(num_particles)

    def make_elbo(self) -> infer.ELBO:
        return self.elbo_class(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=self.model.max_plate_nesting,
            **self.extra_elbo_args,
        )


@OBJECTIVES.register("meanfield-elbo")
class MeanFieldELBO(ELBO):
    """TraceMeanField_ELBO: the ELBO with analytic KL(q ‖ p) per latent site (mean-field guides only)."""

    requires = frozenset({"guide", "no-enumeration", "mean-field"})
    elbo_class = infer.TraceMeanField_ELBO


@OBJECTIVES.register("enum-elbo")
class EnumELBO(ELBO):
    """TraceEnum_ELBO: discrete sites marked ``infer={'enumerate': 'parallel'}`` are summed out exactly (stepped
    through ``fastpaths.LeanTraceEnum_ELBO``: where the guide enumerates one leaf site, the same sum without the
    contraction machinery, gradients equal to float rounding)."""

    requires = frozenset({"guide"})
    elbo_class = LeanTraceEnum_ELBO
    extra_elbo_args = {"strict_enumeration_warning": False}


class DifferentiableRenyiELBO(infer.RenyiELBO):
    """Pyro's ``RenyiELBO`` with a ``differentiable_loss`` for reparameterized guides.

    Returns −1/(1−α) Σ_i [logsumexp_k (1−α) log w_ik − log K] (Li & Turner, 2016, eq. 5, per datum), whose
    gradient is the one ``RenyiELBO.loss_and_grads`` forms from its self-normalised surrogate.
    """

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        particles = []
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            sum_dims = get_dependent_plate_dims(model_trace.nodes.values())
            log_w = 0.0
            for site in model_trace.nodes.values():
                if site["type"] == "sample":
                    log_w = log_w + torch_sum(site["log_prob"], sum_dims)
            for site in guide_trace.nodes.values():
                if site["type"] == "sample":
                    if not site["fn"].has_rsample:
                        raise NotImplementedError(
                            f"the Rényi/IWAE objective needs reparameterized guide sites; {site['name']!r} is not"
                        )
                    log_w = log_w - torch_sum(site["log_prob"], sum_dims)
            particles.append(log_w)
        log_w = particles[0] if self.vectorize_particles and self.num_particles > 1 else torch.stack(particles)
        scaled = (1.0 - self.alpha) * log_w
        bound = (torch.logsumexp(scaled, dim=0) - math.log(self.num_particles)).sum() / (1.0 - self.alpha)
        return -bound


@OBJECTIVES.register("renyi")
class Renyi(Objective):
    """RenyiELBO: the Rényi-α bound (Li & Turner, 2016) with K particles; α = 0 is the IWAE bound."""

    def __init__(self, alpha: float = 0.5, num_particles: int = 5):
        super().__init__()
        if float(alpha) == 1.0:
            raise ValueError("alpha = 1 is the ELBO itself: use --objective elbo")
        self.alpha = float(alpha)
        self.num_particles = check_particles(num_particles)

    def make_elbo(self) -> infer.ELBO:
        return DifferentiableRenyiELBO(
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
