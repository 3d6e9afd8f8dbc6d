"""Evaluation against exact answers: a linear-Gaussian VAE (log p(x) in closed form), a linear-Gaussian model
with a batch-level latent (log p(X) of the batch and log p(x) per datum in closed form), and a tiny UG-VAE whose
log p(X) is computed by quadrature, for every UG-VAE guide."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_vaes.analysis.evaluation import (
    MIN_ESS,
    effective_sample_size,
    evaluate,
    kl_per_dimension,
    log_likelihood_is,
    log_mean_exp_se,
    particle_estimates,
    site_log_probs,
)
from pyro_vaes.data import ArraySplit, load_dataset
from pyro_vaes.engine import build_component
from pyro_vaes.guides.base import GuideBase
from pyro_vaes.models.base import ModelBase, global_to_plate
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


def _fit_guide(model, guide, x, steps=300, elbo=None):
    """A few hundred ELBO steps of the guide alone, so q is a reasonable proposal (IS converges for any q, but
    slowly for a bad one)."""
    opt = torch.optim.Adam(guide.parameters(), lr=0.02)
    elbo = elbo or pyro.infer.Trace_ELBO()
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
        est = particle_estimates(model, guide, x, num_particles=20000, chunk=5000)
    err_small = (est_small - exact).abs().mean()
    err = (est.log_likelihood - exact).abs()
    assert err.mean() < 0.02, (est.log_likelihood, exact)
    assert err.mean() < err_small  # more particles, closer
    assert (err < 5 * est.log_likelihood_se + 1e-3).all()  # the reported Monte-Carlo error covers the error


def test_effective_sample_size_and_standard_error_identities():
    """Kish's ESS is S for equal weights and 1 for one dominant weight, equals (Σw)²/Σw² computed in float64 from the
    weights themselves, and the delta-method SE is sqrt((S/ESS − 1)/S)."""
    assert float(effective_sample_size(torch.zeros(50))) == pytest.approx(50)
    assert float(effective_sample_size(torch.tensor([0.0, -800.0, -900.0]))) == pytest.approx(1.0)
    log_w = torch.randn(200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    w = log_w.exp()
    assert torch.allclose(effective_sample_size(log_w), w.sum(0) ** 2 / (w**2).sum(0))
    est, se = log_mean_exp_se(log_w)
    assert torch.allclose(est, w.mean(0).log())
    assert torch.allclose(se, ((200 / effective_sample_size(log_w) - 1) / 200).sqrt())


def test_a_poor_proposal_is_flagged_unreliable_and_a_good_one_is_not(linear_vae):
    """An untrained guide far from the posterior (its scale shrunk a hundredfold) gives one dominant weight: the
    evaluation says so instead of reporting a tight standard error; the fitted guide does not trip the flag."""
    model, guide, x = linear_vae
    _fit_guide(model, guide, x)
    split = ArraySplit(x)
    good = evaluate(model, guide, split, num_particles=200, batch_size=16)
    assert good["log_likelihood_reliable"] and good["log_likelihood_ess"] > MIN_ESS
    encode = guide.encode
    guide.encode = lambda x, y=None: {k: {**v, "scale": v["scale"] / 100} for k, v in encode(x, y).items()}
    bad = evaluate(model, guide, split, num_particles=200, batch_size=16)
    assert not bad["log_likelihood_reliable"] and bad["log_likelihood_ess"] < MIN_ESS
    assert bad["log_likelihood"] < good["log_likelihood"] - 1.0


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
    assert res["n"] == 40 and res["log_likelihood_se"] > 0
    assert res["elbo"] <= res["log_likelihood"] + 0.05
    # ELBO = reconstruction − KL exactly: all three come from the same particles
    assert res["elbo"] == pytest.approx(res["reconstruction"] - res["kl_total"], abs=1e-3)
    assert len(res["kl_per_dim"]["z"]) == 2 and res["kl_per_dim_prior"]["z"] == "N(0, 1)"
    # the analytic per-dimension KL of a factorized pair sums to the site KL (Monte-Carlo, 200 particles): the same
    # units (per datum) in both
    assert sum(res["kl_per_dim"]["z"]) == pytest.approx(res["kl"]["z"], rel=0.1, abs=0.1)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(model, guide, data.test, num_particles=5, max_examples=0)


def test_kl_per_dimension_matches_closed_form(linear_vae):
    model, guide, x = linear_vae
    kl = torch.tensor(kl_per_dimension(model, guide, x)["z"]["kl"])
    q = guide.encode(x)["z"]
    mu, var = q["loc"], q["scale"] ** 2
    expected = (0.5 * (var + mu**2 - 1 - var.log())).mean(0)
    assert torch.allclose(kl, expected, atol=1e-5)


def test_kl_per_dimension_of_full_covariance_guide_uses_marginals():
    model = build_component(MODELS, "vae", (6,), latent_dim=3, likelihood="gaussian", arch="linear")
    guide = build_component(GUIDES, "full-covariance", model, hidden=8)
    x = torch.randn(5, 6)
    kl = torch.tensor(kl_per_dimension(model, guide, x)["z"]["kl"])
    q = guide.encode(x)["z"]
    var = (q["scale_tril"] @ q["scale_tril"].transpose(-1, -2)).diagonal(dim1=-2, dim2=-1)
    expected = (0.5 * (var + q["loc"] ** 2 - 1 - var.log())).mean(0)
    assert torch.allclose(kl, expected, atol=1e-5)


def test_chyvae_kl_per_dimension_is_against_the_student_t_marginal():
    """No analytic KL(Normal ‖ Student-t): the Monte-Carlo estimate must agree with numerical integration
    (scipy.integrate.quad) of the same KL, per dimension, within 5 standard errors."""
    from scipy import integrate, stats

    torch.manual_seed(0)
    model = build_component(MODELS, "chyvae", (5,), latent_dim=2, nu=4.0, likelihood="gaussian", arch="mlp", hidden=8)
    guide = build_component(GUIDES, "chyvae-structured", model, hidden=8)
    x = torch.randn(3, 5)
    rec = kl_per_dimension(model, guide, x, num_particles=4000)["z"]
    assert "Student-t" in rec["prior"]
    with torch.no_grad():
        q = guide.encode(x)["z"]
    df = model.nu - model.latent_dim + 1
    exact = []
    for d in range(2):
        scale_t = float((model.psi[d, d] / df).sqrt())
        per_item = []
        for i in range(3):
            m, s = float(q["loc"][i, d]), float(q["covariance"][i, d, d].sqrt())
            f = lambda z: stats.norm.pdf(z, m, s) * (stats.norm.logpdf(z, m, s) - stats.t.logpdf(z, df, 0, scale_t))  # noqa: E731
            per_item.append(integrate.quad(f, m - 12 * s, m + 12 * s)[0])
        exact.append(sum(per_item) / 3)
    for d in range(2):
        assert abs(rec["kl"][d] - exact[d]) < 5 * rec["se"][d] + 1e-3, (rec, exact)


def test_evaluation_does_not_change_parameters_or_training_rng(linear_vae):
    model, guide, x = linear_vae
    before = [p.clone() for p in list(model.parameters()) + list(guide.parameters())]
    data = load_dataset("linear-gaussian", seed=1, n_train=50, n_test=40, dim=6, latent_dim=2)
    evaluate(model, guide, data.test, num_particles=20)
    after = list(model.parameters()) + list(guide.parameters())
    assert len(before) == len(after) > 0 and all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(p.grad is None for p in after)


# -- a batch-level latent with an exact answer ------------------------------------------------------------------
class LinearGroupModel(ModelBase):
    """c ~ N(0, I) once per batch; s_i ~ N(0, I); x_i = W s_i + V c + b + σ ε: X is jointly Gaussian. W and V span
    orthogonal subspaces, so the exact posterior factorises over s and c and the guide's family contains it."""

    latent_sites = ("c", "s")
    global_sites = ("c",)
    code_site = "s"

    def __init__(self, D=4, ds=2, dc=2, sigma=0.5):
        super().__init__((D,))
        g = torch.Generator().manual_seed(3)
        basis = torch.linalg.qr(torch.randn(D, D, generator=g))[0]
        self.W, self.V = 1.5 * basis[:, :ds], 1.2 * basis[:, ds : ds + dc]
        self.b, self.sigma, self.latent_dim, self.dc = torch.randn(D, generator=g), sigma, ds, dc

    def model(self, x, y=None):
        c = pyro.sample("c", dist.Normal(x.new_zeros(self.dc), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0]):
            s = pyro.sample(
                "s", dist.Normal(x.new_zeros(self.latent_dim), 1.0).expand([x.shape[0], self.latent_dim]).to_event(1)
            )
            mean = s @ self.W.T + global_to_plate(c @ self.V.T) + self.b
            pyro.sample("x", dist.Normal(mean, self.sigma).to_event(1), obs=x)

    def decode(self, latents, y=None):
        return latents["s"] @ self.W.T + global_to_plate(latents["c"] @ self.V.T) + self.b

    def log_px_batch(self, X):
        """log p(X) exactly: cov = I_B ⊗ (W Wᵀ + σ² I) + 1 1ᵀ ⊗ V Vᵀ."""
        B, D = X.shape
        cov = torch.kron(torch.eye(B), self.W @ self.W.T + self.sigma**2 * torch.eye(D)) + torch.kron(
            torch.ones(B, B), self.V @ self.V.T
        )
        return dist.MultivariateNormal(self.b.repeat(B), cov).log_prob(X.reshape(-1))

    def marginal_prior(self, site):
        return dist.Normal(torch.zeros(self.latent_dim if site == "s" else self.dc), 1.0), "N(0, 1)"


class LinearGroupGuide(GuideBase):
    """q(s_i | x_i) linear in x_i; q(c | X) the product of per-item Gaussian experts (as ML-VAE's), so it is a
    proposal for a batch of any size."""

    mean_field = True

    def __init__(self, model):
        super().__init__(model)
        self.s_net, self.c_net = nn.Linear(4, 4), nn.Linear(4, 4)

    def encode(self, x, y=None):
        from pyro_vaes.nets.heads import product_of_gaussians

        s_loc, s_raw = self.s_net(x).chunk(2, -1)
        c_loc, c_scale = product_of_gaussians(*self.c_net(x).chunk(2, -1))
        return {
            "s": {"loc": s_loc, "scale": nn.functional.softplus(s_raw) + 1e-3},
            "c": {"loc": c_loc, "scale": c_scale},
        }

    def guide(self, x, y=None):
        q = self.encode(x)
        pyro.sample("c", dist.Normal(q["c"]["loc"], q["c"]["scale"]).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("s", dist.Normal(q["s"]["loc"], q["s"]["scale"]).to_event(1))


def test_batch_latent_reports_log_p_of_the_batch_and_per_datum_from_batches_of_one():
    """log p(X)/B of the batch and the per-datum log p(x_i) are different quantities; each estimate converges to its
    own exact value within its reported standard error.

    100,000 particles: for one datum the mean-field proposal (fitted on batches of 10) has lighter tails than the
    posterior of c and s, which one datum confounds, so the weights are heavy-tailed. At 20,000 the per-datum error
    over six evaluation seeds was up to 6 reported standard errors (the sample variance of such weights understates
    their variance, and with it the error); at 100,000 it was within 2.3."""
    torch.manual_seed(0)
    model, guide = LinearGroupModel(), None
    guide = LinearGroupGuide(model)
    g = torch.Generator().manual_seed(1)
    c = torch.randn(2, generator=g)
    X = torch.randn(10, 2, generator=g) @ model.W.T + model.V @ c + model.b + 0.5 * torch.randn(10, 4, generator=g)
    _fit_guide(model, guide, X, steps=400)
    res = evaluate(model, guide, ArraySplit(X), num_particles=100_000, batch_size=10, chunk=5000)
    exact_batch = float(model.log_px_batch(X)) / 10
    exact_datum = sum(float(model.log_px_batch(X[i : i + 1])) for i in range(10)) / 10
    assert res["batch_size"] == 10 and abs(exact_batch - exact_datum) > 0.1  # not the same quantity
    assert abs(res["log_likelihood_batch"] - exact_batch) < 5 * res["log_likelihood_batch_se"] + 0.01
    assert abs(res["log_likelihood"] - exact_datum) < 5 * res["log_likelihood_se"] + 0.01
    assert res["elbo_batch"] <= exact_batch and res["elbo"] <= exact_datum
    assert res["log_likelihood_batch_reliable"] and res["log_likelihood_reliable"]
    # the batch's reported standard error is the spread of its estimate over repeated evaluations
    reps = [evaluate(model, guide, ArraySplit(X), num_particles=100, batch_size=10) for _ in range(12)]
    spread = float(torch.tensor([r["log_likelihood_batch"] for r in reps]).std())
    reported = float(torch.tensor([r["log_likelihood_batch_se"] for r in reps]).mean())
    assert 0.4 < spread / reported < 2.5, (spread, reported)
    assert sum(res["kl_per_dim"]["c"]) == pytest.approx(res["kl"]["c"], rel=0.1, abs=0.05)  # same units


# -- UG-VAE against quadrature ---------------------------------------------------------------------------------
def ugvae_log_px_by_quadrature(model, X, n_beta=301, n_z=401):
    """log p(X) = log ∫ N(β; 0, 1) Π_i Σ_k (1/K) ∫ N(z; μ_k(β), σ_k(β)) N(x_i; dec(z, β), σ_x²) dz dβ for one-dimensional
    z and β, by the trapezoid rule on wide grids (double precision)."""
    beta = torch.linspace(-7, 7, n_beta, dtype=torch.float64)
    z = torch.linspace(-9, 9, n_z, dtype=torch.float64)
    with torch.no_grad():
        loc, scale = model.prior_z(beta[:, None])  # (nb, K, 1)
        log_pz = dist.Normal(loc[..., 0, None], scale[..., 0, None]).log_prob(z)  # (nb, K, nz)
        inp = torch.stack(torch.broadcast_tensors(z[None, :, None], beta[:, None, None]), -1)[..., 0, :]  # (nb, nz, 2)
        mean = torch.sigmoid(model.decoder(inp))  # (nb, nz, D)
        log_px = dist.Normal(mean.unsqueeze(-2), model.obs_scale).log_prob(X).sum(-1)  # (nb, nz, B)
        inner = torch.logsumexp(log_pz.unsqueeze(-1) + log_px.unsqueeze(1), 2) + math.log(z[1] - z[0])  # (nb, K, B)
        per_item = torch.logsumexp(inner, 1) - math.log(model.K)  # (nb, B)
        log_pb = dist.Normal(0.0, 1.0).log_prob(beta) + math.log(beta[1] - beta[0])
        return float(torch.logsumexp(log_pb + per_item.sum(-1), 0)), [
            float(torch.logsumexp(log_pb + per_item[:, i], 0)) for i in range(X.shape[0])
        ]


@pytest.mark.parametrize("guide_name", ["ugvae-structured", "ugvae-marginal", "ugvae-meanfield"])
def test_ugvae_evaluation_converges_to_quadrature_for_every_guide(guide_name):
    """Tiny UG-VAE (z and β one-dimensional, K = 4): log p(X)/B of the batch and log p(x_i) per datum (batches of one)
    converge to quadrature for every guide (ugvae-marginal sums d out exactly inside the weight), and the reported
    ELBO of the batch equals the bound TraceEnum_ELBO trains, within Monte-Carlo error."""
    torch.manual_seed(0)
    model = MODELS.get("ugvae")((3,), latent_dim=1, beta_dim=1, K=4, hidden=8).double()
    guide = GUIDES.get(guide_name)(model).double()
    X = torch.rand(4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    enum = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False)
    _fit_guide(model, guide, X, steps=100, elbo=enum)
    exact_batch, exact_items = ugvae_log_px_by_quadrature(model, X)
    res = evaluate(model, guide, ArraySplit(X), num_particles=5000, batch_size=4, chunk=5000)
    assert abs(res["log_likelihood_batch"] - exact_batch / 4) < 5 * res["log_likelihood_batch_se"] + 2e-3
    assert abs(res["log_likelihood"] - sum(exact_items) / 4) < 5 * res["log_likelihood_se"] + 2e-3
    with torch.no_grad():
        trained = -torch.tensor([enum.loss(model.model, guide.guide, X) for _ in range(150)]) / 4
    se = float(trained.std()) / math.sqrt(len(trained))
    assert abs(res["elbo_batch"] - float(trained.mean())) < 5 * se + 0.02
    assert res["elbo_batch"] <= res["log_likelihood_batch"] + 1e-3


def test_heavy_tailed_weights_are_flagged_though_the_ess_looks_healthy(linear_vae):
    """A known heavy-tailed case: a Gaussian proposal narrower than a Gaussian posterior, whose weights w ∝ exp(c z²)
    have a Pareto tail of index k = 1 − σ_q²/σ_p² (infinite variance above 1/2). The fitted guide's scale divided by
    3 (k ≈ 0.89 were the guide the exact posterior; measured 0.83):
    the ESS still passes, the Pareto k̂ does not, and the estimate is flagged. The fitted guide passes both checks,
    at 1,000 particles and at 10 (an ESS of 8 of 10 is healthy: the threshold is relative, k̂ not estimable)."""
    from pyro_vaes.analysis.evaluation import min_ess, reliability

    model, guide, x = linear_vae
    _fit_guide(model, guide, x)
    split = ArraySplit(x)
    good = evaluate(model, guide, split, num_particles=1000, batch_size=16)
    assert good["log_likelihood_reliable"] and good["log_likelihood_pareto_k"] < 0.5
    few = evaluate(model, guide, split, num_particles=10, batch_size=16)
    assert few["log_likelihood_reliable"] and few["log_likelihood_pareto_k"] is None and min_ess(10) == 2
    encode = guide.encode
    guide.encode = lambda x, y=None: {k: {**v, "scale": v["scale"] / 3} for k, v in encode(x, y).items()}
    narrow = evaluate(model, guide, split, num_particles=1000, batch_size=16)
    assert narrow["log_likelihood_ess"] >= MIN_ESS  # the ESS alone would call it reliable
    assert narrow["log_likelihood_pareto_k"] > 0.7 and not narrow["log_likelihood_reliable"]
    assert "heavy-tailed" in narrow["log_likelihood_unreliable_because"]
    assert reliability(8.0, None, 10) == (True, "") and not reliability(1.5, None, 10)[0]
