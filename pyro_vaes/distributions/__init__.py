"""Distributions Pyro and torch do not have."""

from pyro_vaes.distributions.inverse_wishart import InverseWishart

__all__ = ["InverseWishart"]
