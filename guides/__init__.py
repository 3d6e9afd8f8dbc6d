"""Variational families, one module per model family (installed as ``pyro_vaes.guides``).

Each guide registers itself by name in :data:`pyro_vaes.registry.GUIDES` with the models it fits; the
registry imports every module of this package on its first lookup, so a new guide is one new file here.
"""

from pyro_vaes.guides.base import GuideBase, posterior_means

__all__ = ["GuideBase", "posterior_means"]
