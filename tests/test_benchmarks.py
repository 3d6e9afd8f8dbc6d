"""The benchmark suite's hand-written losses (benchmarks/hand_losses.py) against the Pyro models: an independent
computation of every registered model's default loss, and what makes the suite's step ratios like-for-like.

For every model with its default guide and objective (tiny sizes), on the same modules: where both draw the same
random numbers, the loss of every optimizer (main and auxiliary) and the main loss's gradients agree to float
rounding; where the Pyro step draws, before the numbers the bound reads, a sample the bound never reads (CHyVAE's
guide draws Σ between z and z̃), the means over seeds agree within Monte-Carlo error. Also: the suite's timing loop runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import hand_losses  # noqa: E402
import suite  # noqa: E402

from pyro_vaes.registry import MODELS  # noqa: E402


def test_every_registered_model_has_a_hand_written_step():
    assert set(hand_losses.HAND) == set(MODELS.names())


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
    import torch

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
    for a, b in zip(tr.parts.model.parameters(), m.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    times = suite.alternate({"a": lambda x, y: None, "b": lambda x, y: None}, [(x, y)], rounds=2, steps=2)
    assert len(times["a"]) == 4 and suite.summary(times, "a", "b")["pairs"] == 4
