"""FactorVAE (Kim & Mnih, 2018): the ELBO plus γ times a discriminator's estimate of the total correlation.

Objective (Kim & Mnih, eq. 2), per datum, maximised:

    E_q[log p(x | z)] − KL(q(z | x) ‖ p(z)) − γ · TC(z),     TC(z) = KL(q(z) ‖ Π_j q(z_j)),

with the density-ratio trick (eq. 3): TC ≈ E_{q(z)}[log D(z) / (1 − D(z))]. D is a classifier with two
logits (class 0: a code z ~ q(z) of the batch; class 1: a code of the permuted batch, a draw from Π_j q(z_j)),
so log D/(1−D) = logits[:, 0] − logits[:, 1].

The discriminator is the objective's auxiliary network ``discriminator``, trained by its own optimizer on

    L_D = ½ [CE(D(z), 0) + CE(D(perm(z)), 1)]     (Kim & Mnih, Algorithm 2)

where ``perm`` shuffles each latent dimension independently across the batch (:func:`permute_dims`).

Gradient hygiene (peers' bugs, see the tests): the discriminator step sees **detached** codes — those the main
step drew for the same batch, handed over by :meth:`~pyro_vaes.objectives.terms.RegularizedELBO.handoff_codes` —
so no D-step gradient reaches the encoder; the main loss evaluates D with **detached parameters**
(:func:`~pyro_vaes.objectives.base.frozen_call`), so the TC term never writes gradients into D (and the engine
zeroes the aux gradients before the aux step in any case).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pyro_vaes.objectives.base import AuxiliaryNetwork, frozen_call
from pyro_vaes.objectives.terms import ELBOTerms, RegularizedELBO
from pyro_vaes.registry import OBJECTIVES


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
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
class FactorVAE(RegularizedELBO):
    """FactorVAE (Kim & Mnih, 2018, eq. 2): ELBO − γ·TC, TC from a permutation discriminator (eq. 3).

    :param gamma: TC weight γ (Kim & Mnih use 10–100 on dSprites; 35 here).
    :param latent_site: the guide's sample site holding the code (default: the model's ``code_site``).
    :param disc_hidden: discriminator width (paper: 1000). :param disc_layers: depth (paper: 6).
    :param analytic_kl: analytic KL where registered, else a one-sample estimate.

    The discriminator's optimizer is Adam with the run's ``aux_lr`` (default 1e-4) and betas (0.5, 0.9) as in
    the paper. The loss of a batch is −Σ_i [log p(x_i|z_i) − KL_i − γ·TĈ(z_i)].
    """

    requires = frozenset({"guide", "no-enumeration", "code"})
    example_args = {"disc_hidden": 16, "disc_layers": 2}

    def __init__(
        self,
        gamma: float = 35.0,
        latent_site: str | None = None,
        disc_hidden: int = 1000,
        disc_layers: int = 6,
        analytic_kl: bool = True,
    ):
        super().__init__(analytic_kl)
        if not float(gamma) >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if int(disc_hidden) < 1 or int(disc_layers) < 1:
            raise ValueError("disc_hidden and disc_layers must be >= 1")
        self.gamma = float(gamma)
        self.latent_site = latent_site
        self.disc_hidden = int(disc_hidden)
        self.disc_layers = int(disc_layers)
        self.discriminator: nn.Module | None = None

    def bind(self, model, guide, num_data=None) -> FactorVAE:
        self.latent_site = self.latent_site or model.code_site
        self.latent_dim = int(model.latent_dim)
        self.discriminator = Discriminator(self.latent_dim, self.disc_hidden, self.disc_layers).to(model.device)
        return super().bind(model, guide, num_data)

    def networks(self) -> dict[str, AuxiliaryNetwork]:
        """Kim & Mnih's discriminator with Adam betas (0.5, 0.9); its loss is a mean over the batch's codes."""
        return {"discriminator": AuxiliaryNetwork(self.discriminator, betas=(0.5, 0.9), loss_reduction="mean")}

    def codes_of(self, terms: ELBOTerms) -> torch.Tensor:
        """The code site ``latent_site``, checked to be (batch, latent_dim)."""
        z = terms.code(self.latent_site)
        if z.dim() != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"factor-vae expects site {self.latent_site!r} of shape (batch, {self.latent_dim}), "
                f"got {tuple(z.shape)}"
            )
        return z

    def regularizer(self, terms: ELBOTerms, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """γ Σ_i TĈ(z_i), D evaluated with detached parameters (the TC term never writes into D's gradients)."""
        z = self.handoff_codes(terms, x, y)
        return self.gamma * tc_estimate(frozen_call(self.discriminator, z)).sum()

    def tc(self, z: torch.Tensor) -> torch.Tensor:
        """The discriminator's TC estimate averaged over codes ``z`` (B, D), in nats."""
        with torch.no_grad():
            return tc_estimate(self.discriminator(z)).mean()

    def network_loss(self, name: str, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Discriminator loss on detached codes of the batch (those the main step drew for it, else fresh draws)
        and their dimension-wise permutation."""
        if name != "discriminator":
            return super().network_loss(name, x, y)
        z = self.network_codes(x, y)
        return discriminator_loss(self.discriminator, z, permute_dims(z))
