"""N-VAE, the natural-clustering VAE (Antorán & Miguel, *Disentangling and Learning Robust Representations with
Natural Clustering*, ICMLA 2019, arXiv 1901.09415).

Generative model, for each datum i of a batch with K classes (paper §III-B, Fig. 4)::

    z_i = [z_c,i, z_s,i] ~ N(0, I)           z_c = [z_c^1, ..., z_c^K]: one block of ``class_dim`` per class,
                                              z_s: ``shared_dim`` shared latents
    π_i ~ Dir(α 1_K)                          symmetric Dirichlet: every class equally probable a priori
    y_i ~ Cat(π_i)                            observed in training; drawn from the model when generating
    x_i ~ p(x | f_θ(h_i)),   h_i = [vec(z_c,i ⊙ y_i), z_s,i, y_i]

with y_i one-hot in h_i: the element-wise product keeps the label's own block of z_c and zeroes every other one
(the masking), and the trailing y_i adds a class-dependent bias to the decoder's first layer (paper appendix B;
``class_bias=False`` removes it, the appendix's ablation). The paper treats π as a continuous latent over which
inference is done (its guide is a Dirichlet q(π | x), ``guides/nvae.py``); the bound on log p(x, y) it maximises
is in ``pyro_vaes/objectives/nvae.py``.

Where the paper is silent we choose, and expose the choice: the block sizes (``class_dim`` = 2,
``shared_dim`` = 8), the Dirichlet concentration α (1, uniform over the simplex), the networks (the project's
``pyro_vaes.nets`` decoder picked from the data's shape; ``hidden`` 400) and the likelihood (``auto``: Bernoulli
for binary data, continuous Bernoulli for grey levels, Gaussian otherwise).

Generation: :meth:`NVAE.sample_prior` draws z ~ N(0, I), π ~ Dir(α) and y ~ Cat(π) (a given y is kept), so
``sample(n, y)`` gives class-conditioned samples and ``sample(n)`` draws the classes from the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch

from pyro_vaes.models.base import ClassConditionalModel, one_hot, positive_int, standard_normal
from pyro_vaes.nets import broadcast_cat
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import MODELS


def mask_class_blocks(z_c: torch.Tensor, onehot: torch.Tensor, class_dim: int) -> torch.Tensor:
    """vec(z_c ⊙ y): ``z_c`` (..., K·class_dim) viewed as K blocks, each multiplied by its entry of the one-hot
    ``onehot`` (..., K) (broadcast over leading dimensions: particles, enumeration), flattened back."""
    K = onehot.shape[-1]
    blocks = z_c.reshape(*z_c.shape[:-1], K, class_dim)
    masked = blocks * onehot.unsqueeze(-1)
    return masked.reshape(*masked.shape[:-2], K * class_dim)


@MODELS.register("nvae")
class NVAE(ClassConditionalModel):
    """N-VAE: z = [z_c (one block per class), z_s] ~ N(0, I), π ~ Dir(α), y ~ Cat(π), x ~ p(x | f([vec(z_c ⊙ y),
    z_s, y])) (Antorán & Miguel, 2019, §III-B).

    :param input_shape: shape of one observation.
    :param num_classes: K (filled in from the data by the engine).
    :param class_dim: size of each class's block of z_c (paper: not given; 2 here).
    :param shared_dim: size of z_s (paper: not given; 8 here).
    :param alpha: concentration of the symmetric Dirichlet prior on π (paper: not given; 1 here).
    :param class_bias: feed the one-hot y to the decoder besides the masked blocks (paper: yes, appendix B).
    :param likelihood: ``bernoulli``, ``continuous-bernoulli``, ``gaussian`` or ``auto`` (picked from the data).
    :param obs_scale: standard deviation of the Gaussian likelihood.
    :param arch: decoder architecture (:mod:`pyro_vaes.nets`; ``auto`` picks one from the data's shape).
    :param hidden: hidden width of the decoder.

    The code site ``z`` holds [z_c, z_s]: ``latent_dim`` = K·class_dim + shared_dim; dimensions
    ``class_slice(k)`` are class k's block and ``shared_slice`` the shared ones.
    """

    latent_sites = ("z", "pi")
    labels = "class"
    default_objective = "nvae"
    example_shape = (1, 28, 28)
    example_args = {"class_dim": 2, "shared_dim": 2, "hidden": 16, "likelihood": "bernoulli"}

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        class_dim: int = 2,
        shared_dim: int = 8,
        alpha: float = 1.0,
        class_bias: bool = True,
        likelihood: str = "auto",
        obs_scale: float = 1.0,
        arch: str = "auto",
        hidden: int = 400,
    ):
        super().__init__(input_shape)
        self.num_classes = positive_int("num_classes", num_classes)
        if self.num_classes < 2:
            raise ValueError(f"N-VAE needs at least 2 classes, got num_classes={num_classes}")
        self.class_dim = positive_int("class_dim", class_dim)
        if isinstance(shared_dim, bool) or int(shared_dim) != shared_dim or int(shared_dim) < 0:
            raise ValueError(f"shared_dim must be an integer >= 0, got {shared_dim!r}")
        self.shared_dim = int(shared_dim)
        if not float(alpha) > 0:
            raise ValueError(f"alpha (the Dirichlet concentration) must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.class_bias = bool(class_bias)
        self.latent_dim = self.num_classes * self.class_dim + self.shared_dim
        in_features = self.latent_dim + (self.num_classes if self.class_bias else 0)
        self.decoder = self.likelihood_decoder(in_features, likelihood, obs_scale, arch, hidden)

    # -- the layout of z ---------------------------------------------------------------------------------------
    def class_slice(self, k: int) -> slice:
        """The dimensions of z that are class k's block of z_c."""
        return slice(k * self.class_dim, (k + 1) * self.class_dim)

    @property
    def shared_slice(self) -> slice:
        """The dimensions of z that are z_s."""
        return slice(self.num_classes * self.class_dim, self.latent_dim)

    def prior_concentration(self, like: torch.Tensor) -> torch.Tensor:
        """α 1_K as a tensor of ``like``'s dtype and device."""
        return like.new_full((self.num_classes,), self.alpha)

    # -- the decoder ----------------------------------------------------------------------------------------------
    def decoder_input(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """h = [vec(z_c ⊙ y), z_s, y] (paper §III-B); ``y`` integer classes, broadcast against ``z``'s leading dims."""
        onehot = one_hot(y, self.num_classes, z)
        k_dims = self.num_classes * self.class_dim
        parts = [mask_class_blocks(z[..., :k_dims], onehot, self.class_dim), z[..., k_dims:]]
        if self.class_bias:
            parts.append(onehot)
        return broadcast_cat(parts)

    def params(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Decoder output (logits or means) for codes ``z`` and classes ``y``."""
        return self.decoder(self.decoder_input(z, y))

    # -- the contract ---------------------------------------------------------------------------------------------
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """p(x, y, z, π) = Π_i N(z_i; 0, I) Dir(π_i; α) Cat(y_i; π_i) p(x_i | f([vec(z_c,i ⊙ y_i), z_s,i, y_i])).

        ``y`` given: observed (training, evaluation). ``y`` None: y is a latent drawn from Cat(π) (generation),
        or enumerated by a guide that enumerates it (``nvae-enum``)."""
        self.check_input(x)
        register(self)
        B = x.shape[0]
        with pyro.plate("data", B):
            z = pyro.sample("z", standard_normal(B, self.latent_dim, x))
            pi = pyro.sample("pi", dist.Dirichlet(self.prior_concentration(x)).expand([B]))
            y = pyro.sample("y", dist.Categorical(probs=pi), obs=y)
            pyro.sample("x", self.observation_dist(self.params(z, y)), obs=x)

    def sample_prior(self, n: int, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """z ~ N(0, I), π ~ Dir(α 1_K) and y ~ Cat(π); a given y is kept and π drawn from p(π | y) = Dir(α 1_K + y)."""
        dev = self.device
        z = torch.randn(n, self.latent_dim, device=dev)
        concentration = torch.full((n, self.num_classes), self.alpha, device=dev)
        if y is None:
            pi = dist.Dirichlet(concentration).sample()
            y = dist.Categorical(probs=pi).sample()
        else:
            y = y.to(dev).long()
            pi = dist.Dirichlet(concentration + one_hot(y, self.num_classes, concentration)).sample()
        return {"z": z, "pi": pi, "y": y}
