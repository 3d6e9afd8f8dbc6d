"""The Pareto k̂ diagnostic against independent computations: the known tail index of Pareto weights, scipy's
maximum-likelihood generalized Pareto fit of the same exceedances, and light-tailed weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from pyro_vaes.analysis.psis import gpd_fit, khat_threshold, pareto_khat, tail_length


@pytest.mark.parametrize("alpha", [4.0, 2.0, 1.25])
def test_khat_recovers_the_tail_index_of_pareto_weights(alpha):
    """Weights w = U^(−1/α) have a Pareto tail of index k = 1/α: k̂ over 40 replicates of S = 4,000 centres on it."""
    g = torch.Generator().manual_seed(0)
    u = torch.rand(4000, 40, generator=g, dtype=torch.float64)
    k = pareto_khat(-torch.log(u) / alpha, dim=0)  # log w
    assert k.shape == (40,)
    assert abs(float(k.mean()) - 1 / alpha) < 0.05, (float(k.mean()), 1 / alpha)


def test_gpd_fit_agrees_with_scipy_maximum_likelihood():
    """Without the prior (prior_n = 0), Zhang & Stephens's estimate is close to scipy's MLE on the same 2,000
    exceedances of a generalized Pareto with k = 0.3 (both estimate the same shape; they differ by O(n^-1/2))."""
    x = stats.genpareto.rvs(0.3, scale=2.0, size=2000, random_state=np.random.default_rng(1))
    x = np.sort(x)
    k_zs, sigma_zs = gpd_fit(torch.from_numpy(x), prior_n=0.0)
    k_ml, _, sigma_ml = stats.genpareto.fit(x, floc=0.0)
    assert abs(float(k_zs) - k_ml) < 0.03 and abs(float(sigma_zs) / sigma_ml - 1) < 0.05
    assert abs(float(k_zs) - 0.3) < 0.08


def test_light_and_heavy_tails_are_told_apart():
    """Log-normal weights: σ = 0.2 is light-tailed (k̂ well below 0.5); σ = 3 over S = 1,000 draws looks heavy
    (its k̂ exceeds the reliability threshold, as the PSIS paper's log-normal example shows)."""
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1000, 20, generator=g)
    light, heavy = pareto_khat(0.2 * z), pareto_khat(3.0 * z)
    assert float(light.max()) < 0.3
    assert float(heavy.median()) > khat_threshold(1000)


def test_too_few_draws_give_nan_and_thresholds_follow_the_paper():
    assert tail_length(24) == 5 and tail_length(10) == 2 and tail_length(10000) == 300
    assert torch.isnan(pareto_khat(torch.randn(10, 3))).all()
    assert not torch.isnan(pareto_khat(torch.randn(25, 3))).any()
    assert khat_threshold(100) == pytest.approx(0.5) and khat_threshold(10**6) == 0.7
    assert math.isclose(khat_threshold(1000), 1 - 1 / 3)


def test_khat_is_invariant_to_a_shift_of_the_log_weights():
    """k̂ reads the weights' shape only: adding log p(x) to every log weight (a normaliser) changes nothing."""
    lw = torch.randn(500, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2
    torch.testing.assert_close(pareto_khat(lw), pareto_khat(lw - 1234.5))
