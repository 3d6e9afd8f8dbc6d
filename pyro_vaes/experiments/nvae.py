"""N-VAE's experiments (Antorán & Miguel, 2019, §IV), each a ``pyro-vaes reproduce`` target.

* ``nvae-kl`` — the KL detector (paper Fig. 5) and the traversals (Figs. 6–8). N-VAE is fitted on each dataset
  (MNIST and Extended Yale B by default — subjects as classes, illumination angles below 100° — or any dataset
  with class labels: ``--set data=fashion-mnist``), and the KL of q(z | x, y) to the prior is measured per latent
  dimension on the test split (analytic, from ``guide.encode``) and summed over the class-dependent latents z_c —
  split into the label's own block and the K − 1 masked ones — and over the shared latents z_s. Traversals sweep
  each dimension of a class's own block for a test item of that class (``traversals-class-<data>.png``) and the
  most informative shared dimensions for items of several classes (``traversals-shared-<data>.png``), over
  [−3, 3] as in the paper, every other latent at its posterior mean.
* ``nvae-augmentation`` — generated data for a classifier (paper Fig. 9). N-VAE, CVAE, CGAN and AC-GAN are fitted
  on the same ``n_real`` labelled MNIST images; each generates class-balanced samples from codes z ~ N(0, σ² I)
  (every latent of the code site, by ``sample_prior`` then scaled, then ``decode``: the one contract path for the
  four models); the project's fixed classifier (:mod:`pyro_vaes.metrics.classifier`) is trained on the real images
  plus as many generated ones (``proportion`` 0.5 of the training set generated) or on generated images only
  (``proportion`` 1.0), for each σ, and its error is measured on the real test images; ``seeds`` repeats the
  generation and the classifier's training (error bars: standard deviation over seeds). The real-only classifier of
  each seed also scores every generated set: the fraction classified as the class it was asked for.

Scales: ``tiny`` (seconds, for tests), ``small`` (minutes on a laptop CPU; the numbers in the README), ``full``
(larger budgets; never run here). Any setting can be overridden with ``--set``. Choices where the paper is silent
(each is a setting): block sizes ``class_dim`` 2 and ``shared_dim`` 8; MLP networks (``arch``) of 400 units
(``hidden``; 256 at the small scale of the augmentation experiment); the Yale B image size 32×32 (``size`` in the
dataset arguments); the classification weight λ = 1 (the value in the paper is not legible in our copy); MNIST
binarized once with a seeded Bernoulli draw for the VAEs (the project's default, Bernoulli likelihood;
``vae_data_args`` in the augmentation experiment) — on grey levels the continuous Bernoulli's large log-densities
leave the KL almost no weight, the class stays in z and prior draws ignore y — while the GANs and the classifier see
the grey images (the VAEs generate Bernoulli means, grey images in [0, 1] like the real ones); the classifier's
flat-data network on the flattened pixels at the small scale (``classifier_input``: the convolutional variant costs
~0.3 s a step on this 2-core machine); CVAE's code size ``class_dim + shared_dim`` (the N-VAE dimensions that reach
the decoder for one class), and the GANs' noise size the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from pyro_vaes.analysis.plots import save_figure
from pyro_vaes.data import load_dataset
from pyro_vaes.data.base import data_root as resolve_root
from pyro_vaes.experiments.common import (
    command,
    fit,
    image_grid_figure,
    resolve_settings,
    run_summary,
    say,
    write_results,
)
from pyro_vaes.guides.base import posterior_means
from pyro_vaes.metrics.classifier import Recipe, accuracy, train_classifier
from pyro_vaes.plumbing.isolation import eval_mode, isolated_rng
from pyro_vaes.registry import EXPERIMENTS

PAPER = "Antorán & Miguel, Disentangling and Learning Robust Representations with Natural Clustering (ICMLA 2019)"

# -- the KL detector ------------------------------------------------------------------------------------------------
#: the dataset arguments of each scale (``--set dataset_args=...`` replaces them; ``--set data=NAME --set
#: data_args=...`` runs one other dataset). Yale B's image size (32) is ours: the paper's is not legible in our copy.
KL_SCALES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        datasets=["mnist"],
        dataset_args={"mnist": {"binarize": "stochastic", "n_train": 200, "n_test": 100}},
        data="",
        data_args={},
        steps=4,
        batch_size=50,
        lr=1e-3,
        seeds=1,
        class_dim=2,
        shared_dim=2,
        hidden=32,
        arch="mlp",
        class_weight=1.0,
        dirichlet="nll-bound",
        traverse_classes=3,
        traverse_shared=2,
    ),
    "small": dict(
        datasets=["mnist", "yaleb"],
        dataset_args={"mnist": {"binarize": "stochastic", "n_train": 10000, "n_test": 1000}, "yaleb": {"size": 32}},
        data="",
        data_args={},
        steps=2000,
        batch_size=100,
        lr=1e-3,
        seeds=1,
        class_dim=2,
        shared_dim=8,
        hidden=400,
        arch="mlp",
        class_weight=1.0,
        dirichlet="nll-bound",
        traverse_classes=10,
        traverse_shared=5,
    ),
    "full": dict(
        datasets=["mnist", "yaleb"],
        dataset_args={"mnist": {"binarize": "stochastic"}, "yaleb": {"size": 64}},
        data="",
        data_args={},
        steps=30000,
        batch_size=100,
        lr=1e-3,
        seeds=5,
        class_dim=2,
        shared_dim=8,
        hidden=400,
        arch="auto",
        class_weight=1.0,
        dirichlet="nll-bound",
        traverse_classes=10,
        traverse_shared=8,
    ),
}

PAPER_KL = (
    "the class-dependent latents carry the most information on Fashion-MNIST and are practically "
    "uninformative on Yale B (paper Fig. 5, numbers only in the figure); on MNIST there are both class-exclusive "
    "and shared factors (§IV-A)"
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


def _absolute_root(root: str | None) -> str | None:
    """The data root (``root`` or ``$PYRO_VAES_DATA``) as an absolute path, recorded in every run's config.json so the
    run folders reopen from any working directory."""
    found = resolve_root(root)
    return None if found is None else str(found.resolve())


def _datasets(s: dict[str, Any]) -> list[tuple]:
    """(name, arguments) of every dataset the KL experiment fits: ``data`` alone when set, else ``datasets``."""
    if s["data"]:
        return [(s["data"], dict(s["data_args"]))]
    return [(name, dict(s["dataset_args"].get(name, {}))) for name in s["datasets"]]


def _first_of_each_class(y: torch.Tensor, classes: Sequence[int]) -> list[int]:
    return [int((y == k).nonzero()[0]) for k in classes if bool((y == k).any())]


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
    """Class-dependent traversals (each dimension of a class's own block, for a test item of that class) and shared
    traversals (the ``n_shared`` shared dimensions with the largest KL, for items of the first classes), over
    [−span, span] with every other latent at its posterior mean."""
    model, guide, data = run.model, run.guide, run.data
    x, y = data.test.x, data.test.y
    K, dc = model.num_classes, model.class_dim
    names = data.label_names or [str(k) for k in range(K)]
    values = torch.linspace(-span, span, steps)
    paths = []
    with eval_mode(model, guide), isolated_rng(0):
        idx = _first_of_each_class(y, range(min(K, n_classes)))
        xb, yb = x[idx].to(model.device), y[idx].to(model.device)
        centre = posterior_means(guide.encode(xb, yb))["z"]
        rows, labels = [], []
        for i, k in enumerate(yb.tolist()):
            for j in range(dc):
                z = centre[i].repeat(steps, 1)
                z[:, model.class_slice(k).start + j] = values
                rows.append(model.decode({"z": z}, yb[i].repeat(steps)).cpu())
                labels.append(f"{names[k]}: z_c[{k}]{j}")
        grid = torch.stack(rows)
        paths.append(
            image_grid_figure(
                grid,
                out / f"traversals-class-{tag}.png",
                f"N-VAE on {tag}: class-dependent traversals (each class's own block of z_c)",
                xlabel="value of the dimension",
                ylabel="class: dimension",
                row_labels=labels,
                col_labels=[f"{v:.2g}" for v in values.tolist()],
            )
        )
        shared_kl = np.asarray(per_dim_kl[K * dc :])
        if len(shared_kl):
            top = np.argsort(-shared_kl)[:n_shared].tolist()
            rows, labels = [], []
            for j in top:
                for i, k in enumerate(yb.tolist()[: min(4, len(idx))]):
                    z = centre[i].repeat(steps, 1)
                    z[:, model.shared_slice.start + j] = values
                    rows.append(model.decode({"z": z}, yb[i].repeat(steps)).cpu())
                    labels.append(f"z_s{j} (KL {shared_kl[j]:.2f}): {names[k]}")
            paths.append(
                image_grid_figure(
                    torch.stack(rows),
                    out / f"traversals-shared-{tag}.png",
                    f"N-VAE on {tag}: shared traversals (the {len(top)} z_s dimensions with the "
                    "largest KL), the same dimension across classes",
                    xlabel="value of the dimension",
                    ylabel="dimension: class",
                    row_labels=labels,
                    col_labels=[f"{v:.2g}" for v in values.tolist()],
                )
            )
    return paths


def _mean_std(v: Sequence[float]) -> dict[str, float]:
    a = np.asarray(v, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


@EXPERIMENTS.register(
    "nvae-kl", help="N-VAE's KL detector of class-dependent factors and its traversals (MNIST, Yale B)"
)
def run_kl(
    out: Path,
    scale: str = "small",
    seed: int = 0,
    data_root: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    s = resolve_settings(KL_SCALES, scale, overrides)
    data_root = _absolute_root(data_root)
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    figures: list[str] = []
    summary: dict[str, Any] = {}
    t_start = time.perf_counter()
    for name, args in _datasets(s):
        data = load_dataset(name, root=data_root, seed=seed, **args)
        kind, K = data.label_kind()
        if kind != "class":
            raise ValueError(
                f"nvae-kl needs a dataset with one integer class per example; {name!r} has "
                f"{'no labels' if kind is None else kind + ' labels'}"
            )
        per_seed = []
        for sd in range(seed, seed + s["seeds"]):
            t0 = time.perf_counter()
            run = fit(
                out,
                f"nvae-{name}-seed{sd}",
                model="nvae",
                guide="nvae-dirichlet",
                objective="nvae",
                data=name,
                data_args=args,
                data_root=data_root,
                dataset=data,
                seed=sd,
                model_args={
                    "class_dim": s["class_dim"],
                    "shared_dim": s["shared_dim"],
                    "hidden": s["hidden"],
                    "arch": s["arch"],
                },
                guide_args={"hidden": s["hidden"]},
                objective_args={"class_weight": s["class_weight"], "dirichlet": s["dirichlet"]},
                steps=s["steps"],
                batch_size=s["batch_size"],
                lr=s["lr"],
                eval_every=s["steps"],
                checkpoint_every=s["steps"],
                eval_batches=2,
            )
            seconds = time.perf_counter() - t0
            kl = kl_detector(run.model, run.guide, data.test.x, data.test.y)
            with eval_mode(run.guide), torch.no_grad():
                q_acc = float((run.guide.class_probs(data.test.x).argmax(-1).cpu() == data.test.y).float().mean())
            row = {
                "data": name,
                "seed": sd,
                "classes": K,
                "n_train": len(data.train),
                "n_test": len(data.test),
                "shape": list(data.shape),
                **{k: v for k, v in kl.items() if k != "per_dim"},
                "encoder_class_accuracy": q_acc,
                **run_summary(run, out, seconds),
            }
            rows.append(row)
            per_seed.append((run, kl))
            say(
                f"nvae-kl {name} seed {sd}: KL z_c {kl['class_total']:.2f} (own block {kl['class_own']:.2f}), "
                f"KL z_s {kl['shared']:.2f}, {seconds:.0f} s"
            )
        summary[name] = {
            key: _mean_std([kl[key] for _, kl in per_seed])
            for key in ("class_total", "class_own", "class_other", "shared", "class_own_per_dim", "shared_per_dim")
        }
        run, kl = per_seed[0]
        if data.is_image:  # traversals are image grids
            figures += [
                str(p.relative_to(out))
                for p in traversal_figures(
                    run, out / "figures", name, s["traverse_classes"], s["traverse_shared"], kl["per_dim"]
                )
            ]
    table = {
        "experiment": "nvae-kl",
        "paper": PAPER,
        "paper_claim": PAPER_KL,
        "scale": scale,
        "seed": seed,
        "overrides": dict(overrides or {}),
        "command": command("nvae-kl", scale, seed, overrides),
        "settings": s,
        "rows": rows,
        "summary": summary,
        "figures": figures,
        "seconds": time.perf_counter() - t_start,
    }
    write_results(out, table, kl_markdown(table))
    return table


def kl_markdown(table: dict[str, Any]) -> list[str]:
    s = table["settings"]
    lines = [
        f"### nvae-kl (scale {table['scale']})",
        "",
        f"{table['command']}: {s['steps']} steps of batch "
        f"{s['batch_size']}, lr {s['lr']}, {s['seeds']} seed(s) from {table['seed']}; class_dim {s['class_dim']}, "
        f"shared_dim {s['shared_dim']}, {s['arch']} nets of {s['hidden']}; λ = {s['class_weight']} "
        f"({s['dirichlet']}). KL in nats per test image (mean ± std over seeds when there are several).",
        "",
        "| data | classes | train / test | KL z_c (all blocks) | own block | K − 1 masked blocks | KL z_s | "
        "per dim: own block / z_s | encoder accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, sm in table["summary"].items():
        r = next(r for r in table["rows"] if r["data"] == name)
        acc = np.mean([q["encoder_class_accuracy"] for q in table["rows"] if q["data"] == name])
        f = lambda k: f"{sm[k]['mean']:.2f}" + (f" ± {sm[k]['std']:.2f}" if sm[k]["n"] > 1 else "")  # noqa: E731
        lines.append(
            f"| {name} | {r['classes']} | {r['n_train']} / {r['n_test']} | {f('class_total')} | "
            f"{f('class_own')} | {f('class_other')} | {f('shared')} | {sm['class_own_per_dim']['mean']:.2f} / "
            f"{sm['shared_per_dim']['mean']:.2f} | {acc:.3f} |"
        )
    lines += ["", f"Paper's claim: {table['paper_claim']}.", ""]
    return lines


# -- data augmentation ----------------------------------------------------------------------------------------------
MODELS = ("nvae", "cvae", "cgan", "acgan")

AUG_SCALES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        data="mnist",
        data_args={"binarize": "none"},
        vae_data_args={"binarize": "stochastic"},
        n_real=100,
        n_test=100,
        models=list(MODELS),
        steps=3,
        gan_steps=3,
        batch_size=50,
        lr=1e-3,
        gan_lr=2e-4,
        class_dim=2,
        shared_dim=2,
        hidden=32,
        arch="mlp",
        class_weight=1.0,
        sigmas=[1.0, 2.0],
        proportions=[0.5, 1.0],
        seeds=1,
        classifier_steps=5,
        classifier_input="flat",
    ),
    "small": dict(
        data="mnist",
        data_args={"binarize": "none"},
        vae_data_args={"binarize": "stochastic"},
        n_real=2000,
        n_test=2000,
        models=list(MODELS),
        steps=1500,
        gan_steps=1500,
        batch_size=100,
        lr=1e-3,
        gan_lr=2e-4,
        class_dim=2,
        shared_dim=8,
        hidden=256,
        arch="mlp",
        class_weight=1.0,
        sigmas=[0.5, 1.0, 2.0, 3.0],
        proportions=[0.5, 1.0],
        seeds=3,
        classifier_steps=500,
        classifier_input="flat",
    ),
    "full": dict(
        data="mnist",
        data_args={"binarize": "none"},
        vae_data_args={"binarize": "stochastic"},
        n_real=60000,
        n_test=10000,
        models=list(MODELS),
        steps=30000,
        gan_steps=30000,
        batch_size=100,
        lr=1e-3,
        gan_lr=2e-4,
        class_dim=2,
        shared_dim=8,
        hidden=400,
        arch="auto",
        class_weight=1.0,
        sigmas=[0.5, 1.0, 1.5, 2.0, 3.0, 4.0],
        proportions=[0.5, 1.0],
        seeds=5,
        classifier_steps=2000,
        classifier_input="image",
    ),
}

PAPER_AUG = (
    "on MNIST, N-VAE is the only model whose generated samples keep lowering the classifier's error as σ "
    "grows (Fig. 9a); trained on generated samples only, CGAN is best at σ = 1 with N-VAE a close second, and "
    "N-VAE is best as σ grows (Fig. 9c); numbers only in the figure"
)


def augmentation_config(name: str, s: dict[str, Any]) -> dict[str, Any]:
    """The fit settings of one of the four models (the same decoder/generator network for all)."""
    code = s["class_dim"] + s["shared_dim"]
    if name == "nvae":
        return dict(
            model="nvae",
            guide="nvae-dirichlet",
            objective="nvae",
            steps=s["steps"],
            lr=s["lr"],
            model_args={
                "class_dim": s["class_dim"],
                "shared_dim": s["shared_dim"],
                "hidden": s["hidden"],
                "arch": s["arch"],
            },
            guide_args={"hidden": s["hidden"]},
            objective_args={"class_weight": s["class_weight"]},
        )
    if name == "cvae":
        return dict(
            model="cvae",
            guide="cvae",
            steps=s["steps"],
            lr=s["lr"],
            model_args={"latent_dim": code, "hidden": s["hidden"], "arch": s["arch"]},
            guide_args={"hidden": s["hidden"]},
        )
    if name in ("cgan", "acgan"):
        return dict(
            model=name,
            steps=s["gan_steps"],
            lr=s["gan_lr"],
            model_args={"latent_dim": code, "hidden": s["hidden"], "arch": s["arch"]},
            objective_args={"disc_hidden": s["hidden"], "disc_lr": s["gan_lr"]},
        )
    raise ValueError(f"unknown model {name!r} for nvae-augmentation; valid: {', '.join(MODELS)}")


@torch.no_grad()
def generate(model, y: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """Samples for the classes ``y`` from codes z ~ N(0, σ² I): ``sample_prior`` (every other latent as the model
    draws it), the code site scaled by σ, then ``decode`` — the same path for every model of the contract."""
    with eval_mode(model), isolated_rng(seed):
        latents = model.sample_prior(len(y), y.to(model.device))
        latents[model.code_site] = sigma * latents[model.code_site]
        return model.decode(latents, latents.get("y", y)).cpu()


def _classifier_view(x: torch.Tensor, how: str) -> torch.Tensor:
    if how == "flat":
        return x.reshape(len(x), -1)
    if how == "image":
        return x
    raise ValueError(f"classifier_input must be 'flat' or 'image', got {how!r}")


def balanced_labels(n: int, K: int) -> torch.Tensor:
    """n labels, as equal a number of each of the K classes as n allows."""
    return torch.arange(n) % K


@EXPERIMENTS.register("nvae-augmentation", help="N-VAE vs CVAE, CGAN, AC-GAN: a classifier trained on generated data")
def run_augmentation(
    out: Path,
    scale: str = "small",
    seed: int = 0,
    data_root: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    s = resolve_settings(AUG_SCALES, scale, overrides)
    for name in s["models"]:
        augmentation_config(name, s)  # unknown names refused before anything is read
    for p in s["proportions"]:
        if not 0 < float(p) <= 1:
            raise ValueError(f"--set proportions: each must be in (0, 1] (the generated fraction), got {p}")
    data_root = _absolute_root(data_root)
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    args = {**s["data_args"], "n_train": s["n_real"], "n_test": s["n_test"]}
    data = load_dataset(s["data"], root=data_root, seed=seed, **args)
    kind, K = data.label_kind()
    if kind != "class":
        raise ValueError(
            f"nvae-augmentation needs a dataset with one integer class per example; {s['data']!r} has none"
        )
    vae_args = {**args, **s["vae_data_args"]}
    vae_data = load_dataset(s["data"], root=data_root, seed=seed, **vae_args) if s["vae_data_args"] else data
    t_start = time.perf_counter()
    runs, fits = {}, {}
    for name in s["models"]:
        t0 = time.perf_counter()
        fit_args, fit_data = (vae_args, vae_data) if name in ("nvae", "cvae") else (args, data)
        runs[name] = fit(
            out,
            name,
            data=s["data"],
            data_args=fit_args,
            data_root=data_root,
            dataset=fit_data,
            seed=seed,
            batch_size=s["batch_size"],
            eval_every=max(1, s["steps"]),
            checkpoint_every=max(1, s["steps"]),
            eval_batches=2,
            **augmentation_config(name, s),
        )
        fits[name] = run_summary(runs[name], out, time.perf_counter() - t0)
        say(f"nvae-augmentation: fitted {name} in {fits[name]['train_seconds']} s")
    view = lambda x: _classifier_view(x, s["classifier_input"])  # noqa: E731
    x_real, y_real = data.train.x, data.train.y
    x_test, y_test = view(data.test.x), data.test.y
    n = len(x_real)
    rows: list[dict[str, Any]] = []
    for sd in range(seed, seed + s["seeds"]):
        recipe = Recipe(steps=s["classifier_steps"], seed=sd)
        baseline = train_classifier(view(x_real), y_real, "class", K, recipe)
        base_err = 1.0 - accuracy(baseline, x_test, y_test)
        rows.append({"model": "real only", "sigma": None, "proportion": 0.0, "seed": sd, "test_error": base_err})
        y_gen = balanced_labels(n, K)
        for name in s["models"]:
            for sigma in s["sigmas"]:
                x_gen = generate(runs[name].model, y_gen, float(sigma), seed=10_000 * sd + int(1000 * float(sigma)))
                fidelity = accuracy(baseline, view(x_gen), y_gen)
                for p in s["proportions"]:
                    if float(p) >= 1.0:
                        x_train, y_train = view(x_gen), y_gen
                    else:  # the real set plus generated images making up a fraction p of the training set
                        m = int(round(n * float(p) / (1.0 - float(p))))
                        reps = -(-m // n)
                        xg, yg = x_gen.repeat(reps, *([1] * (x_gen.dim() - 1)))[:m], y_gen.repeat(reps)[:m]
                        x_train, y_train = torch.cat([view(x_real), view(xg)]), torch.cat([y_real, yg])
                    clf = train_classifier(x_train, y_train, "class", K, recipe)
                    err = 1.0 - accuracy(clf, x_test, y_test)
                    rows.append(
                        {
                            "model": name,
                            "sigma": float(sigma),
                            "proportion": float(p),
                            "seed": sd,
                            "test_error": err,
                            "generated_class_accuracy": fidelity,
                        }
                    )
            say(f"nvae-augmentation seed {sd}: {name} done ({time.perf_counter() - t_start:.0f} s so far)")
    summary = augmentation_summary(rows)
    figures = augmentation_figures(out, rows, summary, runs, s, K, data.label_names)
    table = {
        "experiment": "nvae-augmentation",
        "paper": PAPER,
        "paper_claim": PAPER_AUG,
        "scale": scale,
        "seed": seed,
        "overrides": dict(overrides or {}),
        "command": command("nvae-augmentation", scale, seed, overrides),
        "settings": s,
        "classes": K,
        "n_real": n,
        "n_test": len(data.test),
        "fits": fits,
        "rows": rows,
        "summary": summary,
        "figures": [str(p.relative_to(out)) for p in figures],
        "seconds": time.perf_counter() - t_start,
    }
    write_results(out, table, augmentation_markdown(table))
    return table


def augmentation_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std over seeds of the test error (and the generated samples' class accuracy) per setting."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["sigma"], r["proportion"]), []).append(r)
    out = []
    for (model, sigma, p), rs in groups.items():
        entry = {
            "model": model,
            "sigma": sigma,
            "proportion": p,
            "test_error": _mean_std([r["test_error"] for r in rs]),
        }
        if "generated_class_accuracy" in rs[0]:
            entry["generated_class_accuracy"] = _mean_std([r["generated_class_accuracy"] for r in rs])
        out.append(entry)
    return out


def augmentation_markdown(table: dict[str, Any]) -> list[str]:
    s = table["settings"]
    lines = [
        f"### nvae-augmentation (scale {table['scale']})",
        "",
        f"{table['command']}: {table['n_real']} real training / {table['n_test']} real test images of "
        f"{s['data']}; each model fitted once (seed {table['seed']}) for {s['steps']} (VAEs) / {s['gan_steps']} "
        f"(GANs) steps of batch {s['batch_size']}; the fixed classifier ({s['classifier_input']} input, "
        f"{s['classifier_steps']} steps) trained {s['seeds']} time(s) per setting (seeds {table['seed']}..), "
        "each with a fresh draw of the generated images. Test error on the real test images, mean ± std over "
        "seeds; in brackets, the fraction of generated images the real-only classifier assigns to the class "
        "they were generated for.",
        "",
    ]
    summ = table["summary"]
    base = next(e for e in summ if e["model"] == "real only")["test_error"]
    lines.append(f"Real images only: test error {base['mean']:.4f} ± {base['std']:.4f}.")
    for p in s["proportions"]:
        what = (
            "generated only" if float(p) >= 1.0 else f"real + generated ({float(p):.0%} of the training set generated)"
        )
        lines += [
            "",
            f"**{what}**",
            "",
            "| model | " + " | ".join(f"σ = {float(v):g}" for v in s["sigmas"]) + " |",
            "| --- |" + " --- |" * len(s["sigmas"]),
        ]
        for m in s["models"]:
            cells = []
            for v in s["sigmas"]:
                e = next(e for e in summ if e["model"] == m and e["sigma"] == float(v) and e["proportion"] == float(p))
                cells.append(
                    f"{e['test_error']['mean']:.4f} ± {e['test_error']['std']:.4f} "
                    f"[{e['generated_class_accuracy']['mean']:.2f}]"
                )
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", f"Paper's claim: {table['paper_claim']}.", ""]
    return lines


COLOURS = {"nvae": "tab:red", "cvae": "tab:blue", "cgan": "tab:green", "acgan": "tab:purple"}


def augmentation_figures(out: Path, rows, summary, runs, s, K: int, label_names) -> list[Path]:
    """``augmentation.png`` (test error against σ, one panel per proportion, error bars = std over seeds, the real-only
    classifier as a band) and ``samples-<model>.png`` (one row per σ, one column per class)."""
    paths = []
    props = [float(p) for p in s["proportions"]]
    fig = Figure(figsize=(5.2 * len(props), 4.2))
    axes = fig.subplots(1, len(props), squeeze=False)[0]
    base = next(e for e in summary if e["model"] == "real only")["test_error"]
    for ax, p in zip(axes, props):
        ax.axhspan(base["mean"] - base["std"], base["mean"] + base["std"], color="0.85")
        ax.axhline(base["mean"], color="0.4", ls="--", lw=1, label="real only")
        for m in s["models"]:
            pts = sorted((e["sigma"], e["test_error"]) for e in summary if e["model"] == m and e["proportion"] == p)
            ax.errorbar(
                [v for v, _ in pts],
                [t["mean"] for _, t in pts],
                yerr=[t["std"] for _, t in pts],
                marker="o",
                capsize=3,
                color=COLOURS.get(m),
                label=m,
            )
        ax.set_xlabel("σ of the generated codes z ~ N(0, σ² I)")
        ax.set_ylabel("classifier test error (real test images)")
        ax.set_title("generated only" if p >= 1.0 else f"real + generated ({p:.0%} generated)", fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"{s['data']}: the fixed classifier trained with generated data ({s['seeds']} seed(s); bars: std)", fontsize=10
    )
    paths.append(save_figure(fig, out / "augmentation.png"))
    names = label_names or [str(k) for k in range(K)]
    y = torch.arange(min(K, 10))
    for m, run in runs.items():
        grid = torch.stack([generate(run.model, y, float(v), seed=7) for v in s["sigmas"]])
        if grid.dim() == 5:  # images only
            paths.append(
                image_grid_figure(
                    grid,
                    out / "figures" / f"samples-{m}.png",
                    f"{m}: one sample per class (columns) for each σ (rows)",
                    xlabel="class",
                    ylabel="σ",
                    col_labels=names[: len(y)],
                    row_labels=[f"σ = {float(v):g}" for v in s["sigmas"]],
                )
            )
    return paths
