"""FactorVAE metric and MIG on codes whose answer is known (disentanglement_lib's style of metric test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyro_vaes.data.base import FactorSource
from pyro_vaes.metrics.factor_vae_metric import factor_vae_metric, factor_vae_metric_from_codes
from pyro_vaes.metrics.mig import histogram_discretize, mig, mig_from_source


class TinyFactors(FactorSource):
    """Independent uniform factors; an observation is the factor vector itself (as floats)."""

    factor_names = ("a", "b", "c", "d")
    factor_sizes = (5, 8, 4, 10)

    def sample_factors(self, n, generator):
        return torch.stack([torch.randint(s, (n,), generator=generator) for s in self.factor_sizes], 1)

    def render(self, factors):
        return factors.float()


SRC = TinyFactors()
FAST = dict(batch_size=50, num_train=300, num_eval=300, num_variance_estimate=2000)


def _noise_rep(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda x: torch.randn(len(x), 6, generator=g)


def test_identity_codes_score_one():
    out = factor_vae_metric(lambda x: x.clone(), SRC, seed=0, **FAST)
    assert out["score"] == 1.0 and out["train_accuracy"] == 1.0
    assert out["classifier"] == [0, 1, 2, 3]


def test_identity_codes_score_one_with_extra_noise_dims_and_scaling():
    # scaled factors plus two pure-noise dims: normalisation by the global std makes the scale irrelevant
    def rep(x):
        return torch.cat([x * torch.tensor([0.01, 100.0, 1.0, 3.0]), torch.randn(len(x), 2)], 1)

    assert factor_vae_metric(rep, SRC, seed=1, **FAST)["score"] == 1.0


def test_a_dead_dimension_never_wins_a_vote():
    """Identity codes plus one dimension that is exactly constant: its 0/0 normalised variance must count as
    infinite (the CHyVAE variant does not prune), so the score stays 1.0 (it was 0.28 when 0/0 became 0)."""
    out = factor_vae_metric(lambda x: torch.cat([x.clone(), torch.zeros(len(x), 1)], 1), SRC, seed=0, **FAST)
    assert out["score"] == 1.0 and out["votes"][4] == [0, 0, 0, 0]


def test_independent_codes_score_at_chance():
    """Chance = 1/K = 0.25 with K = 4 factors chosen uniformly; 800 evaluation votes give a binomial SE of
    sqrt(0.25·0.75/800) ≈ 0.015, so the interval is ±5 SE."""
    out = factor_vae_metric(
        _noise_rep(3), SRC, seed=3, batch_size=50, num_train=800, num_eval=800, num_variance_estimate=2000
    )
    se = math.sqrt(0.25 * 0.75 / 800)
    assert abs(out["score"] - 0.25) < 5 * se, out["score"]


def test_permuting_code_dimensions_leaves_the_score_unchanged():
    perm = torch.tensor([3, 0, 5, 1, 4, 2])

    def rep(x):  # partly disentangled: two factors clean, one mixed, noise dims
        g = torch.Generator().manual_seed(int(x.sum()) % 1000)
        n = torch.randn(len(x), 3, generator=g)
        return torch.cat([x[:, :2], (x[:, 2:3] + x[:, 3:4]), n], 1)

    a = factor_vae_metric(rep, SRC, seed=5, **FAST)
    b = factor_vae_metric(lambda x: rep(x)[:, perm], SRC, seed=5, **FAST)
    assert a["score"] == b["score"] and a["train_accuracy"] == b["train_accuracy"]
    assert 0.3 < a["score"] < 1.0  # not a degenerate case


def test_pure_function_and_pruning():
    # two dims: dim 0 carries factor 0, dim 1 is collapsed (constant + tiny noise)
    g = torch.Generator().manual_seed(0)
    V, L = 40, 20
    ks = torch.arange(V) % 2
    codes = torch.randn(V, L, 2, generator=g)
    codes[ks == 0, :, 0] = 0.5  # factor 0 fixed -> dim 0 constant within the batch
    codes[:, :, 1] = 1e-4 * torch.randn(V, L, generator=g)
    std = torch.tensor([1.0, 1e-4])
    unpruned = factor_vae_metric_from_codes(codes, ks, codes, ks, std, 2, prune_threshold=None)
    pruned = factor_vae_metric_from_codes(codes, ks, codes, ks, std, 2, prune_threshold=0.05)
    assert pruned["num_active_dims"] == 1 and unpruned["num_active_dims"] == 2
    # pruned: every vote goes to dim 0, mapped to one factor -> accuracy 1/2
    assert pruned["score"] == 0.5
    with pytest.raises(ValueError, match="unknown variant"):
        factor_vae_metric(lambda x: x, SRC, variant="nope")


def test_disentanglement_lib_variant_runs():
    out = factor_vae_metric(
        lambda x: x.clone(),
        SRC,
        variant="disentanglement_lib",
        seed=0,
        num_train=200,
        num_eval=200,
        num_variance_estimate=1000,
    )
    assert out["score"] == 1.0 and out["settings"]["prune_threshold"] == 0.05


def test_mig_identity_codes_is_one():
    g = torch.Generator().manual_seed(0)
    f = SRC.sample_factors(5000, g)
    out = mig(f.float(), f)
    # 1 up to the plug-in MI bias of the runner-up (independent) dimension, ~ (bins-1)(|v|-1)/(2N) nats
    assert 0.99 < out["score"] <= 1.0


def test_mig_random_codes_near_zero_and_permutation_invariant():
    g = torch.Generator().manual_seed(1)
    f = SRC.sample_factors(10000, g)
    codes = torch.randn(10000, 6, generator=g)
    out = mig(codes, f)
    assert 0 <= out["score"] < 0.01
    # mixing: each code dim half of one factor -> MIG well above 0 but below 1; permuting dims changes nothing
    mixed = torch.cat([f.float() + 0.5 * torch.randn(10000, 4, generator=g), torch.randn(10000, 2, generator=g)], 1)
    a = mig(mixed, f)["score"]
    b = mig(mixed[:, torch.tensor([5, 2, 0, 4, 1, 3])], f)["score"]
    assert a == pytest.approx(b, abs=1e-12) and 0.1 < a < 1.0


def test_mig_duplicated_code_dimension_scores_zero_for_that_factor():
    g = torch.Generator().manual_seed(2)
    f = SRC.sample_factors(5000, g)
    codes = torch.cat([f.float(), f[:, :1].float()], 1)  # factor a encoded twice -> no gap for a
    out = mig(codes, f)
    assert out["per_factor"][0] == pytest.approx(0.0, abs=1e-12)
    assert out["per_factor"][1:] == pytest.approx([1.0, 1.0, 1.0], abs=0.01)


def test_histogram_discretize_and_source_wrapper():
    x = np.linspace(0, 1, 100)[:, None]
    d = histogram_discretize(x, 20)
    assert d.min() == 1 and d.max() == 20 and len(np.unique(d)) == 20
    assert mig_from_source(lambda x: x.clone(), SRC, n=3000)["score"] == pytest.approx(1.0, abs=0.02)
