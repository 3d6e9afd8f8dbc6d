"""Objectives: how a model/guide pair is fitted, chosen independently of both (see :mod:`.base`).

Each objective registers itself by name in :data:`pyro_vaes.registry.OBJECTIVES`; the registry imports every
module of this package on its first lookup, so a new objective is one new file here. Regularised ELBOs are a
few lines on top of :class:`~pyro_vaes.objectives.terms.RegularizedELBO`; objectives with networks meet them
through :func:`~pyro_vaes.objectives.base.frozen_call` and :class:`~pyro_vaes.objectives.base.Handoff`.
"""

from pyro_vaes.objectives.base import (
    AuxiliaryNetwork,
    Handoff,
    Objective,
    ScaleLatents,
    ScaleSites,
    frozen_call,
    scale_latents,
    scale_sites,
)
from pyro_vaes.objectives.terms import ELBOTerms, RegularizedELBO, elbo_terms

__all__ = [
    "AuxiliaryNetwork",
    "ELBOTerms",
    "Handoff",
    "Objective",
    "RegularizedELBO",
    "ScaleLatents",
    "ScaleSites",
    "elbo_terms",
    "frozen_call",
    "scale_latents",
    "scale_sites",
]
