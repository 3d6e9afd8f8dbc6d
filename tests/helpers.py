"""Small data sets and settings shared by the tests."""

from __future__ import annotations

import torch

from pyro_vaes.data import ArraySplit, VAEData


def binary_images(n_train: int = 64, n_test: int = 32, shape=(1, 28, 28), seed: int = 0) -> VAEData:
    """Random binary images with a little structure (a bright square at a random place)."""
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    x = (torch.rand(n, *shape, generator=g) < 0.1).float()
    for i in range(n):
        r, c = torch.randint(0, shape[-1] - 8, (2,), generator=g).tolist()
        x[i, :, r : r + 8, c : c + 8] = 1.0
    return VAEData("binary-images", ArraySplit(x[:n_train]), ArraySplit(x[n_train:]))


TINY = dict(steps=6, batch_size=16, eval_every=3, checkpoint_every=3, eval_batches=1, figures=False, progress=False)
