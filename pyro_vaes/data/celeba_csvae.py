"""CSVAE's CelebA subsets (Klys, Snell & Zemel, NeurIPS 2018, §5.2), built from the ``celeba`` loader.

* ``glasses``: every image with Eyeglasses and twice as many without, y = [Eyeglasses];
* ``facial-hair``: every image with facial hair (``Facial_Hair`` = Goatee or Mustache or not No_Beard: the paper's
  "beard, mustache, goatee") and as many without, y = [Facial_Hair];
* ``glasses-facial-hair``: the images of both subsets, y = [Eyeglasses, Facial_Hair] (two non-exclusive labels).

As in the paper, the construction is applied to each split independently: the ``celeba`` loader's seeded
train/test split first (``n_test`` default 10%), then, within each split, all positives and a seeded random draw
of negatives. The paper uses the official partition of all ~200k images; here it is whatever CelebA folder the
data root holds (the shared subset has 4,559 images: 336 with eyeglasses, 778 with facial hair).
"""

from __future__ import annotations

import torch

from pyro_vaes.data.base import ArraySplit, VAEData
from pyro_vaes.registry import DATASETS

SUBSETS: dict[str, list[str]] = {
    "glasses": ["Eyeglasses"],
    "facial-hair": ["Facial_Hair"],
    "glasses-facial-hair": ["Eyeglasses", "Facial_Hair"],
}
#: negatives drawn per positive image (§5.2)
NEGATIVES_PER_POSITIVE = {"Eyeglasses": 2, "Facial_Hair": 1}


def attribute_subset(y: torch.Tensor, negatives_per_positive: int, g: torch.Generator) -> torch.Tensor:
    """Sorted indices of every positive of the 0/1 column ``y`` and a random ``negatives_per_positive`` × as many
    negatives (all of them when there are fewer)."""
    pos = torch.nonzero(y == 1).flatten()
    neg = torch.nonzero(y == 0).flatten()
    n = min(len(neg), negatives_per_positive * len(pos))
    return torch.cat([pos, neg[torch.randperm(len(neg), generator=g)[:n]]]).sort().values


def _select(split: ArraySplit, subset: str, g_seed: int) -> ArraySplit:
    """The subset of one split (y columns: Eyeglasses, Facial_Hair) with the subset's label columns."""
    keep = []
    for col, name in enumerate(SUBSETS["glasses-facial-hair"]):
        if name in SUBSETS[subset]:
            g = torch.Generator().manual_seed(g_seed + col)  # the same draw for a single subset and the union
            keep.append(attribute_subset(split.y[:, col], NEGATIVES_PER_POSITIVE[name], g))
    idx = torch.unique(torch.cat(keep))  # sorted
    cols = [SUBSETS["glasses-facial-hair"].index(a) for a in SUBSETS[subset]]
    return ArraySplit(split.x[idx], split.y[idx][:, cols])


@DATASETS.register(
    "celeba-csvae",
    kind="real",
    shape="3x64x64",
    factors="",
    help="CSVAE's CelebA subsets: glasses, facial-hair, glasses-facial-hair (balanced per split)",
)
def celeba_csvae(
    root: str | None = None,
    seed: int = 0,
    subset: str = "glasses",
    size: int = 64,
    n_test: int | None = None,
) -> VAEData:
    """CelebA-Glasses, CelebA-FacialHair or CelebA-GlassesFacialHair (Klys et al., §5.2); see the module docstring.

    ``subset``: ``glasses``, ``facial-hair`` or ``glasses-facial-hair``; ``size``: image side (64); ``n_test``: the
    test part of the underlying CelebA split before the subset is taken (default 10%).
    """
    if subset not in SUBSETS:
        raise ValueError(f"unknown CelebA subset {subset!r}; valid: {', '.join(SUBSETS)}")
    from pyro_vaes.data.real import celeba

    full = celeba(root, seed, size=size, labels=",".join(SUBSETS["glasses-facial-hair"]), n_test=n_test)
    train = _select(full.train, subset, 1000 * seed + 1)
    test = _select(full.test, subset, 1000 * seed + 2)
    counts = {name: [int(s.y[:, j].sum()) for s in (train, test)] for j, name in enumerate(SUBSETS[subset])}
    return VAEData(
        "celeba-csvae",
        train,
        test,
        label_names=list(SUBSETS[subset]),
        info={
            "subset": subset,
            "positives_train_test": counts,
            "from_celeba": [len(full.train), len(full.test)],
            "negatives_per_positive": {a: NEGATIVES_PER_POSITIVE[a] for a in SUBSETS[subset]},
            "image_dir": full.info["image_dir"],
        },
    )
