"""The Python API, mirroring the CLI: ``fit``, ``load`` and what a fitted run offers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch

from pyro_vaes.config import FitConfig
from pyro_vaes.data import VAEData
from pyro_vaes.engine import (
    CHECKPOINT,
    CONFIG,
    RESULTS,
    Components,
    Trainer,
    build,
    default_run_dir,
    prepare_run_dir,
    truncate_metrics,
)
from pyro_vaes.engine import checkpoint as ckpt
from pyro_vaes.isolation import eval_mode, isolated_rng


@dataclass
class Run:
    """A run folder with its model, guide, objective and data, ready to evaluate, sample and plot."""

    run_dir: Path
    parts: Components
    history: Optional[List[Dict[str, float]]] = None

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

    def evaluate(self, num_particles: int = 100, max_examples: Optional[int] = 500, write: bool = True,
                 progress: bool = False) -> Dict:
        """Held-out evaluation on the first ``max_examples`` test examples (None: all) with ``num_particles``
        importance samples each (see :func:`pyro_vaes.evaluation.evaluate`), written to ``results.json``."""
        from pyro_vaes.evaluation import evaluate

        with isolated_rng(self.config.seed + 104729):
            res = evaluate(self.model, self.guide, self.data.test, num_particles, max_examples=max_examples,
                           progress=progress)
        res = {"model": self.config.model, "guide": self.config.guide, "objective": self.config.objective,
               "data": self.config.data, "split": "test", **res}  # fmt: skip
        if write:
            (self.run_dir / RESULTS).write_text(json.dumps(res, indent=2) + "\n")
        return res

    def sample(self, n: int = 64, seed: Optional[int] = None, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``n`` observations' means decoded from prior draws (labels ``y`` drawn from the prior when not given)."""
        with isolated_rng(self.config.seed if seed is None else seed), eval_mode(self.model), torch.no_grad():
            return self.model.sample(n, None if y is None else y.to(self.parts.device)).cpu()

    def plot(self, kind: str = "all", out: Optional[Path] = None) -> List[Path]:
        """Write figures (``reconstructions``, ``samples``, ``traversals`` or ``all``) as PNG files."""
        from pyro_vaes.plots import plot_run

        return plot_run(self, kind, out)


def _config_from(config: Union[FitConfig, Dict[str, Any], None], overrides: Dict[str, Any]) -> FitConfig:
    if config is None:
        config = {}
    if isinstance(config, FitConfig):
        config = config.to_dict()
    return FitConfig.from_dict({**config, **overrides})


def fit(
    config: Union[FitConfig, Dict[str, Any], None] = None,
    *,
    out: Optional[Union[str, Path]] = None,
    overwrite: bool = False,
    resume: Optional[Union[str, Path]] = None,
    dataset: Optional[VAEData] = None,
    progress: bool = True,
    figures: Optional[bool] = None,
    **settings: Any,
) -> Run:
    """Fit a model; ``settings`` are :class:`~pyro_vaes.config.FitConfig` fields.

    >>> run = pyro_vaes.fit(model="vae", data="mnist", steps=1000, out="runs/vae")   # doctest: +SKIP
    >>> run = pyro_vaes.fit(resume="runs/vae", steps=2000)                           # doctest: +SKIP

    ``resume`` continues the run in that folder from its checkpoint, with its recorded config (``steps``
    and other loop settings may be raised); a new run refuses to write into an existing folder unless
    ``overwrite``. ``dataset`` passes an in-memory :class:`~pyro_vaes.data.VAEData` instead of a registry name.
    """
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / CHECKPOINT).exists():
            raise FileNotFoundError(f"cannot resume {run_dir}: no {CHECKPOINT} in it")
        recorded = json.loads((run_dir / CONFIG).read_text())
        loop_keys = {"steps", "eval_every", "checkpoint_every", "eval_batches", "device", "figures"}
        changed = {k: v for k, v in settings.items() if k not in loop_keys and recorded.get(k) != v}
        if changed or (config is not None):
            raise ValueError(
                f"a resumed run keeps its recorded config; only {', '.join(sorted(loop_keys))} may change "
                f"(got {', '.join(changed) or 'a config'})"
            )
        cfg = _config_from(recorded, settings)
        state = ckpt.load(run_dir / CHECKPOINT, map_location=cfg.device)
        truncate_metrics(run_dir, int(state["step"]))
        trainer = Trainer(cfg, run_dir, data=dataset, progress=progress, resume_state=state)
    else:
        cfg = _config_from(config, settings)
        if out is not None:
            cfg.out = str(out)
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
        cfg.out = str(run_dir)
        trainer = Trainer(cfg, run_dir, data=dataset, progress=progress)  # validates everything first
        prepare_run_dir(run_dir, overwrite)
    cfg.save(run_dir / CONFIG)
    history = trainer.fit()
    run = Run(run_dir, trainer.parts, history)
    if cfg.figures if figures is None else figures:
        run.plot("all")
    return run


def load(run_dir: Union[str, Path], device: str = "cpu", dataset: Optional[VAEData] = None) -> Run:
    """Open a run folder: rebuild model, guide and objective from ``config.json`` and load the checkpoint
    (weights only: nothing in the folder is executed)."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {CONFIG})")
    cfg = FitConfig.from_dict(json.loads((run_dir / CONFIG).read_text()))
    cfg.device = device
    parts = build(cfg, dataset)
    path = run_dir / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT} (was it trained?)")
    state = ckpt.load(path, map_location=device)
    parts.model.load_state_dict(state["model"])
    if parts.guide is not None:
        parts.guide.load_state_dict(state["guide"])
    networks = parts.objective.networks()
    for name, sd in ckpt.auxiliary_states(state, list(networks)).items():
        networks[name].module.load_state_dict(sd["network"])
    for module in (parts.model, parts.guide, *(n.module for n in networks.values())):
        if module is not None:
            module.eval()
    return Run(run_dir, parts)
