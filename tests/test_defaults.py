"""Defaults that work: every registered model trains with its defaults (guide, objective, likelihood, nets) on every
registered dataset whose shape and labels it takes, a few steps each. The datasets are small instances of the
registered ones: generated in memory, written to a temporary folder (fashion-mnist, folder, arrays), or read from
the shared data folder (skipped with the reason when it is absent)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

import pyro_vaes
from pyro_vaes.cli import main
from pyro_vaes.data import load_dataset
from pyro_vaes.engine.build import signature_params
from pyro_vaes.registry import DATASETS, MODELS

SMALL = {"n_train": 24, "n_test": 8}
REAL = {"celeba-yaleb": {"celeba_train": 24, "celeba_test": 8, "yale_train": 24, "yale_test": 8}}


def write_idx(folder, name, array):
    """An uncompressed IDX file (the MNIST format): magic 0x0000080N, the dims, the uint8 data."""
    array = np.asarray(array, dtype=np.uint8)
    with open(folder / name, "wb") as f:
        f.write(struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def fake_fashion_mnist(root):
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    g = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 16)):
        write_idx(raw, f"{prefix}-images-idx3-ubyte", g.integers(0, 256, (n, 28, 28)))
        write_idx(raw, f"{prefix}-labels-idx1-ubyte", g.integers(0, 10, n))
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Every registered dataset, small (name -> (data, data_args, data_root)), or the reason it is unavailable."""
    from PIL import Image

    tmp = tmp_path_factory.mktemp("defaults-data")
    folder = tmp / "images"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for i in range(16):
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                folder / cls / f"{i}.png"
            )
    np.savez(
        tmp / "arrays.npz",
        x=np.random.default_rng(0).integers(0, 256, (32, 12, 12), dtype=np.uint8),
        y=np.arange(32) % 3,
    )
    fake_fashion_mnist(tmp / "fashion")
    special = {
        "fashion-mnist": (dict(SMALL), str(tmp / "fashion")),
        "folder": ({"path": str(folder), "size": 16, **SMALL}, None),
        "arrays": ({"path": str(tmp / "arrays.npz"), **SMALL}, None),
    }
    out = {}
    for name in DATASETS.names():
        takes = signature_params(DATASETS.get(name))
        if name in special:
            args, root = special[name]
        elif DATASETS.entry(name).meta.get("kind") == "real":
            if not SHARED_DATA.exists():
                out[name] = f"real data folder {SHARED_DATA} is absent"
                continue
            args, root = dict(REAL.get(name, {k: v for k, v in SMALL.items() if k in takes})), str(SHARED_DATA)
        else:
            args, root = {k: v for k, v in SMALL.items() if k in takes}, None
        out[name] = (load_dataset(name, root=root, **args), args, root)
    return out


def test_every_registered_dataset_is_covered(datasets):
    assert set(datasets) == set(DATASETS.names())


@pytest.mark.parametrize("model", MODELS.names())
def test_model_trains_with_its_defaults_on_every_dataset_it_takes(model, datasets, tmp_path):
    cls = MODELS.get(model)
    trained = []
    for name, entry in datasets.items():
        if isinstance(entry, str):
            continue  # absent real data: said by test_real_data_is_present
        data, args, root = entry
        why = cls.accepts(data.shape, data.label_kind()[0])
        if why is not None:
            continue
        run = pyro_vaes.fit(
            model=model,
            data=name,
            data_args=args,
            data_root=root,
            dataset=data,
            steps=2,
            batch_size=8,
            eval_batches=1,
            figures=False,
            progress=False,
            out=tmp_path / name,
        )
        assert np.isfinite(run.history[-1]["test_loss"]), (model, name)
        trained.append(name)
    assert trained, f"{model} takes none of the registered datasets"


def test_real_data_is_present(datasets):
    absent = {n: e for n, e in datasets.items() if isinstance(e, str)}
    if absent:
        pytest.skip("; ".join(f"{n}: {why}" for n, why in absent.items()))


def test_readme_commands_work_as_typed_on_small_data(tmp_path, monkeypatch, capsys):
    """`pyro-vaes fit chyvae --data ellipses` and `pyro-vaes fit vae --data fashion-mnist` (from a local root) used to
    stop with "the Bernoulli likelihood needs binary data"; with their defaults they now fit, the likelihood chosen
    from the data printed and recorded (a few steps on small data here)."""
    monkeypatch.chdir(tmp_path)
    small = [
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--no-figures",
        "--quiet",
        "--data-arg",
        "n_train=24",
        "--data-arg",
        "n_test=8",
    ]
    assert main(["fit", "chyvae", "--data", "ellipses", *small]) == 0
    assert "continuous-bernoulli" in capsys.readouterr().out
    root = fake_fashion_mnist(tmp_path / "local")
    assert main(["fit", "vae", "--data", "fashion-mnist", "--data-root", str(root), *small]) == 0
    for run in ("runs/chyvae-ellipses-seed0", "runs/vae-fashion-mnist-seed0"):
        config = json.loads((tmp_path / run / "config.json").read_text())
        assert config["model_args"]["likelihood"] == "continuous-bernoulli"
        assert config["objective"] == MODELS.get(config["model"]).default_objective


def test_each_model_defaults_to_its_papers_objective():
    assert MODELS.get("ugvae").default_objective == "enum-elbo" and MODELS.get("gmvae").default_objective == "enum-elbo"
    assert MODELS.get("chyvae").default_objective == "chyvae-closed-form"
    from pyro_vaes.config import FitConfig
    from pyro_vaes.engine import resolve_config

    assert resolve_config(FitConfig(model="ugvae")).objective == "enum-elbo"
    with pytest.raises(ValueError, match="sums out d by enumeration, which this estimator would sample"):
        resolve_config(FitConfig(model="ugvae", objective="elbo"))


def test_ellipses_thresholded_in_data_and_in_the_metrics_vote_images():
    data = load_dataset("ellipses", n_train=16, n_test=4, binarize="threshold")
    assert data.is_binary
    rendered = data.factors.render(data.factors.sample_factors(8, torch.Generator().manual_seed(0)))
    assert bool(((rendered == 0) | (rendered == 1)).all())
    grey = load_dataset("ellipses", n_train=16, n_test=4)
    assert not grey.is_binary
