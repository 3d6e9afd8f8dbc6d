"""Distributions Pyro and torch do not have, and what the project reads off torch's."""

from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from pyro_vaes.distributions.inverse_wishart import InverseWishart

__all__ = ["InverseWishart", "normal_marginals"]


def normal_marginals(d: Distribution) -> Normal | None:
    """The per-dimension Normal marginals (..., d) of a (batched, possibly ``Independent``) Normal or
    MultivariateNormal, else None."""
    while isinstance(d, Independent):
        d = d.base_dist
    if isinstance(d, MultivariateNormal):
        return Normal(d.loc, d.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt())
    if isinstance(d, Normal):
        return d
    return None
