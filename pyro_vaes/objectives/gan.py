"""Adversarial objectives for the class-conditional generators of ``models/gan.py``: CGAN and AC-GAN.

Each brings its discriminator as an auxiliary network with its own Adam (lr ``disc_lr``, betas (0.5, 0.999), the
DCGAN settings both papers' successors use) and steps it first: ``step_order = ("discriminator", "main")``. The
main loss, minimised by the engine's main optimizer over the generator's parameters (``--lr``, betas (0.5, 0.999)),
is the generator's. Losses are summed over the batch; fakes are generated for the batch's own labels, so their
classes follow the data's.

``cgan`` (Mirza & Osindero, 2014, eq. 2), D(x, y) a logit:

    L_D = −Σ_i [log D(x_i, y_i) + log(1 − D(G(z_i, y_i), y_i))]
    L_G = −Σ_i log D(G(z_i, y_i), y_i)                         (the non-saturating generator loss)

``acgan`` (Odena et al., 2017, eqs. 2–3), D(x) a source logit and K class logits:

    L_S = Σ_i [log P(real | x_i) + log P(fake | G(z_i, y_i))],  L_C = Σ_i [log P(y_i | x_i) + log P(y_i | G(z_i, y_i))]
    D maximises L_S + λ L_C;  G minimises −Σ_i log P(real | G(z_i, y_i)) − λ Σ_i log P(y_i | G(z_i, y_i))

(λ = ``class_weight``, 1 in the paper). Gradient hygiene: the discriminator's step sees fakes generated without
gradients (nothing reaches the generator), and the generator's loss evaluates the discriminator with **detached**
parameters (:func:`~pyro_vaes.objectives.base.frozen_call`), so it never writes gradients into the discriminator;
the tests check both. Discriminator network (the papers' conv/maxout nets are not specified for our sizes): the
project's encoder for the data's shape (``pyro_vaes.nets``, ``disc_hidden`` units) and a small head — for CGAN the
label's one-hot is concatenated to the features, then Linear–LeakyReLU(0.2)–Linear to one logit; for AC-GAN two
linear heads; dropout ``disc_dropout`` (0.5, as Mirza & Osindero apply in their discriminator) after the features
and the hidden layer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pyro_vaes.models.base import positive_int
from pyro_vaes.nets import Encoder
from pyro_vaes.objectives.base import AuxiliaryNetwork, Objective, frozen_call
from pyro_vaes.registry import OBJECTIVES

GAN_BETAS = (0.5, 0.999)


class ConditionalDiscriminator(nn.Module):
    """CGAN's D(x, y): features e(x) (dropout), then [e(x), onehot(y)] -> Linear -> LeakyReLU(0.2) -> dropout ->
    Linear -> one logit."""

    def __init__(self, arch: str, input_shape, num_classes: int, hidden: int, dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(Encoder(arch, input_shape, hidden), nn.Dropout(dropout))
        self.head = nn.Sequential(
            nn.Linear(hidden + num_classes, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.features(x), F.one_hot(y.long(), self.num_classes).to(x.dtype)], -1)
        return self.head(h).squeeze(-1)


class AuxiliaryClassifierDiscriminator(nn.Module):
    """AC-GAN's D(x): features e(x) (dropout) -> (one source logit, K class logits)."""

    def __init__(self, arch: str, input_shape, num_classes: int, hidden: int, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(Encoder(arch, input_shape, hidden), nn.Dropout(dropout))
        self.source = nn.Linear(hidden, 1)
        self.classes = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.source(h).squeeze(-1), self.classes(h)


class _GANObjective(Objective):
    """What both adversarial objectives share: the discriminator network, its optimizer, the step order."""

    requires = frozenset({"class-labels"})
    step_order = ("discriminator", "main")
    main_betas = GAN_BETAS
    example_args = {"disc_hidden": 16}
    #: the objective's registered name, for messages
    objective_name = "gan"

    def __init__(self, disc_hidden: int = 400, disc_lr: float = 2e-4, disc_dropout: float = 0.5):
        super().__init__()
        self.disc_hidden = positive_int("disc_hidden", disc_hidden)
        if not float(disc_lr) > 0:
            raise ValueError(f"disc_lr must be > 0, got {disc_lr}")
        if not 0 <= float(disc_dropout) < 1:
            raise ValueError(f"disc_dropout must be in [0, 1), got {disc_dropout}")
        self.disc_lr = float(disc_lr)
        self.disc_dropout = float(disc_dropout)
        self.discriminator: nn.Module | None = None

    def make_discriminator(self, model) -> nn.Module:
        raise NotImplementedError

    def bind(self, model, guide, num_data=None) -> _GANObjective:
        self.discriminator = self.make_discriminator(model).to(model.device)
        return super().bind(model, guide, num_data)

    def networks(self) -> dict[str, AuxiliaryNetwork]:
        return {"discriminator": AuxiliaryNetwork(self.discriminator, lr=self.disc_lr, betas=GAN_BETAS)}

    def fake(self, y: torch.Tensor) -> torch.Tensor:
        """Generated observations for the labels ``y`` (codes z ~ N(0, I))."""
        return self.model.sample(len(y), y)

    def _labels(self, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError(
                f"objective {self.objective_name!r} trains a class-conditional generator; this batch has no labels"
            )
        return y.long()

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The generator's loss (:meth:`generator_loss`) on fakes for the batch's labels."""
        y = self._labels(y)
        return self.generator_loss(self.fake(y), y)

    def network_loss(self, name: str, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator's loss (:meth:`discriminator_loss`) on the real batch and fakes for its labels, the fakes
        generated without gradients (nothing reaches the generator)."""
        if name != "discriminator":
            return super().network_loss(name, x, y)
        y = self._labels(y)
        with torch.no_grad():
            fake = self.fake(y)
        return self.discriminator_loss(x, fake, y)

    def generator_loss(self, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """G's loss on its fakes for labels ``y``, D read with detached parameters (:func:`frozen_call`)."""
        raise NotImplementedError

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """D's loss on a real batch and detached fakes, both for labels ``y``."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate_loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
        """The generator's loss on a held-out batch's labels (what the main optimizer minimises)."""
        return float(self.loss(x, y))


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction="sum")


@OBJECTIVES.register("cgan")
class CGANObjective(_GANObjective):
    """The conditional GAN (Mirza & Osindero, 2014): D(x, y) tells real from generated pairs; G fools it.

    :param disc_hidden: discriminator width. :param disc_lr: discriminator learning rate (Adam, betas (0.5, 0.999)).
    :param disc_dropout: dropout in the discriminator (Mirza & Osindero: 0.5).
    """

    models = ("cgan",)
    objective_name = "cgan"

    def make_discriminator(self, model) -> nn.Module:
        return ConditionalDiscriminator(
            model.arch, model.input_shape, model.num_classes, self.disc_hidden, self.disc_dropout
        )

    def generator_loss(self, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L_G = −Σ log D(G(z, y), y) (non-saturating), D frozen."""
        return _bce(frozen_call(self.discriminator, fake, y), 1.0)

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L_D = −Σ [log D(x, y) + log(1 − D(G(z, y), y))]."""
        return _bce(self.discriminator(real, y), 1.0) + _bce(self.discriminator(fake, y), 0.0)


@OBJECTIVES.register("acgan")
class ACGANObjective(_GANObjective):
    """AC-GAN (Odena et al., 2017): D tells real from generated and classifies both; G fools it and is classified
    as the class it was asked for.

    :param class_weight: λ, the weight of the class log-likelihood L_C (paper: 1).
    :param disc_hidden: discriminator width. :param disc_lr: discriminator learning rate.
    :param disc_dropout: dropout in the discriminator (0.5, as for CGAN).
    """

    models = ("acgan",)
    objective_name = "acgan"

    def __init__(
        self, class_weight: float = 1.0, disc_hidden: int = 400, disc_lr: float = 2e-4, disc_dropout: float = 0.5
    ):
        super().__init__(disc_hidden, disc_lr, disc_dropout)
        if isinstance(class_weight, bool) or not float(class_weight) >= 0:
            raise ValueError(f"class_weight must be a number >= 0, got {class_weight!r}")
        self.class_weight = float(class_weight)

    def make_discriminator(self, model) -> nn.Module:
        return AuxiliaryClassifierDiscriminator(
            model.arch, model.input_shape, model.num_classes, self.disc_hidden, self.disc_dropout
        )

    def generator_loss(self, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """−Σ log P(real | G(z, y)) − λ Σ log P(y | G(z, y)), D frozen."""
        source, classes = frozen_call(self.discriminator, fake)
        return _bce(source, 1.0) + self.class_weight * F.cross_entropy(classes, y, reduction="sum")

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """−(L_S + λ L_C) on the real batch and the fakes for the same labels."""
        real_source, real_classes = self.discriminator(real)
        fake_source, fake_classes = self.discriminator(fake)
        source = _bce(real_source, 1.0) + _bce(fake_source, 0.0)
        classes = F.cross_entropy(real_classes, y, reduction="sum") + F.cross_entropy(fake_classes, y, reduction="sum")
        return source + self.class_weight * classes
