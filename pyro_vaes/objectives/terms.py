"""The shared term computation behind every regularised ELBO, and the objective base class with its hook.

:func:`elbo_terms` traces the guide once, replays the model on its draws, and splits the ELBO
(Kingma & Welling, 2014, eq. 7) into its parts for one batch:

* ``recon`` = Σ_i log p(x_i | latents_i) over the observed sites,
* ``kl[site]`` = Σ_i KL(q(site | x_i) ‖ p(site | parents)) per latent site — analytic where torch or Pyro
  register one and the guide is mean-field (a site whose model parents are drawn after it in the guide has no
  per-site analytic KL), otherwise the one-draw estimate log q − log p,
* ``codes[site]`` = the sampled latent values (reparameterised, so gradients flow through them),

each multiplied by the site's scale (so a weight applied with :class:`~pyro_vaes.objectives.base.ScaleSites`
applies to them). :class:`RegularizedELBO` builds a loss from them,

    loss = −recon + kl_term(terms) + regularizer(terms, x, y),

and a regularised objective (β-VAE-B's capacity, FactorVAE's TC penalty, ...) overrides one of the two hooks.
It needs a reparameterised guide with no enumerated sites (``requires``).

A regularizer that reads an auxiliary network (FactorVAE's discriminator, CSVAE's adversary) takes the codes the
network reads with :meth:`RegularizedELBO.handoff_codes` — which hands their detached copy to the network's step
through the objective's :class:`~pyro_vaes.objectives.base.Handoff` — and evaluates the network on them with
:func:`~pyro_vaes.objectives.base.frozen_call`. The network's loss gets its codes from
:meth:`RegularizedELBO.network_codes`: those the main loss drew for the same batch (so the two steps of a training
step see the same draws and consume the random stream once), else fresh draws from the guide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

from pyro_vaes.objectives.base import Objective


@dataclass
class ELBOTerms:
    """The ELBO's parts for one batch, every number summed over the batch (see the module docstring)."""

    recon: torch.Tensor
    kl: dict[str, torch.Tensor]
    codes: dict[str, torch.Tensor]
    guide_trace: Any
    model_trace: Any

    @property
    def kl_total(self) -> torch.Tensor:
        return sum(self.kl.values()) if self.kl else self.recon.new_zeros(())

    def code(self, site: str) -> torch.Tensor:
        if site not in self.codes:
            raise KeyError(f"the guide has no sample site {site!r}; its sites: {sorted(self.codes)}")
        return self.codes[site]


def elbo_terms(
    model_fn: Callable, guide_fn: Callable, x: torch.Tensor, y: torch.Tensor | None = None, analytic_kl: bool = True
) -> ELBOTerms:
    """Trace the guide, replay the model on its draws and split the ELBO: ELBO = recon − Σ_s kl[s]."""
    guide_trace = poutine.trace(guide_fn).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model_fn, trace=guide_trace)).get_trace(x, y)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    recon = x.new_zeros(())
    kl: dict[str, torch.Tensor] = {}
    codes: dict[str, torch.Tensor] = {}
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if site["is_observed"]:
            recon = recon + site["log_prob_sum"]
            continue
        q_site = guide_trace.nodes.get(name)
        if q_site is None:
            raise ValueError(f"latent site {name!r} of the model is not sampled by the guide")
        if not getattr(q_site["fn"], "has_rsample", False):
            raise ValueError(f"guide site {name!r} is not reparameterised; this objective needs rsample")
        value = None
        if analytic_kl:
            try:
                value = scale_and_mask(kl_divergence(q_site["fn"], site["fn"]), q_site["scale"], q_site["mask"]).sum()
            except NotImplementedError:
                value = None
        kl[name] = q_site["log_prob_sum"] - site["log_prob_sum"] if value is None else value
        codes[name] = q_site["value"]
    return ELBOTerms(recon, kl, codes, guide_trace, model_trace)


class RegularizedELBO(Objective):
    """loss = −recon + kl_term(terms) + regularizer(terms, x, y), from one :func:`elbo_terms` pass.

    Subclasses override :meth:`kl_term` (β-VAE-B's capacity) or :meth:`regularizer` (FactorVAE's TC penalty);
    with neither it is the ELBO with analytic KLs. ``last_terms`` keeps the terms of the last main loss. A
    regularizer with an auxiliary network reads its codes through :meth:`handoff_codes`, and the network's loss
    through :meth:`network_codes` (see the module docstring).
    """

    #: the :class:`~pyro_vaes.objectives.base.Handoff` name under which the main loss hands its codes to the networks
    CODES = "codes"

    def __init__(self, analytic_kl: bool = True):
        super().__init__()
        self.analytic_kl = bool(analytic_kl)
        self.last_terms: ELBOTerms | None = None

    def make_elbo(self) -> Callable:
        return self._loss

    def _loss(self, model_fn: Callable, guide_fn: Callable, x: torch.Tensor, y: torch.Tensor | None = None):
        terms = elbo_terms(model_fn, guide_fn, x, y, self.analytic_kl and self.guide.mean_field)
        self.last_terms = terms
        return -terms.recon + self.kl_term(terms, x) + self.regularizer(terms, x, y)

    def kl_term(self, terms: ELBOTerms, x: torch.Tensor) -> torch.Tensor:
        """The KL part of the loss (default: Σ_s KL_s)."""
        return terms.kl_total

    def regularizer(self, terms: ELBOTerms, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """An extra penalty added to the loss (default: none)."""
        return x.new_zeros(())

    def codes_of(self, terms: ELBOTerms) -> torch.Tensor:
        """The codes an auxiliary network reads, out of a pass's terms (default: the model's code site)."""
        return terms.code(self.model.code_site)

    def handoff_codes(self, terms: ELBOTerms, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The codes of the main loss's pass (:meth:`codes_of`, with their gradients, for the regularizer), after
        handing their detached copy to the networks' losses of this batch (``handoff`` under :attr:`CODES`)."""
        z = self.codes_of(terms)
        self.handoff.put(self.CODES, z.detach(), x, y)
        return z

    def network_codes(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Detached codes of the batch (x, y) for an auxiliary network's loss: those the main loss handed off for
        this batch (:meth:`handoff_codes`; an equal batch, not necessarily the same tensors), taken so that they
        serve once, else fresh draws from the guide."""
        z = self.handoff.take(self.CODES, x, y)
        if z is None:
            with torch.no_grad():
                model_fn, guide_fn = self.model_and_guide()
                z = self.codes_of(elbo_terms(model_fn, guide_fn, x, y, analytic_kl=False))
        return z.detach()
