"""Importance-sampled test negative log-likelihood of a conv VAE (20 latents) on real MNIST.

    python benchmarks/mnist_nll.py --data-root ../shared/data --steps 6000 --particles 1000 --test 2000

Trains ``pyro-vaes fit vae --data mnist --latent-dim 20`` (conv28 encoder/decoder, Bernoulli likelihood on
MNIST binarized once with a seeded Bernoulli draw, batch 128, Adam 1e-3, Trace_ELBO) for a fixed step
budget, then evaluates log p(x) with ``--particles`` importance samples on the first ``--test`` test
images. Prints one markdown row and writes results.json in the run folder.
"""

from __future__ import annotations

import argparse
import time

import torch

import pyro_vaes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--particles", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-mnist-conv-vae")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    run = pyro_vaes.fit(
        model="vae",
        data="mnist",
        data_root=args.data_root,
        model_args={"latent_dim": 20, "arch": "conv28", "hidden": 256},
        guide_args={"hidden": 256},
        steps=args.steps,
        batch_size=128,
        lr=1e-3,
        eval_every=1000,
        checkpoint_every=1000,
        seed=args.seed,
        out=args.out,
        overwrite=True,
    )
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = run.evaluate(num_particles=args.particles, max_examples=args.test)
    eval_s = time.perf_counter() - t0
    epochs = args.steps * 128 / len(run.data.train)
    print(
        "| model | steps (epochs) | test images | particles | test NLL (nats) | -ELBO | KL | active units |"
        " train s | eval s |"
    )
    print(
        f"| conv VAE z=20 | {args.steps} ({epochs:.1f}) | {res['n']} | {args.particles} | "
        f"{-res['log_likelihood']:.2f} | {-res['elbo']:.2f} | {res['kl_total']:.2f} | {res['active_units']} | "
        f"{train_s:.0f} | {eval_s:.0f} |"
    )


if __name__ == "__main__":
    main()
