"""Reproduce CHyVAE's metric-vs-reconstruction comparison (Ansari & Soh, 2019, Figs. 2–3) and print the table.

    python benchmarks/chyvae_reproduce.py                       # the small scale, both datasets (~1 h on a laptop)
    python benchmarks/chyvae_reproduce.py --steps 200 --seeds 1 --votes 100 --n-train 5000 \\
        --grid '{"chyvae": [20, 200], "beta-vae": [1, 4], "factor-vae": [35]}'   # a reduced budget

Every number in the printed table comes with its data size, step budget and seeds; the paper's numbers sit
beside it. Results go to ``results/chyvae-<dataset>/`` (``results.json``, ``results.md``, figures).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pyro_vaes.experiments_chyvae import SCALES, run_grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="small", choices=sorted(SCALES))
    ap.add_argument("--datasets", default="shapes2d,ellipses")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--seeds", type=int, help="number of seeds (override)")
    ap.add_argument("--steps", type=int, help="training steps per run (override)")
    ap.add_argument("--n-train", type=int, help="training images (override)")
    ap.add_argument("--n-test", type=int, help="test images (override)")
    ap.add_argument("--votes", type=int, help="FactorVAE-metric training = evaluation votes (override; L stays 200)")
    ap.add_argument("--mig-n", type=int, help="images for MIG (override)")
    ap.add_argument("--grid", help='JSON, e.g. {"chyvae": [20, 200], "beta-vae": [4], "factor-vae": [35]}')
    ap.add_argument("--out", default="results")
    ap.add_argument("--data-root")
    args = ap.parse_args()
    overrides = {}
    for key, name in (("seeds", "seeds"), ("steps", "steps"), ("n_train", "n_train"), ("n_test", "n_test"),
                      ("mig_n", "mig_n")):
        if getattr(args, key) is not None:
            overrides[name] = getattr(args, key)
    if args.votes is not None:
        overrides["metric"] = {**SCALES[args.scale]["metric"], "num_train": args.votes, "num_eval": args.votes}
    if args.grid:
        overrides["grid"] = {k: [float(v) for v in vs] for k, vs in json.loads(args.grid).items()}
    tables = []
    t0 = time.perf_counter()
    for name in args.datasets.split(","):
        out = Path(args.out) / f"chyvae-{name}"
        tables.append(run_grid(name, out, args.scale, args.seed, args.data_root, overrides))
    for t in tables:
        print((Path(args.out) / t["experiment"] / "results.md").read_text())
    print(f"total wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
