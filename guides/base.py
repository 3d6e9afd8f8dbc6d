"""What every guide offers the engine and the metrics."""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from pyro_vaes.models.base import ModelBase


class GuideBase(nn.Module):
    """A variational family q(latents | x) written as a Pyro ``guide(x, y=None)`` method.

    A guide is built from the model it approximates (``Guide(model, **guide_args)``), so it knows the
    observation shape and latent sizes; its sample sites are the model's ``latent_sites``.
    """

    pyro_name: str = "guide"

    def __init__(self, model: ModelBase):
        super().__init__()
        self.input_shape = model.input_shape

    def guide(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> Any:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Posterior parameters for ``x``; ``loc`` is the posterior mean of the main latent."""
        raise NotImplementedError
