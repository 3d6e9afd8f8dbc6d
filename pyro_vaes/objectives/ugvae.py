"""UG-VAE's loss in closed form, as the authors' ``UGVAE.loss_function`` computes it (Peis et al., arXiv
2012.08234, eq. 10-11; papers.md §1.3), written in plain PyTorch on the model's and guide's networks.

With one reparameterised draw z_i = μ_z,i + σ_z,i ε_i, π_i = π(z_i), β = μ_β + σ_β ε_β (all summed over
the batch, no subsample scaling)::

    loss = − Σ_i log p(x_i | z_i, β)                                   reconstruction
           + Σ_i Σ_k π_ik KL(q(z_i | x_i) ‖ N(μ_k(β), σ_k²(β)))        KL of z expected under q(d | z)
           + Σ_i Σ_k π_ik (log π_ik + log K)                           KL(q(d_i | z_i) ‖ Uniform(K))
           + KL(q(β | X, Z) ‖ N(0, I))                                 once per batch

``estimator="sampled"`` replaces the two Gaussian KLs by their one-draw estimates, Σ_k π_ik [log q(z_i | x_i)
− log p(z_i | k, β)] and log q(β | X, Z) − log p(β): exactly the quantity ``TraceEnum_ELBO`` computes for the
``ugvae-structured`` guide (it sums over d analytically and samples z and β). The two estimators have the
same expectation when π does not depend on z; with π = π(z) the authors' plug-in is not exactly the ELBO
(papers.md §1.3), which is why ``enum-elbo`` is the default objective and this one is offered to match the
authors' code.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional

import pyro.infer as infer
import torch
from torch.distributions import Normal, kl_divergence

from pyro_vaes.params import register
from pyro_vaes.objectives.base import Objective
from pyro_vaes.registry import OBJECTIVES

ESTIMATORS = ("analytic", "sampled")


def ugvae_loss_terms(
    model,
    guide,
    x: torch.Tensor,
    eps_z: Optional[torch.Tensor] = None,
    eps_beta: Optional[torch.Tensor] = None,
    estimator: str = "analytic",
) -> Dict[str, torch.Tensor]:
    """The terms of the UG-VAE loss for one batch (see the module docstring); ``total`` is their sum.

    ``model`` is a :class:`~pyro_vaes.models.ugvae.UGVAE`; ``guide`` any UG-VAE guide with ``local``,
    ``d_logits`` and ``beta_params`` (``ugvae-structured``, ``ugvae-meanfield``). ``eps_z`` (B, z_dim) and
    ``eps_beta`` (beta_dim,) fix the standard-normal noise (drawn when omitted).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    h, z_loc, z_scale = guide.local(x)
    if eps_z is None:
        eps_z = torch.randn_like(z_loc)
    z = z_loc + z_scale * eps_z
    log_pi = guide.d_logits(h, z)  # (B, K)
    pi = log_pi.exp()
    b_loc, b_scale = guide.beta_params(h, pi)
    if eps_beta is None:
        eps_beta = torch.randn_like(b_loc)
    beta = b_loc + b_scale * eps_beta
    p_loc, p_scale = model.prior_z(beta)  # (K, z_dim)
    raw = model.decoder(torch.cat([z, beta.expand(z.shape[0], -1)], -1))
    recon = -model.observation(raw).log_prob(x).sum()
    q_z = Normal(z_loc.unsqueeze(-2), z_scale.unsqueeze(-2))  # (B, 1, z_dim) against (K, z_dim)
    p_z = Normal(p_loc, p_scale)
    q_beta, p_beta = Normal(b_loc, b_scale), Normal(torch.zeros_like(b_loc), torch.ones_like(b_scale))
    if estimator == "analytic":
        kl_z_k = kl_divergence(q_z, p_z).sum(-1)  # (B, K)
        kl_beta = kl_divergence(q_beta, p_beta).sum()
    else:
        zz = z.unsqueeze(-2)
        kl_z_k = (q_z.log_prob(zz) - p_z.log_prob(zz)).sum(-1)
        kl_beta = (q_beta.log_prob(beta) - p_beta.log_prob(beta)).sum()
    kl_z = (pi * kl_z_k).sum()
    kl_d = (pi * (log_pi + math.log(model.K))).sum()
    total = recon + kl_z + kl_d + kl_beta
    return {"total": total, "recon": recon, "kl_z": kl_z, "kl_d": kl_d, "kl_beta": kl_beta}


def ugvae_closed_form_loss(model, guide, x: torch.Tensor, estimator: str = "analytic") -> torch.Tensor:
    """The authors' loss (−ELBO with analytic KLs, summed over the batch) as one differentiable tensor."""
    return ugvae_loss_terms(model, guide, x, estimator=estimator)["total"]


@OBJECTIVES.register("ugvae-closed-form")
class UGVAEClosedForm(Objective):
    """UG-VAE's closed-form loss as the authors' code computes it (analytic KLs, π from the sampled z).

    Fits the ``ugvae`` model with the ``ugvae-structured`` or ``ugvae-meanfield`` guide.
    """

    def __init__(self, estimator: str = "analytic"):
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
        self.estimator = estimator

    def bind(self, model, guide) -> "UGVAEClosedForm":
        from pyro_vaes.guides.ugvae import UGVAEMarginalGuide
        from pyro_vaes.models.ugvae import UGVAE

        if not isinstance(model, UGVAE) or not hasattr(guide, "d_logits") or isinstance(guide, UGVAEMarginalGuide):
            raise ValueError(
                "objective ugvae-closed-form fits the ugvae model with the ugvae-structured or ugvae-meanfield "
                f"guide, got {type(model).__name__} / {type(guide).__name__}; use --objective enum-elbo"
            )
        return super().bind(model, guide)

    def make_elbo(self) -> Callable:
        def loss(model_fn, guide_fn, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
            register(self.model)  # so SVI finds the parameters
            register(self.guide)
            return ugvae_closed_form_loss(self.model, self.guide, x, self.estimator)

        return loss

    def loss(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        return ugvae_closed_form_loss(self.model, self.guide, x, self.estimator)

    def svi(self, optim) -> infer.SVI:
        return infer.SVI(self.model.model, self.guide.guide, optim, loss=self.make_elbo())
