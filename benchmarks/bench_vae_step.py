"""Time per training step: the Pyro VAE as the engine trains it against the same networks with a
hand-written PyTorch loss, measured in one process, alternating, on the same batches.

    python benchmarks/bench_vae_step.py                 # MLP 784-400-20 and the 28x28 conv net, batch 128
    python benchmarks/bench_vae_step.py --threads 1 --rounds 15 --steps 20

Three ways to take a step on identical modules and data:

* ``hand``   z = μ + σ ε, loss = −[log p(x | z) + log N(z; 0, I) − log N(z; μ, σ²)] summed over the batch
             (the same single-sample Monte-Carlo ELBO that Trace_ELBO estimates), one ``torch.optim.Adam``;
* ``engine`` what ``pyro-vaes fit`` runs: ``Trace_ELBO().differentiable_loss`` on the Pyro model/guide with
             one ``torch.optim.Adam``, Pyro's validation off after the first step and no param-store
             registration (``pyro_vaes.plumbing.params``);
* ``svi``    classic ``SVI(model, guide, pyro.optim.Adam, Trace_ELBO())``, validation off.

Each round runs ``--steps`` steps of every method in turn (order rotated per round). Reported: the best
and the median over rounds of the per-step mean, each with its ratio to ``hand``; on a shared machine the
best round is the least disturbed measurement.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import pyro.optim
import torch
from torch.distributions import Normal

from pyro_vaes.engine import build_component
from pyro_vaes.objectives.elbo import ELBO
from pyro_vaes.plumbing.params import param_registration
from pyro_vaes.registry import GUIDES, MODELS


def hand_loss(model, guide, x):
    q = guide.encode(x)["z"]
    z = q["loc"] + q["scale"] * torch.randn_like(q["loc"])
    logits = model.decoder(z)
    log_px = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    log_pz = Normal(0.0, 1.0).log_prob(z).sum()
    log_qz = Normal(q["loc"], q["scale"]).log_prob(z).sum()
    return -(log_px + log_pz - log_qz)


def make(arch, hidden, latent, seed=0):
    torch.manual_seed(seed)
    model = build_component(
        MODELS, "vae", (1, 28, 28), latent_dim=latent, arch=arch, hidden=hidden, likelihood="bernoulli"
    )
    guide = build_component(GUIDES, "diagonal", model, hidden=hidden)
    return model, guide


def steppers(arch, hidden, latent, lr=1e-3):
    out = {}
    m, g = make(arch, hidden, latent)
    opt = torch.optim.Adam(list(m.parameters()) + list(g.parameters()), lr=lr)

    def hand(x, m=m, g=g, opt=opt):
        opt.zero_grad(set_to_none=True)
        loss = hand_loss(m, g, x)
        loss.detach().item()
        loss.backward()
        opt.step()

    out["hand"] = hand
    m2, g2 = make(arch, hidden, latent)
    obj = ELBO().bind(m2, g2)
    opt2 = torch.optim.Adam(list(m2.parameters()) + list(g2.parameters()), lr=lr)

    def engine(x, obj=obj, opt=opt2):
        opt.zero_grad(set_to_none=True)
        with param_registration(False):  # as the engine's torch backend runs its steps
            loss = obj.loss(x)
        loss.detach().item()
        loss.backward()
        opt.step()

    out["engine"] = engine
    m3, g3 = make(arch, hidden, latent)
    svi = ELBO().bind(m3, g3).svi(pyro.optim.Adam({"lr": lr}))
    out["svi"] = lambda x, svi=svi: svi.step(x)
    return out


def bench(name, arch, hidden, latent, batch, rounds, steps):
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(steps, batch, 1, 28, 28, generator=g) < 0.3).float()
    fns = steppers(arch, hidden, latent)
    for fn in fns.values():  # warm-up (and validation of the first step)
        fn(data[0])
    times = {k: [] for k in fns}
    order = list(fns)
    with pyro.validation_enabled(False):
        for _ in range(rounds):
            order = order[1:] + order[:1]
            for k in order:
                t = time.perf_counter()
                for s in range(steps):
                    fns[k](data[s])
                times[k].append((time.perf_counter() - t) / steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print(f"\n{name}: batch {batch}, {rounds} rounds x {steps} steps, {torch.get_num_threads()} thread(s)")
    print(f"{'method':<8} {'best ms/step':>13} {'ratio':>7} {'median ms/step':>15} {'ratio':>7}")
    for k in fns:
        print(
            f"{k:<8} {1e3 * best[k]:>13.2f} {best[k] / best['hand']:>7.3f} {1e3 * med[k]:>15.2f} "
            f"{med[k] / med['hand']:>7.3f}"
        )
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, pyro {pyro.__version__}")
    bench("MLP 784-400-20", "mlp", 400, 20, args.batch, args.rounds, args.steps)
    bench("conv 28x28 (32-64 conv, 256 fc), z=20", "conv28", 256, 20, args.batch, args.rounds, args.steps)


if __name__ == "__main__":
    main()
