"""CHyVAE, the covariance-hyperprior VAE (Ansari & Soh, AAAI 2019).

Generative model, for each datum i of a batch (paper eqs. 9–11; B = 1 code per covariance, as the code)::

    Σ_i ~ IW(Ψ, ν)                          (inverse-Wishart hyperprior, eq. 10)
    z_i | Σ_i ~ N(0, Σ_i)                   (eq. 9)
    x_i | z_i ~ Bernoulli(logits = f_θ(z_i))

with Ψ = max(ν − p − 1, 1) · I_p (appendix A.1 and the authors' ``main.py``: E[Σ] = I when ν > p + 1). ν controls how strongly
the codes are pushed towards independent dimensions: ν → ∞ gives the VAE prior N(0, I).

Integrating Σ out gives the **collapsed** model::

    z_i ~ t_{ν−p+1}(0, Ψ / (ν − p + 1))      (multivariate Student-t, the IW–Normal marginal)

which :meth:`CHyVAE.collapsed_model` samples (and :meth:`model` too when ``collapsed=True``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch

from pyro_vaes.distributions import InverseWishart
from pyro_vaes.models.base import ModelBase, positive_int
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import MODELS


def chyvae_scale(nu: float, latent_dim: int) -> float:
    """The authors' Ψ scale, max(ν − p − 1, 1), so that E[Σ] = I for ν > p + 1."""
    return max(float(nu) - latent_dim - 1.0, 1.0)


def check_nu(nu: float, latent_dim: int) -> float:
    """Refuse ν ≤ p − 1 (the inverse-Wishart is improper there) before anything is built."""
    nu = float(nu)
    if not nu > latent_dim - 1:
        raise ValueError(
            f"CHyVAE needs nu > latent_dim - 1 = {latent_dim - 1} for an inverse-Wishart over {latent_dim}x{latent_dim} "
            f"covariances, got nu = {nu:g}. The authors use nu > latent_dim + 1 (e.g. nu = {latent_dim + 2} .. 200)"
        )
    return nu


@MODELS.register("chyvae")
class CHyVAE(ModelBase):
    """CHyVAE: Σ ~ IW(Ψ, ν), z | Σ ~ N(0, Σ), x ~ p(x | decoder(z)) (Ansari & Soh, eqs. 9–11).

    :param input_shape: shape of one observation, e.g. ``(1, 64, 64)``.
    :param latent_dim: p, the code size (paper: 10).
    :param nu: ν, the inverse-Wishart degrees of freedom; ν > p − 1 (code default 33).
    :param likelihood: ``bernoulli`` (the paper's, on binary data), ``continuous-bernoulli``, ``gaussian`` or
        ``auto`` (the engine picks Bernoulli for binary data, continuous Bernoulli for grey levels).
    :param obs_scale: standard deviation of the Gaussian likelihood.
    :param arch: ``auto`` (conv64 for 64x64 images, mlp for flat data), or any of :mod:`pyro_vaes.nets`.
    :param hidden: hidden width (paper: 128 for 2DShapes and CorrelatedEllipses).
    :param collapsed: sample z from the Student-t marginal instead of Σ then z (no ``sigma`` site).
    """

    latent_sites = ("sigma", "z")
    pyro_name = "chyvae"
    default_objective = "chyvae-closed-form"
    example_shape = (1, 28, 28)
    example_args = {"latent_dim": 3, "nu": 6.0, "hidden": 16, "likelihood": "bernoulli"}

    def __init__(
        self,
        input_shape: Sequence[int],
        latent_dim: int = 10,
        nu: float = 33.0,
        likelihood: str = "auto",
        obs_scale: float = 1.0,
        arch: str = "auto",
        hidden: int = 128,
        collapsed: bool = False,
    ):
        super().__init__(input_shape)
        self.latent_dim = p = positive_int("latent_dim", latent_dim)
        self.nu = check_nu(nu, p)
        self.collapsed = bool(collapsed)
        self.latent_sites = ("z",) if self.collapsed else ("sigma", "z")
        self.decoder = self.likelihood_decoder(p, likelihood, obs_scale, arch, hidden)
        self.register_buffer("psi", chyvae_scale(self.nu, p) * torch.eye(p))

    # -- distributions -------------------------------------------------------------------------------------------
    def sigma_prior(self) -> InverseWishart:
        """IW(Ψ, ν) (eq. 10)."""
        return InverseWishart(torch.tensor(self.nu, dtype=self.psi.dtype, device=self.psi.device), self.psi)

    def collapsed_prior(self) -> dist.MultivariateStudentT:
        """p(z) = ∫ N(z; 0, Σ) IW(Σ; Ψ, ν) dΣ = t_{ν−p+1}(0, Ψ/(ν−p+1))."""
        df = self.nu - self.latent_dim + 1.0
        scale_tril = torch.linalg.cholesky(self.psi / df)
        return dist.MultivariateStudentT(
            torch.tensor(df, device=self.psi.device), self.psi.new_zeros(self.latent_dim), scale_tril
        )

    def observation(self, z: torch.Tensor) -> dist.Distribution:
        """p(x | z) with the observation dims as event dims."""
        return self.observation_dist(self.decoder(z))

    # -- the generative story --------------------------------------------------------------------------------------
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(x, z, Σ) = Π_i IW(Σ_i; Ψ, ν) N(z_i; 0, Σ_i) p(x_i | z_i)   (or the collapsed model)."""
        if self.collapsed:
            return self.collapsed_model(x, y)
        self.check_input(x)
        register(self)
        with pyro.plate("data", x.shape[0]):
            sigma = pyro.sample("sigma", self.sigma_prior())
            z = pyro.sample(
                "z",
                dist.MultivariateNormal(self.psi.new_zeros(self.latent_dim), scale_tril=torch.linalg.cholesky(sigma)),
            )
            pyro.sample("x", self.observation(z), obs=x)

    def collapsed_model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(x, z) = Π_i t_{ν−p+1}(z_i; 0, Ψ/(ν−p+1)) p(x_i | z_i): Σ integrated out."""
        self.check_input(x)
        register(self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.collapsed_prior())
            pyro.sample("x", self.observation(z), obs=x)

    # -- what users and metrics need -------------------------------------------------------------------------------
    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z] (x depends on Σ only through z)."""
        return self.observation_mean(self.decoder(latents["z"]))

    def marginal_prior(self, site: str):
        """z: each dimension of the Student-t marginal t_{ν−p+1}(0, Ψ/(ν−p+1)) (Σ integrated out)."""
        if site != "z":
            return None
        df = self.nu - self.latent_dim + 1.0
        scale = (self.psi.diagonal() / df).sqrt()
        return dist.StudentT(
            torch.full_like(scale, df), torch.zeros_like(scale), scale
        ), f"Student-t with ν−p+1 = {df:g} degrees of freedom (Σ integrated out)"

    def sample_prior(self, n: int, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``n`` draws Σ ~ IW(Ψ, ν) (Bartlett, appendix A.4) and z | Σ ~ N(0, Σ)."""
        sigma = self.sigma_prior().sample((n,))
        eps = torch.randn(n, self.latent_dim, 1, device=self.psi.device)
        z = (torch.linalg.cholesky(sigma) @ eps).squeeze(-1)
        return {"sigma": sigma, "z": z}
