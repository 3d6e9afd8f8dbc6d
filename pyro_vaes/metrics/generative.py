"""Generative metrics for any fitted model, through the model/guide contract: Fréchet distance of samples,
symmetric KL between aggregate posterior and prior, low- and high-posterior samples, the leakage score, and the
ELBO decomposition (index-code MI, total correlation, dimension-wise KL) on a data set.

Everything reads a model through ``guide.encode`` (the posterior parameters of the code site), ``model.sample_prior``,
``model.decode``, ``model.sample`` and the Pyro model itself: the code site's prior is read off a trace of
``model.model`` stopped at that site (:func:`code_prior`), and :func:`~pyro_vaes.distributions.flows.generation_space`
turns it into generation space (dpVAE's z₀ = g(z) under a flow prior; the identity otherwise). The metrics that need
the code's prior density or decode a code alone need a model whose only latent is its code (``latent_sites ==
(code_site,)``: the VAE family, with either prior); the others work for any model.

* **Aggregate posterior** q(z) = (1/N) Σ_n q(z | x_n), the exact mixture over N encoded data (any latent dimension;
  Gaussian q with diagonal or full covariance), :func:`aggregate_log_density`.
* **Low-posterior samples** (dpVAE paper §4.1, after Rosca et al.): draw ``candidates`` codes from the prior (for a flow
  prior: g⁻¹(ε)), rank them by log q(z) and keep the n lowest — likely under the prior, not covered by the data.
  The authors' code ranks by a 2-D-only kernel that divides by the log-variance; this is the real mixture density.
* **High-posterior samples**: draw codes from q(z), rank them by the prior density in generation space,
  log N(g(z); 0, I) (as the authors' code does), keep the n lowest — covered by the data, rarely generated.
* **Leakage score** (paper eq. 6, reconstructed from the text and the authors' ``high_metric``; the equation did not
  survive in our copy of the paper): for z ~ q(z), ℓ_τ(z) = [log q(z) − log N(g(z); 0, I)]·1{log N(g(z); 0, I) < τ}
  with g the identity for a normal prior; :func:`leakage_curve` reports over thresholds τ the score E_q[ℓ_τ] (with
  its Monte-Carlo standard error), the fraction of samples in the leakage region and the mean of the log-ratio
  inside it (the authors' quantity). Default thresholds: τ_k with prior tail probability P(log N(ε) < τ_k) = 10⁻ᵏ,
  k = 1…6 (dimension-aware; the authors used the fixed values −90, −70, −50, −30, −10, −1 for their 2-D MNIST).
* **Symmetric KL** KL(q ‖ p) + KL(p ‖ q) from samples with the k-nearest-neighbour estimator of Pérez-Cruz (2008),
  :func:`knn_kl_divergence`, in generation space by default (posterior codes mapped by g against N(0, I) draws), as
  the dpVAE authors' code does; ``space="representation"`` compares q(z) with prior draws of z.
* **Fréchet distance** ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2}) between Gaussians fitted to features
  (:func:`frechet_distance`). Inception weights cannot be downloaded here, so the default feature network is the
  project's fixed classifier trained on the data set itself (:mod:`pyro_vaes.metrics.classifier`, 128 features,
  cached per data set and recipe): its numbers rank models but are not on the published scale. Given pytorch-fid's
  weights file (``inception_weights``), the FID Inception network (:mod:`pyro_vaes.metrics.fid_inception`, 2048
  pool features) gives FIDs on the published scale. Every number records which network gave it. FID needs
  thousands of samples (default 5,000; a Gaussian fit to few samples is biased upward).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.distributions import Independent, MultivariateNormal, Normal

from pyro_vaes.distributions.flows import generation_space
from pyro_vaes.metrics.classifier import Recipe, cached_classifier
from pyro_vaes.plumbing.isolation import eval_mode, isolated_rng
from pyro_vaes.plumbing.tracing import trace_until

# -- sample-based divergences -------------------------------------------------------------------------------------


def knn_kl_divergence(x: torch.Tensor, y: torch.Tensor, k: int = 1) -> dict[str, float]:
    """KL(P ‖ Q) from samples x ~ P (n, d) and y ~ Q (m, d), the k-nearest-neighbour estimator (Pérez-Cruz, 2008;
    Wang, Kulkarni & Verdú, 2009):

        KL̂ = (d / n) Σ_i log(ν_k(i) / ρ_k(i)) + log(m / (n − 1)),

    ρ_k(i) the distance from x_i to its k-th neighbour among the other x, ν_k(i) to its k-th neighbour among y.
    ``se`` is the standard error of the mean of the per-sample terms (approximate: the terms are not independent).
    """
    from scipy.spatial import cKDTree

    x = np.asarray(x.detach().cpu().double() if torch.is_tensor(x) else x, dtype=np.float64)
    y = np.asarray(y.detach().cpu().double() if torch.is_tensor(y) else y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"knn_kl_divergence needs samples of shapes (n, d) and (m, d), got {x.shape} and {y.shape}")
    n, d = x.shape
    m = y.shape[0]
    if n <= k or m < k:
        raise ValueError(f"need more than k={k} samples on each side, got {n} and {m}")
    rho = cKDTree(x).query(x, k=k + 1)[0][:, k]  # the first neighbour of x_i among x is itself
    nu = cKDTree(y).query(x, k=k)[0]
    nu = nu if k == 1 else nu[:, k - 1]
    tiny = np.finfo(np.float64).tiny
    terms = d * (np.log(np.maximum(nu, tiny)) - np.log(np.maximum(rho, tiny)))
    value = float(terms.mean() + math.log(m / (n - 1)))
    return {"value": value, "se": float(terms.std(ddof=1) / math.sqrt(n)), "n": n, "m": m, "k": k}


def symmetric_kl(p_samples: torch.Tensor, q_samples: torch.Tensor, k: int = 1) -> dict[str, float]:
    """KL(p ‖ q) + KL(q ‖ p) from samples of each, both by :func:`knn_kl_divergence`."""
    pq, qp = knn_kl_divergence(p_samples, q_samples, k), knn_kl_divergence(q_samples, p_samples, k)
    return {
        "value": pq["value"] + qp["value"],
        "se": math.hypot(pq["se"], qp["se"]),
        "kl_pq": pq["value"],
        "kl_qp": qp["value"],
        "n": pq["n"],
        "m": pq["m"],
        "k": k,
    }


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64, unbiased) of features (n, f)."""
    f = np.asarray(features.detach().cpu().double() if torch.is_tensor(features) else features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (n, f), got {f.shape}")
    return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2 tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}) (the Fréchet / 2-Wasserstein distance of
    two Gaussians; tr((Σ₁Σ₂)^{1/2}) computed through the symmetric form, which has the same eigenvalues)."""
    s1 = _psd_sqrt(cov1)
    middle = np.linalg.eigvalsh((s1 @ cov2 @ s1 + (s1 @ cov2 @ s1).T) / 2)
    cross = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2.0 * cross)


# -- feature networks -----------------------------------------------------------------------------------------------
@dataclass
class FeatureNetwork:
    """Features of images for the Fréchet distance, and the record of which network gave them."""

    embed: Callable[[torch.Tensor], torch.Tensor]
    record: dict[str, Any] = field(default_factory=dict)
    _cache: dict[Any, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        return torch.cat([self.embed(x[i : i + batch_size]).detach().cpu() for i in range(0, len(x), batch_size)])

    def statistics(self, x: torch.Tensor, cache: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the features of ``x``; ``cache`` keeps them for the same tensor storage (the real
        images every FID of an experiment compares with)."""
        key = (x.data_ptr(), tuple(x.shape), x.stride(), float(x.double().sum())) if cache else None
        if key is not None and key in self._cache:
            return self._cache[key]
        stats = feature_statistics(self.features(x))
        if key is not None:
            self._cache[key] = stats
        return stats


def classifier_features(
    data, data_args: dict[str, Any] | None = None, recipe: Recipe = Recipe(), progress: bool = False
) -> FeatureNetwork:
    """The project's fixed classifier trained on ``data`` (cached; :func:`~pyro_vaes.metrics.classifier.cached_classifier`):
    its 128 penultimate activations."""
    net, record = cached_classifier(data, data_args, recipe, progress=progress)
    return FeatureNetwork(
        lambda x: net.features(x.to(next(net.parameters()).device)),
        {**record, "features": "128 penultimate activations"},
    )


def inception_features(weights: str, device: str = "cpu") -> FeatureNetwork:
    """The FID Inception network (:mod:`pyro_vaes.metrics.fid_inception`: pytorch-fid's port of TensorFlow's
    ``inception-2015-12-05``, the features published FIDs use) from the user's weights file, checked by SHA-256:
    2048 pool features of images in [0, 1]."""
    from pyro_vaes.metrics.fid_inception import load_fid_inception

    net, record = load_fid_inception(weights)
    net.to(device)
    return FeatureNetwork(lambda x: net(x.to(device)), record)


def fid(real: torch.Tensor, fake: torch.Tensor, network: FeatureNetwork) -> dict[str, Any]:
    """Fréchet distance between features of ``real`` and ``fake`` images, with the network's record (the real
    images' statistics are kept by the network for the next call with the same tensor)."""
    value = frechet_distance(*network.statistics(real, cache=True), *network.statistics(fake))
    return {"value": value, "n_real": len(real), "n_samples": len(fake), "feature_network": network.record}


# -- the code's prior and aggregate posterior, through the contract --------------------------------------------------
def _check_code_only(model, what: str) -> None:
    if tuple(model.latent_sites) != (model.code_site,):
        raise ValueError(
            f"{what} needs a model whose only latent is its code site; {type(model).__name__} has "
            f"{', '.join(model.latent_sites)}"
        )


@torch.no_grad()
def code_prior(model, n: int, y: torch.Tensor | None = None) -> torch.distributions.Distribution:
    """The prior of the model's code site for ``n`` items, read off a trace of ``model.model`` stopped at that site
    (batch shape (n,), event shape (latent_dim,)). Without labels the model is run on one placeholder observation and
    its prior expanded to n items (nothing of the size of n observations is allocated)."""
    site = model.code_site
    m = n if y is not None else 1
    x0 = torch.zeros(m, *model.input_shape, device=model.device)
    _, stopped = trace_until(model.model, site, x0, y)
    fn = stopped["fn"]
    return fn if m == n else fn.expand(torch.Size([n]))


def posterior(params: dict[str, torch.Tensor]) -> torch.distributions.Distribution:
    """q(z | x_n) for N data from their ``encode`` parameters (batch shape (N,)): ``loc`` with ``scale`` (diagonal)
    or ``scale_tril`` (full covariance)."""
    if "scale" in params:
        return Independent(Normal(params["loc"], params["scale"]), 1)
    if "scale_tril" in params:
        return MultivariateNormal(params["loc"], scale_tril=params["scale_tril"])
    raise ValueError(f"the code's posterior must be Gaussian (loc with scale or scale_tril); got {sorted(params)}")


@torch.no_grad()
def encode_split(
    model, guide, split, n: int | None = None, batch_size: int = 500, seed: int = 0
) -> dict[str, torch.Tensor]:
    """The code site's posterior parameters for ``n`` data of ``split`` (all, or a seeded random subset)."""
    total = len(split)
    idx = torch.arange(total)
    if n is not None and n < total:
        idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    out: dict[str, list] = {}
    device = model.device
    for start in range(0, len(idx), batch_size):
        x, y = split.batch(idx[start : start + batch_size])
        enc = guide.encode(x.to(device), None if y is None else y.to(device))[model.code_site]
        for k, v in enc.items():
            out.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def aggregate_log_density(z: torch.Tensor, params: dict[str, torch.Tensor], budget: int = 20_000_000) -> torch.Tensor:
    """log q(z) = logsumexp_n log q(z | x_n) − log N for codes z (M, d): the exact mixture over the N encoded data."""
    q = posterior(params)
    n, d = params["loc"].shape
    chunk = max(1, budget // max(1, n * d))
    out = [torch.logsumexp(q.log_prob(z[i : i + chunk].unsqueeze(1)), dim=1) for i in range(0, len(z), chunk)]
    return torch.cat(out) - math.log(n)


@torch.no_grad()
def sample_aggregate_posterior(
    params: dict[str, torch.Tensor], n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` draws from q(z): a datum uniformly at random, then z ~ q(z | x) (uses the global stream for z)."""
    total = params["loc"].shape[0]
    idx = torch.randint(total, (n,), generator=generator)
    return posterior({k: v[idx.to(v.device)] for k, v in params.items()}).sample()


@torch.no_grad()
def low_posterior_samples(model, params: dict[str, torch.Tensor], n: int, candidates: int) -> dict[str, torch.Tensor]:
    """The n of ``candidates`` prior draws with the lowest aggregate-posterior density (``z``, ``log_q``), and every
    candidate (``candidates``, ``candidates_log_q``)."""
    if candidates < n:
        raise ValueError(f"candidates ({candidates}) must be at least n ({n})")
    z = torch.cat(
        [model.sample_prior(min(10000, candidates - i))[model.code_site] for i in range(0, candidates, 10000)]
    )
    log_q = aggregate_log_density(z, params)
    order = torch.argsort(log_q)[:n]
    return {"z": z[order], "log_q": log_q[order], "candidates": z, "candidates_log_q": log_q}


@torch.no_grad()
def high_posterior_samples(model, params: dict[str, torch.Tensor], n: int, candidates: int) -> dict[str, torch.Tensor]:
    """The n of ``candidates`` aggregate-posterior draws with the lowest prior density in generation space,
    log N(g(z); 0, I) (``z``, ``log_p0``)."""
    _check_code_only(model, "high-posterior samples")
    if candidates < n:
        raise ValueError(f"candidates ({candidates}) must be at least n ({n})")
    z = sample_aggregate_posterior(params, candidates)
    base, g, _ = generation_space(code_prior(model, candidates))
    log_p0 = base.log_prob(g(z))
    order = torch.argsort(log_p0)[:n]
    return {"z": z[order], "log_p0": log_p0[order]}


def default_thresholds(dim: int, orders: Sequence[int] = (1, 2, 3, 4, 5, 6)) -> list:
    """τ_k with P(log N(ε; 0, I_d) < τ_k) = 10⁻ᵏ for ε ~ N(0, I_d): −(d/2) log 2π − χ²_d quantile(1 − 10⁻ᵏ) / 2."""
    from scipy.stats import chi2

    return [float(-0.5 * dim * math.log(2 * math.pi) - 0.5 * chi2.isf(10.0**-k, dim)) for k in orders]


def leakage_curve(log_q: torch.Tensor, log_p0: torch.Tensor, thresholds: Sequence[float]) -> dict[str, list]:
    """The leakage score over thresholds from, for samples z ~ q(z), log q(z) and log N(g(z); 0, I):
    ``score`` E_q[ℓ_τ] with ``score_se``, ``fraction`` in the region log N(g(z)) < τ and ``conditional`` mean of
    log q − log N(g(z)) inside it (NaN when empty)."""
    ratio = (log_q - log_p0).double()
    out: dict[str, list] = {
        "thresholds": [float(t) for t in thresholds],
        "score": [],
        "score_se": [],
        "fraction": [],
        "conditional": [],
    }
    n = len(ratio)
    for t in thresholds:
        inside = (log_p0 < t).double()
        ell = ratio * inside
        out["score"].append(float(ell.mean()))
        out["score_se"].append(float(ell.std() / math.sqrt(n)) if n > 1 else float("nan"))
        out["fraction"].append(float(inside.mean()))
        out["conditional"].append(float(ratio[inside.bool()].mean()) if inside.any() else float("nan"))
    return out


@torch.no_grad()
def leakage(
    model, params: dict[str, torch.Tensor], n: int = 5000, thresholds: Sequence[float] | None = None
) -> dict[str, Any]:
    """:func:`leakage_curve` for ``n`` draws from the aggregate posterior of the encoded data ``params``."""
    _check_code_only(model, "the leakage score")
    z = sample_aggregate_posterior(params, n)
    base, g, _ = generation_space(code_prior(model, n))
    thresholds = default_thresholds(model.latent_dim) if thresholds is None else list(thresholds)
    curve = leakage_curve(aggregate_log_density(z, params), base.log_prob(g(z)), thresholds)
    return {**curve, "n": n}


@torch.no_grad()
def skl_samples(
    model, params: dict[str, torch.Tensor], n: int, space: str = "generation"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prior draws, aggregate-posterior draws), ``n`` each, in generation space (posterior codes mapped by g,
    against the base N(0, I)) or representation space (against ``model.sample_prior``)."""
    q = sample_aggregate_posterior(params, n)
    if space == "representation":
        return model.sample_prior(n)[model.code_site], q
    if space != "generation":
        raise ValueError(f"space must be generation or representation, got {space!r}")
    _check_code_only(model, "the symmetric KL in generation space")
    base, g, _ = generation_space(code_prior(model, n))
    return base.sample(), g(q)


# -- everything for a run --------------------------------------------------------------------------------------------
@torch.no_grad()
def _decode_codes(model, z: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    return torch.cat(
        [model.decode({model.code_site: z[i : i + batch_size]}).cpu() for i in range(0, len(z), batch_size)]
    )


@torch.no_grad()
def _samples(model, n: int, batch_size: int = 1000) -> torch.Tensor:
    return torch.cat([model.sample(min(batch_size, n - i)).cpu() for i in range(0, n, batch_size)])


def generative_metrics(
    run,
    n: int = 5000,
    n_real: int = 10000,
    candidates: int | None = None,
    n_mix: int = 10000,
    features: str = "classifier",
    inception_weights: str | None = None,
    recipe: Recipe = Recipe(),
    skl_space: str = "generation",
    k: int = 1,
    thresholds: Sequence[float] | None = None,
    fid_metrics: bool = True,
    seed: int = 0,
    network: FeatureNetwork | None = None,
) -> dict[str, Any]:
    """FID of ``n`` samples and of ``n`` low-posterior samples (of ``candidates``, default 10 n), the symmetric KL
    and the leakage curve, for a fitted run (modules in eval mode, a random stream of their own).

    The aggregate posterior is the mixture over ``n_mix`` training data (a seeded subset); FID compares with
    ``n_real`` test images. ``features``: ``classifier`` (default) or ``inception`` (needs ``inception_weights``);
    ``network`` passes a feature network already built (an experiment scoring many runs of one data set).
    ``fid_metrics=False`` skips both FIDs (flat toy data)."""
    model, guide = run.model, run.guide
    if guide is None:
        raise ValueError("generative metrics need a guide (an encoder): the model has none")
    _check_code_only(model, "generative_metrics")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    candidates = 10 * n if candidates is None else int(candidates)
    if fid_metrics and network is None:
        if features == "inception":
            if inception_weights is None:
                raise ValueError(
                    "features='inception' needs inception_weights=PATH (pytorch-fid's "
                    "pt_inception-2015-12-05-6726825d.pth; the weights cannot be downloaded here)"
                )
            network = inception_features(inception_weights, str(model.device))
        elif features == "classifier":
            network = classifier_features(run.data, run.config.data_args, recipe)
        else:
            raise ValueError(f"features must be classifier or inception, got {features!r}")
    out: dict[str, Any] = {"n_samples": n, "candidates": candidates, "n_mix": n_mix, "skl_space": skl_space}
    with eval_mode(model, guide), isolated_rng(seed), torch.no_grad():
        params = encode_split(model, guide, run.data.train, n_mix, seed=seed)
        prior_draws, post_draws = skl_samples(model, params, n, skl_space)
        out["skl"] = symmetric_kl(post_draws, prior_draws, k)
        out["leakage"] = leakage(model, params, n, thresholds)
        low = low_posterior_samples(model, params, n, candidates)
        out["low_posterior_log_q"] = {
            "max": float(low["log_q"].max()),
            "median_all": float(low["candidates_log_q"].median()),
        }
        if fid_metrics:
            test = run.data.test
            real = test.x[: min(n_real, len(test))]
            out["fid"] = fid(real, _samples(model, n), network)
            out["fid_low_posterior"] = fid(real, _decode_codes(model, low["z"]), network)
            out["feature_network"] = network.record
    return out


@torch.no_grad()
def elbo_decomposition(model, guide, split, n: int | None = None, seed: int = 0) -> dict[str, float]:
    """Index-code MI, total correlation and dimension-wise KL of the code on ``n`` data of ``split`` (default all)
    with the exact full-data estimator (q(z) the mixture over exactly those data; Chen et al., 2018, §4 and their
    ``elbo_decomposition.py``): one z per datum, then the three averages, their sum and the average one-draw KL
    log q(z | x) − log p(z), each with its standard error."""
    from pyro_vaes.objectives.beta_tc_vae import gaussian_marginals

    _check_code_only(model, "the ELBO decomposition")
    with eval_mode(model, guide), isolated_rng(seed):
        params = encode_split(model, guide, split, n, seed=seed)
        q = posterior(params)
        z = q.sample()
        log_own = q.log_prob(z)
        log_p = code_prior(model, len(z)).log_prob(z)
        log_qz = aggregate_log_density(z, params)
        marg = gaussian_marginals(q)
        num = len(z)
        chunk = max(1, 20_000_000 // max(1, num * z.shape[1]))
        log_prod = torch.cat(
            [torch.logsumexp(marg.log_prob(z[i : i + chunk].unsqueeze(1)), dim=1) for i in range(0, num, chunk)]
        ).sum(-1) - z.shape[1] * math.log(num)
    parts = {"mi": log_own - log_qz, "tc": log_qz - log_prod, "dim_kl": log_prod - log_p, "kl": log_own - log_p}
    out: dict[str, float] = {"n": num}
    for k, v in parts.items():
        out[k] = float(v.mean())
        out[f"{k}_se"] = float(v.std() / math.sqrt(num))
    return out
