"""Mutual Information Gap (Chen et al., 2018, eq. 6), computed as disentanglement_lib does.

    MIG = (1/K) Σ_k [I(z_{j(k)}; v_k) − I(z_{j'(k)}; v_k)] / H(v_k),

where j(k) and j'(k) are the code dimensions with the largest and second-largest mutual information with
factor v_k. Codes are discretised per dimension into ``num_bins`` = 20 equal-width bins
(disentanglement_lib's ``_histogram_discretize``), the mutual information is the plug-in estimate
``sklearn.metrics.mutual_info_score`` (nats), and H(v_k) = I(v_k; v_k).

Identity codes (factors with at most 20 values) score 1; codes independent of the factors score ≈ 0 (the
plug-in MI's positive bias, about ``(bins − 1)(|v_k| − 1)/(2N)`` nats, mostly cancels in the gap).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import mutual_info_score

from pyro_vaes.metrics.factor_vae_metric import run_representation


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each column of ``codes`` (N, D) into ``num_bins`` equal-width bins over its range (disentanglement_lib)."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], num_bins)[1][:-1]
        out[:, j] = np.digitize(codes[:, j], edges)
    return out


def mutual_information_matrix(codes_discrete: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(z_j; v_k) for every code dimension j and factor k, shape (D, K), in nats."""
    D, K = codes_discrete.shape[1], factors.shape[1]
    m = np.zeros((D, K))
    for j in range(D):
        for k in range(K):
            m[j, k] = mutual_info_score(factors[:, k], codes_discrete[:, j])
    return m


def mig(codes, factors, num_bins: int = 20) -> dict[str, object]:
    """MIG of ``codes`` (N, D) against integer ``factors`` (N, K). Returns ``score``, ``per_factor`` gaps,
    the ``mutual_information`` matrix (D × K) and factor ``entropy``. Needs D ≥ 2."""
    codes = codes.detach().cpu().numpy() if torch.is_tensor(codes) else np.asarray(codes)
    factors = factors.detach().cpu().numpy() if torch.is_tensor(factors) else np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"codes (N, D) and factors (N, K) must have the same N; got {codes.shape} and {factors.shape}")
    if codes.shape[1] < 2:
        raise ValueError("MIG needs at least 2 code dimensions")
    disc = histogram_discretize(codes, num_bins)
    m = mutual_information_matrix(disc, factors)
    entropy = np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])
    top = np.sort(m, axis=0)[::-1]
    gap = (top[0] - top[1]) / np.where(entropy > 0, entropy, np.nan)
    return {
        "score": float(np.nanmean(gap)),
        "per_factor": gap.tolist(),
        "mutual_information": m.tolist(),
        "entropy": entropy.tolist(),
        "num_bins": num_bins,
        "n": int(len(codes)),
    }


def mig_for_run(run, n: int = 10000, split: str = "train", num_bins: int = 20) -> dict[str, object]:
    """MIG of a fitted run's posterior means on the first ``n`` examples of a split with ground-truth factors
    (disentanglement_lib uses 10,000 points)."""
    data = getattr(run.data, split)
    if data.factors is None:
        raise ValueError(f"the {split} split of {run.config.data!r} has no ground-truth factors; MIG needs them")
    n = min(n, len(data))
    codes = run_representation(run)(data.x[:n])
    return mig(codes, data.factors[:n], num_bins)


def mig_from_source(representation, source, n: int = 10000, seed: int = 0, num_bins: int = 20) -> dict[str, object]:
    """MIG with ``n`` fresh draws from a :class:`~pyro_vaes.data.FactorSource`."""
    g = torch.Generator().manual_seed(seed)
    f = source.sample_factors(n, g)
    return mig(representation(source.render(f)), f, num_bins)


__all__ = ["histogram_discretize", "mutual_information_matrix", "mig", "mig_for_run", "mig_from_source"]
