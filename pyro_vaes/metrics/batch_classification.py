"""Batch classification: how well a batch-level representation tells structured batches apart.

UG-VAE (Peis et al., arXiv 2012.08234, §5 and Table 1; ``experiments/celeba_attributes.py``) encodes each
batch to the posterior mean of its global latent and classifies batches with
``make_pipeline(StandardScaler(), SVC(kernel='linear' | 'rbf', gamma='auto'))`` on an 80/20
``train_test_split(test_size=0.2, random_state=42)`` (not stratified). This module does exactly that on any
features, and collects the features through the model/guide contract (:func:`batch_features`):
the posterior means of the model's batch-level latents (UG-VAE's μ_β, ML-VAE's μ_C), or, for a model without
one (GMVAE), the batch mean of the posterior means of its per-datum continuous latents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from pyro_vaes.guides.base import posterior_means
from pyro_vaes.plumbing.isolation import eval_mode

KERNELS = ("linear", "rbf")


def batch_classification(
    features: np.ndarray,
    labels: Sequence[int],
    kernels: Sequence[str] = KERNELS,
    test_size: float = 0.2,
    seed: int = 42,
) -> dict[str, dict[str, float]]:
    """Train/test accuracy of an SVM per kernel on (n_batches, D) ``features`` with batch ``labels``.

    Returns ``{kernel: {"train": acc, "test": acc}}`` plus ``{"chance": {"test": majority-class rate of
    the test split}}``. The split is the authors' (``train_test_split(test_size=0.2, random_state=42)``, not
    stratified), so with few batches a class may be missing from one half; the test half's class counts are in
    ``"chance"``.
    """
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"features must be (n, D) with one label per row; got {X.shape} and {y.shape}")
    if len(np.unique(y)) < 2:
        raise ValueError("batch classification needs at least two classes")
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed)
    if len(np.unique(ytr)) < 2:
        raise ValueError(f"the training part of the split holds one class only ({len(ytr)} batches): use more batches")
    out: dict[str, dict[str, float]] = {}
    for kernel in kernels:
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; valid: {', '.join(KERNELS)}")
        clf = make_pipeline(StandardScaler(), SVC(kernel=kernel, gamma="auto"))
        clf.fit(Xtr, ytr)
        out[kernel] = {"train": float(clf.score(Xtr, ytr)), "test": float(clf.score(Xte, yte))}
    classes, counts = np.unique(yte, return_counts=True)
    out["chance"] = {
        "test": float(counts.max() / counts.sum()),
        "test_counts": dict(zip(map(int, classes), map(int, counts))),
    }
    return out


@torch.no_grad()
def batch_features(model, guide, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """(n_batches, D): one feature vector per batch X from ``guide.encode(X)`` (in eval mode): the posterior means
    of the model's ``global_sites`` concatenated, or, without batch-level latents, the mean over the batch of the
    posterior means of its per-datum continuous latents (in ``latent_sites`` order)."""
    sites = list(model.global_sites)
    feats = []
    with eval_mode(guide):
        for X in batches:
            means = posterior_means(guide.encode(X.to(model.device)))
            if sites:
                f = torch.cat([means[s].reshape(-1) for s in sites])
            else:
                f = torch.cat([means[s].mean(0).reshape(-1) for s in model.latent_sites if s in means])
            feats.append(f.cpu().numpy())
    return np.stack(feats)
