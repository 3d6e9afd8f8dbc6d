"""The one training loop every model/guide/objective goes through.

Per step: draw the batch for this step (a pure function of seed and step), then step each optimizer in the
objective's order — ``main`` (model and guide, minimising the objective's main loss) and one per auxiliary
network (minimising :meth:`~pyro_vaes.objectives.Objective.network_loss`) — stopping with a message if a loss
is not finite; every ``eval_every`` steps write the held-out loss to ``metrics.jsonl``; every
``checkpoint_every`` steps write ``checkpoint.pt`` atomically (parameters of every network, every optimizer's
state, RNG states, step). Resuming restores all of it, so a resumed run reaches the same numbers as an
uninterrupted one with the same seed.

Two backends give the same main loss: ``torch`` (default) minimises it with one ``torch.optim.Adam`` over the
model's and guide's parameters; ``svi`` runs :class:`pyro.infer.SVI` with ``pyro.optim.Adam`` (one optimizer
per parameter tensor, as classic Pyro code does). Auxiliary networks always use ``torch.optim.Adam``.

Launched by ``torchrun``, the same loop trains data-parallel (:mod:`pyro_vaes.engine.distributed`): each rank
takes its shard of the step's batch and noise seeded from (seed, step, rank); after each backward one all-reduce
sums the gradients and the losses, the loss is checked before any optimizer steps, and only rank 0 evaluates and
writes. In one process every one of those hooks is the plain operation (the step's code path is the one above).

The trainer takes what it trains — the built :class:`~pyro_vaes.engine.build.Components`, their resolved config,
the run folder and the ranks — and builds nothing itself; :func:`trainer_for` builds the components of a resolved
config and the trainer that fits them (what :func:`pyro_vaes.fit` and ``pyro-vaes fit`` call). It prints nothing:
the progress bar (``progress``) is on stderr, each evaluation row is logged at INFO on the ``pyro_vaes`` logger, and
what the user should know about the run (the notes of the build, the torchrun ranks) is in :attr:`Trainer.notes`.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyro
import pyro.infer.util
import pyro.optim
import torch
from pyro import poutine
from tqdm.auto import tqdm

from pyro_vaes.config import FitConfig
from pyro_vaes.data import VAEData, iterate_batches
from pyro_vaes.engine import checkpoint as ckpt
from pyro_vaes.engine import distributed, signals
from pyro_vaes.engine.build import Components, assemble, build
from pyro_vaes.engine.errors import TrainingDiverged, TrainingInterrupted
from pyro_vaes.engine.events import EVERY, EventLog, off_note
from pyro_vaes.engine.learner import Learner
from pyro_vaes.engine.notes import LOGGER, Note
from pyro_vaes.engine.run_folder import CHECKPOINT, METRICS
from pyro_vaes.plumbing import fastpaths
from pyro_vaes.plumbing.isolation import eval_mode, isolated_rng
from pyro_vaes.plumbing.params import param_registration

__all__ = ["Trainer", "TrainingDiverged", "TrainingInterrupted", "data_scale_problem", "trainer_for"]

#: a loss that diverges within this many steps of the start points at the data's scale as much as at the learning rate
FIRST_STEPS = 10
#: robust z-score (distance from the median in units of 1.4826 x the median absolute deviation) beyond which a value
#: is an outlier, and the per-dimension spread beyond which the data is far from the unit scale a network expects
OUTLIER_Z, LARGE_SCALE = 50.0, 100.0


def data_scale_problem(x: torch.Tensor, rows: int = 10000) -> str | None:
    """What in the observations ``x`` (their first ``rows`` rows) makes a loss diverge whatever the learning rate —
    outliers, or a scale far from 1 — and what to do, in words; None when none is found (data in [0, 1] never has
    such a problem)."""
    x = x[: min(rows, max(100, 2_000_000 // max(x[:1].numel(), 1)))].flatten(1).double()  # a few MB at most
    if len(x) < 2 or (bool((x >= 0).all()) and bool((x <= 1).all())):
        return None
    med = x.median(0).values
    mad = (x - med).abs().median(0).values
    spread = torch.where(mad > 0, 1.4826 * mad, x.std(0))  # robust standard deviation per dimension (sparse: std)
    scale = float(spread.median())
    z = (x - med).abs() / spread.clamp_min(1e-12)
    worst = float(z.max())
    if worst > OUTLIER_Z:
        row, col = divmod(int(z.argmax()), x.shape[1])
        n = int((z > OUTLIER_Z).any(1).sum())
        return (
            f"{n} of its first {len(x)} training rows hold outliers, values more than {OUTLIER_Z:g} robust standard "
            f"deviations from the median (up to {worst:.3g}: {float(x[row, col]):.4g} in dimension {col}); remove "
            "or clip them, then fit again"
        )
    if scale > LARGE_SCALE:
        return (
            f"its values spread over a scale of {scale:.3g} per dimension, far from the unit scale; standardise it "
            "((x - mean) / std per dimension), then fit again"
        )
    return None


def trainer_for(
    config: FitConfig,
    run_dir: Path,
    data: VAEData | None = None,
    progress: bool = True,
    resume_state: dict[str, Any] | None = None,
    ranks: distributed.Ranks | None = None,
) -> Trainer:
    """The :class:`Trainer` that fits ``config`` — a config :func:`~pyro_vaes.engine.build.resolve_config` returned,
    not resolved again — into ``run_dir``: the ranks' settings checked, then the data loaded (unless given) and the
    components built (:func:`~pyro_vaes.engine.build.assemble`), restored from ``resume_state`` when given."""
    ranks = distributed.current() if ranks is None else ranks
    ranks.check_settings(config.batch_size, config.device)  # before any data is read
    parts = assemble(config, data)
    return Trainer(parts, run_dir, progress=progress, resume_state=resume_state, ranks=ranks)


class Trainer:
    """Fits the built components ``parts`` (their resolved config ``parts.config``) into the run folder ``run_dir``
    on ``ranks`` (default: :func:`~pyro_vaes.engine.distributed.current`, one process unless launched by torchrun).

    ``Trainer(config, run_dir, data=...)`` with a :class:`~pyro_vaes.config.FitConfig` still works (deprecated): it
    builds the components first, as ``Trainer(build(config, data), run_dir)``."""

    def __init__(
        self,
        parts: Components | FitConfig,
        run_dir: Path,
        data: VAEData | None = None,
        progress: bool = True,
        resume_state: dict[str, Any] | None = None,
        ranks: distributed.Ranks | None = None,
    ):
        self.ranks = distributed.current() if ranks is None else ranks  # ONE_PROCESS unless launched by torchrun
        if isinstance(parts, FitConfig):
            warnings.warn(
                "Trainer(config, ...) builds the components itself; pass Trainer(build(config, data), ...) or use "
                "trainer_for(resolve_config(config), ...)",
                DeprecationWarning,
                stacklevel=2,
            )
            self.ranks.check_settings(parts.batch_size, parts.device)
            parts = build(parts, data)
        elif data is not None:
            raise ValueError("Trainer(parts, ...) trains on parts.data; data= goes with a config (build(config, data))")
        self.ranks.check_settings(parts.config.batch_size, parts.config.device)
        self.run_dir = Path(run_dir)
        self.parts = parts
        self.config = parts.config
        self.progress = progress
        #: what the user should know about this run: the build's notes, then how the ranks split the batch
        self.notes: list[str] = list(parts.notes)
        if self.ranks.active:
            c = self.config
            self.notes.append(Note(self.ranks.describe(c.batch_size)))
            if parts.model.global_sites:
                self.notes.append(
                    Note(
                        f"{c.model}'s batch-level latent(s) {', '.join(parts.model.global_sites)} are drawn once per "
                        f"rank's {c.batch_size // self.ranks.world_size} items (a batch size of "
                        f"{self.ranks.world_size}×G makes groups of G)"
                    )
                )
        self.step = 0
        self.running_loss: float | None = None  # exponential moving average of the per-datum main loss
        self.last_checkpoint: int | None = None  # the step of the last checkpoint written or resumed from
        self.on_checkpoint: Callable[[], Path] | None = None  # called after each checkpoint; returns the run folder
        #: called once, before the first metrics row or checkpoint is written (a resume records what it changed only
        #: then: one that fails before its first step changes no file)
        self.before_first_write: Callable[[], None] | None = None
        objective = self.parts.objective
        self.learner = Learner(self.parts.model, self.parts.guide, objective)
        self.params = self.learner.main_parameters()
        networks = objective.networks()
        self.order = objective.optimizer_order()
        unknown = [n for n in self.order if n != "main" and n not in networks]
        if unknown or "main" not in self.order:
            raise ValueError(
                f"{type(objective).__name__}.step_order names {unknown or 'no main step'}; its networks: "
                f"{', '.join(networks) or 'none'}"
            )
        c = self.config
        self.aux_optimizers = {
            name: torch.optim.Adam(net.module.parameters(), lr=c.aux_lr if net.lr is None else net.lr, betas=net.betas)
            for name, net in networks.items()
        }
        if c.backend == "torch":
            self.optimizer = torch.optim.Adam(self.params, lr=c.lr, betas=objective.main_betas)
            self.svi = None
        else:
            if self.parts.guide is None:
                raise ValueError(f"--backend svi needs a Pyro guide; model {c.model!r} has none (use --backend torch)")
            self.optimizer = None
            self.pyro_optim = pyro.optim.Adam({"lr": c.lr, "betas": objective.main_betas})
            self.svi = objective.svi(self.pyro_optim)
        if resume_state is not None:
            self._restore(resume_state)
        #: the TensorBoard events of this session (written by the process that writes the run folder)
        self.events = EventLog(resumed_from=self.step if resume_state is not None else None)
        if not self.events.enabled and self.ranks.is_main and (note := off_note()) is not None:
            self.notes.append(note)
        self._shard_loss: Any = None  # this process's share of the last main loss (a tensor or a float)
        # what each optimizer steps, and whether its loss sums (or averages) over the batch's rows: how the ranks
        # combine their gradients
        self.stepped = {"main": self.params, **{n: list(net.module.parameters()) for n, net in networks.items()}}
        self.mean_loss = {"main": False, **{n: net.loss_reduction == "mean" for n, net in networks.items()}}

    # -- state -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        p = self.parts
        state: dict[str, Any] = {
            "step": self.step,
            "running_loss": self.running_loss,
            "model": p.model.state_dict(),
            "guide": {} if p.guide is None else p.guide.state_dict(),
            "rng": ckpt.rng_state(),
        }
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        else:
            state["pyro_optim"] = self.pyro_optim.get_state()
        if self.aux_optimizers:
            state["auxiliaries"] = {n: m.state_dict() for n, m in self.learner.auxiliaries.items()}
            state["aux_optimizers"] = {n: o.state_dict() for n, o in self.aux_optimizers.items()}
        if self.ranks.active:  # trained by torchrun ranks (absent: one process, one random stream)
            state["world_size"] = self.ranks.world_size
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        p = self.parts
        p.model.load_state_dict(state["model"])
        if p.guide is not None:
            p.guide.load_state_dict(state["guide"])
        for name, sd in ckpt.auxiliary_states(state, list(self.aux_optimizers)).items():
            self.learner.auxiliaries[name].load_state_dict(sd["network"])
            self.aux_optimizers[name].load_state_dict(sd["optimizer"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        else:
            # consumed by pyro.optim when each parameter is first seen in the next SVI step
            self.pyro_optim.set_state(state["pyro_optim"])
        self.step = int(state["step"])
        self.last_checkpoint = self.step
        self.running_loss = state.get("running_loss")
        ckpt.set_rng_state(state["rng"])

    def set_learning_rates(self, lr: float, aux_lr: float) -> None:
        """Change the optimizers' learning rates (on resume; the recorded config and metrics.jsonl say so)."""
        groups = [] if self.optimizer is None else self.optimizer.param_groups
        for g in groups:
            g["lr"] = lr
        if self.optimizer is None:  # pyro.optim: new optimizers, states restored when each parameter is first seen
            self.pyro_optim.pt_optim_args["lr"] = lr
            pending = list(getattr(self.pyro_optim, "_state_waiting_to_be_consumed", {}).values())
            for group in [g for state in pending for g in state.get("param_groups", [])] + [
                g for opt in self.pyro_optim.optim_objs.values() for g in opt.param_groups
            ]:
                group["lr"] = lr
        for name, opt in self.aux_optimizers.items():
            net = self.parts.objective.networks()[name]
            for g in opt.param_groups:
                g["lr"] = aux_lr if net.lr is None else net.lr

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint.pt`` atomically (rank 0 only, under torchrun) after checking the parameters are finite."""
        for t in self.learner.all_parameters():
            if not torch.isfinite(t).all():
                raise TrainingDiverged(
                    f"parameters are not finite at step {self.step}; not overwriting the last good checkpoint"
                )
        path = self.run_dir / CHECKPOINT
        ckpt.save_atomic(self.state_dict(), path)
        self.last_checkpoint = self.step
        if self.on_checkpoint is not None:
            self.run_dir = self.on_checkpoint()
            path = self.run_dir / CHECKPOINT
        return path

    def _check_loss(self, loss: float, n: int) -> None:
        """Stop (before the optimizer steps on it) on a non-finite loss, or one that jumped far above its running level
        (``divergence``: more than that many times the running average's magnitude, plus one, above it)."""
        per_datum = loss / n
        c = self.config
        jumped = (
            c.divergence > 0
            and self.running_loss is not None
            and math.isfinite(per_datum)
            and per_datum - self.running_loss > c.divergence * (abs(self.running_loss) + 1.0)
        )
        if math.isfinite(loss) and not jumped:
            return
        what = (
            f"became {loss}"
            if not math.isfinite(loss)
            else (
                f"jumped to {per_datum:.4g} per datum (running average {self.running_loss:.4g}; --divergence "
                f"{c.divergence:g} allows at most {self.running_loss + c.divergence * (abs(self.running_loss) + 1):.4g})"
            )
        )
        first = min(c.checkpoint_every, c.steps)  # the trainer also checkpoints at the last step
        finding = data_scale_problem(self.parts.data.train.x)
        if finding is not None:  # the data, not the learning rate: a lower --lr fails the same way
            kept = (
                "no checkpoint was written"
                if self.last_checkpoint is None
                else f"the last good checkpoint {self.run_dir / CHECKPOINT} (step {self.last_checkpoint}) is kept"
            )
            where = (
                f"The data is the likely cause, not the learning rate (a lower --lr fails the same way): {finding}; "
                f"{kept}"
            )
        elif self.step < FIRST_STEPS:
            where = (
                "It diverged in its first steps: check the data's scale (standardise it: (x - mean) / std per "
                "dimension), or use a lower --lr; "
                + (
                    f"no checkpoint was written yet (the first comes at step {first})"
                    if self.last_checkpoint is None
                    else f"the last good checkpoint is {self.run_dir / CHECKPOINT} at step {self.last_checkpoint}"
                )
            )
        elif self.last_checkpoint is None:
            where = (
                f"no checkpoint was written yet (the first comes at step {first}): rerun with a lower --lr, or check "
                "the data's scale"
            )
        else:
            where = (
                f"the last good checkpoint is {self.run_dir / CHECKPOINT} at step {self.last_checkpoint}: resume "
                f"from it with a lower --lr (pyro-vaes fit --resume {self.run_dir} --lr ...)"
            )
        raise TrainingDiverged(f"the loss {what} at step {self.step + 1}; training stopped. {where}")

    # -- one step ----------------------------------------------------------------------------------------------
    def _step(self, x: torch.Tensor, y: torch.Tensor | None) -> float:
        """One training step: every optimizer in the objective's order. Returns the main loss (or the first
        non-finite loss, before any parameter it would touch has moved)."""
        obj = self.parts.objective
        obj.at_step(self.step)
        n = x.shape[0] * self.ranks.world_size  # the rows of the whole step (every rank's shard)
        main_loss = float("nan")
        for name in self.order:
            if name == "main" and self.svi is not None:
                if self.ranks.active:
                    loss = self._svi_step_ranks(x, y, n)
                else:
                    loss = self.svi.step(x, y)
                    self._shard_loss = loss
                    self._check_loss(loss, n)
            else:
                opt = self.optimizer if name == "main" else self.aux_optimizers[name]
                opt.zero_grad(set_to_none=True)
                compute = (lambda: self.learner(x, y)) if name == "main" else (lambda: obj.network_loss(name, x, y))
                if self.ranks.active:  # forward, backward, then one all-reduce of gradients, loss and failures
                    out, loss = self.ranks.forward_backward(compute, self.stepped[name], mean=self.mean_loss[name])
                    if name == "main":
                        self._shard_loss = out
                    self._check_step_loss(name, loss, n)  # the whole batch's loss, on every rank alike
                else:
                    loss_t = compute()
                    loss = loss_t.detach().item()
                    if name == "main":
                        self._shard_loss = loss
                    self._check_step_loss(name, loss, n)  # before the optimizer moves anything
                    loss_t.backward()
                opt.step()
            if name == "main":
                main_loss = loss
        return main_loss

    def _check_step_loss(self, name: str, loss: float, n: int) -> None:
        try:
            if name == "main":
                self._check_loss(loss, n)
            elif not math.isfinite(loss):
                raise TrainingDiverged(
                    f"the loss of the {name} network became {loss} at step {self.step + 1}; "
                    "training stopped (resume from the last checkpoint with a lower --aux-lr)"
                )
        except TrainingDiverged as err:  # under torchrun every rank raises it alike (the loss is the ranks' sum)
            raise distributed.everywhere(err, self.ranks.rank) if self.ranks.active else err  # noqa: B904

    def _svi_step_ranks(self, x: torch.Tensor, y: torch.Tensor | None, n: int) -> float:
        """``SVI.step`` on torchrun ranks: ``SVI.step`` itself never synchronises anything, so its parts run here,
        the gradients and the loss all-reduced between SVI's backward and the Pyro optimizer's step."""
        svi = self.svi

        def forward_backward():
            with poutine.trace(param_only=True) as capture:
                value = svi.loss_and_grads(svi.model, svi.guide, x, y)
            return capture.trace, value

        (trace, self._shard_loss), loss = self.ranks.forward_backward(
            forward_backward, self.params, backward=False, value=lambda out: float(out[1])
        )  # gradients all-reduced
        known = {id(p) for p in self.params}
        created = sorted(name for name, site in trace.nodes.items() if id(site["value"].unconstrained()) not in known)
        if created:
            raise distributed.everywhere(
                ValueError(
                    f"parameter(s) {', '.join(created)} are not parameters of the model's or guide's modules (pyro.param "
                    "created while training): data-parallel training synchronises module parameters only; make them "
                    "nn.Parameter/PyroParam attributes of the module"
                ),
                self.ranks.rank,
            )
        self._check_step_loss("main", loss, n)  # before the Pyro optimizer moves anything
        stepped = [p for p in self.params if p.grad is not None]  # the same on every rank after the all-reduce
        svi.optim(stepped)
        pyro.infer.util.zero_grads(stepped)
        return loss

    @torch.no_grad()
    def heldout_loss(self) -> float:
        """The objective's main loss per datum on the first ``eval_batches`` test batches, with the modules in
        eval mode and a random stream of its own (no parameter, buffer or training RNG state changes)."""
        p, c = self.parts, self.config
        n = min(len(p.data.test), c.eval_batches * c.batch_size)
        b = c.batch_size // self.ranks.world_size  # under torchrun: the batches the ranks train on
        total = 0.0
        with eval_mode(self.learner), isolated_rng(c.seed + 7919):
            for start in range(0, n, b):
                x, y = p.data.test.batch(torch.arange(start, min(n, start + b)))
                x = x.to(p.device)
                y = None if y is None else y.to(p.device)
                total += p.objective.evaluate_loss(x, y)
        return total / max(n, 1)

    # -- the loop --------------------------------------------------------------------------------------------
    def fit(self) -> list[dict[str, float]]:
        p, c = self.parts, self.config
        train = p.data.train
        history: list[dict[str, float]] = []
        if self.ranks.active:
            self.ranks.broadcast_(self.learner.children())  # every rank starts from rank 0's parameters and buffers
        bar = tqdm(
            total=c.steps,
            initial=self.step,
            disable=not self.progress or not self.ranks.is_main,
            desc=f"fit {c.model}",
            file=sys.stderr,
            mininterval=1.0,
        )
        t0 = time.perf_counter()
        batches = iterate_batches(len(train), c.batch_size, c.seed, start_step=self.step)
        first_step = pyro.infer.util.is_validation_enabled()
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(signals.stop_on_sigterm(self.ranks))  # SIGTERM: stop after this step, checkpointed
            while self.step < c.steps:
                step, idx = next(batches)
                x, y = train.batch(self.ranks.shard(idx))  # under torchrun: this rank's rows of the step's batch
                x = x.to(p.device, non_blocking=True)
                y = None if y is None else y.to(p.device, non_blocking=True)
                self.ranks.seed_step(c.seed, step, p.device)  # under torchrun: noise from (seed, step, rank)
                # Pyro's argument and support checks run on the first step of each process (they catch
                # model/guide/data mistakes) and are off afterwards: they cost ~0.3-5 ms a step
                # once the checks are off, plates skip two no-op pieces of bookkeeping (pyro_vaes/plumbing/fastpaths.py: bitwise
                # the same gradients)
                with (
                    pyro.validation_enabled(first_step),
                    param_registration(self.svi is not None),
                    fastpaths.plate_fastpaths(not first_step),
                ):
                    loss = self._step(x, y)
                first_step = False
                self.step += 1
                per_datum = loss / (x.shape[0] * self.ranks.world_size)
                running = per_datum if self.running_loss is None else 0.98 * self.running_loss + 0.02 * per_datum
                self.running_loss = running
                bar.update(1)
                if self.step % 25 == 0:
                    bar.set_postfix(loss=f"{running:.3f}", refresh=False)
                evaluate = self.step % c.eval_every == 0 or self.step == c.steps
                checkpoint = self.step % c.checkpoint_every == 0 or self.step == c.steps
                stop = self.ranks.should_stop()  # SIGTERM on any rank: the same answer on every rank
                if self.ranks.is_main and self.events.enabled and (evaluate or self.step % EVERY == 0):
                    self.events.add(self.step, self._event_scalars(per_datum, running, x.shape[0]))
                checkpoint = checkpoint or stop  # stopping: a checkpoint at this step, to resume from
                if evaluate or checkpoint:
                    if not self.ranks.all_equal(self.learner.children()):  # (one process: nothing to compare)
                        raise distributed.everywhere(
                            RuntimeError(
                                f"the ranks' parameters differ at step {self.step}: they should be identical after every "
                                "step; this is a bug, please report it"
                            ),
                            self.ranks.rank,
                        )
                    # rank 0's work under torchrun (the others wait; its errors reach them)
                    row = self.ranks.on_main(lambda: self._record(evaluate, checkpoint, running, t0))
                    if row is not None:
                        history.append(row)
                    if checkpoint:
                        self.last_checkpoint = self.step  # the other ranks' messages name rank 0's checkpoint too
                if stop and self.step < c.steps:  # (asked at the last step: the run is finished anyway)
                    raise self._stopped_by_sigterm()
        except KeyboardInterrupt:
            where = (
                "no checkpoint was written yet: rerun the same command to start again"
                if self.last_checkpoint is None
                else f"the last checkpoint is at step {self.last_checkpoint}: resume with pyro-vaes fit --resume "
                f"{self.run_dir}"
            )
            raise TrainingInterrupted(f"stopped at step {self.step} (Ctrl-C); {where}") from None
        finally:
            stack.close()
            bar.close()
            if self.ranks.is_main:
                self.events.close()
        return history

    def _stopped_by_sigterm(self) -> TrainingInterrupted:
        """The error after a SIGTERM: training stopped after a step, checkpointed there (raised on every rank)."""
        err = TrainingInterrupted(
            f"stopped at step {self.step} (SIGTERM); checkpoint written at step {self.step}: resume with "
            f"pyro-vaes fit --resume {self.run_dir} (or rerun the same command with --resume-or-start)",
            exit_status=signals.SIGTERM_EXIT,
        )
        return distributed.everywhere(err, self.ranks.rank) if self.ranks.active else err

    def _event_scalars(self, per_datum: float, running: float, rows: int) -> dict[str, float]:
        """The TensorBoard scalars of the step just taken (``rows``: this process's rows of it): see
        :mod:`pyro_vaes.engine.events`. Reads numbers only (no random draw, nothing changed)."""
        out = {"loss/train": per_datum, "loss/train_average": running}
        terms = getattr(self.parts.objective, "last_terms", None)
        shard = self._shard_loss
        if terms is not None and shard is not None:
            recon = -float(terms.recon.detach()) / rows
            kl = {site: float(v.detach()) / rows for site, v in terms.kl.items()}
            shard_loss = float(shard.detach() if isinstance(shard, torch.Tensor) else shard) / rows
            out["terms/reconstruction"] = recon
            out.update({f"terms/kl/{site}": v for site, v in kl.items()})
            out["terms/regularizer"] = shard_loss - recon - sum(kl.values())
        if self.optimizer is not None:
            out["lr/main"] = float(self.optimizer.param_groups[0]["lr"])
        else:
            out["lr/main"] = float(self.pyro_optim.pt_optim_args["lr"])
        for name, opt in self.aux_optimizers.items():
            out[f"lr/{name}"] = float(opt.param_groups[0]["lr"])
        return out

    def _record(self, evaluate: bool, checkpoint: bool, running: float, t0: float) -> dict[str, float] | None:
        """The held-out loss into ``metrics.jsonl`` and the ``pyro_vaes`` log (when ``evaluate``), then the checkpoint
        (when ``checkpoint``)."""
        row = None
        if self.before_first_write is not None:
            hook, self.before_first_write = self.before_first_write, None
            hook()
        if evaluate:
            row = {
                "step": self.step,
                "train_loss": running,
                "test_loss": self.heldout_loss(),
                "seconds": time.perf_counter() - t0,
            }
            self.events.add(self.step, {"loss/heldout": row["test_loss"]})
            with open(self.run_dir / METRICS, "a") as f:
                f.write(json.dumps(row) + "\n")
            LOGGER.info("step %d: train loss %.4f, test loss %.4f", self.step, row["train_loss"], row["test_loss"])
        if checkpoint:
            self.save_checkpoint()
        if self.last_checkpoint is not None:  # with the metrics and from the first checkpoint on (a replaced run's
            self.events.write(self.run_dir)  # folder is swapped in at its first checkpoint: the events start there)
        return row
