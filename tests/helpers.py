"""Small data sets and settings shared by the tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pyro_vaes.data import ArraySplit, FactorSource, VAEData


def binary_images(n_train: int = 64, n_test: int = 32, shape=(1, 28, 28), seed: int = 0) -> VAEData:
    """Random binary images with a little structure (a bright square at a random place)."""
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    x = (torch.rand(n, *shape, generator=g) < 0.1).float()
    for i in range(n):
        r, c = torch.randint(0, shape[-1] - 8, (2,), generator=g).tolist()
        x[i, :, r : r + 8, c : c + 8] = 1.0
    return VAEData("binary-images", ArraySplit(x[:n_train]), ArraySplit(x[n_train:]))


class ToyFactors(FactorSource):
    """Two factors (4 and 3 values) rendered as binary observations of any shape: pixel j is on when a fixed
    random projection of the factors exceeds a threshold (a cheap ground truth for the disentanglement metrics)."""

    factor_names = ("a", "b")
    factor_sizes = (4, 3)

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(shape)
        g = torch.Generator().manual_seed(1)
        n = int(torch.tensor(self.shape).prod())
        self.weights = torch.randn(2, n, generator=g)
        self.bias = torch.randn(n, generator=g)

    def sample_factors(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.stack([torch.randint(s, (n,), generator=generator) for s in self.factor_sizes], 1)

    def render(self, factors: torch.Tensor) -> torch.Tensor:
        f = factors.float() - torch.tensor([1.5, 1.0])
        return ((f @ self.weights + self.bias) > 0).float().reshape(len(factors), *self.shape)


def example_data(
    shape: Sequence[int], labels: str | None = None, n_train: int = 32, n_test: int = 16, seed: int = 0
) -> VAEData:
    """Binary observations of ``shape`` with ground-truth factors (:class:`ToyFactors`) and, for label-conditioned
    models, labels of the kind the model declares: ``class`` (3 classes) or ``binary`` (2 attributes)."""
    source = ToyFactors(shape)
    g = torch.Generator().manual_seed(seed)
    splits = []
    for n in (n_train, n_test):
        f = source.sample_factors(n, g)
        y = None
        if labels == "class":
            y = torch.randint(3, (n,), generator=g)
        elif labels == "binary":
            y = torch.randint(2, (n, 2), generator=g)
        splits.append(ArraySplit(source.render(f), y, f))
    names = {"class": ["c0", "c1", "c2"], "binary": ["attr0", "attr1"]}.get(labels)
    return VAEData("example", splits[0], splits[1], label_names=names, factors=source)


TINY = dict(steps=6, batch_size=16, eval_every=3, checkpoint_every=3, eval_batches=1, figures=False, progress=False)
