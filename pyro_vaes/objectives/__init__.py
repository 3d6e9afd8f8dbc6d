"""Objectives: how a model/guide pair is fitted, chosen independently of both.

An :class:`Objective` is bound to a model and a guide (:meth:`Objective.bind`) and then gives

* :meth:`Objective.loss` — the differentiable loss (a negative bound) for one batch, used with one
  ``torch.optim`` optimizer over the model's and guide's parameters (the engine's default backend);
* :meth:`Objective.svi` — a :class:`pyro.infer.SVI` over the same loss for the classic Pyro backend;
* optionally an ``auxiliary`` module with its own loss (:meth:`Objective.auxiliary_loss`) that the engine
  steps with a second optimizer (FactorVAE's discriminator, adversaries);
* :meth:`Objective.at_step` for schedules (annealed capacities).

Registered here:

=================  ==========================================================================================
``elbo``           ``Trace_ELBO``: Monte-Carlo ELBO, E_q[log p(x, z) − log q(z | x)]
``meanfield-elbo`` ``TraceMeanField_ELBO``: the same bound with analytic KL(q ‖ p) where one is registered
``enum-elbo``      ``TraceEnum_ELBO``: discrete sites marked for enumeration are summed out exactly
``iwae``           ``RenyiELBO(alpha=0)``: the importance-weighted bound of Burda et al. (2016), K particles
``renyi``          ``RenyiELBO(alpha)``: the Rényi-α bound of Li & Turner (2016)
``beta-vae-h``     β-VAE (Higgins et al., 2017): E_q[log p(x | z)] − β KL(q(z | x) ‖ p(z)); β scales every
                   latent site in model *and* guide (a site-restricted ``poutine.scale``)
=================  ==========================================================================================
"""

from pyro_vaes.objectives import beta_vae, elbo  # noqa: F401  (registers the objectives)
from pyro_vaes.objectives import chyvae, factor_vae  # noqa: F401  (CHyVAE, FactorVAE; issue 5)
from pyro_vaes.objectives import ugvae  # noqa: F401  (UG-VAE closed-form loss; issue 4)
from pyro_vaes.objectives.base import Objective, ScaleLatents, scale_latents

__all__ = ["Objective", "ScaleLatents", "scale_latents"]
