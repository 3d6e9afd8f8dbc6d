"""Evaluation that works for any model/guide pair through their Pyro traces.

One vectorized pass draws S particles from the guide for a whole batch (a ``particles`` plate left of the
model's plates), replays the model on them, and reads every site's log-density. From the log-weights
log w_s = log p(x, z_s) − log q(z_s | x) it gets

* the importance-sampled log-likelihood log p(x) ≈ logsumexp_s log w_s − log S (Burda et al., 2016, eq. 8),
* the ELBO E_q[log w],
* the reconstruction term E_q[log p(x | z)],
* KL(q ‖ p) per latent site, as E_q[log q − log p] (exact in expectation for any pair),

Discrete latents are *sampled* here, never enumerated: from the guide where it has them (importance
sampling over (z, d)), otherwise by the replayed model from their prior (a valid proposal whose density
cancels from the weight), so models that sum d out by enumeration in training are evaluated too.

and, from the guide's :meth:`encode`, the analytic KL per latent dimension between the marginals of q and p
and the number of active units (Burda et al., 2016, §5.2). Latent sites outside the ``data`` plate (one per
batch) enter the batch's joint weight, and per-datum numbers are then the batch's divided by its size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from pyro_vaes.isolation import eval_mode
from pyro_vaes.metrics.reconstruction import reconstruct


@dataclass
class SiteLogProbs:
    """Per-particle, per-datum log-densities of one pass: tensors of shape (S, B)."""

    log_w: torch.Tensor
    obs: torch.Tensor
    latent_q: Dict[str, torch.Tensor]
    latent_p: Dict[str, torch.Tensor]


def _in_data_plate(site: dict) -> bool:
    return any(f.name == "data" for f in site["cond_indep_stack"])


def _per_datum(lp: torch.Tensor, site: dict, S: int, B: int) -> torch.Tensor:
    """Reduce a site's log_prob to (S, B); a site outside the data plate is spread evenly over the batch."""
    if _in_data_plate(site):
        return lp.reshape(S, B)
    return (lp.reshape(S, -1).sum(-1, keepdim=True) / B).expand(S, B)


def site_log_probs(model, guide, x: torch.Tensor, y: Optional[torch.Tensor], num_particles: int) -> SiteLogProbs:
    """Trace ``num_particles`` draws of the guide and the replayed model for a batch ``x``."""
    S, B = num_particles, x.shape[0]
    dim = -(model.max_plate_nesting + 1)
    with pyro.plate("particles", S, dim=dim):
        guide_trace = poutine.trace(guide.guide).get_trace(x, y)
        model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x, y)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    latent_q, latent_p = {}, {}
    obs = x.new_zeros(S, B)
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        lp = _per_datum(site["unscaled_log_prob"], site, S, B)
        if site["is_observed"]:
            obs = obs + lp
        else:
            latent_p[name] = lp
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site):
            latent_q[name] = _per_datum(site["unscaled_log_prob"], site, S, B)
    # a latent the guide does not sample (one the model sums out by enumeration) is drawn by the replayed
    # model from its prior: the prior is its proposal, so its log p cancels out of the weight
    from_prior = [name for name in latent_p if name not in latent_q]
    log_w = obs + sum(v for k, v in latent_p.items() if k not in from_prior) - sum(latent_q.values())
    return SiteLogProbs(log_w, obs, latent_q, latent_p)


def _has_global_sites(model) -> bool:
    return len(getattr(model, "global_sites", ())) > 0


@dataclass
class ParticleEstimates:
    """Per-datum estimates from one importance-sampling pass, each of shape (B,)."""

    log_likelihood: torch.Tensor  # logsumexp_s log w_s − log S
    elbo: torch.Tensor  # mean_s log w_s
    reconstruction: torch.Tensor  # mean_s log p(x | z_s)
    kl: Dict[str, torch.Tensor]  # mean_s [log q − log p] per latent site


@torch.no_grad()
def particle_estimates(
    model, guide, x: torch.Tensor, y: Optional[torch.Tensor] = None, num_particles: int = 1000, chunk: int = 100
) -> ParticleEstimates:
    """``num_particles`` draws from the guide for a batch, ``chunk`` at a time (memory is bounded), reduced to
    the importance-sampled log-likelihood, the ELBO, the reconstruction term and the KL per site.

    For a model with batch-level latents the likelihood is the estimate of log p(X) for the batch divided by
    its size.
    """
    B = x.shape[0]
    joint = _has_global_sites(model)
    weights: List[torch.Tensor] = []
    elbo, obs = x.new_zeros(B), x.new_zeros(B)
    kl: Dict[str, torch.Tensor] = {}
    done = 0
    while done < num_particles:
        s = min(chunk, num_particles - done)
        lp = site_log_probs(model, guide, x, y, s)  # (s, B) each
        weights.append(lp.log_w.sum(-1, keepdim=True) if joint else lp.log_w)
        elbo += lp.log_w.sum(0)
        obs += lp.obs.sum(0)
        for name in lp.latent_q:
            kl[name] = kl.get(name, 0.0) + (lp.latent_q[name] - lp.latent_p[name]).sum(0)
        done += s
    lw = torch.cat(weights, 0)
    ll = torch.logsumexp(lw, 0) - math.log(num_particles)
    return ParticleEstimates(
        ll.expand(B) / B if joint else ll,
        elbo / num_particles,
        obs / num_particles,
        {k: v / num_particles for k, v in kl.items()},
    )


def log_likelihood_is(
    model, guide, x: torch.Tensor, y: Optional[torch.Tensor] = None, num_particles: int = 1000, chunk: int = 100
) -> torch.Tensor:
    """Importance-sampled log p(x_i) per datum, shape (B,), with ``num_particles`` draws from the guide
    (Burda et al., 2016, eq. 8); see :func:`particle_estimates`."""
    return particle_estimates(model, guide, x, y, num_particles, chunk).log_likelihood


def _marginal_normal(d) -> Optional[Normal]:
    """Per-dimension Normal marginals of a (batched) Normal or MultivariateNormal, else None."""
    while isinstance(d, Independent):
        d = d.base_dist
    if isinstance(d, MultivariateNormal):
        return Normal(d.loc, d.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt())
    if isinstance(d, Normal):
        return d
    return None


@torch.no_grad()
def kl_per_dimension(model, guide, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """KL(q(z_d | x) ‖ p(z_d)) per latent dimension d, averaged over the batch, for Gaussian sites.

    Uses the marginals of q and p along each dimension (exact for factorized pairs; for a full-covariance
    q it is the KL of the marginals). Sites whose distributions are not Gaussian are left out.
    """
    guide_trace = poutine.trace(guide.guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x, y)
    out = {}
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site) or name not in model_trace.nodes:
            continue
        q, p = _marginal_normal(site["fn"]), _marginal_normal(model_trace.nodes[name]["fn"])
        if q is None or p is None:
            continue
        kl = kl_divergence(q, Normal(p.loc.expand_as(q.loc), p.scale.expand_as(q.scale)))
        out[name] = kl.reshape(-1, kl.shape[-1]).mean(0)
    return out


@torch.no_grad()
def evaluate(
    model,
    guide,
    split,
    num_particles: int = 1000,
    batch_size: int = 100,
    max_examples: Optional[int] = None,
    chunk: int = 100,
) -> Dict[str, object]:
    """All evaluation numbers for a held-out split (mean per datum, in nats), with the modules in eval mode.

    Returns ``log_likelihood`` (importance-sampled), ``elbo``, ``reconstruction`` (E_q[log p(x | z)]) and ``kl``
    per latent site, all from the same ``num_particles`` draws; ``recon_mse`` (squared error of the decoded
    posterior mean, summed over an observation), ``kl_per_dim`` per Gaussian site, ``active_units`` (dimensions
    whose posterior mean varies with Cov_x(E_q[z_d]) > 0.01), and ``n``.
    """
    device = next(model.parameters()).device
    n = len(split) if max_examples is None else min(len(split), max_examples)
    if guide is None:
        return {"n": n, "num_particles": 0, "note": "the model has no guide: no likelihood, ELBO or reconstruction"}
    tot = {"log_likelihood": 0.0, "elbo": 0.0, "reconstruction": 0.0, "recon_mse": 0.0}
    kl_site: Dict[str, float] = {}
    kl_dim: Dict[str, torch.Tensor] = {}
    means: List[torch.Tensor] = []
    with eval_mode(model, guide):
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(n, start + batch_size))
            x, y = split.batch(idx)
            x = x.to(device)
            y = None if y is None else y.to(device)
            b = x.shape[0]
            est = particle_estimates(model, guide, x, y, num_particles, chunk)
            tot["log_likelihood"] += float(est.log_likelihood.sum())
            tot["elbo"] += float(est.elbo.sum())
            tot["reconstruction"] += float(est.reconstruction.sum())
            for name, kl in est.kl.items():
                kl_site[name] = kl_site.get(name, 0.0) + float(kl.sum())
            for name, v in kl_per_dimension(model, guide, x, y).items():
                kl_dim[name] = kl_dim.get(name, 0.0) + v * b
            means.append(guide.encode(x, y)[model.code_site]["loc"].reshape(b, -1).cpu())
            tot["recon_mse"] += float(((reconstruct(model, guide, x, y) - x) ** 2).reshape(b, -1).sum())
    result: Dict[str, object] = {k: v / n for k, v in tot.items()}
    result["kl"] = {k: v / n for k, v in kl_site.items()}
    result["kl_total"] = sum(result["kl"].values())  # type: ignore[arg-type]
    result["kl_per_dim"] = {k: (v / n).tolist() for k, v in kl_dim.items()}
    if means:
        m = torch.cat(means)
        result["active_units"] = int((m.var(0) > 0.01).sum())
    result["n"] = n
    result["num_particles"] = num_particles
    return result
