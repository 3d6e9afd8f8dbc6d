"""Do finished torchrun jobs exit 0? Runs N short 2-rank jobs one after another and counts their exit statuses.

    python benchmarks/torchrun_exits.py                 # 20 jobs of pyro-vaes fit (a tiny VAE, 2 gloo ranks)
    python benchmarks/torchrun_exits.py --jobs 50 --steps 20
    python benchmarks/torchrun_exits.py --baseline      # a plain torch script that never ends its process group

Each job is ``torchrun --standalone --nproc_per_node 2 -m pyro_vaes fit vae ... --resume-or-start`` in a fresh run
folder; it must exit 0 and write its checkpoint at the last step. Without ending the process group, gloo aborts a
worker at interpreter shutdown now and then ("terminate called without an active exception", SIGABRT: the job exits
1 although it finished; ``--baseline`` shows how often on this machine); ``pyro_vaes.engine.distributed.shutdown``
ends it at exit. Prints one line per failed job (its exit status and the last lines of its output) and a summary;
exits 1 when any job failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = """
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(3)
dist.all_reduce(t)
"""


def job(folder: Path, steps: int, baseline: bool) -> tuple[int, str]:
    root = str(Path(__file__).resolve().parents[1])  # this checkout's pyro_vaes, wherever the command runs
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    if baseline:
        script = folder / "plain.py"
        script.write_text(BASELINE)
        cmd = launch + [str(script)]
    else:
        cmd = launch + [
            "-m",
            "pyro_vaes",
            "fit",
            "vae",
            "--data",
            "shapes2d",
            "--data-arg",
            "n_train=64",
            "--data-arg",
            "n_test=16",
            "--batch-size",
            "16",
            "--latent-dim",
            "2",
            "--model-arg",
            "hidden=16",
            "--guide-arg",
            "hidden=16",
            "--steps",
            str(steps),
            "--eval-every",
            str(steps),
            "--checkpoint-every",
            str(steps),
            "--no-figures",
            "--quiet",
            "--out",
            str(folder / "run"),
            "--resume-or-start",
        ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    if proc.returncode == 0 and not baseline and not (folder / "run" / "checkpoint.pt").is_file():
        return -1, out  # "success" without the run's checkpoint
    return proc.returncode, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20, help="jobs to run (default 20)")
    parser.add_argument("--steps", type=int, default=10, help="training steps per job (default 10)")
    parser.add_argument("--baseline", action="store_true", help="a plain gloo script instead of pyro-vaes fit")
    args = parser.parse_args(argv)
    failed = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="torchrun-exits-") as tmp:
        for i in range(args.jobs):
            folder = Path(tmp) / f"job{i}"
            folder.mkdir()
            code, out = job(folder, args.steps, args.baseline)
            if code != 0:
                failed += 1
                tail = " | ".join(line for line in out.strip().splitlines()[-3:])
                print(f"job {i + 1}: exit status {code}: {tail[-400:]}")
    what = "plain gloo script (no process-group shutdown)" if args.baseline else "pyro-vaes fit"
    print(
        f"{args.jobs - failed} of {args.jobs} finished 2-rank torchrun jobs ({what}) exited 0 "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
