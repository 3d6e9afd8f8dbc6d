"""ML-VAE, the grouped baseline of UG-VAE (Bouchacourt et al., 2018, "Multi-Level Variational
Autoencoder"), with the whole minibatch as the group, as the UG-VAE authors run it (their ``MLVAE`` class).

For one batch::

    C   ~ N(0, I)                once per batch, outside the data plate (the group / "content" latent)
    s_i ~ N(0, I)                per sample (the "style" latent)
    x_i ~ p(x | decoder([s_i, C]))

There is no mixture: the contrast with UG-VAE is that q(C | X) sees no cluster information.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch

from pyro_vaes.models.base import global_to_plate, positive_int, standard_normal
from pyro_vaes.models.ugvae import BASELINE_OBS_SCALE, DEFAULT_OBS_SCALE, UGVAEBase
from pyro_vaes.nets import broadcast_cat
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import MODELS


@MODELS.register("mlvae")
class MLVAE(UGVAEBase):
    """ML-VAE: a group latent C shared by the batch and a per-sample s; x from a decoder of [s_i, C].

    :param latent_dim: dimension of the per-sample latent s; :param c_dim: dimension of the group latent C;
        other arguments as :class:`~pyro_vaes.models.ugvae.UGVAE`, except the Gaussian's default standard
        deviation: sqrt(0.5), since the authors' MLVAE loss sums squared errors (variance 0.5 up to a constant).
    """

    latent_sites = ("c", "s")
    global_sites = ("c",)
    code_site = "s"
    renamed_args = {"s_dim": "latent_dim"}
    default_obs_scale = BASELINE_OBS_SCALE
    legacy_args = {"obs_scale": DEFAULT_OBS_SCALE}  # 0.1.0 used UG-VAE's variance 0.2
    example_shape = (1, 28, 28)
    example_args = {"latent_dim": 2, "c_dim": 3, "hidden": 16}

    def __init__(
        self,
        input_shape: Sequence[int],
        latent_dim: int = 20,
        c_dim: int = 20,
        likelihood: str = "gaussian",
        obs_scale: float | None = None,
        arch: str = "auto",
        hidden: int = 256,
    ):
        super().__init__(input_shape)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.c_dim = positive_int("c_dim", c_dim)
        self._setup(likelihood, obs_scale, arch, hidden, self.latent_dim + self.c_dim)

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(X, S, C) = p(C) Π_i p(s_i) p(x_i | s_i, C)."""
        self.check_input(x)
        register(self)
        B = x.shape[0]
        c = pyro.sample("c", dist.Normal(x.new_zeros(self.c_dim), 1.0).to_event(1))
        with pyro.plate("data", B):
            s = pyro.sample("s", standard_normal(B, self.latent_dim, x))
            pyro.sample("x", self.observation(self.decoder(broadcast_cat([s, global_to_plate(c)]))), obs=x)

    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | s, C] for ``latents["s"]`` (..., latent_dim) and ``latents["c"]`` (c_dim,); C is 0 when absent."""
        return self.decode_with_global(latents["s"], latents.get("c"), self.c_dim)

    def marginal_prior(self, site: str):
        if site == "s":
            return self.standard_normal_marginal(self.latent_dim)
        return self.standard_normal_marginal(self.c_dim) if site == "c" else None

    def sample_prior(
        self, n: int, y: torch.Tensor | None = None, c: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        dev = self.device
        c = torch.randn(self.c_dim, device=dev) if c is None else c
        return {"c": c, "s": torch.randn(n, self.latent_dim, device=dev)}
