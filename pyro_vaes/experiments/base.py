"""The experiment contract: what every ``pyro-vaes reproduce NAME`` target declares, and what it is spared.

An experiment is a subclass of :class:`Experiment` registered by :func:`register` (an instance, so one class can
serve several datasets). It declares ``scales`` (``tiny``/``small``/``full`` settings dicts), ``paper`` and one
seed's work, :meth:`Experiment.run_one`; the optional hooks are :meth:`~Experiment.prepare` (once, before the
seeds), :meth:`~Experiment.summary`, :meth:`~Experiment.figures`, :meth:`~Experiment.markdown` and
:meth:`~Experiment.recorded_settings`. Calling the instance (the registry's convention
``run(out, scale, seed, data_root, overrides) -> dict``) resolves the settings, runs the seeds
``seed .. seed + settings["seeds"] - 1``, and writes the results envelope to ``results.json`` and the markdown to
``results.md``. Row keys starting with ``_`` (a run, tensors for a figure) reach the hooks but not the files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pyro_vaes.engine.sweep import check_executor, run_tasks
from pyro_vaes.experiments import common
from pyro_vaes.registry import EXPERIMENTS

#: the keys of every ``results.json``, in order (an experiment's ``context.extra`` comes after ``summary``)
ENVELOPE = (
    "experiment",
    "scale",
    "overrides",
    "command",
    "settings",
    "paper",
    "rows",
    "summary",
    "convergence",
    "verdicts",
    "figures",
    "seconds",
)


class Context:
    """What an experiment's hooks share in one invocation: where to write (``out``), the invocation (``name``,
    ``scale``, first ``seed``, ``data_root``, ``overrides``, the resolved ``settings``), cached data, fitting into
    ``OUT/runs/<tag>``, progress lines, the runs kept for figures (``runs``), ``summary`` (set before
    :meth:`Experiment.figures`) and ``extra``: more entries of ``results.json``, written after ``summary``."""

    def __init__(
        self,
        name: str,
        out: Path,
        scale: str,
        seed: int,
        data_root: str | None,
        overrides: dict[str, Any],
        settings: dict[str, Any],
        progress: bool = False,
    ):
        self.name, self.out, self.scale, self.seed = name, Path(out), scale, seed
        self.data_root, self.overrides, self.settings, self.progress = data_root, overrides, settings, progress
        self.runs: dict[str, Any] = {}
        self.fitted: list[str] = []  #: the tags of every fit made or loaded (their learning curves are checked)
        self.extra: dict[str, Any] = {}
        self.summary: Any = None
        self._data: dict[tuple, Any] = {}

    def data(self, name: str, seed: int | None = None, **args: Any):
        """``load_dataset(name, root=data_root, seed=seed or the first seed, **args)``, loaded once per invocation."""
        from pyro_vaes.data import load_dataset

        seed = self.seed if seed is None else seed
        key = (name, seed, repr(sorted(args.items())))
        if key not in self._data:
            self._data[key] = load_dataset(name, root=self.data_root, seed=seed, **args)
        return self._data[key]

    def fit(self, tag: str, keep: bool = True, **settings: Any):
        """:func:`pyro_vaes.fit` into ``OUT/runs/<tag>`` (:func:`common.fit`), kept in ``runs[tag]`` unless ``keep``
        is false; returns the :class:`~pyro_vaes.api.Run`, modules in eval mode."""
        run = common.fit(self.out, tag, progress=self.progress, **settings)
        self.fitted.append(tag)
        if keep:
            self.runs[tag] = run
        return run

    def say(self, msg: str) -> None:
        """A progress line on stdout."""
        common.say(msg)

    def relative(self, path: str | Path) -> str:
        """``path`` relative to ``out`` (as ``results.json`` lists files)."""
        return str(Path(path).resolve().relative_to(self.out.resolve()))


class Experiment:
    """One ``pyro-vaes reproduce`` target; subclass it, set ``name``, ``help``, ``scales``, ``paper``, write
    :meth:`run_one`, and :func:`register` an instance."""

    name: str = ""
    help: str = ""
    scales: dict[str, dict[str, Any]] = {}
    paper: Any = None
    #: the paper's training budget in its own words ("2,300 epochs", "100,000 iterations"; "" when it does not say),
    #: shown beside ours in the reproducibility table
    paper_budget: str = ""
    #: whether each seed fits models of its own (what ``--jobs`` runs side by side); False for an experiment whose
    #: fits are shared by every seed (made in :meth:`prepare`), where ``--jobs`` would only repeat the measurements
    fits_per_seed: bool = True

    def prepare(self, settings: dict[str, Any], context: Context) -> None:
        """Once, before the seeds: check settings before anything is read, load data, fit what every seed shares."""

    def run_one(self, settings: dict[str, Any], seed: int, context: Context) -> list[dict[str, Any]]:
        """One seed's fits and measurements: one row per fitted model or measured setting."""
        raise NotImplementedError(f"{type(self).__name__}.run_one")

    def summary(self, rows: list[dict[str, Any]], settings: dict[str, Any]) -> Any:
        """What is aggregated over seeds (:func:`common.mean_std`); the default: nothing."""
        return {}

    def figures(self, rows: list[dict[str, Any]], context: Context) -> list[Path]:
        """The figures (paths under ``context.out``), from every seed's rows and ``context.runs``."""
        return []

    def markdown(self, table: dict[str, Any]) -> list[str]:
        """``results.md``'s lines; the default: a heading, the rerun command and the rows as a table."""
        keys = list(dict.fromkeys(k for r in table["rows"] for k in r))
        rows = [[r.get(k, "") for k in keys] for r in table["rows"]]
        return [f"### {table['experiment']} (scale {table['scale']})", "", f"{table['command']}", ""] + (
            common.markdown_table(keys, rows) if rows else []
        )

    def verdicts(self, table: dict[str, Any]) -> list[dict[str, Any]]:
        """The paper's claims as this run decides them, one dict each: ``claim`` (the paper's words), ``metric``,
        ``ours`` (mean ± sd over seeds), ``paper`` (its number, or what it shows), ``verdict`` (``holds``, ``does not
        hold`` or ``cannot be compared: why``). The reproducibility table is made of them. The default: the claim
        the experiment records, left undecided (its table is what to read)."""
        paper = table.get("paper")
        claim = (paper.get("claim") if isinstance(paper, dict) else None) or table.get("paper_claim")
        if not claim:
            return []
        undecided = "not decided by code: read results.md"
        return [{"claim": claim, "metric": "", "ours": "", "paper": "", "verdict": undecided}]

    def recorded_settings(self, settings: dict[str, Any], context: Context) -> dict[str, Any]:
        """``results.json``'s ``settings``: the resolved settings and the first seed."""
        return {**settings, "first_seed": context.seed}

    @property
    def declares_figures(self) -> bool:
        """Whether this experiment makes figures (overrides :meth:`figures`): then it must list at least one."""
        return type(self).figures is not Experiment.figures

    def __call__(
        self,
        out: Path,
        scale: str = "small",
        seed: int = 0,
        data_root: str | None = None,
        overrides: dict[str, Any] | None = None,
        progress: bool = False,
        jobs: int = 1,
        executor: str = "process",
        address: str | None = None,
    ) -> dict[str, Any]:
        """Run every seed, then the hooks; write ``results.json`` and ``results.md`` in ``out``; return the table.

        With ``jobs`` > 1 (or ``executor="ray"``) the seeds' fits run first side by side
        (:func:`~pyro_vaes.engine.sweep.run_tasks`: one worker, or Ray task, per seed); then every seed runs here
        as with ``jobs=1``, loading those finished fits (:func:`common.fit`), so the numbers are the same."""
        check_executor(jobs, executor, address)
        overrides = dict(overrides or {})
        settings = common.resolve_settings(self.scales, scale, overrides)
        seeds = common.seeds(seed, settings)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        ctx = Context(self.name, out, scale, seed, data_root, overrides, settings, progress)
        t_start = time.perf_counter()
        self.prepare(settings, ctx)
        if len(seeds) > 1 and (jobs > 1 or executor == "ray") and self.fits_per_seed:
            ctx.say(f"{self.name}: fitting {len(seeds)} seeds side by side ({executor}, {jobs} jobs)")
            args = (self.name, str(out.resolve()), scale, seed, data_root, overrides)
            run_tasks(_fit_seed, [(*args, s) for s in seeds], jobs=jobs, executor=executor, address=address)
        rows = [row for s in seeds for row in self.run_one(settings, s, ctx)]
        ctx.summary = self.summary(rows, settings)
        figures = [ctx.relative(p) for p in self.figures(rows, ctx)]
        clash = sorted(set(ctx.extra) & set(ENVELOPE))
        if clash:
            raise ValueError(f"{self.name}: context.extra may not replace the envelope's {', '.join(clash)}")
        table = {
            "experiment": self.name,
            "scale": scale,
            "overrides": overrides,
            "command": common.command(self.name, scale, seed, overrides),
            "settings": self.recorded_settings(settings, ctx),
            "paper": self.paper,
            "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
            "summary": ctx.summary,
            "convergence": {t: common.convergence(out / "runs" / t) for t in dict.fromkeys(ctx.fitted)},
            **ctx.extra,
            "figures": figures,
            "seconds": round(time.perf_counter() - t_start, 1),
        }
        table = {
            **{k: v for k, v in table.items() if k not in ("figures", "seconds")},
            "verdicts": self.verdicts(table),
        }
        table.update(figures=figures, seconds=round(time.perf_counter() - t_start, 1))
        common.write_results(out, table, self.markdown(table) + common.convergence_lines(table["convergence"]))
        return table


def _fit_seed(
    name: str, out: str, scale: str, first_seed: int, data_root: str | None, overrides: dict[str, Any], seed: int
) -> None:
    """A sweep worker's task: one seed's work of experiment ``name`` (its fits land in ``out/runs``; what it
    measures is measured again, from those fits, by the process that reports)."""
    experiment = EXPERIMENTS.get(name)
    settings = common.resolve_settings(experiment.scales, scale, overrides)
    ctx = Context(name, Path(out), scale, first_seed, data_root, overrides, settings)
    experiment.prepare(settings, ctx)
    experiment.run_one(settings, seed, ctx)


def register(experiment: Experiment) -> Experiment:
    """Register ``experiment`` in :data:`~pyro_vaes.registry.EXPERIMENTS` under its ``name`` (with its ``help``)."""
    if not experiment.name or not experiment.scales:
        raise ValueError(f"{type(experiment).__name__} needs a name and scales to be registered")
    return EXPERIMENTS.register(experiment.name, help=experiment.help)(experiment)
