"""The fixed classifier recipe: learns a task with a known answer, is cached per dataset and recipe, and leaves
no global random state changed."""

from __future__ import annotations

import torch
from helpers import example_data

from pyro_vaes.data import ArraySplit, VAEData
from pyro_vaes.metrics.classifier import Classifier, Recipe, accuracy, cached_classifier, classifier_key


def _quadrants(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 12, 12)
    y = torch.randint(4, (n,), generator=g)
    for i, c in enumerate(y.tolist()):  # a bright patch in the quadrant named by the class
        r, s = divmod(c, 2)
        x[i, 0, 6 * r : 6 * r + 6, 6 * s : 6 * s + 6] = 1.0
    return x + 0.1 * torch.rand(n, 1, 12, 12, generator=g), y


def test_learns_an_easy_task_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_VAES_CACHE", str(tmp_path))
    xtr, ytr = _quadrants(400, 0)
    xte, yte = _quadrants(200, 1)
    data = VAEData("quadrants", ArraySplit(xtr, ytr), ArraySplit(xte, yte))
    recipe = Recipe(steps=150, batch_size=64)
    state = torch.get_rng_state()
    net, record = cached_classifier(data, {"n": 400}, recipe)
    assert torch.equal(state, torch.get_rng_state())
    assert record["test_accuracy"] > 0.95 and record["kind"] == "class" and record["outputs"] == 4
    assert (tmp_path / "classifiers" / f"{record['cache_key']}.pt").exists()
    again, record2 = cached_classifier(data, {"n": 400}, recipe)  # read back from the cache, weights only
    assert record2["cache_key"] == record["cache_key"]
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert classifier_key("quadrants", {"n": 400}, Recipe(steps=151, batch_size=64)) != record["cache_key"]
    assert net.embed(xte[:5]).shape == (5, 128)


def test_binary_attributes_and_flat_data(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_VAES_CACHE", str(tmp_path))
    data = example_data((6,), labels="binary", n_train=200, n_test=50)
    net, record = cached_classifier(data, {}, Recipe(steps=20, batch_size=32), columns=[1])
    assert record["kind"] == "binary" and record["outputs"] == 1
    assert net.predict(data.test.x).shape == (50, 1)
    assert 0.0 <= accuracy(net, data.test.x, data.test.y[:, [1]]) <= 1.0
    assert isinstance(Classifier((3,), 2), Classifier)
