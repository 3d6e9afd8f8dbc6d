"""Datasets composed of other datasets: UG-VAE's mixed-domain data (CelebA and Extended Yale B)."""

from __future__ import annotations

import torch

from pyro_vaes.data.base import ArraySplit, VAEData
from pyro_vaes.registry import DATASETS


def _subset(split: ArraySplit, n: int, g: torch.Generator) -> ArraySplit:
    idx = torch.randperm(len(split), generator=g)[:n].sort().values
    return ArraySplit(split.x[idx], None if split.y is None else split.y[idx])


def balanced_domains(a: VAEData, b: VAEData, seed: int = 0) -> tuple[VAEData, VAEData, VAEData]:
    """Balance two datasets of one shape (train and test each cut, by a seeded draw, to the smaller domain's
    size) and pool them: returns the balanced ``a``, the balanced ``b`` and the pool, whose ``y`` is the domain
    (0 = ``a``, 1 = ``b``). Random batches of the pool mix the domains ~50/50, as UG-VAE's CelebAFaces batches."""
    if a.shape != b.shape:
        raise ValueError(f"domains differ in shape: {a.name} {a.shape} vs {b.name} {b.shape}")
    g = torch.Generator().manual_seed(seed)
    n_tr, n_te = min(len(a.train), len(b.train)), min(len(a.test), len(b.test))
    out = []
    for d in (a, b):
        out.append(
            VAEData(d.name, _subset(d.train, n_tr, g), _subset(d.test, n_te, g), info={"balanced_from": len(d.train)})
        )
    ba, bb = out

    def pool(sa: ArraySplit, sb: ArraySplit) -> ArraySplit:  # shuffled, so that any prefix mixes the domains
        y = torch.cat([torch.zeros(len(sa), dtype=torch.long), torch.ones(len(sb), dtype=torch.long)])
        order = torch.randperm(len(y), generator=g)
        return ArraySplit(torch.cat([sa.x, sb.x])[order], y[order])

    mixed = VAEData(
        f"{a.name}-{b.name}",
        pool(ba.train, bb.train),
        pool(ba.test, bb.test),
        label_names=[a.name, b.name],
        info={"domains": [a.name, b.name], "train_per_domain": len(ba.train), "test_per_domain": len(ba.test)},
    )
    return ba, bb, mixed


def domain_parts(
    root: str | None,
    seed: int,
    celeba_train: int | None,
    celeba_test: int | None,
    yale_train: int | None,
    yale_test: int | None,
) -> tuple[VAEData, VAEData, VAEData]:
    from pyro_vaes.data import load_dataset

    celeba = load_dataset("celeba", root=root, seed=seed, labels="Male", n_train=celeba_train, n_test=celeba_test)
    yale = load_dataset("yaleb", root=root, seed=seed, channels=3, n_train=yale_train, n_test=yale_test)
    return balanced_domains(celeba, yale, seed)


@DATASETS.register("celeba-yaleb", kind="real", shape="3x64x64", factors="")
def celeba_yaleb(
    root: str | None = None,
    seed: int = 0,
    celeba_train: int | None = None,
    celeba_test: int | None = None,
    yale_train: int | None = None,
    yale_test: int | None = None,
) -> VAEData:
    """CelebA and Extended Yale B (grey repeated to RGB), 64x64, balanced and pooled; y = domain (0 CelebA, 1 Yale B).

    UG-VAE's domain-alignment data (paper §5.2, with Yale B standing in for 3D FACES): random batches of it mix
    the two domains ~50/50. Each domain's train and test splits are cut by a seeded draw to the smaller one's
    size; ``celeba_*``/``yale_*`` are the per-domain sizes before balancing (None: the loaders' defaults).
    """
    return domain_parts(root, seed, celeba_train, celeba_test, yale_train, yale_test)[2]
