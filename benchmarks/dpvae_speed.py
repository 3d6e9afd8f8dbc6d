"""Step time of each regulariser with dpVAE's decoupled flow prior against the same regulariser with N(0, I), side by
side in one process.

For every regulariser of the dpVAE experiment, two engine Trainers are built from the same settings but for
``prior`` (``normal`` / ``flow``, 6 coupling layers of width 64), on MNIST-shaped grey data (random values: the step
time does not depend on them), MLP encoder and decoder of width 400, z = 2 (the authors' MNIST setting), batch 100,
continuous-Bernoulli likelihood. Blocks of ``--steps`` engine steps (``Trainer._step``: every optimizer the objective
declares, Pyro validation off, no param-store registration, exactly as ``pyro-vaes fit`` runs them after its first
step) alternate between the two, and the script prints the median ms/step of each and their ratio.

    OMP_NUM_THREADS=1 python benchmarks/dpvae_speed.py --blocks 7 --steps 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyro_vaes.config import FitConfig  # noqa: E402
from pyro_vaes.data import ArraySplit, VAEData  # noqa: E402
from pyro_vaes.engine import Trainer, build  # noqa: E402
from pyro_vaes.experiments.dpvae import MNIST_REGULARIZERS, regularizer_config  # noqa: E402
from pyro_vaes.plumbing.params import param_registration  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--latent-dim", type=int, default=2)
    p.add_argument("--blocks", type=int, default=7)
    p.add_argument("--steps", type=int, default=20, help="steps per block")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--regularizers", default=",".join(MNIST_REGULARIZERS))
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1000, 1, 28, 28, generator=g)
    data = VAEData("mnist", ArraySplit(x[:900]), ArraySplit(x[900:]))
    batch = x[: args.batch_size]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for reg in args.regularizers.split(","):
            trainers = {}
            for prior in ("normal", "flow"):
                cfg = regularizer_config(
                    reg, prior, MNIST_REGULARIZERS, latent_dim=args.latent_dim, hidden=400, steps=1000
                )
                trainers[prior] = Trainer(
                    build(FitConfig(**cfg, data="mnist", batch_size=args.batch_size, steps=1000), data),
                    Path(tmp) / f"{reg}-{prior}",
                    progress=False,
                )
            times = {k: [] for k in trainers}
            with pyro.validation_enabled(False), param_registration(False):
                for t in trainers.values():
                    for _ in range(3):
                        t._step(batch, None)
                for _ in range(args.blocks):
                    for name, t in trainers.items():
                        t0 = time.perf_counter()
                        for _ in range(args.steps):
                            t._step(batch, None)
                        times[name].append((time.perf_counter() - t0) / args.steps * 1e3)
            med = {k: statistics.median(v) for k, v in times.items()}
            results[reg] = {
                "median_ms": med,
                "min_ms": {k: min(v) for k, v in times.items()},
                "ratio_flow_over_normal": med["flow"] / med["normal"],
            }
            print(
                f"{reg:12s} normal {med['normal']:7.2f} ms/step   flow {med['flow']:7.2f} ms/step   "
                f"ratio x{med['flow'] / med['normal']:.2f}",
                flush=True,
            )
    res = {
        "setting": vars(args),
        "torch_version": torch.__version__,
        "pyro_version": pyro.__version__,
        "results": results,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
