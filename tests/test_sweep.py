"""Sweeps: tasks in worker processes or on a (local) Ray instance give the results of running them one by one."""

from __future__ import annotations

import json
import operator

import pytest
import torch

from pyro_vaes.engine.sweep import check_executor, finished_run, run_tasks

TASKS = [(2, 3), (4, 5), (6, 7)]


def test_processes_give_the_results_in_order():
    assert run_tasks(operator.mul, TASKS, jobs=2) == run_tasks(operator.mul, TASKS, jobs=1) == [6, 20, 42]


def test_an_error_in_a_worker_is_raised_here():
    with pytest.raises(ZeroDivisionError):
        run_tasks(operator.truediv, [(1, 1), (1, 0)], jobs=2)


@pytest.mark.parametrize(
    "jobs,executor,address,message",
    [
        (0, "process", None, "--jobs must be a whole number >= 1"),
        (2, "threads", None, "unknown executor 'threads'; valid: process, ray"),
        (2, "process", "auto", "--address names a Ray cluster: give it with --executor ray"),
    ],
)
def test_bad_sweep_settings_get_one_line(jobs, executor, address, message):
    with pytest.raises(ValueError, match=message):
        check_executor(jobs, executor, address)


def test_ray_local_instance_gives_the_same_results():
    pytest.importorskip("ray", reason='Ray is optional: pip install "pyro-vaes[ray]"')
    assert run_tasks(operator.mul, TASKS, executor="ray") == [6, 20, 42]


def test_finished_run_reads_the_config_and_the_last_step(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": "vae", "seed": 1, "steps": 4, "model_args": {"a": 1}}))
    (folder / "metrics.jsonl").write_text('{"step": 2}\n{"step": 4}\n{"step": 4, "event": "x"}\n{"ste')
    assert not finished_run(folder, {"model": "vae", "steps": 4})  # no checkpoint yet
    (folder / "checkpoint.pt").write_bytes(b"")
    assert finished_run(folder, {"model": "vae", "seed": 1, "steps": 4, "model_args": {"a": 1}})
    assert not finished_run(folder, {"model": "vae", "steps": 5})  # stopped before the budget
    assert not finished_run(folder, {"model": "vae", "seed": 2, "steps": 4})
    assert not finished_run(folder, {"model": "vae", "steps": 4, "model_args": {"a": 2}})
    assert not finished_run(tmp_path / "absent", {"steps": 4})


# -- experiments and comparisons: the same numbers whatever runs the fits ------------------------------------------
def _table(path):
    """results.json without its timings."""

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if "seconds" not in k}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    return strip(json.loads(path.read_text()))


def test_a_rerun_loads_the_finished_fits_and_gives_the_same_table(tmp_path):
    """What ``--jobs`` and resuming rely on: an experiment run again over its own output loads each finished fit
    (same settings) instead of fitting it again, and reports the same numbers."""
    from pyro_vaes.experiments.base import Experiment
    from pyro_vaes.experiments.common import mean_std

    class Tiny(Experiment):
        name, scales = "sweep-test", {"tiny": dict(steps=3, seeds=2)}

        def run_one(self, settings, seed, context):
            run = context.fit(
                f"vae-seed{seed}", model="vae", data="moons", seed=seed, steps=settings["steps"], eval_every=3,
                data_args={"n_train": 64, "n_test": 32}, batch_size=16, eval_batches=1,
            )  # fmt: skip
            return [{"seed": seed, "test_loss": run.history[-1]["test_loss"], "draw": float(torch.rand(()))}]

        def summary(self, rows, settings):
            return mean_std([r["test_loss"] for r in rows])

    experiment = Tiny()
    experiment(tmp_path, scale="tiny")
    first = _table(tmp_path / "results.json")
    stamp = (tmp_path / "runs" / "vae-seed1" / "checkpoint.pt").stat().st_mtime_ns
    experiment(tmp_path, scale="tiny")
    assert _table(tmp_path / "results.json") == first  # the draw after a loaded fit is the fresh fit's too
    assert (tmp_path / "runs" / "vae-seed1" / "checkpoint.pt").stat().st_mtime_ns == stamp  # loaded, not refitted
    experiment(tmp_path, scale="tiny", overrides={"steps": 4})  # other settings: fitted again
    assert (tmp_path / "runs" / "vae-seed1" / "checkpoint.pt").stat().st_mtime_ns != stamp


@pytest.mark.slow
def test_reproduce_gives_the_same_numbers_with_jobs_and_on_ray(tmp_path):
    """``pyro-vaes reproduce dpvae-moons --scale tiny`` with 2 seeds: --jobs 2 and a local Ray instance give the
    results.json numbers of --jobs 1 (~1 min)."""
    import subprocess
    import sys

    def reproduce(out, *extra):
        cmd = [sys.executable, "-m", "pyro_vaes", "reproduce", "dpvae-moons", "--scale", "tiny"]
        done = subprocess.run([*cmd, "--set", "seeds=2", "--out", str(out), *extra], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return _table(out / "results.json")

    one = reproduce(tmp_path / "one")
    assert reproduce(tmp_path / "two", "--jobs", "2") == one
    pytest.importorskip("ray", reason='Ray is optional: pip install "pyro-vaes[ray]"')
    assert reproduce(tmp_path / "ray", "--executor", "ray") == one


@pytest.mark.slow
def test_compare_gives_the_same_numbers_with_jobs(tmp_path):
    from pyro_vaes.analysis.comparison import compare

    def table(out, jobs):
        compare(
            "vae", ["diagonal", "full-covariance"], out=out, data="moons", seeds=(0,), steps=20, batch_size=32,
            num_particles=5, max_examples=8, refine_steps=2, data_args={"n_train": 128, "n_test": 32},
            progress=False, jobs=jobs,
        )  # fmt: skip
        guides = json.loads((out / "compare.json").read_text())["guides"]
        return {g: {k: v for k, v in s.items() if "step" not in k and "second" not in k} for g, s in guides.items()}

    assert table(tmp_path / "two", 2) == table(tmp_path / "one", 1)
