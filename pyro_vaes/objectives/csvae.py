"""CSVAE's two-part objective and CondVAE-info's adversarial ELBO (Klys, Snell & Zemel, NeurIPS 2018, §3.3, §4.1).

**CSVAE.** The model p(x, y, w, z) assumes Z independent of Y (§4.1). The bound alone does not enforce it, so
the paper also minimises the mutual information I(Z; Y) = H(Y) − H(Y | Z); with p(y) fixed that is maximising
the conditional entropy H(Y | Z), approximated with an adversary q_δ(y | z) on the codes q_φ1(z | x) of the
data. Per datum (x, y), with weights β1 … β5, the model and encoders (θ, φ, γ) minimise

    M = β1 · (−E_q[log p_θ(x | w, z)]) + β2 · KL(q_φ2(w | x, y) ‖ p_γ(w | y)) + β3 · KL(q_φ1(z | x) ‖ p(z))
        + β4 · E_{q_φ1(z | x)}[ Σ_y q_δ(y | z) log q_δ(y | z) ]                       (M1 and M2 of §4.1)

(the last term is the negative entropy of the adversary's prediction: minimising it makes z uninformative
about y), while the adversary δ minimises its own cross-entropy

    N = β5 · E_{q_φ1(z | x)}[ −log q_δ(y | z) ]                                        (N of §4.1)

with its own optimizer; the two steps alternate every training step. Defaults β = {20, 1, 0.2, 10, 1}
(the paper's appendix). With k non-exclusive binary labels the adversary outputs k logits and q_δ(y | z) =
Π_i Bernoulli(y_i; σ(l_i)); the sum over y of q log q is then Σ_i [p_i log p_i + (1 − p_i) log(1 − p_i)]
(:func:`negative_entropy`, minimal, −k log 2, at p_i = ½).

**CondVAE-info** (§3.3, after Creswell et al., 2017): the CondVAE bound with an encoder q_φ(z | x) that ignores
y, plus an adversary r_ψ(z) trained to predict y from z while the encoder is trained to make it fail: the main
loss adds −γ · L(r_ψ(z), y) (the encoder *maximises* the adversary's cross-entropy L, the paper's eq. 3), the
adversary minimises L. ``penalty="negative-entropy"`` uses CSVAE's term instead.

Both are built on :class:`~pyro_vaes.objectives.terms.RegularizedELBO`: one traced pass gives the
reconstruction, the KL per site and the sampled codes. The weights β1–β3 are
:class:`~pyro_vaes.objectives.base.ScaleSites` — a ``poutine.scale`` per named site, applied to the model **and**
the guide — so every term the shared computation reads (and the ``svi`` backend's Pyro loss) carries its weight.
The adversary term is the ``regularizer`` hook, evaluated with **detached** adversary parameters
(:func:`~pyro_vaes.objectives.base.frozen_call`), so the main step never writes gradients into the adversary; the
adversary's step sees **detached** codes — those the main step drew for the same batch, handed over by
:meth:`~pyro_vaes.objectives.terms.RegularizedELBO.handoff_codes` — so it never writes gradients into the encoder.

Notes. Every term is summed over the batch (per-datum β as in the paper). Adam is invariant to a constant
factor on a loss, so β5 (the weight of the adversary's own loss, stepped by its own Adam) changes nothing but
Adam's ε; it is kept for fidelity. The held-out loss the engine reports is this weighted loss, not −ELBO
(``pyro-vaes evaluate`` gives the unweighted ELBO and likelihood). Where the paper is silent: the adversary is
an MLP on z (``adversary_hidden`` units × ``adversary_layers`` ReLU layers, default 64 × 2) and steps with the
run's ``aux_lr`` unless ``adversary_lr`` is given (the paper uses one Adam setting for both).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pyro_vaes.models.csvae import check_binary_labels
from pyro_vaes.objectives.base import (
    AuxiliaryNetwork,
    ScaleSites,  # noqa: F401 (importable from here, as in 0.2.0)
    frozen_call,
    scale_sites,
)
from pyro_vaes.objectives.terms import ELBOTerms, RegularizedELBO
from pyro_vaes.registry import OBJECTIVES


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Σ_y q(y | z) log q(y | z) for q(y | z) = Π_i Bernoulli(y_i; σ(l_i)), per datum: logits (..., k) -> (...).

    Equals −H = Σ_i [p_i log p_i + (1 − p_i) log(1 − p_i)], p_i = σ(l_i), computed from log σ(±l) (stable);
    its minimum, −k log 2, is at p_i = ½ for every label (a uniform prediction)."""
    p = torch.sigmoid(logits)
    return (p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits)).sum(-1)


def label_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """−log q(y | z) = Σ_i BCE(σ(l_i), y_i) per datum: logits and labels (..., k) -> (...)."""
    return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), reduction="none").sum(-1)


class Adversary(nn.Module):
    """q_δ(y | z): an MLP from the code z to one logit per binary label (``layers`` ReLU layers of ``hidden``)."""

    def __init__(self, latent_dim: int, num_labels: int, hidden: int = 64, layers: int = 2):
        super().__init__()
        mods, d = [], latent_dim
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        mods.append(nn.Linear(d, num_labels))
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


PENALTIES = ("negative-entropy", "cross-entropy")


def positive_weights(**weights: float) -> tuple[float, ...]:
    """The weights as floats, in the order given, each checked to be > 0 (a ``poutine.scale`` refuses 0)."""
    for name, b in weights.items():
        if not float(b) > 0:
            raise ValueError(f"{name} must be > 0, got {b}")
    return tuple(float(b) for b in weights.values())


class LabelAdversaryELBO(RegularizedELBO):
    """A site-weighted ELBO plus ``adversary_weight`` × a penalty on an adversary q(y | z) that predicts the binary
    labels from the model's code site, the adversary trained on its own cross-entropy by its own optimizer.

    Subclasses fix which sites carry which weight (:meth:`site_weights`) and the default penalty.
    """

    requires = frozenset({"guide", "no-enumeration", "code", "binary-labels"})
    example_args = {"adversary_hidden": 8, "adversary_layers": 1}

    def __init__(
        self,
        adversary_weight: float,
        adversary_loss_weight: float,
        penalty: str,
        adversary_hidden: int,
        adversary_layers: int,
        adversary_lr: float | None,
        analytic_kl: bool,
    ):
        super().__init__(analytic_kl)
        if not float(adversary_weight) >= 0:
            raise ValueError(f"the adversary term's weight must be >= 0, got {adversary_weight}")
        if not float(adversary_loss_weight) > 0:
            raise ValueError(f"the adversary's own loss weight must be > 0, got {adversary_loss_weight}")
        if penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}, got {penalty!r}")
        if int(adversary_hidden) < 1 or int(adversary_layers) < 0:
            raise ValueError("adversary_hidden must be >= 1 and adversary_layers >= 0")
        if adversary_lr is not None and not float(adversary_lr) > 0:
            raise ValueError(f"adversary_lr must be > 0, got {adversary_lr}")
        self.adversary_weight = float(adversary_weight)
        self.adversary_loss_weight = float(adversary_loss_weight)
        self.penalty = penalty
        self.adversary_hidden, self.adversary_layers = int(adversary_hidden), int(adversary_layers)
        self.adversary_lr = None if adversary_lr is None else float(adversary_lr)
        self.adversary: nn.Module | None = None

    def site_weights(self) -> dict[str, float]:
        raise NotImplementedError

    def bind(self, model, guide, num_data=None) -> LabelAdversaryELBO:
        if getattr(model, "labels", None) != "binary":
            raise ValueError(
                f"{type(self).__name__} needs a model of binary labels; {type(model).__name__} has "
                f"labels={getattr(model, 'labels', None)!r}"
            )
        self.adversary = Adversary(
            int(model.latent_dim), int(model.num_labels), self.adversary_hidden, self.adversary_layers
        ).to(model.device)
        return super().bind(model, guide, num_data)

    def model_and_guide(self):
        weights = self.site_weights()
        return scale_sites(self.model.model, weights), scale_sites(self.guide.guide, weights)

    def networks(self) -> dict[str, AuxiliaryNetwork]:
        return {"adversary": AuxiliaryNetwork(self.adversary, lr=self.adversary_lr)}

    def penalty_per_datum(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The term the encoder minimises, per datum: −H(q(y | z)) or −L(q(y | z), y)."""
        if self.penalty == "negative-entropy":
            return negative_entropy(logits)
        return -label_cross_entropy(logits, y)

    def regularizer(self, terms: ELBOTerms, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """adversary_weight · Σ_i penalty(q_δ(y | z_i)), the adversary evaluated with detached parameters."""
        z = self.handoff_codes(terms, x, y)
        labels = check_binary_labels(self.model, y, x.shape[0])
        logits = frozen_call(self.adversary, z)
        return self.adversary_weight * self.penalty_per_datum(logits, labels).sum()

    def network_loss(self, name: str, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The adversary's loss β5 · Σ_i −log q_δ(y_i | z_i) on detached codes of the batch (those the main step drew
        for it, else fresh draws from the guide)."""
        if name != "adversary":
            return super().network_loss(name, x, y)
        z = self.network_codes(x, y)
        labels = check_binary_labels(self.model, y, x.shape[0])
        return self.adversary_loss_weight * label_cross_entropy(self.adversary(z), labels).sum()

    @torch.no_grad()
    def adversary_accuracy(self, z: torch.Tensor, y: torch.Tensor) -> float:
        """How often the adversary's prediction (p > ½) matches each label, for codes z (B, d) and labels (B, k)."""
        pred = (self.adversary(z) > 0).long()
        return float((pred == y.long()).float().mean())


@OBJECTIVES.register(
    "csvae",
    help="CSVAE (Klys et al.): β-weighted bound + β4·(−H of an adversary q(y|z)), the adversary with its own optimizer",
)
class CSVAEObjective(LabelAdversaryELBO):
    """CSVAE's objective (Klys et al., 2018, §4.1): β1·recon + β2·KL(w) + β3·KL(z) + β4·(−H(q_δ(y | z))), and
    the adversary's β5·CE(q_δ(y | z), y) with its own optimizer, alternating each step (see the module docstring).

    :param beta1: weight of −log p(x | w, z). :param beta2: weight of KL(q(w | x, y) ‖ p(w | y)).
    :param beta3: weight of KL(q(z | x) ‖ p(z)). :param beta4: weight of the adversary's negative entropy.
    :param beta5: weight of the adversary's own cross-entropy.
    :param penalty: ``negative-entropy`` (the paper's) or ``cross-entropy`` (CondVAE-info's −CE).
    :param adversary_hidden: / :param adversary_layers: the adversary MLP (default 64 × 2).
    :param adversary_lr: its Adam learning rate (default: the run's ``aux_lr``).
    :param analytic_kl: analytic Gaussian KLs (default), else one-draw estimates.
    """

    models = ("csvae",)

    def __init__(
        self,
        beta1: float = 20.0,
        beta2: float = 1.0,
        beta3: float = 0.2,
        beta4: float = 10.0,
        beta5: float = 1.0,
        penalty: str = "negative-entropy",
        adversary_hidden: int = 64,
        adversary_layers: int = 2,
        adversary_lr: float | None = None,
        analytic_kl: bool = True,
    ):
        super().__init__(beta4, beta5, penalty, adversary_hidden, adversary_layers, adversary_lr, analytic_kl)
        self.beta1, self.beta2, self.beta3 = positive_weights(beta1=beta1, beta2=beta2, beta3=beta3)
        self.beta4, self.beta5 = self.adversary_weight, self.adversary_loss_weight

    def site_weights(self) -> dict[str, float]:
        return {"x": self.beta1, "w": self.beta2, "z": self.beta3}


@OBJECTIVES.register(
    "condvae-info",
    help="CondVAE-info (Klys et al. §3.3): ELBO − γ·CE of an adversary r(z) -> y, the adversary with its own optimizer",
)
class CondVAEInfo(LabelAdversaryELBO):
    """CondVAE-info (Klys et al., 2018, §3.3, eq. 3): the (weighted) CondVAE bound, and the encoder maximises the
    cross-entropy of an adversary r_ψ(z) that predicts y from z; r_ψ minimises it with its own optimizer.

    :param recon_weight: weight of −log p(x | z, y) (default 1; CSVAE's β1 = 20 for a like-for-like comparison).
    :param kl_weight: weight of KL(q(z | x) ‖ p(z)) (default 1; CSVAE's β3 = 0.2 likewise).
    :param gamma: weight of the adversary term in the main loss (the paper gives none; default 10, CSVAE's β4).
    :param adversary_loss_weight: weight of the adversary's own loss (default 1, CSVAE's β5).
    :param penalty: ``cross-entropy`` (the paper's eq. 3, default) or ``negative-entropy`` (CSVAE's).
    :param adversary_hidden: / :param adversary_layers: / :param adversary_lr: / :param analytic_kl: as ``csvae``.
    """

    models = ("condvae",)

    def __init__(
        self,
        recon_weight: float = 1.0,
        kl_weight: float = 1.0,
        gamma: float = 10.0,
        adversary_loss_weight: float = 1.0,
        penalty: str = "cross-entropy",
        adversary_hidden: int = 64,
        adversary_layers: int = 2,
        adversary_lr: float | None = None,
        analytic_kl: bool = True,
    ):
        super().__init__(
            gamma, adversary_loss_weight, penalty, adversary_hidden, adversary_layers, adversary_lr, analytic_kl
        )
        self.recon_weight, self.kl_weight = positive_weights(recon_weight=recon_weight, kl_weight=kl_weight)

    def site_weights(self) -> dict[str, float]:
        return {"x": self.recon_weight, "z": self.kl_weight}
