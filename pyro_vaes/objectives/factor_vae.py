"""FactorVAE (Kim & Mnih, 2018): the ELBO plus γ times a discriminator's estimate of the total correlation.

Objective (Kim & Mnih, eq. 2), per datum, maximised:

    E_q[log p(x | z)] − KL(q(z | x) ‖ p(z)) − γ · TC(z),     TC(z) = KL(q(z) ‖ Π_j q(z_j)),

with the density-ratio trick (eq. 3): TC ≈ E_{q(z)}[log D(z) / (1 − D(z))]. D is a classifier with two
logits (class 0: a code z ~ q(z) of the batch; class 1: a code of the permuted batch, a draw from Π_j q(z_j)),
so log D/(1−D) = logits[:, 0] − logits[:, 1].

The discriminator is the objective's ``auxiliary`` module, trained by the engine's second optimizer on

    L_D = ½ [CE(D(z), 0) + CE(D(perm(z)), 1)]     (Kim & Mnih, Algorithm 2)

where ``perm`` shuffles each latent dimension independently across the batch (:func:`permute_dims`).

Gradient hygiene (peers' bugs, see the tests): the discriminator step sees **detached** codes, so no
D-step gradient reaches the encoder; the main loss evaluates D with **detached parameters**
(``torch.func.functional_call``), so the TC term never writes gradients into D (and the engine zeroes the
aux gradients before the aux step in any case).
"""

from __future__ import annotations

from typing import Callable, Optional

import pyro.poutine as poutine
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from pyro_vaes.objectives.base import Objective
from pyro_vaes.objectives.beta_vae import elbo_terms
from pyro_vaes.registry import OBJECTIVES


def permute_dims(z: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Kim & Mnih, Algorithm 1: permute every column of ``z`` (B, D) independently across the batch (dim 0).

    Each column keeps its multiset of values (so the marginals q(z_j) are preserved) while the rows are
    recombined, which breaks the dependence between dimensions.
    """
    if z.dim() != 2:
        raise ValueError(f"permute_dims expects codes of shape (batch, dim), got {tuple(z.shape)}")
    keys = torch.rand(z.shape, generator=generator).to(z.device)
    idx = keys.argsort(dim=0)
    return z.gather(0, idx)


class Discriminator(nn.Module):
    """Kim & Mnih's discriminator: an MLP on z with ``layers`` hidden layers of ``hidden`` units, LeakyReLU(0.2),
    and 2 output logits (0: from q(z), 1: from the product of marginals). Defaults: 6 layers of 1000."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6):
        super().__init__()
        mods, d = [], latent_dim
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.LeakyReLU(0.2)]
            d = hidden
        mods.append(nn.Linear(d, 2))
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def tc_estimate(logits: torch.Tensor) -> torch.Tensor:
    """Per-code log D(z)/(1 − D(z)) = logits[:, 0] − logits[:, 1] (Kim & Mnih, eq. 3)."""
    return logits[..., 0] - logits[..., 1]


def discriminator_loss(disc: nn.Module, z: torch.Tensor, z_perm: torch.Tensor) -> torch.Tensor:
    """½ [CE(D(z), real=0) + CE(D(z_perm), permuted=1)], the negative of Kim & Mnih's D objective."""
    real = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
    fake = torch.ones(z_perm.shape[0], dtype=torch.long, device=z.device)
    return 0.5 * (F.cross_entropy(disc(z), real) + F.cross_entropy(disc(z_perm), fake))


@OBJECTIVES.register("factor-vae")
class FactorVAE(Objective):
    """FactorVAE (Kim & Mnih, 2018, eq. 2): ELBO − γ·TC, TC from a permutation discriminator (eq. 3).

    :param gamma: TC weight γ (Kim & Mnih use 10–100 on dSprites; 35 here).
    :param latent_site: the guide's sample site holding the code (default ``z``).
    :param latent_dim: size of the code; read from ``model.latent_dim`` when omitted.
    :param disc_hidden: discriminator width (paper: 1000). :param disc_layers: depth (paper: 6).
    :param analytic_kl: analytic KL where registered, else a one-sample estimate.

    The discriminator's optimizer is the engine's auxiliary Adam (``aux_lr``, default 1e-4, betas (0.5, 0.9)
    as in the paper). The loss of a batch is −Σ_i [log p(x_i|z_i) − KL_i − γ·TĈ(z_i)].
    """

    #: Kim & Mnih's Adam betas for the discriminator (read by the engine)
    auxiliary_betas = (0.5, 0.9)

    def __init__(
        self,
        gamma: float = 35.0,
        latent_site: str = "z",
        latent_dim: Optional[int] = None,
        disc_hidden: int = 1000,
        disc_layers: int = 6,
        analytic_kl: bool = True,
    ):
        super().__init__()
        if not float(gamma) >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if int(disc_hidden) < 1 or int(disc_layers) < 1:
            raise ValueError("disc_hidden and disc_layers must be >= 1")
        self.gamma = float(gamma)
        self.latent_site = latent_site
        self.latent_dim = None if latent_dim is None else int(latent_dim)
        self.disc_hidden = int(disc_hidden)
        self.disc_layers = int(disc_layers)
        self.analytic_kl = bool(analytic_kl)
        self.auxiliary: Optional[nn.Module] = None
        self._cache = None  # (x, detached z) of the last main step, reused by the discriminator step

    def bind(self, model, guide) -> "FactorVAE":
        d = self.latent_dim if self.latent_dim is not None else getattr(model, "latent_dim", None)
        if d is None:
            raise ValueError("factor-vae needs the code size: the model has no latent_dim; pass latent_dim=...")
        self.latent_dim = int(d)
        self.auxiliary = Discriminator(self.latent_dim, self.disc_hidden, self.disc_layers)
        try:
            self.auxiliary.to(next(model.parameters()).device)
        except StopIteration:
            pass
        return super().bind(model, guide)

    def _codes(self, terms) -> torch.Tensor:
        z = terms.value(self.latent_site)
        if z.dim() != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"factor-vae expects site {self.latent_site!r} of shape (batch, {self.latent_dim}), "
                             f"got {tuple(z.shape)}")
        return z

    def make_elbo(self) -> Callable:
        def loss(model_fn, guide_fn, x, y=None):
            t = elbo_terms(model_fn, guide_fn, x, y, self.analytic_kl)
            z = self._codes(t)
            self._cache = (x, z.detach())
            params = {k: v.detach() for k, v in self.auxiliary.named_parameters()}
            tc = tc_estimate(functional_call(self.auxiliary, params, (z,))).sum()
            return -t.recon + t.kl + self.gamma * tc

        return loss

    def tc(self, z: torch.Tensor) -> torch.Tensor:
        """The discriminator's TC estimate averaged over codes ``z`` (B, D), in nats."""
        with torch.no_grad():
            return tc_estimate(self.auxiliary(z)).mean()

    def auxiliary_loss(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Discriminator loss on detached codes of ``x`` and their dimension-wise permutation."""
        if self._cache is not None and self._cache[0] is x:
            z = self._cache[1]
        else:
            with torch.no_grad():
                _, guide_fn = self.model_and_guide()
                z = poutine.trace(guide_fn).get_trace(x, y).nodes[self.latent_site]["value"]
        z = z.detach()
        self._cache = None
        return discriminator_loss(self.auxiliary, z, permute_dims(z))
