"""InverseWishart: closed-form log_prob against scipy, Bartlett sampler moments, shapes, argument checks."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import scipy.stats as st
import torch

from pyro_vaes.distributions import InverseWishart


def _random_spd(p: int, *batch: int, generator=None) -> torch.Tensor:
    a = torch.randn(*batch, p, p, dtype=torch.float64, generator=generator)
    return a @ a.transpose(-1, -2) + p * torch.eye(p, dtype=torch.float64)


@pytest.mark.parametrize("p", [1, 2, 3, 5])
def test_log_prob_matches_scipy(p):
    g = torch.Generator().manual_seed(p)
    batch = 4
    psi = _random_spd(p, batch, generator=g)
    df = torch.tensor([p - 0.5, p + 0.3, p + 2.0, p + 10.0], dtype=torch.float64)  # includes df in (p-1, p+1]
    d = InverseWishart(df, psi)
    assert d.batch_shape == (batch,) and d.event_shape == (p, p)
    values = _random_spd(p, 3, batch, generator=g) / p  # (3, batch, p, p), not drawn from d
    ours = d.log_prob(values)
    assert ours.shape == (3, batch)
    for i in range(3):
        for b in range(batch):
            ref = st.invwishart(df=float(df[b]), scale=psi[b].numpy()).logpdf(values[i, b].numpy())
            assert float(ours[i, b]) == pytest.approx(float(ref), rel=1e-8, abs=1e-8)


def test_one_dimensional_case_is_inverse_gamma():
    # IW_1(psi, nu) = InverseGamma(nu / 2, psi / 2)
    d = InverseWishart(torch.tensor(7.0, dtype=torch.float64), torch.tensor([[3.0]], dtype=torch.float64))
    x = torch.tensor([0.2, 0.5, 1.7], dtype=torch.float64)
    ref = dist.InverseGamma(torch.tensor(3.5, dtype=torch.float64), torch.tensor(1.5, dtype=torch.float64)).log_prob(x)
    assert torch.allclose(d.log_prob(x.reshape(3, 1, 1)), ref)


@pytest.mark.parametrize("p,df", [(2, 9.0), (4, 12.0)])
def test_sample_mean_and_log_det(p, df):
    """Sample mean vs Ψ/(ν−p−1), elementwise within 5 standard errors, the standard error from the exact
    IW variance Var(Σ_ij) = [(ν−p+1)ψ_ij² + (ν−p−1)ψ_ii ψ_jj] / [(ν−p)(ν−p−1)²(ν−p−3)] (ν > p + 3) over N draws
    (5 SE: about a 1e-6 false-alarm rate per entry for the Gaussian limit of the sample mean).
    Also E[log|Σ|] = log|Ψ| − p log 2 − ψ_p(ν/2), checked within 5 empirical standard errors."""
    torch.manual_seed(0)
    psi = _random_spd(p, generator=torch.Generator().manual_seed(10 + p))
    d = InverseWishart(torch.tensor(df, dtype=torch.float64), psi)
    n = 40000
    s = d.sample((n,))
    assert s.shape == (n, p, p)
    assert torch.allclose(s, s.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(s) > 0).all()
    mean = d.mean
    assert torch.allclose(mean, psi / (df - p - 1))
    diag = psi.diagonal()
    var = ((df - p + 1) * psi**2 + (df - p - 1) * diag[:, None] * diag[None, :]) / (
        (df - p) * (df - p - 1) ** 2 * (df - p - 3)
    )
    se = (var / n).sqrt()
    z = (s.mean(0) - mean).abs() / se
    assert (z < 5).all(), z
    # a wrong sampler (e.g. a Wishart draw not inverted, or Ψ instead of Ψ⁻¹) fails this by hundreds of SEs
    logdet = torch.logdet(s)
    mvdigamma = sum(torch.digamma(torch.tensor((df - i) / 2, dtype=torch.float64)) for i in range(p))
    expected = torch.logdet(psi) - p * math.log(2.0) - mvdigamma
    assert abs(float(logdet.mean() - expected)) < 5 * float(logdet.std() / math.sqrt(n))


def test_sampler_distribution_matches_scipy_draws():
    """Two-sample KS test on a scalar summary (the (0,1) entry) against scipy's own sampler."""
    torch.manual_seed(1)
    p, df = 3, 5.5
    psi = _random_spd(p, generator=torch.Generator().manual_seed(3))
    ours = InverseWishart(torch.tensor(df, dtype=torch.float64), psi).sample((4000,))[:, 0, 1].numpy()
    ref = st.invwishart(df=df, scale=psi.numpy()).rvs(size=4000, random_state=np.random.default_rng(0))[:, 0, 1]
    assert st.ks_2samp(ours, ref).pvalue > 1e-3


def test_mean_undefined_for_small_df():
    d = InverseWishart(torch.tensor([3.5, 5.0]), torch.eye(3).expand(2, 3, 3))
    m = d.mean
    assert torch.isnan(m[0]).all() and torch.allclose(m[1], torch.eye(3))


def test_batch_shapes_and_expand():
    psi = torch.eye(3).expand(2, 3, 3)
    d = InverseWishart(torch.tensor([[5.0], [6.0], [7.0]]), psi)  # df (3,1) with scale batch (2,) -> (3, 2)
    assert d.batch_shape == (3, 2)
    assert d.rsample((4,)).shape == (4, 3, 2, 3, 3)
    e = d.expand((5, 3, 2))
    assert e.batch_shape == (5, 3, 2) and e.rsample().shape == (5, 3, 2, 3, 3)
    assert e.log_prob(e.rsample()).shape == (5, 3, 2)

    # the pyro interface: to_event, a plate, and a trace
    def model():
        with pyro.plate("data", 7):
            pyro.sample("s", InverseWishart(torch.tensor(6.0), torch.eye(3)))

    tr = pyro.poutine.trace(model).get_trace()
    tr.compute_log_prob()
    assert tr.nodes["s"]["value"].shape == (7, 3, 3)
    assert tr.nodes["s"]["log_prob"].shape == (7,)


def test_rsample_is_differentiable():
    psi = torch.eye(3, requires_grad=True)
    df = torch.tensor(6.0, requires_grad=True)
    s = InverseWishart(df, psi @ psi.T + torch.eye(3)).rsample((3,))
    s.sum().backward()
    assert psi.grad is not None and torch.isfinite(psi.grad).all() and psi.grad.abs().sum() > 0
    assert df.grad is not None and torch.isfinite(df.grad).all()


@pytest.mark.parametrize(
    "df,scale,msg",
    [
        (1.5, torch.eye(3), "df must be > p - 1"),
        (2.0, torch.eye(3), "df must be > p - 1"),
        (float("nan"), torch.eye(3), "df must be > p - 1"),
        (5.0, torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
        (5.0, torch.tensor([[1.0, 0.5], [0.0, 1.0]]), "positive definite"),
        (5.0, torch.ones(3), "square"),
        (5.0, torch.ones(2, 3), "square"),
    ],
)
def test_invalid_arguments_are_refused(df, scale, msg):
    with pytest.raises(ValueError, match=msg):
        InverseWishart(df, scale)


def test_log_prob_refuses_values_outside_support():
    d = InverseWishart(5.0, torch.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        d.log_prob(torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
