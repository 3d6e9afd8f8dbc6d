"""The trainable whole as one ``nn.Module``: model, guide and the objective's auxiliary networks.

``Learner.forward(x, y)`` is the objective's main loss, so a data-parallel wrapper (DistributedDataParallel)
or any other ``nn.Module`` machinery can take the whole at once; ``main_parameters()`` (model, then guide) are
what the main optimizer steps, each auxiliary network's parameters what its own optimizer steps.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


class Learner(nn.Module):
    """``model`` + ``guide`` (None for guide-less models) + ``auxiliaries`` (name -> network); forward = main loss."""

    def __init__(self, model: nn.Module, guide: nn.Module | None, objective) -> None:
        super().__init__()
        self.model = model
        self.guide = guide
        self.auxiliaries = nn.ModuleDict({name: net.module for name, net in objective.networks().items()})
        self.__dict__["objective"] = objective  # a plain attribute: the objective is not a module

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.objective.loss(x, y)

    def main_parameters(self) -> list[nn.Parameter]:
        """The model's parameters, then the guide's (the main optimizer's, in a fixed order)."""
        params = list(self.model.parameters())
        if self.guide is not None:
            params += list(self.guide.parameters())
        return params

    def all_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.main_parameters()
        for net in self.auxiliaries.values():
            yield from net.parameters()
