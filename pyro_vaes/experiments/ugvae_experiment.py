"""The common part of UG-VAE's four experiments under the experiment contract (:class:`UGVAEExperiment`): one
row per fitted model and seed, mean ± std over seeds, the first seed's entries of ``results.json`` (as they were
before seeds), its t-SNE figures, and ``results.md``'s frame and tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyro_vaes.data import VAEData
from pyro_vaes.experiments.base import Context, Experiment
from pyro_vaes.experiments.common import format_mean_std, markdown_table, mean_std, run_summary, tsne_figure
from pyro_vaes.experiments.ugvae_common import LR, PAPER, fit_model

MODEL_NAMES = {"ugvae": "UG-VAE", "mlvae": "ML-VAE", "gmvae": "GMVAE"}
#: a fit's entries in a row and in ``results.json``'s ``runs``
RUN_KEYS = ("run_dir", "train_loss_per_datum", "test_loss_per_datum", "train_seconds")
LOSSES = ("train_loss_per_datum", "test_loss_per_datum")


# -- results.md's tables ------------------------------------------------------------------------------------
def _three(v: float) -> str:
    return f"{v:.3f}"


def classification_rows(
    results: dict[str, dict[str, Any]],
    paper: dict[str, str] | None = None,
    cell: Callable[[Any], str] = _three,
) -> list[str]:
    """Markdown rows: model | task | kernel | train | test | chance (| paper), one per ``"model:task"`` result of
    :func:`~pyro_vaes.metrics.batch_classification.batch_classification` and kernel; ``cell`` writes a number (a
    :func:`~pyro_vaes.experiments.common.mean_std` result with :func:`format_mean_std`)."""
    header = ["model", "batches", "SVM", "train acc", "test acc", "chance (test)"] + (["paper (test)"] if paper else [])
    rows = []
    for key, res in results.items():
        model, task = key.split(":", 1)
        for kernel in ("linear", "rbf"):
            row = [
                model,
                task,
                kernel,
                cell(res[kernel]["train"]),
                cell(res[kernel]["test"]),
                cell(res["chance"]["test"]),
            ]
            rows.append(row + ([paper.get(f"{model}:{task}:{kernel}", "—")] if paper else []))
    return markdown_table(header, rows)


def run_rows(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows: model | run folder | train loss | held-out loss | training time."""
    header = ["model", "run folder", "train −ELBO / datum (EMA)", "held-out −ELBO / datum", "fit time (s)"]
    rows = [
        [
            MODEL_NAMES.get(name, name),
            f"`{r['run_dir']}`",
            f"{r['train_loss_per_datum']:.2f}",
            f"{r['test_loss_per_datum']:.2f}",
            f"{r['train_seconds']:.0f}",
        ]
        for name, r in runs.items()
    ]
    return markdown_table(header, rows)


def classification_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{"model:task": {kernel: {"train", "test"}, "chance": {"test"}}}`` with every number a :func:`mean_std`
    over the rows (seeds) that have that result: the shape of one seed's ``classification``."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        for task, res in r.get("classification", {}).items():
            groups.setdefault(f"{r['model']}:{task}", []).append(res)
    return {
        key: {
            kernel: {p: mean_std([res[kernel][p] for res in results]) for p in ("train", "test") if p in parts}
            for kernel, parts in results[0].items()
        }
        for key, results in groups.items()
    }


# -- the experiments' common part -----------------------------------------------------------------------------
class UGVAEExperiment(Experiment):
    """One UG-VAE experiment: ``run_one`` fits (:meth:`fit_row`) and measures one seed, a row per fitted model; the
    rows of the first seed give ``results.json``'s entries from before seeds (``runs``, ``classification``) and the
    figures (the t-SNE plots a row lists under ``_tsne``, then :meth:`draw`'s); ``summary`` is mean ± std over
    seeds; ``results.md`` is :meth:`body` framed by a heading and the figures, plus the mean ± std tables when
    several seeds ran. A run folder is ``OUT/runs/<model>`` with one seed, ``OUT/runs/<model>-seed<seed>`` with
    several."""

    paper = PAPER
    sizes: dict[str, int] = {}

    def prepare(self, settings: dict[str, Any], context: Context) -> None:
        context.extra.update(
            seed=context.seed, steps=settings["steps"], batch_size=settings["batch"], lr=LR, sizes=self.sizes
        )

    def record_first(self, seed: int, context: Context, **entries: Any) -> None:
        """``results.json`` entries describing the data, from the first seed."""
        if seed == context.seed:
            context.extra.update(entries)

    def fit_row(
        self,
        name: str,
        data: VAEData,
        data_name: str,
        data_args: dict[str, Any],
        settings: dict[str, Any],
        seed: int,
        context: Context,
    ) -> dict[str, Any]:
        """Fit ``name`` (:func:`fit_model`) with this experiment's sizes and budget: its row (seed, model, run
        folder, losses, fit time) with the :class:`~pyro_vaes.api.Run` under ``_run``."""
        t0 = time.perf_counter()
        run = fit_model(
            name,
            data,
            data_name,
            data_args,
            context.out,
            sizes=self.sizes,
            steps=settings["steps"],
            batch_size=settings["batch"],
            seed=seed,
            data_root=context.data_root,
            progress=context.progress,
            tag=name if settings["seeds"] == 1 else f"{name}-seed{seed}",
        )
        context.fitted.append(run.run_dir.name)
        return {"seed": seed, "model": name, **run_summary(run, context.out, time.perf_counter() - t0), "_run": run}

    def summary(self, rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
        """Mean ± std over seeds of every model's losses (``fits``) and, where measured, its batch
        classification (``classification``, shaped as one seed's)."""
        models = list(dict.fromkeys(r["model"] for r in rows))
        fits = {m: {k: mean_std([r[k] for r in rows if r["model"] == m]) for k in LOSSES} for m in models}
        classification = classification_summary(rows)
        return {"fits": fits, **({"classification": classification} if classification else {})}

    def figures(self, rows: list[dict[str, Any]], context: Context) -> list[Path]:
        first = [r for r in rows if r["seed"] == context.seed]
        context.extra["runs"] = {r["model"]: {k: r[k] for k in RUN_KEYS} for r in first}
        if any("classification" in r for r in first):
            context.extra["classification"] = {
                f"{r['model']}:{task}": res for r in first for task, res in r["classification"].items()
            }
        (context.out / "figures").mkdir(parents=True, exist_ok=True)
        perplexity = context.settings["perplexity"]
        paths = [
            tsne_figure(feats, labels, names, context.out / "figures" / f"{stem}.png", title, r["seed"], perplexity)
            for r in first
            for stem, feats, labels, names, title in r.get("_tsne", [])
        ]
        return paths + self.draw(first, context)

    def draw(self, first: list[dict[str, Any]], context: Context) -> list[Path]:
        """Figures other than the rows' t-SNE plots, from the first seed's rows."""
        return []

    def body(self, table: dict[str, Any]) -> list[str]:
        """``results.md`` between the heading and the figures: what ran, then the tables of the first seed."""
        raise NotImplementedError

    def markdown(self, table: dict[str, Any]) -> list[str]:
        lines = [f"# {table['experiment']} ({table['scale']}, seed {table['seed']})", "", *self.body(table)]
        lines += ["", "Figures: " + ", ".join(table["figures"])]
        n = table["settings"]["seeds"]
        if n == 1:
            return lines
        summary = table["summary"]
        lines += [
            "",
            f"Mean ± std over {n} seeds ({table['seed']} to {table['seed'] + n - 1}; the tables above and the "
            f"figures are seed {table['seed']}'s):",
            "",
            *markdown_table(
                ["model", "train −ELBO / datum (EMA)", "held-out −ELBO / datum"],
                [
                    [MODEL_NAMES.get(m, m), *(format_mean_std(s[k], 2) for k in LOSSES)]
                    for m, s in summary["fits"].items()
                ],
            ),
        ]
        if "classification" in summary:
            lines += ["", *classification_rows(summary["classification"], cell=format_mean_std)]
        return lines + self.seed_lines(table)

    def seed_lines(self, table: dict[str, Any]) -> list[str]:
        """More of ``results.md``'s mean ± std lines (several seeds only)."""
        return []
