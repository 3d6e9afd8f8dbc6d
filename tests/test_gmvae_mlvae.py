"""The UG-VAE baselines: GMVAE (per-sample w, d, z) and ML-VAE (a group latent shared by the batch)."""

from __future__ import annotations

import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch.distributions import Normal

from pyro_vaes.guides.gmvae import GMVAEGuide
from pyro_vaes.guides.mlvae import MLVAEGuide
from pyro_vaes.models.gmvae import GMVAE
from pyro_vaes.models.mlvae import MLVAE


def _step_changes_everything(model, guide, elbo, x):
    params = list(model.parameters()) + list(guide.parameters())
    before = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=1e-2)
    loss = elbo.differentiable_loss(model.model, guide.guide, x)
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    assert all(not torch.equal(a, p.detach()) for a, p in zip(before, params))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)], ids=["k_vae", "beta_vae"])
def test_gmvae_trains_with_traceenum(shape):
    model = GMVAE(shape, latent_dim=3, w_dim=4, K=3, hidden=32)
    guide = GMVAEGuide(model)
    x = torch.rand(6, *shape)
    _step_changes_everything(model, guide, TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False), x)
    enc = guide.encode(x)
    assert enc["z"]["loc"].shape == (6, 3) and enc["w"]["loc"].shape == (6, 4) and enc["d"]["probs"].shape == (6, 3)
    from pyro_vaes.metrics.batch_classification import batch_features

    assert batch_features(model, guide, [x]).shape == (1, 7)  # no batch-level latent: the pooled means of w and z


def test_gmvae_sites_are_all_per_sample():
    model = GMVAE((1, 28, 28), latent_dim=3, w_dim=4, K=5, hidden=32)
    guide = GMVAEGuide(model)
    x = torch.rand(6, 1, 28, 28)
    gt = poutine.trace(poutine.enum(guide.guide, first_available_dim=-2)).get_trace(x)
    mt = poutine.trace(poutine.replay(model.model, trace=gt)).get_trace(x)
    for name in ("w", "d", "z", "x"):
        assert [f.name for f in mt.nodes[name]["cond_indep_stack"]] == ["data"]
    assert gt.nodes["d"]["value"].shape == (5, 1)
    assert mt.nodes["z"]["fn"].batch_shape == (5, 6)  # K networks of w_i indexed by enumerated d_i
    assert model.global_sites == ()


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)], ids=["k_vae", "beta_vae"])
def test_mlvae_trains_with_trace_and_enum_elbo(shape):
    model = MLVAE(shape, latent_dim=3, c_dim=4, hidden=32)
    guide = MLVAEGuide(model)
    x = torch.rand(6, *shape)
    _step_changes_everything(model, guide, Trace_ELBO(max_plate_nesting=1), x)
    _step_changes_everything(model, guide, TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False), x)


def test_mlvae_group_latent_once_per_batch_and_elbo_by_hand():
    torch.manual_seed(0)
    model = MLVAE((1, 6, 6), latent_dim=2, c_dim=3, hidden=16).double()
    guide = MLVAEGuide(model).double()
    x = torch.rand(5, 1, 6, 6, dtype=torch.float64)
    gt = poutine.trace(guide.guide).get_trace(x)
    mt = poutine.trace(poutine.replay(model.model, trace=gt)).get_trace(x)
    assert mt.nodes["c"]["value"].shape == (3,) and mt.nodes["c"]["cond_indep_stack"] == ()
    assert mt.nodes["s"]["value"].shape == (5, 2)
    s, c = gt.nodes["s"]["value"], gt.nodes["c"]["value"]
    s_loc, s_scale, c_loc, c_scale = guide.params(x)
    recon = model.observation(model.decoder(torch.cat([s, c.expand(5, -1)], -1))).log_prob(x).sum()
    std = Normal(0.0, 1.0)
    expected = -(
        recon
        + std.log_prob(s).sum()
        + std.log_prob(c).sum()
        - Normal(s_loc, s_scale).log_prob(s).sum()
        - Normal(c_loc, c_scale).log_prob(c).sum()
    )
    loss = Trace_ELBO(max_plate_nesting=1).differentiable_loss(model.model, poutine.replay(guide.guide, trace=gt), x)
    assert torch.allclose(loss, expected, rtol=1e-10)


def test_baselines_sample_and_decode():
    g, m = (
        GMVAE((1, 28, 28), latent_dim=3, w_dim=4, K=3, hidden=32),
        MLVAE((1, 28, 28), latent_dim=3, c_dim=4, hidden=32),
    )
    assert g.sample(4).shape == (4, 1, 28, 28) and m.sample(4).shape == (4, 1, 28, 28)
    assert g.sample_prior(4, d=torch.tensor([0, 1, 2, 0]))["z"].shape == (4, 3)
