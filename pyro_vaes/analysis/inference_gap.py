"""Where the gap to log p(x) comes from: the family or the amortization (Cremer, Li & Duvenaud, 2018).

For a datum x, a model p and an amortized guide q_φ(· | x) from a family Q,

    log p(x) − L[q_φ] = (log p(x) − L[q*])  +  (L[q*] − L[q_φ])
                        approximation gap       amortization gap

where L is the ELBO and q* = argmax_{q ∈ Q} L[q] is the best member of the family for that datum (Cremer et al.,
2018, eqs. 4–6). q* is found as the paper does, by optimising the family's **local** parameters directly, one set
per datum (per batch for latents shared by a batch), starting from the encoder's output, with the model and every
network held fixed: stochastic gradient ascent on the reparameterised ELBO (:func:`refine`).

What "the family's local parameters" are is read off the guide itself, through the contract: the guide is traced
twice with different random streams, and every latent site whose distribution parameters come out identical in
both depends on x (and y) alone — those parameters (``loc`` and ``scale``, ``loc`` and ``scale_tril``,
``logits``, a Dirichlet's ``concentration``, an inverse-Wishart's ``df`` and ``scale_matrix``, ...) are the local
parameters. A site whose parameters change between the two traces is conditioned on another sampled latent
(UG-VAE's q(d | z) and q(β | X, π(z)), CHyVAE's q(Σ | z)); its conditional network is part of the family and is
held fixed, so for a structured guide the amortization gap measured is that of the root sites' parameters, with
the conditionals as the guide defines them. The refinement replaces parameters inside the guide's own sample
statements (a Pyro messenger), so it works for any guide, vectorized over a batch; Adam's updates are elementwise,
so optimising the batch's summed ELBO optimises every datum's parameters independently.

Every quantity is a Monte-Carlo estimate and comes with its standard error: L from the same vectorized pass the
evaluation uses (guide-enumerated discrete sites summed exactly, see :mod:`pyro_vaes.analysis.evaluation`), log p(x) by
importance sampling with the refined guide as the proposal (closer to the posterior than the amortized one, so
the tighter estimate; the amortized proposal's is reported beside it — taking the larger of the two per datum
would bias the estimate upwards by selecting on noise). Since the
refinement stops after finitely many steps, L[q*] is itself a lower bound: the approximation gap is
over-estimated and the amortization gap under-estimated by whatever the optimiser left; the ELBO's trajectory over
the refinement steps is returned so convergence can be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from torch.distributions import Distribution, Independent, biject_to, constraints, transform_to

from pyro_vaes.analysis.evaluation import (
    _reliability_entries,
    effective_sample_size,
    latent_sites,
    log_mean_exp_se,
    particle_chunks,
    site_log_probs,
)
from pyro_vaes.analysis.psis import pareto_khat
from pyro_vaes.plumbing.isolation import eval_mode, isolated_rng

Params = dict[str, dict[str, torch.Tensor]]

#: the parameters that define each family (the first of a distribution's equivalent parametrisations)
_PARAM_NAMES = {
    "MultivariateNormal": ("loc", "scale_tril"),
    "Categorical": ("logits",),
    "OneHotCategorical": ("logits",),
    "Bernoulli": ("logits",),
    "InverseWishart": ("df", "scale_matrix"),
}


def _unwrap(fn: Distribution):
    """(base distribution, number of reinterpreted batch dims) of ``fn``, or (None, 0) for a wrapper we cannot
    rebuild (masked, transformed, ...)."""
    ndims = 0
    while isinstance(fn, Independent):
        ndims += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    if type(fn).__name__ not in _PARAM_NAMES and not hasattr(fn, "arg_constraints"):
        return None, 0
    if type(fn).__name__ in ("MaskedDistribution", "ExpandedDistribution", "TransformedDistribution", "Delta"):
        return None, 0
    return fn, ndims


def family_parameters(fn: Distribution) -> dict[str, torch.Tensor] | None:
    """The tensors that define the distribution ``fn`` within its family, or None when it cannot be rebuilt."""
    base, _ = _unwrap(fn)
    if base is None:
        return None
    names = _PARAM_NAMES.get(type(base).__name__, tuple(base.arg_constraints))
    try:
        params = {name: getattr(base, name) for name in names}
    except AttributeError:
        return None
    if not all(isinstance(v, torch.Tensor) for v in params.values()):
        return None
    return params


def rebuild(fn: Distribution, params: dict[str, torch.Tensor]) -> Distribution:
    """``fn``'s family with ``params`` (the same wrappers, the same reinterpreted dims)."""
    base, ndims = _unwrap(fn)
    new = type(base)(**params, validate_args=False)
    return new.to_event(ndims) if ndims else new


def _bijection(base: Distribution, name: str, value: torch.Tensor):
    """(to_unconstrained, from_unconstrained) for one parameter of ``base``."""
    if type(base).__name__ == "InverseWishart" and name == "df":
        t = biject_to(constraints.greater_than(float(value.new_tensor(base.scale_matrix.shape[-1] - 1))))
        return t.inv, t
    constraint = base.arg_constraints[name]
    if constraint is constraints.positive_definite:
        chol = transform_to(constraints.lower_cholesky)
        return (lambda m: chol.inv(torch.linalg.cholesky(m))), (
            lambda u: (lambda tril: tril @ tril.transpose(-1, -2))(chol(u))
        )
    t = transform_to(constraint)  # a bijection for every constraint a family parameter has (lower_cholesky included)
    return t.inv, t


class LocalParameters(Messenger):
    """Inside this handler the guide's sample sites named in ``params`` draw from their family with the given
    parameters instead of the ones the guide computed (the guide's other sites, and any site that depends on these
    through its sampled value, are unchanged)."""

    def __init__(self, params: Params):
        super().__init__()
        self.params = params

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] in self.params and not msg["is_observed"]:
            msg["fn"] = rebuild(msg["fn"], self.params[msg["name"]])


class RefinedGuide:
    """A guide with some sites' local parameters replaced (:func:`refine`): ``guide(x, y)`` for the batch it was
    refined on; usable wherever a guide's Pyro ``guide`` method is (evaluation, Pyro's ELBOs, ``Predictive``)."""

    def __init__(self, guide, params: Params):
        self.base = guide
        self.params = params
        self.enumerated_sites = guide.enumerated_sites

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None):
        with LocalParameters(self.params):
            return self.base.guide(x, y)


@torch.no_grad()
def local_parameters(guide, x: torch.Tensor, y: torch.Tensor | None = None) -> Params:
    """The guide's local parameters for a batch: ``{site: {name: tensor}}`` for every latent site whose parameters
    depend on (x, y) alone — identical in two traces of the guide with different random streams — and whose family
    can be rebuilt (see the module docstring)."""
    traces = []
    for seed in (0, 1):
        with isolated_rng(seed):
            traces.append(poutine.trace(guide.guide).get_trace(x, y))
    out: Params = {}
    for name, site in latent_sites(traces[0]).items():
        first, second = family_parameters(site["fn"]), family_parameters(traces[1].nodes[name]["fn"])
        if first is None or second is None:
            continue
        if all(first[k].shape == second[k].shape and torch.equal(first[k], second[k]) for k in first):
            out[name] = {k: v.detach().clone() for k, v in first.items()}
    return out


@dataclass
class Refinement:
    """The result of :func:`refine`: the refined guide, its parameters, and the batch-mean ELBO (per datum) at each
    step (``history[0]`` is the amortized guide's)."""

    guide: RefinedGuide
    params: Params
    history: list[float] = field(default_factory=list)

    @property
    def last_change(self) -> float:
        """Mean ELBO over the last 10 % of steps minus the mean over the 10 % before them (nats per datum): near 0
        when the refinement has converged."""
        h = self.history[1:]
        k = max(1, len(h) // 10)
        if len(h) < 2 * k:
            return float("nan")
        return sum(h[-k:]) / k - sum(h[-2 * k : -k]) / k


def refine(
    model,
    guide,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    steps: int = 100,
    num_particles: int = 10,
    lr: float = 0.1,
    sites: list[str] | None = None,
) -> Refinement:
    """Local (non-amortized) variational inference for a batch: start from the guide's local parameters
    (:func:`local_parameters`, optionally only ``sites``) and take ``steps`` Adam steps on them alone — model and
    guide networks fixed — maximising the reparameterised ELBO with ``num_particles`` draws per step. The learning
    rate decays from ``lr`` (default 0.1) to ``lr/20`` on a cosine schedule, so the Monte-Carlo noise of the last steps is small.
    Parameters are optimised unconstrained (positive scales through exp, Cholesky factors through
    ``transform_to(lower_cholesky)``). Guide-enumerated discrete sites keep their exact expectation."""
    if steps < 0 or num_particles < 1:
        raise ValueError(f"refinement needs steps >= 0 and num_particles >= 1, got {steps} and {num_particles}")
    with eval_mode(model, guide):
        return _refine(model, guide, x, y, steps, num_particles, lr, sites)


def _refine(model, guide, x, y, steps, num_particles, lr, sites) -> Refinement:
    init = local_parameters(guide, x, y)
    if sites is not None:
        unknown = sorted(set(sites) - set(init))
        if unknown:
            raise ValueError(f"sites {unknown} have no local parameters in this guide; refinable: {sorted(init)}")
        init = {k: v for k, v in init.items() if k in sites}
    with isolated_rng(0):
        trace = poutine.trace(guide.guide).get_trace(x, y)
    maps, leaves = {}, []
    for site, params in init.items():
        base, _ = _unwrap(trace.nodes[site]["fn"])
        for name, value in params.items():
            to_u, from_u = _bijection(base, name, value)
            leaf = to_u(value).detach().clone().requires_grad_(True)
            maps[(site, name)] = (leaf, from_u)
            leaves.append(leaf)

    def current() -> Params:
        out: Params = {}
        for (site, name), (leaf, from_u) in maps.items():
            out.setdefault(site, {})[name] = from_u(leaf)
        return out

    history: list[float] = []
    opt = torch.optim.Adam(leaves, lr=lr) if leaves else None
    with pyro.validation_enabled(False):
        for k in range(steps + 1):
            params = current()
            lp = site_log_probs(model, RefinedGuide(guide, params), x, y, num_particles)
            elbo = lp.elbo.mean(0)  # (B,)
            history.append(float(elbo.detach().mean()))
            if k == steps or opt is None:
                break
            for group in opt.param_groups:
                group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * k / max(1, steps))))
            grads = torch.autograd.grad(-elbo.sum(), leaves, allow_unused=True)
            for leaf, g in zip(leaves, grads):
                leaf.grad = None if g is None else g.detach()
            opt.step()
    final = {s: {n: v.detach() for n, v in p.items()} for s, p in current().items()}
    return Refinement(RefinedGuide(guide, final), final, history)


@dataclass
class _Bounds:
    """Per-datum estimates, each (B,): ELBO and log p(x) with standard errors, the weights' ESS and Pareto k̂."""

    elbo: torch.Tensor
    elbo_se: torch.Tensor
    log_likelihood: torch.Tensor
    log_likelihood_se: torch.Tensor
    ess: torch.Tensor
    pareto_k: torch.Tensor


@torch.no_grad()
def bounds(
    model, guide, x: torch.Tensor, y: torch.Tensor | None = None, num_particles: int = 1000, chunk: int = 100
) -> _Bounds:
    """ELBO (mean of the per-particle bound) and importance-sampled log p(x) per datum, with Monte-Carlo standard
    errors, for an i.i.d. batch or a batch of one (models with batch-level latents)."""
    B = x.shape[0]
    elbos, log_ws = [], []
    for lp in particle_chunks(model, guide, x, y, num_particles, chunk):  # the guide runs once per block
        elbos.append(lp.elbo)
        log_ws.append(lp.log_w)
    elbo, log_w = torch.cat(elbos), torch.cat(log_ws)  # (S, B)
    if len(model.global_sites) > 0:  # the batch's joint weight (B = 1 for per-datum numbers)
        elbo, log_w = elbo.sum(-1, keepdim=True), log_w.sum(-1, keepdim=True)
    S = log_w.shape[0]
    (ll, ll_se), ess, k = log_mean_exp_se(log_w, 0), effective_sample_size(log_w, 0), pareto_khat(log_w, 0)
    out = _Bounds(elbo.mean(0), elbo.std(0) / math.sqrt(S), ll, ll_se, ess, k)
    if len(model.global_sites) > 0:  # per datum: the bounds divided by B, the diagnostics repeated
        out = _Bounds(*(t.expand(B) / (B if i < 4 else 1) for i, t in enumerate(vars(out).values())))
    return out


def gaps(
    model,
    guide,
    split,
    max_examples: int = 100,
    batch_size: int = 100,
    refine_steps: int = 100,
    refine_particles: int = 10,
    lr: float = 0.1,
    num_particles: int = 1000,
    progress: bool = False,
) -> dict[str, object]:
    """The inference-gap decomposition over the first ``max_examples`` examples of a held-out split (Cremer et al.,
    2018, eqs. 4–6), in nats per datum, each with its Monte-Carlo standard error:

    ``log_likelihood`` (importance-sampled with the refined guide as proposal; ``log_likelihood_amortized`` with the
    amortized one), ``elbo_amortized`` L[q_φ], ``elbo_refined`` L[q*] (after ``refine_steps`` steps of :func:`refine`),
    ``approximation_gap`` = log p(x) − L[q*], ``amortization_gap`` = L[q*] − L[q_φ], ``inference_gap`` (their sum),
    ``refine_history`` (the mean ELBO at each refinement step) and ``refine_last_change`` (its change over the last
    10 % of steps), ``refined_sites`` and ``log_likelihood_reliable`` (the refined estimate's median ESS and
    Pareto k̂ pass :func:`~pyro_vaes.analysis.evaluation.reliability`). Models with batch-level latents are refined and evaluated in batches of one (per-datum numbers,
    comparable with i.i.d. models)."""
    from pyro_vaes.analysis.evaluation import _progress

    if guide is None:
        raise ValueError("the model has no guide: there is no variational family to decompose")
    n = min(len(split), max_examples)
    if n < 1:
        raise ValueError(f"nothing to evaluate: the split has {len(split)} examples and max_examples is {max_examples}")
    per_batch = 1 if len(model.global_sites) > 0 else batch_size
    device = model.device
    acc: dict[str, list[torch.Tensor]] = {
        k: []
        for k in ("ll", "ll_se", "ess", "pareto_k", "ll_amortized", "ll_amortized_se", "ea", "ea_se", "er", "er_se")
    }
    histories, changes, sites = [], [], set()
    bar = _progress(n, f"inference gaps ({refine_steps} refinement steps)", progress)
    with eval_mode(model, guide):
        for start in range(0, n, per_batch):
            x, y = split.batch(torch.arange(start, min(n, start + per_batch)))
            x, y = x.to(device), None if y is None else y.to(device)
            with isolated_rng(start):
                amortized = bounds(model, guide, x, y, num_particles)
                ref = refine(model, guide, x, y, refine_steps, refine_particles, lr)
                refined = bounds(model, ref.guide, x, y, num_particles)
            sites |= set(ref.params)
            acc["ll"].append(refined.log_likelihood)
            acc["ll_se"].append(refined.log_likelihood_se)
            acc["ess"].append(refined.ess)
            acc["pareto_k"].append(refined.pareto_k)
            acc["ll_amortized"].append(amortized.log_likelihood)
            acc["ll_amortized_se"].append(amortized.log_likelihood_se)
            acc["ea"].append(amortized.elbo)
            acc["ea_se"].append(amortized.elbo_se)
            acc["er"].append(refined.elbo)
            acc["er_se"].append(refined.elbo_se)
            histories.append(torch.tensor(ref.history) * x.shape[0])
            changes.append(ref.last_change * x.shape[0])
            bar.update(x.shape[0])
    bar.close()
    t = {k: torch.cat(v) for k, v in acc.items()}

    def mean_se(*ses: torch.Tensor) -> float:
        return float(sum(s**2 for s in ses).sum().sqrt()) / n

    ll, ea, er = float(t["ll"].mean()), float(t["ea"].mean()), float(t["er"].mean())
    reliable = _reliability_entries("log_likelihood", t["ess"].tolist(), t["pareto_k"].tolist(), num_particles)
    return {
        "n": n,
        "num_particles": num_particles,
        "refine_steps": refine_steps,
        "refine_particles": refine_particles,
        "refine_lr": lr,
        "refined_sites": sorted(sites),
        "log_likelihood": ll,
        "log_likelihood_se": mean_se(t["ll_se"]),
        **reliable,
        "log_likelihood_amortized": float(t["ll_amortized"].mean()),
        "log_likelihood_amortized_se": mean_se(t["ll_amortized_se"]),
        "elbo_amortized": ea,
        "elbo_amortized_se": mean_se(t["ea_se"]),
        "elbo_refined": er,
        "elbo_refined_se": mean_se(t["er_se"]),
        "approximation_gap": ll - er,
        "approximation_gap_se": mean_se(t["ll_se"], t["er_se"]),
        "amortization_gap": er - ea,
        "amortization_gap_se": mean_se(t["er_se"], t["ea_se"]),
        "inference_gap": ll - ea,
        "inference_gap_se": mean_se(t["ll_se"], t["ea_se"]),
        "refine_history": (sum(histories) / n).tolist(),
        "refine_last_change": sum(changes) / n,
    }
