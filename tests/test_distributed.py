"""Data-parallel training under torchrun (pyro_vaes/engine/distributed.py), checked on 2 gloo ranks on the CPU.

One launch of ``tests/ddp_scenarios.py`` on 2 ranks trains every scenario (a few steps on tiny data); this module
checks what each rank wrote against

* the other rank: parameters bitwise identical after training (every scenario);
* an independent one-process computation: each optimizer's Adam on the gradient of the **sum of the 2 shard losses**
  (their mean for a mean loss), each shard's noise seeded from (seed, step, rank), written here by hand (no engine
  code beyond building the modules): the parameters must be bitwise equal. For per-datum models that is the gradient
  one process computes for the whole batch (the loss is a sum over rows), drawn with the ranks' noise; for a
  batch-level latent (ML-VAE's c) it is one process fitting one group per shard; objectives with a second optimizer
  (FactorVAE, CSVAE, CGAN) are covered with their step order;
* an uninterrupted run (resume at step 2 under torchrun reproduces it bitwise);
* the torch backend (the svi backend's SVI steps, synchronised, give the same parameters);
* errors: a loss that overflows on rank 1 only, a missing run folder found by rank 0, a batch that does not split:
  every rank raises the same error, and the command line prints it once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ddp_scenarios as sc
import pyro
import pytest
import torch
import torch.distributed as dist

from pyro_vaes.config import FitConfig
from pyro_vaes.data import iterate_batches
from pyro_vaes.engine import build, distributed
from pyro_vaes.plumbing.params import param_registration

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is not available"
)


@pytest.fixture(scope="module")
def ranks_out(tmp_path_factory) -> Path:
    """Run every scenario on 2 ranks (one torchrun launch); the folder holding what each rank wrote."""
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(HERE / "ddp_scenarios.py"),
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def ranks(out: Path, name: str):
    return [torch.load(out / f"{name}-rank{r}.pt", weights_only=False) for r in range(2)]


def seed_of(seed: int, step: int, rank: int) -> int:
    """The per-(seed, step, rank) noise seed, written out here independently of the library."""
    return ((seed * 1_000_003 + step) * 1009 + rank) % 2**62


#: auxiliary losses that average over the batch's rows (FactorVAE's discriminator: cross-entropy means)
MEAN_LOSSES = {("factor-vae", "discriminator")}


def summed_shards(cfg, data, world: int = 2):
    """One process: each optimizer, in the objective's order, steps on the gradient of the sum of the ``world``
    shard losses of each step's batch (the mean, for :data:`MEAN_LOSSES`); shard r's random stream is seeded from
    (seed, step, r) and continues from one optimizer's loss to the next, as on rank r, and an objective that reuses
    the codes of its main loss (FactorVAE, CSVAE) gets shard r's. Returns the trained parameters."""
    cfg = FitConfig.from_dict(cfg)
    parts = build(cfg, data)
    model, guide, obj = parts.model, parts.guide, parts.objective
    params = list(model.parameters()) + (list(guide.parameters()) if guide is not None else [])
    nets = obj.networks()
    opts = {"main": torch.optim.Adam(params, lr=cfg.lr, betas=obj.main_betas)}
    opts.update(
        {
            n: torch.optim.Adam(net.module.parameters(), lr=cfg.aux_lr if net.lr is None else net.lr, betas=net.betas)
            for n, net in nets.items()
        }
    )
    b = cfg.batch_size // world
    batches = iterate_batches(len(data.train), cfg.batch_size, cfg.seed)
    for step in range(cfg.steps):
        _, idx = next(batches)
        obj.at_step(step)
        shards = [data.train.batch(idx[r * b : (r + 1) * b]) for r in range(world)]
        states, codes = [], [None] * world
        for r in range(world):
            torch.default_generator.manual_seed(seed_of(cfg.seed, step, r))
            states.append(torch.get_rng_state())
        for name in obj.optimizer_order():
            opts[name].zero_grad(set_to_none=True)
            for r, (x, y) in enumerate(shards):
                torch.set_rng_state(states[r])
                obj._codes_of = codes[r]
                with pyro.validation_enabled(step == 0), param_registration(False):
                    loss = obj.loss(x, y) if name == "main" else obj.network_loss(name, x, y)
                states[r], codes[r] = torch.get_rng_state(), obj._codes_of
                loss.backward()  # gradients accumulate: shard 0's + shard 1's
            if (cfg.objective, name) in MEAN_LOSSES:
                for p in nets[name].module.parameters():
                    if p.grad is not None:
                        p.grad /= world
            opts[name].step()
    out = {f"model.{k}": v.detach().clone() for k, v in model.named_parameters()}
    if guide is not None:
        out.update({f"guide.{k}": v.detach().clone() for k, v in guide.named_parameters()})
    for name, net in nets.items():
        out.update({f"{name}.{k}": v.detach().clone() for k, v in net.module.named_parameters()})
    return out


def assert_bitwise(a, b):
    assert a.keys() == b.keys()
    diff = {k: float((a[k] - b[k]).abs().max()) for k in a if not torch.equal(a[k], b[k])}
    assert not diff, f"differ: {diff}"


@pytest.mark.parametrize(
    "name", ["vae", "vae-half", "vae-resumed", "vae-svi", "factor-vae", "mlvae", "chyvae", "csvae", "cgan"]
)
def test_ranks_hold_identical_parameters(ranks_out, name):
    r0, r1 = ranks(ranks_out, name)
    assert "error" not in r0, r0.get("error")
    assert_bitwise(r0["params"], r1["params"])


@pytest.mark.parametrize(
    "name, config",
    [
        ("vae", sc.vae_config),
        ("mlvae", sc.mlvae_config),
        ("chyvae", sc.chyvae_config),
        ("factor-vae", sc.factor_config),
        ("csvae", sc.csvae_config),
        ("cgan", sc.cgan_config),
    ],
)
def test_two_ranks_equal_one_process_summing_their_shards(ranks_out, name, config):
    """vae: a per-datum model (the whole batch's gradient); mlvae: one group latent per rank's shard; chyvae with the
    mean-field guide and the collapsed bound: guide parameters without gradients; factor-vae: a second optimizer
    (the discriminator) whose loss is a mean over the shard; csvae: an adversary with a summed loss reusing the main
    step's codes; cgan: a guide-less model whose discriminator steps first (dropout draws on each rank)."""
    r0, _ = ranks(ranks_out, name)
    assert_bitwise(r0["params"], summed_shards(config(), sc.data_for(name if name in sc.DATA else "vae")))


def test_parameters_without_gradients_stay_put(ranks_out):
    """chyvae-collapsed never reads the mean-field guide's raw_psi / raw_nu: no rank moves them."""
    r0, _ = ranks(ranks_out, "chyvae")
    parts = build(FitConfig.from_dict(sc.chyvae_config()), sc.data_for())
    unused = {f"guide.{k}": v for k, v in parts.guide.named_parameters() if k.startswith(("raw_psi", "raw_nu"))}
    assert unused
    for k, v in unused.items():
        assert torch.equal(r0["params"][k], v), k


def test_resume_under_torchrun_is_exact(ranks_out):
    """2 steps, checkpoint, resume to 4 on 2 ranks == 4 uninterrupted steps on 2 ranks, bitwise."""
    whole, resumed = ranks(ranks_out, "vae")[0], ranks(ranks_out, "vae-resumed")[0]
    assert_bitwise(whole["params"], resumed["params"])
    state = torch.load(ranks_out / "vae" / "checkpoint.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 4


def test_svi_backend_synchronises_and_equals_the_torch_backend(ranks_out):
    assert_bitwise(ranks(ranks_out, "vae")[0]["params"], ranks(ranks_out, "vae-svi")[0]["params"])


def test_only_rank_zero_writes(ranks_out):
    rows = (ranks_out / "vae" / "metrics.jsonl").read_text().splitlines()
    assert [eval(r)["step"] for r in rows] == [2, 4]  # one row per evaluation, not one per rank
    assert not any(p.name.startswith(".") for p in (ranks_out / "vae").iterdir())  # no lock or temporary file left
    r0, r1 = ranks(ranks_out, "vae")
    assert r0["history"] == r1["history"] and len(r0["history"]) == 2


@pytest.mark.parametrize(
    "name, kind, text",
    [
        ("overflow", "TrainingDiverged", "the loss became nan at step 2"),  # rank 1's shard only
        ("missing", "FileNotFoundError", "is not a run folder"),  # found by rank 0 alone
        ("odd-batch", "ValueError", "does not split into 2 equal shards"),
    ],
)
def test_an_error_on_one_rank_stops_every_rank_with_the_same_line(ranks_out, name, kind, text):
    r0, r1 = ranks(ranks_out, name)
    assert r0["error"] == r1["error"]
    assert r0["error"][0] == kind and text in r0["error"][1]
    assert not r0["echoed"] and r1["echoed"]  # printed once, by rank 0


def test_command_line_under_torchrun_prints_once(ranks_out):
    r0, r1 = ranks(ranks_out, "cli")
    assert r0["code"] == r1["code"] == 0
    assert "data-parallel training on 2 ranks" in r0["stdout"] and "run folder:" in r0["stdout"]
    assert r1["stdout"] == r1["stderr"] == ""
    for name, text in (("cli-exists", "already exists"), ("cli-evaluate", "runs in one process")):
        r0, r1 = ranks(ranks_out, name)
        assert r0["code"] == r1["code"] == 2
        assert r0["stderr"].count("\n") == 1 and text in r0["stderr"] and r1["stderr"] == ""


def test_one_process_is_untouched_by_the_hooks():
    """Not launched by torchrun: the plain single process, every hook the ordinary operation."""
    assert distributed.launched() is None
    ranks_ = distributed.current()
    assert ranks_ is distributed.ONE_PROCESS and not ranks_.active
    idx = torch.arange(8)
    assert ranks_.shard(idx) is idx
    state = torch.get_rng_state()
    ranks_.seed_step(0, 5, torch.device("cpu"))
    assert torch.equal(state, torch.get_rng_state())
    assert ranks_.on_main(lambda: 3) == 3 and ranks_.agree(lambda: 4) == 4


def test_step_seeds_differ_per_rank_and_step():
    seeds = {distributed.step_seed(0, s, r) for s in range(100) for r in range(8)}
    assert len(seeds) == 800 and distributed.step_seed(3, 7, 1) == seed_of(3, 7, 1)


def test_isolated_rng_restores_and_seeds_only_what_it_forks():
    """The held-out loss's random stream: CPU draws as torch.manual_seed(seed) gives them, the CPU state restored, and
    no seed queued for a CUDA initialisation to come (torch.manual_seed queues one when CUDA is not initialised, which
    no fork undoes)."""
    from pyro_vaes.plumbing.isolation import isolated_rng

    torch.manual_seed(11)
    before, queued = torch.get_rng_state(), list(torch.cuda._lazy_seed_tracker.get_calls())
    with isolated_rng(5):
        inside = torch.randn(4)
    assert torch.equal(torch.get_rng_state(), before)
    assert list(torch.cuda._lazy_seed_tracker.get_calls()) == queued
    torch.manual_seed(5)
    assert torch.equal(inside, torch.randn(4))
