"""CHyVAE's figures (Ansari & Soh, 2019, Figs. 2–3): metric against reconstruction error, one point per run; each
family's best run's traversals; prior samples of the best CHyVAE run (Σ ~ IW(Ψ, ν), then z | Σ)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from pyro_vaes.analysis.plots import image_grid, save_figure
from pyro_vaes.experiments.common import COLOURS
from pyro_vaes.plumbing.isolation import isolated_rng

FAMILIES = ("chyvae", "beta-vae", "factor-vae")


def write_figures(out: Path, dataset: str, rows: list[dict[str, Any]], best: dict[str, tuple]) -> list[Path]:
    """``scatter.png``, the traversals of each family's best run and the best CHyVAE run's prior samples."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    symbol = {"nu": "ν", "beta": "β", "gamma": "γ"}
    for family in FAMILIES:
        fr = [r for r in rows if r["family"] == family]
        if not fr:
            continue
        x, y = [r["recon_error"] for r in fr], [r["factor_vae_metric"] for r in fr]
        ax.scatter(x, y, c=COLOURS[family], label=family, s=36, alpha=0.8)
        for r in fr:
            name = symbol.get(r["param"], r["param"])
            ax.annotate(
                f"{name}={r['value']:g}",
                (r["recon_error"], r["factor_vae_metric"]),
                xytext=(5, 3),
                textcoords="offset points",
                fontsize=7,
                alpha=0.8,
            )
    ax.margins(0.15)  # room for the points' labels inside the axes
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers (no offset text over the axis label), at most 5 ticks
        axis.set_major_formatter(ScalarFormatter(useOffset=False))
        axis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel("reconstruction error (BCE, nats per image; lower is better)")
    ax.set_ylabel("FactorVAE disentanglement metric (higher is better)")
    ax.set_title(f"{dataset}: disentanglement vs reconstruction, {len(rows)} runs (top-left is best)", fontsize=10)
    ax.legend(fontsize=8)
    paths = [save_figure(fig, out / "scatter.png")]
    for family, (run, _) in best.items():
        target = out / f"traversals-{family}.png"
        run.plot("traversals", out=out / "figures" / family)[0].replace(target)
        paths.append(target)
    if "chyvae" in best:
        run, row = best["chyvae"]
        with isolated_rng(0), torch.no_grad():
            x = run.model.sample(64).cpu()  # Σ ~ IW(Ψ, ν) by Bartlett, then z | Σ ~ N(0, Σ), decoded
        title = f"CHyVAE ν={row['value']:g}: prior samples (Σ ~ IW(Ψ, ν), z ~ N(0, Σ))"
        paths.append(image_grid(x, 8, title, out / "prior-samples-chyvae.png"))
    return paths
