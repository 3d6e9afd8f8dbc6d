"""The reproducibility table, generated from experiments' output folders (never typed by hand).

    python benchmarks/reproducibility_table.py RESULTS/* --out docs/reproducibility.md --figures docs/figures

For each experiment folder (its ``results.json`` and its run folders): a line with what its rows share — the
experiment and scale, the budget (steps, epochs, the paper's budget and the fraction of the ``full`` scale), seeds,
convergence (fits whose held-out loss improved by less than 0.5 % over their last 10 % of steps) and the command
that reran it — then one row per claim the experiment decides (:meth:`pyro_vaes.experiments.base.Experiment.verdicts`,
applied to the stored summary with the current rules): claim | metric | ours (± sd over seeds) | paper's | verdict.
Experiments are grouped by paper, each group between ``<!-- paper:NAME -->`` markers that the paper pages include.
With ``--figures``, each experiment's learning curves (held-out loss of every fit against steps) go to
``FIGURES/curves-<experiment>.png``. Folders without a ``results.json`` are named and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PAPERS = {"ugvae": "UG-VAE", "chyvae": "CHyVAE", "dpvae": "dpVAE", "nvae": "N-VAE", "csvae": "CSVAE"}
HEADER = ["claim", "metric", "ours", "paper's", "verdict"]


def budget(table: dict) -> str:
    """Steps, epochs and the fraction of the full scale's steps, as far as the settings say."""
    from pyro_vaes.registry import EXPERIMENTS

    s = table.get("settings", {})
    steps = s.get("steps")
    if steps is None:
        return "see results.md"
    parts = [f"{steps:,} steps"]
    n, batch = training_size(table), s.get("batch_size") or s.get("batch")
    if n and batch:
        parts.append(f"{steps * batch / n:.1f} epochs")
    experiment = EXPERIMENTS.get(table["experiment"])
    if getattr(experiment, "paper_budget", ""):
        parts[-1] += f" (the paper: {experiment.paper_budget})"
    full = getattr(experiment, "scales", {}).get("full", {}).get("steps")
    if full:
        parts.append(f"{100 * steps / full:.0f} % of `--scale full` ({full:,} steps)")
    seeds = s.get("seeds")
    return ", ".join(parts) + (f"; {seeds} seeds" if seeds else "")


def training_size(table: dict) -> int | None:
    """How many training items a fit sees, where the results record it: the ``n_train`` setting, the UG-VAE
    experiments' ``train_images``, or the first subset's training faces (CSVAE CelebA)."""
    subsets = table.get("subsets")
    first = next(iter(subsets.values()), {}) if isinstance(subsets, dict) else {}
    return table.get("settings", {}).get("n_train") or table.get("train_images") or first.get("data", {}).get("train")


def convergence(folder: Path, table: dict) -> dict[str, dict]:
    """The convergence check of every fit: as ``results.json`` records it, or read from the run folders."""
    from pyro_vaes.experiments.common import convergence as check

    if table.get("convergence"):
        return table["convergence"]
    return {p.parent.name: check(p.parent) for p in sorted((folder / "runs").glob("*/metrics.jsonl"))}


def converged_text(checks: dict[str, dict]) -> str:
    decided = [c for c in checks.values() if c.get("converged") is not None]
    if not decided:
        return "undecided (no learning curve)"
    worst = max(c["improvement"] for c in decided)
    return f"{sum(c['converged'] for c in decided)} of {len(decided)} (largest last-10 % gain {100 * worst:.2f} %)"


def block(folder: Path) -> tuple[str, str, list[str], dict[str, dict]]:
    """The paper key, the experiment's name, the markdown lines (the shared line, then the table) and the
    convergence checks of one experiment folder."""
    from pyro_vaes.registry import EXPERIMENTS

    table = json.loads((folder / "results.json").read_text())
    name = table["experiment"]
    experiment = EXPERIMENTS.get(name)
    verdicts = experiment.verdicts(table) if hasattr(experiment, "verdicts") else table.get("verdicts", [])
    checks = convergence(folder, table)
    lines = [
        f"**`{name}`** ({table['scale']} scale) — budget: {budget(table)}. Converged: {converged_text(checks)}. "
        f"Command: {table['command']}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "| " + " | ".join("---" for _ in HEADER) + " |",
    ]
    for v in verdicts:
        ours = v.get("ours") or "—"
        if v.get("seeds"):
            ours += f" ({v['seeds']} seeds)"
        cells = [v.get("claim") or "—", v.get("metric") or "—", ours, v.get("paper") or "—", f"**{v['verdict']}**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return name.split("-")[0], name, lines + [""], checks


def curves_figure(name: str, folder: Path, checks: dict[str, dict], path: Path) -> Path:
    """The held-out loss of every fit of one experiment against steps, one panel per kind of fit (the tag without
    its seed), each seed a line; the last tenth of the steps shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pyro_vaes.engine.run_folder import metrics_rows

    groups: dict[str, list[str]] = {}
    for tag in checks:
        groups.setdefault(tag.rsplit("-seed", 1)[0], []).append(tag)
    n = len(groups)
    cols = min(n, 4)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(max(3.2 * cols, 5.0), 2.4 * ((n + cols - 1) // cols) + 0.4),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    for ax, (group, tags) in zip(axes.flat, groups.items()):
        for tag in tags:
            rs = [r for _, r in metrics_rows(folder / "runs" / tag)[0] if r.get("test_loss") is not None]
            ax.plot([r["step"] for r in rs], [r["test_loss"] for r in rs], lw=1, label=tag.rsplit("-", 1)[-1])
        end = max((checks[t].get("steps") or 0) for t in tags)
        if end:
            ax.axvspan(0.9 * end, end, color="0.9", zorder=0)
        ax.set_title(group, fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel("held-out loss", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, frameon=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{name}: held-out loss per fit\n(shaded: the last 10 % of steps)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="experiment output folders (each with a results.json)")
    p.add_argument("--out", type=Path, help="the markdown file to write (default: print it)")
    p.add_argument("--figures", type=Path, help="folder for the learning-curve figures (default: none drawn)")
    args = p.parse_args()
    by_paper: dict[str, list[str]] = {}
    figures: dict[str, str] = {}
    for folder in args.results:
        if not (folder / "results.json").is_file():
            print(f"skipped {folder}: no results.json", file=sys.stderr)
            continue
        paper, name, lines, checks = block(folder)
        by_paper.setdefault(paper, []).extend(lines)
        if args.figures and checks:
            path = curves_figure(name, folder, checks, args.figures / f"curves-{name}.png")
            figures.setdefault(paper, [])
            figures[paper] += [f"![{name}: learning curves]({Path(args.figures.name) / path.name})"]
    lines = [
        "# Reproducibility",
        "",
        "Generated by `benchmarks/reproducibility_table.py` from each experiment's `results.json` and run folders "
        "(the verdict rules are the experiments' own, stated in each row's *paper's* cell); the line above each "
        "table gives its experiment's budget, convergence and the command that reruns it. *Converged* counts the "
        "fits whose held-out loss improved by less than 0.5 % over their last 10 % of steps, comparing two "
        "evaluations: a loss that rose counts too, and a noisy objective (adversarial, minibatch-estimated) can "
        "miss it with no trend left; the learning curves below each table show which is which. The paper pages "
        "discuss each row.",
        "",
    ]
    for key in PAPERS:
        if key not in by_paper:
            continue
        lines += [f"## {PAPERS[key]}", "", f"<!-- paper:{key} -->", ""]
        lines += [*by_paper[key], *[f + "\n" for f in figures.get(key, [])], f"<!-- end:{key} -->", ""]
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
