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
    RunExistsError,
    build,
    default_run_dir,
    distributed,
    log_notes,
    resolve_config,
    run_folder,
    select_device,
    trainer_for,
    truncate_metrics,
)
from pyro_vaes.engine import checkpoint as ckpt
from pyro_vaes.engine.run_folder import (
    NewRunFolder,
    check_new_run_target,
    check_writable,
    clean_temporary_files,
    is_run_folder,
    metrics_rows,
    run_lock,
)
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
        importance samples each (see :func:`pyro_vaes.analysis.evaluation.evaluate`), kept in ``results.json`` beside
        the run's other evaluations (:func:`results_key` names it: an evaluation of other settings is never
        replaced; :meth:`results` reads them all).

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
            kept = read_results(self.run_dir) if write else {}  # an unreadable results.json: refused before any work
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
                key = results_key(res)
                kept.pop(key, None)  # the same settings again: the new result replaces the old one, listed last
                kept[key] = res
                _write_atomic(
                    self.run_dir / RESULTS,
                    json.dumps({"format": RESULTS_FORMAT, "latest": key, "evaluations": kept}, indent=2) + "\n",
                )
        return res

    def results(self) -> dict[str, dict[str, Any]]:
        """Every evaluation kept in ``results.json``, by :func:`results_key`, oldest first ({} before the first)."""
        return read_results(self.run_dir)

    def sample(self, n: int = 64, seed: int | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` observations' means decoded from prior draws (labels ``y`` drawn from the prior when not given)."""
        with isolated_rng(self.config.seed if seed is None else seed), eval_mode(self.model), torch.no_grad():
            return self.model.sample(n, None if y is None else y.to(self.parts.device)).cpu()

    def plot(self, kind: str = "all", out: Path | None = None) -> list[Path]:
        """Write figures (``reconstructions``, ``samples``, ``traversals``, ``generation-traversals`` or ``all`` of those,
        or ``loss``: train and held-out loss against the step, from ``metrics.jsonl``) as PNG files; returns their
        paths. ``loss`` for a run without an evaluation row yet is refused. ``generation-traversals`` alone, for a run
        without a flow prior, is refused (nothing is written): only a flow prior has a generation space distinct from
        the code (``all`` skips it)."""
        from pyro_vaes.analysis.plots import plot_run

        paths = plot_run(self, kind, out)
        if kind == "loss" and not paths:  # drawn from metrics.jsonl's evaluation rows
            raise ValueError(
                f"--kind loss: {self.run_dir / METRICS} has no evaluation row yet (the first comes at step "
                f"{self.config.eval_every}); plot it once the run has evaluated"
            )
        if kind == "generation-traversals" and not paths:  # its plotter draws nothing for other models
            raise ValueError(
                f"--kind generation-traversals: the {self.config.model} of {self.run_dir} has no flow prior (such "
                "as vae with --model-arg prior=flow), and only a flow prior has a generation space distinct from the "
                "code: use --kind traversals"
            )
        return paths


#: the layout of results.json: 2 = {"format": 2, "latest": KEY, "evaluations": {KEY: result}}; a results.json
#: without "format" (written by earlier versions) holds one result
RESULTS_FORMAT = 2


def results_key(res: dict[str, Any]) -> str:
    """The settings an evaluation's numbers depend on, as its key in ``results.json``:
    ``particles=P,examples=N`` (N the test examples evaluated), with ``,refine=K,refine_particles=R,refine_lr=L``
    for one with local refinement."""
    key = f"particles={res['num_particles']},examples={res['n']}"
    g = res.get("refined")
    if isinstance(g, dict) and "refine_steps" in g:
        key += (
            f",refine={g['refine_steps']},refine_particles={g.get('refine_particles')},refine_lr={g.get('refine_lr')}"
        )
    return key


def read_results(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The evaluations kept in ``run_dir/results.json`` by :func:`results_key`, oldest first; a results.json written
    by earlier versions (one result) as one entry; {} when there is none. A file that cannot be read is one error naming it."""
    path = Path(run_dir) / RESULTS
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path} cannot be read ({type(err).__name__}: {err}); move it aside (its evaluations are kept there), "
            "then evaluate again"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("evaluations"), dict):
        return dict(data["evaluations"])
    if isinstance(data, dict) and "num_particles" in data and "n" in data:  # one result: the earlier layout
        return {results_key(data): data}
    raise ValueError(f"{path} does not hold evaluation results; move it aside, then evaluate again")


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it: a crash leaves the old file whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
    resume_or_start: bool = False,
    break_lock: bool = False,
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

    ``resume_or_start`` (``pyro-vaes fit ... --out RUN --resume-or-start``) makes one call that a restarted job can
    repeat: it starts the run in ``out`` as a new run when ``out`` holds none yet (absent, empty, or stopped before
    its first checkpoint), and otherwise resumes it from its checkpoint, as ``resume=out`` with the settings given
    here that a resumed run may change — provided every other setting is the recorded run's (else it is refused:
    ``out`` holds another run). A run already at ``steps`` or beyond is finished: nothing is trained, the run is
    returned as it is (its ``history`` read from ``metrics.jsonl``) with a note saying so. ``break_lock``
    (``--break-lock``) takes over the run folder's lock from a process the caller knows is dead (a lock on another
    host cannot be checked from here), instead of refusing.

    Nothing is printed: ``progress`` shows a progress bar on stderr; what was chosen for the user is ``run.notes``,
    also logged (with each evaluation row) at INFO on the ``pyro_vaes`` logger.

    Under ``torchrun`` every rank calls ``fit`` with the same arguments and trains its shard of each batch
    (:mod:`pyro_vaes.engine.distributed`); only rank 0 reads and writes the run folder (each ``ranks.on_main`` below),
    and logs; an error any rank finds is raised on every rank. In one process each ``ranks.*`` call is the plain call.
    """
    ranks = distributed.current()
    if resume_or_start:
        if resume is not None:
            raise ValueError(
                "--resume RUN continues RUN, --resume-or-start starts or continues the run in --out: pass one of them"
            )
        if overwrite:
            raise ValueError("--overwrite replaces a run, --resume-or-start continues it: pass one of them")
        given = {**apply_shortcuts(_as_dict(config)), **settings}
        where = out if out is not None else given.get("out")
        if where is None:
            raise ValueError("--resume-or-start needs --out RUN: the run folder to start, or to continue if it exists")
        found = Path(where)
        recorded = ranks.on_main(lambda: _read_config(found) if is_run_folder(found) else None)
        if recorded is not None:  # a run with a checkpoint: continue it with the settings that may change
            ranks.agree(lambda: _check_same_run(found, recorded, config, settings))
            resume, config = found, None
            settings = {k: v for k, v in given.items() if k in RESUMABLE}
        else:
            out = found
    if resume is not None:
        if config is not None:
            raise ValueError("a resumed run keeps its recorded config; pass only settings that may change")
        run_dir = Path(resume)
        recorded = ranks.on_main(lambda: _read_config(run_dir))
        cfg = ranks.agree(lambda: _resume_config(recorded, settings))  # resolved, once
        command = "pyro-vaes fit --resume-or-start" if resume_or_start else "pyro-vaes fit --resume"
        lock = run_lock(run_dir, command, take_over=break_lock)
        with ranks.main_context(lambda: lock):
            state = ranks.on_main(lambda: _resume_state(run_dir, cfg, finished_ok=resume_or_start))
            old = FitConfig.from_dict(recorded)
            trainer = ranks.agree(
                lambda: trainer_for(cfg, run_dir, data=dataset, progress=progress, resume_state=state, ranks=ranks)
            )
            if ranks.is_main and lock.taken_from is not None:
                trainer.notes.append(Note(_taken_over(lock)))
            if resume_or_start and int(state["step"]) < cfg.steps:
                trainer.notes.append(
                    Note(f"{run_dir} exists: continuing it from its checkpoint at step {state['step']}")
                )
            if int(state["step"]) >= cfg.steps:  # (resume_or_start only) finished: a success with nothing to do
                trainer.notes.append(
                    Note(
                        f"{run_dir} already finished at step {int(state['step'])}: nothing to train (resume it with "
                        "more steps to continue it)"
                    )
                )
                if ranks.is_main:
                    log_notes(trainer.notes)
                history = ranks.on_main(lambda: _recorded_history(run_dir))
                return Run(run_dir, trainer.parts, history, list(trainer.notes))
            if (old.lr, old.aux_lr) != (cfg.lr, cfg.aux_lr):  # the advice after a divergence: a lower learning rate
                trainer.set_learning_rates(cfg.lr, cfg.aux_lr)
            changes = ranks.on_main(
                lambda: _resume_changes(run_dir, state, old, trainer.config, ranks), broadcast=False
            )
            if ranks.is_main:  # written only before the first metrics row or checkpoint: a resume that fails first
                # (a divergence at its first step) leaves config.json and metrics.jsonl as they were
                trainer.before_first_write = lambda: _record_resume(run_dir, state, changes[0], trainer.config)
            resumed = None if changes is None else changes[1]
            n = len(trainer.parts.notes)
            trainer.notes[n:n] = resumed or []  # after the build's notes, before the ranks'
            if ranks.is_main:
                log_notes(trainer.notes)
            history = trainer.fit()
    else:
        cfg = _config_from(config, settings)
        if out is not None:
            cfg.out = str(out)
        cfg.data_root = _absolute_root(cfg.data_root)
        cfg = ranks.agree(lambda: resolve_config(cfg))  # names, settings and component arguments first: no data read
        chosen = cfg.out is not None  # else the default folder, named after the resolved guide and objective
        run_dir = Path(cfg.out) if chosen else default_run_dir(cfg)
        cfg.out = str(run_dir)
        ranks.on_main(lambda: check_writable(run_dir, "run folder"))  # a read-only destination, before the data
        trainer = ranks.agree(  # every check, the data: a bad argument is said before anything about the folder
            lambda: trainer_for(cfg, run_dir, data=dataset, progress=progress, ranks=ranks)
        )
        target, mode, moved = ranks.on_main(  # writes nothing
            lambda: (
                (str(run_dir), check_new_run_target(run_dir, overwrite), None)
                if chosen
                else _default_folder(run_dir, overwrite, trainer.config)
            )
        )
        run_dir = trainer.run_dir = Path(target)
        trainer.config.out = str(run_dir)
        if moved:
            trainer.notes.append(Note(moved))
        if ranks.is_main:
            log_notes(trainer.notes)
        folder = NewRunFolder(run_dir, mode)

        def open_run(stack: contextlib.ExitStack) -> None:
            trainer.run_dir = folder.open()
            command = "pyro-vaes fit --resume-or-start" if resume_or_start else "pyro-vaes fit"
            lock = stack.enter_context(run_lock(trainer.run_dir, command, take_over=break_lock))
            if lock.taken_from is not None:
                trainer.notes.append(Note(_taken_over(lock)))
                log_notes(trainer.notes[-1:])

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
        ranks.on_main(lambda: (run.plot("all"), run.plot("loss")), broadcast=False)  # the loss curves too
    return run


#: settings that change neither the model trained nor its numbers: a default run folder recorded with other values of
#: these holds the same configuration
_NOT_CONFIGURATION = {
    "out",
    "figures",
    "device",
    "data_root",
    "eval_every",
    "eval_batches",
    "checkpoint_every",
    "divergence",
}


def _configuration_change(folder: Path, cfg: FitConfig) -> list[str] | None:
    """How the run recorded in ``folder`` differs from ``cfg`` (``key recorded -> new`` for each setting that changes
    what is trained; [] when none does), or None when ``folder`` holds no run's readable config.json."""
    try:
        recorded = FitConfig.from_dict(json.loads((folder / CONFIG).read_text())).to_dict()
    except (OSError, ValueError, TypeError):
        return None
    new = cfg.to_dict()
    keys = sorted(k for k in new if k not in _NOT_CONFIGURATION and k != "version" and recorded.get(k) != new[k])
    return [f"{k} {json.dumps(recorded.get(k))} -> {json.dumps(new[k])}" for k in keys]


def _default_folder(path: Path, overwrite: bool, cfg: FitConfig) -> tuple[str, str, str | None]:
    """The folder of a new run given no ``out``: the default ``path`` unless it holds something else than a run of
    this configuration (another run, other files), then the first of ``path-2``, ``path-3``, ... that is free or
    holds this configuration — never refused nor replaced for being taken by something else. Returns (folder, its
    :func:`~pyro_vaes.engine.run_folder.check_new_run_target` mode, a note saying why another folder was chosen, or
    None). A run of this configuration there is treated as with ``--out``: refused unless ``overwrite``."""
    why, hint = None, ""
    for i in range(1, 10_000):
        candidate = path if i == 1 else path.with_name(f"{path.name}-{i}")
        if candidate.exists() and not (candidate.is_dir() and not any(candidate.iterdir())):
            change = _configuration_change(candidate, cfg) if (candidate / CONFIG).is_file() else None
            if change != []:  # another configuration, or not a run: the next name
                if why is None:
                    if change is None:
                        why = f"{path} holds something else than a run"
                    else:
                        why = f"{path} holds a run of another configuration ({', '.join(change)})"
                        if not {c.split(" ", 1)[0] for c in change} - RESUMABLE:
                            hint = f" (to continue that run instead, resume {path} with more steps)"
                continue
        mode = check_new_run_target(candidate, overwrite)
        return str(candidate), mode, None if candidate == path else f"{why}, so this run goes into {candidate}{hint}"
    raise RunExistsError(f"{path} and 9999 numbered folders beside it are taken; choose a folder with --out")


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


def _as_dict(config: FitConfig | dict[str, Any] | None) -> dict[str, Any]:
    """The settings a caller gave as ``config`` (a config, a mapping, or None), as a mapping."""
    if config is None:
        return {}
    return config.to_dict() if isinstance(config, FitConfig) else dict(config)


def _check_same_run(
    run_dir: Path, recorded: dict[str, Any], config: FitConfig | dict[str, Any] | None, settings: dict[str, Any]
) -> None:
    """Refuse to continue the run recorded in ``run_dir`` with settings (``config`` and ``settings``, resolved) that
    differ from its own in anything a resumed run may not change: ``--resume-or-start`` continues the same run only.
    An argument the recorded run chose from the data (absent here) is not a difference."""
    new = _config_from(config, settings)
    new.data_root = _absolute_root(new.data_root)
    new = resolve_config(new).to_dict()
    old = _resume_config(recorded, {}).to_dict()
    diffs = []
    for key, value in new.items():
        if key in RESUMABLE or key in ("out", "version"):
            continue
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            diffs += [
                f"{key} {k}={json.dumps(old[key].get(k))} there, {json.dumps(v)} here"
                for k, v in value.items()
                if old[key].get(k) != v
            ]
        elif old.get(key) != value:
            diffs.append(f"{key} {json.dumps(old.get(key))} there, {json.dumps(value)} here")
    if diffs:
        raise ValueError(
            f"{run_dir} holds a run of other settings ({'; '.join(diffs)}): --resume-or-start continues a run only "
            f"with its own settings (only {', '.join(sorted(RESUMABLE))} may change); choose another --out, or "
            f"continue that run with --resume {run_dir}"
        )


def _taken_over(lock: Any) -> str:
    """The note after ``--break-lock`` replaced a lock."""
    return f"took over the lock of {run_folder.describe_holder(lock.taken_from)} (--break-lock)"


def _resume_state(run_dir: Path, cfg: FitConfig, finished_ok: bool = False) -> dict[str, Any]:
    """The checkpoint a run resumes from (``--steps`` beyond it), its folder cleared of temporary files; a damaged
    line of ``metrics.jsonl`` other than a torn last one is refused here, before the data is read."""
    state = _load_state(run_dir, cfg.device)
    if cfg.steps <= int(state["step"]) and finished_ok:  # --resume-or-start: a finished run, nothing to change
        return state
    if cfg.steps <= int(state["step"]):
        raise ValueError(f"{run_dir} is at step {int(state['step'])}; --steps must be more than that to resume")
    metrics_rows(run_dir)
    clean_temporary_files(run_dir)
    return state


def _resume_changes(
    run_dir: Path, state: dict[str, Any], old: FitConfig, cfg: FitConfig, ranks: distributed.Ranks
) -> tuple[list[dict[str, Any]], list[str]]:
    """What a resume changes, written nothing yet: the event rows for ``metrics.jsonl`` (a change of learning rate or
    of the number of ranks) and the notes the user should read (a resume on another number of ranks, a torn last
    line of ``metrics.jsonl`` dropped)."""
    step = int(state["step"])
    events = []
    notes: list[str] = []
    _, torn = metrics_rows(run_dir)
    if torn:
        notes.append(
            Note(
                f"the last line of {run_dir / METRICS} is torn (the run was stopped while writing it); that row is "
                "dropped"
            )
        )
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
    return events, notes


def _record_resume(run_dir: Path, state: dict[str, Any], events: list[dict[str, Any]], cfg: FitConfig) -> None:
    """Before a resumed run's first write: drop metric rows after the checkpoint (and a torn last line), append the
    event rows of :func:`_resume_changes`, record the config."""
    truncate_metrics(run_dir, int(state["step"]))
    for event in events:
        with open(run_dir / METRICS, "a") as f:
            f.write(json.dumps(event) + "\n")
    cfg.save(run_dir / CONFIG)


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
