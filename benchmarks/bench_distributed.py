"""Data-parallel training on one CPU machine: the engine's step on 2 torchrun ranks against one process with one
and with two threads, and the gradient all-reduce alone, alternating in one launch.

    OMP_NUM_THREADS=1 python -m torch.distributed.run --standalone --nproc_per_node 2 benchmarks/bench_distributed.py
    ... benchmarks/bench_distributed.py --batch 128 512 --rounds 7 --steps 20 --out results.json

Every step is ``Trainer._step`` (what ``pyro-vaes fit`` runs) on the MLP VAE 784-400-20 (652,824 parameters) with
Adam. Each round, for each batch size B, in turn:

* ``2 ranks``: both ranks step on their B/2 rows each (loss agreement, gradient all-reduce: the whole engine path),
  split on rank 0 into the time spent in the engine's all-reduce (waiting for the other rank included) and the rest;
* ``1 process, 1 thread`` and ``1 process, 2 threads``: rank 0 alone steps on all B rows of a one-process trainer
  (rank 1 waits at a barrier meanwhile);
* ``1 process, B/2 rows``: rank 0 alone on B/2 rows, 1 thread: the work one rank does, without the collectives;
* ``all-reduce``: both ranks all-reduce a gradient-sized buffer (the engine's :meth:`Ranks.all_reduce_gradients`
  on the model's parameters), nothing else.

The data-parallel overhead is ``2 ranks`` − ``1 process, B/2 rows``, to be compared with ``all-reduce``. Reported:
the median over rounds of each mean step time, and its min-max.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import pyro
import torch
import torch.distributed as dist

from pyro_vaes.config import FitConfig
from pyro_vaes.data import ArraySplit, VAEData
from pyro_vaes.engine import Trainer, build, distributed
from pyro_vaes.plumbing.params import param_registration


def trainer(batch: int) -> Trainer:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(4 * 512, 1, 28, 28, generator=g) < 0.2).float()
    data = VAEData("bench", ArraySplit(x[: 3 * 512]), ArraySplit(x[3 * 512 :]))
    cfg = FitConfig(
        model="vae",
        data="linear-gaussian",
        batch_size=batch,
        figures=False,
        model_args={"arch": "mlp", "hidden": 400, "latent_dim": 20, "likelihood": "bernoulli"},
        guide_args={"hidden": 400},
    )
    with contextlib.redirect_stdout(io.StringIO()):
        return Trainer(build(cfg, data), Path(tempfile.gettempdir()) / "pyro-vaes-bench-unused", progress=False)


def timed(tr: Trainer, x: torch.Tensor, steps: int) -> float:
    with pyro.validation_enabled(False), param_registration(False):
        t0 = time.perf_counter()
        for _ in range(steps):
            tr._step(x, None)
        return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[128, 512])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out")
    args = p.parse_args()
    ranks = distributed.current()
    if not ranks.active or ranks.world_size != 2:
        raise SystemExit("run under torchrun with 2 ranks (see the module docstring)")
    torch.set_flush_denormal(True)
    rank = ranks.rank
    results = {
        b: {
            k: []
            for k in (
                "2 ranks",
                "  its all-reduce (waits included)",
                "  the rest of its step",
                "1 process, 1 thread",
                "1 process, 2 threads",
                "1 process, B/2 rows",
                "all-reduce",
            )
        }
        for b in args.batch
    }
    setups = {}
    for b in args.batch:
        shared, alone = trainer(b), trainer(b)
        alone.ranks = distributed.ONE_PROCESS  # a one-process trainer inside the torchrun job
        shared.ranks.broadcast_(shared.learner.children())
        x = alone.parts.data.train.batch(torch.arange(b))[0]
        setups[b] = (shared, alone, x, ranks.shard(torch.arange(b)))
    # inside the 2-rank step: the time this rank spends in the engine's all-reduce (waiting for the other rank included)
    in_collective = [0.0]
    plain_all_reduce = ranks.all_reduce_gradients

    def timed_all_reduce(*a, **k):
        t0 = time.perf_counter()
        try:
            return plain_all_reduce(*a, **k)
        finally:
            in_collective[0] += time.perf_counter() - t0

    for r in range(args.rounds + 1):  # round 0 warms up
        for b, (shared, alone, x, mine) in setups.items():
            torch.set_num_threads(1)
            dist.barrier()
            in_collective[0] = 0.0
            ranks.all_reduce_gradients = timed_all_reduce
            t_ranks = timed(shared, x[mine], args.steps)
            ranks.all_reduce_gradients = plain_all_reduce
            t_inside = in_collective[0] / args.steps
            dist.barrier()
            t = {}
            if rank == 0:
                for name, threads, rows in (
                    ("1 process, 1 thread", 1, x),
                    ("1 process, 2 threads", 2, x),
                    ("1 process, B/2 rows", 1, x[mine]),
                ):
                    torch.set_num_threads(threads)
                    t[name] = timed(alone, rows, args.steps)
                torch.set_num_threads(1)
            dist.barrier()
            params = shared.params
            for p_ in params:
                p_.grad = torch.randn_like(p_)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                ranks.all_reduce_gradients(params)
            t_ar = (time.perf_counter() - t0) / args.steps
            if r and rank == 0:
                results[b]["2 ranks"].append(t_ranks)
                results[b]["  its all-reduce (waits included)"].append(t_inside)
                results[b]["  the rest of its step"].append(t_ranks - t_inside)
                results[b]["all-reduce"].append(t_ar)
                for name, v in t.items():
                    results[b][name].append(v)
    if rank != 0:
        return
    table = {}
    n_params = sum(p_.numel() for p_ in setups[args.batch[0]][0].params)
    print(
        f"MLP VAE 784-400-20 ({n_params:,} parameters), Adam, {args.rounds} rounds x {args.steps} steps; ms per step, "
        "median [min, max] over rounds"
    )
    for b in args.batch:
        med = {k: 1e3 * statistics.median(v) for k, v in results[b].items()}
        table[b] = {
            k: {"median_ms": med[k], "min_ms": 1e3 * min(v), "max_ms": 1e3 * max(v)} for k, v in results[b].items()
        }
        for k, v in results[b].items():
            print(f"B={b:<4} {k:<34} {med[k]:8.2f}  [{1e3 * min(v):.2f}, {1e3 * max(v):.2f}]")
        over = med["2 ranks"] - med["1 process, B/2 rows"]
        print(
            f"B={b:<4} data-parallel overhead (2 ranks - one rank's work alone) {over:.2f} ms; the all-reduce alone "
            f"{med['all-reduce']:.2f} ms; throughput of 2 ranks vs 1 thread {med['1 process, 1 thread'] / med['2 ranks']:.2f}x, "
            f"vs 2 threads {med['1 process, 2 threads'] / med['2 ranks']:.2f}x"
        )
        table[b]["overhead_ms"] = over
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "torch": torch.__version__,
                    "pyro": pyro.__version__,
                    "rounds": args.rounds,
                    "steps": args.steps,
                    "results": table,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
