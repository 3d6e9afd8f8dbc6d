"""UG-VAE's loss in closed form, as the authors' ``UGVAE.loss_function`` computes it (Peis et al., arXiv
2012.08234, eq. 10-11), read off traces of the model and guide it is given.

With one reparameterised draw z_i = μ_z,i + σ_z,i ε_i, π_i = π(z_i), β = μ_β + σ_β ε_β (all summed over
the batch, no subsample scaling)::

    loss = − Σ_i log p(x_i | z_i, β)                                   reconstruction
           + Σ_i Σ_k π_ik KL(q(z_i | x_i) ‖ N(μ_k(β), σ_k²(β)))        KL of z expected under q(d | z)
           + Σ_i Σ_k π_ik (log π_ik + log K)                           KL(q(d_i | z_i) ‖ Uniform(K))
           + KL(q(β | X, Z) ‖ N(0, I))                                 once per batch

The guide is traced with d enumerated (a (K, 1) value left of the data plate, its log-density log π_ik) and the
model replayed on it, so p(z | d, β) has one row per component; each term is multiplied by its site's scale,
so wrappers such as a KL weight apply to it as to any ELBO.

``estimator="sampled"`` replaces the two Gaussian KLs by their one-draw estimates, Σ_k π_ik [log q(z_i | x_i)
− log p(z_i | k, β)] and log q(β | X, Z) − log p(β): exactly the quantity ``TraceEnum_ELBO`` computes for the
``ugvae-structured`` guide (it sums over d analytically and samples z and β).

**What it is.** With π = π(z) the analytic version is *not* an unbiased estimate of the ELBO: it replaces
E_{q(z)}[π(z)·log-ratio(z)] by π(z)·E_{q(z)}[log-ratio], which ignores the dependence of π on z (at
initialisation it is several nats off the ELBO; ``tests/test_ugvae.py`` shows both agree exactly when π does
not depend on z). It is the authors' training loss, a lower-variance surrogate of the negative ELBO, offered to
match their code; ``enum-elbo`` (the default for ``ugvae``) is the unbiased estimate of the same bound.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro.poutine as poutine
import torch
from torch.distributions import kl_divergence

from pyro_vaes.objectives.base import Objective
from pyro_vaes.registry import OBJECTIVES

ESTIMATORS = ("analytic", "sampled")


def ugvae_loss_terms(
    model_fn: Callable,
    guide_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    estimator: str = "analytic",
) -> dict[str, torch.Tensor]:
    """The terms of the UG-VAE loss for one batch (see the module docstring); ``total`` is their sum.

    ``model_fn`` is a UG-VAE ``model`` and ``guide_fn`` a guide that enumerates d (``ugvae-structured`` or
    ``ugvae-meanfield``), both possibly wrapped (a replayed guide fixes the draws of z and β).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    guide_trace = poutine.trace(poutine.enum(guide_fn, first_available_dim=-2)).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model_fn, trace=guide_trace)).get_trace(x, y)
    q_z, q_d, q_b = (guide_trace.nodes[s] for s in ("z", "d", "beta"))
    p_z, p_d, p_b, obs = (model_trace.nodes[s] for s in ("z", "d", "beta", "x"))
    log_pi = q_d["fn"].log_prob(q_d["value"])  # (K, B): log q(d_i = k | z_i)
    pi = log_pi.exp()
    recon = -(obs["fn"].log_prob(obs["value"]) * obs["scale"]).sum()
    if estimator == "analytic":
        kl_z_k = kl_divergence(q_z["fn"], p_z["fn"])  # (K, B)
        kl_beta = kl_divergence(q_b["fn"], p_b["fn"]).sum()
    else:
        kl_z_k = q_z["fn"].log_prob(q_z["value"]) - p_z["fn"].log_prob(q_z["value"])
        kl_beta = (q_b["fn"].log_prob(q_b["value"]) - p_b["fn"].log_prob(q_b["value"])).sum()
    kl_z = (pi * kl_z_k).sum() * q_z["scale"]
    kl_d = (pi * (log_pi - p_d["fn"].log_prob(p_d["value"]))).sum() * q_d["scale"]
    kl_beta = kl_beta * q_b["scale"]
    total = recon + kl_z + kl_d + kl_beta
    return {"total": total, "recon": recon, "kl_z": kl_z, "kl_d": kl_d, "kl_beta": kl_beta}


@OBJECTIVES.register("ugvae-closed-form")
class UGVAEClosedForm(Objective):
    """UG-VAE's closed-form loss as the authors' code computes it (analytic KLs, π from the sampled z).

    Fits the ``ugvae`` model with the ``ugvae-structured`` or ``ugvae-meanfield`` guide (both enumerate d).
    """

    models = ("ugvae",)
    guides = ("ugvae-structured", "ugvae-meanfield")
    requires = frozenset({"guide"})

    def __init__(self, estimator: str = "analytic"):
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
        self.estimator = estimator

    def bind(self, model, guide, num_data=None) -> UGVAEClosedForm:
        if "d" not in getattr(guide, "enumerated_sites", ()) or not hasattr(model, "prior_z"):
            raise ValueError(
                "objective ugvae-closed-form fits the ugvae model with a guide that enumerates d (ugvae-structured "
                f"or ugvae-meanfield), got {type(model).__name__} / {type(guide).__name__}; use --objective enum-elbo"
            )
        return super().bind(model, guide, num_data)

    def make_elbo(self) -> Callable:
        def loss(model_fn, guide_fn, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            return ugvae_loss_terms(model_fn, guide_fn, x, y, self.estimator)["total"]

        return loss


__all__ = ["UGVAEClosedForm", "ugvae_loss_terms"]
