"""Variational families for CHyVAE (Ansari & Soh, 2019, "Approximate Inference").

* ``chyvae-structured`` (default, the paper's family, eq. 12–13)::

      q(z, Σ | x) = N(z; μ_φ(x), S_φ(x)) · IW(Σ; Ψ + z zᵀ, ν + 1)

  q(z | x) has a **full** covariance S = L Lᵀ + 1e-4·I, L lower-triangular with diagonal softplus(·) + 1e-4
  (the authors' ``models.py``), and q(Σ | z) is the exact conditional posterior p(Σ | z) of the conjugate
  IW–Normal pair. With it the sampled ELBO equals the collapsed (Student-t) bound draw by draw.
  ``sigma_from="independent"`` instead conditions Σ on a second, independent draw z̃ ~ q(z | x) (an auxiliary
  variable inside the guide), which is the family whose ELBO the authors' closed form computes
  (see :mod:`pyro_vaes.objectives.chyvae`).

* ``chyvae-meanfield``: q(z, Σ | x) = N(z; μ_φ(x), S_φ(x)) · IW(Σ; Ψ_φ(x), ν_φ(x)), Σ independent of z given
  x — the fully factorised family the paper reports as unstable ("training was unstable and results were
  poor").
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from pyro_vaes.distributions import InverseWishart
from pyro_vaes.guides.base import Encoded, GuideBase
from pyro_vaes.models.base import positive_int
from pyro_vaes.models.chyvae import CHyVAE
from pyro_vaes.nets import Encoder
from pyro_vaes.nets.heads import covariance_from_raw, inv_softplus
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES


class _FullCovarianceEncoder(GuideBase):
    """μ(x) and the authors' full covariance S(x) = L Lᵀ + 1e-4·I, diag L = softplus(·) + 1e-4."""

    example_args = {"hidden": 16}

    def __init__(self, model: CHyVAE, hidden: int = 128):
        super().__init__(model)
        if not isinstance(model, CHyVAE):
            raise ValueError(f"this guide is written for the chyvae model, got {type(model).__name__}")
        hidden = positive_int("hidden", hidden)
        self.model_ref = [model]  # not a submodule: its parameters belong to the model
        p = self.latent_dim = model.latent_dim
        self.encoder = Encoder(model.arch, model.input_shape, hidden)
        self.loc = nn.Linear(hidden, p)
        self.raw_tril = nn.Linear(hidden, p * p)

    @property
    def chyvae(self) -> CHyVAE:
        return self.model_ref[0]

    def encode_z(self, h: torch.Tensor) -> dict:
        """q(z | x) from the encoder features: ``loc``, ``covariance`` S and its Cholesky factor ``scale_tril``."""
        cov = covariance_from_raw(self.raw_tril(h), self.latent_dim)
        return {"loc": self.loc(h), "covariance": cov, "scale_tril": torch.linalg.cholesky(cov)}

    def guide_z(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """q(z | x) only (for the collapsed model, where Σ is integrated out)."""
        register(self)
        with pyro.plate("data", x.shape[0]):
            q = self.encode_z(self.encoder(x))
            return pyro.sample("z", dist.MultivariateNormal(q["loc"], scale_tril=q["scale_tril"]))


@GUIDES.register("chyvae-structured", models=("chyvae",), default_for=("chyvae",))
class StructuredGuide(_FullCovarianceEncoder):
    """q(z | x) q(Σ | z) = N(μ(x), S(x)) · IW(Ψ + z zᵀ, ν + 1) (Ansari & Soh, eq. 13: q(Σ|z) = p(Σ|z)).

    :param sigma_from: ``same`` (Σ conditioned on the sampled z; default) or ``independent`` (on a second draw
        z̃ ~ q(z | x), the authors' closed-form family).
    """

    pyro_name = "chyvae_guide"
    conjugate_sigma = True

    def __init__(self, model: CHyVAE, hidden: int = 128, sigma_from: str = "same"):
        super().__init__(model, hidden)
        if sigma_from not in ("same", "independent"):
            raise ValueError(f"sigma_from must be 'same' or 'independent', got {sigma_from!r}")
        self.sigma_from = sigma_from

    def sigma_posterior(self, z: torch.Tensor) -> InverseWishart:
        """IW(Ψ + z zᵀ, ν + 1), the conjugate posterior of Σ given one code z."""
        m = self.chyvae
        scale = m.psi + z.unsqueeze(-1) * z.unsqueeze(-2)
        return InverseWishart(torch.tensor(m.nu + 1.0, dtype=z.dtype, device=z.device), scale)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """q(z | x), and q(Σ | z) at z = μ(x): IW(Ψ + μμᵀ, ν + 1)."""
        qz = self.encode_z(self.encoder(x))
        q_sigma = self.sigma_posterior(qz["loc"])
        return {"z": qz, "sigma": {"df": q_sigma.df.expand(qz["loc"].shape[:-1]), "scale_matrix": q_sigma.scale_matrix}}

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        with pyro.plate("data", x.shape[0]):
            q = self.encode_z(self.encoder(x))
            qz = dist.MultivariateNormal(q["loc"], scale_tril=q["scale_tril"])
            z = pyro.sample("z", qz)
            if self.chyvae.collapsed:
                return
            # z̃: a second draw with the same batch shape as z (which carries any particle plates)
            cond = z if self.sigma_from == "same" else qz.expand(z.shape[:-1]).rsample()
            pyro.sample("sigma", self.sigma_posterior(cond))


@GUIDES.register("chyvae-meanfield", models=("chyvae",))
class MeanFieldGuide(_FullCovarianceEncoder):
    """q(z | x) q(Σ | x) = N(μ(x), S(x)) · IW(Ψ_φ(x), ν_φ(x)): Σ amortised but independent of z.

    Ψ_φ = M Mᵀ + 1e-4·I (M lower-triangular, softplus diagonal) and ν_φ = p − 1 + softplus(·) + 1e-2 from a
    shared encoder — the mean-field family the paper tried first and reports as unstable.
    """

    pyro_name = "chyvae_meanfield_guide"
    mean_field = True
    default_objective = "elbo"

    def __init__(self, model: CHyVAE, hidden: int = 128):
        super().__init__(model, hidden)
        p = self.latent_dim
        self.raw_psi = nn.Linear(self.loc.in_features, p * p)
        self.raw_nu = nn.Linear(self.loc.in_features, 1)
        # start near the prior: Ψ_φ ≈ Ψ, ν_φ ≈ ν
        nn.init.zeros_(self.raw_psi.weight)
        nn.init.zeros_(self.raw_nu.weight)
        with torch.no_grad():
            s = float(model.psi[0, 0]) ** 0.5
            self.raw_psi.bias.copy_((torch.eye(p) * inv_softplus(s)).flatten())
            self.raw_nu.bias.fill_(inv_softplus(model.nu - (p - 1) - 1e-2))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        h = self.encoder(x)
        p = self.latent_dim
        return {
            "z": self.encode_z(h),
            "sigma": {
                "df": (p - 1) + F.softplus(self.raw_nu(h)).squeeze(-1) + 1e-2,
                "scale_matrix": covariance_from_raw(self.raw_psi(h), p),
            },
        }

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        with pyro.plate("data", x.shape[0]):
            q = self.encode(x)
            if not self.chyvae.collapsed:  # Σ first, as in the model (TraceMeanField_ELBO checks the order)
                pyro.sample("sigma", InverseWishart(q["sigma"]["df"], q["sigma"]["scale_matrix"]))
            pyro.sample("z", dist.MultivariateNormal(q["z"]["loc"], scale_tril=q["z"]["scale_tril"]))
