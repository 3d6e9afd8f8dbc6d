"""Evaluation on a linear-Gaussian VAE, whose log p(x) is exact."""

from __future__ import annotations

import pyro
import pytest
import torch

from pyro_vaes.data import load_dataset
from pyro_vaes.engine import build_component
from pyro_vaes.evaluation import evaluate, kl_per_dimension, log_likelihood_is, site_log_probs
from pyro_vaes.registry import GUIDES, MODELS


def exact_log_px(model, x):
    """log N(x; b, W Wᵀ + σ² I) for the linear decoder x = W z + b + σ ε."""
    lin = model.decoder.net
    W, b = lin.weight, lin.bias
    cov = W @ W.T + model.obs_scale**2 * torch.eye(W.shape[0])
    return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x).detach()


@pytest.fixture
def linear_vae():
    data = load_dataset("linear-gaussian", seed=1, n_train=50, n_test=40, dim=6, latent_dim=2)
    model = build_component(MODELS, "vae", (6,), latent_dim=2, likelihood="gaussian", obs_scale=0.7, arch="linear")
    guide = build_component(GUIDES, "diagonal", model, hidden=8)
    return model, guide, data.test.x[:16]


def _fit_guide(model, guide, x, steps=300):
    """A few hundred ELBO steps so q is a reasonable proposal (IS converges for any q, but slowly for a bad one)."""
    opt = torch.optim.Adam(guide.parameters(), lr=0.02)
    elbo = pyro.infer.Trace_ELBO()
    for _ in range(steps):
        opt.zero_grad()
        elbo.differentiable_loss(model.model, guide.guide, x).backward()
        opt.step()


def test_importance_sampled_log_likelihood_converges_to_exact(linear_vae):
    model, guide, x = linear_vae
    _fit_guide(model, guide, x)
    exact = exact_log_px(model, x)
    with torch.no_grad():
        est_small = log_likelihood_is(model, guide, x, num_particles=10)
        est = log_likelihood_is(model, guide, x, num_particles=20000, chunk=5000)
    err_small = (est_small - exact).abs().mean()
    err = (est - exact).abs().mean()
    assert err < 0.02, (est, exact)
    assert err < err_small  # more particles, closer


def test_elbo_is_below_exact_log_likelihood(linear_vae):
    model, guide, x = linear_vae
    exact = exact_log_px(model, x)
    with torch.no_grad():
        elbo = site_log_probs(model, guide, x, None, 5000).log_w.mean(0)
    assert (elbo < exact).all()
    # and Jensen's gap is the KL from q to the exact posterior, so strictly positive for an untrained guide
    assert float((exact - elbo).min()) > 1e-3


def test_evaluate_reports_consistent_numbers(linear_vae):
    model, guide, x = linear_vae
    data = load_dataset("linear-gaussian", seed=1, n_train=50, n_test=40, dim=6, latent_dim=2)
    res = evaluate(model, guide, data.test, num_particles=200, batch_size=16)
    assert res["n"] == 40
    assert res["elbo"] <= res["log_likelihood"] + 0.05
    # ELBO = reconstruction − KL exactly: all three come from the same particles
    assert res["elbo"] == pytest.approx(res["reconstruction"] - res["kl_total"], abs=1e-3)
    assert len(res["kl_per_dim"]["z"]) == 2
    # the analytic per-dimension KL of a factorized pair sums to the site KL (Monte-Carlo, 200 particles)
    assert sum(res["kl_per_dim"]["z"]) == pytest.approx(res["kl"]["z"], rel=0.1, abs=0.1)


def test_kl_per_dimension_matches_closed_form(linear_vae):
    model, guide, x = linear_vae
    kl = kl_per_dimension(model, guide, x)["z"]
    q = guide.encode(x)["z"]
    mu, var = q["loc"], q["scale"] ** 2
    expected = (0.5 * (var + mu**2 - 1 - var.log())).mean(0)
    assert torch.allclose(kl, expected, atol=1e-5)


def test_kl_per_dimension_of_full_covariance_guide_uses_marginals():
    model = build_component(MODELS, "vae", (6,), latent_dim=3, likelihood="gaussian", arch="linear")
    guide = build_component(GUIDES, "full-covariance", model, hidden=8)
    x = torch.randn(5, 6)
    kl = kl_per_dimension(model, guide, x)["z"]
    q = guide.encode(x)["z"]
    var = (q["scale_tril"] @ q["scale_tril"].transpose(-1, -2)).diagonal(dim1=-2, dim2=-1)
    expected = (0.5 * (var + q["loc"] ** 2 - 1 - var.log())).mean(0)
    assert torch.allclose(kl, expected, atol=1e-5)


def test_evaluation_does_not_change_parameters_or_training_rng(linear_vae):
    model, guide, x = linear_vae
    before = [p.clone() for p in list(model.parameters()) + list(guide.parameters())]
    data = load_dataset("linear-gaussian", seed=1, n_train=50, n_test=40, dim=6, latent_dim=2)
    evaluate(model, guide, data.test, num_particles=20)
    after = list(model.parameters()) + list(guide.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(p.grad is None for p in after)
