"""Class-conditional GAN generators, N-VAE's adversarial baselines (Antorán & Miguel, 2019, §IV-C):

* ``cgan`` — the conditional GAN (Mirza & Osindero, *Conditional Generative Adversarial Nets*, 2014): the label
  enters the generator and the discriminator; trained by the objective ``cgan``;
* ``acgan`` — the auxiliary-classifier GAN (Odena, Olah & Shlens, *Conditional Image Synthesis with Auxiliary
  Classifier GANs*, ICML 2017): the label enters the generator; the discriminator also classifies; trained by the
  objective ``acgan``.

Both are the same generator, a plain PyTorch module with no likelihood and no guide (``has_guide = False``)::

    z ~ N(0, I_latent_dim),   y ~ Uniform{0..K−1} (or given),   x = sigmoid(G([z, onehot(y)]))

G is the project's decoder for the data's shape (``pyro_vaes.nets``, ``hidden`` 400), the same network the
VAEs of the comparison decode with, so the four models differ in how they are trained, not in their generator.
Codes are Gaussian (Mirza & Osindero draw uniform noise) so the augmentation experiment can draw them from
N(0, σ² I) for every model alike. ``output="sigmoid"`` keeps samples in [0, 1] like the images;
``output="linear"`` is for real-valued data. The discriminators are the objectives' networks
(``pyro_vaes/objectives/gan.py``), stepped by their own optimizers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pyro_vaes.models.base import ModelBase, class_to_decode, draw_classes, one_hot, positive_int
from pyro_vaes.nets import Decoder, broadcast_cat, resolve_arch
from pyro_vaes.registry import MODELS

OUTPUTS = ("sigmoid", "linear")


class ConditionalGenerator(ModelBase):
    """x = out(G([z, onehot(y)])), z ~ N(0, I): a class-conditional generator without a likelihood or a guide.

    :param input_shape: shape of one observation.
    :param num_classes: K (filled in from the data by the engine).
    :param latent_dim: size of the noise z.
    :param arch: generator architecture (:mod:`pyro_vaes.nets` decoders).
    :param hidden: hidden width of the generator.
    :param output: ``sigmoid`` (images in [0, 1]) or ``linear``.
    """

    latent_sites = ("z",)
    labels = "class"
    has_guide = False
    example_shape = (1, 28, 28)
    example_args = {"latent_dim": 3, "hidden": 16}

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        latent_dim: int = 32,
        arch: str = "auto",
        hidden: int = 400,
        output: str = "sigmoid",
    ):
        super().__init__(input_shape)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.num_classes = positive_int("num_classes", num_classes)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.arch = resolve_arch(arch, self.input_shape)
        self.output = output
        self.generator = Decoder(
            self.arch, self.latent_dim + self.num_classes, self.input_shape, positive_int("hidden", hidden)
        )

    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z, y); the class comes from ``y`` or, failing that, ``latents["y"]``."""
        z = latents["z"]
        out = self.generator(broadcast_cat([z, one_hot(class_to_decode(self, latents, y), self.num_classes, z)]))
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def sample_prior(self, n: int, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """z ~ N(0, I); y uniform over the classes unless given."""
        y = draw_classes(self, n, y)
        return {"z": torch.randn(n, self.latent_dim, device=self.device), "y": y}


@MODELS.register("cgan")
class CGAN(ConditionalGenerator):
    """The conditional GAN's generator (Mirza & Osindero, 2014), trained by the ``cgan`` objective."""

    default_objective = "cgan"


@MODELS.register("acgan")
class ACGAN(ConditionalGenerator):
    """The AC-GAN's generator (Odena et al., 2017), trained by the ``acgan`` objective."""

    default_objective = "acgan"
