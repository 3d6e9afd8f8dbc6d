"""The inference-gap decomposition against closed forms, and the refinement and the second guide families against
hand computations.

On a linear-Gaussian VAE the exact posterior is N(m(x), Λ⁻¹) with Λ = I + WᵀW/σ², log p(x) is exact, and the best
diagonal Gaussian under the ELBO has precision diag(Λ) (the mean-field fixed point), so its approximation gap is the
closed form KL(q* ‖ p(z | x)) = ½ (Σ log Λ_jj − log det Λ); the full-covariance family contains the posterior, so
its gap is 0.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from helpers import example_data

from pyro_vaes.analysis.inference_gap import RefinedGuide, bounds, gaps, local_parameters, refine
from pyro_vaes.data import ArraySplit, load_dataset
from pyro_vaes.engine import build_component
from pyro_vaes.plumbing.isolation import isolated_rng
from pyro_vaes.registry import GUIDES, MODELS, guides_for


@pytest.fixture
def linear():
    torch.manual_seed(0)
    data = load_dataset("linear-gaussian", seed=1, n_train=50, n_test=40, dim=6, latent_dim=2)
    model = build_component(MODELS, "vae", (6,), latent_dim=2, likelihood="gaussian", obs_scale=0.7, arch="linear")
    W, b = model.decoder.net.weight.detach(), model.decoder.net.bias.detach()
    x = data.test.x[:12]
    precision = torch.eye(2) + W.T @ W / 0.49
    log_px = torch.distributions.MultivariateNormal(b, covariance_matrix=W @ W.T + 0.49 * torch.eye(6)).log_prob(x)
    kl_diagonal = 0.5 * float(torch.log(torch.diag(precision)).sum() - torch.logdet(precision))
    return model, x, float(log_px.mean()), kl_diagonal


def _gaps(model, guide, x):
    return gaps(
        model, guide, ArraySplit(x), max_examples=len(x), refine_steps=300, refine_particles=20, num_particles=2000
    )


def test_diagonal_family_approximation_gap_is_the_closed_form_kl(linear):
    model, x, log_px, kl_diagonal = linear
    assert kl_diagonal > 0.02  # the posterior is correlated enough for the test to see the family's gap
    res = _gaps(model, build_component(GUIDES, "diagonal", model, hidden=8), x)
    assert abs(res["log_likelihood"] - log_px) < 4 * res["log_likelihood_se"] + 2e-3
    assert abs(res["elbo_refined"] - (log_px - kl_diagonal)) < 4 * res["elbo_refined_se"] + 5e-3  # L[q*] reached
    assert abs(res["approximation_gap"] - kl_diagonal) < 4 * res["approximation_gap_se"] + 5e-3
    assert res["amortization_gap"] > 0.5  # an untrained encoder: most of the gap is amortization
    assert res["inference_gap"] == pytest.approx(res["approximation_gap"] + res["amortization_gap"])
    assert res["refined_sites"] == ["z"] and abs(res["refine_last_change"]) < 0.01


def test_full_covariance_family_has_no_approximation_gap(linear):
    model, x, log_px, _ = linear
    res = _gaps(model, build_component(GUIDES, "full-covariance", model, hidden=8), x)
    assert abs(res["approximation_gap"]) < 4 * res["approximation_gap_se"] + 5e-3
    assert abs(res["elbo_refined"] - log_px) < 4 * res["elbo_refined_se"] + 5e-3


@pytest.mark.parametrize("guide_name", ["diagonal", "full-covariance"])
def test_refinement_from_a_deliberately_poor_encoder_converges_to_the_optimum(linear, guide_name):
    """Encoder means pushed 4 units away and scales shrunk twentyfold: local refinement still reaches L[q*]."""
    model, x, log_px, kl_diagonal = linear
    guide = build_component(GUIDES, guide_name, model, hidden=8)
    with torch.no_grad():
        guide.loc.bias.add_(4.0)
        (guide.raw_scale if guide_name == "diagonal" else guide.raw_tril).bias.sub_(3.0)
    optimum = log_px - (kl_diagonal if guide_name == "diagonal" else 0.0)
    with isolated_rng(0):
        ref = refine(model, guide, x, steps=400, num_particles=20)
        tight = bounds(model, ref.guide, x, num_particles=4000)
        poor = bounds(model, guide, x, num_particles=200)
    assert float(poor.elbo.mean()) < optimum - 5  # far from the optimum to start with
    assert ref.history[0] < optimum - 5 and ref.history[-1] > optimum - 0.05
    assert abs(float(tight.elbo.mean()) - optimum) < 4 * float(tight.elbo_se.pow(2).sum().sqrt()) / len(x) + 5e-3


def test_refinement_touches_no_parameter_and_zero_steps_is_the_amortized_guide(linear):
    model, x, _, _ = linear
    guide = build_component(GUIDES, "full-covariance", model, hidden=8)
    before = {k: v.clone() for k, v in [*model.state_dict().items(), *guide.state_dict().items()]}
    ref = refine(model, guide, x, steps=5, num_particles=3)
    after = {**model.state_dict(), **guide.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in [*model.parameters(), *guide.parameters()])
    assert len(ref.history) == 6


def _example(model_name: str, guide_name: str, n: int = 3):
    """The registered pair built from its declared example arguments, in float64 and eval mode, with a batch of its
    example data (labels of the kind the model declares)."""
    cls = MODELS.get(model_name)
    x, y = example_data(cls.example_shape, cls.labels).test.batch(torch.arange(n))
    extra = {"num_classes": 3} if cls.labels == "class" else {"num_labels": 2} if cls.labels == "binary" else {}
    model = build_component(MODELS, model_name, cls.example_shape, **cls.example_args, **extra).double().eval()
    guide = build_component(GUIDES, guide_name, model, **GUIDES.get(guide_name).example_args).double().eval()
    return model, guide, x.double(), None if y is None else (y.double() if y.is_floating_point() else y)


GUIDED = [(m, g) for m in MODELS.names() for g in guides_for(m)]


@pytest.mark.parametrize("model_name,guide_name", GUIDED, ids=[f"{m}/{g}" for m, g in GUIDED])
def test_rebuilt_family_with_the_guides_own_parameters_is_the_guide(model_name, guide_name):
    """For every registered guide: the local parameters read off the guide, put back through the refinement's
    handler, give exactly the guide's bound (same random stream), and a few refinement steps run and stay finite."""
    model, guide, x, y = _example(model_name, guide_name)
    if model.global_sites:  # per-datum numbers of batch-level latents come from batches of one
        x, y = x[:1], None if y is None else y[:1]
    params = local_parameters(guide, x, y)
    with isolated_rng(3):
        own = bounds(model, guide, x, y, 7)
    with isolated_rng(3):
        rebuilt = bounds(model, RefinedGuide(guide, params), x, y, 7)
    assert torch.allclose(own.elbo, rebuilt.elbo) and torch.allclose(own.log_likelihood, rebuilt.log_likelihood)
    ref = refine(model, guide, x, y, steps=2, num_particles=2)
    assert set(ref.params) == set(params) and all(math.isfinite(h) for h in ref.history)


@pytest.mark.parametrize(
    "guide_name,expected",
    [
        ("ugvae-structured", {"z"}),
        ("ugvae-meanfield", {"z", "beta", "d"}),
        ("ugvae-marginal", {"z"}),
        ("chyvae-structured", {"z"}),
        ("chyvae-meanfield", {"z", "sigma"}),
        ("gmvae-structured", {"z", "w"}),
        ("gmvae-meanfield", {"z", "w", "d"}),
        ("mlvae-product", {"s", "c"}),
        ("mlvae-average", {"s", "c"}),
    ],
)
def test_local_parameters_are_the_sites_that_depend_on_x_alone(guide_name, expected):
    """Sites conditioned on another sampled latent (q(d | z), q(β | X, π(z)), q(Σ | z)) keep their conditional network;
    the rest are the family's local parameters."""
    model, guide, x, y = _example(guide_name.split("-")[0], guide_name)
    assert set(local_parameters(guide, x, y)) == expected


def test_evaluate_refine_reports_the_gaps(tmp_path, capsys):
    from pyro_vaes.cli import main

    args = [
        "fit",
        "vae",
        "--data",
        "linear-gaussian",
        "--data-arg",
        "n_train=64",
        "--data-arg",
        "n_test=16",
        "--steps",
        "3",
        "--batch-size",
        "16",
        "--quiet",
        "--no-figures",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(args) == 0
    assert main(["evaluate", str(tmp_path / "r"), "--particles", "20", "--max-examples", "8", "--refine", "10"]) == 0
    out = capsys.readouterr().out
    assert "amortization gap" in out and "approximation gap" in out
    import json

    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    res = saved["evaluations"][saved["latest"]]["refined"]
    assert res["refine_steps"] == 10 and res["n"] == 8 and len(res["refine_history"]) == 11
    assert main(["evaluate", str(tmp_path / "r"), "--refine", "-1"]) == 2


# -- the second families ------------------------------------------------------------------------------------------
def test_mlvae_average_guide_averages_the_natural_parameters():
    model, guide, x, _ = _example("mlvae", "mlvae-average")
    product = build_component(GUIDES, "mlvae-product", model, **GUIDES.get("mlvae-product").example_args).double()
    product.load_state_dict(guide.state_dict())
    h = guide.pre_encoder(x)
    loc_i, pre = guide.c_head(h).split(guide.c_dim, -1)
    precision_i = torch.exp(-torch.tanh(pre))  # per-sample evidence
    lam = precision_i.mean(0)  # averaged natural parameters
    mean = (precision_i * loc_i).mean(0) / lam
    q = guide.encode(x)["c"]
    assert torch.allclose(q["loc"], mean) and torch.allclose(q["scale"], lam.rsqrt())
    assert torch.allclose(product.encode(x)["c"]["loc"], mean)  # the same mean, B times the precision
    assert torch.allclose(product.encode(x)["c"]["scale"], (3 * lam).rsqrt())
    assert torch.allclose(product.encode(x[:1])["c"]["scale"], guide.encode(x[:1])["c"]["scale"])  # B = 1: equal


def test_gmvae_meanfield_bound_is_the_hand_sum_over_d():
    """TraceEnum_ELBO with z and w drawn once: reconstruction + Σ_k q(k | x)[log p(z | k, w) − log q(k | x) + log p(k)]
    + log p(w) − log q(z) − log q(w), written out by hand."""
    model, guide, x, _ = _example("gmvae", "gmvae-meanfield")
    guide_trace = pyro.poutine.trace(guide.guide).get_trace(x)
    z, w = guide_trace.nodes["z"]["value"], guide_trace.nodes["w"]["value"]
    (z_loc, z_scale), (w_loc, w_scale), logits = guide._all(x)
    q_d = logits.exp()  # (B, K)
    loc, scale = model.components(w)  # (B, K, dz)
    log_pz_k = dist.Normal(loc, scale).log_prob(z.unsqueeze(1)).sum(-1)  # (B, K)
    log_px = model.observation(model.decoder(z)).log_prob(x)
    hand = (
        log_px
        + (q_d * (log_pz_k - logits - math.log(model.K))).sum(-1)
        + dist.Normal(0.0, 1.0).log_prob(w).sum(-1)
        - dist.Normal(z_loc, z_scale).log_prob(z).sum(-1)
        - dist.Normal(w_loc, w_scale).log_prob(w).sum(-1)
    ).sum()
    elbo = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1)
    guide_trace.remove_node("d")  # replay z and w; d is enumerated
    replayed = pyro.poutine.replay(guide.guide, trace=guide_trace)
    loss = elbo.differentiable_loss(model.model, replayed, x).detach()
    assert float(-loss) == pytest.approx(float(hand.detach()), rel=1e-10)


@pytest.mark.parametrize(
    "model_name,guide_name,site", [("cvae", "cvae-unlabelled", "z"), ("csvae", "csvae-unlabelled", "w")]
)
def test_unlabelled_families_do_not_see_the_label(model_name, guide_name, site):
    """The label-blind family gives the same posterior for every label, where the paper's family does not."""
    model, guide, x, y = _example(model_name, guide_name)
    flipped = (1 - y) if y.is_floating_point() else (y + 1) % 3
    assert torch.equal(guide.encode(x, y)[site]["loc"], guide.encode(x, flipped)[site]["loc"])
    assert torch.equal(guide.encode(x, y)[site]["loc"], guide.encode(x)[site]["loc"])
    paper = build_component(
        GUIDES, guides_for(model_name)[0], model, **GUIDES.get(guides_for(model_name)[0]).example_args
    ).double()
    assert not torch.equal(paper.encode(x, y)[site]["loc"], paper.encode(x, flipped)[site]["loc"])
