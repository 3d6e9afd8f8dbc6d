"""Encoder and decoder networks shared by the models and guides.

Every network accepts any number of leading batch dimensions (particles, enumeration, data), so a model
or guide can be run under vectorized particle plates and parallel enumeration: inputs are flattened to
2-D (or 4-D for convolutions), processed, and reshaped back.

Architectures (``arch``):

* ``mlp``     flat data: D -> hidden -> ... (ReLU); the decoder mirrors it.
* ``linear``  decoder only: one affine map z -> x (the linear-Gaussian VAE whose log p(x) is exact).
* ``conv28``  1x28x28 images: Conv(32,4,2,1)-ReLU-Conv(64,4,2,1)-ReLU -> 64x7x7 -> Linear(hidden)-ReLU;
              the decoder mirrors it with transposed convolutions.
* ``conv64``  Cx64x64 images, the Burgess et al. / CHyVAE net: four Conv(4,2,1) layers with 32, 32, 64, 64
              channels -> 64x4x4 -> Linear(hidden)-ReLU; the decoder mirrors it.
* ``auto``    picks ``mlp`` for flat data, ``conv28`` for 28x28 and ``conv64`` for 64x64 images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ARCHS = ("auto", "mlp", "linear", "conv28", "conv64")


def resolve_arch(arch: str, shape: Sequence[int]) -> str:
    """The concrete architecture for observations of ``shape`` (refuses a net that cannot take them)."""
    shape = tuple(shape)
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")
    if arch == "auto":
        if len(shape) == 1:
            return "mlp"
        if len(shape) == 3 and shape[1:] == (28, 28):
            return "conv28"
        if len(shape) == 3 and shape[1:] == (64, 64):
            return "conv64"
        return "mlp"
    if arch == "conv28" and (len(shape) != 3 or shape[1:] != (28, 28)):
        raise ValueError(f"arch conv28 expects observations of shape (C, 28, 28), got {shape}")
    if arch == "conv64" and (len(shape) != 3 or shape[1:] != (64, 64)):
        raise ValueError(f"arch conv64 expects observations of shape (C, 64, 64), got {shape}")
    return arch


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


#: the convolutional nets: the side of their 64-channel feature map and the encoder's channels after the input's
#: (the decoder runs them backwards)
CONV_LAYOUT = {"conv28": (7, (32, 64)), "conv64": (4, (32, 32, 64, 64))}


def strided_convs(conv: type[nn.Module], channels: Sequence[int]) -> list[nn.Module]:
    """``conv(a, b, 4, 2, 1)``-ReLU for each successive pair (a, b) of ``channels``: each layer halves the side
    (``nn.Conv2d``) or doubles it (``nn.ConvTranspose2d``). A decoder drops the last ReLU."""
    layers: list[nn.Module] = []
    for a, b in zip(channels, channels[1:]):
        layers += [conv(a, b, 4, 2, 1), nn.ReLU()]
    return layers


class Encoder(nn.Module):
    """x (..., *shape) -> features (..., hidden)."""

    def __init__(self, arch: str, shape: Sequence[int], hidden: int = 400, depth: int = 1):
        super().__init__()
        self.shape = tuple(shape)
        self.arch = resolve_arch(arch, shape)
        self.out_features = hidden
        if self.arch in ("mlp", "linear"):
            layers, d = [], _numel(shape)
            for _ in range(depth):
                layers += [nn.Linear(d, hidden), nn.ReLU()]
                d = hidden
            self.net = nn.Sequential(*layers)
        else:  # conv28, conv64: strided convolutions down to 64 x side x side, then Linear(hidden)-ReLU
            side, channels = CONV_LAYOUT[self.arch]
            self.net = nn.Sequential(
                *strided_convs(nn.Conv2d, (self.shape[0], *channels)),
                nn.Flatten(),
                nn.Linear(64 * side * side, hidden),
                nn.ReLU(),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nd = len(self.shape)
        batch = x.shape[:-nd]
        if self.arch in ("mlp", "linear"):
            h = self.net(x.reshape(*batch, -1))
            return h
        h = self.net(x.reshape(-1, *self.shape))
        return h.reshape(*batch, self.out_features)


class Decoder(nn.Module):
    """z (..., in_features) -> distribution parameters (..., *shape) (logits or means)."""

    def __init__(self, arch: str, in_features: int, shape: Sequence[int], hidden: int = 400, depth: int = 1):
        super().__init__()
        self.shape = tuple(shape)
        self.arch = resolve_arch(arch, shape)
        d_out = _numel(shape)
        if self.arch == "linear":
            self.net = nn.Linear(in_features, d_out)
        elif self.arch == "mlp":
            layers, d = [], in_features
            for _ in range(depth):
                layers += [nn.Linear(d, hidden), nn.ReLU()]
                d = hidden
            self.net = nn.Sequential(*layers, nn.Linear(d, d_out))
        else:  # conv28, conv64: the encoder mirrored, Linear(hidden)-ReLU-Linear to 64 x side x side, then up
            side, channels = CONV_LAYOUT[self.arch]
            self.net = nn.Sequential(
                nn.Linear(in_features, hidden),
                nn.ReLU(),
                nn.Linear(hidden, 64 * side * side),
                nn.ReLU(),
                nn.Unflatten(-1, (64, side, side)),
                *strided_convs(nn.ConvTranspose2d, (*reversed(channels), self.shape[0]))[:-1],
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        out = self.net(z.reshape(-1, z.shape[-1]))
        return out.reshape(*batch, *self.shape)


def broadcast_cat(tensors: Sequence[torch.Tensor], dim: int = -1) -> torch.Tensor:
    """``torch.cat`` after broadcasting all but ``dim`` (needed under enumeration and particle plates)."""
    shape = torch.broadcast_shapes(*[t.shape[:-1] for t in tensors])
    return torch.cat([t.expand(*shape, t.shape[-1]) for t in tensors], dim=dim)
