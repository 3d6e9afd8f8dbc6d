"""Evaluation against its floor: the time of ``pyro_vaes.analysis.evaluation.evaluate`` against the time of the computation
any importance sampler needs, measured in one process, alternating, on the same batches.

    python benchmarks/bench_evaluation.py                     # MLP 784-400-20 and the 28x28 conv VAE
    python benchmarks/bench_evaluation.py --particles 1000 --examples 100 --rounds 5

Three timings on the same batches (``chunk`` particles at a time and at most ``MAX_ROWS`` decoded rows a pass, as the
estimator draws them; no autograd graph):

* ``networks``  the encoder on each batch once and the decoder on every one of the S × N particles, nothing else;
* ``hand``      a hand-written importance sampler on the same networks: those passes plus log p(x | z) (torch's
                Bernoulli), log N(z; 0, I) − log q(z | x) and the log-sum-exp: the floor of any IS estimate;
* ``evaluate``  ``pyro_vaes.analysis.evaluation.evaluate``: the whole evaluation through Pyro traces (importance-sampled
                log-likelihood with its standard error, ELBO, KLs per site and per dimension, reconstruction error,
                active units).

Reported: the median over rounds of each, and ``evaluate``'s ratio to both.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch.distributions import Bernoulli, Normal

from pyro_vaes.analysis.evaluation import MAX_ROWS, evaluate
from pyro_vaes.data import ArraySplit
from pyro_vaes.engine import build_component
from pyro_vaes.registry import GUIDES, MODELS


def make(arch: str, hidden: int, latent: int):
    torch.manual_seed(0)
    model = build_component(
        MODELS, "vae", (1, 28, 28), latent_dim=latent, arch=arch, hidden=hidden, likelihood="bernoulli"
    )
    guide = build_component(GUIDES, "diagonal", model, hidden=hidden)
    return model.eval(), guide.eval()


@torch.no_grad()
@torch.no_grad()
def networks(model, guide, split, particles: int, examples: int, batch_size: int, chunk: int) -> None:
    chunk = max(1, min(chunk, MAX_ROWS // batch_size))  # the passes evaluate makes (at most MAX_ROWS rows each)
    for start in range(0, examples, batch_size):
        x, _ = split.batch(torch.arange(start, min(examples, start + batch_size)))
        q = guide.encode(x)["z"]
        for done in range(0, particles, chunk):
            s = min(chunk, particles - done)
            z = q["loc"] + q["scale"] * torch.randn(s, *q["loc"].shape)
            model.decoder(z)


@torch.no_grad()
def hand(model, guide, split, particles: int, examples: int, batch_size: int, chunk: int) -> torch.Tensor:
    chunk = max(1, min(chunk, MAX_ROWS // batch_size))
    out = []
    for start in range(0, examples, batch_size):
        x, _ = split.batch(torch.arange(start, min(examples, start + batch_size)))
        q = guide.encode(x)["z"]
        log_w = []
        for done in range(0, particles, chunk):
            s = min(chunk, particles - done)
            z = q["loc"] + q["scale"] * torch.randn(s, *q["loc"].shape)
            log_px = Bernoulli(logits=model.decoder(z), validate_args=False).log_prob(x).flatten(-3).sum(-1)
            log_w.append(
                log_px + Normal(0.0, 1.0).log_prob(z).sum(-1) - Normal(q["loc"], q["scale"]).log_prob(z).sum(-1)
            )
        out.append(torch.logsumexp(torch.cat(log_w), 0) - math.log(particles))
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--particles", type=int, default=1000)
    p.add_argument("--examples", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    split = ArraySplit((torch.rand(args.examples, 1, 28, 28, generator=g) < 0.15).float())
    print(
        f"{args.particles} particles x {args.examples} examples, batch {args.batch_size}, chunk {args.chunk}, "
        f"{args.threads} thread(s), median of {args.rounds} alternating rounds"
    )
    print(f"{'network':<24} {'networks s':>10} {'hand s':>7} {'evaluate s':>10} {'/networks':>9} {'/hand':>6}")
    kinds = {
        "networks": networks,
        "hand": hand,
        "evaluate": lambda m, g, *a: evaluate(m, g, split, args.particles, args.batch_size, args.examples, args.chunk),
    }
    for name, arch, hidden in (("MLP 784-400-20", "mlp", 400), ("28x28 conv net, z = 20", "conv28", 400)):
        model, guide = make(arch, hidden, 20)
        times = {k: [] for k in kinds}
        for r in range(args.rounds + 1):  # the first round warms up and is not counted
            order = list(kinds)[r % 3 :] + list(kinds)[: r % 3]  # rotate the order
            for kind in order:
                t0 = time.perf_counter()
                kinds[kind](model, guide, split, args.particles, args.examples, args.batch_size, args.chunk)
                if r:
                    times[kind].append(time.perf_counter() - t0)
        n, h, e = (statistics.median(times[k]) for k in kinds)
        print(f"{name:<24} {n:10.3f} {h:7.3f} {e:10.3f} {e / n:9.2f} {e / h:6.2f}")


if __name__ == "__main__":
    main()
