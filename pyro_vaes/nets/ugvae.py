"""The networks of the UG-VAE authors' code (``ipeis/UG-VAE`` ``models.py``), shared by the UG-VAE, GMVAE and
ML-VAE models and guides.

Two architectures: ``k_vae`` (MLP, for 28x28 or flat data) and ``beta_vae`` (convolutional, for Cx64x64
images with BatchNorm in the pre-encoder). Every network accepts extra leading (particle, enumeration) dims.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pyro_vaes.nets import strided_convs

UGVAE_ARCHS = ("auto", "k_vae", "beta_vae")


def resolve_ugvae_arch(arch: str, shape: Sequence[int]) -> str:
    """``auto`` -> ``beta_vae`` for Cx64x64 images, ``k_vae`` otherwise; refuses a net that cannot take ``shape``."""
    shape = tuple(shape)
    if arch not in UGVAE_ARCHS:
        raise ValueError(f"unknown arch {arch!r} for UG-VAE family models; valid: {', '.join(UGVAE_ARCHS)}")
    if arch == "auto":
        return "beta_vae" if len(shape) == 3 and shape[1:] == (64, 64) else "k_vae"
    if arch == "beta_vae" and (len(shape) != 3 or shape[1:] != (64, 64)):
        raise ValueError(f"arch beta_vae expects observations of shape (C, 64, 64), got {shape}")
    return arch


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(int(s) for s in shape))


class PreEncoder(nn.Module):
    """The authors' shared pre-encoder h(x): x (..., *shape) -> (..., hidden).

    ``k_vae``: Linear(D, hidden)-ReLU. ``beta_vae``: Conv(c,32,4,2,1)-BN-ReLU, Conv(32,32,4,2,1)-BN-ReLU,
    Conv(32,64,4,2,1)-BN-ReLU, Conv(64,64,4,2,1)-BN-ReLU, Conv(64,hidden,4,1)-BN-ReLU (the authors' ``beta_vae`` architecture).
    Inputs are flattened to 2-D / 4-D around the net, so BatchNorm always sees a plain batch.
    """

    def __init__(self, arch: str, shape: Sequence[int], hidden: int = 256):
        super().__init__()
        self.shape = tuple(shape)
        self.arch = resolve_ugvae_arch(arch, shape)
        self.out_features = int(hidden)
        if self.arch == "k_vae":
            self.net = nn.Sequential(nn.Linear(_numel(shape), hidden), nn.ReLU())
        else:
            c = self.shape[0]
            self.net = nn.Sequential(
                nn.Conv2d(c, 32, 4, 2, 1),
                nn.BatchNorm2d(32),
                nn.ReLU(),
                nn.Conv2d(32, 32, 4, 2, 1),
                nn.BatchNorm2d(32),
                nn.ReLU(),
                nn.Conv2d(32, 64, 4, 2, 1),
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.Conv2d(64, 64, 4, 2, 1),
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.Conv2d(64, hidden, 4, 1),
                nn.BatchNorm2d(hidden),
                nn.ReLU(),
                nn.Flatten(),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[: x.dim() - len(self.shape)]
        if self.arch == "k_vae":
            return self.net(x.reshape(*batch, -1))
        return self.net(x.reshape(-1, *self.shape)).reshape(*batch, self.out_features)


class ImageDecoder(nn.Module):
    """The authors' decoder: (..., in_features) -> (..., *shape) (pre-sigmoid).

    ``k_vae``: Linear(in, hidden)-ReLU-Linear(hidden, D). ``beta_vae``: Linear(in, 256), view 256x1x1, ReLU,
    ConvT(256,64,4), ReLU, ConvT(64,64,4,2,1), ReLU, ConvT(64,32,4,2,1), ReLU, ConvT(32,32,4,2,1), ReLU,
    ConvT(32,c,4,2,1). The authors end in a Sigmoid; the models apply it (Gaussian mean) or read the output
    as logits (Bernoulli).
    """

    def __init__(self, arch: str, in_features: int, shape: Sequence[int], hidden: int = 256):
        super().__init__()
        self.shape = tuple(shape)
        self.arch = resolve_ugvae_arch(arch, shape)
        if self.arch == "k_vae":
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, _numel(shape)))
        else:
            self.net = nn.Sequential(
                nn.Linear(in_features, 256),
                nn.Unflatten(-1, (256, 1, 1)),
                nn.ReLU(),
                nn.ConvTranspose2d(256, 64, 4),
                nn.ReLU(),
                *strided_convs(nn.ConvTranspose2d, (64, 64, 32, 32, self.shape[0]))[:-1],
            )

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        batch = u.shape[:-1]
        return self.net(u.reshape(-1, u.shape[-1])).reshape(*batch, *self.shape)


class ComponentNets(nn.Module):
    """K separate networks ``Linear(in, hidden)-ReLU-Linear(hidden, 2·out)``, evaluated together.

    ``forward(u)`` with u (..., in) returns the K Gaussians' means and standard deviations, each
    (..., K, out), with variance exp(tanh(·)) as the authors' p(z | d, β) (paper eq. 3). The K networks
    have separate weights (stored as (K, in, hidden) and (K, hidden, 2·out) tensors, initialised as K
    ``nn.Linear`` layers would be); one einsum per layer replaces a Python loop over K.
    """

    def __init__(self, in_features: int, out_features: int, num_components: int, hidden: int = 256):
        super().__init__()
        K = self.num_components = int(num_components)
        self.out_features = int(out_features)
        self.w1 = nn.Parameter(torch.empty(K, in_features, hidden))
        self.b1 = nn.Parameter(torch.empty(K, hidden))
        self.w2 = nn.Parameter(torch.empty(K, hidden, 2 * out_features))
        self.b2 = nn.Parameter(torch.empty(K, 2 * out_features))
        for w, b, fan_in in ((self.w1, self.b1, in_features), (self.w2, self.b2, hidden)):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default init, per component
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(torch.einsum("...i,kih->...kh", u, self.w1) + self.b1)
        out = torch.einsum("...kh,kho->...ko", h, self.w2) + self.b2
        loc, pre = out.split(self.out_features, dim=-1)
        return loc, torch.exp(0.5 * torch.tanh(pre))  # σ = sqrt(exp(tanh(·)))
