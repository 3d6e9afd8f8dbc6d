"""dpVAE's decoupled prior (``vae --model-arg prior=flow``): the flow against hand computations, and the VAE with it
through the engine, evaluation, plots and checkpoints."""

from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from helpers import TINY, example_data
from torch.autograd.functional import jacobian

import pyro_vaes
from pyro_vaes.distributions.flows import DecoupledFlow, MaskedAffineCoupling, coupling_masks, generation_space
from pyro_vaes.engine import objectives_for
from pyro_vaes.objectives.terms import elbo_terms
from pyro_vaes.registry import GUIDES, MODELS, OBJECTIVES

FLOW = {
    "latent_dim": 2,
    "hidden": 16,
    "likelihood": "bernoulli",
    "prior": "flow",
    "flow_hidden": 8,
    "flow_layers": 4,
    "flow_init": "random",
}


def _random_flow(dim=3, layers=6, seed=0):
    torch.manual_seed(seed)
    return DecoupledFlow(dim, layers, hidden=16, init="random").double()


def _hand_g(flow, z):
    """g(z) and log |det ∂g/∂z| written out from the paper's layer equations, one datum at a time."""
    out, log_det = [], []
    for row in z:
        v, ld = row.clone(), 0.0
        for layer in reversed(flow.layers):
            m = layer.mask.double()
            s = layer.scale_net(m * v) * (1 - m)
            t = layer.shift_net(m * v) * (1 - m)
            v = m * v + (1 - m) * (v - t) * torch.exp(-s)
            ld = ld - s.sum()
        out.append(v)
        log_det.append(ld)
    return torch.stack(out), torch.stack(log_det)


def test_masks_alternate_and_half():
    assert coupling_masks(2, 6).tolist() == [[1, 0], [0, 1]] * 3  # the authors' masks for z_dims = 2
    assert coupling_masks(5, 2, "half").tolist() == [[1, 1, 0, 0, 0], [0, 0, 1, 1, 1]]
    with pytest.raises(ValueError, match="unknown flow mask"):
        coupling_masks(2, 2, "checker")


def test_log_prob_is_the_hand_computed_change_of_variables():
    flow = _random_flow()
    with torch.no_grad():
        for layer in flow.layers:  # make the layers far from the identity
            for p in layer.parameters():
                p.mul_(3.0)
    z = torch.randn(7, 3, dtype=torch.float64)
    prior = flow.distribution(7)
    z0, log_det = _hand_g(flow, z)
    hand = torch.distributions.Normal(0.0, 1.0).log_prob(z0).sum(-1) + log_det
    assert torch.allclose(prior.log_prob(z), hand, atol=1e-10)
    assert log_det.abs().max() > 0.5  # not the identity
    # the log-determinant against autograd's Jacobian of g (an independent computation)
    for i in range(3):
        J = jacobian(lambda v: flow.inverse(v.unsqueeze(0))[0][0], z[i])
        assert torch.allclose(torch.linalg.slogdet(J)[1], log_det[i], atol=1e-10)
    # forward and inverse are inverses; the log-scale is bounded by tanh; a copy carries no cached tensors
    assert torch.allclose(flow(flow.inverse(z)[0]), z, atol=1e-10)
    import copy

    assert torch.allclose(copy.deepcopy(flow).distribution(7).log_prob(z), hand, atol=1e-10)
    s, _ = flow.layers[0].scale_shift(z)
    assert s.abs().max() < 1.0


def test_identity_flow_is_exactly_the_standard_normal():
    flow = DecoupledFlow(3, 6, 16, init="identity")
    z = torch.randn(11, 3) * 3
    normal = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(3), 1.0), 1)
    assert torch.equal(flow.distribution(11).log_prob(z), normal.log_prob(z))
    torch.manual_seed(1)
    a = flow.distribution(5).sample()
    torch.manual_seed(1)
    assert torch.equal(a, torch.randn(5, 3))
    # the same for the whole model: an identity-flow VAE has the normal-prior VAE's joint density
    common = dict(latent_dim=3, hidden=16, likelihood="bernoulli")
    torch.manual_seed(0)
    vae = MODELS.get("vae")((1, 28, 28), **common)
    torch.manual_seed(0)
    dp = MODELS.get("vae")((1, 28, 28), **common, prior="flow", flow_init="identity")
    x = (torch.rand(4, 1, 28, 28) < 0.3).float()
    zs = {"z": torch.randn(4, 3)}
    lp = [poutine.trace(poutine.condition(m.model, zs)).get_trace(x).log_prob_sum() for m in (vae, dp)]
    assert torch.equal(lp[0], lp[1])


def test_sampling_agrees_with_log_prob():
    """2-D: the density integrates to 1 on a grid, and bin frequencies of 40,000 samples (drawn through g⁻¹) match
    the bin probabilities from log_prob (drawn through g and the log-determinant) by a chi-square test."""
    from scipy.stats import chi2

    flow = _random_flow(dim=2, layers=6, seed=3)
    with torch.no_grad():
        for layer in flow.layers:
            for p in layer.parameters():
                p.mul_(2.0)
        h = 0.05
        ticks = torch.arange(-8, 8, h, dtype=torch.float64) + h / 2
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
        dens = flow.distribution(len(grid)).log_prob(grid).exp().reshape(len(ticks), len(ticks)) * h * h
        assert abs(float(dens.sum()) - 1.0) < 2e-3
        torch.manual_seed(0)
        samples = flow.distribution(40000).sample()
    edges = torch.tensor([-8.0, -1.0, 0.0, 1.0, 8.0], dtype=torch.float64)
    idx = torch.bucketize(ticks, edges) - 1
    probs = torch.zeros(4, 4, dtype=torch.float64)
    probs.index_put_(
        (idx.unsqueeze(1).expand_as(dens).reshape(-1), idx.unsqueeze(0).expand_as(dens).reshape(-1)),
        dens.reshape(-1),
        accumulate=True,
    )
    si = torch.bucketize(samples.clamp(-7.99, 7.99), edges) - 1
    counts = torch.zeros(4, 4, dtype=torch.float64)
    counts.index_put_((si[:, 0], si[:, 1]), torch.ones(len(si), dtype=torch.float64), accumulate=True)
    expected = probs / probs.sum() * len(samples)
    stat = float(((counts - expected) ** 2 / expected).sum())
    assert stat < chi2.isf(1e-3, 15), stat


def test_flow_prior_kl_is_the_monte_carlo_change_of_variables_kl():
    """terms.py has no analytic KL for the flow prior: it uses log q − log p, which on the same draw is
    log q(z|x) − log N(g(z); 0, I) − log |det ∂g/∂z| (paper eq. 5 before the expectation); averaged over draws it
    is −H(q) − E_q[log N(g(z))] − E_q[log |det J_g|] with the analytic entropy (the paper's form, App. A)."""
    pyro.set_rng_seed(0)
    model = MODELS.get("vae")((6,), **{**FLOW, "likelihood": "gaussian"})
    guide = GUIDES.get("diagonal")(model, hidden=16)
    x = torch.randn(3, 6)
    terms = elbo_terms(model.model, guide.guide, x, analytic_kl=True)
    z = terms.codes["z"]
    q = guide.encode(x)["z"]
    log_q = torch.distributions.Normal(q["loc"], q["scale"]).log_prob(z).sum()
    z0, log_det = _hand_g(model.prior_flow.double(), z.double())
    model.float()
    log_p = (torch.distributions.Normal(0.0, 1.0).log_prob(z0).sum(-1) + log_det).sum()
    assert torch.allclose(terms.kl["z"].double(), log_q.double() - log_p, atol=1e-4)
    # the expectation: many draws against the entropy form
    with torch.no_grad():
        xs = x[:1].expand(4000, 6)
        kls = elbo_terms(model.model, guide.guide, xs, analytic_kl=True)
        per_draw = kls.guide_trace.nodes["z"]["log_prob"] - kls.model_trace.nodes["z"]["log_prob"]
        zz = kls.codes["z"]
        z0, log_det = model.prior_flow.inverse(zz)
        entropy = torch.distributions.Normal(q["loc"][0], q["scale"][0]).entropy().sum()
        paper = -entropy - torch.distributions.Normal(0.0, 1.0).log_prob(z0).sum(-1) - log_det
        se = float(per_draw.std() / math.sqrt(len(per_draw)))
        assert abs(float(per_draw.mean() - paper.mean())) < 4 * se + 1e-6


VAE_OBJECTIVES = objectives_for("vae", "diagonal")


@pytest.mark.parametrize("objective", VAE_OBJECTIVES)
def test_every_vae_objective_trains_the_flow(objective, tmp_path):
    """Each objective that fits the VAE composes with the flow prior without a copy: one engine step moves the
    flow's parameters."""
    data = example_data((1, 28, 28))
    args = dict(OBJECTIVES.get(objective).example_args)
    run = pyro_vaes.fit(
        model="vae",
        guide="diagonal",
        objective=objective,
        model_args=FLOW,
        guide_args={"hidden": 16},
        objective_args=args,
        dataset=data,
        out=tmp_path / "r",
        **{**TINY, "steps": 1, "eval_every": 1, "checkpoint_every": 1},
    )
    torch.manual_seed(0)
    fresh = MODELS.get("vae")((1, 28, 28), **FLOW)
    moved = [not torch.equal(a, b) for a, b in zip(fresh.prior_flow.parameters(), run.model.prior_flow.parameters())]
    assert any(moved), f"{objective} did not train the flow"


def test_flow_vae_evaluates_plots_resumes_and_loads(tmp_path):
    data = example_data((1, 28, 28))
    cfg = dict(model="vae", model_args=FLOW, guide_args={"hidden": 16}, objective="beta-vae-h", dataset=data)
    run = pyro_vaes.fit(**cfg, out=tmp_path / "r", **TINY)
    keys = set(run.model.state_dict())
    assert any(k.startswith("prior_flow.layers.0.scale_net") for k in keys)
    assert not any("mask" in k for k in keys)  # masks are a function of the config, not state
    res = run.evaluate(num_particles=5, write=False)
    assert math.isfinite(res["log_likelihood"]) and "z" not in res["kl_per_dim"]
    paths = run.plot("all", out=tmp_path / "fig")
    assert {p.name for p in paths} >= {"traversals.png", "generation-traversals.png", "samples.png"}
    loaded = pyro_vaes.load(run.run_dir, dataset=data)
    for a, b in zip(run.model.state_dict().values(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    resumed = pyro_vaes.fit(resume=run.run_dir, dataset=data, steps=8, progress=False)
    straight = pyro_vaes.fit(**cfg, out=tmp_path / "s", **{**TINY, "steps": 8})
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_generation_space_of_an_identity_flow_and_of_a_normal_prior_is_representation_space():
    from pyro_vaes.metrics.generative import code_prior

    model = MODELS.get("vae")((1, 28, 28), **{**FLOW, "flow_init": "identity"})
    prior = code_prior(model, 4)
    assert isinstance(prior, torch.distributions.TransformedDistribution)
    base, g, g_inv = generation_space(prior)
    z = torch.randn(4, 2)
    assert torch.equal(g(z), z) and torch.equal(g_inv(z), z)
    normal = MODELS.get("vae")((1, 28, 28), latent_dim=2, hidden=16, likelihood="bernoulli")
    base_n, g_n, _ = generation_space(code_prior(normal, 4))
    assert torch.equal(g_n(z), z) and torch.equal(base_n.log_prob(z), base.log_prob(z))


def test_bad_flow_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown prior 'flows'; valid: normal, flow"):
        MODELS.get("vae")((2,), likelihood="gaussian", prior="flows")
    with pytest.raises(ValueError, match="flow_layers must be an integer >= 1"):
        MODELS.get("vae")((2,), likelihood="gaussian", prior="flow", flow_layers=0)
    with pytest.raises(ValueError, match="flow_mask must be one of"):
        MODELS.get("vae")((2,), likelihood="gaussian", prior="flow", flow_mask="x")
    assert isinstance(MaskedAffineCoupling(torch.tensor([1.0, 0.0])), torch.nn.Module)
