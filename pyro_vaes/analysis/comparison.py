"""Compare variational families on one model: fit every guide with the same data, budget and seeds (or reuse run
folders), evaluate all of them on the same test examples with the same particles, split each one's inference gap
into its approximation and amortization parts (:mod:`pyro_vaes.analysis.inference_gap`), time their training steps side by
side, and write a table (``compare.md``, ``compare.json``) and a figure (``compare.png``).

    pyro-vaes compare vae --guides diagonal,full-covariance --data mnist --seeds 0,1,2 --steps 2000 --out cmp
    pyro-vaes compare --runs runs/a runs/b --out cmp          # runs already fitted (one model, one dataset)

The output folder is the comparison's own: new or empty, or a comparison written before (then every run folder in
it whose recorded settings match is reused, the rest are fitted, and the table and figure are rewritten). Nothing
else is ever replaced. Nothing is printed: what it is doing ("fitting ...", "reusing ...", "evaluating ...",
"written: ...") is logged at INFO on the ``pyro_vaes`` logger (``pyro-vaes compare`` prints those lines).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pyro_vaes.engine.sweep import check_executor, finished_run, run_tasks

RESULTS_JSON, RESULTS_MD, FIGURE = "compare.json", "compare.md", "compare.png"
LOGGER = logging.getLogger("pyro_vaes")
#: the step-time measurement: alternating blocks of this many loss + backward passes, median over blocks
TIMING_BLOCKS, TIMING_STEPS = 5, 5


def _check_out(out: Path) -> bool:
    """True when ``out`` holds an earlier comparison (continued; also one stopped before it wrote its results), False
    when absent or empty; anything else refused."""
    from pyro_vaes.engine import check_output
    from pyro_vaes.engine.run_folder import check_writable

    check_writable(out, "--out")
    if not out.exists():
        return False
    if not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder for the comparison")
    if not any(out.iterdir()):
        return False
    held = sorted(p.name for p in out.iterdir())
    # an earlier comparison: its results, or (stopped before it wrote them) only the run folders it fits into runs/
    stopped_early = set(held) <= {RESULTS_JSON, RESULTS_MD, FIGURE, "runs"} and (out / "runs").is_dir()
    if not (out / RESULTS_JSON).is_file() and not stopped_early:
        raise FileExistsError(
            f"--out {out} is not empty and holds no comparison ({', '.join(held[:5])}"
            f"{', ...' if len(held) > 5 else ''}); choose a new or empty folder"
        )
    for name in (RESULTS_MD, FIGURE):
        check_output(out / name, overwrite=True)
    return True


def _fit_one(folder: str, data_root: str | None, overwrite: bool, settings: dict[str, Any]) -> None:
    """A sweep worker's task: one fit of the comparison into ``folder``."""
    from pyro_vaes.api import fit

    fit(out=folder, overwrite=overwrite, figures=False, progress=False, data_root=data_root, **settings)


def _step_seconds(runs: list[Any], seed: int = 0) -> list[float]:
    """Seconds per training step (the objective's main loss and its backward pass on one training batch of the run's
    batch size), for each run, measured in alternating blocks in this process; the median block per run."""
    batches = []
    for run in runs:
        n = min(run.config.batch_size, len(run.data.train))
        x, y = run.data.train.batch(torch.arange(n))
        batches.append((x.to(run.model.device), None if y is None else y.to(run.model.device)))
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(TIMING_BLOCKS):
        for i, run in enumerate(runs):
            x, y = batches[i]
            modules = [m for m in (run.model, run.guide) if m is not None]
            for m in modules:
                m.train()
            t0 = time.perf_counter()
            for _ in range(TIMING_STEPS):
                loss = run.parts.objective.loss(x, y)
                loss.backward()
            times[i].append((time.perf_counter() - t0) / TIMING_STEPS)
            for m in modules:
                m.zero_grad(set_to_none=True)
                m.eval()
    return [statistics.median(t) for t in times]


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    vals = [float(v) for v in values]
    return {"mean": sum(vals) / len(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def compare(
    model: str | None = None,
    guides: Sequence[str] | None = None,
    *,
    out: str | Path,
    data: str | None = None,
    seeds: Sequence[int] = (0,),
    objective: str | None = None,
    runs: Sequence[str | Path] | None = None,
    num_particles: int = 100,
    max_examples: int = 100,
    refine_steps: int = 100,
    refine_particles: int = 10,
    data_root: str | None = None,
    progress: bool = True,
    jobs: int = 1,
    executor: str = "process",
    address: str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Fit (or reuse) and compare guides of one model; returns the table written to ``out/compare.json``.

    Either ``model`` (with ``guides``, default every guide registered for it, ``data`` and ``seeds``; ``settings``
    are further :class:`~pyro_vaes.config.FitConfig` fields shared by every fit, e.g. ``steps``, ``batch_size``,
    ``lr``, ``model_args``, ``data_args``), each guide trained with ``objective`` or, when None, its own default
    objective; or ``runs``, finished run folders of one model on one dataset. Every run is evaluated on the first
    ``max_examples`` test examples with ``num_particles`` importance samples, its local parameters refined for
    ``refine_steps`` steps (:func:`pyro_vaes.analysis.inference_gap.gaps`), and its training step timed side by side with the
    others'. Per guide the table holds the mean and the spread (standard deviation) over seeds of each number.
    ``progress`` shows progress bars on stderr; what is being fitted, reused and evaluated is logged at INFO on the
    ``pyro_vaes`` logger. With ``jobs`` > 1 (or ``executor="ray"``) the fits run first side by side
    (:func:`~pyro_vaes.engine.sweep.run_tasks`), then everything is evaluated here from their run folders: the
    numbers are those of ``jobs=1``."""
    from pyro_vaes.analysis.evaluation import evaluate
    from pyro_vaes.analysis.inference_gap import gaps
    from pyro_vaes.api import fit, load
    from pyro_vaes.config import FitConfig
    from pyro_vaes.plumbing.isolation import isolated_rng
    from pyro_vaes.registry import GUIDES, MODELS, guides_for

    out = Path(out)
    check_executor(jobs, executor, address)
    for name, value, least in (  # (the command line checks its --particles, --max-examples and --refine first)
        ("num_particles", num_particles, 1),
        ("max_examples", max_examples, 1),
        ("refine_steps", refine_steps, 0),
        ("refine_particles", refine_particles, 1),
    ):
        if value < least:
            raise ValueError(f"compare's {name} must be >= {least}, got {value}")
    if runs:
        if model is not None or guides or data is not None:
            raise ValueError("give either --runs or a model with --guides/--data, not both")
        continuing = _check_out(out)
        loaded = [load(r, data_root=data_root) for r in runs]
        pairs = {(r.config.model, r.config.data, json.dumps(r.config.data_args, sort_keys=True)) for r in loaded}
        if len(pairs) > 1:
            raise ValueError(f"--runs must share one model and one dataset; got {sorted(p[:2] for p in pairs)}")
        if any(r.guide is None for r in loaded):
            raise ValueError("a run without a guide has no variational family to compare")
        model = loaded[0].config.model
        entries = [(r.config.guide, r.config.seed, r) for r in loaded]
    else:
        if model is None or data is None:
            raise ValueError("compare needs a model and --data (or --runs)")
        MODELS.entry(model)  # an unknown name is one line naming the valid ones
        guides = list(guides) if guides else guides_for(model)
        if not guides:
            raise ValueError(f"model {model!r} has no guide: there are no variational families to compare")
        for g in guides:
            if g not in guides_for(model):
                GUIDES.entry(g)
                raise ValueError(
                    f"guide {g!r} does not fit model {model!r}; its guides: {', '.join(guides_for(model))}"
                )
        repeated = sorted({g for g in guides if guides.count(g) > 1})
        if repeated:
            raise ValueError(f"--guides lists {', '.join(repeated)} more than once; give each guide once")
        if len(set(seeds)) != len(seeds) or not seeds:
            raise ValueError(f"--seeds must be distinct and non-empty, got {list(seeds)}")
        continuing = _check_out(out)
        plan = []
        for g in guides:
            for seed in seeds:
                wanted = {"model": model, "guide": g, "data": data, "seed": seed, **settings}
                if objective is not None:
                    wanted["objective"] = objective
                plan.append((g, seed, out / "runs" / f"{g}-seed{seed}", wanted))

        def finished(folder: Path, wanted: dict[str, Any]) -> bool:
            return continuing and finished_run(folder, {"steps": FitConfig().steps, **wanted})

        todo = [(str(folder), data_root, continuing, w) for _, _, folder, w in plan if not finished(folder, w)]
        if len(todo) > 1 and (jobs > 1 or executor == "ray"):
            LOGGER.info("fitting %d runs side by side (%s, %d jobs)", len(todo), executor, jobs)
            run_tasks(_fit_one, todo, jobs=jobs, executor=executor, address=address)
            continuing = True  # every run is now a finished run of its settings: load them below
        entries = []
        for g, seed, folder, wanted in plan:
            if finished(folder, wanted):
                LOGGER.info("reusing %s", folder)
                run = load(folder, data_root=data_root)
            else:
                LOGGER.info("fitting %s with guide %s, seed %s -> %s", model, g, seed, folder)
                run = fit(
                    out=folder,
                    overwrite=continuing,
                    figures=False,
                    progress=progress,
                    data_root=data_root,
                    **wanted,
                )
            for m in (run.model, run.guide):
                m.eval()
            entries.append((g, seed, run))
    out.mkdir(parents=True, exist_ok=True)

    per_run = []
    for g, seed, run in entries:
        LOGGER.info("evaluating %s (seed %s)", g, seed)
        with isolated_rng(12345):  # every guide sees the same test examples and the same random streams
            ev = evaluate(
                run.model, run.guide, run.data.test, num_particles, max_examples=max_examples, progress=progress
            )
            gp = gaps(
                run.model,
                run.guide,
                run.data.test,
                max_examples=max_examples,
                refine_steps=refine_steps,
                refine_particles=refine_particles,
                num_particles=num_particles,
                progress=progress,
            )
        per_run.append(
            {
                "guide": g,
                "seed": seed,
                "objective": run.config.objective,
                "steps": run.config.steps,
                "run_dir": str(run.run_dir),
                "evaluation": ev,
                "gaps": gp,
            }
        )
    for row, secs in zip(per_run, _step_seconds([r for _, _, r in entries])):
        row["step_ms"] = 1000 * secs

    table: dict[str, Any] = {
        "model": model,
        "data": entries[0][2].config.data,
        "data_args": entries[0][2].config.data_args,
        "num_particles": num_particles,
        "max_examples": max_examples,
        "refine_steps": refine_steps,
        "refine_particles": refine_particles,
        "runs": per_run,
        "guides": {},
    }
    for g in dict.fromkeys(r["guide"] for r in per_run):
        rows = [r for r in per_run if r["guide"] == g]
        summary = {
            "objective": sorted({r["objective"] for r in rows}),
            "seeds": [r["seed"] for r in rows],
            "elbo": _mean_sd([r["gaps"]["elbo_amortized"] for r in rows]),
            "log_likelihood": _mean_sd([r["gaps"]["log_likelihood"] for r in rows]),
            "log_likelihood_se": max(r["gaps"]["log_likelihood_se"] for r in rows),
            "log_likelihood_reliable": all(r["gaps"]["log_likelihood_reliable"] for r in rows),
            "elbo_refined": _mean_sd([r["gaps"]["elbo_refined"] for r in rows]),
            "approximation_gap": _mean_sd([r["gaps"]["approximation_gap"] for r in rows]),
            "amortization_gap": _mean_sd([r["gaps"]["amortization_gap"] for r in rows]),
            "gap_se": max(max(r["gaps"]["approximation_gap_se"], r["gaps"]["amortization_gap_se"]) for r in rows),
            "refine_last_change": max(abs(r["gaps"]["refine_last_change"]) for r in rows),
            "kl": {site: _mean_sd([r["evaluation"]["kl"][site] for r in rows]) for site in rows[0]["evaluation"]["kl"]},
            "active_units": _mean_sd([r["evaluation"].get("active_units", 0) for r in rows]),
            "step_ms": _mean_sd([r["step_ms"] for r in rows]),
        }
        table["guides"][g] = summary
    (out / RESULTS_JSON).write_text(json.dumps(table, indent=2) + "\n")
    (out / RESULTS_MD).write_text("\n".join(markdown(table)) + "\n")
    figure(table, out / FIGURE)
    LOGGER.info("written: %s, %s, %s", out / RESULTS_MD, out / RESULTS_JSON, out / FIGURE)
    return table


def _fmt(stat: dict[str, float], digits: int = 2) -> str:
    return f"{stat['mean']:.{digits}f}" + (f" ± {stat['sd']:.{digits}f}" if stat["n"] > 1 else "")


def markdown(table: dict[str, Any]) -> list[str]:
    """The comparison as markdown lines: one row per guide, mean ± standard deviation over seeds."""
    sites = sorted({s for g in table["guides"].values() for s in g["kl"]})
    head = [
        "guide",
        "objective",
        "seeds",
        "ELBO",
        "log p(x)",
        "approximation gap",
        "amortization gap",
        "refined ELBO",
        *[f"KL({s})" for s in sites],
        "active units",
        "step (ms)",
    ]
    lines = [
        f"# {table['model']} on {table['data']}: guides compared",
        "",
        f"{table['max_examples']} test examples, {table['num_particles']} importance samples each; gaps after "
        f"{table['refine_steps']} refinement steps of {table['refine_particles']} particles (Cremer et al., "
        "2018); mean ± standard deviation over seeds; nats per datum. Monte-Carlo standard errors are in "
        "compare.json.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for g, s in table["guides"].items():
        flag = "" if s["log_likelihood_reliable"] else " (unreliable: low ESS or heavy-tailed weights)"
        lines.append(
            "| "
            + " | ".join(
                [
                    g,
                    ", ".join(s["objective"]),
                    str(len(s["seeds"])),
                    _fmt(s["elbo"]),
                    _fmt(s["log_likelihood"]) + flag,
                    _fmt(s["approximation_gap"]),
                    _fmt(s["amortization_gap"]),
                    _fmt(s["elbo_refined"]),
                    *[_fmt(s["kl"][site]) if site in s["kl"] else "" for site in sites],
                    _fmt(s["active_units"], 1),
                    _fmt(s["step_ms"], 1),
                ]
            )
            + " |"
        )
    worst = max((s["refine_last_change"] for s in table["guides"].values()), default=0.0)
    lines += [
        "",
        f"Refinement convergence: the largest ELBO change over the last 10 % of refinement steps was "
        f"{worst:.4f} nats per datum (L[q*] is a lower bound: the approximation gap may be over- and the "
        "amortization gap under-estimated by about that much).",
    ]
    return lines


def figure(table: dict[str, Any], path: Path) -> Any:
    """Six panels, one per quantity, each guide on the x axis (mean over seeds ± sd, each seed a black dot):
    log p(x) (importance-sampled); the ELBO of the amortized q_φ and of the refined q*; the approximation and
    amortization gaps (side by side, so a negative gap reads as one); KL(q ‖ p) per latent site; active units;
    the training step's time. A guide whose log p(x) is unreliable on some seed (low ESS or heavy-tailed weights)
    gets a hollow log p(x) marker labelled "unreliable" and a hatched approximation-gap bar: that estimate is a
    loose lower bound, so its approximation gap is too small (a note under the panels says so). Returns the
    figure (also saved to ``path``)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from pyro_vaes.analysis.plots import DPI, wrap_title

    guides = list(table["guides"])
    idx = list(range(len(guides)))
    stats = [table["guides"][g] for g in guides]
    unreliable = [not s["log_likelihood_reliable"] for s in stats]
    runs = {g: [r for r in table["runs"] if r["guide"] == g] for g in guides}
    sites = sorted({site for s in stats for site in s["kl"]})
    width = max(9.0, 3 * (1.0 + 0.6 * len(guides)))
    fig = Figure(figsize=(width, 6.6), layout="constrained")
    axes = fig.subplots(2, 3).flat
    colours = [f"C{k}" for k in range(10)]

    def seeds(ax, xs, per_run) -> None:  # one black dot per seed
        for x, g in zip(xs, guides):
            vals = [per_run(r) for r in runs[g]]
            ax.scatter([x] * len(vals), vals, color="black", s=7, zorder=4)

    def points(ax, offset, key, per_run, label, colour) -> list[float]:  # mean ± sd markers of a bound
        xs = [i + offset for i in idx]
        ax.errorbar(
            xs,
            [s[key]["mean"] for s in stats],
            yerr=[s[key]["sd"] for s in stats],
            fmt="o",
            capsize=3,
            color=colour,
            label=label,
            zorder=3,
        )
        seeds(ax, xs, per_run)
        return xs

    def bars(ax, offset, barw, means, sds, per_run, label, colour, hatch=None) -> None:
        xs = [i + offset for i in idx]
        ax.bar(
            xs,
            means,
            barw,
            yerr=sds,
            capsize=3,
            label=label,
            color=colour,
            hatch=hatch,
            edgecolor="black",
            linewidth=0.4,
            zorder=2,
        )
        seeds(ax, xs, per_run)

    def headroom(ax, legend: bool) -> None:  # room above the data for a one-row legend
        lo, hi = ax.get_ylim()
        if legend:
            ax.set_ylim(lo, hi + 0.3 * (hi - lo))
            ax.legend(fontsize=7, loc="upper center", ncols=2, frameon=False)

    ax = axes[0]
    xs = points(ax, 0.0, "log_likelihood", lambda r: r["gaps"]["log_likelihood"], "log p(x)", "C0")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo - 0.15 * (hi - lo), hi)  # room under a marker for its "unreliable" label
    for x, s, bad in zip(xs, stats, unreliable):
        if bad:  # a hollow marker over the filled one, and the word under it
            ax.scatter([x], [s["log_likelihood"]["mean"]], s=70, facecolors="white", edgecolors="C0", zorder=5)
            ax.annotate(
                "unreliable",
                (x, s["log_likelihood"]["mean"]),
                xytext=(0, -10),
                textcoords="offset points",
                fontsize=7,
                ha="center",
                va="top",
                color="C3",
            )
    ax.set_title("log p(x), importance-sampled", fontsize=9)
    ax.set_ylabel("nats per datum")

    ax = axes[1]
    points(ax, -0.15, "elbo", lambda r: r["gaps"]["elbo_amortized"], "amortized q_φ", "C2")
    points(ax, 0.15, "elbo_refined", lambda r: r["gaps"]["elbo_refined"], "refined q*", "C1")
    headroom(ax, True)
    ax.set_title("ELBO", fontsize=9)
    ax.set_ylabel("nats per datum")

    ax = axes[2]
    bars(
        ax,
        -0.18,
        0.36,
        [s["approximation_gap"]["mean"] for s in stats],
        [s["approximation_gap"]["sd"] for s in stats],
        lambda r: r["gaps"]["approximation_gap"],
        "approximation",
        "C0",
        ["//" if u else "" for u in unreliable],
    )
    bars(
        ax,
        0.18,
        0.36,
        [s["amortization_gap"]["mean"] for s in stats],
        [s["amortization_gap"]["sd"] for s in stats],
        lambda r: r["gaps"]["amortization_gap"],
        "amortization",
        "C1",
    )
    ax.axhline(0, color="black", linewidth=0.6)
    handles, labels = ax.get_legend_handles_labels()
    if any(unreliable):
        handles.append(Patch(facecolor="C0", edgecolor="black", hatch="//", linewidth=0.4))
        labels.append("hatched: log p(x) unreliable")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + (0.3 if len(labels) < 3 else 0.6) * (hi - lo))  # room for the legend's rows
    ax.legend(handles, labels, fontsize=7, loc="upper center", ncols=2 if len(labels) < 3 else 1, frameon=False)
    ax.set_title("inference gap = log p(x) − ELBO\n= approximation + amortization", fontsize=9)
    ax.set_ylabel("gap (nats per datum)")

    ax = axes[3]
    barw = 0.8 / max(1, len(sites))
    for k, site in enumerate(sites):
        here = [s["kl"].get(site, {"mean": 0.0, "sd": 0.0}) for s in stats]
        bars(
            ax,
            (k - (len(sites) - 1) / 2) * barw,
            barw,
            [h["mean"] for h in here],
            [h["sd"] for h in here],
            lambda r, site=site: r["evaluation"]["kl"].get(site, 0.0),
            site,
            colours[k % 10],
        )
    headroom(ax, len(sites) > 1)
    ax.set_title("KL(q ‖ p)" + (f" of {sites[0]}" if len(sites) == 1 else " per latent site"), fontsize=9)
    ax.set_ylabel("nats per datum")

    ax = axes[4]
    bars(
        ax,
        0.0,
        0.6,
        [s["active_units"]["mean"] for s in stats],
        [s["active_units"]["sd"] for s in stats],
        lambda r: r["evaluation"].get("active_units", 0),
        None,
        "C4",
    )
    ax.set_title("active units", fontsize=9)
    ax.set_ylabel("latent dimensions")

    ax = axes[5]
    bars(
        ax,
        0.0,
        0.6,
        [s["step_ms"]["mean"] for s in stats],
        [s["step_ms"]["sd"] for s in stats],
        lambda r: r["step_ms"],
        None,
        "C5",
    )
    ax.set_title("training step time", fontsize=9)
    ax.set_ylabel("ms per step")

    for a in axes:
        a.set_xticks(idx)
        a.set_xticklabels(guides, rotation=20, ha="right", fontsize=8)
        a.set_xlim(-0.6, len(guides) - 0.4)
    seeds_n = sorted({len(s["seeds"]) for s in stats})
    title = (
        f"{table['model']} on {table['data']}: {len(guides)} guides, {'/'.join(map(str, seeds_n))} seed(s) each "
        f"({len(table['runs'])} runs); {table['max_examples']} test examples, {table['num_particles']} importance "
        f"samples; mean over seeds ± sd, black dots: each seed"
    )
    fig.suptitle(wrap_title(title, width, 9), fontsize=9)
    if any(unreliable):
        fig.supxlabel(
            wrap_title(
                "unreliable (hollow marker, hatched bar): low ESS or heavy-tailed importance weights on some seed; that "
                "log p(x) is a loose lower bound, so its approximation gap is too small",
                width,
                7,
            ),
            fontsize=7,
        )
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return fig
