"""The project's one fixed classifier recipe, trained on a dataset itself and cached.

One module serves every downstream use: the feature network of the Fréchet distance (Inception weights cannot be
downloaded here), the classifier that checks generated samples carry their requested class, the data-augmentation
experiment's classifier, and the attribute classifier that scores switched attributes. Its recipe is fixed and
recorded with every number that uses it:

* network (:class:`Classifier`): images — three 3x3 conv blocks (32, 64, 128 channels; ReLU; 2x2 max-pool after
  the first two), global average pooling, a 128-unit ReLU layer (the **features**), a linear output; flat data —
  an MLP 128-128 (ReLU) with the second layer as the features;
* outputs: ``num_outputs`` logits; ``kind="class"`` (softmax cross-entropy, one integer class per example) or
  ``kind="binary"`` (sigmoid cross-entropy per attribute, 0/1 labels);
* training (:class:`Recipe`): Adam (lr 1e-3, weight decay 1e-4), batch 128, a fixed number of steps over seeded
  shuffled batches, inputs as the dataset gives them (no augmentation), eval mode afterwards.

:func:`cached_classifier` trains it once per (dataset, data arguments, recipe) and keeps the weights in
``$PYRO_VAES_CACHE/classifiers`` (default ``~/.cache/pyro_vaes/classifiers``), loaded weights-only thereafter; the
key is returned in the record, so every table can say which network it used. Nothing is printed: ``progress=True``
shows the training's progress bar on stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from pyro_vaes.data import VAEData, iterate_batches
from pyro_vaes.plumbing.isolation import isolated_rng

KINDS = ("class", "binary")
CACHE_ENV = "PYRO_VAES_CACHE"


@dataclass(frozen=True)
class Recipe:
    """How the classifier is trained; every field is part of the cache key."""

    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


class Classifier(nn.Module):
    """The fixed network: conv blocks (images) or an MLP (flat data) -> 128 features -> ``num_outputs`` logits."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int, kind: str = "class"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.input_shape, self.num_outputs, self.kind = tuple(input_shape), int(num_outputs), kind
        if len(self.input_shape) == 3:
            c = self.input_shape[0]
            self.body = nn.Sequential(
                nn.Conv2d(c, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(64, 128, 3, padding=1),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(128, 128),
                nn.ReLU(),
            )
        else:
            n = int(torch.tensor(self.input_shape).prod())
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(n, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU())
        self.head = nn.Linear(128, self.num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 128 penultimate activations (the Fréchet distance's feature space)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self(x)
        if self.kind == "class":
            return F.cross_entropy(logits, y.long())
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Class indices (B,) or 0/1 attributes (B, k)."""
        out = torch.cat([self(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        return out.argmax(-1) if self.kind == "class" else (out > 0).long()

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        return torch.cat([self.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of correct classes (``class``) or of correct attribute values (``binary``, per attribute averaged)."""
    was = classifier.training
    classifier.eval()
    try:
        pred = classifier.predict(x)
    finally:
        classifier.train(was)
    return float((pred == y.long()).float().mean())


def train_classifier(
    x: torch.Tensor, y: torch.Tensor, kind: str, num_outputs: int, recipe: Recipe = Recipe(), progress: bool = False
) -> Classifier:
    """Train the fixed network on (x, y) with ``recipe``; returned in eval mode. Changes no global RNG state.
    ``progress`` shows a progress bar on stderr."""
    g = torch.Generator().manual_seed(recipe.seed)
    with isolated_rng(recipe.seed):  # (fork_rng(devices=[]) + torch.manual_seed would reseed every CUDA device)
        net = Classifier(x.shape[1:], num_outputs, kind)
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    batch = min(recipe.batch_size, len(x))
    seed = int(torch.randint(2**31 - 1, (1,), generator=g))
    with tqdm(total=recipe.steps, desc="classifier", disable=not progress, file=sys.stderr, mininterval=1.0) as bar:
        for step, idx in iterate_batches(len(x), batch, seed):
            if step >= recipe.steps:
                break
            opt.zero_grad(set_to_none=True)
            net.loss(x[idx], y[idx]).backward()
            opt.step()
            bar.update(1)
    return net.eval()


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "pyro_vaes") / "classifiers"


def classifier_key(data_name: str, data_args: dict[str, Any], recipe: Recipe) -> str:
    """``<dataset>-<hash of its arguments and the recipe>``: one cached network per pair."""
    blob = json.dumps({"data": data_name, "args": data_args, "recipe": asdict(recipe)}, sort_keys=True, default=str)
    return f"{data_name}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


def cached_classifier(
    data: VAEData,
    data_args: dict[str, Any] | None = None,
    recipe: Recipe = Recipe(),
    columns: Sequence[int] | None = None,
    progress: bool = False,
) -> tuple[Classifier, dict[str, Any]]:
    """The fixed classifier for ``data`` (its train split's labels; ``columns`` picks attributes of 0/1 labels),
    trained once and cached; returns it (eval mode) and its record: cache key, recipe, held-out accuracy."""
    kind, size = data.label_kind()
    if kind is None:
        raise ValueError(f"dataset {data.name!r} has no labels to train a classifier on")
    y_train, y_test = data.train.y, data.test.y
    if columns is not None:
        if kind != "binary":
            raise ValueError("columns= picks attributes of 0/1 labels; these labels are classes")
        y_train, y_test, size = y_train[:, list(columns)], y_test[:, list(columns)], len(columns)
    args = {
        **(data_args or {}),
        "columns": None if columns is None else list(columns),
        "n_train": len(data.train),
        "shape": list(data.shape),
    }
    key = classifier_key(data.name, args, recipe)
    path = cache_dir() / f"{key}.pt"
    if path.exists():
        with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: draw them off the record
            net = Classifier(data.shape, size, kind)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        net.eval()
    else:
        net = train_classifier(data.train.x, y_train, kind, size, recipe, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(net.state_dict(), tmp)
        os.replace(tmp, path)
    record = {
        "network": "pyro_vaes fixed classifier (metrics/classifier.py)",
        "cache_key": key,
        "recipe": asdict(recipe),
        "kind": kind,
        "outputs": size,
        "test_accuracy": accuracy(net, data.test.x, y_test) if y_test is not None and len(y_test) else None,
    }
    return net, record
