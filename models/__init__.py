"""Generative models, one module per model family (installed as ``pyro_vaes.models``).

Each model is registered by name in :data:`pyro_vaes.registry.MODELS`.
"""

from pyro_vaes.models import vae  # noqa: F401  (registers the models)
from pyro_vaes.models import chyvae  # noqa: F401  (CHyVAE; issue 5)
from pyro_vaes.models import ugvae, gmvae, mlvae  # noqa: F401  (UG-VAE family)
from pyro_vaes.models.base import ModelBase

__all__ = ["ModelBase"]
