"""The inverse-Wishart distribution IW(Ψ, ν) over p×p positive-definite matrices.

Neither torch nor Pyro ships one (torch deferred it in PR #68588). This is the distribution of CHyVAE's
covariance hyperprior (Ansari & Soh, 2019, eq. 10):

    p(Σ | Ψ, ν) = |Ψ|^{ν/2} / (2^{νp/2} Γ_p(ν/2)) · |Σ|^{-(ν+p+1)/2} · exp(-½ tr(Ψ Σ⁻¹)),

defined for ν > p − 1 and Ψ positive definite, with mean E[Σ] = Ψ / (ν − p − 1) for ν > p + 1.

Sampling (the paper's appendix A.4) uses Σ ~ IW(Ψ, ν) ⇔ Σ⁻¹ ~ W(Ψ⁻¹, ν), the Wishart drawn with the Bartlett
decomposition: W₀ = A Aᵀ with A lower-triangular, A_ii = √c_i, c_i ~ χ²(ν − i + 1) (i = 1..p), A_ij ~ N(0, 1)
below the diagonal, is W(I, ν); with Ψ = U Uᵀ (Cholesky), W = U⁻ᵀ W₀ U⁻¹ ~ W(Ψ⁻¹, ν), so its inverse
Σ = U W₀⁻¹ Uᵀ = (A⁻¹ Uᵀ)ᵀ (A⁻¹ Uᵀ). Computing it this way avoids inverting Ψ and is reparameterised in Ψ
(pathwise) and in ν (through torch's implicit-reparameterised χ² draws).
"""

from __future__ import annotations

import math

import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import Chi2, constraints

__all__ = ["InverseWishart"]


def _is_positive_definite(m: torch.Tensor) -> torch.Tensor:
    sym = torch.isclose(m, m.transpose(-1, -2), rtol=1e-5, atol=1e-6).all(-1).all(-1)
    _, info = torch.linalg.cholesky_ex(m)
    return sym & (info == 0)


class InverseWishart(TorchDistribution):
    r"""Inverse-Wishart IW(Ψ, ν) with ``df`` = ν and ``scale_matrix`` = Ψ.

    :param df: degrees of freedom ν, a float or a tensor broadcastable with the batch shape; ν > p − 1.
    :param scale_matrix: Ψ, a (..., p, p) positive-definite tensor.

    ``rsample`` is the Bartlett construction of the module docstring; ``log_prob`` is the closed-form
    density; ``mean`` is Ψ / (ν − p − 1) (NaN where ν ≤ p + 1, where the mean does not exist).
    Invalid arguments raise :class:`ValueError` (the positive-definiteness check of Ψ runs unless
    ``validate_args=False``; the check on ν always runs).
    """

    arg_constraints = {"df": constraints.positive, "scale_matrix": constraints.positive_definite}
    support = constraints.positive_definite
    has_rsample = True

    def __init__(
        self,
        df: float | torch.Tensor,
        scale_matrix: torch.Tensor,
        validate_args: bool | None = None,
    ):
        if (
            not torch.is_tensor(scale_matrix)
            or scale_matrix.dim() < 2
            or scale_matrix.shape[-1] != scale_matrix.shape[-2]
        ):
            raise ValueError(
                "InverseWishart: scale_matrix must be a (..., p, p) square tensor, got "
                f"{tuple(scale_matrix.shape) if torch.is_tensor(scale_matrix) else type(scale_matrix).__name__}"
            )
        p = scale_matrix.shape[-1]
        df = torch.as_tensor(df, dtype=scale_matrix.dtype, device=scale_matrix.device)
        with torch.no_grad():
            if not torch.isfinite(df).all() or (df <= p - 1).any():
                bad = df[~(df > p - 1)] if df.dim() else df
                raise ValueError(
                    f"InverseWishart: df must be > p - 1 = {p - 1} for {p}x{p} matrices "
                    f"(the density is improper otherwise), got df = {bad.flatten()[:4].tolist() if bad.dim() else float(bad)}"
                )
            check = validate_args if validate_args is not None else self._validate_args_default()
            if check and not _is_positive_definite(scale_matrix).all():
                raise ValueError("InverseWishart: scale_matrix must be symmetric positive definite")
        batch_shape = torch.broadcast_shapes(df.shape, scale_matrix.shape[:-2])
        self.df = df.expand(batch_shape)
        self.scale_matrix = scale_matrix.expand(batch_shape + (p, p))
        self._p = p
        # the constraint checks are done above with clearer messages
        super().__init__(batch_shape, torch.Size((p, p)), validate_args=False)
        self._validate_args = bool(validate_args if validate_args is not None else self._validate_args_default())

    @staticmethod
    def _validate_args_default() -> bool:
        return bool(torch.distributions.Distribution._validate_args)

    @property
    def scale_tril(self) -> torch.Tensor:
        """Lower Cholesky factor U of Ψ = U Uᵀ."""
        return torch.linalg.cholesky(self.scale_matrix)

    def expand(self, batch_shape, _instance=None) -> InverseWishart:
        new = self._get_checked_instance(InverseWishart, _instance)
        batch_shape = torch.Size(batch_shape)
        p = self._p
        new.df = self.df.expand(batch_shape)
        new.scale_matrix = self.scale_matrix.expand(batch_shape + (p, p))
        new._p = p
        super(InverseWishart, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        """E[Σ] = Ψ / (ν − p − 1), NaN where ν ≤ p + 1."""
        denom = self.df - self._p - 1
        denom = torch.where(denom > 0, denom, torch.full_like(denom, float("nan")))
        return self.scale_matrix / denom[..., None, None]

    @property
    def mode(self) -> torch.Tensor:
        return self.scale_matrix / (self.df + self._p + 1)[..., None, None]

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """Σ = (A⁻¹ Uᵀ)ᵀ (A⁻¹ Uᵀ) with A the Bartlett factor of W(I, ν) and Ψ = U Uᵀ (appendix A.4)."""
        p = self._p
        shape = torch.Size(sample_shape) + self.batch_shape
        dtype, device = self.scale_matrix.dtype, self.scale_matrix.device
        # diagonal: sqrt of chi^2 with nu - i + 1 dof, i = 1..p  (nu - i for 0-based i)
        dofs = self.df.unsqueeze(-1) - torch.arange(p, dtype=dtype, device=device)
        diag = Chi2(dofs.expand(shape + (p,))).rsample().sqrt()
        noise = torch.randn(shape + (p, p), dtype=dtype, device=device)
        A = torch.tril(noise, diagonal=-1) + torch.diag_embed(diag)
        U = self.scale_tril.expand(shape + (p, p))
        # B = A^{-1} U^T, solved as a triangular system
        B = torch.linalg.solve_triangular(A, U.transpose(-1, -2), upper=False)
        sigma = B.transpose(-1, -2) @ B
        return 0.5 * (sigma + sigma.transpose(-1, -2))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """ν/2 log|Ψ| − νp/2 log 2 − log Γ_p(ν/2) − (ν+p+1)/2 log|Σ| − ½ tr(Ψ Σ⁻¹) (Ansari & Soh, eq. 10)."""
        if self._validate_args:
            if not _is_positive_definite(value.detach()).all():
                raise ValueError("InverseWishart.log_prob: value must be symmetric positive definite")
        p = self._p
        nu = self.df
        L_sigma = torch.linalg.cholesky(value)
        U = self.scale_tril
        logdet_sigma = 2.0 * L_sigma.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        logdet_psi = 2.0 * U.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        # tr(Ψ Σ⁻¹) = ||L_Σ⁻¹ U||_F²
        M = torch.linalg.solve_triangular(L_sigma, U.expand(L_sigma.shape[:-2] + (p, p)), upper=False)
        trace = M.pow(2).sum((-1, -2))
        return (
            0.5 * nu * logdet_psi
            - 0.5 * nu * p * math.log(2.0)
            - torch.mvlgamma(0.5 * nu, p)
            - 0.5 * (nu + p + 1) * logdet_sigma
            - 0.5 * trace
        )
