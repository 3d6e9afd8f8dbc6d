"""The training step's fast paths (pyro_vaes/plumbing/fastpaths.py) change no number that matters: gradients bitwise those of
Pyro's own paths for every registered model, guide and objective, so parameters after any number of steps are bit
for bit the same; loss values equal to float32 rounding.

Each is compared with Pyro's path on the same modules and the same random draws: the plate fast paths with the
plates as Pyro runs them, ``LeanTrace_ELBO`` with ``Trace_ELBO`` (one particle, several, vectorised or not, a
non-reparameterised site, a KL weight), ``FixedScaleNormal`` with ``Normal``, and whole training runs with every
fast path on against ``fastpaths.disabled()``. The one fast path that is not bitwise, ``LeanTraceEnum_ELBO``, is
checked against ``TraceEnum_ELBO`` in float64 (and its runs to float32 rounding).
"""

from __future__ import annotations

import contextlib

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from test_contract import CASES, _config, _data, _ids
from torch import nn

import pyro_vaes
from pyro_vaes.config import FitConfig
from pyro_vaes.engine import build
from pyro_vaes.objectives.base import scale_latents
from pyro_vaes.plumbing import fastpaths
from pyro_vaes.plumbing.params import param_registration


def _losses_and_grads(parts, x, y, seed=0):
    """Every optimizer's loss on this batch and the gradients of their sum, from one seed."""
    obj = parts.objective
    params = [
        p
        for m in (parts.model, parts.guide, *(n.module for n in obj.networks().values()))
        if m is not None
        for p in m.parameters()
    ]
    torch.manual_seed(seed)
    with pyro.validation_enabled(False), param_registration(False):
        losses = [obj.loss(x, y)] + [obj.network_loss(n, x, y) for n in obj.networks()]
    grads = torch.autograd.grad(sum(losses), params, allow_unused=True)
    return [float(v.detach()) for v in losses], grads


def _assert_bitwise(ga, gb):
    for a, b in zip(ga, gb, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(a, b)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_plate_fast_paths_change_no_loss_and_no_gradient(case):
    model, guide, objective = case
    parts = build(FitConfig.from_dict(_config(model, guide, objective)), _data(model))
    x, y = parts.data.train.batch(torch.arange(8))
    la, ga = _losses_and_grads(parts, x, y)
    with fastpaths.plate_fastpaths():
        lb, gb = _losses_and_grads(parts, x, y)
    assert la == lb
    _assert_bitwise(ga, gb)


class _Tiny(nn.Module):
    """A small VAE-like pair with a Bernoulli latent the guide samples (no enumeration: a score-function site)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(5, 6)
        self.dec = nn.Linear(3, 5)

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            b = pyro.sample("b", dist.Bernoulli(0.3 * torch.ones(x.shape[0])))
            pyro.sample("x", dist.Normal(self.dec(torch.cat([z, b.unsqueeze(-1)], -1)), 1.0).to_event(1), obs=x)

    def guide(self, x):
        h = self.enc(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(h[:, :2], nn.functional.softplus(h[:, 2:4])).to_event(1))
            pyro.sample("b", dist.Bernoulli(logits=h[:, 4]))


@pytest.mark.parametrize("kind", ["reparameterised", "score-function", "particles", "vectorised", "kl-weight"])
def test_lean_trace_elbo_has_trace_elbos_gradients(kind):
    torch.manual_seed(0)
    net = _Tiny()
    x = torch.randn(7, 5)
    if kind == "reparameterised":
        model, guide = _reparam_pair(net)
    else:
        model, guide = net.model, net.guide
    args = {
        "particles": dict(num_particles=3),
        "vectorised": dict(num_particles=3, vectorize_particles=True, max_plate_nesting=1),
    }.get(kind, {})
    if kind == "kl-weight":
        model, guide = scale_latents(model, 0.3), scale_latents(guide, 0.3)
    out = []
    for cls in (Trace_ELBO, fastpaths.LeanTrace_ELBO):
        torch.manual_seed(1)
        with pyro.validation_enabled(False):
            loss = cls(**args).differentiable_loss(model, guide, x)
        out.append((loss, torch.autograd.grad(loss, list(net.parameters()))))
    (la, ga), (lb, gb) = out
    assert torch.allclose(la, lb, rtol=1e-6, atol=0)
    _assert_bitwise(ga, gb)


def _reparam_pair(net):
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample(
                "x", dist.Normal(net.dec(torch.cat([z, torch.ones(x.shape[0], 1)], -1)), 1.0).to_event(1), obs=x
            )

    def guide(x):
        h = net.enc(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(h[:, :2], nn.functional.softplus(h[:, 2:4])).to_event(1))

    return model, guide


def test_fixed_scale_normal_is_normal_bitwise():
    loc = torch.randn(4, 3, requires_grad=True)
    x = torch.randn(4, 3)
    a, b = dist.Normal(loc, 0.45), fastpaths.FixedScaleNormal(loc, 0.45)
    la, lb = a.to_event(1).log_prob(x), b.to_event(1).log_prob(x)
    assert torch.equal(la, lb)
    assert torch.equal(*(torch.autograd.grad(loss.sum(), loc)[0] for loss in (la, lb)))
    torch.manual_seed(2)
    ra = a.rsample()
    torch.manual_seed(2)
    assert torch.equal(ra, b.rsample())
    e = b.expand(torch.Size([5, 4, 3]))
    assert e.batch_shape == (5, 4, 3) and torch.equal(e.log_prob(x), a.expand([5, 4, 3]).log_prob(x))
    assert b.variance.shape == b.stddev.shape == b.entropy().shape == (4, 3)
    assert torch.allclose(b.entropy(), a.entropy())


@pytest.mark.parametrize(
    "model, args",
    [
        ("vae", {"latent_dim": 3, "hidden": 16, "likelihood": "gaussian"}),  # elbo: Lean ELBO, plates, Gaussian
        ("ugvae", {"latent_dim": 2, "beta_dim": 3, "K": 3, "hidden": 16, "arch": "k_vae"}),  # enum-elbo, Gaussian
        ("mlvae", {"latent_dim": 2, "c_dim": 3, "hidden": 16}),  # elbo with a batch-level latent
        ("chyvae", {"latent_dim": 3, "nu": 6.0, "hidden": 16, "likelihood": "bernoulli"}),  # closed form
    ],
)
def test_training_with_the_fast_paths_gives_the_same_parameters(tmp_path, model, args):
    """6 steps (the first with Pyro's checks on and no fast path), every fast path on against every one off."""
    data = _data(model)
    params = []
    for name, ctx in (("fast", contextlib.nullcontext()), ("pyro", fastpaths.disabled())):
        with ctx:
            run = pyro_vaes.fit(
                dict(
                    model=model,
                    data="linear-gaussian",
                    model_args=dict(args),
                    steps=6,
                    batch_size=8,
                    eval_every=6,
                    checkpoint_every=6,
                    eval_batches=1,
                    figures=False,
                ),
                out=tmp_path / name,
                dataset=data,
                progress=False,
            )
        params.append([p.detach().clone() for m in (run.model, run.guide) for p in m.parameters()])
    if model == "ugvae":  # LeanTraceEnum_ELBO: gradients equal to float32 rounding, not bitwise (see below)
        for a, b in zip(*params, strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-5), (a - b).abs().max()
    else:
        _assert_bitwise(*params)
    assert fastpaths.active()


ENUM_PAIRS = [
    ("ugvae", "ugvae-structured", True),
    ("ugvae", "ugvae-meanfield", True),
    ("gmvae", "gmvae-structured", True),
    ("ugvae", "ugvae-marginal", False),
    ("mlvae", "mlvae-product", False),
]


@pytest.mark.parametrize("model, guide, lean", ENUM_PAIRS, ids=lambda v: str(v))
def test_lean_trace_enum_elbo_is_trace_enum_elbo(model, guide, lean):
    """``enum-elbo`` through LeanTraceEnum_ELBO against TraceEnum_ELBO on the same draws. Where the guide enumerates
    one leaf site (UG-VAE's and GMVAE's d) the lean sum is used: in float64 the loss and every gradient agree to
    1e-10 (in float32 they differ by rounding: a product and a sum instead of an einsum contraction). Elsewhere
    (d summed out by the model; nothing enumerated) it is TraceEnum_ELBO's own computation, bit for bit. The first,
    checked step sums the same way as the lean steps, so a resumed run repeats the uninterrupted one bit for bit."""
    cfg = _config(model, guide, "enum-elbo")
    parts = build(FitConfig.from_dict(cfg), _data(model))
    x, y = parts.data.train.batch(torch.arange(8))
    obj = parts.objective
    assert isinstance(obj.elbo, fastpaths.LeanTraceEnum_ELBO)
    parts.model.double(), parts.guide.double()
    x = x.double()
    params = [p for m in (parts.model, parts.guide) for p in m.parameters()]

    def loss_and_grads(checked, ctx=contextlib.nullcontext):
        torch.manual_seed(3)
        with ctx(), pyro.validation_enabled(checked), param_registration(False):
            loss = obj.loss(x, y)
        return loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)

    first = loss_and_grads(True)
    assert obj.elbo._lean is lean
    later = loss_and_grads(False)
    pyro_path = loss_and_grads(False, fastpaths.disabled)
    assert torch.equal(first[0], later[0])
    _assert_bitwise(first[1], later[1])
    obj.elbo._lean = None  # a first call without Pyro's checks decides the same way
    unchecked_first = loss_and_grads(False)
    assert obj.elbo._lean is lean and torch.equal(unchecked_first[0], later[0])
    _assert_bitwise(unchecked_first[1], later[1])
    if not lean:
        assert torch.equal(later[0], pyro_path[0])
        _assert_bitwise(later[1], pyro_path[1])
        return
    assert torch.allclose(later[0], pyro_path[0], rtol=1e-12)
    scale = max(float(b.abs().max()) for b in pyro_path[1] if b is not None)
    for a, b in zip(later[1], pyro_path[1], strict=True):
        assert (a is None) == (b is None)
        if a is not None:  # relative to the largest gradient: a gradient that is ~0 is rounding noise on both sides
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12 * scale), (a - b).abs().max()
