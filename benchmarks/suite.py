"""The benchmark suite: every registered model's training step (against its hand-written PyTorch floor where one is
registered), evaluation against its floor, the metrics' throughput. One command runs it all:

    OMP_NUM_THREADS=1 python benchmarks/suite.py                       # ~15 minutes on one core
    OMP_NUM_THREADS=1 python benchmarks/suite.py --quick               # fewer rounds, a smoke run
    OMP_NUM_THREADS=1 python benchmarks/suite.py --only steps --models vae,ugvae --rounds 21

**Steps.** For every registered model with its default guide and objective (default sizes on MLP networks: the
project's 784-400-… MLP, the UG-VAE family's own; binary 28×28 images, batch 128; class labels for the class-
conditioned models, two 0/1 attributes for CSVAE/CondVAE): ``engine`` is ``Trainer._step``, exactly what ``pyro-vaes
fit`` runs per step (every optimizer of the objective, the loss read for the divergence check, Pyro's validation off
after the first step as in ``fit``); ``pyro`` is that step with every exact fast path off
(``pyro_vaes.plumbing.fastpaths.disabled()``: what the engine ran before them); ``hand`` is the same step on deep copies of
the same modules, its loss written by hand in plain PyTorch (``benchmarks/hand_losses.py``: same networks, same
estimator, same optimizers). The hand loss is optional per model: a model registered in the zoo without one in
``hand_losses.HAND`` gets its row all the same (``engine`` and ``pyro`` timed against each other, its networks the
model's defaults, on 28×28 binary images or its ``example_shape`` if it refuses them), marked "no hand-written
floor". Before timing, the engine's and the hand-written losses are compared on fresh draws:
value and gradients equal when both draw the same random numbers, means within Monte-Carlo error otherwise
(``check``). Timing interleaves the three step by step (the order rotated at every step, on the same batches) and
measures each step's CPU time on its thread, so that the shared machine's slow spells fall on all three alike; step
i of the engine is paired with step i of the hand loss. Reported: the median step time of each, and the median of
the paired ratios with their 25th-75th percentiles. Rows ``vae [conv28]`` and ``cvae [conv28]`` use the 28×28
convolutional networks; ``ugvae vs closed form`` compares the enumerated step with the authors' closed-form loss
(analytic KLs; a different, lower-variance estimator of the same bound, ``benchmarks/ugvae_speed.py``).

**Evaluation.** ``pyro_vaes.analysis.evaluation.evaluate`` against the bare encoder/decoder passes it needs and a
hand-written importance sampler (``benchmarks/bench_evaluation.py``), MLP and conv VAEs.

**Metrics.** Items per second of the metrics (reconstruction error against its own floor, the ELBO decomposition,
MIG, the FactorVAE metric, the kNN symmetric KL), on a VAE of the default size.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hand_losses  # noqa: E402

from pyro_vaes.config import FitConfig  # noqa: E402
from pyro_vaes.data import ArraySplit, VAEData  # noqa: E402
from pyro_vaes.engine import Trainer, build  # noqa: E402
from pyro_vaes.plumbing import fastpaths  # noqa: E402
from pyro_vaes.plumbing.params import param_registration  # noqa: E402
from pyro_vaes.registry import MODELS  # noqa: E402

#: the targets of issue 15 (step time ÷ hand-written loss, batch 128, one CPU thread)
TARGET_MLP, TARGET_CONV, TARGET_ENUM_VS_CLOSED = 1.03, 1.01, 1.10
NUM_CLASSES, NUM_LABELS = 10, 2


# -- building both sides -----------------------------------------------------------------------------------------
def make_data(model: str, shape=(1, 28, 28), n: int = 512, seed: int = 0) -> VAEData:
    """Binary images (about 20 % on) with the labels ``model`` conditions on."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, *shape, generator=g) < 0.2).float()
    kind = MODELS.get(model).labels
    y = None
    if kind == "class":
        y = torch.randint(NUM_CLASSES, (n,), generator=g)
    elif kind == "binary":
        y = torch.randint(2, (n, NUM_LABELS), generator=g)
    names = (
        [f"c{i}" for i in range(NUM_CLASSES)]
        if kind == "class"
        else ([f"a{i}" for i in range(NUM_LABELS)] if kind == "binary" else None)
    )
    split = n * 3 // 4
    return VAEData(
        "bench",
        ArraySplit(x[:split], None if y is None else y[:split]),
        ArraySplit(x[split:], None if y is None else y[split:]),
        label_names=names,
    )


def make_trainer(
    model: str,
    data: VAEData,
    batch_size: int = 128,
    model_args: dict[str, Any] | None = None,
    guide_args: dict[str, Any] | None = None,
    objective_args: dict[str, Any] | None = None,
    seed: int = 0,
) -> Trainer:
    """The engine's trainer for ``model`` with its default guide and objective (nothing written anywhere)."""
    cfg = FitConfig(
        model=model,
        data="linear-gaussian",
        batch_size=batch_size,
        seed=seed,
        figures=False,
        model_args=dict(model_args or {}),
        guide_args=dict(guide_args or {}),
        objective_args=dict(objective_args or {}),
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the likelihood note
        return Trainer(build(cfg, data), Path(tempfile.gettempdir()) / "pyro-vaes-bench-unused", progress=False)


def hand_copy(tr: Trainer) -> tuple[Any, Any, dict[str, Any], dict[str, torch.optim.Optimizer]]:
    """Deep copies of the trainer's model, guide and auxiliary networks (identical initial values) with optimizers
    set as the engine's."""
    obj, c = tr.parts.objective, tr.config
    nets = obj.networks()
    model, guide, aux_modules = copy.deepcopy(
        (tr.parts.model, tr.parts.guide, {n: net.module for n, net in nets.items()})
    )
    params = list(model.parameters()) + (list(guide.parameters()) if guide is not None else [])
    opts = {"main": torch.optim.Adam(params, lr=c.lr, betas=obj.main_betas)}
    for n, net in nets.items():
        opts[n] = torch.optim.Adam(
            aux_modules[n].parameters(), lr=c.aux_lr if net.lr is None else net.lr, betas=net.betas
        )
    return model, guide, {**aux_modules, "objective": obj}, opts


@contextlib.contextmanager
def engine_context(register: bool = False, fast: bool = True):
    """What ``fit`` runs every step after the first inside: Pyro's validation off, parameter registration only for
    the svi backend (``register``), the plate fast paths on (``fast=False``: every fast path off,
    ``pyro_vaes.plumbing.fastpaths.disabled``: Pyro's own paths, what the engine ran before them)."""
    with (
        pyro.validation_enabled(False),
        param_registration(register),
        fastpaths.plate_fastpaths() if fast else fastpaths.disabled(),
    ):
        yield


def engine_step(tr: Trainer, fast: bool = True) -> Callable:
    """``Trainer._step`` as ``fit`` runs it after the first step (see :func:`engine_context`)."""

    def step(x, y):
        with engine_context(tr.svi is not None, fast):
            tr._step(x, y)

    return step


# -- the exactness check -------------------------------------------------------------------------------------------
def _engine_losses(tr: Trainer, name: str, x, y) -> dict[str, torch.Tensor]:
    obj = tr.parts.objective
    out = {}
    with pyro.validation_enabled(False), param_registration(False):
        for opt_name in tr.order:
            out[opt_name] = obj.loss(x, y) if opt_name == "main" else obj.network_loss(opt_name, x, y)
    return out


def _hand_losses(tr: Trainer, name: str, x, y) -> dict[str, torch.Tensor]:
    aux = {n: net.module for n, net in tr.parts.objective.networks().items()}
    raw = hand_losses.HAND[name].fn(tr.parts.model, tr.parts.guide, {**aux, "objective": tr.parts.objective}, x, y)
    return {k: v() if callable(v) else v for k, v in raw.items()}


def check(tr: Trainer, name: str, x, y, draws: int = 20) -> dict[str, Any]:
    """Compare the engine's losses with the hand-written ones on the same modules (no step taken). Same draws:
    the largest relative difference of the values and of the main loss's gradients. Otherwise: the difference of
    the means over ``draws`` seeds in units of its standard error."""
    hand = hand_losses.HAND.get(name)
    if hand is None:
        raise KeyError(f"no hand-written loss is registered for {name!r} (benchmarks/hand_losses.py)")
    params = [p for m in (tr.parts.model, tr.parts.guide) if m is not None for p in m.parameters()]
    if hand.same_draws:
        torch.manual_seed(123)
        e = _engine_losses(tr, name, x, y)
        ge = torch.autograd.grad(e["main"], params, allow_unused=True)
        torch.manual_seed(123)
        h = _hand_losses(tr, name, x, y)
        gh = torch.autograd.grad(h["main"], params, allow_unused=True)
        rel = max(float((e[k] - h[k]).abs().detach() / e[k].abs().detach().clamp_min(1e-6)) for k in e)
        pairs = [(a, b) for a, b in zip(ge, gh) if a is not None and b is not None]
        # per tensor, relative to its largest gradient (floored at 1e-4 of the largest of all: a gradient that is
        # zero in exact arithmetic, e.g. a bias before BatchNorm, is rounding noise on both sides)
        floor = 1e-4 * max((float(a.abs().max()) for a, _ in pairs), default=1.0)
        grad = max((float((a - b).abs().max()) / max(float(a.abs().max()), floor) for a, b in pairs), default=0.0)
        unused = sum((a is None) != (b is None) for a, b in zip(ge, gh))
        return {
            "same_draws": True,
            "loss_rel_diff": rel,
            "grad_rel_diff": grad,
            "grad_presence_mismatch": unused,
            "ok": rel < 1e-5 and grad < 1e-4 and unused == 0,
        }
    diffs = []
    with torch.no_grad():
        for s in range(draws):
            torch.manual_seed(1000 + s)
            e = float(_engine_losses(tr, name, x, y)["main"])
            torch.manual_seed(5000 + s)
            h = float(_hand_losses(tr, name, x, y)["main"])
            diffs.append(e - h)
    mean = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / len(diffs) ** 0.5
    return {
        "same_draws": False,
        "mean_diff": mean,
        "se": se,
        "z": mean / se if se > 0 else 0.0,
        "ok": abs(mean) <= 4 * se,
    }


# -- timing -----------------------------------------------------------------------------------------------------------
def alternate(
    fns: dict[str, Callable], batches: list[tuple], rounds: int, steps: int, warmup: int = 6
) -> dict[str, list[float]]:
    """CPU time (s, this thread) of every step of each function, interleaved step by step (the order rotated at each
    step) so that the shared machine's slow and fast spells fall on all of them alike, after a few warm-up steps.
    ``rounds`` × ``steps`` steps each; step i of one function is paired with step i of another."""
    order = list(fns)
    times = {k: [] for k in fns}
    for i in range(-warmup, rounds * steps):  # negative: warm-up
        order = order[1:] + order[:1]
        for k in order:
            t0 = time.thread_time()
            fns[k](*batches[i % len(batches)])
            if i >= 0:
                times[k].append(time.thread_time() - t0)
    return times


def summary(times: dict[str, list[float]], a: str, b: str) -> dict[str, float]:
    """Median step times of ``a`` and ``b`` and the median, 25th and 75th percentiles of their paired step ratios."""
    ratios = sorted(x / y for x, y in zip(times[a], times[b]))
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    return {
        f"{a}_ms": 1e3 * statistics.median(times[a]),
        f"{b}_ms": 1e3 * statistics.median(times[b]),
        "ratio": statistics.median(ratios),
        "ratio_q1": q[0],
        "ratio_q3": q[2],
        "pairs": len(ratios),
    }


#: the note of a row whose model has no hand-written loss registered
NO_FLOOR = "no hand-written floor"
#: rows on the 28×28 convolutional networks, beside the MLP rows: (row, model, model_args, target)
CONV_CASES = [
    ("vae [conv28]", "vae", {"arch": "conv28"}, TARGET_CONV),
    ("cvae [conv28]", "cvae", {"arch": "conv28"}, TARGET_CONV),
]


def row_args(model: str) -> dict[str, Any]:
    """The model arguments of ``model``'s row: its hand loss's (the project's MLP; the UG-VAE family's own MLP,
    "k_vae", is their default on 28×28 images), or the model's defaults where no hand loss is registered."""
    hand = hand_losses.HAND.get(model)
    return dict(hand.model_args) if hand is not None else {}


def row_shape(model: str) -> tuple[int, ...]:
    """Binary 28×28 images, or the model's ``example_shape`` where it refuses them."""
    cls = MODELS.get(model)
    return (1, 28, 28) if cls.accepts((1, 28, 28), cls.labels) is None else tuple(cls.example_shape)


def step_cases() -> list[tuple[str, str, dict[str, Any], float | None]]:
    """(row, model, model_args, target) for every model registered now (read at run time, so a model registered
    after this module was imported gets its row): those with a hand loss in its registration order, the others
    by name, then the conv rows; no target without a hand-written floor."""
    names = MODELS.names()
    models = [m for m in hand_losses.HAND if m in names] + [m for m in names if m not in hand_losses.HAND]
    rows = [(m, m, row_args(m), TARGET_MLP if m in hand_losses.HAND else None) for m in models]
    return rows + [c for c in CONV_CASES if c[1] in hand_losses.HAND]


def bench_steps(args) -> list[dict[str, Any]]:
    rows = []
    wanted = None if args.models is None else set(args.models.split(","))
    for row, model, model_args, target in step_cases():
        if wanted is not None and model not in wanted and row not in wanted:
            continue
        data = make_data(model, shape=row_shape(model))
        tr = make_trainer(model, data, args.batch, model_args)
        idx = [torch.arange(i * args.batch, (i + 1) * args.batch) for i in range(3)]
        batches = [data.train.batch(i) for i in idx]
        fns = {"engine": engine_step(tr)}
        has_hand = model in hand_losses.HAND
        if has_hand:
            exact = check(tr, model, *batches[0], draws=args.draws)
            m, g, aux, opts = hand_copy(tr)
            fns["hand"] = lambda x, y: hand_losses.hand_step(model, m, g, aux, opts, x, y)
        else:
            exact = {"ok": None, "note": NO_FLOOR}
        fns["pyro"] = engine_step(make_trainer(model, data, args.batch, model_args), fast=False)
        times = alternate(fns, batches, args.rounds, args.steps)
        res = {
            "row": row,
            "model": model,
            "guide": tr.config.guide,
            "objective": tr.config.objective,
            "arch": getattr(tr.parts.model, "arch", None),
            "target": target,
            "check": exact,
        }
        if has_hand:
            res.update(summary(times, "engine", "hand"), without_fastpaths=summary(times, "pyro", "hand"))
        else:  # the engine against itself with its fast paths off: what there is to compare without a floor
            vs = summary(times, "engine", "pyro")
            res.update(hand_ms=None, engine_ms=vs["engine_ms"], ratio=None, vs_without_fastpaths=vs)
        rows.append(res)
        print(_step_line(res), flush=True)
        if model == "ugvae":
            rows.append(_ugvae_closed_form(tr, batches, args))
            print(_step_line(rows[-1]), flush=True)
    return rows


def _ugvae_closed_form(tr: Trainer, batches, args) -> dict[str, Any]:
    """The enumerated engine step against the authors' closed-form loss on copies of the same networks."""
    import ugvae_speed

    m, g, _, opts = hand_copy(tr)

    def closed(x, y):
        opts["main"].zero_grad(set_to_none=True)
        loss = ugvae_speed.hand_loss(m, g, x)
        loss.detach().item()
        loss.backward()
        opts["main"].step()

    times = alternate({"engine": engine_step(tr), "hand": closed}, batches, args.rounds, args.steps)
    return {
        "row": "ugvae vs closed form",
        "model": "ugvae",
        "guide": tr.config.guide,
        "objective": "enum-elbo vs the authors' closed form",
        "arch": tr.parts.model.arch,
        "target": TARGET_ENUM_VS_CLOSED,
        "check": {"ok": None, "note": "a different estimator (analytic KLs)"},
        **summary(times, "engine", "hand"),
    }


def _step_line(r: dict[str, Any]) -> str:
    c = r["check"]
    if r.get("hand_ms") is None:
        vs = r["vs_without_fastpaths"]
        return (
            f"{r['row']:<22} {NO_FLOOR}  engine {r['engine_ms']:7.2f} ms  without fast paths {vs['pyro_ms']:7.2f} ms  "
            f"engine / without {vs['ratio']:.3f} [{vs['ratio_q1']:.3f}, {vs['ratio_q3']:.3f}]"
        )
    if c.get("ok") is None:
        chk = "n/a"
    elif c["same_draws"]:
        chk = f"{'ok' if c['ok'] else 'FAIL'} (loss {c['loss_rel_diff']:.1e}, grad {c['grad_rel_diff']:.1e})"
    else:
        chk = f"{'ok' if c['ok'] else 'FAIL'} (means {c['z']:+.1f} SE)"
    before = r.get("without_fastpaths")
    was = (
        ""
        if before is None
        else f"  (without fast paths {before['ratio']:.3f} [{before['ratio_q1']:.3f}, {before['ratio_q3']:.3f}])"
    )
    return (
        f"{r['row']:<22} hand {r['hand_ms']:7.2f} ms  engine {r['engine_ms']:7.2f} ms  ratio {r['ratio']:.3f} "
        f"[{r['ratio_q1']:.3f}, {r['ratio_q3']:.3f}]{was}  target {r['target']:.2f}  check {chk}"
    )


# -- evaluation ---------------------------------------------------------------------------------------------------------
def bench_eval(args) -> list[dict[str, Any]]:
    import bench_evaluation as be

    from pyro_vaes.analysis.evaluation import evaluate

    g = torch.Generator().manual_seed(0)
    split = ArraySplit((torch.rand(args.eval_examples, 1, 28, 28, generator=g) < 0.15).float())
    P, N, B, C = args.eval_particles, args.eval_examples, min(100, args.eval_examples), 100
    rows = []
    for name, arch, hidden in (("MLP 784-400-20", "mlp", 400), ("conv 28x28, z = 20", "conv28", 400)):
        model, guide = be.make(arch, hidden, 20)
        fns = {
            "networks": lambda: be.networks(model, guide, split, P, N, B, C),
            "hand": lambda: be.hand(model, guide, split, P, N, B, C),
            "evaluate": lambda: evaluate(model, guide, split, P, B, N, C),
        }
        times = alternate({k: (lambda f=f: f()) for k, f in fns.items()}, [()], args.eval_rounds, 1, warmup=1)
        res = {
            "row": name,
            "particles": P,
            "examples": N,
            **summary(times, "evaluate", "networks"),
            "vs_hand": summary(times, "evaluate", "hand"),
        }
        rows.append(res)
        print(
            f"evaluate {name:<20} networks {res['networks_ms'] / 1e3:.3f} s  evaluate {res['evaluate_ms'] / 1e3:.3f} s"
            f"  ÷ networks {res['ratio']:.2f} [{res['ratio_q1']:.2f}, {res['ratio_q3']:.2f}]  ÷ hand IS "
            f"{res['vs_hand']['ratio']:.2f}",
            flush=True,
        )
    return rows


# -- metrics ------------------------------------------------------------------------------------------------------------
def bench_metrics(args) -> list[dict[str, Any]]:
    import numpy as np

    from pyro_vaes.metrics.factor_vae_metric import factor_vae_metric, representation
    from pyro_vaes.metrics.generative import elbo_decomposition, symmetric_kl
    from pyro_vaes.metrics.mig import mig
    from pyro_vaes.metrics.reconstruction import reconstruction_error

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers import ToyFactors

    data = make_data("vae", n=2000)
    tr = make_trainer("vae", data)
    model, guide = tr.parts.model.eval(), tr.parts.guide.eval()
    split = data.train
    n = len(split)

    @torch.no_grad()
    def floor_recon():
        for s in range(0, n, 250):
            x, _ = split.batch(torch.arange(s, min(n, s + 250)))
            model.decoder(guide.encode(x)["z"]["loc"])

    codes = np.random.default_rng(0).normal(size=(10000, 10))
    factors = np.random.default_rng(1).integers(0, 8, size=(10000, 5))
    z1, z2 = torch.randn(2000, 10), torch.randn(2000, 10)
    source = ToyFactors((1, 28, 28))
    rep = representation(model, guide)
    cases = [
        ("reconstruction_error", n, lambda: reconstruction_error(model, guide, split)),
        ("  its floor (encoder + decoder passes)", n, floor_recon),
        ("elbo_decomposition", 1000, lambda: elbo_decomposition(model, guide, split, n=1000)),
        ("mig (10,000 codes x 5 factors)", 10000, lambda: mig(codes, factors)),
        (
            "factor_vae_metric (renders encoded)",
            None,
            lambda: factor_vae_metric(rep, source, num_train=200, num_eval=100, num_variance_estimate=2000),
        ),
        ("symmetric_kl kNN (2,000 vs 2,000)", 2000, lambda: symmetric_kl(z1, z2)),
    ]
    rows = []
    for name, items, fn in cases:
        times = []
        for _ in range(args.metric_rounds):
            t0 = time.thread_time()
            out = fn()
            times.append(time.thread_time() - t0)
        if items is None:  # the FactorVAE metric: (num_train + num_eval) votes of batch_size renders + the variance set
            s = out["settings"]
            items = (s["num_train"] + s["num_eval"]) * s["batch_size"] + s["num_variance_estimate"]
        t = statistics.median(times)
        rows.append({"metric": name, "items": items, "seconds": t, "items_per_s": items / t})
        print(f"{name:<42} {items:>7} items  {t:7.3f} s  {items / t:10.0f} items/s", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=("steps", "evaluation", "metrics"), action="append")
    p.add_argument("--models", help="comma-separated models (or row names) for the step table")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--steps", type=int, default=16, help="rounds × steps: the steps timed per method")
    p.add_argument("--draws", type=int, default=30, help="seeds of the expectation check")
    p.add_argument("--eval-particles", type=int, default=1000)
    p.add_argument("--eval-examples", type=int, default=100)
    p.add_argument("--eval-rounds", type=int, default=5)
    p.add_argument("--metric-rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="3 rounds of 3 steps, 100 particles: a smoke run")
    p.add_argument("--out", help="write every number as JSON here")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.steps, args.draws = 3, 3, 8
        args.eval_particles, args.eval_examples, args.eval_rounds, args.metric_rounds = 100, 20, 2, 1
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # small Adam states intermittently slowed one side by ~60 % (denormals)
    kinds = args.only or ["steps", "evaluation", "metrics"]
    env = {
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "threads": args.threads,
        "cpus": __import__("os").cpu_count(),
    }
    print(json.dumps(env))
    out: dict[str, Any] = {"environment": env, "settings": vars(args)}
    if "steps" in kinds:
        print(
            f"\nstep time, batch {args.batch}, {args.rounds} rounds x {args.steps} steps, ratio = engine / hand "
            "(median [25th, 75th percentile] of the paired steps' ratios; CPU time per step)"
        )
        out["steps"] = bench_steps(args)
    if "evaluation" in kinds:
        print(
            f"\nevaluation, {args.eval_particles} particles x {args.eval_examples} examples, median of "
            f"{args.eval_rounds} alternating rounds"
        )
        out["evaluation"] = bench_eval(args)
    if "metrics" in kinds:
        print("\nmetrics throughput (VAE 784-400-10, median of rounds)")
        out["metrics"] = bench_metrics(args)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
