"""FactorVAE (permutation, discriminator, gradient hygiene) and β-VAE-B (capacity loss by hand)."""

from __future__ import annotations

import pyro
import pyro.poutine as poutine
import pytest
import torch

import pyro_vaes
from pyro_vaes.data.base import ArraySplit, VAEData
from pyro_vaes.objectives.factor_vae import Discriminator, discriminator_loss, permute_dims, tc_estimate
from pyro_vaes.registry import GUIDES, MODELS, OBJECTIVES


def _vae(d=3, n_in=12):
    model = MODELS.get("vae")((n_in,), latent_dim=d, arch="mlp", hidden=16, likelihood="bernoulli")
    guide = GUIDES.get("diagonal")(model, hidden=16)
    return model, guide


def _binary(n=8, n_in=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, n_in), 0.4), generator=g)


# -- the permutation -------------------------------------------------------------------------------------------
def test_permutation_keeps_each_column_multiset_and_breaks_dependence():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, generator=g)
    z = torch.stack([a, a, -a, torch.randn(2000, generator=g)], 1)  # columns 0-2 perfectly dependent
    zp = permute_dims(z, torch.Generator().manual_seed(1))
    assert zp.shape == z.shape
    for j in range(z.shape[1]):  # same multiset per column (each marginal preserved)
        assert torch.equal(zp[:, j].sort().values, z[:, j].sort().values)
    assert not torch.equal(zp[:, 0], z[:, 0])  # rows recombined ...
    corr = torch.corrcoef(zp.T)
    assert abs(float(corr[0, 1])) < 0.1 and abs(float(corr[0, 2])) < 0.1  # ... and dependence gone
    # the wrong axis (permuting rows as a whole) would keep corr = 1: guard against it
    assert float(torch.corrcoef(z.T)[0, 1]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        permute_dims(torch.zeros(3))


# -- the discriminator ----------------------------------------------------------------------------------------
def _train_disc(make_codes, steps=150, d=4):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: one thread is faster on busy shared cores
    try:
        return _train_disc_inner(make_codes, steps, d)
    finally:
        torch.set_num_threads(threads)


def _train_disc_inner(make_codes, steps, d):
    torch.manual_seed(0)
    disc = Discriminator(d, hidden=64, layers=3)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(steps):
        z = make_codes(256)
        opt.zero_grad()
        discriminator_loss(disc, z, permute_dims(z)).backward()
        opt.step()
    with torch.no_grad():
        return float(tc_estimate(disc(make_codes(4000))).mean())


def test_tc_estimate_near_zero_on_independent_codes_and_positive_on_dependent_codes():
    """Independent N(0, I) codes: q(z) = Π q(z_j), so the best D outputs 1/2 and TC ≈ 0. Dependent codes
    (z = A ε with strong correlations; true TC = −½ log det corr > 1 nat) must give a clearly positive
    estimate, which catches a flipped label or sign convention."""
    tc_indep = _train_disc(lambda n: torch.randn(n, 4))
    mix = torch.tensor([[1.0, 0.9, 0.9, 0.0], [0.0, 0.4, 0.0, 0.0], [0.0, 0.0, 0.4, 0.0], [0.0, 0.0, 0.0, 1.0]])
    tc_dep = _train_disc(lambda n: torch.randn(n, 4) @ mix)
    assert abs(tc_indep) < 0.15, tc_indep
    assert tc_dep > 0.5, tc_dep


def test_default_discriminator_is_kim_and_mnih():
    disc = Discriminator(10)
    linears = [m for m in disc.net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 7 and all(m.out_features == 1000 for m in linears[:-1]) and linears[-1].out_features == 2
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in disc.net) == 6


# -- gradient hygiene ---------------------------------------------------------------------------------------------
def test_gradients_main_step_leaves_d_alone_and_d_step_leaves_encoder_alone():
    model, guide = _vae()
    obj = OBJECTIVES.get("factor-vae")(gamma=10.0, disc_hidden=32, disc_layers=2).bind(model, guide)
    x = _binary()
    obj.loss(x).backward()
    # the TC term did reach the encoder ...
    assert guide.loc.weight.grad is not None and guide.loc.weight.grad.abs().sum() > 0
    # ... but wrote nothing into D
    assert all(p.grad is None for p in obj.discriminator.parameters())
    for p in list(model.parameters()) + list(guide.parameters()):
        p.grad = None
    obj.network_loss("discriminator", x).backward()
    assert all(p.grad is not None for p in obj.discriminator.parameters())
    for p in list(model.parameters()) + list(guide.parameters()):
        assert p.grad is None or float(p.grad.abs().sum()) == 0.0


def test_tc_term_changes_encoder_gradient():
    model, guide = _vae()
    x = _binary()
    grads = []
    for gamma in (0.0, 50.0):
        pyro.set_rng_seed(3)
        obj = OBJECTIVES.get("factor-vae")(gamma=gamma, disc_hidden=32, disc_layers=2).bind(model, guide)
        guide.zero_grad()
        torch.manual_seed(7)
        obj.loss(x).backward()
        grads.append(guide.loc.weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])


def test_factor_vae_trains_through_the_engine(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((64, 12), 0.4), generator=g)
    data = VAEData("toy", ArraySplit(x), ArraySplit(x[:16]))
    run = pyro_vaes.fit(
        model="vae",
        guide="diagonal",
        objective="factor-vae",
        data="shapes2d",
        dataset=data,
        model_args={"latent_dim": 3, "arch": "mlp", "hidden": 16},
        guide_args={"hidden": 16},
        objective_args={"gamma": 5.0, "disc_hidden": 32, "disc_layers": 2},
        steps=2,
        batch_size=16,
        eval_every=2,
        checkpoint_every=2,
        out=tmp_path / "run",
        progress=False,
        figures=False,
    )
    disc = run.parts.objective.discriminator
    from pyro_vaes.engine import Trainer, build

    trainer = Trainer(build(run.config, data), tmp_path / "unused", progress=False)
    assert trainer.order == ("main", "discriminator")
    assert trainer.aux_optimizers["discriminator"].param_groups[0]["betas"] == (0.5, 0.9)  # Kim & Mnih's Adam for D
    assert trainer.aux_optimizers["discriminator"].param_groups[0]["lr"] == run.config.aux_lr
    fresh = Discriminator(3, 32, 2)
    assert run.history and all(torch.isfinite(torch.tensor(r["test_loss"])) for r in run.history)
    assert disc is not None and sum(p.numel() for p in disc.parameters()) == sum(p.numel() for p in fresh.parameters())
    loaded = pyro_vaes.load(tmp_path / "run", dataset=data)
    for a, b in zip(disc.parameters(), loaded.parts.objective.discriminator.parameters()):
        assert torch.equal(a, b)


def test_factor_vae_refuses_models_it_cannot_fit_before_any_data_loads(tmp_path):
    """UG-VAE sums d out by enumeration, which FactorVAE's sampled ELBO cannot: refused by name, naming what fits,
    before the data is read (an unreadable data root would otherwise be the error)."""
    with pytest.raises(ValueError, match="objective 'factor-vae' does not fit model 'ugvae'.*Objectives that fit: "):
        pyro_vaes.fit(
            model="ugvae",
            objective="factor-vae",
            data="mnist",
            data_root=str(tmp_path / "absent"),
            out=tmp_path / "r",
            progress=False,
        )
    assert not (tmp_path / "r").exists()


# -- β-VAE-B ------------------------------------------------------------------------------------------------
def test_beta_vae_b_loss_equals_recon_plus_gamma_abs_kl_minus_c_by_hand():
    model, guide = _vae(d=2)
    x = _binary(n=5)
    obj = OBJECTIVES.get("beta-vae-b")(gamma=7.0, c_max=10.0, anneal_steps=100).bind(model, guide)
    for step, c in ((0, 0.0), (30, 3.0), (100, 10.0), (500, 10.0)):
        obj.at_step(step)
        assert obj.capacity == pytest.approx(c)
        torch.manual_seed(11)
        z = poutine.trace(guide.guide).get_trace(x).nodes["z"]["value"]  # the draw the loss will make
        with torch.no_grad():
            q = guide.encode(x)["z"]
            mu, s = q["loc"], q["scale"]
            recon = torch.distributions.Bernoulli(logits=model.decoder(z)).log_prob(x).sum()
            kl = (-s.log() + 0.5 * (s**2 + mu**2) - 0.5).sum()  # KL(N(mu, s^2) || N(0, 1)), summed
            hand = -recon + 5 * 7.0 * (kl / 5 - c).abs()
        torch.manual_seed(11)
        got = obj.loss(x)
        assert float(got.detach()) == pytest.approx(float(hand), rel=1e-5)


def test_beta_vae_b_argument_checks():
    with pytest.raises(ValueError):
        OBJECTIVES.get("beta-vae-b")(gamma=0)
    with pytest.raises(ValueError):
        OBJECTIVES.get("beta-vae-b")(c_max=-1)


# -- the handoff of codes from the main step to the discriminator's -------------------------------------------------
def test_discriminator_reads_the_main_steps_codes_of_an_equal_batch_else_fresh_draws():
    """The main loss hands its detached codes to the discriminator's step through ``objective.handoff``, matched by
    the batch's values (not the tensor object): the D-step of an equal batch reads them without drawing anything;
    each record serves once; a batch the main loss did not see gets fresh draws from the guide."""
    model, guide = _vae()
    obj = OBJECTIVES.get("factor-vae")(gamma=10.0, disc_hidden=16, disc_layers=1).bind(model, guide)
    x = _binary()
    torch.manual_seed(0)
    obj.loss(x)
    drawn = obj.last_terms.codes["z"].detach()
    state = torch.get_rng_state()
    z = obj.network_codes(x.clone())  # an equal batch, another tensor
    assert torch.equal(z, drawn) and not z.requires_grad
    assert torch.equal(torch.get_rng_state(), state)  # read, not drawn
    fresh = obj.network_codes(x)  # used up: drawn afresh
    assert not torch.equal(fresh, drawn) and not torch.equal(torch.get_rng_state(), state)
    # two shards stepped in one process (main, main, then D, D) each get their own codes
    x2 = _binary(seed=1)
    obj.loss(x)
    first = obj.last_terms.codes["z"].detach()
    obj.loss(x2)
    second = obj.last_terms.codes["z"].detach()
    assert torch.equal(obj.network_codes(x), first) and torch.equal(obj.network_codes(x2), second)


def test_discriminator_loss_of_the_same_step_equals_the_loss_on_the_main_steps_codes():
    model, guide = _vae()
    obj = OBJECTIVES.get("factor-vae")(gamma=10.0, disc_hidden=16, disc_layers=1).bind(model, guide)
    x = _binary()
    torch.manual_seed(1)
    obj.loss(x)
    z = obj.last_terms.codes["z"].detach()
    state = torch.get_rng_state()
    got = obj.network_loss("discriminator", x.clone())
    torch.set_rng_state(state)
    assert torch.equal(got, discriminator_loss(obj.discriminator, z, permute_dims(z)))
