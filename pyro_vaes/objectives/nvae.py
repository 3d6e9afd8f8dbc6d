"""N-VAE's objectives (Antorán & Miguel, 2019, §III-A, §III-C, §IV): a lower bound on the joint log-likelihood
log p(x, y) of inputs and class labels.

With the paper's guide q(z, π | x) = q(z | x) q(π | x) and y observed (paper eq. 2, appendix A),

    log p(x, y) ≥ E_q[log p(x | z, y)] + E_q[log p(y | π)] − KL(q(z | x) ‖ p(z)) − KL(q(π | x) ‖ p(π))
               = E_q[log p(x | z, y)] − KL(q(z | x) ‖ p(z)) − KL(q(π | x) ‖ p(π | y)) + log p(y)      (eq. 3)

because the Dirichlet is conjugate to the categorical: p(y | π) p(π) = p(π | y) p(y) with p(π | y) = Dir(α 1 + y)
and, for the symmetric prior, p(y) = α / (Kα) = 1/K. The last term is a constant; the one before it is the
"classification" term, a KL between two Dirichlets (closed form, :func:`dirichlet_kl`).

``nvae`` (the default for ``nvae`` + ``nvae-dirichlet``) minimises, summed over the batch,

    −E_q[log p(x | z, y)] + KL(q(z | x) ‖ N(0, I)) + λ · D(x, y)

with D, by ``dirichlet``:

* ``"nll-bound"`` (default; the paper's eq. 4): D = −log q(y | x), q(y | x) = E_{q(π|x)}[π_y] = α̂_y / Σ_k α̂_k, the
  negative log-likelihood of the encoder as a classifier. The paper replaces KL(q(π | x) ‖ p(π | y)) by it "up to a
  constant C" and drops constants. Note (checked in the tests): this is **not** an upper bound in general — at a
  fixed mean the KL grows without limit with the concentration Σ_k α̂_k, which the surrogate does not see — so
  with it the objective is the paper's surrogate, not a bound; the concentration of q(π | x) is left untrained.
* ``"exact"``: D = KL(q(π | x) ‖ Dir(α 1 + y)) − log p(y), which with λ = 1 makes the loss exactly the negative
  of the bound above (analytic KLs). Its optimum is q(π | x) = Dir(α 1 + y), whose mean gives the true class only
  (1 + α)/(Kα + 1) (2/11 for K = 10, α = 1): the exact bound asks for a calibrated Dirichlet, not a confident
  classifier.

λ = ``class_weight`` is the paper's reweighting of the classification term (§IV, "to discourage [the latents] from
learning factors of variation that are common to multiple classes"). The value the paper uses is not legible in
our copy of the text; λ = 1 (the bound itself) is the default, and the experiments state the λ they use.

``nvae-enum`` (the default for ``nvae`` + ``nvae-enum``): ``TraceEnum_ELBO`` with the class summed out exactly by
the guide's parallel enumeration of q(y | x), plus λ times the classifier's negative log-likelihood:

    −Σ_k q(k | x) E_q[log p(x | z, k) + log π_k − log q(k | x)] + KL(q(z | x) ‖ p(z)) + KL(q(π | x) ‖ p(π))
    − λ log q(y | x),          q(π | x) = Dir(α 1 + q(· | x)),

with ``bound="marginal"`` (default): a bound on log p(x) with the labels hidden from it, y used only by the
classification term (the semi-supervised M2 recipe of Kingma et al., 2014, applied to labelled data).
``bound="joint"`` gives model and guide the labels: the labelled bound on log p(x, y) with π's exact conditional
posterior Dir(α 1 + y) (nothing is enumerated; the π-terms then add up to log p(y) = −log K) — the bound of
``nvae`` with ``dirichlet="exact"`` at its optimum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyro.infer as infer
import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from torch.distributions import kl_divergence
from torch.nn import functional as F

from pyro_vaes.objectives.base import Objective, check_particles
from pyro_vaes.registry import OBJECTIVES

DIRICHLET_TERMS = ("nll-bound", "exact")
BOUNDS = ("marginal", "joint")


def dirichlet_kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """KL(Dir(a) ‖ Dir(b)) over the last dimension, in closed form:
    ln Γ(a₀) − Σ ln Γ(a_k) − ln Γ(b₀) + Σ ln Γ(b_k) + Σ (a_k − b_k)(ψ(a_k) − ψ(a₀)), a₀ = Σ a_k, b₀ = Σ b_k."""
    a0, b0 = a.sum(-1), b.sum(-1)
    return (
        torch.lgamma(a0)
        - torch.lgamma(a).sum(-1)
        - torch.lgamma(b0)
        + torch.lgamma(b).sum(-1)
        + ((a - b) * (torch.digamma(a) - torch.digamma(a0).unsqueeze(-1))).sum(-1)
    )


def _check_labels(y: torch.Tensor | None, name: str) -> torch.Tensor:
    if y is None:
        raise ValueError(f"objective {name!r} fits labelled data (a bound on log p(x, y)); this batch has no labels")
    return y.long()


@dataclass
class NVAETerms:
    """The parts of the bound for one batch, each (B,) per datum (site scales applied)."""

    recon: torch.Tensor  # log p(x | z, y), one draw of z
    kl_z: torch.Tensor  # KL(q(z | x) ‖ N(0, I)), analytic (or log q − log p)
    kl_pi_posterior: torch.Tensor  # KL(q(π | x) ‖ Dir(α 1 + y)), closed form
    log_py: torch.Tensor  # log p(y) = log(α_y / Σ α)
    log_qy: torch.Tensor  # log q(y | x) = log(α̂_y / Σ α̂)

    def bound(self) -> torch.Tensor:
        """The exact lower bound on log p(x_i, y_i) per datum (paper eq. 3)."""
        return self.recon - self.kl_z - self.kl_pi_posterior + self.log_py


def nvae_terms(
    model_fn: Callable, guide_fn: Callable, x: torch.Tensor, y: torch.Tensor, analytic_kl: bool = True
) -> NVAETerms:
    """Trace the guide, replay the model on its draws, and read every term of eq. 3 off the two traces."""
    guide_trace = poutine.trace(guide_fn).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model_fn, trace=guide_trace)).get_trace(x, y)
    B = x.shape[0]
    xs = model_trace.nodes["x"]
    recon = scale_and_mask(xs["fn"].log_prob(xs["value"]), xs["scale"], xs["mask"]).reshape(B)
    qz, pz = guide_trace.nodes["z"], model_trace.nodes["z"]
    if analytic_kl:
        kl_z = kl_divergence(qz["fn"], pz["fn"])
    else:
        kl_z = qz["fn"].log_prob(qz["value"]) - pz["fn"].log_prob(qz["value"])
    kl_z = scale_and_mask(kl_z, qz["scale"], qz["mask"]).reshape(B)
    qpi, ppi = guide_trace.nodes["pi"], model_trace.nodes["pi"]
    a_hat = qpi["fn"].concentration.expand(B, -1)
    prior = ppi["fn"].concentration.expand(B, -1)
    onehot = F.one_hot(y, a_hat.shape[-1]).to(a_hat.dtype)
    scale = qpi["scale"]
    kl_pi = dirichlet_kl(a_hat, prior + onehot) * scale
    log_py = ((prior * onehot).sum(-1).log() - prior.sum(-1).log()) * scale
    log_qy = ((a_hat * onehot).sum(-1).log() - a_hat.sum(-1).log()) * scale
    return NVAETerms(recon, kl_z, kl_pi, log_py, log_qy)


def _check_weight(class_weight: float) -> float:
    if isinstance(class_weight, bool) or not float(class_weight) >= 0:
        raise ValueError(f"class_weight must be a number >= 0, got {class_weight!r}")
    return float(class_weight)


class _NVAEObjective(Objective):
    """What both N-VAE objectives share: the model they fit, a class label per datum, the loss as a callable on the
    model and guide callables it is given (``_loss``), and λ."""

    models = ("nvae",)
    requires = frozenset({"guide", "class-labels"})

    def __init__(self, class_weight: float) -> None:
        super().__init__()
        self.class_weight = _check_weight(class_weight)

    def make_elbo(self) -> Callable:
        return self._loss

    def _loss(self, model_fn: Callable, guide_fn: Callable, x: torch.Tensor, y: torch.Tensor | None = None):
        raise NotImplementedError


@OBJECTIVES.register("nvae")
class NVAEBound(_NVAEObjective):
    """N-VAE's bound on log p(x, y) (paper eqs. 3–5): −log p(x | z, y) + KL_z + λ·D, D the classification term.

    :param class_weight: λ, the reweighting of the classification term (1: the bound itself).
    :param dirichlet: ``nll-bound`` (the paper's −log q(y | x) in place of the Dirichlet KL) or ``exact``
        (KL(q(π | x) ‖ Dir(α 1 + y)) − log p(y): with λ = 1, exactly the negative bound).
    :param analytic_kl: KL(q(z | x) ‖ N(0, I)) in closed form (else the one-draw log q − log p).
    """

    guides = ("nvae-dirichlet",)

    def __init__(self, class_weight: float = 1.0, dirichlet: str = "nll-bound", analytic_kl: bool = True):
        super().__init__(class_weight)
        if dirichlet not in DIRICHLET_TERMS:
            raise ValueError(f"dirichlet must be one of {', '.join(DIRICHLET_TERMS)}, got {dirichlet!r}")
        self.dirichlet = dirichlet
        self.analytic_kl = bool(analytic_kl)

    def terms(self, x: torch.Tensor, y: torch.Tensor | None) -> NVAETerms:
        """The terms of the bound for a batch, through the (possibly wrapped) model and guide callables."""
        return self._terms(*self.model_and_guide(), x, y)

    def _terms(self, model_fn: Callable, guide_fn: Callable, x: torch.Tensor, y: torch.Tensor | None) -> NVAETerms:
        return nvae_terms(model_fn, guide_fn, x, _check_labels(y, "nvae"), self.analytic_kl)

    def classification_term(self, t: NVAETerms) -> torch.Tensor:
        """D per datum: −log q(y | x) (``nll-bound``) or KL(q(π | x) ‖ p(π | y)) − log p(y) (``exact``)."""
        return -t.log_qy if self.dirichlet == "nll-bound" else t.kl_pi_posterior - t.log_py

    def _loss(self, model_fn: Callable, guide_fn: Callable, x: torch.Tensor, y: torch.Tensor | None = None):
        t = self._terms(model_fn, guide_fn, x, y)
        return (-t.recon + t.kl_z + self.class_weight * self.classification_term(t)).sum()


@OBJECTIVES.register("nvae-enum")
class NVAEEnum(_NVAEObjective):
    """``TraceEnum_ELBO`` with y summed out by the ``nvae-enum`` guide, plus λ·(−log q(y | x)).

    :param class_weight: λ, the weight of the classifier's negative log-likelihood on the observed labels.
    :param bound: ``marginal`` (labels hidden from the bound: y enumerated, a bound on log p(x)) or ``joint``
        (labels given to model and guide: the labelled bound on log p(x, y), nothing enumerated).
    :param num_particles: draws of z per datum (vectorised).
    """

    guides = ("nvae-enum",)

    def __init__(self, class_weight: float = 1.0, bound: str = "marginal", num_particles: int = 1):
        super().__init__(class_weight)
        if bound not in BOUNDS:
            raise ValueError(f"bound must be one of {', '.join(BOUNDS)}, got {bound!r}")
        self.bound = bound
        self.num_particles = check_particles(num_particles)
        self.enum_elbo: infer.TraceEnum_ELBO | None = None

    def bind(self, model, guide, num_data=None) -> NVAEEnum:
        self.enum_elbo = infer.TraceEnum_ELBO(
            num_particles=self.num_particles,
            vectorize_particles=self.num_particles > 1,
            max_plate_nesting=model.max_plate_nesting,
            strict_enumeration_warning=False,
        )
        return super().bind(model, guide, num_data)

    def _bound_labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        return None if self.bound == "marginal" else y

    def classification_nll(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """−Σ_i log q(y_i | x_i) over the batch."""
        return F.nll_loss(torch.log(self.guide.class_probs(x).clamp_min(1e-30)), y, reduction="sum")

    def _loss(self, model_fn: Callable, guide_fn: Callable, x: torch.Tensor, y: torch.Tensor | None = None):
        y = _check_labels(y, "nvae-enum")
        neg_bound = self.enum_elbo.differentiable_loss(model_fn, guide_fn, x, self._bound_labels(y))
        return neg_bound + self.class_weight * self.classification_nll(x, y)

    @torch.no_grad()
    def evaluate_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
        y = _check_labels(y, "nvae-enum")
        model_fn, guide_fn = self.model_and_guide()
        neg_bound = self.enum_elbo.loss(model_fn, guide_fn, x, self._bound_labels(y))
        return float(neg_bound + self.class_weight * self.classification_nll(x, y))
