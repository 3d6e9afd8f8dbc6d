"""What every paper experiment shares: scales and their overrides, fitting into run folders, results tables,
common figures, and the command that reruns it.

An experiment is registered in :data:`pyro_vaes.registry.EXPERIMENTS` as a callable

    run(out: Path, scale: str = "small", seed: int = 0, data_root: Optional[str] = None,
        overrides: Optional[Dict[str, Any]] = None) -> dict

that writes ``results.json``, ``results.md``, its figures and one run folder per fitted model under ``out`` and
returns the table. Its settings are one dict per scale (``tiny``: seconds, for tests; ``small``: a laptop CPU;
``full``: the paper's budgets); ``overrides`` (``pyro-vaes reproduce NAME --set steps=3000 --set seeds=3``)
replace any of them, type-checked against the scale's own value, and the table and its rerun command record
them, so no benchmark script re-implements an experiment to change its budget.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from pyro_vaes.analysis.plots import image_grid, save_figure

SCALE_NAMES = ("tiny", "small", "full")


def resolve_settings(
    scales: dict[str, dict[str, Any]],
    scale: str,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The settings of ``scale`` with ``overrides`` applied; an unknown scale or key, or a value of the wrong type,
    is refused with the valid choices."""
    if scale not in scales:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(scales)}")
    settings = dict(scales[scale])
    for key, value in (overrides or {}).items():
        if key not in settings:
            raise ValueError(f"--set {key}: no such setting; valid: {', '.join(sorted(settings))}")
        settings[key] = _typed(key, value, settings[key])
    return settings


def _typed(key: str, value: Any, default: Any) -> Any:
    """``value`` coerced to the kind of ``default`` (ints stay ints; an int is accepted for a float)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"--set {key}={value!r}: expected true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ValueError(f"--set {key}={value!r}: expected an integer")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"--set {key}={value!r}: expected a number")
        return float(value)
    if isinstance(default, (dict, list)) and not isinstance(value, type(default)):
        raise ValueError(f"--set {key}={value!r}: expected a {type(default).__name__}")
    return value


def command(name: str, scale: str, seed: int, overrides: dict[str, Any] | None = None) -> str:
    """The command line that reruns an experiment with these settings."""
    sets = "".join(f" --set {k}={json.dumps(v, separators=(',', ':'))}" for k, v in sorted((overrides or {}).items()))
    return f"`pyro-vaes reproduce {name} --scale {scale} --seed {seed}{sets}`"


def fit(out: Path, tag: str, progress: bool = False, **settings: Any):
    """Fit through :func:`pyro_vaes.fit` into the run folder ``out/runs/<tag>`` (replacing one this experiment
    wrote before), no figures; returns the :class:`~pyro_vaes.api.Run` with its modules in eval mode."""
    import pyro_vaes

    run = pyro_vaes.fit(out=Path(out) / "runs" / tag, overwrite=True, figures=False, progress=progress, **settings)
    for module in (run.model, run.guide):
        if module is not None:
            module.eval()
    return run


def run_summary(run, out: Path, seconds: float) -> dict[str, Any]:
    """What a fit reports: its run folder (relative to ``out``), the engine's running (EMA) train loss and its
    held-out loss per datum at the last step, and the wall time of the fit."""
    last = run.history[-1]
    return {
        "run_dir": str(Path(run.run_dir).relative_to(out)),
        "train_loss_per_datum": float(last["train_loss"]),
        "test_loss_per_datum": float(last["test_loss"]),
        "train_seconds": round(seconds, 1),
    }


def write_results(out: Path, table: dict[str, Any], markdown: list[str]) -> None:
    """``results.json`` (the table) and ``results.md`` (the markdown lines) in ``out``."""
    (Path(out) / "results.json").write_text(json.dumps(table, indent=2) + "\n")
    (Path(out) / "results.md").write_text("\n".join(markdown) + "\n")


def say(msg: str) -> None:
    print(msg, flush=True)


# -- common figures ------------------------------------------------------------------------------------------------
def image_grid_figure(
    images: torch.Tensor,
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    col_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """(rows, cols, C, H, W) images in [0, 1] as one titled, labelled PNG (:func:`pyro_vaes.analysis.plots.image_grid`)."""
    return image_grid(
        images.flatten(0, 1),
        images.shape[1],
        title,
        path,
        row_labels=row_labels,
        xlabel=xlabel,
        col_labels=col_labels,
        ylabel=ylabel,
    )


def tsne_figure(
    features: np.ndarray,
    labels: Sequence[int],
    names: Sequence[str],
    path: Path,
    title: str,
    seed: int,
    perplexity: float = 30.0,
) -> Path:
    """scikit-learn t-SNE (2-D) of features coloured by label (a class named ``random`` drawn in grey, underneath)."""
    from matplotlib import rcParams
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, (len(features) - 1) / 3)
    emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        (features - features.mean(0)) / (features.std(0) + 1e-8)
    )
    labels = np.asarray(labels)
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.subplots()
    colours = iter(rcParams["axes.prop_cycle"].by_key()["color"])
    for k, name in enumerate(names):
        sel = labels == k
        baseline = name == "random"  # the reference class: grey, drawn under the structured batches
        colour = "0.65" if baseline else next(colours)
        if sel.any():
            ax.scatter(
                emb[sel, 0],
                emb[sel, 1],
                s=10,
                color=colour,
                alpha=0.5 if baseline else 0.85,
                zorder=1 if baseline else 2,
                label=f"{name} ({int(sel.sum())})",
                edgecolors="none",
            )
    ax.set_title(title if "\n" in title else textwrap.fill(title, 60), fontsize=9)
    ax.set_xlabel("t-SNE 1"), ax.set_ylabel("t-SNE 2")
    ax.legend(
        fontsize=8,
        markerscale=2,
        title="batches",
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        frameon=False,
    )  # outside: never hides points
    return save_figure(fig, path)
