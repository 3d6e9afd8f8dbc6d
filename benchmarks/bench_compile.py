"""``torch.compile`` on the training step: does a compiled loss beat the eager hand-written one, and is it exact?

    OMP_NUM_THREADS=1 python benchmarks/bench_compile.py --rounds 9 --steps 20

MLP VAE 784-400-20, batch 128, one thread, Adam; four steps on copies of the same modules, alternating rounds:
``hand`` (the hand-written loss of ``benchmarks/hand_losses.py``, eager), ``hand compiled``
(``torch.compile`` of that loss function), ``engine`` (``Trainer._step``, eager) and ``engine compiled`` (the same
step with ``torch.compile`` of the objective's loss: Pyro's handlers break the graph). Reported: median step time
and ratio to the eager hand loss, the compile time (first call), and exactness: the largest relative difference of
the compiled loss's gradients from the eager ones at the same draws.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hand_losses  # noqa: E402
import suite  # noqa: E402

from pyro_vaes.plumbing.params import param_registration  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    data = suite.make_data("vae")

    def make():
        return suite.make_trainer("vae", data, 128, {"arch": "mlp", "hidden": 400, "latent_dim": 20}, {"hidden": 400})

    batches = [data.train.batch(torch.arange(i * 128, (i + 1) * 128)) for i in range(3)]
    x, y = batches[0]

    # exactness at the same draws, on the same modules
    tr = make()
    params = list(tr.parts.model.parameters()) + list(tr.parts.guide.parameters())
    obj = tr.parts.objective
    hand_fn = lambda m, g, x: hand_losses.vae(m, g, {}, x, None)["main"]  # noqa: E731
    hand_c = torch.compile(hand_fn)
    loss_c = torch.compile(obj.loss)
    out = {}
    for name, fn in (
        ("hand", lambda: hand_fn(tr.parts.model, tr.parts.guide, x)),
        ("hand compiled", lambda: hand_c(tr.parts.model, tr.parts.guide, x)),
        ("engine", lambda: obj.loss(x, y)),
        ("engine compiled", lambda: loss_c(x, y)),
    ):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        with pyro.validation_enabled(False), param_registration(False):
            loss = fn()
        first = time.perf_counter() - t0
        out[name] = (loss.detach(), torch.autograd.grad(loss, params), first)

    def rel(a, b):
        return max(float((u - v).abs().max() / u.abs().max().clamp_min(1e-12)) for u, v in zip(a, b))

    print(
        f"first call (compile) s: hand compiled {out['hand compiled'][2]:.1f}, engine compiled "
        f"{out['engine compiled'][2]:.1f}"
    )
    print(
        f"gradient rel. difference, compiled vs eager at the same draws: hand {rel(out['hand'][1], out['hand compiled'][1]):.1e}"
        f", engine {rel(out['engine'][1], out['engine compiled'][1]):.1e}; loss: hand "
        f"{float((out['hand'][0] - out['hand compiled'][0]).abs() / out['hand'][0].abs()):.1e}, engine "
        f"{float((out['engine'][0] - out['engine compiled'][0]).abs() / out['engine'][0].abs()):.1e}"
    )

    # timing: four trainers / copies
    tr_e, tr_c = make(), make()
    tr_c.parts.objective.loss = torch.compile(tr_c.parts.objective.loss)  # the learner's forward calls it
    m1, g1, aux1, opts1 = suite.hand_copy(tr_e)
    m2, g2, aux2, opts2 = suite.hand_copy(tr_e)
    step_c = torch.compile(hand_fn)

    def hand_compiled_step(x, y):
        opts2["main"].zero_grad(set_to_none=True)
        loss = step_c(m2, g2, x)
        loss.detach().item()
        loss.backward()
        opts2["main"].step()

    fns = {
        "hand": lambda x, y: hand_losses.hand_step("vae", m1, g1, aux1, opts1, x, y),
        "hand compiled": hand_compiled_step,
        "engine": suite.engine_step(tr_e),
        "engine compiled": suite.engine_step(tr_c),
    }
    times = suite.alternate(fns, batches, args.rounds, args.steps)
    base = times["hand"]
    print(
        f"\nms per step (median of {args.rounds} rounds x {args.steps} steps), ratio to the eager hand loss "
        "[25th, 75th percentile of the per-round ratios]"
    )
    for k, v in times.items():
        r = sorted(a / b for a, b in zip(v, base))
        q = statistics.quantiles(r, n=4)
        print(f"{k:<16} {1e3 * statistics.median(v):7.2f}  {statistics.median(r):.3f} [{q[0]:.3f}, {q[2]:.3f}]")


if __name__ == "__main__":
    main()
