"""Evaluation that works for any model/guide pair through their Pyro traces.

One vectorized pass draws S particles from the guide for a batch (a ``particles`` plate left of the model's
plates; the encoder sees the batch once for all of them), the model is replayed on them a chunk at a time
(:func:`particle_chunks`), and every site's log-density is read off the traces. Discrete sites the **model** sums out by
enumeration and the guide does not sample (UG-VAE's d with the ``ugvae-marginal`` guide) are summed out exactly
inside the weight, as ``TraceEnum_ELBO`` does in training: the model is replayed under ``poutine.enum``, and every
per-datum configuration of its enumerated sites is summed in log space (log Σ_k p(d=k) p(z | k, β)). Discrete sites
the guide samples are importance-sampled with the rest. From the log-weights
log w_s = log p(x, latents_s) − log q(latents_s | x) it gets

* the importance-sampled log-likelihood log p(x) ≈ logsumexp_s log w_s − log S (Burda et al., 2016, eq. 8), with
  its Monte-Carlo standard error by the delta method, se ≈ sqrt(S Σ w² / (Σ w)² − 1) / sqrt(S), and the weights'
  effective sample size (Σ w)² / Σ w²: below ``MIN_ESS`` (a fifth of S when S < 50) the estimate is flagged
  unreliable (one weight dominates, the estimate is a loose lower bound that rises with S, and the standard error
  is meaningless); and the weights' Pareto k̂ (:mod:`pyro_vaes.analysis.psis`, PSIS's diagnostic): above
  min(1 − 1/log₁₀ S, 0.7) the weights are heavy-tailed and the estimate is flagged unreliable too — the ESS can
  look healthy while the standard error understates the error (:func:`reliability`);
* the ELBO E_q[log w] (the bound the model was trained on), the reconstruction term E_q[log p(x | latents)],
* KL(q ‖ p) per latent site, E_q[log q − log p] (a site whose prior depends on an enumerated site gets the prior
  with that site summed out, e.g. UG-VAE's mixture p(z | β) = (1/K) Σ_k N(z; μ_k(β), σ_k(β))),
* KL per latent dimension against the model's **marginal** prior of that site (``model.marginal_prior``: N(0, 1),
  CHyVAE's Student-t, UG-VAE's mixture over d and prior draws of β; named in ``kl_per_dim_prior``), analytic where
  registered, otherwise averaged over the same particles, and the number of active units (Burda et al., 2016, §5.2).

**Batch-level latents.** For a model with latents shared by a batch (UG-VAE's β, ML-VAE's C) the weight is joint
over the batch, so a batch of B gives log p(X)/B — a different quantity from the per-datum log p(x) of an i.i.d.
model, which depends on B and on how the batch was built, and whose importance-sampling bias grows with B. Such
models therefore report ``log_likelihood``, ``elbo``, ``reconstruction`` and the KLs per datum from batches of
one (each item with its own batch-level latent: comparable with i.i.d. models), and the batch quantities under
their own names: ``log_likelihood_batch`` = log p(X)/B and ``elbo_batch`` = ELBO(X)/B with ``batch_size`` = B.

Every number is a mean per datum, in nats; every pass runs with the modules in eval mode.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

from pyro_vaes.analysis.psis import khat_threshold, pareto_khat
from pyro_vaes.distributions import normal_marginals
from pyro_vaes.metrics.reconstruction import reconstruct
from pyro_vaes.plumbing.isolation import eval_mode


def _in_data_plate(site: dict) -> bool:
    return any(f.name == "data" for f in site["cond_indep_stack"])


@dataclass
class SiteLogProbs:
    """Per-particle, per-datum quantities of one pass: tensors of shape (S, B).

    ``log_w`` is the importance log-weight log p(x, latents) − log q(latents) with every enumerated site summed out;
    ``elbo`` the bound's integrand (with a guide-enumerated site, its exact expectation under q), equal to
    ``obs`` − Σ ``kl``, where ``obs`` is log p(x | latents) and ``kl[site]`` is log q − log p of that site. A site
    outside the data plate is spread evenly over the batch (divided by B on every datum), so summing over the batch
    gives the joint quantities. ``values`` holds each sampled guide site's particle values.
    """

    log_w: torch.Tensor
    elbo: torch.Tensor
    obs: torch.Tensor
    kl: dict[str, torch.Tensor]
    values: dict[str, torch.Tensor]


def _has_enum_dims(lp: torch.Tensor) -> bool:
    return lp.dim() > 2 and any(s > 1 for s in lp.shape[:-2])


def _aligned(site: dict, S: int, B: int) -> torch.Tensor:
    """The site's unscaled log-density as (..., S, B), enumeration dims on the left; a batch-level site's spread
    evenly over the batch."""
    lp = site["fn"].log_prob(site["value"])
    lp = lp.reshape((1,) * max(0, 2 - lp.dim()) + tuple(lp.shape))
    lp = lp.expand(*lp.shape[:-2], S, lp.shape[-1])
    return lp.expand(*lp.shape[:-1], B) if _in_data_plate(site) else lp.expand(*lp.shape[:-1], B) / B


def latent_sites(trace) -> dict[str, dict]:
    """The trace's latent sample sites by name: sampled, not observed, not a plate's subsample site."""
    return {
        n: s
        for n, s in trace.nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)
    }


@dataclass
class GuideParticles:
    """``num_particles`` draws of the guide for one batch: its trace (a ``particles`` plate at ``dim``, left of the
    model's plates), each latent site's log q as (..., S, B) and the guide-enumerated sites."""

    trace: poutine.Trace
    q_lp: dict[str, torch.Tensor]
    enumerated: set[str]
    num_particles: int
    dim: int

    def narrow(self, start: int, size: int) -> GuideParticles:
        """Particles ``start`` … ``start + size − 1``: every value and log q cut along the particle dimension (the
        guide is not run again)."""
        if start == 0 and size == self.num_particles:
            return self
        trace = self.trace.copy()
        for name, site in self.trace.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            value = site["value"]
            axis = value.dim() - len(site["fn"].event_shape) + self.dim  # the particle dimension of the value
            if axis >= 0 and value.shape[axis] == self.num_particles:  # (an enumerated value has size 1 there)
                trace.nodes[name] = {**site, "value": value.narrow(axis, start, size)}
        q_lp = {n: lp.narrow(-2, start, size) for n, lp in self.q_lp.items()}
        return GuideParticles(trace, q_lp, self.enumerated, size, self.dim)


def guide_particles(model, guide, x: torch.Tensor, y: torch.Tensor | None, num_particles: int) -> GuideParticles:
    """Trace ``num_particles`` draws of the guide for a batch ``x`` in one pass (a ``particles`` plate), a discrete
    site that can be enumerated in the guide enumerated (see :func:`site_log_probs`)."""
    S, B = num_particles, x.shape[0]
    dim = -(model.max_plate_nesting + 1)
    with pyro.plate("particles", S, dim=dim):
        guide_trace = poutine.trace(poutine.enum(guide.guide, first_available_dim=dim - 1)).get_trace(x, y)
        q_lp = {n: _aligned(site, S, B) for n, site in latent_sites(guide_trace).items()}
        enumerated = {
            n for n, site in latent_sites(guide_trace).items() if site["infer"].get("_enumerate_dim") is not None
        }
        if any(_has_enum_dims(lp) for n, lp in q_lp.items() if n not in enumerated):  # not a leaf: sample it
            guide_trace = poutine.trace(guide.guide).get_trace(x, y)
            q_lp = {n: _aligned(site, S, B) for n, site in latent_sites(guide_trace).items()}
            enumerated = set()
    return GuideParticles(guide_trace, q_lp, enumerated, S, dim)


def replay_log_probs(model, particles: GuideParticles, x: torch.Tensor, y: torch.Tensor | None) -> SiteLogProbs:
    """Replay the model on the guide's particles and combine the log-densities into the weights and the bound's
    terms (see :func:`site_log_probs`)."""
    S, B, dim = particles.num_particles, x.shape[0], particles.dim
    guide_trace, q_lp, enumerated = particles.trace, particles.q_lp, particles.enumerated
    with pyro.plate("particles", S, dim=dim):
        replayed = poutine.replay(model.model, trace=guide_trace)
        model_trace = poutine.trace(poutine.enum(replayed, first_available_dim=dim - 1)).get_trace(x, y)
    values = {n: site["value"] for n, site in latent_sites(guide_trace).items() if n not in enumerated}
    p_lp = {
        n: _aligned(site, S, B)
        for n, site in model_trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
    }
    observed = [n for n in p_lp if model_trace.nodes[n]["is_observed"]]
    for n in [n for n, lp in p_lp.items() if n not in q_lp and n not in observed and not _has_enum_dims(lp)]:
        del p_lp[n]  # drawn from its prior by the replayed model: the prior is its proposal and cancels
    if enumerated and any(n not in q_lp and n not in observed for n in p_lp):
        raise NotImplementedError("evaluation cannot mix guide-enumerated sites with sites only the model enumerates")
    zero = x.new_zeros(S, B)

    def flat(t: torch.Tensor) -> torch.Tensor:  # (E..., S, B) -> (E, S, B), E the enumerated configurations
        return t.expand(*t.shape[:-2], S, B).reshape(-1, S, B)

    log_q_rest = sum((lp.reshape(S, B) for n, lp in q_lp.items() if n not in enumerated), zero)
    total_p = sum(p_lp.values(), zero)
    dims = torch.broadcast_shapes(*(lp.shape for lp in [*p_lp.values(), *q_lp.values()]))
    log_w = torch.logsumexp(flat(total_p.expand(dims)), 0) - log_q_rest
    if enumerated:  # weights q(d | ·) of the guide-enumerated configurations, for the exact expectation of the bound
        log_qd = sum(q_lp[n] for n in enumerated).expand(dims)
        weight = flat(log_qd).exp()
        expect = lambda t: (weight * flat(t.expand(dims))).sum(0)  # noqa: E731
        obs = sum((expect(p_lp[n]) for n in observed), zero)
        kl = {
            n: expect(q_lp[n] - p_lp[n]) if n in enumerated else q_lp[n].reshape(S, B) - expect(p_lp[n]) for n in q_lp
        }
    else:  # model-only enumerated sites: summed out of p; their mixture is charged to the guide's site they feed
        group = {n for n, lp in p_lp.items() if _has_enum_dims(lp)}
        summed = torch.logsumexp(flat(sum((p_lp[n] for n in group), zero).expand(dims)), 0) if group else zero
        owner = next((n for n in q_lp if n in group), None)
        obs = sum((p_lp[n].reshape(S, B) for n in observed if n not in group), zero)
        if group and owner is None:
            obs = obs + summed
        kl = {n: q_lp[n].reshape(S, B) - (summed if n == owner else p_lp[n].reshape(S, B)) for n in q_lp}
    elbo = obs - sum(kl.values(), zero)
    return SiteLogProbs(log_w, elbo, obs, kl, values)


def site_log_probs(model, guide, x: torch.Tensor, y: torch.Tensor | None, num_particles: int) -> SiteLogProbs:
    """Trace ``num_particles`` draws of the guide and the replayed model for a batch ``x``, every discrete site that
    can be enumerated summed out exactly (see the module docstring):

    * a discrete site the guide marks for enumeration and on which no other guide site depends (a leaf of the guide,
      as UG-VAE's and GMVAE's d) is enumerated in the guide: the ELBO takes its exact expectation under q(d | ·) and
      the importance weight sums it out of p, log w = log Σ_d p(x, d, ·) − log q(·) (Rao-Blackwellised);
    * a discrete site the model enumerates and the guide does not sample is enumerated in the model and summed out
      of both (UG-VAE's mixture prior with ``ugvae-marginal``);
    * any other discrete guide site is sampled with the rest.
    """
    return replay_log_probs(model, guide_particles(model, guide, x, y, num_particles), x, y)


#: at most this many decoded observations per pass (particles × batch), so a conv decoder's activations stay small
MAX_ROWS = 1000
#: at most this many guide draws per guide pass (particles × batch): a pass encodes the batch once for all of them
GUIDE_ROWS = 100_000


def particle_chunks(
    model,
    guide,
    x: torch.Tensor,
    y: torch.Tensor | None,
    num_particles: int,
    chunk: int,
) -> Iterator[SiteLogProbs]:
    """:func:`site_log_probs` of ``num_particles`` draws, ``chunk`` particles at a time. The guide runs once per
    block of up to ``GUIDE_ROWS`` draws (its encoder sees the batch once, not once per chunk); the model is replayed
    on each chunk of the block's particles. Pyro's validation checks run on the first guide pass and the first
    replay only."""
    B = x.shape[0]
    block = max(chunk, GUIDE_ROWS // B)
    checked = pyro.infer.util.is_validation_enabled()
    done = 0
    while done < num_particles:
        size = min(block, num_particles - done)
        with pyro.validation_enabled(checked and done == 0):
            particles = guide_particles(model, guide, x, y, size)
        for start in range(0, size, chunk):
            with pyro.validation_enabled(checked and done == 0 and start == 0):
                yield replay_log_probs(model, particles.narrow(start, min(chunk, size - start)), x, y)
        done += size


def log_mean_exp_se(log_w: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """log (1/S) Σ_s w_s along ``dim`` and its delta-method standard error sqrt((S Σw²/(Σw)² − 1) / S).

    The standard error is only as good as the sample variance of the weights: when one weight dominates
    (:func:`effective_sample_size` near 1) it stays near 1 nat whatever the true error, and the estimate is a loose
    lower bound that keeps rising with S."""
    S = log_w.shape[dim]
    lse = torch.logsumexp(log_w, dim)
    ratio = torch.exp(torch.logsumexp(2 * log_w, dim) - 2 * lse)  # Σw² / (Σw)²
    return lse - math.log(S), ((S * ratio - 1).clamp_min(0) / S).sqrt()


def effective_sample_size(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Kish's effective sample size (Σw)² / Σw² of importance weights along ``dim``: S for equal weights, 1 when
    one weight dominates."""
    return torch.exp(2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim))


#: below this effective sample size (median over evaluation units; with S particles, below min(MIN_ESS, S / 5)) an
#: importance-sampled log-likelihood is flagged unreliable: a loose lower bound whose delta-method standard error
#: means nothing
MIN_ESS = 10.0


def min_ess(num_particles: int) -> float:
    """The effective sample size below which S particles' estimate is unreliable: ``MIN_ESS``, or a fifth of S when
    S < 50 (ten particles can never reach an ESS of ten: an ESS of 8 of 10 is a healthy proposal)."""
    return min(MIN_ESS, num_particles / 5)


def reliability(ess: float, pareto_k: float | None, num_particles: int) -> tuple[bool, str]:
    """Whether an importance-sampled estimate can be trusted, and why not: its weights' median effective sample
    size must reach :func:`min_ess`, and their median Pareto k̂ (:mod:`pyro_vaes.analysis.psis`; None or NaN where
    S < 25 leaves too few tail weights to fit) must not exceed the PSIS threshold min(1 − 1/log₁₀ S, 0.7): above
    it the weights are heavy-tailed, so the estimate and its standard error both understate the truth even when
    the effective sample size looks healthy."""
    if ess < min_ess(num_particles):
        return False, f"median effective sample size {ess:.1f} of {num_particles}: one weight dominates"
    if pareto_k is not None and math.isfinite(pareto_k) and pareto_k > khat_threshold(num_particles):
        return False, (
            f"median Pareto k {pareto_k:.2f} > {khat_threshold(num_particles):.2f}: the importance weights are "
            "heavy-tailed"
        )
    return True, ""


@dataclass
class ParticleEstimates:
    """Estimates from one importance-sampling pass over a batch, each of shape (B,) unless noted."""

    log_likelihood: torch.Tensor  # per datum for i.i.d. models; the batch's log p(X)/B (repeated) with global latents
    log_likelihood_se: torch.Tensor
    ess: torch.Tensor  # effective sample size of the weights (per datum; the batch's, repeated, with global latents)
    pareto_k: torch.Tensor  # the weights' Pareto k̂ (analysis.psis; NaN below 25 particles), like ``ess``
    elbo: torch.Tensor  # mean_s log w_s
    reconstruction: torch.Tensor  # mean_s log p(x | latents_s)
    kl: dict[str, torch.Tensor]  # mean_s [log q − log p] per latent site
    values: dict[str, list[torch.Tensor]]  # particle values per guide site, chunk by chunk
    num_particles: int


@torch.no_grad()
def particle_estimates(
    model,
    guide,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    num_particles: int = 1000,
    chunk: int = 100,
    keep_values: bool = False,
) -> ParticleEstimates:
    """``num_particles`` draws from the guide for a batch, the model replayed on ``chunk`` of them at a time (and at
    most ``MAX_ROWS`` decoded observations per pass: memory is bounded; :func:`particle_chunks`), reduced to the
    importance-sampled log-likelihood (with its standard error), the ELBO, the reconstruction term and the KL per
    site. Pyro's validation checks run on the first chunk only. For a model with batch-level latents the weight is
    joint and the likelihood is the batch's log p(X)/B."""
    B = x.shape[0]
    chunk = max(1, min(chunk, MAX_ROWS // B))
    joint = len(model.global_sites) > 0
    weights: list[torch.Tensor] = []
    elbo, obs = x.new_zeros(B), x.new_zeros(B)
    kl: dict[str, torch.Tensor] = {}
    values: dict[str, list[torch.Tensor]] = {}
    for lp in particle_chunks(model, guide, x, y, num_particles, chunk):  # (s, B) each
        weights.append(lp.log_w.sum(-1, keepdim=True) if joint else lp.log_w)
        elbo += lp.elbo.sum(0)
        obs += lp.obs.sum(0)
        for name, v in lp.kl.items():
            kl[name] = kl.get(name, 0.0) + v.sum(0)
        if keep_values:
            for name, v in lp.values.items():
                values.setdefault(name, []).append(v)
    log_w = torch.cat(weights, 0)
    (ll, se), ess, k = log_mean_exp_se(log_w, 0), effective_sample_size(log_w, 0), pareto_khat(log_w, 0)
    if joint:
        ll, se, ess, k = ll.expand(B) / B, se.expand(B) / B, ess.expand(B), k.expand(B)
    return ParticleEstimates(
        ll,
        se,
        ess,
        k,
        elbo / num_particles,
        obs / num_particles,
        {k: v / num_particles for k, v in kl.items()},
        values,
        num_particles,
    )


def _median_k(values: list[float]) -> float | None:
    """The median of the finite k̂ (None where none could be estimated)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(torch.tensor(finite).median()) if finite else None


def _reliability_entries(prefix: str, ess: list[float], khat: list[float], num_particles: int) -> dict[str, object]:
    """``PREFIX_ess``, ``PREFIX_pareto_k`` (median, None below 25 particles), ``PREFIX_pareto_k_max``,
    ``PREFIX_reliable`` and, when it is not, ``PREFIX_unreliable_because``."""
    median_ess, k = float(torch.tensor(ess).median()), _median_k(khat)
    ok, why = reliability(median_ess, k, num_particles)
    finite = [v for v in khat if math.isfinite(v)]
    out: dict[str, object] = {
        f"{prefix}_ess": median_ess,
        f"{prefix}_pareto_k": k,
        f"{prefix}_pareto_k_max": max(finite) if finite else None,
        f"{prefix}_reliable": ok,
    }
    if not ok:
        out[f"{prefix}_unreliable_because"] = why
    return out


def log_likelihood_is(
    model, guide, x: torch.Tensor, y: torch.Tensor | None = None, num_particles: int = 1000, chunk: int = 100
) -> torch.Tensor:
    """Importance-sampled log p(x_i) per datum, shape (B,), with ``num_particles`` draws from the guide
    (Burda et al., 2016, eq. 8); see :func:`particle_estimates`."""
    return particle_estimates(model, guide, x, y, num_particles, chunk).log_likelihood


@torch.no_grad()
def kl_per_dimension(
    model,
    guide,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    num_particles: int = 100,
) -> dict[str, dict[str, object]]:
    """KL(q(z_d | x) ‖ p(z_d)) per dimension d of every latent site with a per-dimension marginal prior
    (``model.marginal_prior(site)``), averaged over the batch: analytic where registered, else the mean over
    ``num_particles`` draws of log q(z_d | x) − log p(z_d), with its standard error. A batch-level site's KL is
    divided by the batch size (per-datum units, as ``kl``). Returns ``{site: {"kl", "se", "prior"}}``."""
    B = x.shape[0]
    guide_trace = poutine.trace(
        pyro.plate("particles", num_particles, dim=-(model.max_plate_nesting + 1))(guide.guide)
    ).get_trace(x, y)
    out: dict[str, dict[str, object]] = {}
    for name, site in latent_sites(guide_trace).items():
        marginal = model.marginal_prior(name)
        q = normal_marginals(site["fn"])
        if marginal is None or q is None:
            continue
        p, description = marginal
        per_batch = 1.0 if _in_data_plate(site) else float(B)
        v = site["value"]  # (S, B, d) or (S, 1, d)
        try:
            kl = kl_divergence(q, p).reshape(-1, v.shape[-1])
            out[name] = {"kl": (kl.mean(0) / per_batch).tolist(), "se": [0.0] * v.shape[-1], "prior": description}
        except NotImplementedError:
            diff = (q.log_prob(v) - p.log_prob(v)).reshape(num_particles, -1, v.shape[-1])  # (S, B', d)
            per_item = diff.mean(0)  # (B', d): the KL of each item, estimated
            mean = per_item.mean(0) / per_batch
            se = diff.reshape(-1, v.shape[-1]).std(0) / math.sqrt(diff.shape[0] * diff.shape[1]) / per_batch
            out[name] = {"kl": mean.tolist(), "se": se.tolist(), "prior": description}
    return out


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="example", disable=not enabled, file=sys.stderr, mininterval=1.0)


@torch.no_grad()
def evaluate(
    model,
    guide,
    split,
    num_particles: int = 100,
    batch_size: int = 100,
    max_examples: int | None = 500,
    chunk: int = 100,
    progress: bool = False,
) -> dict[str, object]:
    """All evaluation numbers for the first ``max_examples`` examples of a held-out split (mean per datum, in nats),
    with the modules in eval mode (see the module docstring for what each key means).

    Returns ``log_likelihood`` and ``log_likelihood_se`` (the standard error of the mean over examples: the
    importance sampler's Monte-Carlo error), ``log_likelihood_ess`` (the median effective sample size of the weights
    over examples), ``log_likelihood_pareto_k`` (the median Pareto k̂ of the weights, None below 25 particles) with
    ``log_likelihood_pareto_k_max``, and ``log_likelihood_reliable`` (:func:`reliability`; when false,
    ``log_likelihood_unreliable_because`` says why: the estimate is then a loose lower bound and its standard error
    understates its error), ``elbo``, ``reconstruction`` (E_q[log p(x | latents)]), ``kl`` per
    latent site and ``kl_total``, ``kl_per_dim`` (with ``kl_per_dim_se`` and ``kl_per_dim_prior``), ``recon_mse``
    (squared error of the reconstruction from the posterior means, summed over an observation), ``active_units``
    (code dimensions whose posterior mean varies across examples with variance > 0.01), ``n`` and
    ``num_particles``; with batch-level latents also ``log_likelihood_batch``, ``log_likelihood_batch_se``,
    ``log_likelihood_batch_ess``, ``log_likelihood_batch_reliable``, ``elbo_batch`` and ``batch_size``. ``progress`` shows a bar with the time left.
    """
    device = model.device
    n = len(split) if max_examples is None else min(len(split), max_examples)
    if n < 1:
        raise ValueError(f"nothing to evaluate: the split has {len(split)} examples and max_examples is {max_examples}")
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    if guide is None:
        return {"n": n, "num_particles": 0, "note": "the model has no guide: no likelihood, ELBO or reconstruction"}
    joint = len(model.global_sites) > 0
    tot = {"log_likelihood": 0.0, "elbo": 0.0, "reconstruction": 0.0, "recon_mse": 0.0}
    ess: dict[str, list[float]] = {"per_datum": [], "batch": []}
    khat: dict[str, list[float]] = {"per_datum": [], "batch": []}
    var = {"log_likelihood": 0.0}
    batch_tot = {"log_likelihood_batch": 0.0, "log_likelihood_batch_var": 0.0, "elbo_batch": 0.0}
    kl_site: dict[str, float] = {}
    kl_dim: dict[str, dict[str, object]] = {}
    means: list[torch.Tensor] = []
    bar = _progress(n * (2 if joint else 1), f"evaluate ({num_particles} particles)", progress)

    def accumulate(est: ParticleEstimates, xb, yb, per_datum: bool) -> None:
        tot["log_likelihood"] += float(est.log_likelihood.sum()) if per_datum else 0.0
        var["log_likelihood"] += float((est.log_likelihood_se**2).sum()) if per_datum else 0.0
        ess["per_datum"] += est.ess.tolist()
        khat["per_datum"] += est.pareto_k.tolist()
        tot["elbo"] += float(est.elbo.sum())
        tot["reconstruction"] += float(est.reconstruction.sum())
        for name, kl in est.kl.items():
            kl_site[name] = kl_site.get(name, 0.0) + float(kl.sum())
        for name, rec in kl_per_dimension(model, guide, xb, yb, min(num_particles, 100)).items():
            acc = kl_dim.setdefault(name, {"kl": 0.0, "var": 0.0, "prior": rec["prior"]})
            acc["kl"] = acc["kl"] + torch.tensor(rec["kl"]) * len(xb)
            acc["var"] = acc["var"] + (torch.tensor(rec["se"]) * len(xb)) ** 2

    with eval_mode(model, guide):
        for start in range(0, n, batch_size):
            x, y = split.batch(torch.arange(start, min(n, start + batch_size)))
            x = x.to(device)
            y = None if y is None else y.to(device)
            b = x.shape[0]
            est = particle_estimates(model, guide, x, y, num_particles, chunk)
            if joint:  # the batch quantities under their own names; per-datum ones from batches of one below
                batch_tot["log_likelihood_batch"] += float(est.log_likelihood.sum())
                batch_tot["log_likelihood_batch_var"] += float(est.log_likelihood_se[0] * b) ** 2  # log p(X)'s own
                ess["batch"].append(float(est.ess[0]))
                khat["batch"].append(float(est.pareto_k[0]))
                batch_tot["elbo_batch"] += float(est.elbo.sum())
            else:
                accumulate(est, x, y, per_datum=True)
            means.append(guide.encode(x, y)[model.code_site]["loc"].reshape(b, -1).cpu())
            tot["recon_mse"] += float(((reconstruct(model, guide, x, y) - x) ** 2).reshape(b, -1).sum())
            bar.update(b)
        if joint:
            for i in range(n):  # batches of one: each item with its own batch-level latent
                x, y = split.batch(torch.arange(i, i + 1))
                x, y = x.to(device), None if y is None else y.to(device)
                est = particle_estimates(model, guide, x, y, num_particles, chunk)
                accumulate(est, x, y, per_datum=True)
                bar.update(1)
    bar.close()
    result: dict[str, object] = {k: v / n for k, v in tot.items()}
    result["log_likelihood_se"] = math.sqrt(var["log_likelihood"]) / n
    result.update(_reliability_entries("log_likelihood", ess["per_datum"], khat["per_datum"], num_particles))
    result["kl"] = {k: v / n for k, v in kl_site.items()}
    result["kl_total"] = sum(result["kl"].values())  # type: ignore[arg-type]
    result["kl_per_dim"] = {k: (v["kl"] / n).tolist() for k, v in kl_dim.items()}
    result["kl_per_dim_se"] = {k: (v["var"].sqrt() / n).tolist() for k, v in kl_dim.items()}
    result["kl_per_dim_prior"] = {k: v["prior"] for k, v in kl_dim.items()}
    if joint:
        result["log_likelihood_batch"] = batch_tot["log_likelihood_batch"] / n
        result["log_likelihood_batch_se"] = math.sqrt(batch_tot["log_likelihood_batch_var"]) / n
        result.update(_reliability_entries("log_likelihood_batch", ess["batch"], khat["batch"], num_particles))
        result["elbo_batch"] = batch_tot["elbo_batch"] / n
        result["batch_size"] = batch_size
        result["per_datum_from"] = "batches of one (each item with its own batch-level latent)"
    if means:
        m = torch.cat(means)
        result["active_units"] = int((m.var(0) > 0.01).sum())
    result["n"] = n
    result["num_particles"] = num_particles
    return result
