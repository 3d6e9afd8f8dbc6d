"""Rerun UG-VAE's reproduction experiments and print their tables beside the paper's claims.

    OMP_NUM_THREADS=2 python benchmarks/ugvae_reproduce.py --scale small --seed 0 --data-root ../shared/data \
        --out results/ugvae

Runs ``ugvae-mnist-series`` and ``ugvae-celeba-attributes`` (``--all`` adds ``ugvae-sampling`` and
``ugvae-domains``; ``--only NAME ...`` picks experiments; ``--steps N`` overrides the scale's step budget) through the same functions as ``pyro-vaes reproduce``.
Every model is trained by ``pyro_vaes.fit``; each experiment writes ``results.json``/``results.md``, its
figures and one run folder per model (``OUT/NAME/runs/<model>``, open them with ``pyro-vaes evaluate`` or
``pyro-vaes plot``) under ``OUT/NAME``, plus ``OUT/summary.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pyro_vaes.registry import EXPERIMENTS

DEFAULT = ["ugvae-mnist-series", "ugvae-celeba-attributes"]
ALL = DEFAULT + ["ugvae-sampling", "ugvae-domains"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", default="small", choices=("tiny", "small", "full"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default="results/ugvae")
    p.add_argument("--all", action="store_true", help="also run ugvae-sampling and ugvae-domains")
    p.add_argument("--only", nargs="+", choices=ALL, help="run these experiments only")
    p.add_argument("--steps", type=int, default=None, help="override the scale's step budget (written in the tables)")
    args = p.parse_args()
    names = args.only or (ALL if args.all else DEFAULT)
    out = Path(args.out)
    summary = [f"# UG-VAE reproduction ({args.scale}, seed {args.seed})", ""]
    for name in names:
        t0 = time.perf_counter()
        EXPERIMENTS.get(name)(out / name, args.scale, args.seed, args.data_root, steps=args.steps)
        summary += [(out / name / "results.md").read_text(), f"_wall time {time.perf_counter() - t0:.0f} s_", ""]
    (out / "summary.md").write_text("\n".join(summary))
    print("\n".join(summary))


if __name__ == "__main__":
    main()
