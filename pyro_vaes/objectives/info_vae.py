"""InfoVAE with the MMD divergence (Zhao, Song & Ermon, 2019): the ELBO's KL reweighted and a divergence between the
aggregate posterior and the prior added.

Zhao et al., eq. 6 with D = MMD (their MMD-VAE), per datum, maximised:

    E_q[log p(x | z)] − (1 − α) KL(q(z | x) ‖ p(z)) − (α + λ − 1) MMD(q(z), p(z)),

where q(z) is the aggregate posterior. MMD is a divergence between *distributions*, estimated on a minibatch from
the B codes z_i ~ q(z | x_i) of the batch (samples of q(z)) and B fresh prior draws z'_i ~ p(z) (through the
model's ``sample_prior``, so with dpVAE's decoupled prior they are g⁻¹(ε), ε ~ N(0, I), differentiable in the
flow: paper §4.3, Appendix B eq. 33). Summed over the batch the loss is

    loss = Σ_i [−log p(x_i | z_i) + (1 − α) KL_i] + B (α + λ − 1) MMD²_k(codes, prior draws),

the per-datum objective averaged over the batch times B (the authors' code, ``loss = mean recon + mmd``, is the same
up to that factor). Pyro's ``Trace_MMD`` is *not* this loss: it takes the MMD across particles of each datum, not
across the batch (pyro-ppl/pyro#1780).

Kernels (:func:`kernel_matrix`), with D the code dimension:

* ``gaussian`` (default): k(a, b) = exp(−‖a − b‖² / h), h = ``bandwidth`` or D² by default — the kernel of Zhao
  et al.'s and the dpVAE authors' code (``exp(−mean_d (a_d − b_d)² / D)``);
* ``imq``: k(a, b) = Σ_s C_s / (C_s + ‖a − b‖²), C_s = 2 D s for s in ``IMQ_SCALES`` (Tolstikhin et al.'s WAE;
  pythae's InfoVAE); ``bandwidth`` replaces the scales with one C.

MMD² is the biased V-statistic mean k(x, x') + mean k(y, y') − 2 mean k(x, y) (Zhao et al.'s code; ≥ 0) by
default, or the unbiased U-statistic with the diagonals left out (``unbiased=true``; can be slightly negative).
Defaults α = 0, λ = 1000 are the dpVAE authors' MNIST configuration.
"""

from __future__ import annotations

import torch

from pyro_vaes.objectives.terms import ELBOTerms, RegularizedELBO
from pyro_vaes.registry import OBJECTIVES

KERNELS = ("gaussian", "imq")
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def kernel_matrix(
    a: torch.Tensor, b: torch.Tensor, kernel: str = "gaussian", bandwidth: float | None = None
) -> torch.Tensor:
    """k(a_i, b_j) for codes a (n, D) and b (m, D): an (n, m) matrix (see the module docstring)."""
    d2 = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)
    dim = a.shape[-1]
    if kernel == "gaussian":
        h = float(dim * dim) if bandwidth is None else float(bandwidth)
        return torch.exp(-d2 / h)
    if kernel == "imq":
        scales = [float(bandwidth)] if bandwidth is not None else [2.0 * dim * s for s in IMQ_SCALES]
        return sum(c / (c + d2) for c in scales)
    raise ValueError(f"unknown kernel {kernel!r}; valid: {', '.join(KERNELS)}")


def mmd(
    x: torch.Tensor, y: torch.Tensor, kernel: str = "gaussian", bandwidth: float | None = None, unbiased: bool = False
) -> torch.Tensor:
    """MMD²_k between the samples x (n, D) and y (m, D) (V-statistic, or U-statistic with ``unbiased``)."""
    kxx, kyy, kxy = (
        kernel_matrix(x, x, kernel, bandwidth),
        kernel_matrix(y, y, kernel, bandwidth),
        kernel_matrix(x, y, kernel, bandwidth),
    )
    if not unbiased:
        return kxx.mean() + kyy.mean() - 2.0 * kxy.mean()
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("the unbiased MMD needs at least 2 samples on each side")
    off_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    off_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return off_x + off_y - 2.0 * kxy.mean()


@OBJECTIVES.register("info-vae")
class InfoVAE(RegularizedELBO):
    """InfoVAE-MMD (Zhao et al., 2019, eq. 6): reconstruction − (1 − α)·KL − (α + λ − 1)·MMD(q(z), p(z)).

    :param alpha: α (≤ 1); (1 − α) weights the KL. :param lam: λ > 0; α + λ − 1 (≥ 0) weights the MMD.
    :param kernel: ``gaussian`` or ``imq``. :param bandwidth: the Gaussian's h or the IMQ's C (default: see above).
    :param unbiased: the U-statistic instead of the V-statistic.
    :param latent_site: the code site (default: the model's ``code_site``).
    :param analytic_kl: analytic KL where registered (a normal prior), else the one-draw log q − log p (the flow).
    """

    requires = frozenset({"guide", "no-enumeration", "code"})

    def __init__(
        self,
        alpha: float = 0.0,
        lam: float = 1000.0,
        kernel: str = "gaussian",
        bandwidth: float | None = None,
        unbiased: bool = False,
        latent_site: str | None = None,
        analytic_kl: bool = True,
    ):
        super().__init__(analytic_kl)
        if not float(alpha) <= 1.0:
            raise ValueError(f"alpha must be <= 1 (the KL weight 1 - alpha must not be negative), got {alpha}")
        if not float(lam) > 0 or not float(alpha) + float(lam) - 1.0 >= 0:
            raise ValueError(
                f"lam must be > 0 with alpha + lam - 1 >= 0 (the MMD weight), got alpha={alpha}, lam={lam}"
            )
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; valid: {', '.join(KERNELS)}")
        if bandwidth is not None and not float(bandwidth) > 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
        self.alpha, self.lam = float(alpha), float(lam)
        self.kernel = kernel
        self.bandwidth = None if bandwidth is None else float(bandwidth)
        self.unbiased = bool(unbiased)
        self.latent_site = latent_site
        self.last_mmd: float | None = None

    def bind(self, model, guide, num_data=None) -> InfoVAE:
        self.latent_site = self.latent_site or model.code_site
        return super().bind(model, guide, num_data)

    def kl_term(self, terms: ELBOTerms, x: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.alpha) * terms.kl_total

    def regularizer(self, terms: ELBOTerms, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """B (α + λ − 1) MMD²(codes of the batch, B prior draws)."""
        z = terms.code(self.latent_site)
        if z.dim() != 2:
            raise ValueError(
                f"info-vae expects the code site {self.latent_site!r} of shape (batch, d), got {tuple(z.shape)}"
            )
        prior = self.model.sample_prior(z.shape[0], y)[self.latent_site]
        value = mmd(z, prior, self.kernel, self.bandwidth, self.unbiased)
        self.last_mmd = float(value.detach())
        return z.shape[0] * (self.alpha + self.lam - 1.0) * value
