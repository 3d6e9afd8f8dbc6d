"""Generative models, one module per model family (installed as ``pyro_vaes.models``).

Each model registers itself by name in :data:`pyro_vaes.registry.MODELS`; the registry imports every module
of this package on its first lookup, so a new model is one new file here.
"""

from pyro_vaes.models.base import ModelBase

__all__ = ["ModelBase"]
