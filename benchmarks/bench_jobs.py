"""Wall time of one experiment with its seeds' fits one after the other (``--jobs 1``) and side by side
(``--jobs 2``), run alternately, each a fresh ``pyro-vaes reproduce`` process with one torch thread per worker;
checks that both give the same results.json numbers.

    OMP_NUM_THREADS=1 python benchmarks/bench_jobs.py --name csvae-swissroll --scale small --set seeds=2 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def numbers(path: Path):
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if "seconds" not in k}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    return strip(json.loads(path.read_text()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", default="csvae-swissroll")
    p.add_argument("--scale", default="small")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--out", help="write the timings here as JSON")
    args = p.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    tables = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for jobs in (1, 2) if r % 2 == 0 else (2, 1):
                out = Path(tmp) / f"r{r}-j{jobs}"
                cmd = [sys.executable, "-m", "pyro_vaes", "reproduce", args.name, "--scale", args.scale]
                cmd += [w for kv in args.set for w in ("--set", kv)] + ["--out", str(out), "--jobs", str(jobs)]
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
                times[jobs].append(time.perf_counter() - t0)
                tables[jobs] = numbers(out / "results.json")
                print(f"round {r}: --jobs {jobs}: {times[jobs][-1]:.1f} s", flush=True)
    same = tables[1] == tables[2]
    ratio = min(times[2]) / min(times[1])
    record = {
        "experiment": args.name,
        "scale": args.scale,
        "set": args.set,
        "seconds_jobs1": times[1],
        "seconds_jobs2": times[2],
        "ratio_jobs2_over_jobs1": ratio,
        "same_numbers": same,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(record, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
