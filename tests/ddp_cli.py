"""``pyro-vaes ARGS...`` on one torchrun rank, with a fault injected on the first attempt (not a test module itself):

    DDP_FAULT=kill:1:7 python -m torch.distributed.run --standalone --nproc_per_node 2 --max-restarts 2 \
        tests/ddp_cli.py fit vae ... --out RUN --resume-or-start

``DDP_FAULT=kill:R:S`` — rank R kills itself (SIGKILL) when it starts training step S (counted from 1), as a crashed
or OOM-killed worker; ``DDP_FAULT=term:R:S`` — rank R sends SIGTERM to its parent, the torchrun agent, as a
scheduler preempting the job does (the agent passes it on to every worker). Only on torchrun's first attempt
(``TORCHELASTIC_RESTART_COUNT`` 0): the restarted workers run the plain command. Exits with the command's status.
"""

from __future__ import annotations

import os
import signal
import sys


def inject(fault: str) -> None:
    from pyro_vaes.engine.trainer import Trainer

    what, rank, step = fault.split(":")
    if os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0" or os.environ["RANK"] != rank:
        return
    step_ = Trainer._step

    def faulty(self, x, y):
        if self.step + 1 == int(step):
            if what == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            else:
                os.kill(os.getppid(), signal.SIGTERM)
        return step_(self, x, y)

    Trainer._step = faulty


if __name__ == "__main__":
    if os.environ.get("DDP_FAULT"):
        inject(os.environ["DDP_FAULT"])
    from pyro_vaes.cli import main

    sys.exit(main(sys.argv[1:]))
