"""The contract every registered model, guide and objective keeps (docs/design.md), checked for all of them.

A model, guide or objective joins these tests by registering: the cases are read from the registries, each built
from its declared ``example_shape`` / ``example_args``, on binary data of that shape with ground-truth factors and,
for label-conditioned models, labels of the kind the model declares.
"""

from __future__ import annotations

import pyro.poutine as poutine
import pytest
import torch
from helpers import example_data
from pyro.poutine.util import site_is_subsample

import pyro_vaes
from pyro_vaes.engine import Trainer, build, build_component, objectives_for
from pyro_vaes.guides.base import posterior_means
from pyro_vaes.metrics.batch_classification import batch_features
from pyro_vaes.metrics.factor_vae_metric import factor_vae_metric, representation
from pyro_vaes.metrics.mig import mig
from pyro_vaes.metrics.reconstruction import reconstruction_error
from pyro_vaes.registry import GUIDES, MODELS, OBJECTIVES, guides_for

PAIRS = [(m, g) for m in MODELS.names() for g in (guides_for(m) or [None])]
CASES = [(m, g, o) for m, g in PAIRS for o in objectives_for(m, g)]


def _ids(case):
    return "/".join(str(c) for c in case)


def _config(model, guide, objective, **kw):
    objective = objective or (guide and GUIDES.get(guide).default_objective) or MODELS.get(model).default_objective
    return dict(
        model=model,
        guide=guide,
        objective=objective,
        data="linear-gaussian",
        model_args=dict(MODELS.get(model).example_args),
        guide_args=dict(GUIDES.get(guide).example_args) if guide else {},
        objective_args=dict(OBJECTIVES.get(objective).example_args),
        batch_size=8,
        eval_batches=1,
        figures=False,
        **kw,
    )


def _data(model):
    cls = MODELS.get(model)
    return example_data(cls.example_shape, cls.labels)


def _state(*modules):
    """Every state_dict entry (parameters and buffers) of ``modules``, cloned."""
    return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules if m is not None]


def _assert_same_state(before, after):
    assert len(before) == len(after), f"{len(before)} modules before, {len(after)} after"
    for a, b in zip(before, after, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{k} changed"


def test_every_model_has_cases():
    assert {m for m, _, _ in CASES} == set(MODELS.names())


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_one_engine_step_changes_parameters(case, tmp_path):
    model, guide, objective = case
    data = _data(model)
    from pyro_vaes.config import FitConfig

    trainer = Trainer(
        build(FitConfig(**_config(model, guide, objective, steps=1, eval_every=1, checkpoint_every=1)), data),
        tmp_path,
        progress=False,
    )
    before = [p.detach().clone() for p in trainer.learner.all_parameters()]
    trainer.fit()
    after = list(trainer.learner.all_parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    for name, net in trainer.learner.auxiliaries.items():  # every auxiliary network is stepped too
        n = sum(1 for _ in net.parameters())
        idx = [i for i, p in enumerate(trainer.learner.all_parameters()) if any(p is q for q in net.parameters())]
        assert n and any(not torch.equal(before[i], after[i]) for i in idx), name


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One short fit per model/guide pair (its default objective), kept for the read-only checks."""
    runs = {}

    def get(model, guide):
        if (model, guide) not in runs:
            data = _data(model)
            out = tmp_path_factory.mktemp(f"{model}-{guide}")
            run = pyro_vaes.fit(
                **_config(model, guide, None, steps=2, eval_every=2, checkpoint_every=2),
                dataset=data,
                out=out / "run",
                progress=False,
            )
            runs[(model, guide)] = (run, data)
        return runs[(model, guide)]

    return get


@pytest.mark.parametrize("pair", PAIRS, ids=_ids)
def test_evaluation_plots_and_metrics_change_no_state(pair, fitted, tmp_path):
    """Held-out loss, evaluate, plot and every metric: no parameter or buffer (BatchNorm statistics) changes,
    nor any module's train/eval mode."""
    run, data = fitted(*pair)
    networks = [n.module for n in run.parts.objective.networks().values()]
    modules = [run.model, run.guide, *networks]
    for m in modules:
        if m is not None:
            m.train()
    before = _state(*modules)
    from pyro_vaes.config import FitConfig

    trainer = Trainer(build(FitConfig(**run.config.to_dict()), data), tmp_path, progress=False)
    trainer.learner.model.load_state_dict(run.model.state_dict())
    trainer.heldout_loss()
    trainer_state = _state(trainer.learner.model)
    _assert_same_state(_state(run.model), trainer_state)
    run.evaluate(num_particles=3, write=False)
    run.plot("all", out=tmp_path / "figures")
    if run.guide is not None:
        reconstruction_error(run.model, run.guide, data.test)
        codes = representation(run.model, run.guide)(data.test.x)
        mig(codes, data.test.factors) if codes.shape[1] > 1 else None
        factor_vae_metric(
            representation(run.model, run.guide),
            data.factors,
            data.train.x,
            batch_size=8,
            num_train=4,
            num_eval=4,
            num_variance_estimate=16,
        )
        batch_features(run.model, run.guide, [data.test.x[:8], data.test.x[8:16]])
    _assert_same_state(before, _state(*modules))
    assert all(m.training for m in modules if m is not None)


@pytest.mark.parametrize("pair", PAIRS, ids=_ids)
def test_save_then_load_gives_equal_state(pair, fitted):
    run, data = fitted(*pair)
    loaded = pyro_vaes.load(run.run_dir, dataset=data)
    nets = lambda r: [n.module for n in r.parts.objective.networks().values()]  # noqa: E731
    _assert_same_state(_state(run.model, run.guide, *nets(run)), _state(loaded.model, loaded.guide, *nets(loaded)))


@pytest.mark.parametrize("pair", PAIRS, ids=_ids)
def test_encode_decode_sample_shapes(pair):
    model_name, guide_name = pair
    cls = MODELS.get(model_name)
    data = _data(model_name)
    x, y = data.test.batch(torch.arange(6))
    extra = {"num_classes": 3} if cls.labels == "class" else {"num_labels": 2} if cls.labels == "binary" else {}
    model = build_component(MODELS, model_name, cls.example_shape, **cls.example_args, **extra)
    assert model.code_site in model.latent_sites and set(model.global_sites) <= set(model.latent_sites)
    assert set(model.enumerated_sites) <= set(model.latent_sites)
    with torch.no_grad():
        prior = model.sample_prior(5)
        assert set(model.latent_sites) <= set(prior)
        assert prior[model.code_site].shape == (5, model.latent_dim)
        for site in model.global_sites:
            assert prior[site].dim() == 1  # one draw of a batch-level latent for the n items
        assert model.sample(5).shape == (5, *model.input_shape)
        if cls.labels is not None:
            assert model.sample(3, y[:3]).shape == (3, *model.input_shape)
        assert model.decode(prior, prior.get("y")).shape == (5, *model.input_shape)
    if guide_name is None:
        return
    guide = build_component(GUIDES, guide_name, model, **GUIDES.get(guide_name).example_args)
    with torch.no_grad():
        enc = guide.encode(x, y)
    assert set(enc) <= set(model.latent_sites)
    means = posterior_means(enc)
    assert means[model.code_site].shape == (6, model.latent_dim)
    for site in model.global_sites:
        assert means[site].dim() == 1
    with torch.no_grad():
        assert model.decode(means, y).shape == x.shape
    # the guide's sample sites are latents of the model; what it leaves out, the model sums out
    guide_trace = poutine.trace(guide.guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x, y)

    def latent(tr):
        return {
            n
            for n, s in tr.nodes.items()
            if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)
        }

    assert latent(model_trace) == set(model.latent_sites)
    assert latent(model_trace) - latent(guide_trace) <= set(model.enumerated_sites)
    # besides what the model sums out, a guide may enumerate the label site y of a class-conditioned model (latent
    # only when no labels are given, e.g. N-VAE's nvae-enum)
    label_site = {"y"} if cls.labels == "class" else set()
    assert set(guide.enumerated_sites) <= set(model.enumerated_sites) | label_site


def test_incompatible_objectives_are_refused_before_data_loads(tmp_path):
    """Every (pair, objective) that does not fit is refused by resolve_config, naming the objectives that do."""
    for model, guide in PAIRS:
        fits = objectives_for(model, guide)
        for objective in set(OBJECTIVES.names()) - set(fits):
            with pytest.raises(
                ValueError,
                match=f"objective {objective!r} does not fit model {model!r}.*Objectives that fit: {', '.join(fits)}",
            ):
                pyro_vaes.fit(
                    model=model,
                    guide=guide,
                    objective=objective,
                    data="mnist",
                    data_root=str(tmp_path / "absent"),
                    out=tmp_path / "r",
                    progress=False,
                )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("pair", [p for p in PAIRS if p[1] is not None], ids=_ids)
def test_particles_are_drawn_once_and_replayed_in_chunks(pair, monkeypatch):
    """Evaluation draws the guide's particles in one pass and replays the model on them chunk by chunk: the chunk
    size changes nothing (same draws, same numbers), and with guide passes capped at 5 particles a run of 12
    particles calls the guide 3 times and gets 12 distinct draws."""
    from pyro_vaes.analysis import evaluation

    model_name, guide_name = pair
    cls = MODELS.get(model_name)
    x, y = _data(model_name).test.batch(torch.arange(4))
    extra = {"num_classes": 3} if cls.labels == "class" else {"num_labels": 2} if cls.labels == "binary" else {}
    model = build_component(MODELS, model_name, cls.example_shape, **cls.example_args, **extra).eval()
    guide = build_component(GUIDES, guide_name, model, **GUIDES.get(guide_name).example_args).eval()
    results = []
    for chunk in (12, 5, 1):
        torch.manual_seed(7)
        est = evaluation.particle_estimates(model, guide, x, y, num_particles=12, chunk=chunk, keep_values=True)
        results.append(est)
        assert sum(v.shape[0] for v in est.values[model.code_site]) == 12
    for est in results[1:]:
        for a, b in [
            (est.log_likelihood, results[0].log_likelihood),
            (est.elbo, results[0].elbo),
            (est.reconstruction, results[0].reconstruction),
            *((est.kl[k], results[0].kl[k]) for k in est.kl),
        ]:
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-4), (a, b)
    calls = []
    original = guide.guide
    monkeypatch.setattr(guide, "guide", lambda *a, **k: calls.append(1) or original(*a, **k))
    monkeypatch.setattr(evaluation, "GUIDE_ROWS", 5 * x.shape[0])
    est = evaluation.particle_estimates(model, guide, x, y, num_particles=12, chunk=2, keep_values=True)
    assert len(calls) == 3
    codes = torch.cat(est.values[model.code_site]).reshape(12, -1)
    assert len({tuple(r.tolist()) for r in codes}) == 12 and torch.isfinite(est.log_likelihood).all()
