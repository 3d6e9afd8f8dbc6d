"""The Python API, mirroring the CLI: ``fit``, ``load`` and what a fitted run offers.

Nothing here prints. What a fit chose for the user (e.g. the likelihood, from the data) is returned as
``run.notes`` and logged at INFO on the ``pyro_vaes`` logger, as is each evaluation row of the training loop; the
library configures no handler, so ``logging.basicConfig(level=logging.INFO)`` shows them. ``progress=True`` shows a
progress bar on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pyro_vaes.config import SHORTCUTS, FitConfig, apply_shortcuts
from pyro_vaes.data import VAEData
from pyro_vaes.data.base import DATA_ENV
from pyro_vaes.engine import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    RESULTS,
    Components,
    Note,
    build,
    default_run_dir,
    distributed,
    log_notes,
    resolve_config,
    select_device,
    trainer_for,
    truncate_metrics,
)
from pyro_vaes.engine import checkpoint as ckpt
from pyro_vaes.engine.run_folder import NewRunFolder, check_new_run_target, clean_temporary_files, run_lock
from pyro_vaes.plumbing.isolation import eval_mode, isolated_rng


@dataclass
class Run:
    """A run folder with its model, guide, objective and data, ready to evaluate, sample and plot; ``notes`` say what
    was chosen for the user when it was built (e.g. the likelihood, from the data) and how it was trained."""

    run_dir: Path
    parts: Components
    history: list[dict[str, float]] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def config(self) -> FitConfig:
        return self.parts.config

    @property
    def model(self):
        return self.parts.model

    @property
    def guide(self):
        return self.parts.guide

    @property
    def data(self) -> VAEData:
        return self.parts.data

    def evaluate(
        self,
        num_particles: int = 100,
        max_examples: int | None = 500,
        write: bool = True,
        progress: bool = False,
        refine: int = 0,
        refine_particles: int = 10,
        refine_lr: float = 0.1,
    ) -> dict:
        """Held-out evaluation on the first ``max_examples`` test examples (None: all) with ``num_particles``
        importance samples each (see :func:`pyro_vaes.analysis.evaluation.evaluate`), written to ``results.json``.

        ``refine`` > 0 also runs that many steps of local (non-amortized) variational inference on each example's
        variational parameters and reports, under ``refined``, how much they tighten the bound: the refined ELBO,
        the amortization and approximation gaps (see :func:`pyro_vaes.analysis.inference_gap.gaps`)."""
        from pyro_vaes.analysis.evaluation import evaluate
        from pyro_vaes.analysis.inference_gap import gaps

        if refine < 0:
            raise ValueError(f"refine must be >= 0 steps, got {refine}")
        with (
            run_lock(self.run_dir, "pyro-vaes evaluate") if write else contextlib.nullcontext(),
            isolated_rng(self.config.seed + 104729),
        ):
            res = evaluate(
                self.model, self.guide, self.data.test, num_particles, max_examples=max_examples, progress=progress
            )
            res = {
                "model": self.config.model,
                "guide": self.config.guide,
                "objective": self.config.objective,
                "data": self.config.data,
                "split": "test",
                **res,
            }
            if refine and self.guide is not None:
                res["refined"] = gaps(
                    self.model,
                    self.guide,
                    self.data.test,
                    max_examples=res["n"],
                    refine_steps=refine,
                    refine_particles=refine_particles,
                    lr=refine_lr,
                    num_particles=num_particles,
                    progress=progress,
                )
            if write:
                (self.run_dir / RESULTS).write_text(json.dumps(res, indent=2) + "\n")
        return res

    def sample(self, n: int = 64, seed: int | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` observations' means decoded from prior draws (labels ``y`` drawn from the prior when not given)."""
        with isolated_rng(self.config.seed if seed is None else seed), eval_mode(self.model), torch.no_grad():
            return self.model.sample(n, None if y is None else y.to(self.parts.device)).cpu()

    def plot(self, kind: str = "all", out: Path | None = None) -> list[Path]:
        """Write figures (``reconstructions``, ``samples``, ``traversals`` or ``all``) as PNG files."""
        from pyro_vaes.analysis.plots import plot_run

        return plot_run(self, kind, out)


def _config_from(config: FitConfig | dict[str, Any] | None, overrides: dict[str, Any]) -> FitConfig:
    """A new config: ``config`` (a config, a mapping of fields and shortcuts, or None) with ``overrides`` on top; a
    shortcut (:data:`~pyro_vaes.config.SHORTCUTS`) goes into its argument group, one that disagrees with it refused."""
    if config is None:
        config = {}
    if isinstance(config, FitConfig):
        config = config.to_dict()
    return FitConfig.from_dict({**apply_shortcuts(config), **overrides})


#: settings a resumed run may change (the loop, the optimizers' learning rates, where the data lives); the rest of
#: its recorded config is kept
RESUMABLE = {
    "steps",
    "eval_every",
    "checkpoint_every",
    "eval_batches",
    "device",
    "figures",
    "lr",
    "aux_lr",
    "divergence",
    "data_root",
}


def _absolute_root(root: str | None) -> str | None:
    """A data root as an absolute path (so the run reopens from any working directory)."""
    return None if root is None else str(Path(root).expanduser().resolve())


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {CONFIG})") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read ({type(err).__name__}: {err}); restore it from a copy") from None
    if not isinstance(recorded, dict):
        raise ValueError(f"{path} does not hold a run's settings")
    return recorded


def _load_state(run_dir: Path, device: str) -> dict[str, Any]:
    select_device(device)  # a device that is not there is said as such, not as an unreadable checkpoint
    if not (run_dir / CHECKPOINT).exists():
        raise FileNotFoundError(
            f"{run_dir} has no {CHECKPOINT}: it was stopped before its first checkpoint; rerun the "
            "command that created it to start it again"
        )
    return ckpt.load(run_dir / CHECKPOINT, map_location=device)


def fit(
    config: FitConfig | dict[str, Any] | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: str | Path | None = None,
    dataset: VAEData | None = None,
    progress: bool = True,
    **settings: Any,
) -> Run:
    """Fit a model; ``settings`` are :class:`~pyro_vaes.config.FitConfig` fields and the shortcuts ``latent_dim``,
    ``likelihood`` (model arguments), ``beta`` and ``num_particles`` (objective arguments) that ``pyro-vaes fit``
    takes as ``--latent-dim``, ... (a shortcut that disagrees with the same argument in ``model_args`` or
    ``objective_args`` is refused).

    >>> run = pyro_vaes.fit(model="vae", data="mnist", steps=1000, out="runs/vae")   # doctest: +SKIP
    >>> run = pyro_vaes.fit(model="vae", data="moons", likelihood="gaussian", latent_dim=2)  # doctest: +SKIP
    >>> run = pyro_vaes.fit(resume="runs/vae", steps=2000)                           # doctest: +SKIP

    ``resume`` continues the run in that folder from its checkpoint, with its recorded config (only the loop
    settings, the learning rates, ``divergence`` and ``data_root`` may change; a change of learning rate is written
    to ``metrics.jsonl``; ``steps`` must be beyond the checkpoint's). A new run is validated completely and its data
    loaded before anything is written; it refuses an existing folder unless it is an unfinished run (restarted) or,
    with ``overwrite``, a run folder — which is kept until the new run has written its first checkpoint.
    ``dataset`` passes an in-memory :class:`~pyro_vaes.data.VAEData` instead of a registry name.

    Nothing is printed: ``progress`` shows a progress bar on stderr; what was chosen for the user is ``run.notes``,
    also logged (with each evaluation row) at INFO on the ``pyro_vaes`` logger.

    Under ``torchrun`` every rank calls ``fit`` with the same arguments and trains its shard of each batch
    (:mod:`pyro_vaes.engine.distributed`); only rank 0 reads and writes the run folder (each ``ranks.on_main`` below),
    and logs; an error any rank finds is raised on every rank. In one process each ``ranks.*`` call is the plain call.
    """
    ranks = distributed.current()
    if resume is not None:
        if config is not None:
            raise ValueError("a resumed run keeps its recorded config; pass only settings that may change")
        run_dir = Path(resume)
        recorded = ranks.on_main(lambda: _read_config(run_dir))
        cfg = ranks.agree(lambda: _resume_config(recorded, settings))  # resolved, once
        with ranks.main_context(lambda: run_lock(run_dir, "pyro-vaes fit --resume")):
            state = ranks.on_main(lambda: _resume_state(run_dir, cfg))
            old = FitConfig.from_dict(recorded)
            trainer = ranks.agree(
                lambda: trainer_for(cfg, run_dir, data=dataset, progress=progress, resume_state=state, ranks=ranks)
            )
            if (old.lr, old.aux_lr) != (cfg.lr, cfg.aux_lr):  # the advice after a divergence: a lower learning rate
                trainer.set_learning_rates(cfg.lr, cfg.aux_lr)
            resumed = ranks.on_main(lambda: _record_resume(run_dir, state, old, trainer.config, ranks), broadcast=False)
            n = len(trainer.parts.notes)
            trainer.notes[n:n] = resumed or []  # after the build's notes, before the ranks'
            if ranks.is_main:
                log_notes(trainer.notes)
            history = trainer.fit()
    else:
        cfg = _config_from(config, settings)
        if out is not None:
            cfg.out = str(out)
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
        cfg.out = str(run_dir)
        cfg.data_root = _absolute_root(cfg.data_root)
        cfg = ranks.agree(lambda: resolve_config(cfg))  # names, settings and component arguments first: no data read
        mode = ranks.on_main(lambda: check_new_run_target(run_dir, overwrite))  # writes nothing
        trainer = ranks.agree(  # every check, the data
            lambda: trainer_for(cfg, run_dir, data=dataset, progress=progress, ranks=ranks)
        )
        if ranks.is_main:
            log_notes(trainer.notes)
        folder = NewRunFolder(run_dir, mode)

        def open_run(stack: contextlib.ExitStack) -> None:
            trainer.run_dir = folder.open()
            lock = stack.enter_context(run_lock(trainer.run_dir, "pyro-vaes fit"))

            def committed() -> Path:  # the replacement swapped in: the lock moved with its folder
                lock.folder = folder.committed()
                return lock.folder

            trainer.on_checkpoint = committed
            trainer.config.save(trainer.run_dir / CONFIG)  # the built config: with what was chosen from the data

        try:
            with contextlib.ExitStack() as stack:
                ranks.on_main(lambda: open_run(stack), broadcast=False)
                history = trainer.fit()
        except BaseException:
            if ranks.is_main:
                folder.abort()  # a replacement that never reached its first checkpoint: the old run stays
            raise
    run = Run(trainer.run_dir, trainer.parts, history, list(trainer.notes))
    if trainer.config.figures:
        ranks.on_main(lambda: run.plot("all"), broadcast=False)
    return run


def _resume_config(recorded: dict[str, Any], settings: dict[str, Any]) -> FitConfig:
    """The recorded config with the settings a resumed run may change, checked and resolved (a new config)."""

    def unchanged(key: str, value: Any) -> bool:  # a shortcut that repeats the recorded argument (or is not given)
        group = recorded.get(SHORTCUTS[key])
        return value is None or (isinstance(group, dict) and group.get(key) == value)

    same = {k for k, v in settings.items() if k in SHORTCUTS and unchanged(k, v)}
    changed = sorted(k for k, v in settings.items() if k not in same and k not in RESUMABLE and recorded.get(k) != v)
    if changed:
        raise ValueError(
            f"a resumed run keeps its recorded config; only {', '.join(sorted(RESUMABLE))} may change "
            f"(got {', '.join(changed)})"
        )
    settings = {k: v for k, v in settings.items() if k not in same}
    if "data_root" in settings:
        settings["data_root"] = _absolute_root(settings["data_root"])
    return resolve_config(_config_from(recorded, settings))


def _resume_state(run_dir: Path, cfg: FitConfig) -> dict[str, Any]:
    """The checkpoint a run resumes from (``--steps`` beyond it), its folder cleared of temporary files."""
    state = _load_state(run_dir, cfg.device)
    if cfg.steps <= int(state["step"]):
        raise ValueError(f"{run_dir} is at step {int(state['step'])}; --steps must be more than that to resume")
    clean_temporary_files(run_dir)
    return state


def _record_resume(
    run_dir: Path, state: dict[str, Any], old: FitConfig, cfg: FitConfig, ranks: distributed.Ranks
) -> list[str]:
    """Drop metric rows after the checkpoint, write what changed on resume as event rows, record the config; returns
    the notes the user should read (a resume on another number of ranks)."""
    step = int(state["step"])
    truncate_metrics(run_dir, step)
    events = []
    notes: list[str] = []
    if (old.lr, old.aux_lr) != (cfg.lr, cfg.aux_lr):
        events.append(
            {
                "step": step,
                "event": "learning rates changed on resume",
                "lr": [old.lr, cfg.lr],
                "aux_lr": [old.aux_lr, cfg.aux_lr],
            }
        )
    world = ranks.world_size if ranks.active else None  # None: one process without torchrun
    if state.get("world_size") != world:
        # batches stay those of (seed, step); shards and noise follow the new world size from here on
        events.append(
            {"step": step, "event": "world size changed on resume", "world_size": [state.get("world_size"), world]}
        )

        def who(w: int | None) -> str:
            return "one process" if w is None else f"{w} torchrun rank(s)"

        notes.append(
            Note(
                f"this run was trained by {who(state.get('world_size'))} and resumes on {who(world)}: the same "
                "batches from here on, but other noise (and shard-level statistics) than an uninterrupted run"
            )
        )
    for event in events:
        with open(run_dir / METRICS, "a") as f:
            f.write(json.dumps(event) + "\n")
    cfg.save(run_dir / CONFIG)
    return notes


def _recorded_history(run_dir: Path) -> list[dict[str, float]]:
    """The evaluation rows of ``run_dir/metrics.jsonl`` (event rows and a torn last line left out)."""
    rows = []
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "event" not in row:
            rows.append(row)
    return rows


def load(run_dir: str | Path, device: str = "cpu", dataset: VAEData | None = None, data_root: str | None = None) -> Run:
    """Open a run folder: rebuild model, guide and objective from ``config.json`` and load the checkpoint
    (weights only: nothing in the folder is executed) and its `history` (the rows of `metrics.jsonl`); prints nothing (``run.notes``, also logged, say what was
    chosen while rebuilding, if anything). ``data_root`` replaces the recorded data root (data moved);
    without it the recorded one is used, or ``$PYRO_VAES_DATA`` when none was recorded."""
    run_dir = Path(run_dir)
    cfg = FitConfig.from_dict(_read_config(run_dir))
    cfg.device = device
    if data_root is not None:
        cfg.data_root = _absolute_root(data_root)
    elif cfg.data_root is not None and not Path(cfg.data_root).exists() and os.environ.get(DATA_ENV):
        cfg.data_root = _absolute_root(os.environ[DATA_ENV])  # the recorded root moved: $PYRO_VAES_DATA says where
    state = _load_state(run_dir, device)  # before the data: a corrupt checkpoint is found at once
    parts = build(cfg, dataset)
    log_notes(parts.notes)
    parts.model.load_state_dict(state["model"])
    if parts.guide is not None:
        parts.guide.load_state_dict(state["guide"])
    networks = parts.objective.networks()
    for name, sd in ckpt.auxiliary_states(state, list(networks)).items():
        networks[name].module.load_state_dict(sd["network"])
    for module in (parts.model, parts.guide, *(n.module for n in networks.values())):
        if module is not None:
            module.eval()
    return Run(run_dir, parts, history=_recorded_history(run_dir), notes=list(parts.notes))
