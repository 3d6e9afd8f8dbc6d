"""What every model offers the engine, the guides and the metrics."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn


class ModelBase(nn.Module):
    """A generative model p(x, latents) written as a Pyro ``model(x, y=None)`` method.

    Subclasses set ``latent_sites`` (the names of the latent sample sites, in the order the model samples
    them) and ``global_sites`` (the latent sites outside the ``data`` plate, such as UG-VAE's batch-level
    β), and implement :meth:`model`, :meth:`decode` and :meth:`sample_prior`.
    """

    #: names of the latent sample sites, in sampling order
    latent_sites: Tuple[str, ...] = ()
    #: latent sites outside the data plate (one draw per batch)
    global_sites: Tuple[str, ...] = ()
    #: the ``pyro.plate`` nesting the model uses (for ``TraceEnum_ELBO`` and particle plates)
    max_plate_nesting: int = 1
    #: name under which ``pyro.module`` registers the parameters
    pyro_name: str = "model"

    def __init__(self, input_shape: Sequence[int]):
        super().__init__()
        self.input_shape: Tuple[int, ...] = tuple(int(s) for s in input_shape)

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse observations of the wrong shape with a message naming the expected one."""
        if tuple(x.shape[1:]) != self.input_shape or x.dim() != len(self.input_shape) + 1:
            raise ValueError(
                f"{type(self).__name__} expects data of shape (batch, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )

    def model(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> Any:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | latents], shaped like the observations."""
        raise NotImplementedError

    def sample_prior(self, n: int) -> Dict[str, torch.Tensor]:
        """``n`` draws of the latents from the prior, keyed by site name."""
        raise NotImplementedError

    def sample(self, n: int) -> torch.Tensor:
        """``n`` observations' means decoded from prior draws."""
        latents = self.sample_prior(n)
        return self.decode(latents[self.latent_sites[0]])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
