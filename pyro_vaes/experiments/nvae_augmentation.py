"""``pyro-vaes reproduce nvae-augmentation``: generated data for a classifier (Antorán & Miguel, 2019, Fig. 9).

N-VAE, CVAE, CGAN and AC-GAN are fitted once (the first seed) on the same ``n_real`` labelled MNIST images; each
generates class-balanced samples from codes z ~ N(0, σ² I) (:func:`~pyro_vaes.experiments.nvae.generate`: every
latent of the code site, by ``sample_prior`` then scaled, then ``decode``: the one contract path for the four models);
the project's fixed classifier (:mod:`pyro_vaes.metrics.classifier`) is trained on the real images plus as many
generated ones (``proportion`` 0.5 of the training set generated) or on generated images only (``proportion`` 1.0),
for each σ, and its error is measured on the real test images; ``seeds`` repeats the generation and the classifier's
training (error bars: standard deviation over seeds). The real-only classifier of each seed also scores every
generated set: the fraction classified as the class it was asked for. Figures: ``augmentation.png`` and
``figures/samples-<model>.png``. The choices where the paper is silent are listed in :mod:`pyro_vaes.experiments.nvae`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from pyro_vaes.analysis.plots import save_figure
from pyro_vaes.experiments.base import Context, register
from pyro_vaes.experiments.common import (
    colour,
    eval_every,
    format_mean_std,
    image_grid_figure,
    markdown_table,
    mean_std,
    run_summary,
)
from pyro_vaes.experiments.nvae import NVAEExperiment, class_count, generate, nvae_fit_settings, runs_data_root
from pyro_vaes.metrics.classifier import Recipe, accuracy, train_classifier

MODELS = ("nvae", "cvae", "cgan", "acgan")

_TINY: dict[str, Any] = dict(
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
)
AUG_SCALES: dict[str, dict[str, Any]] = {
    "tiny": _TINY,
    "small": dict(
        _TINY,
        n_real=2000,
        n_test=2000,
        steps=1500,
        gan_steps=1500,
        batch_size=100,
        shared_dim=8,
        hidden=256,
        sigmas=[0.5, 1.0, 2.0, 3.0],
        seeds=3,
        classifier_steps=500,
    ),
    "full": dict(
        _TINY,
        n_real=60000,
        n_test=10000,
        steps=30000,
        gan_steps=30000,
        batch_size=100,
        shared_dim=8,
        hidden=400,
        arch="auto",
        sigmas=[0.5, 1.0, 1.5, 2.0, 3.0, 4.0],
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
    net = {"latent_dim": s["class_dim"] + s["shared_dim"], "hidden": s["hidden"], "arch": s["arch"]}
    if name == "nvae":
        return dict(nvae_fit_settings(s), steps=s["steps"], lr=s["lr"])
    if name == "cvae":
        return dict(
            model="cvae", guide="cvae", steps=s["steps"], lr=s["lr"], model_args=net, guide_args={"hidden": s["hidden"]}
        )
    if name in ("cgan", "acgan"):
        disc = {"disc_hidden": s["hidden"], "disc_lr": s["gan_lr"]}
        return dict(model=name, steps=s["gan_steps"], lr=s["gan_lr"], model_args=net, objective_args=disc)
    raise ValueError(f"unknown model {name!r} for nvae-augmentation; valid: {', '.join(MODELS)}")


def classifier_view(x: torch.Tensor, how: str) -> torch.Tensor:
    """The classifier's input: the images flattened (``flat``) or as they are (``image``)."""
    if how == "flat":
        return x.reshape(len(x), -1)
    if how == "image":
        return x
    raise ValueError(f"classifier_input must be 'flat' or 'image', got {how!r}")


def balanced_labels(n: int, K: int) -> torch.Tensor:
    """n labels, as equal a number of each of the K classes as n allows."""
    return torch.arange(n) % K


def data_args(s: dict[str, Any], vae: bool = False) -> dict[str, Any]:
    """The dataset arguments of the real images (``vae``: as the VAEs see them, ``vae_data_args`` applied)."""
    return {**s["data_args"], "n_train": s["n_real"], "n_test": s["n_test"], **(s["vae_data_args"] if vae else {})}


class NVAEAugmentation(NVAEExperiment):
    """The four models fitted once (``prepare``); per seed, the generated sets and the classifiers trained on them."""

    name = "nvae-augmentation"
    help = "N-VAE vs CVAE, CGAN, AC-GAN: a classifier trained on generated data"
    scales = AUG_SCALES
    claim = PAPER_AUG
    fits_per_seed = False  # the four models are fitted once, in prepare; seeds differ only in their classifiers

    def prepare(self, settings: dict[str, Any], context: Context) -> None:
        s = settings
        for name in s["models"]:
            augmentation_config(name, s)  # unknown names refused before anything is read
        for p in s["proportions"]:
            if not 0 < float(p) <= 1:
                raise ValueError(f"--set proportions: each must be in (0, 1] (the generated fraction), got {p}")
        classifier_view(torch.zeros(1, 1), s["classifier_input"])  # refused before anything is fitted
        super().prepare(settings, context)
        data = context.data(s["data"], **data_args(s))
        K, fits = class_count(data, s["data"], self.name), {}
        for name in s["models"]:
            t0 = time.perf_counter()
            vae = name in ("nvae", "cvae")
            run = context.fit(
                name,
                data=s["data"],
                data_args=data_args(s, vae),
                data_root=runs_data_root(context.data_root),
                dataset=context.data(s["data"], **data_args(s, vae)),
                seed=context.seed,
                batch_size=s["batch_size"],
                eval_every=eval_every(s["steps"]),
                checkpoint_every=max(1, s["steps"]),
                eval_batches=2,
                **augmentation_config(name, s),
            )
            fits[name] = run_summary(run, context.out, time.perf_counter() - t0)
            context.say(f"nvae-augmentation: fitted {name} in {fits[name]['train_seconds']} s")
        context.extra.update(classes=K, n_real=len(data.train.x), n_test=len(data.test), fits=fits)

    def run_one(self, settings: dict[str, Any], seed: int, context: Context) -> list[dict[str, Any]]:
        s, t_start, K = settings, time.perf_counter(), context.extra["classes"]
        data = context.data(s["data"], **data_args(s))
        view = lambda x: classifier_view(x, s["classifier_input"])  # noqa: E731
        x_real, y_real = data.train.x, data.train.y
        x_test, y_test = view(data.test.x), data.test.y
        n = len(x_real)
        recipe = Recipe(steps=s["classifier_steps"], seed=seed)
        baseline = train_classifier(view(x_real), y_real, "class", K, recipe)
        base_err = 1.0 - accuracy(baseline, x_test, y_test)
        rows = [{"model": "real only", "sigma": None, "proportion": 0.0, "seed": seed, "test_error": base_err}]
        y_gen = balanced_labels(n, K)
        for name in s["models"]:
            for sigma in s["sigmas"]:
                x_gen = generate(
                    context.runs[name].model, y_gen, float(sigma), seed=10_000 * seed + int(1000 * float(sigma))
                )
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
                    row = {"model": name, "sigma": float(sigma), "proportion": float(p), "seed": seed}
                    rows.append({**row, "test_error": err, "generated_class_accuracy": fidelity})
            context.say(f"nvae-augmentation seed {seed}: {name} done ({time.perf_counter() - t_start:.0f} s this seed)")
        return rows

    def summary(self, rows: list[dict[str, Any]], settings: dict[str, Any]) -> list[dict[str, Any]]:
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
                "test_error": mean_std([r["test_error"] for r in rs]),
            }
            if "generated_class_accuracy" in rs[0]:
                entry["generated_class_accuracy"] = mean_std([r["generated_class_accuracy"] for r in rs])
            out.append(entry)
        return out

    def figures(self, rows: list[dict[str, Any]], context: Context) -> list[Path]:
        """``augmentation.png`` (test error against σ, one panel per proportion, error bars = std over seeds, the
        real-only classifier as a band) and ``figures/samples-<model>.png`` (one row per σ, one column per class)."""
        s, summary, out = context.settings, context.summary, context.out
        props = [float(p) for p in s["proportions"]]
        fig = Figure(figsize=(5.2 * len(props), 4.2))
        axes = fig.subplots(1, len(props), squeeze=False)[0]
        base = next(e for e in summary if e["model"] == "real only")["test_error"]
        for ax, p in zip(axes, props):
            ax.axhspan(base["mean"] - base["std"], base["mean"] + base["std"], color="0.85")
            ax.axhline(base["mean"], color="0.4", ls="--", lw=1, label="real only")
            for i, m in enumerate(s["models"]):
                pts = sorted((e["sigma"], e["test_error"]) for e in summary if e["model"] == m and e["proportion"] == p)
                means, stds = [t["mean"] for _, t in pts], [t["std"] for _, t in pts]
                ax.errorbar([v for v, _ in pts], means, yerr=stds, marker="o", capsize=3, color=colour(m, i), label=m)
            ax.set_xlabel("σ of the generated codes z ~ N(0, σ² I)")
            ax.set_ylabel("classifier test error (real test images)")
            ax.set_title("generated only" if p >= 1.0 else f"real + generated ({p:.0%} generated)", fontsize=10)
            ax.legend(fontsize=8)
        fig.suptitle(
            f"{s['data']}: the fixed classifier trained with generated data ({s['seeds']} seed(s); bars: std)",
            fontsize=10,
        )
        paths = [save_figure(fig, out / "augmentation.png")]
        K = context.extra["classes"]
        names = context.data(s["data"], **data_args(s)).label_names or [str(k) for k in range(K)]
        y = torch.arange(min(K, 10))
        for m in s["models"]:
            grid = torch.stack([generate(context.runs[m].model, y, float(v), seed=7) for v in s["sigmas"]])
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

    def markdown(self, table: dict[str, Any]) -> list[str]:
        s, summary = table["settings"], table["summary"]
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
        at = {(e["model"], e["sigma"], e["proportion"]): e for e in summary}

        def cell(e: dict[str, Any]) -> str:  # mean ± std of the test error [the generated images' class accuracy]
            return f"{format_mean_std(e['test_error'], 4)} [{e['generated_class_accuracy']['mean']:.2f}]"

        lines.append(f"Real images only: test error {format_mean_std(at['real only', None, 0.0]['test_error'], 4)}.")
        header = ["model"] + [f"σ = {float(v):g}" for v in s["sigmas"]]
        for p in map(float, s["proportions"]):
            what = "generated only" if p >= 1.0 else f"real + generated ({p:.0%} of the training set generated)"
            cells = [[m] + [cell(at[m, float(v), p]) for v in s["sigmas"]] for m in s["models"]]
            lines += ["", f"**{what}**", ""] + markdown_table(header, cells)
        return lines + ["", f"Paper's claim: {table['paper_claim']}.", ""]

    def verdicts(self, table: dict[str, Any]) -> list[dict[str, Any]]:
        """The paper's two claims on the classifier's test error (means over the classifier seeds; the generative
        models are fitted once): with half the training set generated, N-VAE's error falls at every step of σ (the
        only model whose samples keep helping as σ grows, Fig. 9a); on generated images only, CGAN is best at σ = 1
        (Fig. 9c). The paper shows figures: the rules are ours."""
        entries = [e for e in table["summary"] if e.get("sigma") is not None]
        if not entries:
            return super().verdicts(table)

        def errors(model: str, proportion: float) -> list[tuple[float, dict[str, Any]]]:
            return sorted((e["sigma"], e["test_error"]) for e in entries
                          if e["model"] == model and e["proportion"] == proportion)  # fmt: skip

        out = []
        nvae = errors("nvae", 0.5)
        if len(nvae) > 1:
            falls = all(b[1]["mean"] < a[1]["mean"] for a, b in zip(nvae, nvae[1:]))
            out.append(
                dict(
                    claim="N-VAE's generated images keep lowering the classifier's error as σ grows (Fig. 9a)",
                    metric="test error, real + generated (50 %), N-VAE, by σ",
                    ours=", ".join(f"σ {s:g}: {format_mean_std(e)}" for s, e in nvae),
                    seeds=nvae[0][1]["seeds"],
                    paper="figure only; ours decided as falling at every step of σ",
                    verdict="holds" if falls else "does not hold",
                )
            )
        at_one = {e["model"]: e["test_error"] for e in entries if e["sigma"] == 1.0 and e["proportion"] == 1.0}
        if "cgan" in at_one:
            best = min(at_one, key=lambda m: at_one[m]["mean"])
            out.append(
                dict(
                    claim="trained on generated images only, CGAN is best at σ = 1 (Fig. 9c)",
                    metric="test error, generated only, σ = 1",
                    ours=", ".join(f"{m} {format_mean_std(e)}" for m, e in at_one.items()),
                    seeds=at_one["cgan"]["seeds"],
                    paper="figure only; ours decided as CGAN's error the lowest",
                    verdict="holds" if best == "cgan" else "does not hold",
                )
            )
        return out


run_augmentation = register(NVAEAugmentation())
