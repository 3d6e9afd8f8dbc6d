"""Data tests on the real datasets in ../shared/data (or $PYRO_VAES_DATA); skipped when absent."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from pyro_vaes import registry

try:  # the registry imports every component family; tolerate families that are not written yet
    registry._load_components()
except ImportError:
    pass

from pyro_vaes.data import load_dataset  # noqa: E402
from pyro_vaes.data.batches import attribute_batches, domain_batches, series_batches  # noqa: E402


def _shared_data() -> Path | None:
    env = os.environ.get("PYRO_VAES_DATA")
    for p in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[1].parent / "shared" / "data"]:
        if p.is_dir():
            return p
    return None


ROOT = _shared_data()
WHERE = f"$PYRO_VAES_DATA ({os.environ.get('PYRO_VAES_DATA')!r}) and ../shared/data relative to the repository root"


def need(sub: str) -> Path:
    if ROOT is None or not (ROOT / sub).exists():
        pytest.skip(f"real data folder {sub!r} not found (looked in {WHERE})")
    return ROOT


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist", root=str(need("MNIST/raw")), binarize="none")


def test_mnist_shapes_and_label_counts(mnist):
    assert mnist.train.x.shape == (60000, 1, 28, 28) and mnist.test.x.shape == (10000, 1, 28, 28)
    assert mnist.train.x.min() >= 0 and mnist.train.x.max() <= 1
    assert len(mnist.label_names) == 10
    assert torch.bincount(mnist.train.y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(mnist.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_series_batches_real(mnist):
    batches = list(series_batches(mnist.test, 4, torch.Generator().manual_seed(0)))
    assert len(batches) == 4
    for b in batches:
        assert b.x.shape == (128, 1, 28, 28) and 0 <= b.group < 4 and b.labels.max() <= 9


@pytest.fixture(scope="module")
def celeba_full():
    return load_dataset(
        "celeba",
        root=str(need("celeba-subset")),
        n_train=4559,
        n_test=0,
        size=32,
        labels="Eyeglasses,Male,Black_Hair,Blond_Hair",
    )


def test_celeba_subset_attribute_counts(celeba_full):
    d = celeba_full
    assert d.train.x.shape == (4559, 3, 32, 32) and d.train.x.min() >= 0 and d.train.x.max() <= 1
    assert d.label_names == ["Eyeglasses", "Male", "Black_Hair", "Blond_Hair"]
    assert d.train.y.sum(0).tolist() == [336, 2042, 1097, 606]
    batch = next(attribute_batches(d, "Eyeglasses", 1, 64, torch.Generator().manual_seed(0), split="train"))
    assert (batch.labels[:, 0] == 1).all()


def test_celeba_layouts_labels_and_split():
    root = need("celeba-subset")
    a = load_dataset("celeba", root=str(root / "celeba-subset"), n_train=40, n_test=10, seed=1)
    b = load_dataset("celeba", root=str(root), n_train=40, n_test=10, seed=1)
    assert a.shape == (3, 64, 64) and len(a.label_names) == 40 and a.train.y.shape == (40, 40)
    assert torch.equal(a.train.x, b.train.x) and a.info["files_train"] == b.info["files_train"]
    assert not set(a.info["files_train"]) & set(a.info["files_test"])
    with pytest.raises(ValueError, match="Eyeglases"):
        load_dataset("celeba", root=str(root), labels="Eyeglases", n_train=4, n_test=1)


def test_yaleb_subjects_and_angle_filter():
    root = need("CroppedYale")
    d = load_dataset("yaleb", root=str(root), with_angles=True)
    y = torch.cat([d.train.y, d.test.y])
    assert d.shape == (1, 64, 64) and y.shape[1] == 3
    assert len(torch.unique(y[:, 0])) == 38 and y[:, 0].max() == 37
    assert (y[:, 1].abs() < 100).all() and (y[:, 2].abs() < 100).all()
    # count the kept files independently from the folder listing
    pat = re.compile(r"yaleB\d\d_P00A([+-]\d+)E([+-]\d+)\.pgm$")
    all_files = [m for p in (root / "CroppedYale").glob("*/*") if (m := pat.match(p.name))]
    assert len(all_files) == 2414  # README: 2,414 illumination images (.bad and _Ambient excluded)
    kept = [m for m in all_files if abs(int(m.group(1))) < 100 and abs(int(m.group(2))) < 100]
    assert len(y) == len(kept) < len(all_files)
    assert torch.equal(torch.cat([d.info["train_angles"], d.info["test_angles"]]), y[:, 1:])
    rgb = load_dataset("yaleb", root=str(root), channels=3, n_train=64, n_test=8)
    assert rgb.shape == (3, 64, 64) and torch.equal(rgb.train.x[:, 0], rgb.train.x[:, 2])


def test_mixed_domain_batches_celeba_yaleb():
    root = need("celeba-subset")
    need("CroppedYale")
    c = load_dataset("celeba", root=str(root), n_train=64, n_test=8, size=32)
    yb = load_dataset("yaleb", root=str(root), n_train=64, n_test=8, size=32, channels=3)
    batches = list(domain_batches(c, yb, 3, 32, torch.Generator().manual_seed(0), mode="mixed"))
    assert len(batches) == 3
    for b in batches:
        assert b.x.shape == (32, 3, 32, 32) and set(b.labels.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="channels=3"):
        next(
            domain_batches(
                c, load_dataset("yaleb", root=str(root), n_train=8, n_test=2, size=32), 1, 4, torch.Generator()
            )
        )
