"""CSVAE's experiments (Klys, Snell & Zemel, NeurIPS 2018, §5), each a ``pyro-vaes reproduce`` target, and what
they share (this module: the paper, the models compared and their weighting, the fit budget, reusing a finished
fit, the fixed classifier applied to codes and to images).

* ``csvae-swissroll`` (§5.1, Fig. 2; :mod:`pyro_vaes.experiments.csvae_swissroll`): CSVAE with 2-D z and a 2-D
  subspace w on the Swiss roll, several seeds; the pairwise projections of the test set's posterior means (the
  paper's figure 2), and how well a fresh classifier (the project's one fixed recipe,
  :mod:`pyro_vaes.metrics.classifier`, on flat data) predicts y from z (the paper: near chance — the data "overlaps
  in Z") and from w (the paper: separated by label).
* ``csvae-celeba`` (§5.2–5.4, Figs. 3 and 5, Table 1; :mod:`pyro_vaes.experiments.csvae_celeba`, figures in
  :mod:`pyro_vaes.experiments.csvae_figures`): VAE, CondVAE, CondVAE-info and CSVAE on the paper's CelebA subsets at
  64×64 (``celeba-csvae``: glasses, facial hair, or both labels together), then

  - a figure per attribute: one test face switched to the attribute by every model (VAE and CondVAE-style models
    at intensities α, CSVAE at a grid of points in the attribute's subspace), and for two labels a CSVAE grid of
    both attributes switched on together (Fig. 5);
  - Method 1 (Table 1): every test face switched to the other value of each attribute; the project's fixed
    classifier, trained on the real training images of the same subset, says whether the switched image
    carries the target; its own accuracy on the real held-out images is reported beside it. ``classifier_input``:
    ``image`` (the recipe's conv network) or ``flat`` (its flat-data network on the flattened pixels; the small
    scale's, because the conv network stays at the base rate for the hundreds of steps this machine affords).
    One row per (subset, model, attribute).

All models share the likelihood (Gaussian, σ² = ½: −log p(x | ·) is the summed squared error plus a constant, as
the public re-implementations use) and CSVAE's weighting of reconstruction against KL(z), β1 = 20, β3 = 0.2: the
VAE and CondVAE are fitted with ``beta-vae-h`` at β = β3/β1 = 0.01 (the same loss up to a factor Adam ignores),
CondVAE-info with ``condvae-info`` at recon_weight 20, kl_weight 0.2, γ = 10 (CSVAE's β4). The paper gives all
models "the same hyperparameters"; it does not say how the baselines' terms were weighted — this is our choice.
The VAE's code has the size of CSVAE's z and w together; every model has the same conv64 encoder/decoder.

Scales: ``tiny`` (seconds, tests), ``small`` (a 2-core CPU, minutes), ``full`` (closer to the paper: all three
subsets, longer); any setting can be overridden (``--set steps=3000 --set subsets=[glasses]``). Every fit
leaves a run folder ``OUT/runs/<tag>`` that ``pyro-vaes switch`` / ``evaluate`` / ``plot`` open; ``--overwrite --set
reuse_runs=true`` reuses the finished run folders of an earlier invocation with the same settings (to rescore
them without refitting).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import torch

from pyro_vaes.experiments.base import Context
from pyro_vaes.experiments.common import eval_every, run_summary

PAPER = "Klys, Snell & Zemel, NeurIPS 2018"

#: CSVAE's weighting (β1 on reconstruction, β3 on KL(z)) shared by every model; see the module docstring
BETA1, BETA3 = 20.0, 0.2
LIKELIHOOD = {"likelihood": "gaussian", "obs_scale": math.sqrt(0.5)}
NAMES = {"vae": "VAE", "condvae": "CondVAE", "condvae-info": "CondVAE-info", "csvae": "CSVAE"}


def budget(settings: dict[str, Any], eval_batches: int) -> dict[str, Any]:
    """A fit's steps, batch, learning rates (the adversaries' too), the learning curve's evaluations and one
    checkpoint at the end."""
    steps = settings["steps"]
    return dict(
        steps=steps,
        batch_size=settings["batch_size"],
        lr=settings["lr"],
        aux_lr=settings["lr"],
        eval_every=eval_every(steps),
        checkpoint_every=steps,
        eval_batches=eval_batches,
    )


def celeba_config(name: str, s: dict[str, Any], num_labels: int) -> dict[str, Any]:
    """model / guide / objective settings of one model of the CelebA comparison."""
    net = {"hidden": s["hidden"], "arch": "conv64", **LIKELIHOOD}
    guide_args = {"hidden": s["hidden"]}
    conditional = {**net, "latent_dim": s["z_dim"]}
    configs = {
        "vae": ("vae", "diagonal", "beta-vae-h", {**net, "latent_dim": s["z_dim"] + num_labels * s["w_dim"]}),
        "condvae": ("condvae", "condvae-labelled", "beta-vae-h", conditional),
        "condvae-info": ("condvae", "condvae-unlabelled", "condvae-info", conditional),
        "csvae": ("csvae", "csvae-mean-field", "csvae", {**conditional, "w_dim": s["w_dim"]}),
    }
    if name not in configs:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(NAMES)}")
    model, guide, objective, model_args = configs[name]
    objective_args = {
        "beta-vae-h": {"beta": BETA3 / BETA1},
        "condvae-info": {"recon_weight": BETA1, "kl_weight": BETA3, "gamma": 10.0},
        "csvae": {},
    }[objective]
    return dict(
        model=model,
        guide=guide,
        objective=objective,
        objective_args=objective_args,
        model_args=model_args,
        guide_args=guide_args,
    )


def fit_or_reuse(context: Context, tag: str, reuse: bool, dataset, **settings: Any):
    """``context.fit`` into ``OUT/runs/<tag>``, or, with ``reuse``, load the run folder already there when its
    ``config.json`` records the same settings (a finished run of this experiment); returns (run, its summary with
    ``reused``). The run is kept in ``context.runs[tag]`` either way."""
    import pyro_vaes

    out = context.out
    folder = out / "runs" / tag
    if reuse and (folder / "checkpoint.pt").exists() and (folder / "config.json").exists():
        recorded = json.loads((folder / "config.json").read_text())
        same = all(
            (
                isinstance(v, dict)
                and isinstance(recorded.get(k), dict)
                and all(recorded[k].get(a) == b for a, b in v.items())
            )
            or recorded.get(k) == v
            for k, v in settings.items()
        )
        rows = [json.loads(r) for r in (folder / "metrics.jsonl").read_text().splitlines() if r.strip()]
        if same and rows and rows[-1]["step"] == settings["steps"]:
            context.runs[tag] = run = pyro_vaes.load(folder, dataset=dataset)
            last = rows[-1]
            return run, {
                "run_dir": str(folder.relative_to(out)),
                "train_loss_per_datum": float(last["train_loss"]),
                "test_loss_per_datum": float(last["test_loss"]),
                "train_seconds": round(last["seconds"], 1),
                "reused": True,
            }
    t0 = time.perf_counter()
    run = context.fit(tag, dataset=dataset, **settings)
    return run, {**run_summary(run, out, time.perf_counter() - t0), "reused": False}


# -- the fixed classifier on codes and on images ------------------------------------------------------------------
def fresh_classifier_accuracy(
    train_codes: torch.Tensor,
    train_y: torch.Tensor,
    test_codes: torch.Tensor,
    test_y: torch.Tensor,
    steps: int,
    seed: int,
) -> dict[str, float]:
    """The fixed classifier recipe trained afresh on codes -> y (binary); held-out accuracy, balanced accuracy (the
    mean of the two per-class recalls: ½ for a constant guess) and the majority-class rate (a constant guess)."""
    from pyro_vaes.metrics.classifier import Recipe, train_classifier

    net = train_classifier(train_codes, train_y, "binary", train_y.shape[1], Recipe(steps=steps, seed=seed))
    pred = net.predict(test_codes)[:, 0]
    y = test_y[:, 0]
    recalls = [float((pred[y == v] == v).float().mean()) for v in (0, 1) if bool((y == v).any())]
    rate = float(y.float().mean())
    return {
        "accuracy": float((pred == y).float().mean()),
        "balanced_accuracy": float(np.mean(recalls)),
        "majority_rate": max(rate, 1 - rate),
    }


class FlatInput:
    """The fixed classifier's flat-data network applied to images: ``predict`` flattens (N, C, H, W) to (N, C·H·W)."""

    def __init__(self, net):
        self.net = net

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.predict(x.flatten(1))


def attribute_classifier(data, data_args: dict[str, Any], recipe, kind: str):
    """The project's fixed classifier for ``data``'s attributes, trained on its real training images: its image
    network (``kind="image"``) or its flat-data network on the flattened pixels (``kind="flat"``, far cheaper)."""
    from pyro_vaes.data import ArraySplit, VAEData
    from pyro_vaes.metrics.classifier import cached_classifier

    if kind == "image":
        return cached_classifier(data, data_args, recipe)
    if kind != "flat":
        raise ValueError(f"classifier_input must be image or flat, got {kind!r}")
    flat = VAEData(
        data.name,
        ArraySplit(data.train.x.flatten(1), data.train.y),
        ArraySplit(data.test.x.flatten(1), data.test.y),
        label_names=data.label_names,
    )
    net, record = cached_classifier(flat, {**data_args, "input": "flat"}, recipe)
    return FlatInput(net), {**record, "input": "flattened pixels (the recipe's flat-data network)"}


def classifier_accuracy_per_attribute(classifier, data) -> list[float]:
    """The classifier's accuracy on ``data``'s real held-out images, one per attribute."""
    pred = classifier.predict(data.test.x)
    return [float((pred[:, j] == data.test.y[:, j]).float().mean()) for j in range(data.test.y.shape[1])]
