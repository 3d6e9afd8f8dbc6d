"""GMVAE, the i.i.d. baseline of UG-VAE as the UG-VAE authors implement it (Peis et al., arXiv 2012.08234,
Fig. 1(b); Dilokthanakul et al., 2016).

For each datum i (everything inside the data plate)::

    w_i ~ N(0, I)                                   per-sample analogue of UG-VAE's global β
    d_i ~ Cat(1/K, ..., 1/K)                        marginalised by enumeration
    z_i ~ N(μ_{d_i}(w_i), diag σ²_{d_i}(w_i))       K networks fed with w_i, σ² = exp(tanh(·))
    x_i ~ p(x | decoder(z_i))                       the decoder takes z only (authors' code)
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex

from pyro_vaes.models.base import positive_int, standard_normal
from pyro_vaes.models.ugvae import BASELINE_OBS_SCALE, DEFAULT_OBS_SCALE, UGVAEBase
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import MODELS


@MODELS.register("gmvae")
class GMVAE(UGVAEBase):
    """GMVAE: per-sample w, d, z; p(z | d, w) from K networks of w; x from a decoder of z.

    Arguments as :class:`~pyro_vaes.models.ugvae.UGVAE` with ``w_dim`` in place of ``beta_dim``, except the
    Gaussian's default standard deviation: sqrt(0.5), since the authors' GMVAE loss sums squared errors
    (−log N(x; μ, 0.5) = Σ (x − μ)² + const); their UG-VAE uses variance 0.2.
    """

    latent_sites = ("w", "d", "z")
    global_sites = ()
    enumerated_sites = ("d",)
    default_objective = "enum-elbo"
    default_obs_scale = BASELINE_OBS_SCALE
    legacy_args = {"obs_scale": DEFAULT_OBS_SCALE}  # 0.1.0 used UG-VAE's variance 0.2
    example_shape = (1, 28, 28)
    example_args = {"latent_dim": 2, "w_dim": 3, "K": 3, "hidden": 16}

    def __init__(
        self,
        input_shape: Sequence[int],
        latent_dim: int = 20,
        w_dim: int = 20,
        K: int = 20,
        likelihood: str = "gaussian",
        obs_scale: float | None = None,
        arch: str = "auto",
        hidden: int = 256,
    ):
        super().__init__(input_shape)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.w_dim = positive_int("w_dim", w_dim)
        self.K = positive_int("K", K)
        self._setup(likelihood, obs_scale, arch, hidden, self.latent_dim, components_in=self.w_dim)

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(x, z, d, w) = Π_i p(w_i) p(d_i) p(z_i | d_i, w_i) p(x_i | z_i)."""
        self.check_input(x)
        register(self)
        B = x.shape[0]
        with pyro.plate("data", B):
            w = pyro.sample("w", standard_normal(B, self.w_dim, x))
            loc, scale = self.components(w)  # (..., B, K, latent_dim)
            d = pyro.sample("d", dist.Categorical(logits=x.new_zeros(self.K)), infer={"enumerate": "parallel"})
            z = pyro.sample("z", dist.Normal(Vindex(loc)[..., d, :], Vindex(scale)[..., d, :]).to_event(1))
            pyro.sample("x", self.observation(self.decoder(z)), obs=x)

    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z] (the decoder sees z only)."""
        return self.mean_image(self.decoder(latents["z"]))

    def marginal_prior(self, site: str):
        if site == "w":
            return self.standard_normal_marginal(self.w_dim)
        return self.mixture_marginal(self.w_dim, "w") if site == "z" else None

    def sample_prior(
        self, n: int, y: torch.Tensor | None = None, d: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        dev = self.device
        w = torch.randn(n, self.w_dim, device=dev)
        d = torch.randint(self.K, (n,), device=dev) if d is None else d
        loc, scale = self.components(w)
        idx = torch.arange(n, device=dev)
        z = loc[idx, d] + scale[idx, d] * torch.randn(n, self.latent_dim, device=dev)
        return {"w": w, "d": d, "z": z}
