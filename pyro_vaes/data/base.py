"""The data contract shared by every dataset, the engine and the metrics.

A dataset is registered in :data:`pyro_vaes.registry.DATASETS` as a *builder*: a callable
``builder(root: Optional[str], seed: int, **data_args) -> VAEData``.

:class:`VAEData` holds a train and a test split (each an :class:`ArraySplit`: observations as a float
tensor in memory, optional integer labels), the observation shape, and, for datasets with ground-truth
factors, a :class:`FactorSource` that the disentanglement metrics use.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

DATA_ENV = "PYRO_VAES_DATA"


def data_root(root: str | None = None) -> Path | None:
    """The folder real datasets are read from: ``root`` if given, else ``$PYRO_VAES_DATA``, else None."""
    root = root or os.environ.get(DATA_ENV)
    return Path(root).expanduser() if root else None


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file at ``path`` by ``hashlib``'s ``algorithm`` (``md5``, ``sha256``, ...), read in
    1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ArraySplit:
    """One split held in memory: ``x`` ``(N, *shape)`` float in its natural range, ``y`` (N, ...) or None.

    ``factors`` (N, num_factors) long, optional: the ground-truth factor classes of each example for
    datasets with a :class:`FactorSource` (same coding as :meth:`FactorSource.render`).
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    factors: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"labels have {len(self.y)} rows but observations have {len(self.x)}")
        if self.factors is not None and len(self.factors) != len(self.x):
            raise ValueError(f"factors have {len(self.factors)} rows but observations have {len(self.x)}")

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.x[index], (None if self.y is None else self.y[index])


class FactorSource:
    """Ground-truth generative factors of a procedural or annotated dataset.

    Subclasses implement :meth:`sample_factors` and :meth:`render`; the metrics use only this interface.
    Factors are integer class indices, one column per factor, ``0 <= f[:, k] < factor_sizes[k]``.
    """

    factor_names: Sequence[str] = ()
    factor_sizes: Sequence[int] = ()

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` factor vectors (n, num_factors) drawn from the dataset's factor distribution."""
        raise NotImplementedError

    def render(self, factors: torch.Tensor) -> torch.Tensor:
        """Observations (n, *shape) for factor vectors (n, num_factors)."""
        raise NotImplementedError

    def sample_fixed(
        self, n: int, factor: int, generator: torch.Generator, value: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of ``n`` (factors, observations) in which factor ``factor`` holds one value.

        The default draws ``n`` factor vectors and overwrites column ``factor`` with the first row's
        value (or ``value`` when given), as the FactorVAE metric and the CHyVAE code do; the other
        factors keep their *marginal* draws (for correlated factors this breaks the correlation, as in
        CHyVAE's ``conditional_sample``).
        """
        if not 0 <= factor < self.num_factors:
            raise ValueError(f"factor {factor} out of range; {self.num_factors} factors: {list(self.factor_names)}")
        f = self.sample_factors(n, generator)
        if value is not None and not 0 <= value < self.factor_sizes[factor]:
            raise ValueError(
                f"value {value} out of range for factor {self.factor_names[factor]!r} (size {self.factor_sizes[factor]})"
            )
        f[:, factor] = f[0, factor] if value is None else value
        return f, self.render(f)

    # --- the full factor grid, in mixed radix (first factor most significant) -------------------------
    @property
    def num_combinations(self) -> int:
        out = 1
        for s in self.factor_sizes:
            out *= int(s)
        return out

    def _strides(self) -> torch.Tensor:
        sizes = [int(s) for s in self.factor_sizes]
        strides = [1] * len(sizes)
        for k in range(len(sizes) - 2, -1, -1):
            strides[k] = strides[k + 1] * sizes[k + 1]
        return torch.tensor(strides, dtype=torch.long)

    def index(self, factors: torch.Tensor) -> torch.Tensor:
        """Flat index of factor vectors (n, num_factors) in the mixed-radix grid of all combinations."""
        factors = torch.as_tensor(factors, dtype=torch.long)
        self.check_factors(factors)
        return (factors * self._strides()).sum(-1)

    def factors_from_index(self, index: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`index`: (n,) flat indices -> (n, num_factors) factor classes."""
        index = torch.as_tensor(index, dtype=torch.long)
        if ((index < 0) | (index >= self.num_combinations)).any():
            raise ValueError(f"index out of range [0, {self.num_combinations})")
        sizes = torch.tensor([int(s) for s in self.factor_sizes], dtype=torch.long)
        return (index.unsqueeze(-1) // self._strides()) % sizes

    def check_factors(self, factors: torch.Tensor) -> None:
        """Raise a clear error unless ``factors`` is (n, num_factors) with every class in range."""
        if factors.dim() != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(
                f"factors must have shape (n, {self.num_factors}) for {list(self.factor_names)}, got {tuple(factors.shape)}"
            )
        sizes = torch.tensor([int(s) for s in self.factor_sizes], dtype=torch.long)
        bad = (factors < 0) | (factors >= sizes)
        if bad.any():
            k = int(bad.any(0).nonzero()[0])
            raise ValueError(
                f"factor {self.factor_names[k]!r} must be in [0, {int(sizes[k])}); got {factors[:, k].tolist()[:8]}"
            )


@dataclass
class VAEData:
    """A dataset ready for training: splits, observation shape and optional factors."""

    name: str
    train: ArraySplit
    test: ArraySplit
    #: one name per class for 1-D integer labels, one name per column for (N, k) 0/1 attributes
    label_names: list[str] | None = None
    factors: FactorSource | None = None
    info: dict[str, object] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    @property
    def is_binary(self) -> bool:
        x = self.train.x[:1000]
        return bool(((x == 0) | (x == 1)).all())

    def label_kind(self) -> tuple[str | None, int]:
        """What the labels are: ("class", number of classes) for one integer class per example, ("binary",
        number of columns) for 0/1 attributes, (None, 0) without labels (the model contract's ``labels``)."""
        y = self.train.y
        if y is None or y.is_floating_point():
            return None, 0
        if y.dim() == 1:
            n = (
                len(self.label_names)
                if self.label_names
                else int(torch.cat([y, self.test.y if self.test.y is not None else y]).max()) + 1
            )
            return "class", n
        if y.dim() == 2 and bool(((y == 0) | (y == 1)).all()):
            return "binary", y.shape[1]
        return None, 0


def iterate_batches(
    n: int, batch_size: int, seed: int, start_step: int = 0, drop_last: bool = True
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(step, indices)`` for an endless shuffled stream of minibatches, from ``start_step`` on.

    Epoch ``e`` uses the permutation drawn from a generator seeded with ``(seed, e)``, so the batch at any
    step is a pure function of ``(seed, step)``: resuming at step ``s`` yields exactly the batches an
    uninterrupted run would have seen.
    """
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} is larger than the training set ({n} examples)")
    per_epoch = n // batch_size if drop_last else -(-n // batch_size)
    step = start_step
    while True:
        epoch, offset = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g)
        for b in range(offset, per_epoch):
            yield step, perm[b * batch_size : (b + 1) * batch_size]
            step += 1


def binarize(x: torch.Tensor, mode: str, seed: int = 0) -> torch.Tensor:
    """Binarize observations in [0, 1]: ``threshold`` (x > 0.5) or ``stochastic`` (one fixed Bernoulli draw)."""
    if mode == "none":
        return x
    if mode == "threshold":
        return (x > 0.5).to(x.dtype)
    if mode == "stochastic":
        g = torch.Generator().manual_seed(seed)
        return torch.bernoulli(x, generator=g)
    raise ValueError(f"unknown binarize mode {mode!r}; valid: none, threshold, stochastic")
