"""Running something beside training without changing it: modules in eval mode, random draws from a stream
of their own.

Held-out losses, evaluation, figures and metrics all run inside both, so they change no parameter, no buffer
(BatchNorm statistics) and no random state a training step reads — on the CPU and on every CUDA device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
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

    The CPU generator and every initialised CUDA device's are forked and seeded; nothing else is touched.
    (``torch.manual_seed`` would seed every CUDA device, so forking the CPU alone restarts a GPU run's training
    noise after each evaluation; and where CUDA is not initialised yet it *queues* the seed for CUDA's
    initialisation, which no fork restores: a later GPU run would start from this block's seed.)
    """
    devices = (
        list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)  # the CPU state torch.manual_seed(seed) gives
        for d in devices:
            torch.cuda.default_generators[d].manual_seed(seed)
        yield
