"""Where one model's engine step spends its time beyond the hand-written loss: forward and backward of each, side by
side, and a cProfile of the engine's step.

    OMP_NUM_THREADS=1 python benchmarks/profile_step.py ugvae            # split + the 30 costliest calls
    OMP_NUM_THREADS=1 python benchmarks/profile_step.py vae --sort tottime

The model is built as in ``benchmarks/suite.py`` (default guide and objective, MLP networks, batch 128). The split
interleaves the two losses call by call (CPU time of this thread, median of ``--rounds`` × 10 calls).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hand_losses  # noqa: E402
import suite  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--sort", default="cumulative")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(1)
    data = suite.make_data(args.model)
    if args.model not in hand_losses.HAND:
        p.error(
            f"no hand-written loss is registered for {args.model!r} (benchmarks/hand_losses.py): nothing to profile against"
        )
    tr = suite.make_trainer(args.model, data, 128, suite.row_args(args.model))
    x, y = data.train.batch(torch.arange(128))
    obj, m, g = tr.parts.objective, tr.parts.model, tr.parts.guide
    aux = {n: net.module for n, net in obj.networks().items()}

    def engine():
        with suite.engine_context():
            return obj.loss(x, y)

    def hand():
        out = hand_losses.HAND[args.model].fn(m, g, {**aux, "objective": obj}, x, y)["main"]
        return out() if callable(out) else out

    res = {k: [] for k in ("engine forward", "hand forward", "engine backward", "hand backward")}
    for r in range(args.rounds + 1):
        for name, fn in (("engine", engine), ("hand", hand)) if r % 2 else (("hand", hand), ("engine", engine)):
            for _ in range(10):
                t0 = time.thread_time()
                loss = fn()
                t1 = time.thread_time()
                loss.backward()
                if r:
                    res[f"{name} forward"].append(t1 - t0)
                    res[f"{name} backward"].append(time.thread_time() - t1)
    print(f"{args.model}: ms (median CPU time of {10 * args.rounds} calls each)")
    for k, v in res.items():
        print(f"  {k:<16} {1e3 * statistics.median(v):7.2f}")
    step = suite.engine_step(tr)
    for _ in range(5):
        step(x, y)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(30):
        step(x, y)
    prof.disable()
    print("\ncProfile of 30 engine steps (Trainer._step):")
    pstats.Stats(prof).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
