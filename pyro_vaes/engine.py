"""The one training loop every model/guide/objective goes through.

Per step: draw the batch for this step (a pure function of seed and step), compute the objective's
loss, stop with a message if it is not finite, step the optimizer(s); every ``eval_every`` steps write the
held-out loss to ``metrics.jsonl``; every ``checkpoint_every`` steps write ``checkpoint.pt`` atomically
(parameters, optimizer states, RNG states, step). ``resume`` restores all of it, so a resumed run reaches
the same numbers as an uninterrupted one with the same seed.

Two backends give the same loss: ``torch`` (default) minimises ``objective.loss`` with one
``torch.optim.Adam`` over the model's and guide's parameters; ``svi`` runs :class:`pyro.infer.SVI` with
``pyro.optim.Adam`` (one optimizer per parameter tensor, as classic Pyro code does).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import pyro
import pyro.infer.util
import pyro.optim
import torch
from tqdm.auto import tqdm

from pyro_vaes import checkpoint as ckpt
from pyro_vaes import likelihoods
from pyro_vaes.config import FitConfig
from pyro_vaes.data import VAEData, iterate_batches, load_dataset
from pyro_vaes.params import param_registration
from pyro_vaes.registry import GUIDES, MODELS, OBJECTIVES, check_guide_fits, default_guide

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunExistsError(FileExistsError):
    """The run folder exists and neither resume nor overwrite was asked for."""


def build_component(registry, name: str, *args: Any, **kwargs: Any) -> Any:
    """Construct a registered component, turning bad keyword arguments into a clear error."""
    cls = registry.get(name)
    try:
        return cls(*args, **kwargs)
    except TypeError as err:
        import inspect

        params = [p for p in inspect.signature(cls).parameters if p not in ("self", "model", "input_shape")]
        raise ValueError(
            f"bad arguments for {registry.kind} {name!r}: {err}. It takes: {', '.join(params) or 'nothing'}"
        ) from None


def resolve_config(config: FitConfig) -> FitConfig:
    """Fill in the default guide and check every name and setting (no data loaded, nothing built)."""
    config.validate()
    MODELS.entry(config.model)
    OBJECTIVES.entry(config.objective)
    from pyro_vaes.registry import DATASETS

    DATASETS.entry(config.data)
    if config.guide is None:
        config.guide = default_guide(config.model)
        if config.guide is None:
            raise ValueError(f"model {config.model!r} has no default guide; pass --guide")
    check_guide_fits(config.model, config.guide)
    return config


def select_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for but CUDA is not available on this machine")
    return torch.device(name)


@dataclass
class Components:
    """Everything a fit or a loaded run holds."""

    config: FitConfig
    data: VAEData
    model: Any
    guide: Any
    objective: Any
    device: torch.device


def build(config: FitConfig, data: Optional[VAEData] = None) -> Components:
    """Load the data and build model, guide and objective for ``config`` (seeded, not trained)."""
    config = resolve_config(config)
    device = select_device(config.device)
    pyro.set_rng_seed(config.seed)
    pyro.clear_param_store()
    objective = build_component(OBJECTIVES, config.objective, **config.objective_args)  # cheap checks first
    if data is None:
        data = load_dataset(config.data, root=config.data_root, seed=config.seed, **config.data_args)
    model = build_component(MODELS, config.model, data.shape, **config.model_args)
    if hasattr(model, "likelihood"):
        likelihoods.check_data(model.likelihood, data.train.x[:1000])
    guide = build_component(GUIDES, config.guide, model, **config.guide_args)
    model.to(device), guide.to(device)
    objective.bind(model, guide)
    if objective.auxiliary is not None:
        objective.auxiliary.to(device)
    return Components(config, data, model, guide, objective, device)


class Trainer:
    """Fits ``config`` into the run folder ``run_dir``."""

    def __init__(
        self,
        config: FitConfig,
        run_dir: Path,
        data: Optional[VAEData] = None,
        progress: bool = True,
        resume_state: Optional[Dict[str, Any]] = None,
    ):
        self.run_dir = Path(run_dir)
        self.parts = build(config, data)
        self.config = self.parts.config
        self.progress = progress
        self.step = 0
        self.running_loss: Optional[float] = None  # exponential moving average of the per-datum loss
        params = list(self.parts.model.parameters()) + list(self.parts.guide.parameters())
        self.params = params
        aux = self.parts.objective.auxiliary
        betas = self.parts.objective.auxiliary_betas
        self.aux_optimizer = torch.optim.Adam(aux.parameters(), lr=self.config.aux_lr, betas=betas) if aux else None
        if self.config.backend == "torch":
            self.optimizer = torch.optim.Adam(params, lr=self.config.lr)
            self.svi = None
        else:
            self.optimizer = None
            self.pyro_optim = pyro.optim.Adam({"lr": self.config.lr})
            self.svi = self.parts.objective.svi(self.pyro_optim)
        if resume_state is not None:
            self._restore(resume_state)

    # -- state -----------------------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        p = self.parts
        state: Dict[str, Any] = {
            "step": self.step,
            "running_loss": self.running_loss,
            "model": p.model.state_dict(),
            "guide": p.guide.state_dict(),
            "rng": ckpt.rng_state(),
        }
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        else:
            state["pyro_optim"] = self.pyro_optim.get_state()
        if p.objective.auxiliary is not None:
            state["auxiliary"] = p.objective.auxiliary.state_dict()
            state["aux_optimizer"] = self.aux_optimizer.state_dict()
        return state

    def _restore(self, state: Dict[str, Any]) -> None:
        p = self.parts
        p.model.load_state_dict(state["model"])
        p.guide.load_state_dict(state["guide"])
        if p.objective.auxiliary is not None:
            p.objective.auxiliary.load_state_dict(state["auxiliary"])
            self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        else:
            # consumed by pyro.optim when each parameter is first seen in the next SVI step
            self.pyro_optim.set_state(state["pyro_optim"])
        self.step = int(state["step"])
        self.running_loss = state.get("running_loss")
        ckpt.set_rng_state(state["rng"])

    def save_checkpoint(self) -> Path:
        for t in self.params:
            if not torch.isfinite(t).all():
                raise TrainingDiverged(
                    f"parameters are not finite at step {self.step}; not overwriting the last good checkpoint"
                )
        path = self.run_dir / CHECKPOINT
        ckpt.save_atomic(self.state_dict(), path)
        return path

    # -- one step ----------------------------------------------------------------------------------------------
    def _step(self, x: torch.Tensor, y: Optional[torch.Tensor]) -> float:
        obj = self.parts.objective
        obj.at_step(self.step)
        if self.svi is not None:
            loss = self.svi.step(x, y)
            if not math.isfinite(loss):
                return loss
        else:
            self.optimizer.zero_grad(set_to_none=True)
            loss_t = obj.loss(x, y)
            loss = loss_t.detach().item()
            if not math.isfinite(loss):
                return loss
            loss_t.backward()
            self.optimizer.step()
        if self.aux_optimizer is not None:
            self.aux_optimizer.zero_grad(set_to_none=True)
            aux_loss = obj.auxiliary_loss(x, y)
            aux_loss.backward()
            self.aux_optimizer.step()
        return loss

    @torch.no_grad()
    def heldout_loss(self) -> float:
        """The objective's loss per datum on the first ``eval_batches`` test batches (RNG left untouched)."""
        p, c = self.parts, self.config
        n = min(len(p.data.test), c.eval_batches * c.batch_size)
        total = 0.0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed + 7919)
            for start in range(0, n, c.batch_size):
                x, y = p.data.test.batch(torch.arange(start, min(n, start + c.batch_size)))
                x = x.to(p.device)
                y = None if y is None else y.to(p.device)
                total += p.objective.evaluate_loss(x, y)
        return total / max(n, 1)

    # -- the loop --------------------------------------------------------------------------------------------
    def fit(self) -> List[Dict[str, float]]:
        p, c = self.parts, self.config
        train = p.data.train
        metrics_path = self.run_dir / METRICS
        history: List[Dict[str, float]] = []
        bar = tqdm(total=c.steps, initial=self.step, disable=not self.progress, desc=f"fit {c.model}", file=sys.stderr,
                   mininterval=1.0)
        t0 = time.perf_counter()
        batches = iterate_batches(len(train), c.batch_size, c.seed, start_step=self.step)
        first_step = pyro.infer.util.is_validation_enabled()
        try:
            while self.step < c.steps:
                step, idx = next(batches)
                x, y = train.batch(idx)
                x = x.to(p.device, non_blocking=True)
                y = None if y is None else y.to(p.device, non_blocking=True)
                # Pyro's argument and support checks run on the first step of each process (they catch
                # model/guide/data mistakes) and are off afterwards: they cost ~0.3-5 ms a step (pyro.md §4.2)
                with pyro.validation_enabled(first_step), param_registration(self.svi is not None):
                    loss = self._step(x, y)
                first_step = False
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"the loss became {loss} at step {self.step + 1}; training stopped. The last good checkpoint "
                        f"is {self.run_dir / CHECKPOINT} (resume from it with a lower --lr, or check the data)"
                    )
                self.step += 1
                per_datum = loss / x.shape[0]
                running = per_datum if self.running_loss is None else 0.98 * self.running_loss + 0.02 * per_datum
                self.running_loss = running
                bar.update(1)
                if self.step % 25 == 0:
                    bar.set_postfix(loss=f"{running:.3f}", refresh=False)
                if self.step % c.eval_every == 0 or self.step == c.steps:
                    row = {
                        "step": self.step,
                        "train_loss": running,
                        "test_loss": self.heldout_loss(),
                        "seconds": time.perf_counter() - t0,
                    }
                    history.append(row)
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    bar.write(f"step {self.step}: train loss {row['train_loss']:.4f}, test loss {row['test_loss']:.4f}")
                if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                    self.save_checkpoint()
        finally:
            bar.close()
        return history


# -- run folders ---------------------------------------------------------------------------------------------
def default_run_dir(config: FitConfig) -> Path:
    return Path("runs") / f"{config.model}-{config.data}-seed{config.seed}"


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Create an empty run folder; an existing non-empty one is kept unless ``overwrite``."""
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise RunExistsError(
                f"run folder {run_dir} already exists; pass --resume {run_dir} to continue it, --overwrite to "
                "replace it, or --out to choose another folder"
            )
        shutil.rmtree(run_dir)
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metric rows written after ``step`` (a crash between an evaluation and the next checkpoint)."""
    path = Path(run_dir) / METRICS
    if path.exists():
        rows = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(r + "\n" for r in rows))
