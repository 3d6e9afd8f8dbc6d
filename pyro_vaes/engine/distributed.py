"""Data-parallel training on ``torch.distributed``: what a run launched by ``torchrun`` does differently.

    torchrun --standalone --nproc_per_node 2 -m pyro_vaes fit vae --batch-size 128 ...
    torchrun --standalone --nproc_per_node 2 --no-python pyro-vaes fit vae ...     # the console script
    torchrun --nproc_per_node gpu -m pyro_vaes fit vae --device cuda ...            # one rank per GPU

torchrun starts one process per rank and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; their presence is what switches this module on (:func:`current`). A process started without them
gets :data:`ONE_PROCESS`, whose every method is the plain single-process operation, so a user who never calls
torchrun sees no change at all (same operations, same numbers, same checkpoints).

With W ranks, one training step is (``engine/trainer.py`` calls the methods below):

1. **Batch.** The step's batch is the one a single process would draw (``batch_size`` rows, a pure function of
   (seed, step)); rank r takes rows ``[r·b, (r+1)·b)``, b = ``batch_size`` / W (:meth:`Ranks.shard`). Nothing else
   is needed to resume at any step, and no ``DistributedSampler`` is involved.
2. **Noise.** Before the step, the random generator of the rank's device is seeded from (seed, step, rank)
   (:meth:`Ranks.seed_step`): ranks draw different noise, and a resumed or restarted job draws exactly the noise
   the uninterrupted one drew, without saving any random state.
3. **One collective per optimizer step** (:meth:`Ranks.forward_backward`): after this rank's forward and backward,
   one all-reduce carries every stepped parameter's gradient (flattened into one buffer per device and dtype),
   this rank's loss and whether anything raised. The divergence check then reads the loss summed over the ranks
   *before* any optimizer moves, so every rank stops at the same step with the same message; an exception on one
   rank reaches every rank as the same error instead of leaving the others blocked in a collective.
4. **Gradients.** The reduction follows how the loss aggregates over rows:
   a **sum** for losses summed over the batch (every main loss; GAN and CSVAE auxiliary losses), which gives the
   gradient of the sum of the W shard losses, i.e. what one process gets for the whole batch with the ranks'
   noise; a **mean** for losses averaged over rows (FactorVAE's discriminator,
   ``AuxiliaryNetwork.loss_reduction``). A parameter without a gradient on every rank keeps none (Adam skips it, as
   in one process); one with a gradient on some ranks gets the reduced one on all.
5. **Update.** Every rank runs the same Adam step on identical parameters and gradients, so the parameters stay
   identical on every rank (they start identical: rank 0's are broadcast when training starts,
   :meth:`Ranks.broadcast_`).

This is DistributedDataParallel's semantics written as an explicit gradient all-reduce (as Pyro's own
``HorovodOptimizer`` does), not the ``DistributedDataParallel`` wrapper, because the wrapper's assumptions fail for
parts of the zoo: it only synchronises what runs through its ``forward`` (so ``SVI.step`` and an objective that
calls its auxiliary network directly silently never synchronise), it raises at step 2 when a parameter gets no
gradient (``chyvae-meanfield`` + ``chyvae-collapsed`` leave ``raw_psi``/``raw_nu`` unused), and it needs every
auxiliary network routed through a wrapper of its own. The price: the all-reduce does not overlap the backward
pass (DDP's bucketing would hide part of it behind the backward on GPUs; not measured here).

Only rank 0 touches the run folder: it checks and creates it, holds its lock, reads the checkpoint to resume
(and broadcasts it, so no shared file system is needed), writes ``config.json``, ``metrics.jsonl``, checkpoints
and figures, and computes the held-out loss; the other ranks wait for it at the next collective
(:meth:`Ranks.on_main`). An error rank 0 finds there reaches every rank as the same one line.

Batch-level latents (UG-VAE's β, ML-VAE's group latent ``c``) are drawn once per **rank's** batch: with W ranks
and ``--batch-size B`` a group holds B/W items and a step fits W groups (to keep groups of G items, pass
``--batch-size W·G``). Batch statistics of objectives are per rank as well (FactorVAE's and β-TC-VAE's
permutations and minibatch estimates, InfoVAE's MMD, β-VAE-B's batch-mean KL), and so are BatchNorm's training
statistics; BatchNorm's running statistics in the checkpoint are rank 0's (as with DDP's default).
"""

from __future__ import annotations

import atexit
import io
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from pyro_vaes.engine.errors import CheckpointError, RunExistsError, RunLockedError, TrainingDiverged
from pyro_vaes.registry import UnknownNameError

#: the environment torchrun sets for every rank; all of these present = launched by torchrun (or alike)
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> tuple[int, int] | None:
    """``(rank, world_size)`` when this process was started by torchrun, else None (reads the environment only)."""
    if not all(k in os.environ for k in LAUNCH_ENV):
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except ValueError:
        raise ValueError(
            f"RANK={os.environ['RANK']!r} and WORLD_SIZE={os.environ['WORLD_SIZE']!r} must be integers "
            "(they are set by torchrun)"
        ) from None
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is not in 0..WORLD_SIZE-1={world - 1} (they are set by torchrun)")
    return rank, world


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of rank ``rank``'s noise at training step ``step`` of a run seeded with ``seed``."""
    return ((seed * 1_000_003 + step) * 1009 + rank) % 2**62


#: exception types an error keeps when it is passed to the other ranks (anything else arrives as RuntimeError)
KNOWN_ERRORS: dict[str, type] = {
    t.__name__: t
    for t in (
        ValueError,
        OSError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        ConnectionError,
        NotImplementedError,
        TypeError,
        RuntimeError,
        CheckpointError,
        RunExistsError,
        RunLockedError,
        TrainingDiverged,
        UnknownNameError,
    )
}


def everywhere(err: BaseException, rank: int) -> BaseException:
    """Mark ``err`` as raised by every rank alike (a check of the same settings), so that only rank 0 prints it."""
    err._pyro_vaes_agreed, err._pyro_vaes_rank = True, rank  # type: ignore[attr-defined]
    return err


def agreed(err: BaseException) -> bool:
    """True when every rank raised ``err`` alike (a check of the same settings, or an error passed to every rank)."""
    return bool(getattr(err, "_pyro_vaes_agreed", False))


def echoed(err: BaseException) -> bool:
    """True when ``err`` is an error every rank raised together and this rank is not rank 0: the CLI prints such an
    error once, on rank 0, instead of once per rank."""
    return getattr(err, "_pyro_vaes_agreed", False) and getattr(err, "_pyro_vaes_rank", 0) != 0


class Ranks:
    """The processes of one training job and how they agree. :data:`ONE_PROCESS` (``active`` False) is the plain
    single process: every method is the ordinary operation, with no collective and nothing extra computed."""

    def __init__(
        self,
        rank: int = 0,
        world_size: int = 1,
        local_rank: int = 0,
        active: bool = False,
        control: Any = None,
        backend: str = "",
    ) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.active = active
        self.control = control  # the (gloo) group carrying CPU-side agreement; None: the default group
        self.backend = backend
        #: this process was asked to stop (SIGTERM; :mod:`pyro_vaes.engine.signals` sets it)
        self.stop_requested = False
        #: some rank was asked to stop, as the last gradient all-reduce told every rank alike
        self.stop_agreed = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def should_stop(self) -> bool:
        """Whether training stops after this step because a process was asked to stop (SIGTERM): in one process,
        this one; under torchrun, any rank, as the step's gradient all-reduce carried it — the same answer on every
        rank at the same step, so they stop together."""
        return self.stop_agreed if self.active else self.stop_requested

    def describe(self, batch_size: int) -> str:
        return (
            f"data-parallel training on {self.world_size} ranks ({self.backend}): each step's batch of "
            f"{batch_size} is {self.world_size} shards of {batch_size // self.world_size}"
        )

    # -- per step ---------------------------------------------------------------------------------------------
    def check_settings(self, batch_size: int, device: str) -> None:
        """Refuse what W ranks cannot train: a batch that does not split into W equal shards, W ranks on one GPU."""
        if not self.active:
            return
        if batch_size % self.world_size:
            raise ValueError(
                f"--batch-size {batch_size} does not split into {self.world_size} equal shards (one per "
                f"rank); use a multiple of {self.world_size}"
            )
        if device.startswith("cuda:") and self.world_size > 1:
            raise ValueError(
                f"--device {device}: under torchrun every rank uses the GPU of its LOCAL_RANK; pass --device cuda"
            )

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a step's batch ``idx`` (all of them in one process)."""
        if not self.active:
            return idx
        b = len(idx) // self.world_size
        return idx[self.rank * b : (self.rank + 1) * b]

    def seed_step(self, seed: int, step: int, device: torch.device) -> None:
        """Seed this rank's generators for ``step`` (one process keeps its one stream: nothing happens)."""
        if not self.active:
            return
        s = step_seed(seed, step, self.rank)
        torch.default_generator.manual_seed(s)  # 1 µs; torch.manual_seed also visits every accelerator (~100 µs)
        if device.type == "cuda":
            torch.cuda.default_generators[
                device.index if device.index is not None else torch.cuda.current_device()
            ].manual_seed(s)

    def forward_backward(
        self,
        compute: Callable[[], Any],
        params: Sequence[torch.Tensor],
        mean: bool = False,
        value: Callable[[Any], float] = lambda t: t.detach().item(),
        backward: bool = True,
    ) -> tuple[Any, float]:
        """One rank's share of an optimizer's step, with a single collective: ``compute()`` (the forward), its
        ``backward()``, then one all-reduce carrying the gradients of ``params`` (summed over the ranks, or averaged
        when ``mean``: a loss averaged over rows), the loss ``value`` (summed) and whether anything raised. Returns
        ``compute()``'s result and the loss summed over the ranks. An exception on any rank raises on every rank.
        No optimizer has moved yet: the caller checks the summed loss (divergence) before stepping."""
        out, v, err = None, 0.0, None
        try:
            out = compute()
            v = value(out)
            if backward:
                out.backward()
        except Exception as e:  # noqa: BLE001 - passed to every rank by the all-reduce
            err = e
        (total,) = self.all_reduce_gradients(params, mean, err, values=[v])
        return out, total

    def all_reduce_gradients(
        self,
        params: Sequence[torch.Tensor],
        mean: bool = False,
        err: BaseException | None = None,
        values: Sequence[float] = (),
    ) -> list[float]:
        """Replace every gradient of ``params`` by its sum (or mean) over the ranks, in one all-reduce per device and
        dtype (usually one in all); a parameter that has no gradient on any rank keeps ``None``. ``values`` travel in
        the same all-reduce and come back summed; so does ``err`` (this rank raised it), which every rank then raises."""
        groups: dict[tuple[str, str], list[torch.Tensor]] = {}
        for p in params:
            groups.setdefault((str(p.device), str(p.dtype)), []).append(p)
        failed = [0.0] * self.world_size
        failed[self.rank] = float(err is not None)
        # the values, "asked to stop" (summed: any rank), then each rank's "raised" flag: in the first buffer
        extra = list(values) + [float(self.stop_requested)] + failed
        for i, key in enumerate(sorted(groups)):  # the same order on every rank
            ps = groups[key]
            device, dtype = ps[0].device, ps[0].dtype
            ok = err is None
            parts = [
                p.grad.reshape(-1) if ok and p.grad is not None else torch.zeros(p.numel(), device=device, dtype=dtype)
                for p in ps
            ]
            has = [float(ok and p.grad is not None) for p in ps]  # each parameter's "has a gradient here"
            tail = torch.tensor(has + (extra if i == 0 else []), device=device, dtype=dtype)
            flat = torch.cat(parts + [tail])
            self._all_reduce(flat, None)
            counts = flat[flat.numel() - len(tail) :].tolist()
            if i == 0:
                extra = counts[len(ps) :]
            offset = 0
            for p, count in zip(ps, counts):
                n = p.numel()
                if count > 0:
                    g = flat[offset : offset + n].view_as(p)
                    p.grad = g / self.world_size if mean else g
                offset += n
        if not groups:  # nothing to reduce: the values and flags travel alone
            t = torch.tensor(extra, dtype=torch.float64)
            self._all_reduce(t, self.control)
            extra = t.tolist()
        n = len(values)
        self.stop_agreed = self.stop_agreed or extra[n] > 0  # the same collective's result on every rank
        self._raise_if_failed(torch.tensor(extra[n + 1 :]), err)
        return extra[:n]

    # -- rank 0's work, everyone's agreement ---------------------------------------------------------------------
    def on_main(self, fn: Callable[[], Any], broadcast: bool = True) -> Any:
        """``fn()`` on rank 0 only (the run folder's work); the others wait for it. Its return value reaches every
        rank (``broadcast``); an exception it raises reaches every rank as the same error."""
        if not self.active:
            return fn()
        out = self.agree(lambda: fn() if self.is_main else None)
        return self.broadcast_object(out) if broadcast else out

    @contextmanager
    def main_context(self, factory: Callable[[], ContextManager[Any]]) -> Iterator[None]:
        """``with factory():`` on rank 0 only (a run folder's lock); entering it is agreed on like :meth:`on_main`."""
        if not self.active:
            with factory():
                yield
            return
        with ExitStack() as stack:
            self.on_main(lambda: stack.enter_context(factory()), broadcast=False)
            yield

    def agree(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on every rank (it must not itself use collectives); if it raised on any rank, every rank raises
        the first failing rank's error."""
        if not self.active:
            return fn()
        out, err = None, None
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001
            err = e
        failed = torch.zeros(self.world_size, dtype=torch.float64)
        failed[self.rank] = err is not None
        self._all_reduce(failed, self.control)
        self._raise_if_failed(failed, err)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; tensors arrive on the CPU)."""
        if not self.active:
            return obj
        if self.is_main:
            buf = io.BytesIO()
            torch.save(obj, buf)
            data = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
            size = torch.tensor([data.numel()], dtype=torch.int64)
        else:
            size = torch.zeros(1, dtype=torch.int64)
        self._broadcast(size)
        if not self.is_main:
            data = torch.empty(int(size), dtype=torch.uint8)
        self._broadcast(data)
        if self.is_main:
            return obj
        return torch.load(io.BytesIO(data.numpy().tobytes()), map_location="cpu", weights_only=False)

    def broadcast_(self, modules: Iterable[nn.Module | None]) -> None:
        """Overwrite every parameter and buffer of ``modules`` with rank 0's (in place), one collective per device
        and dtype."""
        if not self.active:
            return
        tensors = [t for m in modules if m is not None for t in [*m.parameters(), *m.buffers()]]
        groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for t in tensors:
            groups.setdefault((t.device, t.dtype), []).append(t)
        for _, ts in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
            flat = torch.cat([t.detach().reshape(-1) for t in ts])
            self._broadcast(flat, default_group=True)
            offset = 0
            with torch.no_grad():
                for t in ts:
                    t.copy_(flat[offset : offset + t.numel()].view_as(t))
                    offset += t.numel()

    def all_equal(self, modules: Iterable[nn.Module | None]) -> bool:
        """Whether every parameter of ``modules`` is bitwise the same on every rank (a checksum per rank compared)."""
        if not self.active:
            return True
        h = torch.zeros(self.world_size, 2, dtype=torch.float64)
        mine = [t.detach().double().cpu().reshape(-1) for m in modules if m is not None for t in m.parameters()]
        flat = torch.cat(mine) if mine else torch.zeros(1, dtype=torch.float64)
        weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64).remainder_(9973).add_(1)
        h[self.rank] = torch.stack([flat.sum(), (flat * weights).sum()])
        self._all_reduce(h, self.control)
        return bool((h == h[0]).all())

    # -- collectives with one-line errors ----------------------------------------------------------------------
    def _lost(self, err: BaseException) -> ConnectionError:
        text = " ".join(str(err).split())[:300]
        return ConnectionError(
            f"rank {self.rank}: lost contact with the other ranks ({type(err).__name__}: {text}); "
            "another rank stopped or was killed: its own message says why"
        )

    def _all_reduce(self, t: torch.Tensor, group: Any) -> None:
        global _TOGETHER
        _TOGETHER = False  # a collective after the ranks finished together: they no longer are at the same point
        try:
            dist.all_reduce(t, group=group)
        except (RuntimeError, dist.DistError) as err:
            raise self._lost(err) from None

    def _broadcast(self, t: torch.Tensor, default_group: bool = False) -> None:
        try:
            dist.broadcast(t, src=0, group=None if default_group else self.control)
        except (RuntimeError, dist.DistError) as err:
            raise self._lost(err) from None

    def _raise_if_failed(self, failed: torch.Tensor, err: BaseException | None) -> None:
        """``failed[r]`` > 0 marks rank r as failed; the first failed rank's error is raised on every rank."""
        bad = [r for r, f in enumerate(failed.tolist()) if f > 0]
        if not bad:
            return
        src = bad[0]
        if self.rank == src:
            payload = pickle.dumps((type(err).__name__, " ".join(str(err).split()) or type(err).__name__))
            data = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
            size = torch.tensor([data.numel()], dtype=torch.int64)
        else:
            size = torch.zeros(1, dtype=torch.int64)
        try:
            dist.broadcast(size, src=src, group=self.control)
            if self.rank != src:
                data = torch.empty(int(size), dtype=torch.uint8)
            dist.broadcast(data, src=src, group=self.control)
        except (RuntimeError, dist.DistError) as e:
            raise self._lost(e) from None
        if self.rank == src:
            err._pyro_vaes_agreed, err._pyro_vaes_rank = True, self.rank  # type: ignore[union-attr]
            raise err  # type: ignore[misc]
        name, message = pickle.loads(data.numpy().tobytes())
        cls = KNOWN_ERRORS.get(name, RuntimeError)
        text = message if src == 0 else f"rank {src}: {message}"
        try:
            remote = cls(text)
        except Exception:  # noqa: BLE001 - a constructor with other arguments
            remote = RuntimeError(text)
        remote._pyro_vaes_agreed, remote._pyro_vaes_rank = True, self.rank
        raise remote


#: the plain single process (not launched by torchrun)
ONE_PROCESS = Ranks()
_CURRENT: Ranks | None = None


def current() -> Ranks:
    """The ranks of this job: :data:`ONE_PROCESS` unless torchrun started this process, in which case the process
    group is started on first use (gloo; gloo for CPU tensors and NCCL for CUDA tensors when CUDA is available) or
    the one the caller already started is used."""
    global _CURRENT
    where = launched()
    if where is None and not (dist.is_available() and dist.is_initialized()):
        return ONE_PROCESS
    if _CURRENT is not None and dist.is_initialized():
        return _CURRENT
    if not dist.is_available():
        raise ValueError("this PyTorch build has no torch.distributed; run without torchrun")
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
        try:
            dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
        except (RuntimeError, ValueError, dist.DistError) as err:
            text = " ".join(str(err).split())[:300]
            raise ConnectionError(
                f"torch.distributed could not start the process group ({backend}) at "
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}: {text}"
            ) from None
        atexit.register(shutdown)  # ours to end: left to the interpreter's teardown, gloo may abort the process
    backend = str(dist.get_backend())
    control = None if "gloo" in backend else dist.new_group(backend="gloo")  # CPU-side agreement needs gloo
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    _CURRENT = Ranks(rank, world, local_rank, active=True, control=control, backend=backend)
    return _CURRENT


#: set by :func:`finished_together`: every rank reached the end of the command, so the exit may wait for the others
_TOGETHER = False


def finished_together() -> None:
    """Say that every rank finished the job at the same point (a command returned, or raised an error every rank
    raised alike): :func:`shutdown` at exit then waits at a barrier for the others before ending the process group."""
    global _TOGETHER
    _TOGETHER = True


def shutdown() -> None:
    """End the process group this module started (run at exit): a barrier first when every rank finished together
    (:func:`finished_together`), so none tears its connections down while another still uses them, then
    ``destroy_process_group``. Without it gloo's threads are still running when the interpreter ends and the process
    can abort ("terminate called without an active exception", SIGABRT: exit status 1 after a finished run; about
    one job in five on 2 CPU ranks). After an error one rank raised alone there is no barrier (the others may be
    blocked elsewhere); the group is still destroyed. Nothing here raises: the job's outcome is already decided."""
    global _CURRENT
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if _TOGETHER and _CURRENT is not None and _CURRENT.active:
            dist.barrier(group=_CURRENT.control)
    except Exception:  # noqa: BLE001, S110 - a lost peer: nothing left to wait for
        pass
    try:
        dist.destroy_process_group()
    except Exception:  # noqa: BLE001, S110
        pass
    _CURRENT = None


def select_device(name: str) -> torch.device | None:
    """Under torchrun, ``--device cuda`` is the GPU of the rank's ``LOCAL_RANK`` (made the current device); None
    otherwise (the caller's own rule applies). Reads the environment only: no process group is started."""
    if name != "cuda" or launched() is None:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK {local_rank} but this machine has {torch.cuda.device_count()} GPU(s); start at "
            "most that many ranks per machine (torchrun --nproc_per_node gpu)"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)
