"""Sweeps: tasks in worker processes or on a (local) Ray instance give the results of running them one by one."""

from __future__ import annotations

import json
import operator

import pytest

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
