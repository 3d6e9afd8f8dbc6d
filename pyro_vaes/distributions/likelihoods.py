"""Observation models p(x | decoder output) shared by every model.

* ``bernoulli``            logits; needs binary data (binarize grey images, or use one of the others).
* ``continuous-bernoulli`` logits; data in [0, 1] (Loaiza-Ganem & Cunningham, 2019), normalised properly.
* ``gaussian``             mean = decoder output, fixed standard deviation ``obs_scale`` (UG-VAE uses variance 0.2).

A model whose ``likelihood`` argument defaults to ``"auto"`` gets the one that fits the data (:func:`for_data`):
Bernoulli for binary data, continuous Bernoulli for grey levels in [0, 1], Gaussian otherwise. The engine resolves
it when the data is loaded, prints the choice and records it in ``config.json``; a Gaussian chosen so, without an
``obs_scale`` given, gets its scale from the data too (:func:`pyro_vaes.engine.build.gaussian_scale`).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch

from pyro_vaes.plumbing import fastpaths

LIKELIHOODS = ("bernoulli", "continuous-bernoulli", "gaussian")


def for_data(x: torch.Tensor) -> tuple[str, str]:
    """The likelihood that fits observations ``x`` and why: (name, reason)."""
    if bool(((x == 0) | (x == 1)).all()):
        return "bernoulli", "binary data"
    if bool(((x >= 0) & (x <= 1)).all()):
        return "continuous-bernoulli", "grey levels in [0, 1]"
    return "gaussian", "real-valued data outside [0, 1]"


def check_likelihood(name: str, obs_scale: float) -> None:
    if name == "auto":
        raise ValueError(
            "likelihood 'auto' is resolved from the data by the engine; a model built by hand needs one "
            f"of {', '.join(LIKELIHOODS)}"
        )
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; valid: {', '.join(LIKELIHOODS)}")
    if name == "gaussian" and not obs_scale > 0:
        raise ValueError(f"obs_scale must be > 0 for a Gaussian likelihood, got {obs_scale}")


def observation(name: str, params: torch.Tensor, shape: tuple[int, ...], obs_scale: float = 1.0) -> dist.Distribution:
    """p(x | params) with the observation dims as event dims."""
    if name == "bernoulli":
        d = dist.Bernoulli(logits=params)
    elif name == "continuous-bernoulli":
        d = dist.ContinuousBernoulli(logits=params.clamp(-15.0, 15.0))
    else:
        d = fastpaths.gaussian(params, obs_scale)  # Normal(params, obs_scale), the scale kept 0-dim: bitwise the same
    return d.to_event(len(shape))


def mean(name: str, params: torch.Tensor) -> torch.Tensor:
    """E[x | params], the image a decoder 'draws'."""
    if name == "bernoulli":
        return torch.sigmoid(params)
    if name == "continuous-bernoulli":
        return dist.ContinuousBernoulli(logits=params.clamp(-15.0, 15.0)).mean
    return params


def check_data(name: str, x: torch.Tensor) -> None:
    """Refuse data the likelihood cannot score (before training starts)."""
    if name == "bernoulli" and not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(
            "the Bernoulli likelihood needs binary data but these observations are not all 0/1: binarize them "
            "(--data-arg binarize=stochastic) or use --likelihood continuous-bernoulli or gaussian"
        )
    if name == "continuous-bernoulli" and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("the continuous-Bernoulli likelihood needs data in [0, 1]; use --likelihood gaussian")
