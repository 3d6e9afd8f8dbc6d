"""CSVAE, CondVAE and CondVAE-info (Klys et al., 2018): the objectives against hand computations, the adversary's
gradient hygiene, the label subspaces, attribute switching and the CelebA subsets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

import pyro_vaes
from pyro_vaes.analysis.switch import subspace_points, switch_accuracy, switch_attribute, switch_method
from pyro_vaes.cli import main
from pyro_vaes.config import FitConfig
from pyro_vaes.data import ArraySplit, VAEData
from pyro_vaes.engine import Trainer
from pyro_vaes.engine import build as build_components
from pyro_vaes.guides.base import posterior_means
from pyro_vaes.metrics.reconstruction import reconstruct
from pyro_vaes.objectives.csvae import negative_entropy
from pyro_vaes.registry import GUIDES, MODELS, OBJECTIVES

D = 5  # flat observations


def labelled_data(n_train=48, n_test=16, k=2, seed=0) -> VAEData:
    """Gaussian observations whose mean depends on k binary labels."""
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    y = torch.randint(2, (n, k), generator=g)
    x = torch.randn(n, D, generator=g) + 2.0 * y.float() @ torch.randn(k, D, generator=g)
    names = [f"a{i}" for i in range(k)]
    return VAEData(
        "toy-labels", ArraySplit(x[:n_train], y[:n_train]), ArraySplit(x[n_train:], y[n_train:]), label_names=names
    )


def build(model="csvae", guide=None, objective=None, k=2, model_args=None, objective_args=None):
    m = MODELS.get(model)(
        (D,), num_labels=k, latent_dim=3, hidden=8, likelihood="gaussian", obs_scale=0.7, **(model_args or {})
    )
    g = GUIDES.get(guide or {"csvae": "csvae-mean-field", "condvae": "condvae-labelled"}[model])(m, hidden=8)
    o = OBJECTIVES.get(objective or {"csvae": "csvae", "condvae": "condvae-info"}[model])(**(objective_args or {}))
    return m, g, o.bind(m, g, num_data=10)


def normal_kl(mq, sq, mp, sp):
    """KL(N(mq, sq²) ‖ N(mp, sp²)) per coordinate, written out."""
    return np.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5


def bernoulli_negative_entropy(logits):
    p = 1 / (1 + np.exp(-logits))
    return (p * np.log(p) + (1 - p) * np.log(1 - p)).sum(-1)


# -- the objectives against hand computations ----------------------------------------------------------------------
def test_csvae_bound_terms_equal_a_hand_computation():
    m, g, obj = build(objective_args={"beta1": 20, "beta2": 1.5, "beta3": 0.2, "beta4": 10})
    data = labelled_data()
    x, y = data.train.x[:4], data.train.y[:4]
    loss = obj.loss(x, y).item()
    t = obj.last_terms
    z, w = t.codes["z"].detach().numpy(), t.codes["w"].detach().numpy()
    with torch.no_grad():
        q = g.encode(x, y)
        mean = m.decoder(torch.cat([t.codes["w"], t.codes["z"]], -1)).numpy()
        logits = obj.adversary(t.codes["z"]).numpy()
    recon = stats.norm.logpdf(x.numpy(), mean, 0.7).sum()
    kl_z = normal_kl(q["z"]["loc"].numpy(), q["z"]["scale"].numpy(), 0.0, 1.0).sum()
    yc = np.repeat(y.numpy(), 2, axis=1)  # each label's 2-D subspace: y_i = 1 -> N(0, 0.1²), y_i = 0 -> N(3, 1)
    kl_w = normal_kl(
        q["w"]["loc"].numpy(), q["w"]["scale"].numpy(), np.where(yc == 1, 0.0, 3.0), np.where(yc == 1, 0.1, 1.0)
    ).sum()
    negent = bernoulli_negative_entropy(logits).sum()
    assert t.recon.item() == pytest.approx(20 * recon, rel=1e-5)
    assert t.kl["z"].item() == pytest.approx(0.2 * kl_z, rel=1e-5)
    assert t.kl["w"].item() == pytest.approx(1.5 * kl_w, rel=1e-5)
    assert loss == pytest.approx(-20 * recon + 1.5 * kl_w + 0.2 * kl_z + 10 * negent, rel=1e-5)
    # the adversary's own loss: β5 Σ_i −log q(y_i | z_i) on the same codes
    ce = -(y.numpy() * np.log(1 / (1 + np.exp(-logits))) + (1 - y.numpy()) * np.log(1 / (1 + np.exp(logits)))).sum()
    assert obj.network_loss("adversary", x, y).item() == pytest.approx(ce, rel=1e-5)
    assert np.isfinite(z).all() and np.isfinite(w).all()


def test_csvae_sampled_kl_is_log_q_minus_log_p_at_the_codes():
    m, g, obj = build(objective_args={"analytic_kl": False, "beta2": 2.0})
    data = labelled_data()
    x, y = data.train.x[:3], data.train.y[:3]
    obj.loss(x, y)
    t = obj.last_terms
    with torch.no_grad():
        q = g.encode(x, y)
    w = t.codes["w"].detach().numpy()
    yc = np.repeat(y.numpy(), 2, axis=1)
    log_q = stats.norm.logpdf(w, q["w"]["loc"].numpy(), q["w"]["scale"].numpy()).sum()
    log_p = stats.norm.logpdf(w, np.where(yc == 1, 0.0, 3.0), np.where(yc == 1, 0.1, 1.0)).sum()
    assert t.kl["w"].item() == pytest.approx(2.0 * (log_q - log_p), rel=1e-4)


def test_condvae_info_loss_is_the_elbo_minus_gamma_times_the_adversary_cross_entropy():
    m, g, obj = build("condvae", "condvae-unlabelled", objective_args={"gamma": 3.0})
    data = labelled_data()
    x, y = data.train.x[:4], data.train.y[:4]
    loss = obj.loss(x, y).item()
    t = obj.last_terms
    with torch.no_grad():
        q = g.encode(x)  # the encoder ignores the label
        assert torch.equal(q["z"]["loc"], g.encode(x, 1 - y)["z"]["loc"])
        mean = m.decoder(torch.cat([t.codes["z"], y.float()], -1)).numpy()
        logits = obj.adversary(t.codes["z"]).numpy()
    recon = stats.norm.logpdf(x.numpy(), mean, 0.7).sum()
    kl = normal_kl(q["z"]["loc"].numpy(), q["z"]["scale"].numpy(), 0.0, 1.0).sum()
    p = 1 / (1 + np.exp(-logits))
    ce = -(y.numpy() * np.log(p) + (1 - y.numpy()) * np.log(1 - p)).sum()
    assert loss == pytest.approx(-recon + kl - 3.0 * ce, rel=1e-5)


def test_negative_entropy_is_minimal_for_a_uniform_adversary():
    k = 3
    assert float(negative_entropy(torch.zeros(k))) == pytest.approx(-k * math.log(2), rel=1e-6)
    logits = torch.randn(200, k) * 3
    values = negative_entropy(logits)
    assert (values > -k * math.log(2)).all()
    reference = -torch.distributions.Bernoulli(logits=logits).entropy().sum(-1)  # an independent computation
    assert torch.allclose(values, reference, atol=1e-5)
    zero = torch.zeros(k, requires_grad=True)
    negative_entropy(zero).backward()
    assert torch.allclose(zero.grad, torch.zeros(k))  # a stationary point, and the minimum (values above)
    assert torch.isfinite(negative_entropy(torch.tensor([80.0, -80.0])))  # stable when saturated


# -- gradient hygiene: who each step moves -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model,guide,objective", [("csvae", "csvae-mean-field", "csvae"), ("condvae", "condvae-unlabelled", "condvae-info")]
)
def test_adversary_step_moves_only_the_adversary_and_model_step_only_the_model(model, guide, objective, tmp_path):
    cfg = FitConfig(
        model=model,
        guide=guide,
        objective=objective,
        data="linear-gaussian",
        batch_size=8,
        steps=1,
        model_args={"latent_dim": 3, "hidden": 8, "likelihood": "gaussian"},
        guide_args={"hidden": 8},
        objective_args={"adversary_hidden": 8},
        figures=False,
    )
    trainer = Trainer(build_components(cfg, labelled_data()), tmp_path, progress=False)
    main_params = trainer.learner.main_parameters()
    adv = list(trainer.learner.auxiliaries["adversary"].parameters())
    assert trainer.order == ("main", "adversary")
    x, y = trainer.parts.data.train.batch(torch.arange(8))

    def snap(ps):
        return [p.detach().clone() for p in ps]

    trainer.order = ("main",)
    m0, a0 = snap(main_params), snap(adv)
    trainer._step(x, y)
    assert all(p.grad is None for p in adv), "the main loss wrote gradients into the adversary"
    assert all(torch.equal(a, b) for a, b in zip(a0, adv))
    assert any(not torch.equal(a, b) for a, b in zip(m0, main_params))
    trainer.order = ("adversary",)
    for p in main_params:
        p.grad = None
    m1, a1 = snap(main_params), snap(adv)
    trainer._step(x, y)
    assert all(p.grad is None for p in main_params), "the adversary's loss wrote gradients into the model or guide"
    assert all(torch.equal(a, b) for a, b in zip(m1, main_params))
    assert any(not torch.equal(a, b) for a, b in zip(a1, adv))


def test_the_adversary_term_reaches_the_encoder_of_z_only():
    """β4's gradient flows into q(z | x) (it is how z is made uninformative) and into nothing of w or the decoder."""
    m, g, obj = build()
    data = labelled_data()
    x, y = data.train.x[:8], data.train.y[:8]
    obj.loss(x, y)
    reg = obj.regularizer(obj.last_terms, x, y)
    reg.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g.z_loc.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in [*g.w_loc.parameters(), *m.decoder.parameters()])


@pytest.mark.parametrize("model", ["csvae", "condvae"])
def test_the_adversary_reads_the_main_steps_codes_of_an_equal_batch(model):
    """CSVAE's and CondVAE-info's adversary steps on the codes the main step drew for this batch (handed over through
    ``objective.handoff``, matched by the batch's values, not the tensor objects) without drawing anything; for
    other labels, or once used, it draws afresh from the guide."""
    from pyro_vaes.objectives.csvae import label_cross_entropy

    m, g, obj = build(model)
    data = labelled_data()
    x, y = data.train.x[:6], data.train.y[:6]
    torch.manual_seed(0)
    obj.loss(x, y)
    z = obj.last_terms.codes["z"].detach()
    state = torch.get_rng_state()
    got = obj.network_loss("adversary", x.clone(), y.clone())
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(got, obj.adversary_loss_weight * label_cross_entropy(obj.adversary(z), y).sum())
    obj.loss(x, y)
    state = torch.get_rng_state()
    obj.network_loss("adversary", x, 1 - y)  # another batch: its labels differ
    assert not torch.equal(torch.get_rng_state(), state)


# -- the label subspaces -------------------------------------------------------------------------------------------
def test_multi_label_subspaces_have_the_declared_dimensions():
    import pyro.poutine as poutine

    m, g, _ = build(k=3, model_args={"w_dim": [1, 2, 3]})
    assert m.subspace_dims == (1, 2, 3) and m.w_size == 6
    assert [m.subspace(i) for i in range(3)] == [slice(0, 1), slice(1, 3), slice(3, 6)]
    x, y = torch.randn(4, D), torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]])
    tr = poutine.trace(g.guide).get_trace(x, y)
    assert tr.nodes["w"]["value"].shape == (4, 6) and tr.nodes["z"]["value"].shape == (4, 3)
    assert g.encode(x, y)["w"]["loc"].shape == (4, 6)
    assert m.sample_prior(5)["w"].shape == (5, 6)
    loc, scale = m.subspace_prior(y)
    expected_loc = torch.tensor([[0, 3, 3, 0, 0, 0], [3, 0, 0, 3, 3, 3], [0] * 6, [3] * 6]).float()
    expected_scale = torch.where(expected_loc == 0, 0.1, 1.0)
    assert torch.allclose(loc, expected_loc) and torch.allclose(scale, expected_scale)
    with pytest.raises(ValueError, match="w_dim has 2 entries for 3 labels"):
        build(k=3, model_args={"w_dim": [1, 2]})
    with pytest.raises(ValueError, match=r"expects labels y of shape \(4, 3\)"):
        g.encode(x, y[:, :2])


def test_learned_subspace_prior_starts_at_the_fixed_one_and_is_trained():
    m, g, obj = build(model_args={"w_prior": "learned"})
    fixed, _, _ = build()
    y = torch.tensor([[0, 1]])
    assert all(torch.allclose(a, b) for a, b in zip(m.subspace_prior(y), fixed.subspace_prior(y)))
    assert {"prior_loc", "prior_raw_scale"} <= {n for n, _ in m.named_parameters()}
    assert not {n for n, _ in fixed.named_parameters()} & {"prior_loc", "prior_raw_scale"}


def test_incompatible_pairs_are_refused_before_any_data_loads(tmp_path):
    cases = [
        ("condvae", None, "csvae", "written for model csvae"),
        ("csvae", None, "condvae-info", "written for model condvae"),
        ("vae", None, "csvae", "written for model csvae"),
    ]
    for model, guide, objective, why in cases:
        with pytest.raises(ValueError, match=why):
            pyro_vaes.fit(
                model=model,
                guide=guide,
                objective=objective,
                data="mnist",
                data_root=str(tmp_path / "no"),
                out=tmp_path / "r",
                progress=False,
            )
    with pytest.raises(ValueError, match="needs 0/1 labels"):  # moons has one integer class per point
        pyro_vaes.fit(model="csvae", data="moons", steps=1, out=tmp_path / "r2", progress=False, figures=False)
    assert pyro_vaes.registry.GUIDES.get("condvae-unlabelled").default_objective == "condvae-info"


# -- attribute switching -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["csvae", "condvae", "vae"])
def test_switching_to_the_own_label_reproduces_the_reconstruction(model):
    data = labelled_data()
    if model == "vae":
        m = MODELS.get("vae")((D,), latent_dim=3, hidden=8, likelihood="gaussian")
        g = GUIDES.get("diagonal")(m, hidden=8)
    else:
        m, g, _ = build(model)
    x, y = data.test.x[:6], data.test.y[:6]
    rec = reconstruct(m, g, x, y)
    ref = (data.train.x, data.train.y)
    if model == "csvae":  # the point in W_j: each item's own posterior mean of w_j
        own = posterior_means(g.encode(x, y))["w"][:, m.subspace(0)][:, None]
        out = switch_attribute(m, g, x, y, 0, 1, points=own)
        assert out.method == "subspace" and out.images.shape == (6, 1, D)
        assert torch.allclose(out.images[:, 0], rec, atol=1e-6)
    else:
        for v in (0, 1):  # items whose label is already v are left as they are
            out = switch_attribute(m, g, x, y, 0, v, reference=ref, intensities=(1.0, 2.0))
            same = y[:, 0] == v
            assert torch.allclose(out.images[same, 0], rec[same], atol=1e-6)
            assert torch.allclose(out.images[same, 1], rec[same], atol=1e-6)
        out = switch_attribute(m, g, x, y, 0, 1, reference=ref, intensities=(0.0,))  # α = 0: no change
        assert torch.allclose(out.images[:, 0], rec, atol=1e-6)


def test_latent_arithmetic_and_label_swap_against_hand_computations():
    data = labelled_data()
    x, y = data.test.x[:6], data.test.y[:6]
    m = MODELS.get("vae")((D,), latent_dim=3, hidden=8, likelihood="gaussian")
    g = GUIDES.get("diagonal")(m, hidden=8)
    with torch.no_grad():
        zr = g.encode(data.train.x)["z"]["loc"]
        mean1, mean0 = zr[data.train.y[:, 1] == 1].mean(0), zr[data.train.y[:, 1] == 0].mean(0)
        z = g.encode(x)["z"]["loc"]
        want = m.decode({"z": z + 1.5 * (mean1 - mean0)})
    out = switch_attribute(m, g, x, y, 1, 1, reference=(data.train.x, data.train.y), intensities=(1.5,))
    moved = y[:, 1] == 0
    assert torch.allclose(out.images[moved, 0], want[moved], atol=1e-5)
    cm, cg, _ = build("condvae")
    with torch.no_grad():
        y2 = y.float().clone()
        y2[:, 1] = y2[:, 1] + 2.0 * (0 - y2[:, 1])  # to 0 with α = 2: 1 -> -1
        want = cm.decode({"z": cg.encode(x, y)["z"]["loc"]}, y2)
    out = switch_attribute(cm, cg, x, y, 1, 0, intensities=(2.0,))
    assert out.method == "label-swap" and torch.allclose(out.images[:, 0], want, atol=1e-6)


def test_subspace_candidates_grid_and_pca():
    data = labelled_data(n_train=64)
    m, g, _ = build(k=2, model_args={"w_dim": [2, 3]})
    ref = (data.train.x, data.train.y)
    pts, names = subspace_points(m, g, 0, 1, ref, grid=4)
    assert pts.shape == (16, 2) and len(names) == 16
    assert torch.allclose(pts.mean(0), torch.zeros(2), atol=1e-6)  # centred at the prior mean of y_0 = 1
    pts0, _ = subspace_points(m, g, 0, 0, None, grid=3)
    assert torch.allclose(pts0.mean(0), torch.full((2,), 3.0)) and torch.allclose(
        pts0.max(0).values, torch.full((2,), 5.0)
    )
    pts, names = subspace_points(m, g, 1, 1, ref, grid=5, components=2)  # 3-D: principal components
    assert pts.shape == (10, 3)
    with torch.no_grad():
        sel = data.train.y[:, 1] == 1
        refs = g.encode(data.train.x[sel], data.train.y[sel])["w"]["loc"][:, m.subspace(1)]
    assert torch.allclose(pts[2], refs.mean(0), atol=1e-5)  # a = 0 is the mean
    out = switch_attribute(m, g, data.test.x[:3], data.test.y[:3], 1, 1, reference=ref, components=1, grid=3)
    assert out.images.shape == (3, 3, D) and out.points.shape == (3, 3)
    zeroed = switch_attribute(m, g, data.test.x[:3], data.test.y[:3], 1, 1, points=out.points, others="zero")
    with torch.no_grad():
        w = torch.zeros(3, 5)
        w[:, 2:] = out.points[0]
        z = g.encode(data.test.x[:3], data.test.y[:3])["z"]["loc"]
        assert torch.allclose(zeroed.images[:, 0], m.decode({"z": z, "w": w}), atol=1e-6)
    assert switch_method(m) == "subspace"


class _Always:
    """A stand-in classifier that says every image has the attribute."""

    def predict(self, x):
        return torch.ones(len(x), 1, dtype=torch.long)


def test_switch_accuracy_counts_the_classifier_verdicts():
    data = labelled_data(k=1)
    m, g, _ = build(k=1)
    x, y = data.test.x, data.test.y
    res = switch_accuracy(m, g, _Always(), x, y, 0, reference=(data.train.x, data.train.y), grid=2)
    n1, n0 = int((y[:, 0] == 0).sum()), int((y[:, 0] == 1).sum())
    assert res["to_1"]["n"] == n1 and res["to_0"]["n"] == n0
    assert res["to_1"]["mean"] == 1.0 and res["to_0"]["mean"] == 0.0 and len(res["to_1"]["per_candidate"]) == 4
    assert res["both"]["mean"] == pytest.approx(n1 / (n1 + n0))
    assert res["to_1"]["spread"] > 0
    assert res["to_1"]["unswitched"] == 1.0 and res["to_0"]["unswitched"] == 0.0  # the plain reconstructions


def test_switch_from_the_command_line_writes_once(tmp_path, capsys):
    data = labelled_data(k=1)
    run = pyro_vaes.fit(
        model="csvae",
        dataset=data,
        data="linear-gaussian",
        steps=2,
        batch_size=8,
        eval_every=2,
        checkpoint_every=2,
        eval_batches=1,
        progress=False,
        figures=False,
        out=tmp_path / "run",
        model_args={"latent_dim": 2, "hidden": 8},
        guide_args={"hidden": 8},
        objective_args={"adversary_hidden": 8},
    )
    from pyro_vaes.analysis.switch import write_switch

    path = write_switch(run, "a0", 1, n=3, grid=2)
    saved = torch.load(path)
    assert path.suffix == ".pt" and saved["switched"].shape == (3, 4, D)
    with pytest.raises(FileExistsError, match="exists; pass --overwrite"):
        write_switch(run, "a0", 1, n=3)
    assert write_switch(run, "a0", 1, n=2, overwrite=True, grid=2) == path
    with pytest.raises(ValueError, match="unknown attribute 'glasses'"):
        write_switch(run, "glasses", 1, out=tmp_path / "x.pt")
    # the registered swissroll data from the CLI: fit, then switch, then refuse to overwrite
    args = [
        "fit",
        "csvae",
        "--data",
        "swissroll",
        "--data-arg",
        "n_train=64",
        "--data-arg",
        "n_test=32",
        "--steps",
        "2",
        "--batch-size",
        "16",
        "--quiet",
        "--no-figures",
        "--model-arg",
        "hidden=8",
        "--guide-arg",
        "hidden=8",
        "--out",
        str(tmp_path / "swiss"),
    ]
    assert main(args) == 0, capsys.readouterr().err
    out = tmp_path / "s.pt"
    assert (
        main(
            [
                "switch",
                str(tmp_path / "swiss"),
                "--attribute",
                "x0>=10",
                "--to",
                "1",
                "-n",
                "2",
                "--grid",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert torch.load(out)["switched"].shape == (2, 4, 3)
    assert main(["switch", str(tmp_path / "swiss"), "--attribute", "x0>=10", "--to", "1", "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err


# -- the CelebA subsets (real data) --------------------------------------------------------------------------------
@pytest.mark.data
def test_celeba_facial_hair_label_and_the_paper_subsets(shared_data):
    from pyro_vaes.data import load_dataset
    from pyro_vaes.data.celeba_csvae import _select

    full = load_dataset(
        "celeba", root=str(shared_data), labels="Eyeglasses,Facial_Hair,Goatee,Mustache,No_Beard", size=8
    )
    y = torch.cat([full.train.y, full.test.y])
    assert full.label_names[1] == "Facial_Hair"
    assert torch.equal(y[:, 1], ((y[:, 2] == 1) | (y[:, 3] == 1) | (y[:, 4] == 0)).long())
    assert int(y[:, 1].sum()) == 778  # the shared subset: 778 of 4,559 faces have a beard, mustache or goatee
    two = [ArraySplit(s.x, s.y[:, :2]) for s in (full.train, full.test)]
    for part in two:
        picked = {name: _select(part, name, 7) for name in ("glasses", "facial-hair", "glasses-facial-hair")}
        for name, col, ratio in (("glasses", 0, 2), ("facial-hair", 1, 1)):
            sub = picked[name]
            assert int(sub.y.sum()) == int(part.y[:, col].sum())  # every positive of the split is kept
            assert int((sub.y == 0).sum()) == ratio * int(sub.y.sum())  # and ratio x as many negatives
        both = picked["glasses-facial-hair"]  # the union of the two subsets' images, both labels
        assert len(both) == len(torch.unique(torch.cat([picked["glasses"].x, picked["facial-hair"].x]), dim=0))
    d = load_dataset("celeba-csvae", root=str(shared_data), subset="glasses-facial-hair", size=8)
    assert d.label_names == ["Eyeglasses", "Facial_Hair"] and d.label_kind() == ("binary", 2)
    with pytest.raises(ValueError, match="unknown CelebA subset"):
        load_dataset("celeba-csvae", root=str(shared_data), subset="hats")


# -- the experiments at their tiny scale ---------------------------------------------------------------------------
def test_swissroll_experiment_writes_its_table_and_figure(tmp_path):
    from pyro_vaes.registry import EXPERIMENTS

    table = EXPERIMENTS.get("csvae-swissroll")(out=tmp_path, scale="tiny", overrides={"steps": 4})
    row = table["rows"][0]
    for key in ("z_accuracy", "w_accuracy", "z_balanced_accuracy", "switch_to_1_grid_mean", "switch_to_0_centre"):
        assert 0.0 <= row[key] <= 1.0
    assert (tmp_path / "projections.png").exists() and (tmp_path / "results.md").exists()
    assert "--set steps=4" in table["command"] and (tmp_path / "runs" / "csvae-seed0" / "checkpoint.pt").exists()
    # the paper's likelihood (σ² = ½, as every CSVAE experiment), not one chosen from the data's scale
    config = json.loads((tmp_path / "runs" / "csvae-seed0" / "config.json").read_text())
    assert config["model_args"]["likelihood"] == "gaussian" and config["model_args"]["obs_scale"] == math.sqrt(0.5)


@pytest.mark.slow
@pytest.mark.data
def test_celeba_experiment_runs_at_tiny_scale(tmp_path, shared_data, monkeypatch):
    from pyro_vaes.registry import EXPERIMENTS

    monkeypatch.setenv("PYRO_VAES_CACHE", str(tmp_path / "cache"))
    table = EXPERIMENTS.get("csvae-celeba")(out=tmp_path, scale="tiny", data_root=str(shared_data))
    entry = table["subsets"]["glasses-facial-hair"]
    assert set(entry["models"]) == {"vae", "condvae", "condvae-info", "csvae"}
    assert (tmp_path / "switch-glasses-facial-hair-both.png").exists()
    again = EXPERIMENTS.get("csvae-celeba")(
        out=tmp_path, scale="tiny", data_root=str(shared_data), overrides={"models": ["csvae"], "reuse_runs": True}
    )
    assert again["subsets"]["glasses-facial-hair"]["models"]["csvae"]["reused"]
    assert (
        main(
            [
                "switch",
                str(tmp_path / "runs" / "glasses-facial-hair-csvae-seed0"),
                "--attribute",
                "Eyeglasses",
                "--to",
                "1",
                "-n",
                "2",
                "--grid",
                "2",
                "--out",
                str(tmp_path / "g.png"),
            ]
        )
        == 0
    )
