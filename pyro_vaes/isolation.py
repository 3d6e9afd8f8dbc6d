"""Running something beside training without changing it: modules in eval mode, random draws from a stream
of their own.

Held-out losses, evaluation, figures and metrics all run inside both, so they change no parameter, no buffer
(BatchNorm statistics) and no random state a training step reads — on the CPU and on every CUDA device.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn


@contextmanager
def eval_mode(*modules: Optional[nn.Module]) -> Iterator[None]:
    """Put ``modules`` (None entries skipped) in eval mode and restore each submodule's own mode afterwards."""
    saved = [(m, m.training) for module in modules if module is not None for m in module.modules()]
    for module in modules:
        if module is not None:
            module.eval()
    try:
        yield
    finally:
        for m, mode in saved:
            m.training = mode


@contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Draw from a generator seeded with ``seed``; every CPU and CUDA random state is restored afterwards.

    ``torch.manual_seed`` seeds every CUDA device too, so all of them are forked, not only the CPU
    (forking the CPU alone would restart a GPU run's training noise after each evaluation).
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
