"""The benchmark suite's hand-written losses (benchmarks/hand_losses.py) against the Pyro models: an independent
computation of the default loss of every model that has one registered, and what makes the suite's step ratios
like-for-like.

A hand loss is optional per model. For every registered one (default guide and objective, tiny sizes), on the same
modules: where both draw the same random numbers, the loss of every optimizer (main and auxiliary) and the main
loss's gradients agree to float rounding; where the Pyro step draws, before the numbers the bound reads, a sample
the bound never reads, the means over seeds agree within Monte-Carlo error. A model registered at run time with no
hand loss gets its row in the suite's step table ("no hand-written floor") with no edit in benchmarks/. Also: the
suite's timing loop runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import hand_losses  # noqa: E402
import suite  # noqa: E402

from pyro_vaes.guides.base import GuideBase  # noqa: E402
from pyro_vaes.models.base import ModelBase  # noqa: E402
from pyro_vaes.plumbing.params import register  # noqa: E402
from pyro_vaes.registry import GUIDES, MODELS  # noqa: E402


def test_every_hand_written_step_names_a_registered_model():
    """A hand loss for a model that is not (or no longer) in the zoo is a stale entry; the suite would skip it."""
    assert hand_losses.HAND, "no hand-written step registered at all"
    assert set(hand_losses.HAND) <= set(MODELS.names())


def test_a_second_hand_step_for_the_same_model_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        hand_losses.register("vae")(lambda m, g, aux, x, y: {})
    assert hand_losses.HAND["vae"].fn is hand_losses.vae


@pytest.mark.parametrize("model", sorted(hand_losses.HAND))
def test_hand_written_loss_equals_the_pyro_loss(model):
    cls = MODELS.get(model)
    data = suite.make_data(model, shape=cls.example_shape, n=64)
    tr = suite.make_trainer(model, data, batch_size=16, model_args=dict(cls.example_args))
    x, y = data.train.batch(suite.torch.arange(16))
    res = suite.check(tr, model, x, y, draws=40)
    assert res["ok"], res
    assert res["same_draws"] == hand_losses.HAND[model].same_draws


def test_a_hand_step_and_an_engine_step_move_the_same_modules_alike():
    """One step each from identical modules and the same draws: the same parameters (to float rounding)."""
    data = suite.make_data("vae", shape=(1, 28, 28), n=64)
    tr = suite.make_trainer(
        "vae", data, batch_size=16, model_args={"arch": "mlp", "hidden": 32, "latent_dim": 4}, guide_args={"hidden": 32}
    )
    m, g, aux, opts = suite.hand_copy(tr)
    x, y = data.train.batch(torch.arange(16))
    torch.manual_seed(7)
    suite.engine_step(tr)(x, y)
    torch.manual_seed(7)
    hand_losses.hand_step("vae", m, g, aux, opts, x, y)
    engine_params, hand_params = list(tr.parts.model.parameters()), list(m.parameters())
    assert len(engine_params) == len(hand_params) > 0
    for a, b in zip(engine_params, hand_params, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    times = suite.alternate({"a": lambda x, y: None, "b": lambda x, y: None}, [(x, y)], rounds=2, steps=2)
    assert len(times["a"]) == 4 and suite.summary(times, "a", "b")["pairs"] == 4


# -- a model added at run time, with no hand-written step: the suite times it with no edit in benchmarks/ -----------
class BenchToyVAE(ModelBase):
    """z ~ N(0, I); x ~ Bernoulli(logits = decoder(z)); defined here, not in the package."""

    latent_sites = ("z",)
    pyro_name = "bench_toy_vae"

    def __init__(self, input_shape, latent_dim: int = 2, hidden: int = 8):
        super().__init__(input_shape)
        self.latent_dim = latent_dim
        n = int(torch.tensor(self.input_shape).prod())
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, n))

    def logits(self, z):
        h = self.decoder(z)
        return h.reshape(*h.shape[:-1], *self.input_shape)

    def model(self, x, y=None):
        register(self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], self.latent_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.logits(z)).to_event(len(self.input_shape)), obs=x)

    def decode(self, latents, y=None):
        return torch.sigmoid(self.logits(latents["z"]))

    def sample_prior(self, n, y=None):
        return {"z": torch.randn(n, self.latent_dim, device=self.device)}


class BenchToyGuide(GuideBase):
    mean_field = True
    pyro_name = "bench_toy_guide"

    def __init__(self, model, hidden: int = 8):
        super().__init__(model)
        n = int(torch.tensor(model.input_shape).prod())
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, 2 * model.latent_dim))

    def encode(self, x, y=None):
        loc, raw = self.net(x).chunk(2, -1)
        return {"z": {"loc": loc, "scale": F.softplus(raw) + 1e-4}}

    def guide(self, x, y=None):
        register(self)
        q = self.encode(x)["z"]
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(q["loc"], q["scale"]).to_event(1))


@pytest.fixture
def toy_model():
    MODELS.register("bench-toy-vae")(BenchToyVAE)
    GUIDES.register("bench-toy-guide", models=("bench-toy-vae",), default_for=("bench-toy-vae",))(BenchToyGuide)
    yield "bench-toy-vae"
    MODELS.unregister("bench-toy-vae")
    GUIDES.unregister("bench-toy-guide")


def test_a_model_without_a_hand_written_step_gets_a_row_without_a_floor(toy_model, capsys):
    assert toy_model not in hand_losses.HAND
    cases = {row: (model, args, target) for row, model, args, target in suite.step_cases()}
    assert cases[toy_model] == (toy_model, {}, None)  # its own default networks, no target
    assert {row for row, *_ in suite.step_cases()} >= set(hand_losses.HAND)  # every floor still has its row
    args = SimpleNamespace(models=toy_model, batch=16, rounds=2, steps=1, draws=2)
    (row,) = suite.bench_steps(args)
    assert row["model"] == toy_model and row["guide"] == "bench-toy-guide"
    assert row["check"] == {"ok": None, "note": suite.NO_FLOOR}
    assert row["hand_ms"] is None and row["ratio"] is None and row["engine_ms"] > 0
    assert row["vs_without_fastpaths"]["pairs"] == 2
    assert suite.NO_FLOOR in capsys.readouterr().out
    with pytest.raises(KeyError, match="no hand-written loss"):
        suite.check(None, toy_model, None, None)
