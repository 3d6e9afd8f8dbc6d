"""Variational families, one module per model family (installed as ``pyro_vaes.guides``).

Each guide is registered by name in :data:`pyro_vaes.registry.GUIDES` with the models it fits.
"""

from pyro_vaes.guides import vae  # noqa: F401  (registers the guides)
from pyro_vaes.guides import chyvae  # noqa: F401  (CHyVAE; issue 5)
from pyro_vaes.guides import ugvae, gmvae, mlvae  # noqa: F401  (UG-VAE family)
from pyro_vaes.guides.base import GuideBase

__all__ = ["GuideBase"]
