"""Generative metrics (pyro_vaes/metrics/generative.py) against closed forms and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import TINY, example_data
from torch.distributions import MultivariateNormal, Normal

import pyro_vaes
from pyro_vaes.metrics.classifier import Recipe
from pyro_vaes.metrics.generative import (
    FeatureNetwork,
    aggregate_log_density,
    code_prior,
    default_thresholds,
    elbo_decomposition,
    feature_statistics,
    fid,
    frechet_distance,
    generative_metrics,
    knn_kl_divergence,
    leakage,
    leakage_curve,
    low_posterior_samples,
    symmetric_kl,
)
from pyro_vaes.registry import GUIDES, MODELS


def _gauss_kl(m1, s1, m2, s2):
    """KL(N(m1, diag s1²) ‖ N(m2, diag s2²))."""
    return float((torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).sum())


def test_knn_symmetric_kl_within_tolerance_of_the_closed_form():
    """5,000 samples each of N(0, I) and N((1, 0.5), diag(1.5², 0.8²)) in 2-D: the 1-NN estimate of each direction
    is within 0.08 nats (and 4 of its standard errors) of the closed form."""
    g = torch.Generator().manual_seed(0)
    m1, s1 = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    m2, s2 = torch.tensor([1.0, 0.5], dtype=torch.float64), torch.tensor([1.5, 0.8], dtype=torch.float64)
    x = m1 + s1 * torch.randn(5000, 2, generator=g, dtype=torch.float64)
    y = m2 + s2 * torch.randn(5000, 2, generator=g, dtype=torch.float64)
    pq, qp = _gauss_kl(m1, s1, m2, s2), _gauss_kl(m2, s2, m1, s1)
    est = symmetric_kl(x, y)
    assert abs(est["kl_pq"] - pq) < 0.08 and abs(est["kl_qp"] - qp) < 0.08, (est, pq, qp)
    assert abs(est["value"] - (pq + qp)) < max(0.12, 4 * est["se"])
    same = knn_kl_divergence(x, m1 + s1 * torch.randn(5000, 2, generator=g, dtype=torch.float64), k=3)
    assert abs(same["value"]) < 0.05


def test_frechet_distance_closed_form_self_and_noise():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    c1, c2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    # commuting covariances: ‖μ₁ − μ₂‖² + Σ (σ₁ − σ₂)²
    assert abs(frechet_distance(mu1, c1, mu2, c2) - (5.0 + 1 + 1 + 4)) < 1e-9
    a = np.random.default_rng(0).normal(size=(3, 3))
    c3 = a @ a.T + np.eye(3)
    from scipy.linalg import sqrtm

    ref = ((mu1 - mu2) ** 2).sum() + np.trace(c1 + c3 - 2 * np.real(sqrtm(c1 @ c3)))
    assert abs(frechet_distance(mu1, c1, mu2, c3) - ref) < 1e-8
    # images: a set against itself is 0; FID grows with added noise
    g = torch.Generator().manual_seed(0)
    x = torch.rand(600, 1, 8, 8, generator=g)
    proj = torch.randn(64, 16, generator=g)
    net = FeatureNetwork(lambda v: torch.tanh(v.reshape(len(v), -1) @ proj), {"network": "random projection"})
    assert abs(fid(x, x, net)["value"]) < 1e-8
    values = [fid(x, (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1), net)["value"] for s in (0.05, 0.2, 0.5)]
    assert 0 < values[0] < values[1] < values[2]
    assert fid(x, x, net)["feature_network"] == {"network": "random projection"}
    with pytest.raises(ValueError, match="at least 2 feature vectors"):
        feature_statistics(torch.zeros(1, 3))


def test_aggregate_density_is_the_mixture_by_brute_force():
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(7, 3, generator=g)
    raw = torch.randn(7, 3, 3, generator=g)
    tril = torch.tril(raw, -1) * 0.3 + torch.diag_embed(0.5 + raw.diagonal(dim1=-2, dim2=-1).abs())
    z = torch.randn(11, 3, generator=g)
    for params, comp in (
        (
            {"loc": loc, "scale": tril.diagonal(dim1=-2, dim2=-1)},
            lambda n: Normal(loc[n], tril[n].diagonal()).log_prob(z).sum(-1),
        ),
        ({"loc": loc, "scale_tril": tril}, lambda n: MultivariateNormal(loc[n], scale_tril=tril[n]).log_prob(z)),
    ):
        brute = torch.logsumexp(torch.stack([comp(n) for n in range(7)]), 0) - math.log(7)
        assert torch.allclose(aggregate_log_density(z, params, budget=30), brute, atol=1e-5)


def _constant_pair(scale: float, shift: float = 0.0, latent_dim: int = 2):
    """A VAE on 3-D data whose diagonal guide ignores x: q(z | x) = N(shift, scale² I) for every x."""
    model = MODELS.get("vae")((3,), latent_dim=latent_dim, hidden=4, likelihood="gaussian")
    guide = GUIDES.get("diagonal")(model, hidden=4)
    with torch.no_grad():
        for p in (guide.loc.weight, guide.raw_scale.weight):
            p.zero_()
        guide.loc.bias.fill_(shift)
        guide.raw_scale.bias.fill_(math.log(math.expm1(scale - 1e-4)))  # softplus(·) + 1e-4 = scale
    return model, guide


def test_leakage_on_a_case_with_a_known_answer():
    """q(z) = N(0, s² I) and p = N(0, I) in d = 2: ℓ_τ = (−d log s − ‖z‖²(1/s² − 1)/2)·1{‖z‖² > r²},
    r² = −2τ − d log 2π, so E_q[ℓ_τ] = −d log s·P(χ²_d > r²/s²) + (s² − 1)/2·d·P(χ²_{d+2} > r²/s²)."""
    from scipy.stats import chi2

    s, d, n = 1.6, 2, 20000
    thresholds = default_thresholds(d, (1, 2, 3))
    closed = []
    for t in thresholds:
        c = (-2 * t - d * math.log(2 * math.pi)) / s**2
        closed.append(-d * math.log(s) * chi2.sf(c, d) + (s**2 - 1) / 2 * d * chi2.sf(c, d + 2))
    # the pure function, on exact log-densities
    g = torch.Generator().manual_seed(0)
    z = s * torch.randn(n, d, generator=g, dtype=torch.float64)
    std = Normal(torch.zeros((), dtype=torch.float64), 1.0)
    curve = leakage_curve(Normal(0.0, s).log_prob(z).sum(-1), std.log_prob(z).sum(-1), thresholds)
    for v, se, c in zip(curve["score"], curve["score_se"], closed, strict=True):
        assert abs(v - c) < 4 * se + 1e-9, (v, c, se)
    assert curve["fraction"][0] > curve["fraction"][1] > curve["fraction"][2] > 0
    # the default thresholds have the stated prior tail probabilities
    eps = torch.randn(200000, d, generator=g, dtype=torch.float64)
    frac = float((std.log_prob(eps).sum(-1) < thresholds[0]).double().mean())
    assert abs(frac - 0.1) < 0.005
    # through a model and guide: q(z | x) = N(0, s² I) for every x, so q(z) = N(0, s² I)
    torch.manual_seed(0)
    model, guide = _constant_pair(s)
    params = guide.encode(torch.randn(50, 3))["z"]
    params = {k: v.detach() for k, v in params.items()}
    run_curve = leakage(model, params, n=n, thresholds=thresholds)
    for v, se, c in zip(run_curve["score"], run_curve["score_se"], closed, strict=True):
        assert abs(v - c) < 4 * se + 1e-6, (v, c, se)


def test_low_posterior_samples_are_the_prior_draws_least_covered_by_the_data():
    torch.manual_seed(0)
    model, guide = _constant_pair(0.3, shift=1.0)  # q(z) = N((1, 1), 0.3² I)
    params = {k: v.detach() for k, v in guide.encode(torch.randn(20, 3))["z"].items()}
    low = low_posterior_samples(model, params, n=50, candidates=2000)
    order = torch.argsort(low["candidates_log_q"])[:50]
    assert torch.equal(low["z"], low["candidates"][order])
    # far from (1, 1): the lowest aggregate-posterior prior draws lie on the other side of the prior
    assert float(low["z"].mean(0).sum()) < -1.0
    assert float(low["log_q"].max()) <= float(low["candidates_log_q"].median())


def test_code_prior_of_the_normal_vae_is_standard_normal():
    model, _ = _constant_pair(1.0)
    z = torch.randn(5, 2)
    assert torch.allclose(code_prior(model, 5).log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))
    chy = MODELS.get("chyvae")((1, 28, 28), **MODELS.get("chyvae").example_args)
    with pytest.raises(ValueError, match="only latent is its code site"):
        leakage(chy, {"loc": torch.zeros(3, chy.latent_dim), "scale": torch.ones(3, chy.latent_dim)}, n=10)


def test_elbo_decomposition_through_the_contract():
    """A guide that ignores x: q(z) = q(z | x), so MI = 0 and TC = 0 exactly in expectation, and dimKL = KL."""
    torch.manual_seed(0)
    model, guide = _constant_pair(0.5, shift=0.3)

    class Split:
        x = torch.randn(400, 3)

        def __len__(self):
            return len(self.x)

        def batch(self, idx):
            return self.x[idx], None

    out = elbo_decomposition(model, guide, Split())
    closed_kl = 2 * (0.5 * (0.3**2 + 0.25 - 1) - math.log(0.5))
    assert abs(out["mi"]) < 1e-5 and abs(out["tc"]) < 1e-5
    assert abs(out["dim_kl"] - closed_kl) < 4 * out["dim_kl_se"] + 1e-6
    assert abs(out["mi"] + out["tc"] + out["dim_kl"] - out["kl"]) < 1e-5


def test_generative_metrics_for_a_fitted_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_VAES_CACHE", str(tmp_path / "cache"))
    data = example_data((1, 28, 28), labels="class", n_train=64, n_test=32)
    run = pyro_vaes.fit(
        model="vae",
        model_args={"latent_dim": 2, "hidden": 16, "prior": "flow", "flow_hidden": 8},
        guide_args={"hidden": 16},
        objective="beta-vae-h",
        dataset=data,
        out=tmp_path / "r",
        **TINY,
    )
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    out = generative_metrics(run, n=40, candidates=200, n_mix=64, recipe=Recipe(steps=5))
    assert out["fid"]["n_samples"] == 40 and out["fid_low_posterior"]["n_samples"] == 40
    assert out["fid"]["feature_network"]["cache_key"].startswith("example-")
    assert out["feature_network"]["network"].startswith("pyro_vaes fixed classifier")
    assert math.isfinite(out["skl"]["value"]) and len(out["leakage"]["score"]) == 6
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())
    again = generative_metrics(run, n=40, candidates=200, n_mix=64, recipe=Recipe(steps=5))
    assert again["fid"]["value"] == out["fid"]["value"]  # its own random stream
    with pytest.raises(ValueError, match="needs inception_weights=PATH"):
        generative_metrics(run, n=40, features="inception")


def test_inception_features_refuse_a_file_that_is_not_the_fid_weights(tmp_path):
    """FID's features come from pytorch-fid's weights only (the architecture is checked against pytorch-fid in
    tests/test_fid_inception.py): any other file is refused with one line, a missing one too."""
    from pyro_vaes.metrics.generative import inception_features

    path = tmp_path / "inception.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="is not pytorch-fid's pt_inception-2015-12-05-6726825d.pth"):
        inception_features(str(path))
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        inception_features(str(tmp_path / "absent.pt"))
