"""The CSVAE guide (Klys, Snell & Zemel, NeurIPS 2018, §4.1–4.2): q(z, w | x, y) = q_φ1(z | x) q_φ2(w | x, y).

``csvae-mean-field`` (default): two amortised diagonal Gaussians, as the paper's Fig. 1(c) draws them —

* q_φ1(z | x) = N(μ_φ1(x), diag σ_φ1(x)²): the label-free part sees x only;
* q_φ2(w | x, y) = Π_i N(w_i; μ^i_φ2(x, y), diag σ^i_φ2(x, y)²) (§4.2): the subspaces see x and the labels.

Each has its own encoder trunk (φ1, φ2); ``shared_encoder=True`` shares one trunk between them (a cheaper
variant, not the paper's). The labels enter q(w | x, y) concatenated with the trunk's features (the paper does
not say where). σ = softplus(·) + 1e-4.

``csvae-unlabelled``: q(z | x) q(w | x) — the subspace posterior from x alone, the family to compare with the
paper's when asking what conditioning q(w) on the observed labels buys (at test time it needs no labels; under
the bound it must infer from x which label-conditional prior p(w | y) the image came from).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_vaes.guides.base import Encoded, GuideBase
from pyro_vaes.models.base import positive_int
from pyro_vaes.models.csvae import CSVAE, check_binary_labels
from pyro_vaes.nets import Encoder
from pyro_vaes.nets.heads import positive_scale
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES


@GUIDES.register(
    "csvae-mean-field",
    models=("csvae",),
    default_for=("csvae",),
    help="q(z | x) q(w | x, y), diagonal Gaussians, two encoders (the paper's)",
)
class CSVAEGuide(GuideBase):
    """q(z | x) q(w | x, y): diagonal Gaussians from two encoder trunks (or one with ``shared_encoder``).

    :param hidden: width of the trunks' features. :param shared_encoder: one trunk for both posteriors.
    """

    mean_field = True
    pyro_name = "csvae_guide"
    example_args = {"hidden": 16}

    def __init__(self, model: CSVAE, hidden: int = 400, shared_encoder: bool = False):
        super().__init__(model)
        hidden = positive_int("hidden", hidden)
        self.num_labels, self.latent_dim, self.w_size = model.num_labels, model.latent_dim, model.w_size
        self.shared_encoder = bool(shared_encoder)
        self.z_encoder = Encoder(model.arch, model.input_shape, hidden)
        self.w_encoder = None if self.shared_encoder else Encoder(model.arch, model.input_shape, hidden)
        self.z_loc = nn.Linear(hidden, self.latent_dim)
        self.z_raw_scale = nn.Linear(hidden, self.latent_dim)
        self.w_loc = nn.Linear(hidden + self.num_labels, self.w_size)
        self.w_raw_scale = nn.Linear(hidden + self.num_labels, self.w_size)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """q(z | x) and q(w | x, y); without labels only q(z | x), which does not need them (label-free metrics)."""
        hz = self.z_encoder(x)
        out = {"z": {"loc": self.z_loc(hz), "scale": positive_scale(self.z_raw_scale(hz))}}
        if y is None:
            return out
        hw = hz if self.w_encoder is None else self.w_encoder(x)
        hwy = torch.cat([hw, check_binary_labels(self, y, x.shape[0]).to(hw.dtype)], -1)
        out["w"] = {"loc": self.w_loc(hwy), "scale": positive_scale(self.w_raw_scale(hwy))}
        return out

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        check_binary_labels(self, y, x.shape[0])  # q(w | x, y) needs them
        q = self.encode(x, y)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(q["z"]["loc"], q["z"]["scale"]).to_event(1))
            pyro.sample("w", dist.Normal(q["w"]["loc"], q["w"]["scale"]).to_event(1))


@GUIDES.register(
    "csvae-unlabelled", models=("csvae",), help="q(z | x) q(w | x), diagonal Gaussians, the labels not an input"
)
class CSVAEUnlabelledGuide(CSVAEGuide):
    """q(z | x) q(w | x): as ``csvae-mean-field`` with the label columns of q(w)'s heads removed."""

    def __init__(self, model: CSVAE, hidden: int = 400, shared_encoder: bool = False):
        super().__init__(model, hidden, shared_encoder)
        hidden = positive_int("hidden", hidden)
        self.w_loc = nn.Linear(hidden, self.w_size)
        self.w_raw_scale = nn.Linear(hidden, self.w_size)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Encoded:
        """q(z | x) and q(w | x), with or without labels."""
        hz = self.z_encoder(x)
        hw = hz if self.w_encoder is None else self.w_encoder(x)
        return {
            "z": {"loc": self.z_loc(hz), "scale": positive_scale(self.z_raw_scale(hz))},
            "w": {"loc": self.w_loc(hw), "scale": positive_scale(self.w_raw_scale(hw))},
        }

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        register(self)
        q = self.encode(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(q["z"]["loc"], q["z"]["scale"]).to_event(1))
            pyro.sample("w", dist.Normal(q["w"]["loc"], q["w"]["scale"]).to_event(1))
