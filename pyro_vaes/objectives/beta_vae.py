"""KL-weighted objectives: β-VAE-H (Higgins et al., 2017) and β-VAE-B (Burgess et al., 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple

import pyro.infer as infer
import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

from pyro_vaes.objectives.base import Objective, scale_latents
from pyro_vaes.objectives.elbo import _check_particles
from pyro_vaes.registry import OBJECTIVES


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


# -- β-VAE-B (Burgess et al., 2018) ------------------------------------------------------------------------------


@dataclass
class ELBOTerms:
    """One guide draw per datum and the ELBO's parts for a batch (every number summed over the batch).

    ``recon`` = Σ_i log p(x_i | z_i) over the observed sites; ``kl`` = Σ_i KL(q(·|x_i) ‖ p(·)) over the latent
    sites (analytic where torch/Pyro register one, else the one-sample estimate log q − log p); ``kl_sites``
    per site; ``guide_trace`` and ``model_trace`` for anything else (e.g. the sampled ``z``).
    """

    recon: torch.Tensor
    kl: torch.Tensor
    kl_sites: Dict[str, torch.Tensor]
    guide_trace: Any
    model_trace: Any

    def value(self, name: str) -> torch.Tensor:
        if name not in self.guide_trace.nodes:
            raise KeyError(f"the guide has no sample site {name!r}; its sites: "
                           f"{[n for n, s in self.guide_trace.nodes.items() if s['type'] == 'sample']}")
        return self.guide_trace.nodes[name]["value"]


def elbo_terms(model_fn: Callable, guide_fn: Callable, x: torch.Tensor, y=None, analytic_kl: bool = True) -> ELBOTerms:
    """Trace the guide, replay the model on its draws and split the ELBO into reconstruction and KL.

    ELBO = recon − kl (Kingma & Welling, 2014, eq. 7). Requires a reparameterised guide (no score-function
    term is added), which every Gaussian guide in the zoo is.
    """
    guide_trace = poutine.trace(guide_fn).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model_fn, trace=guide_trace)).get_trace(x, y)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    recon = x.new_zeros(())
    kl_sites: Dict[str, torch.Tensor] = {}
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if site["is_observed"]:
            recon = recon + site["log_prob_sum"]
            continue
        q_site = guide_trace.nodes.get(name)
        if q_site is None:
            raise ValueError(f"latent site {name!r} of the model is not sampled by the guide")
        if not getattr(q_site["fn"], "has_rsample", False):
            raise ValueError(f"guide site {name!r} is not reparameterised; this objective needs rsample")
        kl = None
        if analytic_kl:
            try:
                kl = kl_divergence(q_site["fn"], site["fn"])
                kl = scale_and_mask(kl, q_site["scale"], q_site["mask"]).sum()
            except NotImplementedError:
                kl = None
        if kl is None:
            kl = q_site["log_prob_sum"] - site["log_prob_sum"]
        kl_sites[name] = kl
    kl_total = sum(kl_sites.values()) if kl_sites else x.new_zeros(())
    return ELBOTerms(recon, kl_total, kl_sites, guide_trace, model_trace)


@OBJECTIVES.register("beta-vae-b")
class BetaVAEB(Objective):
    """β-VAE-B, controlled capacity (Burgess et al., 2018, eq. 8): E_q[log p(x | z)] − γ |KL(q(z|x) ‖ p(z)) − C|.

    The capacity C grows linearly from 0 at step 0 to ``c_max`` nats at ``anneal_steps`` and stays there
    (set by :meth:`at_step`, which the engine calls before each step). As in the authors' and 1Konny's code,
    the KL inside |·| is the batch mean of the per-datum KL, so the loss of a batch of B data is

        loss = − Σ_i log p(x_i | z_i) + B · γ · |(1/B) Σ_i KL_i − C|.

    Defaults are the paper's dSprites settings (γ = 1000, C_max = 25 nats over 100,000 steps). KL is analytic
    where registered (Gaussian guides), otherwise a one-sample estimate.
    """

    def __init__(self, gamma: float = 1000.0, c_max: float = 25.0, anneal_steps: int = 100000, analytic_kl: bool = True):
        super().__init__()
        if not float(gamma) > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if not float(c_max) >= 0:
            raise ValueError(f"c_max must be >= 0, got {c_max}")
        if int(anneal_steps) < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {anneal_steps}")
        self.gamma = float(gamma)
        self.c_max = float(c_max)
        self.anneal_steps = int(anneal_steps)
        self.analytic_kl = bool(analytic_kl)
        self.capacity = 0.0 if self.anneal_steps > 0 else self.c_max

    def at_step(self, step: int) -> None:
        """C(step) = min(C_max, C_max · step / anneal_steps)."""
        self.capacity = self.c_max if self.anneal_steps == 0 else min(self.c_max, self.c_max * step / self.anneal_steps)

    def make_elbo(self) -> Callable:
        def loss(model_fn, guide_fn, x, y=None):
            t = elbo_terms(model_fn, guide_fn, x, y, self.analytic_kl)
            b = x.shape[0]
            return -t.recon + b * self.gamma * (t.kl / b - self.capacity).abs()

        return loss
