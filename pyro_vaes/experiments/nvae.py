"""N-VAE's experiments (Antorán & Miguel, 2019, §IV): what they share, and the tools a notebook reuses.

The experiments, each a ``pyro-vaes reproduce`` target in its own module:

* ``nvae-kl`` (:mod:`pyro_vaes.experiments.nvae_kl`) — the KL detector (paper Fig. 5) and the traversals
  (Figs. 6–8) on MNIST and Extended Yale B, or any dataset with class labels.
* ``nvae-augmentation`` (:mod:`pyro_vaes.experiments.nvae_augmentation`) — generated data for a classifier (paper
  Fig. 9): N-VAE, CVAE, CGAN and AC-GAN generate class-balanced samples from codes z ~ N(0, σ² I).

This module holds the pieces both use or a notebook imports: :func:`kl_detector` (the KL of q(z | x, y) to the prior
per group of latents), :func:`traversal_figures`, :func:`generate` (class-conditional samples at a code scale σ, the
same path for every model), :func:`nvae_fit_settings`, :func:`class_count` and :class:`NVAEExperiment` (the
envelope entries both experiments record). The names that moved to the experiments' modules (``run_kl``,
``KL_SCALES``, ``run_augmentation``, ``AUG_SCALES``, ``augmentation_config``, ...) still import from here.

Choices where the paper is silent (each is a setting): block sizes ``class_dim`` 2 and ``shared_dim`` 8; MLP networks
(``arch``) of 400 units (``hidden``; 256 at the small scale of the augmentation experiment); the Yale B image size
32×32 (``size`` in the dataset arguments); the classification weight λ = 1 (the value in the paper is not legible in
our copy); MNIST binarized once with a seeded Bernoulli draw for the VAEs (the project's default, Bernoulli
likelihood; ``vae_data_args`` in the augmentation experiment) — on grey levels the continuous Bernoulli's large
log-densities leave the KL almost no weight, the class stays in z and prior draws ignore y — while the GANs and the
classifier see the grey images (the VAEs generate Bernoulli means, grey images in [0, 1] like the real ones); the
classifier's flat-data network on the flattened pixels at the small scale (``classifier_input``: the convolutional
variant costs ~0.3 s a step on this 2-core machine); CVAE's code size ``class_dim + shared_dim`` (the N-VAE
dimensions that reach the decoder for one class), and the GANs' noise size the same.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyro_vaes.data.base import data_root as resolve_root
from pyro_vaes.experiments.base import Context, Experiment
from pyro_vaes.experiments.common import image_grid_figure
from pyro_vaes.guides.base import posterior_means
from pyro_vaes.plumbing.isolation import eval_mode, isolated_rng

PAPER = "Antorán & Miguel, Disentangling and Learning Robust Representations with Natural Clustering (ICMLA 2019)"


class NVAEExperiment(Experiment):
    """What both N-VAE experiments record: the paper's claim (``claim``) and the first seed as envelope entries
    (``paper_claim``, ``seed``), and the resolved settings as they are (no ``first_seed``: ``seed`` holds it)."""

    paper = PAPER
    claim = ""

    def prepare(self, settings: dict[str, Any], context: Context) -> None:
        context.extra.update(paper_claim=self.claim, seed=context.seed)
        (context.out / "figures").mkdir(parents=True, exist_ok=True)

    def recorded_settings(self, settings: dict[str, Any], context: Context) -> dict[str, Any]:
        return dict(settings)


def runs_data_root(root: str | None) -> str | None:
    """The data root a run folder records: ``root`` or else ``$PYRO_VAES_DATA``, as an absolute path, so the run
    folders reopen from any working directory and without the environment variable."""
    found = resolve_root(root)
    return None if found is None else str(found.resolve())


def class_count(data, name: str, experiment: str) -> int:
    """The number of classes of ``data`` (dataset ``name``); refused unless it has one integer class per example."""
    kind, K = data.label_kind()
    if kind != "class":
        raise ValueError(
            f"{experiment} needs a dataset with one integer class per example; {name!r} has "
            f"{'no labels' if kind is None else kind + ' labels'}"
        )
    return K


def nvae_fit_settings(s: dict[str, Any], **objective_args: Any) -> dict[str, Any]:
    """N-VAE's fit settings (the paper's Dirichlet guide and objective) from an experiment's ``class_dim``,
    ``shared_dim``, ``hidden``, ``arch`` and ``class_weight`` settings; ``objective_args`` add to the objective's."""
    return dict(
        model="nvae",
        guide="nvae-dirichlet",
        objective="nvae",
        model_args={
            "class_dim": s["class_dim"],
            "shared_dim": s["shared_dim"],
            "hidden": s["hidden"],
            "arch": s["arch"],
        },
        guide_args={"hidden": s["hidden"]},
        objective_args={"class_weight": s["class_weight"], **objective_args},
    )


@torch.no_grad()
def kl_detector(model, guide, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> dict[str, Any]:
    """KL(q(z_d | x, y) ‖ N(0, 1)) per dimension d of N-VAE's code, analytic from ``guide.encode`` and averaged over
    the data, then summed over groups: ``class_total`` (all of z_c), ``class_own`` (each datum's own label's block),
    ``class_other`` (the K − 1 masked blocks together), ``shared`` (z_s); ``own_per_class`` is the own block's KL
    averaged within each class; ``per_dim`` the KL of every dimension; ``*_per_dim`` the group means per dimension."""
    K, dc = model.num_classes, model.class_dim
    kls, own = [], []
    with eval_mode(model, guide):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(model.device), y[i : i + batch_size].to(model.device)
            q = guide.encode(xb, yb)["z"]
            kl = 0.5 * (q["loc"] ** 2 + q["scale"] ** 2 - 1.0) - q["scale"].log()  # (B, d)
            blocks = kl[:, : K * dc].reshape(len(xb), K, dc).sum(-1)  # (B, K)
            own.append(blocks.gather(1, yb[:, None]).squeeze(1).cpu())
            kls.append(kl.cpu())
    kl = torch.cat(kls).double()
    own_kl = torch.cat(own).double()
    class_total = float(kl[:, : K * dc].sum(1).mean())
    shared = float(kl[:, K * dc :].sum(1).mean())
    y = y.cpu()
    per_class = [float(own_kl[y == k].mean()) if bool((y == k).any()) else float("nan") for k in range(K)]
    return {
        "class_total": class_total,
        "class_own": float(own_kl.mean()),
        "class_other": class_total - float(own_kl.mean()),
        "shared": shared,
        "class_own_per_dim": float(own_kl.mean()) / dc,
        "shared_per_dim": shared / max(model.shared_dim, 1),
        "own_per_class": per_class,
        "per_dim": kl.mean(0).tolist(),
    }


@torch.no_grad()
def traversal_figures(
    run,
    out: Path,
    tag: str,
    n_classes: int,
    n_shared: int,
    per_dim_kl: Sequence[float],
    span: float = 3.0,
    steps: int = 9,
) -> list[Path]:
    """Class-dependent traversals (each dimension of a class's own block, for a test item of that class:
    ``traversals-class-<tag>.png``) and shared traversals (the ``n_shared`` shared dimensions with the largest KL,
    for items of the first classes: ``traversals-shared-<tag>.png``), over [−span, span] with every other latent at
    its posterior mean."""
    model, guide, data = run.model, run.guide, run.data
    x, y = data.test.x, data.test.y
    K, dc = model.num_classes, model.class_dim
    names = data.label_names or [str(k) for k in range(K)]
    values = torch.linspace(-span, span, steps)
    columns = [f"{v:.2g}" for v in values.tolist()]
    paths = []
    with eval_mode(model, guide), isolated_rng(0):
        idx = [int((y == k).nonzero()[0]) for k in range(min(K, n_classes)) if bool((y == k).any())]
        xb, yb = x[idx].to(model.device), y[idx].to(model.device)
        centre = posterior_means(guide.encode(xb, yb))["z"]

        def sweep(i: int, dim: int) -> torch.Tensor:  # item i's decoded images along dimension dim of z
            z = centre[i].repeat(steps, 1)
            z[:, dim] = values
            return model.decode({"z": z}, yb[i].repeat(steps)).cpu()

        def figure(kind: str, rows: list[torch.Tensor], labels: list[str], title: str, ylabel: str) -> Path:
            path = out / f"traversals-{kind}-{tag}.png"
            axes = dict(xlabel="value of the dimension", ylabel=ylabel, row_labels=labels, col_labels=columns)
            return image_grid_figure(torch.stack(rows), path, f"N-VAE on {tag}: {title}", **axes)

        items = list(enumerate(yb.tolist()))
        rows = [sweep(i, model.class_slice(k).start + j) for i, k in items for j in range(dc)]
        labels = [f"{names[k]}: z_c[{k}]{j}" for _, k in items for j in range(dc)]
        title = "class-dependent traversals (each class's own block of z_c)"
        paths.append(figure("class", rows, labels, title, "class: dimension"))
        shared_kl = np.asarray(per_dim_kl[K * dc :])
        if len(shared_kl):
            top = np.argsort(-shared_kl)[:n_shared].tolist()
            rows = [sweep(i, model.shared_slice.start + j) for j in top for i, _ in items[:4]]
            labels = [f"z_s{j} (KL {shared_kl[j]:.2f}): {names[k]}" for j in top for _, k in items[:4]]
            title = f"shared traversals (the {len(top)} z_s dimensions with the largest KL), the same dimension "
            title += "across classes"
            paths.append(figure("shared", rows, labels, title, "dimension: class"))
    return paths


@torch.no_grad()
def generate(model, y: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """Samples for the classes ``y`` from codes z ~ N(0, σ² I): ``sample_prior`` (every other latent as the model
    draws it), the code site scaled by σ, then ``decode`` — the same path for every model of the contract."""
    with eval_mode(model), isolated_rng(seed):
        latents = model.sample_prior(len(y), y.to(model.device))
        latents[model.code_site] = sigma * latents[model.code_site]
        return model.decode(latents, latents.get("y", y)).cpu()


#: names that moved to the experiments' modules, still importable from here (``from ...nvae import run_kl``)
MOVED = {
    "nvae_kl": ("KL_SCALES", "PAPER_KL", "run_kl", "NVAEKL"),
    "nvae_augmentation": (
        "MODELS",
        "AUG_SCALES",
        "PAPER_AUG",
        "augmentation_config",
        "balanced_labels",
        "run_augmentation",
        "NVAEAugmentation",
    ),
}


def __getattr__(name: str) -> Any:
    for module, names in MOVED.items():
        if name in names:
            return getattr(importlib.import_module(f"pyro_vaes.experiments.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
