"""Independent fits side by side: worker processes on this machine, or tasks on a Ray cluster.

A sweep (``pyro-vaes reproduce``'s seeds, ``pyro-vaes compare``'s guides × seeds) is a list of independent tasks,
each writing its own run folder. :func:`run_tasks` runs them

* ``executor="process"`` (the default): ``jobs`` worker processes on this machine (spawned, each with
  ``threads`` torch threads: one by default, since the fits are small and side by side they fill the cores);
  ``jobs=1`` runs them one after the other in this process;
* ``executor="ray"``: one Ray task per fit on an existing cluster (``address``, as ``ray.init`` takes it:
  ``"auto"``, ``"ray://host:10001"``) or, with no address, on a local Ray instance; ``pip install
  "pyro-vaes[ray]"``. Every task writes its run folder where the user asked, so the output folder must be on a
  file system every node sees.

The numbers never depend on the executor: a task is a pure function of its arguments (the seed fixes every draw),
and what the sweep reports is computed afterwards, in this process, from the finished run folders
(:func:`finished_run` tells a finished run of given settings, which a sweep then loads instead of fitting again).
So an interrupted sweep resumes where it stopped, and ``--jobs 2`` gives the numbers of ``--jobs 1``.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

EXECUTORS = ("process", "ray")


def check_executor(jobs: int, executor: str = "process", address: str | None = None) -> None:
    """Refuse impossible sweep settings before anything is fitted (one line each)."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"--jobs must be a whole number >= 1, got {jobs!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if address is not None and executor != "ray":
        raise ValueError("--address names a Ray cluster: give it with --executor ray")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError('--executor ray needs Ray: pip install "pyro-vaes[ray]"') from None


def _in_worker(threads: int, fn: Callable[..., Any], args: Sequence[Any]) -> Any:
    """Run one task in a worker with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    return fn(*args)


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[Sequence[Any]],
    jobs: int = 1,
    executor: str = "process",
    address: str | None = None,
    threads: int = 1,
) -> list[Any]:
    """``fn(*task)`` for every task, the results in the tasks' order. ``fn`` and the tasks must be picklable
    (a module-level function and plain values); an error in any task is raised here once all have ended."""
    check_executor(jobs, executor, address)
    tasks = [tuple(t) for t in tasks]
    if executor == "ray":
        return _run_on_ray(fn, tasks, address, threads)
    if jobs == 1 or len(tasks) <= 1:
        return [fn(*t) for t in tasks]
    spawn = multiprocessing.get_context("spawn")  # never fork a process holding torch's threads and Pyro's state
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=spawn) as pool:
        futures = [pool.submit(_in_worker, threads, fn, t) for t in tasks]
        return [f.result() for f in futures]


def _run_on_ray(fn: Callable[..., Any], tasks: list[tuple], address: str | None, threads: int) -> list[Any]:
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = ray.remote(num_cpus=threads)(_in_worker)
        return ray.get([remote.remote(threads, fn, t) for t in tasks])
    finally:
        if started:
            ray.shutdown()


def finished_run(folder: Path, settings: dict[str, Any]) -> bool:
    """Whether ``folder`` is a finished run of ``settings``: it holds a checkpoint, its ``config.json`` records
    every given setting (for a mapping such as ``model_args``, every given key of it) and its last metrics row is
    at ``settings["steps"]``."""
    folder = Path(folder)
    try:
        recorded = json.loads((folder / "config.json").read_text())
        lines = (folder / "metrics.jsonl").read_text().splitlines()
    except (OSError, ValueError):
        return False
    if not (folder / "checkpoint.pt").is_file():
        return False
    for key, value in settings.items():
        got = recorded.get(key)
        if isinstance(value, dict):
            if not isinstance(got, dict) or any(got.get(a) != b for a, b in value.items()):
                return False
        elif got != value:
            return False
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn last line after a crash: the run did not finish cleanly there anyway
        if "event" not in row:
            rows.append(row)
    return bool(rows) and rows[-1].get("step") == settings.get("steps", recorded.get("steps"))
