"""The decoupled prior of dpVAE (Bhalodia, Lee & Elhabian, 2020): N(0, I) pushed through a stack of affine coupling
layers, as a Pyro :class:`~pyro.distributions.TransformedDistribution`.

Two spaces (paper §4.2, Fig. 2): the **generation space** z₀ ~ N(0, I) and the **representation space** z, where the
encoder, the decoder and every regulariser act, related by a bijection g: z ↦ z₀ with inverse g⁻¹. The prior on z is
the change of variables (paper eq. 2, 7)

    log p(z) = log N(g(z); 0, I) + log |det ∂g(z)/∂z|,

which is exactly what ``TransformedDistribution(N(0, I), [T₁, …, T_K]).log_prob(z)`` computes when each Tₖ maps
z₀ towards z (Pyro applies the transforms in order to sample, and inverts them in reverse order to score). One layer
(paper eq. 3-4, 8), with a binary mask m and networks s, t:

    g⁻¹ layer (z₀ → z):   y = m ⊙ x + (1 − m) ⊙ (x ⊙ exp(s(m ⊙ x)) + t(m ⊙ x))
    g layer   (z → z₀):   x = m ⊙ y + (1 − m) ⊙ (y − t(m ⊙ y)) ⊙ exp(−s(m ⊙ y))
    log |det ∂y/∂x| = Σ_j (1 − m_j) s_j(m ⊙ x)                                         (paper eq. 22)

As in the authors' code (``models/implicit_model.py``), s and t are separate MLPs d → 64 → 64 → d with LeakyReLU
(slope 0.01) and a final **tanh**, both multiplied by (1 − m): the log-scale is bounded in (−1, 1). Pyro's own
``AffineCoupling`` splits at a fixed index and *clamps* the log-scale to [−5, 3] instead, so this layer is written as a
:class:`~pyro.distributions.torch_transform.TransformModule` of its own. Masks alternate between layers: ``alternate``
(m = 1 on every other dimension, the complement in the next layer: the authors' [[1, 0], [0, 1]] × 3 for d = 2) or
``half`` (the first ⌊d/2⌋ dimensions, then the rest: the authors' later "half" option). ``init="identity"`` zeroes
the last layer of s and t, so the flow starts as the identity and the prior as exactly N(0, I) (the paper does not
say; the authors' code uses PyTorch's default initialisation, ``init="random"``).

The layers cache no x ↔ y pairs (``cache_size=0``: such a cache would return a stale value after an optimizer step
if it were handed the same tensor again); each keeps only the log-scale of its last call for the log-determinant
that ``TransformedDistribution.log_prob`` asks for next on the very same tensors (checked by identity), which saves
one network evaluation per layer.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.distributions.torch_transform import TransformModule
from torch import nn

MASKS = ("alternate", "half")
INITS = ("identity", "random")


def coupling_masks(dim: int, layers: int, kind: str = "alternate") -> torch.Tensor:
    """``layers`` binary masks over ``dim`` dimensions (1: passed through and conditioned on; 0: transformed)."""
    if kind not in MASKS:
        raise ValueError(f"unknown flow mask {kind!r}; valid: {', '.join(MASKS)}")
    if kind == "alternate":
        first = (torch.arange(dim) % 2 == 0).float()
    else:
        first = (torch.arange(dim) < max(1, dim // 2)).float()
    return torch.stack([first if k % 2 == 0 else 1.0 - first for k in range(layers)])


def coupling_net(dim: int, hidden: int) -> nn.Sequential:
    """The authors' s / t network: Linear(d, h) − LeakyReLU − Linear(h, h) − LeakyReLU − Linear(h, d) − Tanh."""
    return nn.Sequential(
        nn.Linear(dim, hidden),
        nn.LeakyReLU(),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(),
        nn.Linear(hidden, dim),
        nn.Tanh(),
    )


class MaskedAffineCoupling(TransformModule):
    """One RealNVP affine coupling layer with a binary mask and tanh-bounded scale and shift (see the module
    docstring). Its forward direction maps generation space towards representation space (a layer of g⁻¹)."""

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    sign = +1

    def __init__(self, mask: torch.Tensor, hidden: int = 64, init: str = "identity"):
        super().__init__(cache_size=0)
        if init not in INITS:
            raise ValueError(f"unknown flow init {init!r}; valid: {', '.join(INITS)}")
        dim = int(mask.numel())
        self._last = None  # (x, y, log-scale) of the last call, for log_abs_det_jacobian on the same tensors
        self.register_buffer("mask", mask.detach().clone().float().reshape(dim), persistent=False)
        self.scale_net = coupling_net(dim, hidden)
        self.shift_net = coupling_net(dim, hidden)
        if init == "identity":
            for net in (self.scale_net, self.shift_net):
                nn.init.zeros_(net[-2].weight)
                nn.init.zeros_(net[-2].bias)

    def __getstate__(self):  # copies and pickles never carry the last call's tensors (and their graph)
        state = super().__getstate__()
        state["_last"] = None
        return state

    def scale_shift(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s(m ⊙ x) ⊙ (1 − m) and t(m ⊙ x) ⊙ (1 − m) for an input whose masked part is ``x``'s."""
        xm = x * self.mask
        keep = 1.0 - self.mask
        return self.scale_net(xm) * keep, self.shift_net(xm) * keep

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        s, t = self.scale_shift(x)
        y = x * self.mask + (1.0 - self.mask) * (x * torch.exp(s) + t)
        self._last = (x, y, s)
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        s, t = self.scale_shift(y)  # the masked part of y is the masked part of x
        x = y * self.mask + (1.0 - self.mask) * (y - t) * torch.exp(-s)
        self._last = (x, y, s)
        return x

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        last, self._last = self._last, None
        if last is not None and last[0] is x and last[1] is y:
            s = last[2]
        else:
            s, _ = self.scale_shift(x)
        return s.sum(-1)


class DecoupledFlow(nn.Module):
    """g⁻¹ = T_K ∘ … ∘ T₁ (z₀ → z) as ``layers`` :class:`MaskedAffineCoupling` layers over ``dim`` dimensions.

    :meth:`distribution` is the decoupled prior p(z) for n items; :meth:`forward` maps z₀ to z and
    :meth:`inverse` maps z to z₀ = g(z) with log |det ∂g/∂z|.
    """

    def __init__(self, dim: int, layers: int = 6, hidden: int = 64, mask: str = "alternate", init: str = "identity"):
        super().__init__()
        if int(layers) < 1 or int(hidden) < 1:
            raise ValueError(f"flow_layers and flow_hidden must be >= 1, got {layers} and {hidden}")
        self.dim = int(dim)
        masks = coupling_masks(self.dim, int(layers), mask)
        self.layers = nn.ModuleList([MaskedAffineCoupling(m, int(hidden), init) for m in masks])

    @property
    def transforms(self) -> list[MaskedAffineCoupling]:
        return list(self.layers)

    def distribution(self, n: int, device=None) -> dist.TransformedDistribution:
        """p(z) for ``n`` items: batch shape (n,), event shape (dim,)."""
        device = device if device is not None else self.layers[0].mask.device
        base = dist.Normal(torch.zeros(self.dim, device=device), 1.0).expand([n, self.dim]).to_event(1)
        return dist.TransformedDistribution(base, self.transforms)

    def forward(self, z0: torch.Tensor) -> torch.Tensor:
        """z = g⁻¹(z₀)."""
        for t in self.layers:
            z0 = t(z0)
        return z0

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z₀ = g(z) and log |det ∂g(z)/∂z| = −Σ_k log |det ∂T_k| at the intermediate points."""
        log_det = z.new_zeros(z.shape[:-1])
        for t in reversed(self.layers):
            x = t.inv(z)
            log_det = log_det - t.log_abs_det_jacobian(x, z)
            z = x
        return z, log_det


# -- the two spaces of any prior ----------------------------------------------------------------------------------
def generation_space(prior: dist.Distribution) -> tuple[dist.Distribution, Callable, Callable]:
    """``(base, g, g_inv)`` for a prior read off a model's trace: for a ``TransformedDistribution`` the base
    distribution and the maps z ↦ z₀ (its transforms inverted in reverse order) and z₀ ↦ z; for any other prior
    the prior itself and the identity (generation space = representation space)."""
    if isinstance(prior, torch.distributions.TransformedDistribution):
        transforms = list(prior.transforms)

        def g(z: torch.Tensor) -> torch.Tensor:
            for t in reversed(transforms):
                z = t.inv(z)
            return z

        def g_inv(z0: torch.Tensor) -> torch.Tensor:
            for t in transforms:
                z0 = t(z0)
            return z0

        return prior.base_dist, g, g_inv
    return prior, (lambda z: z), (lambda z0: z0)
