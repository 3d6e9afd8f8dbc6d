"""β-TCVAE (Chen, Li, Grosse & Duvenaud, 2018): the KL term split into index-code mutual information, total
correlation and dimension-wise KL, each with its own weight.

Per datum n with z ~ q(z | x_n) (Chen et al., eq. 2, the ELBO surgery of Hoffman & Johnson),

    log q(z | x_n) − log p(z) = [log q(z | x_n) − log q(z)]            index-code MI
                              + [log q(z) − Σ_j log q(z_j)]            total correlation (TC)
                              + [Σ_j log q(z_j) − log p(z)]            dimension-wise KL

and the objective (Chen et al., eq. 4, with α and γ as in their §4.2) is, per datum, maximised:

    E_q[log p(x_n | z)] − α·MI − β·TC − γ·dimKL.

q(z) = (1/N) Σ_m q(z | x_m) is the aggregate posterior over the N training data; over a minibatch of M it is
estimated from the M×M matrix log q(z_i | x_j) with importance weights w_ij (:func:`log_importance_weights`):

    log q̂(z_i)   = logsumexp_j [log w_ij + log q(z_i | x_j)]
    log q̂(z_ik)  = logsumexp_j [log w_ij + log q(z_ik | x_jk)]          (per dimension k)

* ``mws``, minibatch-weighted sampling (Chen et al., §4.1): w_ij = 1/(N M) for every j. As published this estimate
  of q(z) is low by a factor of about N (with M = N it is exactly q(z)/N), so each reported MI is high by log N, TC by
  (d − 1) log N and dimKL low by d log N; the offsets are constants, so the gradients are unaffected and
  MI + TC + dimKL is exact (tests/test_dpvae_objectives.py checks the M = N case).
* ``mss``, minibatch-stratified sampling (Chen et al., Appendix C.2): w_ii = 1/N, one stratum weight
  (N − M')/(N M') per row (at j = i + 1 mod M) and 1/M' elsewhere, M' = M − 1 — every row sums to 1. The authors'
  ``_log_importance_weight_matrix`` (copied by disentangling-vae, pythae and the dpVAE authors' code) means the same
  values but writes them with a flat stride of M, which lands in *column 0*, not on the diagonal: there q(z_i | x_0)
  gets 1/N, the datum's own q(z_i | x_i) gets 1/M', and row M − 2 sums to about 1 + 1/M'. Ours puts them where the
  derivation does (tests/test_dpvae_objectives.py).
* ``full``: w_ij = 1/M, the batch taken as the whole data set (exact when the batch *is* the training set; used by
  :func:`pyro_vaes.metrics.generative.elbo_decomposition`).

The per-dimension factors q(z_ik | x_j) are the Gaussian marginals of the guide's q(z | x_j) (diagonal or full
covariance). log p(z) is read off the model's trace, so the objective is the same code for any prior: with dpVAE's
decoupled prior (``--model-arg prior=flow``) p(z) = N(g(z); 0, I)·|det ∂g/∂z| is evaluated through generation space
(the base N(0, I) factorises there; paper §4.3, Appendix B eq. 31). Then p does not factorise over the dimensions
of z and the "dimension-wise" term is Σ_j log q(z_j) − log p(z), whose expectation is KL(q(z) ‖ p(z)) − TC: MI and
TC act on the representation z, and the three still sum to the KL of paper eq. 5. The dpVAE authors' code drops
the log-det in this term (``flow_logdet=False`` reproduces that; the sum is then no longer the KL).

Every number is summed over the batch, like the reconstruction (the authors' code mixes a batch-sum reconstruction
with batch-mean MI/TC/dimKL, so their weights depend on the batch size). Latent sites other than the code keep their
ordinary KL.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal

from pyro_vaes.distributions import normal_marginals
from pyro_vaes.distributions.flows import generation_space
from pyro_vaes.objectives.terms import ELBOTerms, RegularizedELBO
from pyro_vaes.registry import OBJECTIVES

ESTIMATORS = ("mss", "mws", "full")


def log_importance_weights(batch_size: int, num_data: int, estimator: str = "mss") -> torch.Tensor:
    """log w (M, M): row i holds the weights of q(z_i | x_j) in the estimate of q(z_i) (see the module docstring)."""
    m, n = int(batch_size), int(num_data)
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    if estimator == "full":
        return torch.full((m, m), -math.log(m))
    if n < m:
        raise ValueError(f"the data set size ({n}) must be at least the batch size ({m}) for the {estimator} estimator")
    if estimator == "mws":
        return torch.full((m, m), -math.log(n * m))
    if m < 2:
        raise ValueError("the minibatch-stratified estimator needs batches of at least 2")
    k = m - 1
    w = torch.full((m, m), 1.0 / k, dtype=torch.float64)
    i = torch.arange(m)
    w[i, (i + 1) % m] = (n - k) / (n * k)  # one stratum entry per row
    w[i, i] = 1.0 / n  # z_i was drawn from q(z | x_i)
    return w.log().float()


def gaussian_marginals(q: torch.distributions.Distribution) -> Normal:
    """The per-dimension Normal marginals (batch, d) of a Gaussian q(z | x) read off a guide trace."""
    marginals = normal_marginals(q)
    if marginals is None:
        raise ValueError(
            f"beta-tc-vae needs a Gaussian q for the code (a diagonal or full-covariance Normal), got {type(q).__name__}"
        )
    return marginals


def decomposition(
    log_q_pairs: torch.Tensor,
    log_q_marginal_pairs: torch.Tensor,
    log_q_own: torch.Tensor,
    log_p: torch.Tensor,
    log_w: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """MI, TC and dimension-wise KL per datum (each (M,)) from

    :param log_q_pairs: (M, M) log q(z_i | x_j);  :param log_q_marginal_pairs: (M, M, d) log q(z_ik | x_jk);
    :param log_q_own: (M,) log q(z_i | x_i);  :param log_p: (M,) log p(z_i);  :param log_w: (M, M) log weights.
    """
    log_qz = torch.logsumexp(log_w + log_q_pairs, dim=1)
    log_prod = torch.logsumexp(log_w.unsqueeze(-1) + log_q_marginal_pairs, dim=1).sum(-1)
    return {
        "mi": log_q_own - log_qz,
        "tc": log_qz - log_prod,
        "dim_kl": log_prod - log_p,
        "log_qz": log_qz,
        "log_prod_qzj": log_prod,
    }


@OBJECTIVES.register("beta-tc-vae")
class BetaTCVAE(RegularizedELBO):
    """β-TCVAE (Chen et al., 2018, eq. 4): E_q[log p(x | z)] − α·MI − β·TC − γ·dimKL, minibatch estimators.

    :param alpha: weight of the index-code mutual information (Chen et al.: 1).
    :param beta: weight of the total correlation (Chen et al.: 6 on dSprites; the dpVAE MNIST configs: 4).
    :param gamma: weight of the dimension-wise KL (Chen et al.: 1).
    :param estimator: ``mss`` (minibatch-stratified, default) or ``mws`` (minibatch-weighted); both use the
        training-set size N the engine passes to :meth:`bind`.
    :param latent_site: the code site (default: the model's ``code_site``).
    :param flow_logdet: keep log |det ∂g/∂z| in log p(z) under a flow prior (default); ``False`` drops it as the
        dpVAE authors' code does (log p(z) := log N(g(z); 0, I)).

    With α = β = γ = 1 the loss is the negative ELBO with the one-draw KL log q − log p.
    """

    requires = frozenset({"guide", "no-enumeration", "code"})

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 6.0,
        gamma: float = 1.0,
        estimator: str = "mss",
        latent_site: str | None = None,
        flow_logdet: bool = True,
    ):
        super().__init__(analytic_kl=True)
        for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            if not float(v) >= 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if estimator not in ("mss", "mws"):
            raise ValueError(f"unknown estimator {estimator!r}; valid: mss, mws")
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.estimator = estimator
        self.latent_site = latent_site
        self.flow_logdet = bool(flow_logdet)
        self.last_decomposition: dict[str, torch.Tensor] | None = None

    def bind(self, model, guide, num_data=None) -> BetaTCVAE:
        self.latent_site = self.latent_site or model.code_site
        return super().bind(model, guide, num_data)

    def code_decomposition(self, terms: ELBOTerms, batch_size: int) -> dict[str, torch.Tensor]:
        """MI, TC and dimension-wise KL per datum of the code site, from the traces of one ELBO pass."""
        site = self.latent_site
        q_site, p_site = terms.guide_trace.nodes[site], terms.model_trace.nodes[site]
        z = q_site["value"]
        if z.dim() != 2 or z.shape[0] != batch_size:
            raise ValueError(f"beta-tc-vae expects the code site {site!r} of shape (batch, d), got {tuple(z.shape)}")
        q = q_site["fn"]
        log_q_pairs = q.log_prob(z.unsqueeze(1))  # (M, M): [i, j] = log q(z_i | x_j)
        log_q_marg = gaussian_marginals(q).log_prob(z.unsqueeze(1))  # (M, M, d)
        log_p = p_site["unscaled_log_prob"]
        if not self.flow_logdet:
            base, g, _ = generation_space(p_site["fn"])
            log_p = base.log_prob(g(z))
        num_data = self.num_data if self.num_data is not None else batch_size
        log_w = log_importance_weights(batch_size, max(num_data, batch_size), self.estimator).to(z)
        return decomposition(log_q_pairs, log_q_marg, q_site["unscaled_log_prob"], log_p, log_w)

    def kl_term(self, terms: ELBOTerms, x: torch.Tensor) -> torch.Tensor:
        """Σ_i [α MI_i + β TC_i + γ dimKL_i] for the code, plus the KL of every other latent site."""
        parts = self.code_decomposition(terms, x.shape[0])
        self.last_decomposition = {k: v.detach() for k, v in parts.items()}
        others = sum((v for k, v in terms.kl.items() if k != self.latent_site), x.new_zeros(()))
        return others + (self.alpha * parts["mi"] + self.beta * parts["tc"] + self.gamma * parts["dim_kl"]).sum()
