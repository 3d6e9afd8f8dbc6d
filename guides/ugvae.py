"""Variational families for UG-VAE (Peis et al., arXiv 2012.08234, §3.2), swappable with ``--guide``.

* ``ugvae-structured`` (default, the paper's): q(Z, d, β | X) = Π_i q(z_i | x_i) q(d_i | z_i) · q(β | X, Z)
  (eq. 6-8). q(z_i | x_i) = N(μ(h_i), diag exp(·)) on the shared pre-encoder features h_i = h(x_i);
  q(d_i | z_i) = Cat(π(z_i)), π = Softmax(Linear(Tanh(Linear(z)))); q(β | X, Z) is the precision-weighted
  product of per-sample Gaussians N(m_i, s_i²) with (m_i, log s_i²) = Linear([h_i, π(z_i)]) (eq. 8, no
  prior factor, as the authors' code). d is enumerated in the guide: TraceEnum_ELBO sums over d_i with
  weights q(d_i | z_i) exactly, which gives the paper's E_q(d)[·] and KL(q(d | z) ‖ p(d)) terms (eq. 10-11).
* ``ugvae-marginal``: q(z_i | x_i) q(β | X, Z) only; d is absent from the guide and summed out in the model
  by enumeration, so the bound uses the exact mixture prior p(z_i | β) = (1/K) Σ_k N(z_i; μ_k(β), σ_k²(β)).
  q(β) keeps the paper's [h_i, π(z_i)] input, π now a learned soft-assignment feature.
* ``ugvae-meanfield``: q(z_i | x_i) q(d_i | x_i) q(β | X): d amortised from x (not z), enumerated, and
  q(β | X) built from h_i alone, ignoring d.

Note on the guide's site order: β is sampled *between* z and d. β depends on π(z), a deterministic function
of z, never on the enumerated d, so drawing it before d keeps TraceEnum_ELBO's requirement that nothing
outside the data plate depends on an enumerated variable inside it.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_vaes.guides.base import Encoded, GuideBase
from pyro_vaes.models.ugvae import UGVAE
from pyro_vaes.nets import broadcast_cat
from pyro_vaes.nets.heads import product_of_gaussians
from pyro_vaes.nets.ugvae import PreEncoder
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES


class _UGVAEGuideBase(GuideBase):
    """Pre-encoder h(x), the local head q(z | x), and the β head; subclasses say what feeds q(β) and q(d)."""

    def __init__(self, model: UGVAE, hidden: int | None = None, beta_input_pi: bool = True):
        super().__init__(model)
        if not isinstance(model, UGVAE):
            raise TypeError(f"{type(self).__name__} fits the ugvae model, got {type(model).__name__}")
        hidden = model.hidden if hidden is None else int(hidden)
        self.K, self.latent_dim, self.beta_dim = model.K, model.latent_dim, model.beta_dim
        self.pre_encoder = PreEncoder(model.arch, model.input_shape, hidden)
        self.z_head = nn.Linear(hidden, 2 * self.latent_dim)
        self.beta_input_pi = beta_input_pi
        self.beta_head = nn.Linear(hidden + (self.K if beta_input_pi else 0), 2 * self.beta_dim)

    def local(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """h(x_i), μ_z(x_i), σ_z(x_i): q(z_i | x_i) = N(μ, diag exp(out)) — exp with no tanh (authors)."""
        h = self.pre_encoder(x)
        loc, log_var = self.z_head(h).split(self.latent_dim, dim=-1)
        return h, loc, torch.exp(0.5 * log_var)

    def beta_params(self, h: torch.Tensor, pi: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """q(β | X, Z) = Π_i N(m_i, s_i²) renormalised, with (m_i, log s_i²) = Linear([h_i, π_i]) (eq. 8)."""
        inp = broadcast_cat([h, pi]) if self.beta_input_pi else h
        loc, log_var = self.beta_head(inp).split(self.beta_dim, dim=-1)
        return product_of_gaussians(loc, log_var)

    def d_logits(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """q(z | x) (B, latent_dim), q(d | z) at z = μ_z (``probs`` (B, K), as the authors' experiment scripts) and
        q(β | X, Z) (beta_dim,) for a batch."""
        h, loc, scale = self.local(x)
        pi = torch.softmax(self.d_logits(h, loc), -1)
        b_loc, b_scale = self.beta_params(h, pi)
        return {"z": {"loc": loc, "scale": scale}, "d": {"probs": pi}, "beta": {"loc": b_loc, "scale": b_scale}}


@GUIDES.register("ugvae-structured", models=("ugvae",), default_for=("ugvae",))
class UGVAEStructuredGuide(_UGVAEGuideBase):
    """The paper's q(z | x) q(d | z) q(β | X, Z) (eq. 6-8); d enumerated in the guide."""

    enumerated_sites = ("d",)

    def __init__(self, model: UGVAE, hidden: int | None = None):
        super().__init__(model, hidden)
        self.d_net = nn.Sequential(nn.Linear(self.latent_dim, 256), nn.Tanh(), nn.Linear(256, self.K))

    def d_logits(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log π(z_i): q(d_i | z_i) = Cat(Softmax(Linear(256, K)(Tanh(Linear(latent_dim, 256)(z_i))))) (eq. 7)."""
        return torch.log_softmax(self.d_net(z), -1)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        B = x.shape[0]
        h, z_loc, z_scale = self.local(x)
        data = pyro.plate("data", B)  # one plate object, entered twice (a second plate("data") would clash)
        with data:
            z = pyro.sample("z", dist.Normal(z_loc, z_scale).to_event(1))
        logits = self.d_logits(h, z)  # π from the sampled z, as in training in the authors' code
        b_loc, b_scale = self.beta_params(h, logits.exp())
        pyro.sample("beta", dist.Normal(b_loc, b_scale).to_event(1))
        with data:
            pyro.sample("d", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})


@GUIDES.register("ugvae-marginal", models=("ugvae",))
class UGVAEMarginalGuide(UGVAEStructuredGuide):
    """q(z | x) q(β | X, Z); d summed out exactly in the model (absent from the guide)."""

    enumerated_sites = ()

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """q(z | x) and q(β | X, Z) at z = μ_z; no q(d): the model sums d out."""
        enc = super().encode(x, y)
        del enc["d"]
        return enc

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        B = x.shape[0]
        h, z_loc, z_scale = self.local(x)
        with pyro.plate("data", B):
            z = pyro.sample("z", dist.Normal(z_loc, z_scale).to_event(1))
        b_loc, b_scale = self.beta_params(h, torch.softmax(self.d_net(z), -1))
        pyro.sample("beta", dist.Normal(b_loc, b_scale).to_event(1))


@GUIDES.register("ugvae-meanfield", models=("ugvae",))
class UGVAEMeanFieldGuide(_UGVAEGuideBase):
    """q(z | x) q(d | x) q(β | X): d amortised from h(x), enumerated; q(β) from h(x_i) only (ignores d)."""

    enumerated_sites = ("d",)

    def __init__(self, model: UGVAE, hidden: int | None = None):
        super().__init__(model, hidden, beta_input_pi=False)
        self.d_head = nn.Linear(self.pre_encoder.out_features, self.K)

    def d_logits(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.d_head(h), -1)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        B = x.shape[0]
        h, z_loc, z_scale = self.local(x)
        b_loc, b_scale = self.beta_params(h, None)
        pyro.sample("beta", dist.Normal(b_loc, b_scale).to_event(1))
        with pyro.plate("data", B):
            pyro.sample("z", dist.Normal(z_loc, z_scale).to_event(1))
            pyro.sample("d", dist.Categorical(logits=self.d_logits(h, z_loc)), infer={"enumerate": "parallel"})
