r"""CHyVAE objectives (Ansari & Soh, 2019): the authors' closed-form bound and the collapsed Student-t bound.

``chyvae-closed-form`` — the loss of the authors' code (``clear-nus/CHyVAE`` ``models.py``; paper appendix A.7, eqs. 21–41), per
datum, with μ, S from q(z | x), one draw z ~ q(z | x) for the reconstruction and a **second, independent**
draw z̃ ~ q(z | x) for the regulariser, M = Ψ + z̃ z̃ᵀ and p = dim z:

    loss(x) = −log p(x | z) − R(x),
    R(x)    = −(ν+1)/2 · log|M| + ½ log|S| − (ν+1)/2 · tr[(S + μμᵀ + Ψ) M⁻¹].

**What R is, exactly.** For the family q(z | x) · IW(Σ; Ψ + z̃z̃ᵀ, ν + 1) with z̃ independent of z (the guide
``chyvae-structured`` with ``sigma_from="independent"``), the regulariser of the ELBO is

    E_{z, Σ}[log N(z; 0, Σ) + log IW(Σ; Ψ, ν) − log IW(Σ; Ψ + z̃z̃ᵀ, ν+1)] + H[q(z | x)]  =  R(x) + K,

analytic in z and Σ (E[zzᵀ] = S + μμᵀ, E_IW[Σ⁻¹] = (ν+1) M⁻¹, and the E[log|Σ|] terms cancel exactly, so
no digamma appears), with the dropped constant

    K = p(ν+2)/2 + (ν/2) log|Ψ| + (p/2) log 2 + log Γ_p((ν+1)/2) − log Γ_p(ν/2)

(it collects −(p/2) log 2π from N, the IW normalisers, the entropy's (p/2)(1 + log 2π) and the constant
−(ν+1)p/2 that the authors' "+Ψ" inside the trace adds: tr[(Ψ + z̃z̃ᵀ) M⁻¹] = p). K depends on ν, p and Ψ only,
so it does not change the gradients; ``constants=True`` adds it back, making the loss an unbiased estimate
of the negative ELBO of that family (what ``tests/test_chyvae.py`` checks against Trace_ELBO).

The loss is computed from traces of the model and guide it is given: q(z | x) from the guide's ``z`` site,
IW(Ψ, ν) from the model's ``sigma`` site, the likelihood from its ``x`` site, each term multiplied by its site's
scale, so wrappers such as a KL weight apply to it as to any ELBO. Nothing reads a draw of Σ, so none is made: the
guide is traced up to its ``sigma`` site and the model replayed with Σ held at Ψ (its ``x`` site depends on z only).

Because z̃ ⟂ z, this family is mean-field given z̃, so its bound is **below** the collapsed bound
(``chyvae-collapsed``, or ``elbo`` with the default structured guide), where q(Σ | z) = p(Σ | z) exactly.

``chyvae-collapsed`` — Σ integrated out: z ~ t_{ν−p+1}(0, Ψ/(ν−p+1)) in the model, q(z | x) in the guide,
fitted with ``Trace_ELBO``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyro.infer as infer
import pyro.poutine as poutine
import torch

from pyro_vaes.objectives.base import Objective, check_particles
from pyro_vaes.plumbing.tracing import trace_until
from pyro_vaes.registry import OBJECTIVES


def dropped_constant(nu: float, psi: torch.Tensor) -> torch.Tensor:
    """K of the module docstring: ELBO regulariser = R(x) + K."""
    p = psi.shape[-1]
    nu_t = torch.tensor(float(nu), dtype=psi.dtype)
    return (
        p * (nu + 2.0) / 2.0
        + 0.5 * nu * torch.logdet(psi)
        + 0.5 * p * math.log(2.0)
        + torch.mvlgamma(0.5 * (nu_t + 1.0), p)
        - torch.mvlgamma(0.5 * nu_t, p)
    )


def closed_form_regulariser(
    loc: torch.Tensor, cov: torch.Tensor, z_tilde: torch.Tensor, psi: torch.Tensor, nu: float
) -> torch.Tensor:
    """R(x) per datum (paper eq. 41 with B = 1, as the authors' code computes it), shape (batch,).

    R = −(ν+1)/2 log|Ψ + z̃z̃ᵀ| + ½ log|S| − (ν+1)/2 tr[(S + μμᵀ + Ψ)(Ψ + z̃z̃ᵀ)⁻¹].
    """
    M = psi + z_tilde.unsqueeze(-1) * z_tilde.unsqueeze(-2)
    L_M = torch.linalg.cholesky(M)
    logdet_M = 2.0 * L_M.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    logdet_S = 2.0 * torch.linalg.cholesky(cov).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    A = cov + loc.unsqueeze(-1) * loc.unsqueeze(-2) + psi
    trace = torch.cholesky_solve(A, L_M).diagonal(dim1=-2, dim2=-1).sum(-1)
    return -0.5 * (nu + 1.0) * logdet_M + 0.5 * logdet_S - 0.5 * (nu + 1.0) * trace


@OBJECTIVES.register("chyvae-closed-form")
class CHyVAEClosedForm(Objective):
    """The authors' closed-form CHyVAE loss, −log p(x|z) − R(x) (paper eq. 41 with B = 1).

    Fits the ``chyvae`` model with the ``chyvae-structured`` guide (the authors' q(z | x)). The returned loss is
    summed over the batch (the authors average; only the scale differs). ``constants=False`` (the authors')
    drops K (see the module docstring); ``True`` adds it, giving the negative ELBO of the independent-z̃ family.
    """

    models = ("chyvae",)
    guides = ("chyvae-structured",)

    def __init__(self, constants: bool = False):
        super().__init__()
        self.constants = bool(constants)

    def bind(self, model, guide, num_data=None) -> CHyVAEClosedForm:
        if not hasattr(model, "psi") or not hasattr(model, "nu") or getattr(model, "collapsed", False):
            raise ValueError(
                "chyvae-closed-form is the CHyVAE bound with Σ sampled: use --model chyvae without "
                "collapsed=true (the collapsed model is fitted by chyvae-collapsed)"
            )
        if not getattr(guide, "conjugate_sigma", False):
            raise ValueError(
                "chyvae-closed-form assumes q(Σ | z̃) = IW(Ψ + z̃z̃ᵀ, ν + 1): use --guide chyvae-structured "
                f"(got {type(guide).__name__})"
            )
        return super().bind(model, guide, num_data)

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(x_i | z_i), R(x_i)) per datum, each of shape (batch,), read off traces of the model and guide
        (each multiplied by its site's scale); z̃ is a second, independent draw from the guide's q(z | x)."""
        model_fn, guide_fn = self.model_and_guide()
        guide_trace, _ = trace_until(guide_fn, "sigma", x, y)  # q(z | x): Σ ~ q(Σ | ·) is never drawn
        # the model with Σ held at Ψ: it builds p(z | Σ) (unused) and p(x | z) at the guide's z, and draws nothing
        conditioned = poutine.condition(model_fn, data={"sigma": self.model.psi})
        model_trace = poutine.trace(poutine.replay(conditioned, trace=guide_trace)).get_trace(x, y)
        z_site, obs = guide_trace.nodes["z"], model_trace.nodes["x"]
        q, prior = z_site["fn"], model_trace.nodes["sigma"]["fn"]
        recon = obs["fn"].log_prob(obs["value"]) * obs["scale"]
        z_tilde = q.rsample()
        reg = closed_form_regulariser(q.loc, q.covariance_matrix, z_tilde, prior.scale_matrix, prior.df)
        if self.constants:
            reg = reg + dropped_constant(self.model.nu, self.model.psi)
        return recon, reg * z_site["scale"]

    def make_elbo(self) -> Callable:
        def loss(model_fn, guide_fn, x, y=None):
            recon, reg = self.terms(x, y)
            return -(recon + reg).sum()

        return loss


@OBJECTIVES.register("chyvae-collapsed")
class CHyVAECollapsed(Objective):
    """Trace_ELBO on the collapsed CHyVAE: z ~ t_{ν−p+1}(0, Ψ/(ν−p+1)), guide q(z | x) (Σ integrated out)."""

    models = ("chyvae",)

    def __init__(self, num_particles: int = 1):
        super().__init__()
        self.num_particles = check_particles(num_particles)

    def model_and_guide(self) -> tuple[Callable, Callable]:
        return self.model.collapsed_model, self.guide.guide_z

    def make_elbo(self) -> infer.ELBO:
        return infer.Trace_ELBO(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=self.model.max_plate_nesting,
        )
