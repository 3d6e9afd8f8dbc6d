"""Every registered model/guide pair: matching sample sites, shapes, a training step that learns."""

from __future__ import annotations

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.poutine.util import site_is_subsample

from pyro_vaes.engine import build_component
from pyro_vaes.registry import GUIDES, MODELS, guides_for

PAIRS = [(m, g) for m in MODELS.names() for g in guides_for(m)]


def _latent_sites(trace, enumerated_ok=False):
    out = set()
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        if enumerated_ok and site["infer"].get("enumerate"):
            continue
        out.add(name)
    return out


def _build(model_name, guide_name):
    entry = MODELS.entry(model_name)
    shape = entry.meta.get("test_shape", (1, 28, 28))
    model = build_component(MODELS, model_name, shape, **entry.meta.get("test_args", {}))
    guide = build_component(GUIDES, guide_name, model)
    x = (torch.rand(6, *shape) < 0.3).float()
    return model, guide, x


@pytest.mark.parametrize("model_name,guide_name", PAIRS)
def test_guide_sites_match_model_latent_sites(model_name, guide_name):
    model, guide, x = _build(model_name, guide_name)
    guide_trace = poutine.trace(guide.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x)
    guide_latents = _latent_sites(guide_trace)
    model_latents = _latent_sites(model_trace)
    enumerated = model_latents - _latent_sites(model_trace, enumerated_ok=True)
    assert model_latents == set(model.latent_sites)
    assert guide_latents <= model_latents  # every guide site is a latent of the model
    assert model_latents - guide_latents <= enumerated  # what the guide leaves out, the model sums out


@pytest.mark.parametrize("model_name", MODELS.names())
def test_model_exposes_decode_and_prior(model_name):
    model, guide, x = _build(model_name, guide_name=guides_for(model_name)[0])
    with torch.no_grad():
        xs = model.sample(3)
    assert xs.shape == (3, *model.input_shape)
    enc = guide.encode(x)
    assert "loc" in enc and enc["loc"].shape[0] == x.shape[0]
    from pyro_vaes.evaluation import decode_latents

    with torch.no_grad():
        assert decode_latents(model, enc).shape == x.shape  # with the batch-level latent where there is one


def test_vae_trace_shapes():
    model, guide, x = _build("vae", "diagonal")
    tr = poutine.trace(poutine.replay(model.model, trace=poutine.trace(guide.guide).get_trace(x))).get_trace(x)
    tr.compute_log_prob()
    assert tr.nodes["z"]["value"].shape == (6, model.latent_dim)
    assert tr.nodes["z"]["log_prob"].shape == (6,)
    assert tr.nodes["x"]["log_prob"].shape == (6,)


def test_wrong_shape_names_expected_shape():
    model, guide, x = _build("vae", "diagonal")
    with pytest.raises(ValueError, match=r"expects data of shape \(batch, 1, 28, 28\), got \(6, 784\)"):
        model.model(x.reshape(6, -1))


@pytest.mark.parametrize("guide_name", guides_for("vae"))
def test_vae_guides_run_under_vectorized_particles(guide_name):
    model, guide, x = _build("vae", guide_name)
    loss = pyro.infer.Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    assert torch.isfinite(loss.differentiable_loss(model.model, guide.guide, x))


@pytest.mark.parametrize("model_name,guide_name", PAIRS)
def test_generic_evaluation_runs_for_every_pair(model_name, guide_name):
    """Importance sampling, ELBO and KLs through traces, also for models that enumerate in training."""
    from pyro_vaes.data import ArraySplit
    from pyro_vaes.evaluation import evaluate

    model, guide, x = _build(model_name, guide_name)
    res = evaluate(model, guide, ArraySplit(x), num_particles=8, batch_size=6)
    assert all(torch.isfinite(torch.tensor(res[k])) for k in ("log_likelihood", "elbo", "reconstruction"))
    assert res["log_likelihood"] >= res["elbo"] - 1.0  # IS (8 draws) is at least the ELBO up to MC noise
