"""UG-VAE: trace shapes, the enumerated ELBO against the paper's closed form, guides, training, metric."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import TraceEnum_ELBO
from torch.distributions import Normal, kl_divergence

from pyro_vaes.guides.ugvae import UGVAEMarginalGuide, UGVAEMeanFieldGuide, UGVAEStructuredGuide
from pyro_vaes.metrics.batch_classification import batch_classification, batch_features
from pyro_vaes.models.ugvae import UGVAE
from pyro_vaes.nets.heads import product_of_gaussians
from pyro_vaes.objectives.ugvae import ugvae_loss_terms

SHAPE = (1, 6, 6)  # a tiny "image": the k_vae MLP takes any shape
GUIDES = [UGVAEStructuredGuide, UGVAEMarginalGuide, UGVAEMeanFieldGuide]


def tiny(K=3, z_dim=2, beta_dim=3, likelihood="gaussian", dtype=torch.float64):
    model = UGVAE(SHAPE, latent_dim=z_dim, beta_dim=beta_dim, K=K, likelihood=likelihood, arch="k_vae", hidden=16).to(
        dtype
    )
    return model


def enum_elbo(model):
    return TraceEnum_ELBO(max_plate_nesting=model.max_plate_nesting, strict_enumeration_warning=False)


def fixed_draw_guide(guide, x, z, beta):
    """The guide with its z and β draws replaced by given values (d is left to the enumeration)."""
    tr = poutine.trace(guide.guide).get_trace(x)
    tr.nodes["z"]["value"] = z
    tr.nodes["beta"]["value"] = beta
    if "d" in tr.nodes:
        tr.remove_node("d")
    return poutine.replay(guide.guide, trace=tr)


def draws(model, guide, x, eps_z, eps_beta):
    """z and β built from fixed standard-normal noise, as the guide builds them."""
    h, z_loc, z_scale = guide.local(x)
    z = z_loc + z_scale * eps_z
    b_loc, b_scale = guide.beta_params(h, guide.d_logits(h, z).exp())
    return z, b_loc + b_scale * eps_beta


def hand_terms(model, guide, x, eps_z, eps_beta, estimator="analytic"):
    """The authors' loss written out by hand from the networks (independent of Pyro's traces): reconstruction,
    Σ_i Σ_k π_ik KL(q(z_i) ‖ p(z_i | k, β)), KL(q(d | z) ‖ U(K)) and KL(q(β) ‖ N(0, I)) once per batch, with the
    Gaussian KLs analytic or as one-draw log-ratios (``sampled``)."""
    h, z_loc, z_scale = guide.local(x)
    z = z_loc + z_scale * eps_z
    log_pi = guide.d_logits(h, z)
    pi = log_pi.exp()
    b_loc, b_scale = guide.beta_params(h, pi)
    beta = b_loc + b_scale * eps_beta
    p_loc, p_scale = model.prior_z(beta)
    recon = -model.observation(model.decoder(torch.cat([z, beta.expand(z.shape[0], -1)], -1))).log_prob(x).sum()
    q_z, p_z = Normal(z_loc.unsqueeze(-2), z_scale.unsqueeze(-2)), Normal(p_loc, p_scale)
    q_b, p_b = Normal(b_loc, b_scale), Normal(torch.zeros_like(b_loc), torch.ones_like(b_scale))
    if estimator == "analytic":
        kl_z_k, kl_beta = kl_divergence(q_z, p_z).sum(-1), kl_divergence(q_b, p_b).sum()
    else:
        zz = z.unsqueeze(-2)
        kl_z_k = (q_z.log_prob(zz) - p_z.log_prob(zz)).sum(-1)
        kl_beta = (q_b.log_prob(beta) - p_b.log_prob(beta)).sum()
    kl_z, kl_d = (pi * kl_z_k).sum(), (pi * (log_pi + math.log(model.K))).sum()
    return {"total": recon + kl_z + kl_d + kl_beta, "recon": recon, "kl_z": kl_z, "kl_d": kl_d, "kl_beta": kl_beta}


# -- shapes ----------------------------------------------------------------------------------------------
def test_trace_shapes_beta_once_per_batch_z_and_d_per_sample():
    model = tiny(K=4, dtype=torch.float32)
    guide = UGVAEStructuredGuide(model)
    x = torch.rand(5, *SHAPE)
    gt = poutine.trace(guide.guide).get_trace(x)
    mt = poutine.trace(poutine.replay(model.model, trace=gt)).get_trace(x)
    assert mt.nodes["beta"]["value"].shape == (3,)
    assert mt.nodes["beta"]["cond_indep_stack"] == ()  # outside the data plate
    assert mt.nodes["z"]["value"].shape == (5, 2)
    assert mt.nodes["d"]["value"].shape == (5,)
    for name in ("z", "d", "x"):
        assert [f.name for f in mt.nodes[name]["cond_indep_stack"]] == ["data"]
    # under TraceEnum's parallel enumeration d gets one dim left of the data plate; z's density is (K, B)
    enum_guide = poutine.enum(guide.guide, first_available_dim=-2)
    gt = poutine.trace(enum_guide).get_trace(x)
    mt = poutine.trace(poutine.replay(model.model, trace=gt)).get_trace(x)
    assert gt.nodes["d"]["value"].shape == (4, 1)
    assert mt.nodes["z"]["fn"].batch_shape == (4, 5)
    assert mt.nodes["beta"]["fn"].batch_shape == ()


def test_marginal_guide_enumerates_d_in_the_model():
    model = tiny(K=4, dtype=torch.float32)
    guide = UGVAEMarginalGuide(model)
    x = torch.rand(5, *SHAPE)
    enum_model = poutine.enum(model.model, first_available_dim=-2)
    gt = poutine.trace(guide.guide).get_trace(x)
    assert "d" not in gt.nodes
    mt = poutine.trace(poutine.replay(enum_model, trace=gt)).get_trace(x)
    assert mt.nodes["d"]["value"].shape == (4, 1)
    assert mt.nodes["z"]["fn"].batch_shape == (4, 5)


def test_product_of_gaussians_is_precision_weighted():
    loc = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    log_var = torch.log(torch.tensor([[1.0, 4.0], [1.0, 4.0 / 3.0]]))
    m, s = product_of_gaussians(loc, log_var)
    assert torch.allclose(m, torch.tensor([1.0, 0.25 * 1 + 0.75 * 3.0]))
    assert torch.allclose(s**2, torch.tensor([0.5, 1.0]))
    m, s = product_of_gaussians(loc.expand(7, 2, 2), log_var.expand(7, 2, 2))  # particle dims
    assert m.shape == (7, 1, 2) and s.shape == (7, 1, 2)


# -- the ELBO against the paper's closed form ------------------------------------------------------------
@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_enum_elbo_equals_hand_written_terms_on_the_same_draws(likelihood):
    """TraceEnum sums over d exactly (weights q(d|z)) and samples z, β: with the draws fixed it equals
    recon + Σ_i Σ_k π_ik [log q(z_i) − log p(z_i|k,β)] + KL(q(d|z) ‖ U) + [log q(β) − log p(β)] exactly."""
    torch.manual_seed(1)
    model = tiny(likelihood=likelihood)
    guide = UGVAEStructuredGuide(model).double()
    B = 5
    x = torch.rand(B, *SHAPE, dtype=torch.float64)
    if likelihood == "bernoulli":
        x = x.round()
    eps_z, eps_b = torch.randn(B, 2, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    z, beta = draws(model, guide, x, eps_z, eps_b)
    fixed = fixed_draw_guide(guide, x, z, beta)
    loss = enum_elbo(model).differentiable_loss(model.model, fixed, x)
    terms = hand_terms(model, guide, x, eps_z, eps_b, estimator="sampled")
    assert torch.allclose(loss, terms["total"], rtol=1e-10, atol=1e-9)
    # the objective's trace-based terms (sampled and analytic) equal the hand-written ones term by term
    for estimator in ("sampled", "analytic"):
        traced = ugvae_loss_terms(model.model, fixed, x, estimator=estimator)
        hand = hand_terms(model, guide, x, eps_z, eps_b, estimator=estimator)
        for key in hand:
            assert torch.allclose(traced[key], hand[key], rtol=1e-10, atol=1e-9), key
    # β's KL enters once per batch: B copies would move the loss by (B − 1)·KL_β
    assert abs(float(terms["kl_beta"].detach())) > 1e-3


def test_enum_elbo_expectation_equals_analytic_closed_form_exactly():
    """With π independent of z, the enumerated ELBO averaged over the two-point noise ε = ±1 (both moments
    of N(0, 1) matched, and the log-ratios are quadratic in ε) equals the paper's closed form with analytic
    KL(q(z)‖p(z|k,β)) and KL(q(β)‖p(β)) averaged over the same draws, exactly, not statistically."""
    torch.manual_seed(2)
    model = tiny()
    guide = UGVAEStructuredGuide(model).double()
    with torch.no_grad():  # π(z) = softmax(W2 tanh(b1) + b2): constant in z, not uniform
        guide.d_net[0].weight.zero_()
    B = 4
    x = torch.rand(B, *SHAPE, dtype=torch.float64)
    elbo = enum_elbo(model)
    enum_losses, closed = [], []
    for s_z, s_b in itertools.product([1.0, -1.0], repeat=2):
        eps_z, eps_b = torch.full((B, 2), s_z, dtype=torch.float64), torch.full((3,), s_b, dtype=torch.float64)
        z, beta = draws(model, guide, x, eps_z, eps_b)
        enum_losses.append(elbo.differentiable_loss(model.model, fixed_draw_guide(guide, x, z, beta), x))
        closed.append(hand_terms(model, guide, x, eps_z, eps_b, estimator="analytic")["total"])
    enum_mean, closed_mean = torch.stack(enum_losses).mean(), torch.stack(closed).mean()
    assert torch.allclose(enum_mean, closed_mean, rtol=1e-10, atol=1e-9)
    assert not torch.allclose(enum_losses[0], closed[0], rtol=1e-6)  # per draw they differ (MC vs analytic)


def test_model_enumeration_gives_the_exact_mixture_prior():
    """ugvae-marginal: TraceEnum computes log p(z_i|β) = log (1/K) Σ_k N(z_i; μ_k(β), σ_k²(β)) exactly."""
    torch.manual_seed(3)
    model = tiny()
    guide = UGVAEMarginalGuide(model).double()
    x = torch.rand(5, *SHAPE, dtype=torch.float64)
    eps_z, eps_b = torch.randn(5, 2, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    h, z_loc, z_scale = guide.local(x)
    z = z_loc + z_scale * eps_z
    b_loc, b_scale = guide.beta_params(h, torch.softmax(guide.d_net(z), -1))
    beta = b_loc + b_scale * eps_b
    loss = enum_elbo(model).differentiable_loss(model.model, fixed_draw_guide(guide, x, z, beta), x)
    p_loc, p_scale = model.prior_z(beta)
    log_pz = torch.logsumexp(Normal(p_loc, p_scale).log_prob(z.unsqueeze(-2)).sum(-1), -1) - math.log(model.K)
    recon = model.observation(model.decoder(torch.cat([z, beta.expand(5, -1)], -1))).log_prob(x)
    expected = -(
        recon.sum()
        + log_pz.sum()
        - Normal(z_loc, z_scale).log_prob(z).sum()
        + Normal(0.0, 1.0).log_prob(beta).sum()
        - Normal(b_loc, b_scale).log_prob(beta).sum()
    )
    assert torch.allclose(loss, expected, rtol=1e-10, atol=1e-9)


# -- every guide runs and trains --------------------------------------------------------------------------
@pytest.mark.parametrize("guide_cls", GUIDES, ids=lambda g: g.__name__)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)], ids=["k_vae", "beta_vae"])
def test_every_guide_trains_with_traceenum(guide_cls, shape):
    model = UGVAE(shape, latent_dim=4, beta_dim=5, K=3, hidden=32)
    guide = guide_cls(model)
    x = torch.rand(6, *shape)
    params = list(model.parameters()) + list(guide.parameters())
    before = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=1e-2)
    loss = enum_elbo(model).differentiable_loss(model.model, guide.guide, x)
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    changed = sum(not torch.equal(a, p.detach()) for a, p in zip(before, params))
    assert changed == len(params)  # every network (K priors, decoder, encoder heads) got a gradient
    enc = guide.encode(x)
    assert enc["beta"]["loc"].shape == (5,) and enc["z"]["loc"].shape == (6, 4)
    assert ("d" in enc) == (guide_cls is not UGVAEMarginalGuide) and (
        "d" not in enc or enc["d"]["probs"].shape == (6, 3)
    )


def test_closed_form_objective_trains_and_matches_terms():
    from pyro_vaes.objectives.ugvae import UGVAEClosedForm

    model = UGVAE((1, 28, 28), latent_dim=4, beta_dim=5, K=3, hidden=32)
    guide = UGVAEStructuredGuide(model)
    obj = UGVAEClosedForm().bind(model, guide)
    x = torch.rand(6, 1, 28, 28)
    torch.manual_seed(0)
    a = obj.loss(x)
    torch.manual_seed(0)
    b = ugvae_loss_terms(model.model, guide.guide, x)["total"]
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="ugvae-structured"):
        UGVAEClosedForm().bind(model, UGVAEMarginalGuide(model))


def test_fit_through_the_engine_and_swap_guides(tmp_path):
    import pyro_vaes
    from pyro_vaes.data import ArraySplit, VAEData

    g = torch.Generator().manual_seed(0)
    data = VAEData(
        "tiny", ArraySplit(torch.rand(64, 1, 28, 28, generator=g)), ArraySplit(torch.rand(32, 1, 28, 28, generator=g))
    )
    for name in ("ugvae-structured", "ugvae-marginal", "ugvae-meanfield"):
        run = pyro_vaes.fit(
            model="ugvae",
            guide=name,
            objective="enum-elbo",
            data="mnist",
            dataset=data,
            model_args={"latent_dim": 3, "beta_dim": 4, "K": 3, "hidden": 32},
            steps=3,
            batch_size=16,
            eval_every=3,
            lr=1e-3,
            out=tmp_path / name,
            figures=False,
            progress=False,
        )
        assert np.isfinite(run.history[-1]["test_loss"])
        assert run.sample(4).shape == (4, 1, 28, 28)


def test_model_refuses_bad_input():
    model = tiny(dtype=torch.float32)
    with pytest.raises(ValueError, match="expects data of shape"):
        model.model(torch.rand(3, 1, 5, 5))
    with pytest.raises(ValueError, match="beta_vae expects"):
        UGVAE((1, 28, 28), arch="beta_vae")
    with pytest.raises(ValueError, match="likelihood"):
        UGVAE((1, 28, 28), likelihood="poisson")


def test_sample_prior_and_decode_shapes():
    model = tiny(K=4, dtype=torch.float32)
    lat = model.sample_prior(7)
    assert lat["beta"].shape == (3,) and lat["d"].shape == (7,) and lat["z"].shape == (7, 2)
    assert model.decode(lat).shape == (7, *SHAPE)
    assert model.sample(3).shape == (3, *SHAPE)


# -- the batch-classification metric on inputs whose answer is known ------------------------------------------
def test_batch_classification_separable_is_perfect_and_identical_is_chance():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 100)
    separable = rng.normal(size=(300, 5)) * 0.1 + 5.0 * np.eye(3)[y].repeat(2, axis=1)[:, :5]
    res = batch_classification(separable, y)
    for k in ("linear", "rbf"):
        assert res[k]["test"] == 1.0 and res[k]["train"] == 1.0
    same = rng.normal(size=(600, 5))
    y2 = np.repeat([0, 1], 300)
    res = batch_classification(same, y2)
    assert abs(res["linear"]["test"] - 0.5) < 0.1 and abs(res["rbf"]["test"] - 0.5) < 0.1
    assert abs(res["chance"]["test"] - 0.5) < 0.05 and sum(res["chance"]["test_counts"].values()) == 120
    with pytest.raises(ValueError, match="two classes"):
        batch_classification(same, np.zeros(600))


def test_batch_classification_is_the_authors_code_exactly():
    """The same accuracies as the authors' celeba_attributes.py lines, run here on the same features."""
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 40)
    X = rng.normal(size=(120, 6)) + 0.6 * np.eye(3)[y].repeat(2, axis=1)
    ours = batch_classification(X, y)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=42)
    for kernel in ("linear", "rbf"):
        clf = make_pipeline(StandardScaler(), SVC(kernel=kernel, gamma="auto")).fit(Xtr, ytr)
        assert ours[kernel] == {"train": clf.score(Xtr, ytr), "test": clf.score(Xte, yte)}


def test_global_features_reads_the_guide():
    model = tiny(dtype=torch.float32)
    guide = UGVAEStructuredGuide(model)
    feats = batch_features(model, guide, [torch.rand(8, *SHAPE) for _ in range(3)])
    assert feats.shape == (3, 3) and guide.training


# -- experiments: every model trains through pyro_vaes.fit ---------------------------------------------------
def _random_images(n_train, n_test, shape=(1, 28, 28), seed=0, value=None):
    from pyro_vaes.data import ArraySplit, VAEData

    g = torch.Generator().manual_seed(seed)
    make = (
        (lambda n: torch.full((n, *shape), value))
        if value is not None
        else (lambda n: torch.rand(n, *shape, generator=g))
    )
    return VAEData(
        "random",
        ArraySplit(make(n_train), torch.randint(10, (n_train,), generator=g)),
        ArraySplit(make(n_test), torch.randint(10, (n_test,), generator=g)),
    )


def test_experiments_have_no_private_training_loop():
    from pyro_vaes.experiments import ugvae as ex

    for name in ("train", "_train_loop", "random_stream", "build"):
        assert not hasattr(ex, name), f"experiments.ugvae.{name} exists: experiments must train through pyro_vaes.fit"


@pytest.mark.parametrize("name", ["ugvae", "mlvae", "gmvae"])
def test_fit_model_writes_a_run_folder_that_loads_and_evaluates(tmp_path, name):
    """fit_model goes through pyro_vaes.fit into OUT/runs/<model>; the folder reopens with the same weights."""
    import pyro_vaes
    from pyro_vaes.experiments.ugvae import LR, fit_model

    data = _random_images(64, 32)
    sizes = {"latent_dim": 3, "beta_dim": 4, "K": 3}
    run = fit_model(
        name,
        data,
        "mnist",
        {"binarize": "none", "n_train": 64, "n_test": 32},
        tmp_path,
        sizes=sizes,
        steps=3,
        batch_size=16,
        seed=0,
    )
    assert run.run_dir == tmp_path / "runs" / name
    assert not run.model.training and not run.guide.training
    assert [row["step"] for row in run.history] == [1, 2, 3]  # eval_every(3) = 1: a curve point every step
    assert np.isfinite(run.history[-1]["test_loss"])
    cfg = run.config
    assert (cfg.model, cfg.objective, cfg.data, cfg.lr, cfg.steps, cfg.batch_size) == (
        name,
        "enum-elbo",
        "mnist",
        LR,
        3,
        16,
    )
    assert cfg.data_args == {"binarize": "none", "n_train": 64, "n_test": 32}
    loaded = pyro_vaes.load(run.run_dir, dataset=data)
    for a, b in zip(run.guide.state_dict().values(), loaded.guide.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    res = loaded.evaluate(num_particles=4, max_examples=8, write=False)
    assert np.isfinite(res["log_likelihood"])


def test_model_args_give_the_baselines_ugvaes_sizes():
    from pyro_vaes.experiments.ugvae import model_args

    sizes = {"latent_dim": 10, "beta_dim": 20, "K": 10}
    assert model_args("ugvae", sizes) == sizes
    assert model_args("gmvae", sizes) == {"latent_dim": 10, "w_dim": 20, "K": 10}
    assert model_args("mlvae", sizes) == {"latent_dim": 10, "c_dim": 20}
    with pytest.raises(ValueError, match="unknown model"):
        model_args("vae", sizes)


def test_balanced_domains_pool_mixes_random_batches_half_and_half():
    from pyro_vaes.data import iterate_batches
    from pyro_vaes.data.composite import balanced_domains

    a = _random_images(300, 40, shape=(3, 4, 4), value=0.0)
    b = _random_images(120, 60, shape=(3, 4, 4), value=1.0)
    ba, bb, mixed = balanced_domains(a, b, seed=0)
    assert len(ba.train) == len(bb.train) == 120 and len(ba.test) == len(bb.test) == 40
    assert len(mixed.train) == 240 and len(mixed.test) == 80
    for split in (mixed.train, mixed.test):
        assert torch.equal(split.y, split.x[:, 0, 0, 0].long())  # y is the domain (a = 0, b = 1), item by item
        assert 0 < int(split.y[: len(split) // 4].sum()) < len(split) // 4  # shuffled: a prefix mixes domains
    frac = [float(mixed.train.y[idx].float().mean()) for _, idx in itertools.islice(iterate_batches(240, 32, 0), 50)]
    assert abs(np.mean(frac) - 0.5) < 0.05 and min(frac) > 0.15 and max(frac) < 0.85
    assert torch.equal(balanced_domains(a, b, seed=0)[2].train.x, mixed.train.x)  # seeded
    with pytest.raises(ValueError, match="differ in shape"):
        balanced_domains(a, _random_images(10, 10, shape=(1, 4, 4)))


def test_domain_dataset_is_registered_so_run_folders_reopen():
    from pyro_vaes.registry import DATASETS

    assert "celeba-yaleb" in DATASETS and DATASETS.entry("celeba-yaleb").meta["kind"] == "real"


# -- experiments at tiny scale ------------------------------------------------------------------------------
def _check_runs(out, table, models):
    import pyro_vaes

    assert set(table["runs"]) == set(models)
    for name in models:
        run_dir = out / "runs" / name
        assert table["runs"][name]["run_dir"] == f"runs/{name}"
        assert (run_dir / "checkpoint.pt").exists() and (run_dir / "metrics.jsonl").exists()
        run = pyro_vaes.load(run_dir)  # rebuilds the data from config.json (registry name, data_args, data_root)
        assert run.config.model == name and run.config.steps == table["steps"]
        assert np.isfinite(table["runs"][name]["test_loss_per_datum"])


@pytest.mark.data
def test_mnist_series_experiment_tiny(tmp_path, shared_data):
    from pyro_vaes.experiments.ugvae import run_mnist_series

    table = run_mnist_series(tmp_path, "tiny", 0, str(shared_data))
    assert set(table["classification"]) == {
        f"{m}:{t}" for m in ("ugvae", "mlvae", "gmvae") for t in ("series only", "series + random")
    }
    assert (tmp_path / "results.json").exists() and (tmp_path / "results.md").exists()
    assert sorted(Path(f) for f in table["figures"]) == sorted(
        Path("figures", f"tsne_{m}.png") for m in ("ugvae", "mlvae", "gmvae")
    )
    assert all((tmp_path / f).exists() for f in table["figures"])
    _check_runs(tmp_path, table, ("ugvae", "mlvae", "gmvae"))


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("name", ["ugvae-sampling", "ugvae-celeba-attributes", "ugvae-domains"])
def test_other_experiments_tiny(tmp_path, shared_data, name):
    from pyro_vaes.registry import EXPERIMENTS

    table = EXPERIMENTS.get(name)(tmp_path, "tiny", 0, str(shared_data))
    figures = {  # tiny: UG-VAE's grids for the first two clusters
        "ugvae-sampling": ["ugvae_sampling_cluster0", "ugvae_sampling_cluster1", "mlvae_sampling"],
        "ugvae-celeba-attributes": [f"tsne_{m}_{t}" for m in ("ugvae", "mlvae") for t in ("gender", "hair")],
        "ugvae-domains": ["tsne_domains", "interpolation"],
    }
    assert sorted(Path(f) for f in table["figures"]) == sorted(Path("figures", f"{n}.png") for n in figures[name])
    assert all((tmp_path / f).exists() for f in table["figures"])
    models = {
        "ugvae-sampling": ("ugvae", "mlvae"),
        "ugvae-celeba-attributes": ("ugvae", "mlvae"),
        "ugvae-domains": ("ugvae",),
    }
    _check_runs(tmp_path, table, models[name])
    if name == "ugvae-domains":
        assert table["train_images"]["celeba"] == table["train_images"]["yaleb"]  # balanced before pooling
