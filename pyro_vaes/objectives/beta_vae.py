"""KL-weighted objectives: β-VAE-H (Higgins et al., 2017) and β-VAE-B (Burgess et al., 2018)."""

from __future__ import annotations

from collections.abc import Callable

import pyro.infer as infer
import torch

from pyro_vaes.objectives.base import Objective, check_particles, scale_sites
from pyro_vaes.objectives.terms import ELBOTerms, RegularizedELBO
from pyro_vaes.registry import OBJECTIVES

ESTIMATORS = {"meanfield": infer.TraceMeanField_ELBO, "trace": infer.Trace_ELBO, "enum": infer.TraceEnum_ELBO}


@OBJECTIVES.register("beta-vae-h")
class BetaVAEH(Objective):
    """β-VAE (Higgins et al., 2017, eq. 4): E_q[log p(x | z)] − β KL(q(z | x) ‖ p(z)).

    β multiplies every latent site's log-density in model and guide (:class:`~pyro_vaes.objectives.base.ScaleSites`
    with one weight), so it composes with any model and ELBO estimator. ``estimator``: ``auto`` (default: ``enum``
    where the model sums out a discrete site, ``meanfield`` for a mean-field guide, else ``trace``), ``meanfield``
    (analytic KL where registered), ``trace`` (sampled) or ``enum``.
    """

    requires = frozenset({"guide"})

    def __init__(self, beta: float = 4.0, estimator: str = "auto", num_particles: int = 1):
        super().__init__()
        if not float(beta) > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if estimator != "auto" and estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; valid: auto, {', '.join(ESTIMATORS)}")
        self.beta = float(beta)
        self.estimator = estimator
        self.num_particles = check_particles(num_particles)

    def model_and_guide(self) -> tuple[Callable, Callable]:
        return scale_sites(self.model.model, self.beta), scale_sites(self.guide.guide, self.beta)

    def make_elbo(self) -> infer.ELBO:
        estimator = self.estimator
        if estimator == "auto":
            estimator = "enum" if self.model.enumerated_sites else "meanfield" if self.guide.mean_field else "trace"
        elif estimator == "meanfield" and not self.guide.mean_field:
            raise ValueError(
                f"estimator 'meanfield' needs a mean-field guide; {type(self.guide).__name__} is not: "
                "use estimator=trace (or auto)"
            )
        elif estimator != "enum" and self.model.enumerated_sites:
            raise ValueError(
                f"estimator {estimator!r} would sample {', '.join(self.model.enumerated_sites)}, which "
                f"{type(self.model).__name__} sums out: use estimator=enum (or auto)"
            )
        extra = {"strict_enumeration_warning": False} if estimator == "enum" else {}
        return ESTIMATORS[estimator](
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=self.model.max_plate_nesting,
            **extra,
        )


@OBJECTIVES.register("beta-vae-b")
class BetaVAEB(RegularizedELBO):
    """β-VAE-B, controlled capacity (Burgess et al., 2018, eq. 8): E_q[log p(x | z)] − γ |KL(q(z|x) ‖ p(z)) − C|.

    The capacity C grows linearly from 0 at step 0 to ``c_max`` nats at ``anneal_steps`` and stays there
    (set by :meth:`at_step`, which the engine calls before each step). As in the authors' and 1Konny's code,
    the KL inside |·| is the batch mean of the per-datum KL, so the loss of a batch of B data is

        loss = − Σ_i log p(x_i | z_i) + B · γ · |(1/B) Σ_i KL_i − C|.

    Defaults are the paper's dSprites settings (γ = 1000, C_max = 25 nats over 100,000 steps). KL is analytic
    where registered (Gaussian guides), otherwise a one-sample estimate.
    """

    def __init__(
        self, gamma: float = 1000.0, c_max: float = 25.0, anneal_steps: int = 100000, analytic_kl: bool = True
    ):
        super().__init__(analytic_kl)
        if not float(gamma) > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if not float(c_max) >= 0:
            raise ValueError(f"c_max must be >= 0, got {c_max}")
        if int(anneal_steps) < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {anneal_steps}")
        self.gamma = float(gamma)
        self.c_max = float(c_max)
        self.anneal_steps = int(anneal_steps)
        self.capacity = 0.0 if self.anneal_steps > 0 else self.c_max

    def at_step(self, step: int) -> None:
        """C(step) = min(C_max, C_max · step / anneal_steps)."""
        self.capacity = self.c_max if self.anneal_steps == 0 else min(self.c_max, self.c_max * step / self.anneal_steps)

    def kl_term(self, terms: ELBOTerms, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return b * self.gamma * (terms.kl_total / b - self.capacity).abs()
