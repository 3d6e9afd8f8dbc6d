"""β-TCVAE and InfoVAE against independent computations: quadrature, closed forms, hand-written losses."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from pyro_vaes.objectives.beta_tc_vae import BetaTCVAE, decomposition, log_importance_weights
from pyro_vaes.objectives.info_vae import InfoVAE, kernel_matrix, mmd
from pyro_vaes.registry import GUIDES, MODELS

# -- β-TCVAE ---------------------------------------------------------------------------------------------------------


def test_importance_weights():
    w = log_importance_weights(6, 100, "mss").exp()
    assert torch.allclose(w.sum(1), torch.ones(6))
    assert torch.allclose(w.diagonal(), torch.full((6,), 0.01))
    strat = (100 - 5) / (100 * 5)
    assert ((w - strat).abs() < 1e-7).sum(1).tolist() == [1] * 6  # one stratum entry per row, off the diagonal
    assert torch.allclose(log_importance_weights(4, 10, "mws").exp(), torch.full((4, 4), 1 / 40))
    assert torch.allclose(log_importance_weights(4, 10, "full").exp(), torch.full((4, 4), 0.25))
    with pytest.raises(ValueError, match="at least the batch size"):
        log_importance_weights(8, 5, "mss")


def _pairs(z, loc, scale):
    """log q(z_i | x_j) (M, N) and per-dimension (M, N, d) by the explicit Gaussian formula, float64."""
    per_dim = -0.5 * ((z[:, None, :] - loc[None]) / scale[None]) ** 2 - scale[None].log() - 0.5 * math.log(2 * math.pi)
    return per_dim.sum(-1), per_dim


def _quadrature_terms(loc, scale, h=0.02, lim=7.0):
    """MI, TC and dimension-wise KL of the 2-D mixture q(z) = (1/N) Σ_n N(z; loc_n, diag scale_n²) against N(0, I),
    by midpoint quadrature on a grid (the definitions, not an estimator)."""
    t = torch.arange(-lim, lim, h, dtype=torch.float64) + h / 2
    gx, gy = torch.meshgrid(t, t, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    _, per_dim = _pairs(grid, loc, scale)  # (G, N, 2)
    log_qn = per_dim.sum(-1)  # (G, N)
    n = loc.shape[0]
    log_q = torch.logsumexp(log_qn, 1) - math.log(n)
    q = log_q.exp() * h * h
    log_m = [torch.logsumexp(per_dim[:, :, k], 1) - math.log(n) for k in range(2)]  # marginal densities on the grid
    mi = float(((log_qn.exp() * h * h) * (log_qn - log_q[:, None])).sum(0).mean())
    tc = float((q * (log_q - log_m[0] - log_m[1])).sum())
    std = Normal(torch.zeros((), dtype=torch.float64), 1.0)
    dim_kl = 0.0
    for k in range(2):
        lm1 = torch.logsumexp(
            -0.5 * ((t[:, None] - loc[None, :, k]) / scale[None, :, k]) ** 2
            - scale[None, :, k].log()
            - 0.5 * math.log(2 * math.pi),
            1,
        ) - math.log(n)
        dim_kl += float((lm1.exp() * h * (lm1 - std.log_prob(t))).sum())
    return mi, tc, dim_kl


def test_decomposition_matches_quadrature_with_the_full_data_estimator():
    """On 4 data with 2-D Gaussian posteriors: quadrature MI + TC + dimKL equals the closed-form average KL (the
    identity), and the full-data estimator (q(z) the exact mixture over the 4) matches each quadrature term within
    4 standard errors, with 20,000 draws per datum."""
    g = torch.Generator().manual_seed(0)
    loc = torch.tensor([[-1.5, -1.0], [1.2, 1.4], [0.3, -0.2], [1.0, -1.5]], dtype=torch.float64)
    scale = torch.tensor([[0.5, 0.8], [0.6, 0.4], [0.9, 0.7], [0.4, 0.5]], dtype=torch.float64)
    mi_q, tc_q, dim_q = _quadrature_terms(loc, scale)
    kl_closed = float((0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1).mean())
    assert abs(mi_q + tc_q + dim_q - kl_closed) < 1e-3
    assert min(mi_q, tc_q, dim_q) > 0.05  # every term is present
    s = 20000
    own = torch.arange(4).repeat(s)
    z = loc[own] + scale[own] * torch.randn(len(own), 2, generator=g, dtype=torch.float64)
    pairs, per_dim = _pairs(z, loc, scale)
    log_w = torch.full(pairs.shape, -math.log(4), dtype=torch.float64)
    log_p = Normal(torch.zeros((), dtype=torch.float64), 1.0).log_prob(z).sum(-1)
    parts = decomposition(pairs, per_dim, pairs[torch.arange(len(z)), own], log_p, log_w)
    for key, exact in (("mi", mi_q), ("tc", tc_q), ("dim_kl", dim_q)):
        v = parts[key]
        se = float(v.std() / math.sqrt(len(v)))
        assert abs(float(v.mean()) - exact) < 4 * se + 2e-3, (key, float(v.mean()), exact, se)


def _gaussian_codes(n, cov, s=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    scale = torch.full((n, 2), s, dtype=torch.float64)
    z = loc + scale * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return z, loc, scale


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_total_correlation_of_gaussian_codes(rho):
    """Means μ_n ~ N(0, Σ), q(z | x_n) = N(μ_n, s²I): q(z) is N(0, Σ + s²I) up to sampling, whose TC is
    −½ log det(correlation). Full-data estimator on 2,000 data, and the minibatch-stratified one over batches of 400."""
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    z, loc, scale = _gaussian_codes(2000, cov)
    total = cov + 0.09 * torch.eye(2, dtype=torch.float64)
    d = total.diagonal().sqrt()
    closed = float(-0.5 * torch.logdet(total / d[:, None] / d[None, :]))
    pairs, per_dim = _pairs(z, loc, scale)
    log_p = Normal(torch.zeros((), dtype=torch.float64), 1.0).log_prob(z).sum(-1)
    full = decomposition(pairs, per_dim, pairs.diagonal(), log_p, log_importance_weights(2000, 2000, "full").double())
    assert abs(float(full["tc"].mean()) - closed) < 0.03, (float(full["tc"].mean()), closed)
    batch_tc = []
    for b in range(5):
        i = torch.arange(400 * b, 400 * (b + 1))
        lw = log_importance_weights(400, 2000, "mss").double()
        part = decomposition(pairs[i][:, i], per_dim[i][:, i], pairs.diagonal()[i], log_p[i], lw)
        batch_tc.append(float(part["tc"].mean()))
    assert abs(sum(batch_tc) / 5 - closed) < 0.06, (batch_tc, closed)


def test_minibatch_weighted_estimator_is_the_full_data_one_shifted_by_known_constants():
    """With the batch being the whole data set (M = N), MWS's q̂ is q/N exactly: MI + log N, TC + (d − 1) log N,
    dimKL − d log N; their sum is unchanged."""
    z, loc, scale = _gaussian_codes(300, torch.eye(2, dtype=torch.float64))
    pairs, per_dim = _pairs(z, loc, scale)
    log_p = Normal(torch.zeros((), dtype=torch.float64), 1.0).log_prob(z).sum(-1)
    args = (pairs, per_dim, pairs.diagonal(), log_p)
    full = decomposition(*args, log_importance_weights(300, 300, "full").double())
    mws = decomposition(*args, log_importance_weights(300, 300, "mws").double())
    ln = math.log(300)
    assert torch.allclose(mws["mi"], full["mi"] + ln)
    assert torch.allclose(mws["tc"], full["tc"] + ln)
    assert torch.allclose(mws["dim_kl"], full["dim_kl"] - 2 * ln)
    assert torch.allclose(mws["mi"] + mws["tc"] + mws["dim_kl"], pairs.diagonal() - log_p)


def _tiny_pair(prior="normal", guide="diagonal", seed=0):
    pyro.set_rng_seed(seed)
    args = dict(latent_dim=2, hidden=8, likelihood="bernoulli")
    if prior == "flow":
        args.update(prior="flow", flow_hidden=8, flow_layers=2, flow_init="random")
    model = MODELS.get("vae")((5,), **args)
    return model, GUIDES.get(guide)(model, hidden=8)


@pytest.mark.parametrize("estimator", ["mss", "mws"])
@pytest.mark.parametrize("prior,guide", [("normal", "diagonal"), ("flow", "full-covariance")])
def test_beta_tc_vae_loss_by_hand(estimator, prior, guide):
    """The loss of a batch of 6 (N = 50) against −Σ log p(x|z) + Σ_i [α MI_i + β TC_i + γ dimKL_i] written out with
    explicit Gaussian densities and weights; and α = β = γ = 1 gives the one-draw negative ELBO."""
    model, g = _tiny_pair(prior, guide)
    x = (torch.rand(6, 5) < 0.5).float()
    obj = BetaTCVAE(alpha=0.7, beta=3.0, gamma=1.5, estimator=estimator).bind(model, g, num_data=50)
    loss = obj.loss(x)
    terms = obj.last_terms
    z = terms.codes["z"].detach().double()
    enc = {k: v.detach().double() for k, v in g.encode(x)["z"].items()}
    cov = enc["scale_tril"] @ enc["scale_tril"].mT if "scale_tril" in enc else torch.diag_embed(enc["scale"] ** 2)
    pairs = torch.stack([MultivariateNormal(enc["loc"], cov).log_prob(z[i]) for i in range(6)])  # [i, j]
    sd = cov.diagonal(dim1=-2, dim2=-1).sqrt()
    per_dim = torch.stack([Normal(enc["loc"], sd).log_prob(z[i]) for i in range(6)])
    if estimator == "mws":
        w = torch.full((6, 6), 1 / 300, dtype=torch.float64)
    else:
        w = torch.full((6, 6), 1 / 5, dtype=torch.float64)
        for i in range(6):
            w[i, i], w[i, (i + 1) % 6] = 1 / 50, 45 / 250
    log_qz = torch.log((w * pairs.exp()).sum(1))
    log_prod = torch.log((w[:, :, None] * per_dim.exp()).sum(1)).sum(-1)
    log_p = terms.model_trace.nodes["z"]["log_prob"].detach().double()
    if prior == "normal":
        assert torch.allclose(log_p, Normal(torch.zeros((), dtype=torch.float64), 1.0).log_prob(z).sum(-1))
    own = pairs.diagonal()
    hand = (
        -terms.recon.detach().double()
        + (0.7 * (own - log_qz) + 3.0 * (log_qz - log_prod) + 1.5 * (log_prod - log_p)).sum()
    )
    assert torch.allclose(loss.detach().double(), hand, atol=1e-4), (float(loss), float(hand))
    ones = BetaTCVAE(alpha=1.0, beta=1.0, gamma=1.0, estimator=estimator).bind(model, g, num_data=50)
    l1 = ones.loss(x)
    t1 = ones.last_terms
    elbo = t1.recon - (t1.guide_trace.nodes["z"]["log_prob"] - t1.model_trace.nodes["z"]["log_prob"]).sum()
    assert torch.allclose(l1, -elbo, atol=1e-4)


def test_beta_tc_vae_without_the_flow_logdet_reproduces_the_authors_term():
    model, g = _tiny_pair("flow")
    x = (torch.rand(6, 5) < 0.5).float()
    with_det = BetaTCVAE(estimator="mss").bind(model, g, num_data=50)
    pyro.set_rng_seed(1)
    with_det.loss(x)
    no_det = BetaTCVAE(estimator="mss", flow_logdet=False).bind(model, g, num_data=50)
    pyro.set_rng_seed(1)
    no_det.loss(x)
    z = with_det.last_terms.codes["z"]
    _, log_det = model.prior_flow.inverse(z)
    diff = with_det.last_decomposition["dim_kl"] - no_det.last_decomposition["dim_kl"]
    assert torch.allclose(diff, -log_det.detach(), atol=1e-5)


# -- InfoVAE ---------------------------------------------------------------------------------------------------------


def test_kernel_matrix_by_hand():
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    k = kernel_matrix(a, b)
    imq = kernel_matrix(a, b, "imq", bandwidth=2.0)
    for i in range(3):
        for j in range(5):
            d2 = float(((a[i] - b[j]) ** 2).sum())
            assert abs(float(k[i, j]) - math.exp(-d2 / 16.0)) < 1e-6  # Zhao et al.: exp(-mean_d(.)^2 / D), D = 4
            assert abs(float(imq[i, j]) - 2.0 / (2.0 + d2)) < 1e-6


def test_mmd_zero_for_one_distribution_and_the_closed_form_for_a_shift():
    """Gaussian kernel exp(−‖a − b‖²/h) between N(0, I) and N(δ, I) in d = 2:
    MMD² = 2 (1 + 4/h)^{−d/2} (1 − exp(−‖δ‖² / (h + 4))); the U-statistic is unbiased for it."""
    g = torch.Generator().manual_seed(0)
    h, d = 4.0, 2
    reps = [], []
    for _ in range(20):
        x, y = (
            torch.randn(300, d, generator=g, dtype=torch.float64),
            torch.randn(300, d, generator=g, dtype=torch.float64),
        )
        reps[0].append(float(mmd(x, y, unbiased=True)))
        reps[1].append(float(mmd(x, y + torch.tensor([1.0, 0.0], dtype=torch.float64), unbiased=True)))
    same, shifted = torch.tensor(reps[0]), torch.tensor(reps[1])
    closed = 2 * (1 + 4 / h) ** (-d / 2) * (1 - math.exp(-1.0 / (h + 4)))
    assert abs(float(same.mean())) < 4 * float(same.std()) / math.sqrt(20) + 1e-4
    assert abs(float(shifted.mean()) - closed) < 4 * float(shifted.std()) / math.sqrt(20)
    assert float(shifted.mean()) > 10 * float(same.std())
    x = torch.randn(300, d, generator=g)
    assert 0 <= float(mmd(x, x)) < 1e-6  # the V-statistic of a sample against itself is exactly 0


def test_info_vae_loss_by_hand():
    """−Σ log p(x|z) + (1 − α) Σ KL_i + B (α + λ − 1) MMD² on a batch of 4, with the KL in closed form and the
    MMD as a double loop over the batch's codes and the prior draws the objective made."""
    model, g = _tiny_pair()
    drawn = []
    sample_prior = model.sample_prior
    model.sample_prior = lambda n, y=None: drawn.append(sample_prior(n, y)) or drawn[-1]
    x = (torch.rand(4, 5) < 0.5).float()
    obj = InfoVAE(alpha=0.3, lam=50.0).bind(model, g)
    loss = obj.loss(x).detach()
    z = obj.last_terms.codes["z"].detach()
    p = drawn[-1]["z"].detach()
    enc = {k: v.detach() for k, v in g.encode(x)["z"].items()}
    logits = model.decoder(z).detach()
    recon = (x * torch.nn.functional.logsigmoid(logits) + (1 - x) * torch.nn.functional.logsigmoid(-logits)).sum()
    kl = (0.5 * (enc["loc"] ** 2 + enc["scale"] ** 2 - 1) - enc["scale"].log()).sum()

    def k(a, b):
        return math.exp(-float(((a - b) ** 2).sum()) / 4.0)

    mmd2 = (
        sum(k(z[i], z[j]) for i in range(4) for j in range(4))
        + sum(k(p[i], p[j]) for i in range(4) for j in range(4))
        - 2 * sum(k(z[i], p[j]) for i in range(4) for j in range(4))
    ) / 16
    hand = -recon + 0.7 * kl + 4 * 49.3 * mmd2
    assert abs(float(loss) - float(hand)) < 1e-3 * max(1.0, abs(float(hand)))


def test_info_vae_prior_draws_go_through_the_flow():
    model, g = _tiny_pair("flow")
    x = (torch.rand(8, 5) < 0.5).float()
    obj = InfoVAE(alpha=1.0, lam=1.0).bind(model, g)  # the loss is −recon + B·MMD² only
    obj.loss(x).backward()
    grads = [p.grad for p in model.prior_flow.parameters()]
    assert any(gr is not None and gr.abs().sum() > 0 for gr in grads)


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="alpha must be <= 1"):
        InfoVAE(alpha=2.0)
    with pytest.raises(ValueError, match="alpha \\+ lam - 1 >= 0"):
        InfoVAE(alpha=0.0, lam=0.5)
    with pytest.raises(ValueError, match="unknown kernel"):
        InfoVAE(kernel="rbf")
    with pytest.raises(ValueError, match="beta must be >= 0"):
        BetaTCVAE(beta=-1)
    with pytest.raises(ValueError, match="valid: mss, mws"):
        BetaTCVAE(estimator="full")
