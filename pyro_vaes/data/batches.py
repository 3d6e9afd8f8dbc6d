"""Batch builders for the non-i.i.d. experiments (UG-VAE's datasets.py).

Each builder yields :class:`GroupBatch` ``(x, labels, group)`` tuples and is a pure function of its
arguments and the ``torch.Generator`` it is given:

* :func:`random_batches`: ordinary i.i.d. batches (``labels`` = the split's y, ``group`` = -1);
* :func:`series_batches`: UG-VAE's MnistSeries: 128 digits spelling consecutive terms of one integer
  sequence (``labels`` = digits, ``group`` = series id);
* :func:`domain_batches`: items from two datasets, ``mode="mixed"`` (each item from A with probability
  ``proportion``, UG-VAE's CelebAFaces) or ``"single"`` (a whole batch from A with probability
  ``proportion``, CelebAFacesBatch); ``labels`` = domain per item (0 = A, 1 = B), ``group`` = the
  batch's domain (single) or -1 (mixed);
* :func:`attribute_batches`: all items with (or without) one named attribute (CelebAttribute /
  CelebANonAttribute); ``labels`` = the items' label rows, ``group`` = 1 with / 0 without.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

from pyro_vaes.data.base import ArraySplit, VAEData

SERIES = ("even", "odd", "fibonacci", "primes")


class GroupBatch(NamedTuple):
    x: torch.Tensor
    labels: torch.Tensor | None
    group: int


def _check(n_batches: int, batch_size: int) -> None:
    if not isinstance(n_batches, int) or n_batches < 1:
        raise ValueError(f"n_batches must be a positive integer, got {n_batches!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def random_batches(
    split: ArraySplit, n_batches: int, batch_size: int, generator: torch.Generator
) -> Iterator[GroupBatch]:
    """``n_batches`` batches drawn without replacement within each batch (i.i.d. across batches)."""
    _check(n_batches, batch_size)
    if batch_size > len(split):
        raise ValueError(f"batch_size {batch_size} exceeds the split's {len(split)} items")
    for _ in range(n_batches):
        idx = torch.randperm(len(split), generator=generator)[:batch_size]
        x, y = split.batch(idx)
        yield GroupBatch(x, y, -1)


# --- number series -----------------------------------------------------------------------------------


def series_terms(name: str, length: int = 256) -> list[int]:
    """The first ``length`` terms of ``even`` (0, 2, 4, ...), ``odd`` (1, 3, ...), ``fibonacci``
    (0, 1, 1, 2, ...) or ``primes`` (2, 3, 5, ...)."""
    if name == "even":
        return [2 * i for i in range(length)]
    if name == "odd":
        return [2 * i + 1 for i in range(length)]
    if name == "fibonacci":
        a, b, out = 0, 1, []
        for _ in range(length):
            out.append(a)
            a, b = b, a + b
        return out
    if name == "primes":
        out, k = [], 2
        while len(out) < length:
            if all(k % p for p in out if p * p <= k):
                out.append(k)
            k += 1
        return out
    raise ValueError(f"unknown series {name!r}; valid: {', '.join(SERIES)}")


def series_digits(name: str, offset: int, n_digits: int, length: int = 256) -> list[int]:
    """``n_digits`` decimal digits spelling the terms of series ``name`` from term ``offset`` on."""
    digits: list[int] = []
    for t in series_terms(name, length)[offset:]:
        digits.extend(int(c) for c in str(t))
        if len(digits) >= n_digits:
            return digits[:n_digits]
    raise ValueError(f"series {name!r} from term {offset} has fewer than {n_digits} digits within {length} terms")


def _max_offset(name: str, n_digits: int, length: int) -> int:
    """The largest term offset from which ``n_digits`` digits remain within ``length`` terms."""
    lens = [len(str(t)) for t in series_terms(name, length)]
    total, k = 0, len(lens)
    while k > 0 and total < n_digits:
        k -= 1
        total += lens[k]
    if total < n_digits:
        raise ValueError(f"series {name!r} has fewer than {n_digits} digits within {length} terms")
    return k


def series_batches(
    split: ArraySplit,
    n_batches: int,
    generator: torch.Generator,
    batch_size: int = 128,
    series: Sequence[str] = SERIES,
    length: int = 256,
) -> Iterator[GroupBatch]:
    """UG-VAE's MnistSeries: each batch spells ``batch_size`` consecutive decimal digits of one series.

    Per batch: a series chosen uniformly from ``series`` (``group`` = its index in ``series``), a random
    starting term among the first ``length`` terms (uniform over the offsets that leave enough digits),
    the digits of the terms from there on, and for each digit an image drawn uniformly from that digit's
    class in ``split`` (``split.y`` must hold digit labels 0..9).
    """
    _check(n_batches, batch_size)
    if split.y is None or split.y.dim() != 1:
        raise ValueError("series batches need a split with one digit label (0..9) per image, e.g. mnist")
    by_class: dict[int, torch.Tensor] = {d: (split.y == d).nonzero().flatten() for d in range(10)}
    empty = [d for d, ix in by_class.items() if len(ix) == 0]
    if empty:
        raise ValueError(f"no images of digit(s) {empty} in the split")
    max_off = {s: _max_offset(s, batch_size, length) for s in series}
    for _ in range(n_batches):
        sid = int(torch.randint(len(series), (1,), generator=generator))
        name = series[sid]
        offset = int(torch.randint(max_off[name] + 1, (1,), generator=generator))
        digits = torch.tensor(series_digits(name, offset, batch_size, length), dtype=torch.long)
        idx = torch.empty(batch_size, dtype=torch.long)
        for d in range(10):
            pos = (digits == d).nonzero().flatten()
            if len(pos):
                pool = by_class[d]
                idx[pos] = pool[torch.randint(len(pool), (len(pos),), generator=generator)]
        yield GroupBatch(split.x[idx], digits, sid)


# --- domains -----------------------------------------------------------------------------------------


def domain_batches(
    a: VAEData,
    b: VAEData,
    n_batches: int,
    batch_size: int,
    generator: torch.Generator,
    proportion: float = 0.5,
    mode: str = "mixed",
    split: str = "train",
) -> Iterator[GroupBatch]:
    """Batches from two datasets of the same observation shape (e.g. celeba and yaleb with channels=3).

    ``mode="mixed"``: each item comes from ``a`` with probability ``proportion`` (UG-VAE: 0.5), so a batch
    mixes domains; ``mode="single"``: the whole batch comes from ``a`` with probability ``proportion``.
    Items are drawn uniformly with replacement within each domain. ``labels`` = domain per item.
    """
    _check(n_batches, batch_size)
    if mode not in ("mixed", "single"):
        raise ValueError(f"mode must be 'mixed' or 'single', got {mode!r}")
    if not 0.0 <= proportion <= 1.0:
        raise ValueError(f"proportion must be in [0, 1], got {proportion!r}")
    if a.shape != b.shape:
        raise ValueError(
            f"domains differ in shape: {a.name} {a.shape} vs {b.name} {b.shape}; build both with the same size "
            "and channels (e.g. yaleb with --data-arg channels=3 to mix with celeba)"
        )
    sa, sb = (a.train, b.train) if split == "train" else (a.test, b.test)
    for _ in range(n_batches):
        if mode == "mixed":
            dom = (torch.rand(batch_size, generator=generator) >= proportion).long()
            group = -1
        else:
            group = int(torch.rand(1, generator=generator).item() >= proportion)
            dom = torch.full((batch_size,), group, dtype=torch.long)
        x = torch.empty((batch_size,) + tuple(a.shape), dtype=sa.x.dtype)
        for d, s in ((0, sa), (1, sb)):
            pos = (dom == d).nonzero().flatten()
            if len(pos):
                x[pos] = s.x[torch.randint(len(s), (len(pos),), generator=generator)]
        yield GroupBatch(x, dom, group)


# --- attributes --------------------------------------------------------------------------------------


def attribute_batches(
    data: VAEData,
    attribute: str,
    n_batches: int,
    batch_size: int,
    generator: torch.Generator,
    present: bool = True,
    split: str = "test",
) -> Iterator[GroupBatch]:
    """Batches of items that have (``present=True``) or lack an attribute named in ``data.label_names``
    (y must be an (N, k) 0/1 tensor, e.g. celeba). Drawn without replacement within a batch."""
    _check(n_batches, batch_size)
    sp = data.train if split == "train" else data.test
    names = data.label_names or []
    if sp.y is None or sp.y.dim() != 2 or attribute not in names:
        raise ValueError(f"attribute {attribute!r} not among the dataset's label columns: {names}")
    col = names.index(attribute)
    pool = (sp.y[:, col] == int(present)).nonzero().flatten()
    if len(pool) < batch_size:
        raise ValueError(
            f"only {len(pool)} {split} items {'with' if present else 'without'} {attribute}; batch_size {batch_size}"
        )
    for _ in range(n_batches):
        idx = pool[torch.randperm(len(pool), generator=generator)[:batch_size]]
        x, y = sp.batch(idx)
        yield GroupBatch(x, y, int(present))
