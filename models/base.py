"""The model contract: what every generative model offers the engine, the guides, evaluation, plots and metrics.

A model is an ``nn.Module`` built as ``Model(input_shape, **model_args)`` (label-conditioned models also get
``num_classes`` or ``num_labels``, filled in from the data when not given). It offers

* ``model(x, y=None)`` — the paper's generative story as a Pyro model: ``pyro.plate("data")`` around every
  per-datum site, batch-level latents (UG-VAE's β, ML-VAE's C) outside it, discrete latents the paper sums
  out marked ``infer={"enumerate": "parallel"}``, the observation site ``x`` with ``obs=x``;
* ``decode(latents, y=None)`` — E[x | latents, y], ``latents`` a dict keyed by site name (the per-datum code
  ``(n, d)`` and, for models that have them, batch-level latents ``(d,)``);
* ``sample_prior(n, y=None)`` — a dict with a prior draw of every latent site (one draw of each batch-level
  site for the n items; for label-conditioned models also ``"y"``, drawn from p(y) when not given);
* ``sample(n, y=None)`` — decoded prior draws, the same for every model: ``decode(sample_prior(n, y))``;

and declares, as class attributes, what the rest of the project reads without building anything:
``latent_sites``, ``global_sites``, ``enumerated_sites``, ``code_site`` (the per-datum continuous latent that
plots, traversals and metrics use; its size is ``latent_dim``), ``labels`` (``None``, ``"class"`` or
``"binary"``), ``has_guide``, ``default_objective`` and ``example_args``/``example_shape`` (a tiny instance for
the contract tests, ``tests/test_contract.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from pyro_vaes.distributions import likelihoods
from pyro_vaes.nets import Decoder, resolve_arch

LABEL_KINDS = (None, "class", "binary")


class ModelBase(nn.Module):
    """A generative model p(x, latents | y) written as a Pyro ``model(x, y=None)`` method."""

    #: names of the latent sample sites, in sampling order
    latent_sites: tuple[str, ...] = ()
    #: latent sites outside the data plate (one draw per batch)
    global_sites: tuple[str, ...] = ()
    #: discrete latent sites the model marks for parallel enumeration (summed out by ``enum-elbo``)
    enumerated_sites: tuple[str, ...] = ()
    #: the per-datum continuous latent that plots, traversals and metrics read; ``latent_dim`` is its size
    code_site: str = "z"
    #: labels the model conditions on: None (ignores y), "class" (y (B,) integer classes, ``num_classes``) or
    #: "binary" (y (B, k) 0/1 labels, ``num_labels``)
    labels: str | None = None
    #: whether the model is fitted with a Pyro guide (False: adversarial models such as CGAN)
    has_guide: bool = True
    #: the ``pyro.plate`` nesting of the model (for ``TraceEnum_ELBO`` and particle plates)
    max_plate_nesting: int = 1
    #: the objective ``pyro-vaes fit`` uses when none is given
    default_objective: str = "elbo"
    #: name under which ``pyro.module`` registers the parameters
    pyro_name: str = "model"
    #: constructor arguments renamed since 0.1.0 (old name -> new name), applied to old run folders only
    renamed_args: dict[str, str] = {}
    #: arguments whose default changed since 0.1.0 (name -> the old default), applied to old run folders that did
    #: not set them, so an old run keeps meaning what it meant
    legacy_args: dict[str, Any] = {}
    #: a tiny instance for the contract tests: observation shape and constructor arguments
    example_shape: tuple[int, ...] = (1, 28, 28)
    example_args: dict[str, Any] = {}

    latent_dim: int

    def __init__(self, input_shape: Sequence[int]):
        super().__init__()
        self.input_shape: tuple[int, ...] = tuple(int(s) for s in input_shape)

    # -- checks ---------------------------------------------------------------------------------------------------
    @classmethod
    def accepts(cls, shape: Sequence[int], label_kind: str | None) -> str | None:
        """Why this model cannot be fitted to data of observation ``shape`` with labels of ``label_kind`` (the
        data's :meth:`~pyro_vaes.data.VAEData.label_kind`), or None when it can. The default takes any shape and
        needs labels of the declared kind, if any."""
        if cls.labels is not None and label_kind != cls.labels:
            return f"it needs {cls.labels} labels and the data has " + (
                f"{label_kind} labels" if label_kind else "none"
            )
        return None

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse observations of the wrong shape with a message naming the expected one."""
        if tuple(x.shape[1:]) != self.input_shape or x.dim() != len(self.input_shape) + 1:
            raise ValueError(
                f"{type(self).__name__} expects data of shape (batch, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )

    # -- the contract ---------------------------------------------------------------------------------------------
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        raise NotImplementedError

    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | latents, y], shaped like the observations (leading dims of the code)."""
        raise NotImplementedError

    def sample_prior(self, n: int, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """A prior draw of every latent site for ``n`` items, keyed by site name."""
        raise NotImplementedError

    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` observations' means decoded from prior draws (labels drawn from the prior when not given)."""
        latents = self.sample_prior(n, y)
        return self.decode(latents, latents.get("y", y))

    def marginal_prior(self, site: str) -> tuple[torch.distributions.Distribution, str] | None:
        """The marginal prior of latent ``site`` per dimension — a distribution with batch shape (d,) over scalars
        (other latents its prior depends on integrated out) — and a line saying what it is; None where the model
        gives none. Evaluation's KL per dimension is taken against it."""
        return None

    def standard_normal_marginal(self, dim: int) -> tuple[torch.distributions.Distribution, str]:
        """N(0, 1) for each of ``dim`` dimensions: the :meth:`marginal_prior` of a standard-normal site."""
        return torch.distributions.Normal(torch.zeros(dim, device=self.device), 1.0), "N(0, 1)"

    # -- the observation model of the models built on the project's decoder ----------------------------------------
    def likelihood_decoder(
        self, in_features: int, likelihood: str, obs_scale: float, arch: str, hidden: int
    ) -> Decoder:
        """Check and keep the observation model (``likelihood``, ``obs_scale``) and the architecture (``arch``,
        resolved for the data's shape), and return the project's decoder from ``in_features`` inputs to the
        likelihood's parameters (``hidden`` units). The constructor assigns it, so the module keeps its name."""
        likelihoods.check_likelihood(likelihood, obs_scale)
        self.likelihood = likelihood
        self.obs_scale = float(obs_scale)
        self.arch = resolve_arch(arch, self.input_shape)
        return Decoder(self.arch, in_features, self.input_shape, positive_int("hidden", hidden))

    def observation_dist(self, params: torch.Tensor) -> dist.Distribution:
        """p(x | params), the decoder's output, with the observation dims as event dims (the site ``x``)."""
        return likelihoods.observation(self.likelihood, params, self.input_shape, self.obs_scale)

    def observation_mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x | params], the decoder's output: what :meth:`decode` returns."""
        return likelihoods.mean(self.likelihood, params)

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")


class ClassConditionalModel(ModelBase):
    """A model of one class per datum (``labels = "class"``, ``num_classes``) whose decoder reads a code ``z`` and
    the classes through :meth:`params`; ``z``'s prior is N(0, I)."""

    labels = "class"
    num_classes: int

    def params(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The likelihood's parameters for codes ``z`` (..., d) and integer classes ``y`` (broadcast)."""
        raise NotImplementedError

    def decode(self, latents: dict[str, torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, y]; the class comes from ``y`` or, failing that, ``latents["y"]``."""
        return self.observation_mean(self.params(latents["z"], class_to_decode(self, latents, y)))

    def marginal_prior(self, site: str):
        """N(0, 1) for each dimension of z (what evaluation's KL per dimension is taken against)."""
        return self.standard_normal_marginal(self.latent_dim) if site == "z" else None


def global_to_plate(g: torch.Tensor) -> torch.Tensor:
    """A batch-level latent (..., D) made broadcastable against the data plate at dim -1.

    Drawn outside every plate it has shape (D,) -> (1, D); under a particles plate at dim -2 it already
    has shape (S, 1, D) and is returned as is.
    """
    return g.unsqueeze(0) if g.dim() == 1 else g


def standard_normal(n: int, dim: int, like: torch.Tensor) -> dist.TorchDistribution:
    """N(0, I_dim) for each of ``n`` items (batch shape (n,), event shape (dim,)), of ``like``'s dtype and device."""
    return dist.Normal(like.new_zeros(dim), 1.0).expand([n, dim]).to_event(1)


def one_hot(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Integer classes ``y`` (...) as one-hot rows (..., num_classes) of ``like``'s dtype."""
    return F.one_hot(y.long(), num_classes).to(like.dtype)


def class_to_decode(model: ModelBase, latents: dict[str, torch.Tensor], y: torch.Tensor | None) -> torch.Tensor:
    """The classes a class-conditioned model decodes for: ``y``, failing that ``latents["y"]`` (a prior draw's)."""
    y = latents.get("y") if y is None else y
    if y is None:
        raise ValueError(f"{type(model).__name__} decodes a code for a class: pass y (integer classes) or latents['y']")
    return y


def draw_classes(model: ModelBase, n: int, y: torch.Tensor | None) -> torch.Tensor:
    """The classes of a prior draw of ``n`` items: ``y`` on the model's device, or uniform over
    ``model.num_classes`` when not given."""
    dev = model.device
    return torch.randint(model.num_classes, (n,), device=dev) if y is None else y.to(dev).long()


def positive_int(name: str, v: Any) -> int:
    """``v`` as an int >= 1, or a ValueError naming the argument."""
    if isinstance(v, bool) or int(v) != v or int(v) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    return int(v)
