"""Where the MLP VAE's engine step spends the time its hand-written loss does not: the forward pass built up piece by
piece, each piece timed side by side with the others.

    OMP_NUM_THREADS=1 python benchmarks/vae_overhead.py --rounds 400

The model is built as in ``benchmarks/suite.py`` (``vae`` with the ``diagonal`` guide, MLP 784-400-20, batch 128,
binary images). Five forward passes of the same loss, interleaved call by call (CPU time of this thread, median of
``--rounds`` calls each; each is followed by its backward, not timed):

* ``networks``        encoder, the reparameterised draw ``loc + scale * eps``, decoder: tensor operations only;
* ``hand``            ``networks`` plus the three log-densities as formulas (``benchmarks/hand_losses.py``);
* ``distributions``   ``networks`` with Pyro's distribution objects: q(z | x) built and ``rsample``-d, the prior and
                      the Bernoulli likelihood built, no effect handlers, no log-densities;
* ``traces``          the engine's two traces (guide traced, model replayed under its plate; the fast paths on):
                      ``distributions`` plus Pyro's messengers, still no log-densities;
* ``engine``          the engine's loss, ``LeanTrace_ELBO``: ``traces`` plus each site's log-density read off its
                      distribution object and summed.

The differences between consecutive rows are what each layer costs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pyro.distributions as dist
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hand_losses  # noqa: E402
import suite  # noqa: E402

from pyro_vaes.distributions import likelihoods  # noqa: E402
from pyro_vaes.plumbing import fastpaths  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=400)
    args = p.parse_args()
    torch.set_num_threads(1)
    data = suite.make_data("vae")
    tr = suite.make_trainer("vae", data, 128, {"arch": "mlp"})
    x, y = data.train.batch(torch.arange(128))
    obj, m, g = tr.parts.objective, tr.parts.model, tr.parts.guide
    elbo = obj.elbo
    assert isinstance(elbo, fastpaths.LeanTrace_ELBO), type(elbo)

    def networks():
        q = g.encode(x)["z"]
        z = q["loc"] + q["scale"] * torch.randn_like(q["loc"])
        return m.decoder(z).sum()

    def hand():
        return hand_losses.HAND["vae"].fn(m, g, {"objective": obj}, x, y)["main"]

    def distributions():
        with suite.engine_context():
            q = g.encode(x)["z"]
            z = dist.Normal(q["loc"], q["scale"]).to_event(1).rsample()
            m.prior(x.shape[0], x)
            obs = likelihoods.observation(m.likelihood, m.decoder(z), m.input_shape, m.obs_scale)
        return obs.base_dist.logits.sum()

    def traces():
        with suite.engine_context():
            model_trace, _ = next(elbo._lean_traces(m.model, g.guide, (x, y), {}))
        return model_trace.nodes["x"]["fn"].base_dist.logits.sum()

    def engine():
        with suite.engine_context():
            return obj.loss(x, y)

    kinds = {"networks": networks, "hand": hand, "distributions": distributions, "traces": traces, "engine": engine}
    times = {k: [] for k in kinds}
    for r in range(args.rounds + 20):  # the first 20 rounds warm up
        order = list(kinds)[r % 5 :] + list(kinds)[: r % 5]
        for k in order:
            t0 = time.thread_time()
            loss = kinds[k]()
            t1 = time.thread_time()
            loss.backward()
            if r >= 20:
                times[k].append(t1 - t0)
    med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    print(f"MLP VAE forward, batch 128, 1 thread: median CPU ms of {args.rounds} interleaved calls")
    print(f"{'pass':<14} {'ms':>6}   cost of the layer")
    base = {"hand": "networks", "distributions": "networks", "traces": "distributions", "engine": "traces"}
    for k, v in med.items():
        extra = f"   {v - med[base[k]]:+.2f} over {base[k]}" if k in base else ""
        print(f"{k:<14} {v:6.2f}{extra}")
    print(f"engine - hand: {med['engine'] - med['hand']:+.2f} ms")


if __name__ == "__main__":
    main()
