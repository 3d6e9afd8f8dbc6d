"""CSVAE, the conditional subspace VAE (Klys, Snell & Zemel, *Learning Latent Subspaces in Variational
Autoencoders*, NeurIPS 2018, §4).

The latent space is Z × W with W = W_1 × … × W_k, one low-dimensional subspace per binary label y_i. The
paper's graphical model (§4.1, the decomposition of log p(x, y, w, z)) assumes Z independent of (W, Y) and X
independent of Y given W, so for each datum::

    z ~ N(0, I_d)                                            p(z)
    w_i ~ p(w_i | y_i)      for each label i = 1..k          p(w | y) = Π_i p(w_i | y_i)     (§4.2)
    x ~ p(x | decoder([w, z]))                               p_θ(x | w, z)

p(y) is fixed, so log p(y) is a constant of the bound and is left out of the model (the bound it fits is
log p(x | y) ≥ ELBO; add log p(y) for the paper's log p(x, y)). The paper's p(w_i | y_i) are fixed Gaussians
(§4.2): y_i = 1 → N(μ_1, σ_1² I), y_i = 0 → N(μ_2, σ_2² I). The text available to us lost the numbers; the
defaults are those of the third-party re-implementation that states them (qq456cvb/CSVAE): y_i = 1 →
N(0, 0.1² I) (the label-1 points "map near the origin", §5.1), y_i = 0 → N(3·1, I). Another re-implementation
(DISSECT) uses variance 0.01 for both; ``w_prior_loc``/``w_prior_scale`` choose any. ``w_prior="learned"``
makes both Gaussians of every subspace learnable (initialised at the fixed values), the variant one
re-implementation (alexlyzhov/latent-subspaces) uses; as in the paper's factorisation w_i depends on y_i only.

W is one sample site ``w`` of size Σ_i dim W_i; subspace i is ``w[..., model.subspace(i)]``. Models with label
subspaces declare ``subspace_site`` and ``subspace_dims`` and offer :meth:`CSVAE.subspace_prior`, which is all
:mod:`pyro_vaes.analysis.switch` needs to switch an attribute (§4.3).

Choices where the paper is silent (options): the decoder takes [w, z] concatenated (paper Fig. 1(c)); the
architecture is the project's shared one for the data's shape (``arch``); when generating without labels,
y_i ~ Bernoulli(½) independently.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_vaes.models.base import ModelBase, positive_int, standard_normal
from pyro_vaes.nets import broadcast_cat
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import MODELS

W_PRIORS = ("fixed", "learned")


def check_binary_labels(owner: nn.Module, y: torch.Tensor | None, n: int) -> torch.Tensor:
    """``y`` as a float (n, k) tensor of labels (k = ``owner.num_labels``, a model's or a guide's), or a ValueError
    saying what ``owner`` needs."""
    k, name = owner.num_labels, type(owner).__name__
    if y is None:
        raise ValueError(
            f"{name} conditions on {k} binary label(s): pass y of shape (batch, {k}) (a dataset with 0/1 "
            "attribute labels, e.g. celeba or swissroll)"
        )
    if y.dim() == 1 and k == 1:
        y = y[:, None]
    if y.dim() != 2 or y.shape[-1] != k or y.shape[0] != n:
        raise ValueError(f"{name} expects labels y of shape ({n}, {k}), got {tuple(y.shape)}")
    return y if y.is_floating_point() else y.to(torch.get_default_dtype())


def draw_labels(model: ModelBase, n: int) -> torch.Tensor:
    """y ~ Π_i Bernoulli(½), (n, k) float: the labels of a sample when none are given."""
    return torch.bernoulli(torch.full((n, model.num_labels), 0.5, device=model.device))


def _pair(name: str, v: Sequence[float], positive: bool) -> tuple[float, float]:
    try:
        a, b = (float(t) for t in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers [for y_i = 0, for y_i = 1], got {v!r}") from None
    if positive and not (a > 0 and b > 0):
        raise ValueError(f"{name} must be two positive numbers [for y_i = 0, for y_i = 1], got {v!r}")
    return a, b


@MODELS.register("csvae", help="CSVAE (Klys et al., 2018): z ~ N(0, I), one subspace w_i | y_i per binary label")
class CSVAE(ModelBase):
    """CSVAE: z ~ N(0, I), w_i ~ p(w_i | y_i) for every binary label, x ~ p(x | decoder([w, z])).

    :param input_shape: shape of one observation.
    :param num_labels: k, the number of binary labels (filled in from the data).
    :param latent_dim: dimension of z (the label-free part; the code site).
    :param w_dim: dimension of each label's subspace W_i — one int for all, or one per label.
    :param w_prior: ``fixed`` (the paper's Gaussians) or ``learned`` (both Gaussians of each subspace learned).
    :param w_prior_loc: mean of p(w_i | y_i) (every coordinate) for [y_i = 0, y_i = 1]; default [3, 0].
    :param w_prior_scale: standard deviation of p(w_i | y_i) for [y_i = 0, y_i = 1]; default [1, 0.1].
    :param likelihood: ``bernoulli``, ``continuous-bernoulli``, ``gaussian`` or ``auto`` (from the data).
    :param obs_scale: standard deviation of the Gaussian likelihood.
    :param arch: decoder architecture (see :mod:`pyro_vaes.nets`). :param hidden: its hidden width.
    """

    latent_sites = ("z", "w")
    code_site = "z"
    labels = "binary"
    default_objective = "csvae"
    pyro_name = "csvae"
    #: the site holding the label subspaces W_1 × … × W_k (read by :mod:`pyro_vaes.analysis.switch`)
    subspace_site = "w"
    example_shape = (1, 12, 12)
    example_args = {"latent_dim": 3, "w_dim": 2, "hidden": 16, "likelihood": "bernoulli"}

    def __init__(
        self,
        input_shape: Sequence[int],
        num_labels: int,
        latent_dim: int = 10,
        w_dim: int | Sequence[int] = 2,
        w_prior: str = "fixed",
        w_prior_loc: Sequence[float] = (3.0, 0.0),
        w_prior_scale: Sequence[float] = (1.0, 0.1),
        likelihood: str = "auto",
        obs_scale: float = 1.0,
        arch: str = "auto",
        hidden: int = 400,
    ):
        super().__init__(input_shape)
        self.num_labels = positive_int("num_labels", num_labels)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        dims = [w_dim] * self.num_labels if isinstance(w_dim, int) else list(w_dim)
        if len(dims) != self.num_labels:
            raise ValueError(
                f"w_dim has {len(dims)} entries for {self.num_labels} labels: give one int or one per label"
            )
        self.subspace_dims: tuple[int, ...] = tuple(positive_int("w_dim", d) for d in dims)
        self.w_size = sum(self.subspace_dims)
        if w_prior not in W_PRIORS:
            raise ValueError(f"w_prior must be one of {', '.join(W_PRIORS)}, got {w_prior!r}")
        self.w_prior = w_prior
        loc0, loc1 = _pair("w_prior_loc", w_prior_loc, positive=False)
        scale0, scale1 = _pair("w_prior_scale", w_prior_scale, positive=True)
        loc = torch.tensor([[loc0], [loc1]]).expand(2, self.w_size).clone()  # row y_i = 0, row y_i = 1
        scale = torch.tensor([[scale0], [scale1]]).expand(2, self.w_size).clone()
        if w_prior == "learned":
            self.prior_loc = nn.Parameter(loc)
            self.prior_raw_scale = nn.Parameter(scale.log())
        else:
            self.register_buffer("prior_loc", loc)
            self.register_buffer("prior_raw_scale", scale.log())
        # which label each coordinate of w belongs to
        self.register_buffer(
            "label_of_coord",
            torch.repeat_interleave(torch.arange(self.num_labels), torch.tensor(self.subspace_dims)),
            persistent=False,
        )
        self.decoder = self.likelihood_decoder(self.w_size + self.latent_dim, likelihood, obs_scale, arch, hidden)

    # -- the subspaces ------------------------------------------------------------------------------------------
    def subspace(self, i: int) -> slice:
        """The coordinates of W_i within the ``w`` site."""
        if not 0 <= i < self.num_labels:
            raise ValueError(f"label index {i} out of range: the model has {self.num_labels} label subspace(s)")
        start = sum(self.subspace_dims[:i])
        return slice(start, start + self.subspace_dims[i])

    def subspace_prior(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, scale) of p(w | y) = Π_i p(w_i | y_i), each (..., Σ_i dim W_i), for labels y (..., k) in {0, 1}.

        Intermediate values of y interpolate the two Gaussians linearly (used only by label scaling)."""
        y_coord = y[..., self.label_of_coord].to(self.prior_loc.dtype)  # (..., W): y_i repeated dim W_i times
        loc = self.prior_loc[0] + y_coord * (self.prior_loc[1] - self.prior_loc[0])
        scale = (self.prior_raw_scale[0] + y_coord * (self.prior_raw_scale[1] - self.prior_raw_scale[0])).exp()
        return loc, scale

    # -- the contract -------------------------------------------------------------------------------------------
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(x, w, z | y) = p(z) Π_i p(w_i | y_i) p(x | w, z) per datum (§4.1; log p(y) is a constant)."""
        self.check_input(x)
        y = check_binary_labels(self, y, x.shape[0])
        register(self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", standard_normal(x.shape[0], self.latent_dim, x))
            loc, scale = self.subspace_prior(y)
            w = pyro.sample("w", dist.Normal(loc, scale).to_event(1))
            pyro.sample("x", self.observation_dist(self.decoder(broadcast_cat([w, z]))), obs=x)

    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | w, z]: x is independent of y given w, so ``y`` is not used."""
        return self.observation_mean(self.decoder(broadcast_cat([latents["w"], latents["z"]])))

    def sample_prior(self, n: int, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        y = draw_labels(self, n) if y is None else check_binary_labels(self, y.to(self.device), n)
        loc, scale = self.subspace_prior(y)
        return {
            "z": torch.randn(n, self.latent_dim, device=self.device),
            "w": loc + scale * torch.randn_like(loc),
            "y": y,
        }

    def marginal_prior(self, site: str):
        """z: N(0, 1) per dimension; w: the mixture ½ p(w_i | y_i = 0) + ½ p(w_i | y_i = 1) per coordinate."""
        if site == "z":
            return self.standard_normal_marginal(self.latent_dim)
        if site == "w":
            loc, scale = self.prior_loc.detach().t(), self.prior_raw_scale.detach().exp().t()  # (W, 2)
            mix = dist.Categorical(torch.full_like(loc, 0.5))
            return dist.MixtureSameFamily(mix, dist.Normal(loc, scale)), "½ p(w_i | y_i = 0) + ½ p(w_i | y_i = 1)"
        return None
