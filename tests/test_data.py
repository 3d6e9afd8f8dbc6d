"""Data tests on generated data only (no files needed): procedural datasets, factors, batch builders,
bring-your-own-data loaders, errors and the ``data`` CLI."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from pyro_vaes import registry

try:  # the registry imports every component family; tolerate families that are not written yet
    registry._load_components()
except ImportError:
    pass

from pyro_vaes.data import load_dataset  # noqa: E402
from pyro_vaes.data.base import ArraySplit, VAEData  # noqa: E402
from pyro_vaes.data.batches import (  # noqa: E402
    attribute_batches,
    domain_batches,
    random_batches,
    series_batches,
    series_terms,
)
from pyro_vaes.data.procedural import CorrelatedEllipsesFactors, DSpritesFactors  # noqa: E402
from pyro_vaes.data.real import MissingDataError  # noqa: E402


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- registry ----------------------------------------------------------------------------------------


def test_datasets_registered_with_kind():
    kinds = {e.name: e.meta.get("kind") for e in registry.DATASETS.entries()}
    for name, kind in [
        ("mnist", "real"),
        ("fashion-mnist", "real"),
        ("celeba", "real"),
        ("yaleb", "real"),
        ("folder", "real"),
        ("arrays", "real"),
        ("shapes2d", "procedural"),
        ("ellipses", "procedural"),
        ("moons", "procedural"),
        ("swissroll", "procedural"),
    ]:
        assert kinds[name] == kind


# --- shapes2d (dSprites re-render) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dsprites():
    return DSpritesFactors()


def test_shapes2d_grid_counts_and_index_round_trip(dsprites):
    assert list(dsprites.factor_names) == ["shape", "scale", "orientation", "posX", "posY"]
    assert list(dsprites.factor_sizes) == [3, 6, 40, 32, 32]
    assert dsprites.num_combinations == 737_280
    idx = torch.arange(737_280)
    f = dsprites.factors_from_index(idx)
    for k, size in enumerate(dsprites.factor_sizes):
        counts = torch.bincount(f[:, k], minlength=size)
        assert len(counts) == size and (counts == 737_280 // size).all()
    assert torch.equal(dsprites.index(f), idx)
    # dSprites' archive order: posY fastest, then posX, orientation, scale, shape
    assert dsprites.factors_from_index(torch.tensor([1, 32, 1024, 40960, 245760])).tolist() == [
        [0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0],
        [0, 0, 1, 0, 0],
        [0, 1, 0, 0, 0],
        [1, 0, 0, 0, 0],
    ]
    with pytest.raises(ValueError, match="out of range"):
        dsprites.factors_from_index(torch.tensor([737_280]))


def test_shapes2d_render_deterministic_binary_and_inside(dsprites):
    f = dsprites.sample_factors(500, gen(1))
    a = dsprites.render(f)
    b = dsprites.render(f.flip(0)).flip(0)  # batch composition does not matter
    assert a.shape == (500, 1, 64, 64) and torch.equal(a, b)
    assert torch.equal(a, DSpritesFactors().render(f))
    assert bool(((a == 0) | (a == 1)).all())
    assert (a.sum((1, 2, 3)) > 0).all()
    # extreme positions: nothing is clipped at the border
    f[:, 3] = torch.randint(2, (500,), generator=gen(2)) * 31
    f[:, 4] = torch.randint(2, (500,), generator=gen(3)) * 31
    f[:, 1] = 5
    x = dsprites.render(f)
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], -1)
    assert border.sum() == 0
    # orientation 0 and 2*pi (classes 0 and 39) are the same angle, as in dSprites
    g0 = f.clone()
    g0[:, 2] = 0
    g39 = f.clone()
    g39[:, 2] = 39
    assert (dsprites.render(g0) != dsprites.render(g39)).float().mean() < 1e-3
    # scale grows the area, for every shape
    base = torch.tensor([[s, k, 0, 16, 16] for s in range(3) for k in (0, 5)])
    area = dsprites.render(base).sum((1, 2, 3)).view(3, 2)
    assert (area[:, 1] > 3 * area[:, 0]).all()


def test_shapes2d_dataset_factors_and_fixed(dsprites):
    d = load_dataset("shapes2d", seed=3, n_train=300, n_test=50)
    assert d.shape == (1, 64, 64) and d.is_binary and d.factors is not None
    assert d.train.factors.shape == (300, 5) and d.test.factors.shape == (50, 5)
    assert torch.equal(d.factors.render(d.train.factors[:40]), d.train.x[:40])
    both = torch.cat([d.factors.index(d.train.factors), d.factors.index(d.test.factors)])
    assert len(torch.unique(both)) == 350  # distinct, train and test disjoint
    again = load_dataset("shapes2d", seed=3, n_train=300, n_test=50)
    assert torch.equal(again.train.x, d.train.x)
    for k in range(5):
        f, x = d.factors.sample_fixed(64, k, gen(k))
        assert (f[:, k] == f[0, k]).all()
        others = [j for j in range(5) if j != k]
        assert all(len(torch.unique(f[:, j])) > 1 for j in others)
        assert torch.equal(x, d.factors.render(f))
    f, _ = d.factors.sample_fixed(8, 0, gen(), value=2)
    assert (f[:, 0] == 2).all()


# --- ellipses (CHyVAE CorrelatedEllipses) ----------------------------------------------------------------


def _implied_binned_correlation(rho: float, n: int, seed: int):
    """Independent simulation of the *construction*: correlated normals, clip, map to [0, 1], then the
    floor binning written arithmetically (x: 31 steps, scale: 5 steps of s/2+1/2, rot: 39 steps of 360 r)."""
    rng = np.random.default_rng(seed)
    z1 = rng.standard_normal(n)
    z2 = rho * z1 + math.sqrt(1 - rho**2) * rng.standard_normal(n)
    u1, u2 = (np.clip(z1, -1, 1) + 1) / 2, (np.clip(z2, -1, 1) + 1) / 2
    xy = np.corrcoef(np.minimum(np.floor(u1 * 31), 31), np.minimum(np.floor(u2 * 31), 31))[0, 1]
    sr = np.corrcoef(np.minimum(np.floor(u1 * 5 + 1e-9), 5), np.minimum(np.floor(u2 * 39 + 1e-9), 39))[0, 1]
    return xy, sr


def test_ellipses_correlation_matches_construction():
    src = CorrelatedEllipsesFactors()
    n = 20_000
    f = src.sample_factors(n, gen(11)).double()
    assert list(src.factor_sizes) == [32, 32, 6, 40]
    for k, s in enumerate(src.factor_sizes):
        assert f[:, k].min() >= 0 and f[:, k].max() <= s - 1
    xy_ref, sr_ref = _implied_binned_correlation(0.5, 1_000_000, seed=5)
    emp_xy = float(torch.corrcoef(f[:, [0, 1]].T)[0, 1])
    emp_sr = float(torch.corrcoef(f[:, [2, 3]].T)[0, 1])
    # sampling sd of a correlation estimate ~ (1 - r^2) / sqrt(n) = 0.0057 for n = 20k (the 1e6 reference
    # adds 0.0008); 0.03 is > 5 sd, so a wrong construction (e.g. rho 0.4 -> ~0.36, or no clipping) fails.
    assert abs(emp_xy - xy_ref) < 0.03, (emp_xy, xy_ref)
    assert abs(emp_sr - sr_ref) < 0.03, (emp_sr, sr_ref)
    # independent pairs stay uncorrelated
    assert abs(float(torch.corrcoef(f[:, [0, 2]].T)[0, 1])) < 0.03
    # clipping puts P(Z > 1) = 15.87% of the mass on the top class (sd 0.26% at n = 20k)
    top = float((f[:, 0] == 31).double().mean())
    assert abs(top - 0.1587) < 0.015


def test_ellipses_render_and_fixed_factor():
    d = load_dataset("ellipses", seed=0, n_train=200, n_test=20)
    assert d.shape == (1, 64, 64) and d.train.x.min() >= 0 and d.train.x.max() <= 1
    assert torch.equal(d.factors.render(d.train.factors[:20]), d.train.x[:20])
    # area of an ellipse with semi-axes (50 s, 25 s) on 256^2, seen on 64^2: pi * a * b / 16 pixels
    f = torch.tensor([[16, 16, 5, 0], [16, 16, 0, 7]])
    area = d.factors.render(f).sum((1, 2, 3))
    for a, s in zip(area.tolist(), (1.0, 0.5)):
        expect = math.pi * round(50 * s) * round(25 * s) / 16
        assert abs(a - expect) / expect < 0.03
    src = d.factors
    for k in range(4):
        ff, x = src.sample_fixed(200, k, gen(k))
        assert (ff[:, k] == ff[0, k]).all()
        assert torch.equal(x, src.render(ff))
    # fixing x leaves y at its marginal draw: it still spreads over its range
    ff, _ = src.sample_fixed(2000, 0, gen(9), value=0)
    assert ff[:, 1].float().std() > 5 and (ff[:, 1] == 31).float().mean() > 0.1


# --- moons / swissroll -----------------------------------------------------------------------------------


def test_moons_and_swissroll():
    d = load_dataset("moons", n_train=500, n_test=100)
    assert d.shape == (2,) and set(d.train.y.tolist()) == {0, 1}
    s = load_dataset("swissroll", n_train=1000, n_test=100)
    assert d.label_kind() == ("class", 2)
    assert s.shape == (3,) and torch.equal(s.train.y[:, 0], (s.train.x[:, 0] >= 10).long())
    assert s.label_kind() == ("binary", 1) and s.label_names == ["x0>=10"]
    s2 = load_dataset("swissroll", n_train=1000, n_test=100, label="x1<10")
    assert torch.equal(s2.train.y[:, 0], (s2.train.x[:, 1] < 10).long())


# --- bad arguments give clear errors ----------------------------------------------------------------------


def test_bad_data_args():
    with pytest.raises(ValueError, match="it takes"):
        load_dataset("shapes2d", n_trian=10)
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("ellipses", n_train=-5)
    with pytest.raises(ValueError, match="exceeds"):
        load_dataset("shapes2d", n_train=737_280, n_test=1)
    with pytest.raises(ValueError, match="label rule"):
        load_dataset("swissroll", label="x2>0")
    with pytest.raises(KeyError, match="Did you mean 'shapes2d'"):
        load_dataset("shapes_2d")
    with pytest.raises(ValueError, match="shape"):
        DSpritesFactors().render(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="orientation"):
        DSpritesFactors().render(torch.tensor([[0, 0, 40, 0, 0]]))


def test_missing_mnist_gives_clear_error(tmp_path):
    with pytest.raises(MissingDataError) as err:
        load_dataset("mnist", root=str(tmp_path))
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path / "MNIST" / "raw") in msg and "--data-root" in msg
    with pytest.raises(MissingDataError, match="FashionMNIST"):
        load_dataset("fashion-mnist", root=str(tmp_path))
    with pytest.raises(MissingDataError, match="celeba"):
        load_dataset("celeba", root=str(tmp_path))
    with pytest.raises(MissingDataError, match="Yale"):
        load_dataset("yaleb", root=str(tmp_path))


# --- batch builders -------------------------------------------------------------------------------------


def _digit_split(n=2000):
    """A fake MNIST split whose every image stores its own label in pixel (0, 0)."""
    y = torch.arange(n) % 10
    x = torch.zeros(n, 1, 4, 4)
    x[:, 0, 0, 0] = y.float()
    return ArraySplit(x, y)


def test_series_batches_hold_their_series():
    sp = _digit_split()
    names = ("even", "odd", "fibonacci", "primes")
    ref = {
        "even": "".join(str(2 * i) for i in range(256)),
        "odd": "".join(str(2 * i + 1) for i in range(256)),
        "fibonacci": "".join(str(t) for t in series_terms("fibonacci")),
        "primes": "".join(str(p) for p in range(2, 1700) if all(p % q for q in range(2, int(p**0.5) + 1)))[:5000],
    }
    assert series_terms("fibonacci", 8) == [0, 1, 1, 2, 3, 5, 8, 13]
    assert series_terms("primes", 6) == [2, 3, 5, 7, 11, 13]
    seen = set()
    batches = list(series_batches(sp, 40, gen(4), batch_size=128))
    for b in batches:
        assert b.x.shape == (128, 1, 4, 4) and b.labels.shape == (128,)
        assert torch.equal(b.x[:, 0, 0, 0].long(), b.labels)  # each image is of its digit's class
        text = "".join(map(str, b.labels.tolist()))
        assert text in ref[names[b.group]]
        if b.group in (0, 1):  # even / odd: every term's last digit has the series' parity
            assert any(text.startswith(str(t)) for t in series_terms(names[b.group]))
        seen.add(b.group)
    assert seen == {0, 1, 2, 3}
    again = list(series_batches(sp, 40, gen(4), batch_size=128))
    assert all(torch.equal(a.x, c.x) and a.group == c.group for a, c in zip(batches, again, strict=True))


def _const_data(name, value, n=300, y=None, label_names=None):
    x = torch.full((n, 1, 4, 4), float(value))
    return VAEData(name, ArraySplit(x, y), ArraySplit(x[:50], None if y is None else y[:50]), label_names=label_names)


def test_domain_and_random_batches():
    a, b = _const_data("a", 0.0), _const_data("b", 1.0)
    mixed = list(domain_batches(a, b, 20, 64, gen(1), proportion=0.25, mode="mixed"))
    dom = torch.cat([m.labels for m in mixed])
    assert all(torch.equal(m.x[:, 0, 0, 0], m.labels.float()) for m in mixed)
    assert abs(float((dom == 0).float().mean()) - 0.25) < 0.05  # sd 0.0068 over 1280 items
    single = list(domain_batches(a, b, 30, 16, gen(2), proportion=0.5, mode="single"))
    assert all((s.labels == s.group).all() and torch.equal(s.x[:, 0, 0, 0], s.labels.float()) for s in single)
    assert {s.group for s in single} == {0, 1}
    with pytest.raises(ValueError, match="shape"):
        next(
            domain_batches(
                a, VAEData("c", ArraySplit(torch.zeros(5, 3, 4, 4)), ArraySplit(torch.zeros(5, 3, 4, 4))), 1, 2, gen()
            )
        )
    idx_split = ArraySplit(torch.arange(100.0).view(100, 1), torch.arange(100) % 10)
    rb = list(random_batches(idx_split, 3, 10, gen()))
    assert len(rb) == 3 and all(len(torch.unique(r.x)) == 10 and r.group == -1 for r in rb)
    assert all(torch.equal(r.y if hasattr(r, "y") else r.labels, r.x[:, 0].long() % 10) for r in rb)


def test_attribute_batches():
    y = torch.stack([torch.arange(300) % 3 == 0, torch.arange(300) % 2 == 0], 1).long()
    d = _const_data("attrs", 0.0, y=y, label_names=["Eyeglasses", "Male"])
    with_ = list(attribute_batches(d, "Male", 5, 32, gen(), present=True, split="train"))
    without = list(attribute_batches(d, "Male", 5, 32, gen(), present=False, split="train"))
    assert len(with_) == len(without) == 5 and all(len(b.labels) == 32 for b in with_ + without)
    assert all((b.labels[:, 1] == 1).all() and b.group == 1 for b in with_)
    assert all((b.labels[:, 1] == 0).all() and b.group == 0 for b in without)
    with pytest.raises(ValueError, match="Smiling"):
        next(attribute_batches(d, "Smiling", 1, 4, gen(), split="train"))


# --- bring your own data -----------------------------------------------------------------------------


def test_folder_dataset(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png"
            )
    d = load_dataset("folder", path=str(tmp_path / "imgs"), size=16, channels=1, n_test=2)
    assert d.shape == (1, 16, 16) and len(d.train) == 10 and len(d.test) == 2
    assert d.label_names == ["cats", "dogs"] and set(d.train.y.tolist()) == {0, 1}
    (tmp_path / "labels.csv").write_text("filename,a,b\ncats/0.png,1,0\ncats/1.png,0,1\ndogs/0.png,1,1\n")
    d = load_dataset("folder", path=str(tmp_path / "imgs"), labels_csv=str(tmp_path / "labels.csv"), size=8, n_test=1)
    assert d.shape == (3, 8, 8) and d.label_names == ["a", "b"] and d.train.y.shape == (2, 2)
    (tmp_path / "bad.csv").write_text("filename,a\ncats/0.png,yes\n")
    with pytest.raises(ValueError, match="integers"):
        load_dataset("folder", path=str(tmp_path / "imgs"), labels_csv=str(tmp_path / "bad.csv"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("folder", path=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="path"):
        load_dataset("folder")


def test_arrays_dataset(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (30, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=x, labels=np.arange(30) % 4)
    d = load_dataset("arrays", path=str(tmp_path / "a.npz"), n_test=5)
    assert d.shape == (3, 12, 12) and len(d.test) == 5 and d.train.x.max() <= 1 and d.train.y.dtype == torch.long
    np.save(tmp_path / "flat.npy", np.random.default_rng(1).normal(size=(40, 7)).astype(np.float32))
    assert load_dataset("arrays", path=str(tmp_path / "flat.npy")).shape == (7,)
    torch.save({"x": torch.rand(20, 1, 8, 8), "y": torch.arange(20)}, tmp_path / "t.pt")
    assert load_dataset("arrays", path=str(tmp_path / "t.pt")).shape == (1, 8, 8)
    np.save(tmp_path / "bad.npy", np.zeros((4, 2, 3, 5, 6)))
    with pytest.raises(ValueError, match="must be"):
        load_dataset("arrays", path=str(tmp_path / "bad.npy"))
    np.save(tmp_path / "range.npy", np.full((4, 1, 5, 5), 3.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_dataset("arrays", path=str(tmp_path / "range.npy"))
    np.savez(tmp_path / "mism.npz", x=np.zeros((4, 3)), y=np.zeros(5))
    with pytest.raises(ValueError, match="5 labels for 4"):
        load_dataset("arrays", path=str(tmp_path / "mism.npz"))


# --- CLI ----------------------------------------------------------------------------------------------


def _parser():
    from pyro_vaes.data.cli import add_data_parser

    p = argparse.ArgumentParser(prog="pyro-vaes")
    add_data_parser(p.add_subparsers(dest="command"))
    return p


def test_cli_list_and_show(tmp_path, capsys):
    from pyro_vaes.data.cli import run_data_command

    p = _parser()
    assert run_data_command(p.parse_args(["data", "list"])) == 0
    out = capsys.readouterr().out
    for name in registry.DATASETS.names():
        assert name in out
    assert "shape,scale,orientation,posX,posY" in out
    png = tmp_path / "grid.png"
    args = p.parse_args(
        ["data", "show", "shapes2d", "--out", str(png), "-n", "6", "--data-arg", "n_train=20", "--data-arg", "n_test=2"]
    )
    assert run_data_command(args) == 0 and png.stat().st_size > 1000
    png2 = tmp_path / "moons.png"
    assert (
        run_data_command(p.parse_args(["data", "show", "moons", "--out", str(png2), "--data-arg", "n_train=50"])) == 0
    )
    assert png2.exists()
    from pyro_vaes.cli import main

    assert main(["data", "show", "shapes2d", "--out", str(tmp_path / "x.png"), "--data-arg", "n_trian=3"]) == 2
    assert "it takes" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    assert main(["data", "show", "shapes2d", "--out", str(png), "--data-arg", "n_train=20"]) == 2  # exists
    assert "pass --overwrite" in capsys.readouterr().err


def test_one_key_value_parser_for_every_option():
    """``fit --data-arg``, ``data show --data-arg``, ``--model-arg`` and ``reproduce --set`` share one parser:
    YAML values, numbers such as 1e-3 read as floats, ``none`` kept as text (mnist's binarize=none), null as None."""
    from pyro_vaes.config import parse_assignments

    got = parse_assignments(["a=1", "b=0.5", "c=true", "d=x,y", "e=none", "f=null", "g-h=1e-3", "i=[1, 2]"], "--x")
    assert got == {"a": 1, "b": 0.5, "c": True, "d": "x,y", "e": "none", "f": None, "g_h": 0.001, "i": [1, 2]}
    with pytest.raises(ValueError, match="--x expects KEY=VALUE"):
        parse_assignments(["oops"], "--x")
    with pytest.raises(ValueError, match="not valid YAML"):
        parse_assignments(["a=[1, 2"], "--x")


@pytest.mark.data
def test_readme_binarize_none_command_works_for_data_show_and_fit(tmp_path, shared_data):
    from pyro_vaes.cli import main

    args = ["--data-arg", "binarize=none", "--data-arg", "n_train=64", "--data-arg", "n_test=32"]
    assert (
        main(["data", "show", "mnist", "--data-root", str(shared_data), "--out", str(tmp_path / "m.png"), *args]) == 0
    )
    assert (
        main(
            [
                "fit",
                "vae",
                "--data",
                "mnist",
                "--data-root",
                str(shared_data),
                "--likelihood",
                "gaussian",
                "--steps",
                "1",
                "--batch-size",
                "16",
                "--no-figures",
                "--quiet",
                "--out",
                str(tmp_path / "r"),
                *args,
            ]
        )
        == 0
    )
