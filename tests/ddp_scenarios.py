"""Scenarios for tests/test_distributed.py, run on 2 ranks in one launch (not a test module itself):

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_scenarios.py OUT

Every rank runs every scenario in order (each a ``pyro_vaes.fit`` or ``pyro_vaes.cli.main`` call, as a user's script
under torchrun would) and writes ``OUT/<scenario>-rank<r>.pt``: the trained parameters of every module it holds,
the messages of the errors it raised, what it printed. The test process compares the ranks with each other and
with references it computes itself in one process.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import example_data  # noqa: E402

WORLD = 2
TINY = dict(batch_size=8, lr=1e-2, eval_every=2, checkpoint_every=2, eval_batches=1, figures=False)


def vae_config(**kw) -> dict[str, Any]:
    base = dict(
        model="vae",
        data="linear-gaussian",
        model_args={"latent_dim": 3, "hidden": 16, "likelihood": "bernoulli"},
        guide_args={"hidden": 16},
        steps=4,
        seed=3,
        **TINY,
    )
    return {**base, **kw}


def factor_config() -> dict[str, Any]:
    return vae_config(objective="factor-vae", objective_args={"disc_hidden": 16, "disc_layers": 2}, aux_lr=1e-3)


def mlvae_config() -> dict[str, Any]:
    return dict(
        model="mlvae",
        data="linear-gaussian",
        model_args={"latent_dim": 2, "c_dim": 3, "hidden": 16},
        steps=3,
        seed=1,
        **TINY,
    )


def chyvae_config() -> dict[str, Any]:
    return dict(
        model="chyvae",
        guide="chyvae-meanfield",
        objective="chyvae-collapsed",
        data="linear-gaussian",
        model_args={"latent_dim": 3, "nu": 6.0, "hidden": 16, "likelihood": "bernoulli"},
        guide_args={"hidden": 16},
        steps=3,
        seed=2,
        **TINY,
    )


def csvae_config() -> dict[str, Any]:
    return dict(
        model="csvae",
        data="linear-gaussian",
        model_args={"latent_dim": 3, "w_dim": 2, "hidden": 16, "likelihood": "bernoulli"},
        guide_args={"hidden": 16},
        objective_args={"adversary_hidden": 8, "adversary_layers": 1},
        steps=3,
        seed=4,
        aux_lr=1e-3,
        **TINY,
    )


def cgan_config() -> dict[str, Any]:
    return dict(
        model="cgan",
        data="linear-gaussian",
        model_args={"latent_dim": 3, "hidden": 16},
        objective_args={"disc_hidden": 16},
        steps=3,
        seed=6,
        **TINY,
    )


#: what each scenario's model needs of the data: observation shape and labels
DATA = {"csvae": ((1, 12, 12), "binary"), "cgan": ((1, 28, 28), "class")}


def data_for(model: str = "vae"):
    shape, labels = DATA.get(model, ((1, 28, 28), None))
    return example_data(shape, labels, n_train=48, n_test=16, seed=5)


def overflow_data():
    """``data_for()`` with one training row of 1e30 (a Gaussian likelihood's squared error overflows to inf): a row of
    rank 1's shard at step 2, of no shard at step 1."""
    from pyro_vaes.data import iterate_batches

    data = data_for()
    batches = iterate_batches(len(data.train), TINY["batch_size"], seed=3)
    next(batches)
    _, idx = next(batches)
    data.train.x[int(idx[TINY["batch_size"] // WORLD])] = 1e30  # rank 1's first row at step 2
    return data


def state_of(run) -> dict[str, torch.Tensor]:
    out = {}
    for prefix, module in (("model", run.model), ("guide", run.guide)):
        if module is not None:
            out.update({f"{prefix}.{k}": v.detach().cpu().clone() for k, v in module.named_parameters()})
    for name, net in run.parts.objective.networks().items():
        out.update({f"{name}.{k}": v.detach().cpu().clone() for k, v in net.module.named_parameters()})
    return out


def sigterm_on_rank1(run_dir: Path, rank: int):
    """``fit(vae_config())`` into ``run_dir`` with rank 1 sending itself SIGTERM as it starts step 3."""
    import signal

    import pyro_vaes
    from pyro_vaes.engine.trainer import Trainer

    original = Trainer._step

    def step_(self, x, y):
        if rank == 1 and self.step + 1 == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, x, y)

    Trainer._step = step_
    try:
        return pyro_vaes.fit(vae_config(), out=run_dir, dataset=data_for(), progress=False)
    finally:
        Trainer._step = original


def main(out: Path) -> None:
    import pyro_vaes
    from pyro_vaes import cli
    from pyro_vaes.engine import distributed

    ranks = distributed.current()
    rank = ranks.rank
    results: dict[str, Any] = {}

    def record(name: str, fn) -> None:
        res: dict[str, Any] = {}
        try:
            run = fn()
            if run is not None:
                res["params"] = state_of(run)
                res["history"] = run.history
        except Exception as err:  # noqa: BLE001 - the message is what the test checks
            res["error"] = (type(err).__name__, " ".join(str(err).split()))
            res["echoed"] = distributed.echoed(err)  # the command line prints it on rank 0 only
        results[name] = res
        torch.save(res, out / f"{name}-rank{rank}.pt")

    # the same configuration, uninterrupted and resumed (steps 2 -> 4)
    record("vae", lambda: pyro_vaes.fit(vae_config(), out=out / "vae", dataset=data_for(), progress=False))
    record(
        "vae-half",
        lambda: pyro_vaes.fit(vae_config(steps=2), out=out / "vae-resumed", dataset=data_for(), progress=False),
    )
    record(
        "vae-resumed", lambda: pyro_vaes.fit(resume=out / "vae-resumed", steps=4, dataset=data_for(), progress=False)
    )
    # SIGTERM on rank 1 alone at step 3: every rank stops after step 3, rank 0 checkpoints there; then resumed to 4
    record("vae-term", lambda: sigterm_on_rank1(out / "vae-term", rank))
    record(
        "vae-term-resumed", lambda: pyro_vaes.fit(resume=out / "vae-term", steps=4, dataset=data_for(), progress=False)
    )
    record(
        "vae-svi",
        lambda: pyro_vaes.fit(vae_config(backend="svi"), out=out / "vae-svi", dataset=data_for(), progress=False),
    )
    record(
        "factor-vae", lambda: pyro_vaes.fit(factor_config(), out=out / "factor-vae", dataset=data_for(), progress=False)
    )
    record("mlvae", lambda: pyro_vaes.fit(mlvae_config(), out=out / "mlvae", dataset=data_for(), progress=False))
    record("chyvae", lambda: pyro_vaes.fit(chyvae_config(), out=out / "chyvae", dataset=data_for(), progress=False))
    record("csvae", lambda: pyro_vaes.fit(csvae_config(), out=out / "csvae", dataset=data_for("csvae"), progress=False))
    record("cgan", lambda: pyro_vaes.fit(cgan_config(), out=out / "cgan", dataset=data_for("cgan"), progress=False))
    # errors: an infinite loss on rank 1 only; a missing run folder rank 0 finds; a batch that does not split
    gaussian = vae_config(model_args={"latent_dim": 3, "hidden": 16, "likelihood": "gaussian"})
    record("overflow", lambda: pyro_vaes.fit(gaussian, out=out / "overflow", dataset=overflow_data(), progress=False))
    record("missing", lambda: pyro_vaes.fit(resume=out / "no-such-run", steps=4, progress=False))
    record(
        "odd-batch",
        lambda: pyro_vaes.fit(vae_config(batch_size=9), out=out / "odd", dataset=data_for(), progress=False),
    )
    # the command line under torchrun: rank 0 alone prints, an agreed error is printed once
    for name, argv in (
        (
            "cli",
            [
                "fit",
                "vae",
                "--data",
                "shapes2d",
                "--data-arg",
                "n_train=64",
                "--data-arg",
                "n_test=16",
                "--steps",
                "2",
                "--batch-size",
                "16",
                "--latent-dim",
                "2",
                "--model-arg",
                "hidden=16",
                "--guide-arg",
                "hidden=16",
                "--eval-every",
                "1",
                "--no-figures",
                "--quiet",
                "--out",
                str(out / "cli"),
            ],
        ),
        ("cli-exists", ["fit", "vae", "--steps", "2", "--out", str(out / "cli"), "--quiet"]),
        ("cli-evaluate", ["evaluate", str(out / "cli")]),
    ):
        stdout, stderr = io.StringIO(), io.StringIO()
        saved = sys.stdout
        with contextlib.redirect_stderr(stderr):
            sys.stdout = stdout
            try:
                code = cli.main(argv)
            finally:
                sys.stdout = saved
        res = {"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}
        torch.save(res, out / f"{name}-rank{rank}.pt")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
