"""Registering a model's or guide's parameters with Pyro, and skipping it where nothing reads them.

``pyro.module(name, module)`` puts every parameter into Pyro's global param store, which is how ``SVI`` and
``pyro.optim`` find what to optimize. The engine's default backend optimizes ``module.parameters()``
directly with one ``torch.optim`` optimizer and never reads the store, so it runs its steps inside
``param_registration(False)``: ten ``pyro.param`` look-ups a step saved, ~0.5 ms on the MLP VAE
(``benchmarks/bench_vae_step.py``). Gradients and values are the same either way
(``tests/test_engine.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyro
from torch import nn

_ENABLED = True


def register(module: nn.Module) -> None:
    """``pyro.module(module.pyro_name, module)`` unless registration is switched off."""
    if _ENABLED:
        pyro.module(module.pyro_name, module)


@contextmanager
def param_registration(enabled: bool) -> Iterator[None]:
    global _ENABLED
    previous, _ENABLED = _ENABLED, enabled
    try:
        yield
    finally:
        _ENABLED = previous
