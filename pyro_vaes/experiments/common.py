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

The contract that runs an experiment (settings, the seed loop, the results envelope and its files) is
:class:`pyro_vaes.experiments.base.Experiment`; this module holds the helpers it and the experiments share:
:func:`resolve_settings`, :func:`seeds`, :func:`command`, :func:`mean_std` (NaN-aware mean ± std over seeds),
:func:`format_mean_std`, :func:`markdown_table`, :func:`write_results`, :data:`COLOURS`, :func:`fit` and the common
figures.
"""

from __future__ import annotations

import json
import math
import re
import shlex
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
    if "seeds" in settings:
        seeds(0, settings)  # seeds < 1 refused here, before any data is read
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


def seeds(first: int, settings: dict[str, Any]) -> range:
    """The seeds an experiment runs: ``first .. first + settings["seeds"] - 1`` (one seed when it has no ``seeds``)."""
    n = settings.get("seeds", 1)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"--set seeds={n!r}: expected an integer >= 1")
    return range(first, first + n)


def command(name: str, scale: str, seed: int, overrides: dict[str, Any] | None = None) -> str:
    """The command line that reruns an experiment with these settings, in backticks: one ``--set KEY=JSON`` per
    override (sorted), single-quoted where a shell would change it (braces, brackets, spaces, ...)."""
    sets = "".join(f" --set {_shell_word(k, v)}" for k, v in sorted((overrides or {}).items()))
    return f"`pyro-vaes reproduce {name} --scale {scale} --seed {seed}{sets}`"


def _shell_word(key: str, value: Any) -> str:
    """``key=<value as JSON>`` as one shell word that ``--set`` reads back as ``value``."""
    from pyro_vaes.config import parse_value

    arg = f"{key}={json.dumps(value, separators=(',', ':'))}"
    if not re.search(r"[\s{}\[\]*?$`!;&|<>()'#~\\]", arg):
        words = shlex.split(arg)
        if len(words) == 1 and parse_value(words[0].partition("=")[2], arg) == value:
            return arg
    return shlex.quote(arg)


#: how many times a fit measures its held-out loss: the learning curve in ``metrics.jsonl`` that the convergence
#: check reads (:func:`convergence`) and ``pyro-vaes plot RUN --kind loss`` draws
CURVE_POINTS = 20


def eval_every(steps: int) -> int:
    """Steps between held-out evaluations for a fit of ``steps`` steps: :data:`CURVE_POINTS` points on the
    learning curve (one at the last step, one at 90 % of the budget when ``steps`` is a multiple of 20)."""
    return max(1, steps // CURVE_POINTS)


def convergence(run_dir: str | Path, fraction: float = 0.1, tolerance: float = 0.005) -> dict[str, Any]:
    """Whether a fit's held-out loss had stopped moving: its relative improvement over the last ``fraction`` of the
    steps, (L(s₀) − L(s_end)) / |L(s₀)| with s₀ the last evaluation at or before (1 − fraction) · s_end, read from
    ``run_dir/metrics.jsonl`` (a torn last line is ignored). ``converged`` is true when that improvement is below
    ``tolerance`` (0.5 % by default; a loss that rose counts as converged, its change is negative); None when the
    curve has no evaluation before the last tenth (a fit that evaluated only at its end)."""
    from pyro_vaes.engine.run_folder import metrics_rows

    rows, _ = metrics_rows(Path(run_dir))
    curve = [(r["step"], r["test_loss"]) for _, r in rows if r.get("test_loss") is not None]
    out: dict[str, Any] = {"points": len(curve), "fraction": fraction, "tolerance": tolerance}
    if not curve:
        return {**out, "improvement": None, "converged": None}
    end_step, end_loss = curve[-1]
    earlier = [(s, v) for s, v in curve if s <= (1 - fraction) * end_step]
    if not earlier:
        return {**out, "steps": end_step, "improvement": None, "converged": None}
    start_step, start_loss = earlier[-1]
    improvement = (start_loss - end_loss) / abs(start_loss) if start_loss else float("nan")
    return {
        **out,
        "steps": end_step,
        "from_step": start_step,
        "improvement": improvement,
        "converged": bool(improvement < tolerance),
    }


def convergence_lines(checks: dict[str, dict[str, Any]]) -> list[str]:
    """The results.md paragraph on the fits' learning curves (:func:`convergence` per run folder tag)."""
    if not checks:
        return []
    decided = {t: c for t, c in checks.items() if c.get("converged") is not None}
    head = "Convergence (held-out loss over the last 10 % of each fit's steps; converged: improved by less than 0.5 %)"
    if not decided:
        return [f"{head}: undecided, no fit evaluated before its last tenth.", ""]
    moving = sorted((t for t, c in decided.items() if not c["converged"]), key=lambda t: -decided[t]["improvement"])
    worst = max(decided.values(), key=lambda c: c["improvement"])["improvement"]
    text = f"{head}: {len(decided) - len(moving)} of {len(decided)} fits converged; the largest improvement {100 * worst:.2f} %"
    if moving:
        shown = ", ".join(f"`{t}` {100 * decided[t]['improvement']:.2f} %" for t in moving[:6])
        text += f"; still improving: {shown}" + (f" and {len(moving) - 6} more" if len(moving) > 6 else "")
    undecided = len(checks) - len(decided)
    text += f"; {undecided} undecided (no evaluation before the last tenth)" if undecided else ""
    return [text + ". `pyro-vaes plot OUT/runs/TAG --kind loss` draws a fit's curve.", ""]


#: fit settings that say how to fit, not what: never compared with a run folder's config.json
_HOW = ("dataset", "data_root", "device", "progress", "figures", "out", "overwrite")


def fit(out: Path, tag: str, progress: bool = False, **settings: Any):
    """Fit through :func:`pyro_vaes.fit` into the run folder ``out/runs/<tag>``, or load it when it is already a
    finished run of these settings (:func:`~pyro_vaes.engine.sweep.finished_run`: an experiment interrupted, or
    fitted by ``--jobs`` workers, resumes there); no figures. A loaded run leaves the random stream where its fit
    left it (the checkpoint's), so what follows draws the same numbers either way. Returns the
    :class:`~pyro_vaes.api.Run`, modules in eval mode; a folder of other settings is replaced."""
    import pyro_vaes
    from pyro_vaes.config import FitConfig, apply_shortcuts
    from pyro_vaes.engine.checkpoint import set_rng_state
    from pyro_vaes.engine.sweep import finished_run

    folder = Path(out) / "runs" / tag
    wanted = json.loads(json.dumps(apply_shortcuts({k: v for k, v in settings.items() if k not in _HOW})))
    if finished_run(folder, {"steps": FitConfig().steps, **wanted}):
        run = pyro_vaes.load(
            folder,
            device=settings.get("device", "cpu"),
            dataset=settings.get("dataset"),
            data_root=settings.get("data_root"),
        )
        set_rng_state(torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)["rng"])
    else:
        run = pyro_vaes.fit(out=folder, overwrite=True, figures=False, progress=progress, **settings)
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
    """An experiment's progress line (experiments may print; library code may not)."""
    print(msg, flush=True)


# -- summaries over seeds ------------------------------------------------------------------------------------------
def mean_std(values: Sequence[float | None]) -> dict[str, float | int]:
    """Mean and sample standard deviation (ddof 1; 0 for one value) of the finite ``values`` — NaN, ±inf and None
    (a failed seed) are left out — with ``n``, how many were finite, and ``seeds``, how many there were. No finite
    value: mean and std are NaN."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    a = np.asarray(finite, dtype=np.float64)
    mean = float(a.mean()) if len(a) else float("nan")
    std = float(a.std(ddof=1)) if len(a) > 1 else (0.0 if len(a) else float("nan"))
    return {"mean": mean, "std": std, "n": len(a), "seeds": len(values)}


def format_mean_std(stat: dict[str, Any], digits: int = 3) -> str:
    """``mean ± std`` of a :func:`mean_std` result, with ``(n/seeds finite)`` when some seeds gave no number."""
    text = f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return text if stat["n"] == stat["seeds"] else f"{text} ({stat['n']}/{stat['seeds']} finite)"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table's lines: the header, the rule, one line per row (cells written with ``str``)."""
    line = lambda cells: "| " + " | ".join(str(c) for c in cells) + " |"  # noqa: E731
    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows)]


#: one colour per model family / prior, the same in every experiment's figures; :func:`colour` for any other name
COLOURS = {
    "chyvae": "tab:red",
    "beta-vae": "tab:blue",
    "factor-vae": "tab:green",
    "nvae": "tab:red",
    "cvae": "tab:blue",
    "cgan": "tab:green",
    "acgan": "tab:purple",
    "normal": "tab:blue",
    "flow": "tab:red",
}


def colour(name: str, index: int = 0) -> str:
    """:data:`COLOURS`' colour of ``name``, else matplotlib's ``C<index>``."""
    return COLOURS.get(name, f"C{index % 10}")


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
