"""Data-loading speed: MNIST into memory + one epoch of batches of 128, and rendering shapes2d / ellipses.

Run: PYRO_VAES_DATA=../shared/data python benchmarks/bench_data.py [--data-root R] [--n-render 10000]
Prints wall times (single process, torch threads as configured).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-root", default=None)
    p.add_argument("--n-render", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=128)
    a = p.parse_args()

    from pyro_vaes import registry

    try:
        registry._load_components()
    except ImportError:  # component families not written yet do not matter here
        pass
    from pyro_vaes.data import iterate_batches, load_dataset
    from pyro_vaes.data.procedural import CorrelatedEllipsesFactors, DSpritesFactors

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    try:
        t0 = time.perf_counter()
        d = load_dataset("mnist", root=a.data_root)
        t_load = time.perf_counter() - t0
        n = len(d.train)
        steps = n // a.batch_size
        t0 = time.perf_counter()
        total = 0.0
        for step, idx in iterate_batches(n, a.batch_size, seed=0):
            x, y = d.train.batch(idx)
            total += float(x[0, 0, 0, 0])
            if step + 1 == steps:
                break
        t_epoch = time.perf_counter() - t0
        print(f"mnist: load {n}+{len(d.test)} images into memory (stochastic binarization): {t_load:.2f} s")
        print(
            f"mnist: one epoch, {steps} batches of {a.batch_size} (iterate_batches + ArraySplit.batch): {t_epoch:.3f} s"
        )
    except FileNotFoundError as err:
        print(f"mnist: skipped ({err})")

    g = torch.Generator().manual_seed(0)
    src = DSpritesFactors()
    f = src.sample_factors(a.n_render, g)
    t0 = time.perf_counter()
    src.render(f)
    print(f"shapes2d: render {a.n_render} images: {time.perf_counter() - t0:.2f} s")
    src = CorrelatedEllipsesFactors()
    f = src.sample_factors(a.n_render, g)
    t0 = time.perf_counter()
    src.render(f)
    print(f"ellipses: render {a.n_render} images (cold patch cache): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
