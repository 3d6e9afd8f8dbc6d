"""Models' default training steps written by hand in plain PyTorch: the floor a Pyro step is measured against
(``benchmarks/suite.py``) and an independent computation of its loss (``tests/test_benchmarks.py``).

**Optional per model.** A hand loss is registered here with ``@register("model")``; the suite times the engine step
of every registered model and compares it with a hand loss only where one is registered (its table says "no
hand-written floor" otherwise), and the test checks every registered hand loss against the engine's loss. Adding a
model to the zoo needs no edit here; writing its hand loss adds a floor to its row.

Each hand loss runs the **same networks** as the model's default guide and objective and computes the **same
estimator**: the same reparameterised draws in the same order, discrete latents summed out where the Pyro objective
enumerates them, analytic KLs where it uses them. What it leaves out is everything Pyro adds: effect handlers,
traces, distribution objects, plates. Log densities are written as formulas (no ``torch.distributions`` objects,
no argument validation). It reaches the guide through the public contract (``encode(x, y)``) where that gives
exactly the parameters the guide samples from; where it does not (a site conditioned on another sampled latent:
GM-VAE's and UG-VAE's ``d``, UG-VAE's ``beta``; CHyVAE, whose ``encode`` also builds q(Σ | μ)) it calls the guide's
own public helpers (``local``, ``d_logits``, ``beta_params``; ``encoder`` and ``encode_z``). The model side reads
the likelihood's parameters (``decoder``, ``params``, ``generator``), not the contract's ``decode`` (which gives
E[x | latents], not the logits the likelihood is written on), and the priors' own helpers (``components``,
``prior_z``, ``subspace_prior``, ``psi``/``nu``).

Where the Pyro step draws randomness its loss never reads (N-VAE's guide draws π ~ Dir(α̂(x)), which the default
bound never reads), the hand loss does not draw it; N-VAE draws π after z, so the values still match draw for draw.
(CHyVAE's closed form traces its guide only up to Σ, so it draws no Σ.) ``same_draws`` says whether the values match
draw for draw; otherwise they match in expectation only.

``HAND[model]`` is a :class:`Hand`: ``fn(model, guide, aux, x, y)`` -> the loss of each optimizer in step order, as
the engine steps them (``main``: model and guide; an auxiliary network's own loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from pyro_vaes.objectives.chyvae import closed_form_regulariser

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def normal_lp(x: torch.Tensor, loc, scale) -> torch.Tensor:
    """log N(x; loc, scale²) elementwise."""
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
    return -0.5 * ((x - loc) / scale) ** 2 - scale.log() - HALF_LOG_2PI


def std_normal_lp(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * x**2 - HALF_LOG_2PI


def kl_std_normal(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, scale²) ‖ N(0, 1)) elementwise."""
    return 0.5 * (loc**2 + scale**2 - 1.0) - scale.log()


def kl_normal(loc_q, scale_q, loc_p, scale_p) -> torch.Tensor:
    """KL(N(loc_q, scale_q²) ‖ N(loc_p, scale_p²)) elementwise."""
    return (scale_p / scale_q).log() + (scale_q**2 + (loc_q - loc_p) ** 2) / (2 * scale_p**2) - 0.5


def obs_lp(likelihood: str, params: torch.Tensor, x: torch.Tensor, obs_scale: float) -> torch.Tensor:
    """Σ log p(x | params) over the whole batch (the likelihoods of ``pyro_vaes.distributions.likelihoods``)."""
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(params, x, reduction="sum")
    if likelihood == "continuous-bernoulli":
        lam = params.clamp(-15.0, 15.0)
        return torch.distributions.ContinuousBernoulli(logits=lam, validate_args=False).log_prob(x).sum()
    return normal_lp(x, params, obs_scale).sum()


def onehot(y: torch.Tensor, k: int, like: torch.Tensor) -> torch.Tensor:
    return F.one_hot(y.long(), k).to(like.dtype)


#: the suite's networks for a model's row unless its hand loss says otherwise: the project's MLP
MLP_ARGS: dict[str, Any] = {"arch": "mlp"}


@dataclass(frozen=True)
class Hand:
    """A model's hand-written step: ``fn(model, guide, aux, x, y)`` -> {optimizer name: loss tensor, or a callable
    giving it when its turn comes}, in the order the optimizers step; ``same_draws``: the Pyro step draws exactly
    these random numbers in this order (else only the expectations agree); ``model_args``: the model arguments of
    the suite's row (the networks the hand loss is timed on)."""

    fn: Callable
    same_draws: bool = True
    model_args: dict[str, Any] = field(default_factory=lambda: dict(MLP_ARGS))


#: model name -> its hand-written step; filled by :func:`register`. A model without one is timed without a floor.
HAND: dict[str, Hand] = {}


def register(
    model: str, *, same_draws: bool = True, model_args: dict[str, Any] | None = None
) -> Callable[[Callable], Callable]:
    """Decorator: ``fn`` is the hand-written step of ``model`` (see :class:`Hand`). Optional per model: the suite
    times every registered model's engine step and compares it with a hand loss only where one is registered here."""

    def add(fn: Callable) -> Callable:
        if model in HAND:
            raise ValueError(f"a hand-written step for {model!r} is already registered ({HAND[model].fn.__name__})")
        HAND[model] = Hand(fn, same_draws, dict(MLP_ARGS if model_args is None else model_args))
        return fn

    return add


# -- the models --------------------------------------------------------------------------------------------------
@register("vae")
def vae(m, g, aux, x, y):
    """Trace_ELBO with the diagonal guide: −[log p(x|z) + log N(z; 0, I) − log q(z|x)], one draw."""
    q = g.encode(x)["z"]
    loc, scale = q["loc"], q["scale"]
    z = loc + scale * torch.randn_like(loc)
    recon = obs_lp(m.likelihood, m.decoder(z), x, m.obs_scale)
    return {"main": -(recon + std_normal_lp(z).sum() - normal_lp(z, loc, scale).sum())}


@register("cvae")
def cvae(m, g, aux, x, y):
    """Trace_ELBO with q(z | x, y): the VAE's terms, decoder and encoder head fed onehot(y)."""
    q = g.encode(x, y)["z"]
    loc, scale = q["loc"], q["scale"]
    z = loc + scale * torch.randn_like(loc)
    recon = obs_lp(m.likelihood, m.decoder(torch.cat([z, onehot(y, m.num_classes, z)], -1)), x, m.obs_scale)
    return {"main": -(recon + std_normal_lp(z).sum() - normal_lp(z, loc, scale).sum())}


@register("condvae")
def condvae(m, g, aux, x, y):
    """Trace_ELBO with q(z | x, y) for binary labels."""
    q = g.encode(x, y)["z"]
    loc, scale = q["loc"], q["scale"]
    z = loc + scale * torch.randn_like(loc)
    recon = obs_lp(m.likelihood, m.decoder(torch.cat([z, y.to(z.dtype)], -1)), x, m.obs_scale)
    return {"main": -(recon + std_normal_lp(z).sum() - normal_lp(z, loc, scale).sum())}


@register("csvae")
def csvae(m, g, aux, x, y):
    """CSVAE: β1·(−log p(x|w,z)) + β2·KL(q(w|x,y) ‖ p(w|y)) + β3·KL(q(z|x) ‖ N(0,I)) + β4·Σ −H(q_δ(y|z)), δ
    frozen; the adversary's step: β5·Σ CE(q_δ(y | z), y) on the same (detached) codes."""
    obj = aux["objective"]
    q = g.encode(x, y)
    z_loc, z_scale, w_loc, w_scale = q["z"]["loc"], q["z"]["scale"], q["w"]["loc"], q["w"]["scale"]
    z = z_loc + z_scale * torch.randn_like(z_loc)
    w = w_loc + w_scale * torch.randn_like(w_loc)
    p_loc, p_scale = m.subspace_prior(y)
    recon = obs_lp(m.likelihood, m.decoder(torch.cat([w, z], -1)), x, m.obs_scale)
    kl = obj.beta2 * kl_normal(w_loc, w_scale, p_loc, p_scale).sum() + obj.beta3 * kl_std_normal(z_loc, z_scale).sum()
    adversary = aux["adversary"]
    for p in adversary.parameters():
        p.requires_grad_(False)
    logits = adversary(z)
    for p in adversary.parameters():
        p.requires_grad_(True)
    p_y = torch.sigmoid(logits)
    neg_entropy = (p_y * F.logsigmoid(logits) + (1 - p_y) * F.logsigmoid(-logits)).sum()
    codes = z.detach()

    def adversary_loss():
        return obj.beta5 * F.binary_cross_entropy_with_logits(adversary(codes), y.to(codes.dtype), reduction="sum")

    return {"main": -obj.beta1 * recon + kl + obj.beta4 * neg_entropy, "adversary": adversary_loss}


@register("chyvae")
def chyvae(m, g, aux, x, y):
    """The authors' closed form (−log p(x|z) − R(x), eq. 41 with B = 1): z ~ N(μ(x), S(x)), a second draw z̃ for
    q(Σ | z̃) = IW(Ψ + z̃z̃ᵀ, ν + 1), the same two draws as the Pyro objective (which draws no Σ either)."""
    q = g.encode_z(g.encoder(x))  # encode() would also build q(Σ | μ), which the step never reads
    loc, cov, L = q["loc"], q["covariance"], q["scale_tril"]
    z = loc + (L @ torch.randn_like(loc).unsqueeze(-1)).squeeze(-1)
    z_tilde = loc + (L @ torch.randn_like(loc).unsqueeze(-1)).squeeze(-1)
    recon = obs_lp(m.likelihood, m.decoder(z), x, m.obs_scale)
    reg = closed_form_regulariser(loc, cov, z_tilde, m.psi, m.nu)
    return {"main": -(recon + reg.sum())}


def _obs_ugvae(m, raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    params = torch.sigmoid(raw) if m.likelihood == "gaussian" else raw  # UGVAEBase.obs_params
    return obs_lp(m.likelihood, params, x, m.obs_scale)


@register("gmvae", model_args={})
def gmvae(m, g, aux, x, y):
    """TraceEnum_ELBO with d enumerated in the guide: z, w drawn; Σ_k q(k | z, w) [log p(k) + log p(z | k, w)
    − log q(k | z, w)] exactly."""
    (z_loc, z_scale), (w_loc, w_scale) = g.local(x)
    z = z_loc + z_scale * torch.randn_like(z_loc)
    w = w_loc + w_scale * torch.randn_like(w_loc)
    log_pi = g.d_logits(z, w)  # (B, K)
    loc_k, scale_k = m.components(w)  # (B, K, d)
    log_pz_k = normal_lp(z.unsqueeze(-2), loc_k, scale_k).sum(-1)
    enum = (log_pi.exp() * (log_pz_k - math.log(m.K) - log_pi)).sum()
    elbo = (
        _obs_ugvae(m, m.decoder(z), x)
        + std_normal_lp(w).sum()
        - normal_lp(z, z_loc, z_scale).sum()
        - normal_lp(w, w_loc, w_scale).sum()
        + enum
    )
    return {"main": -elbo}


@register("ugvae", model_args={})
def ugvae(m, g, aux, x, y):
    """TraceEnum_ELBO with the structured guide: z drawn, π(z), β ~ q(β | X, Z) drawn once for the batch, d summed
    out exactly under q(d | z)."""
    h, z_loc, z_scale = g.local(x)
    z = z_loc + z_scale * torch.randn_like(z_loc)
    log_pi = g.d_logits(h, z)
    b_loc, b_scale = g.beta_params(h, log_pi.exp())
    beta = b_loc + b_scale * torch.randn_like(b_loc)
    loc_k, scale_k = m.prior_z(beta.unsqueeze(0))  # (1, K, d)
    log_pz_k = normal_lp(z.unsqueeze(-2), loc_k, scale_k).sum(-1)  # (B, K)
    enum = (log_pi.exp() * (log_pz_k - math.log(m.K) - log_pi)).sum()
    raw = m.decoder(torch.cat([z, beta.expand(z.shape[0], -1)], -1))
    elbo = (
        _obs_ugvae(m, raw, x)
        + std_normal_lp(beta).sum()
        - normal_lp(beta, b_loc, b_scale).sum()
        - normal_lp(z, z_loc, z_scale).sum()
        + enum
    )
    return {"main": -elbo}


@register("mlvae", model_args={})
def mlvae(m, g, aux, x, y):
    """Trace_ELBO with q(C | X) the product of the items' Gaussians: C drawn once for the batch, then every s_i."""
    q = g.encode(x)
    s_loc, s_scale, c_loc, c_scale = q["s"]["loc"], q["s"]["scale"], q["c"]["loc"], q["c"]["scale"]
    c = c_loc + c_scale * torch.randn_like(c_loc)
    s = s_loc + s_scale * torch.randn_like(s_loc)
    raw = m.decoder(torch.cat([s, c.expand(s.shape[0], -1)], -1))
    elbo = (
        _obs_ugvae(m, raw, x)
        + std_normal_lp(c).sum()
        + std_normal_lp(s).sum()
        - normal_lp(c, c_loc, c_scale).sum()
        - normal_lp(s, s_loc, s_scale).sum()
    )
    return {"main": -elbo}


@register("nvae")
def nvae(m, g, aux, x, y):
    """N-VAE's bound (nll-bound, analytic KL): −log p(x | z, y) + KL(q(z|x) ‖ N(0, I)) − log q(y | x), q(y | x) =
    α̂_y / Σ_k α̂_k. (The Pyro guide also draws π ~ Dir(α̂), which this bound never reads.)"""
    q = g.encode(x)
    loc, scale, a_hat = q["z"]["loc"], q["z"]["scale"], q["pi"]["concentration"]
    z = loc + scale * torch.randn_like(loc)
    recon = obs_lp(m.likelihood, m.params(z, y), x, m.obs_scale)
    log_qy = a_hat.gather(-1, y.long().unsqueeze(-1)).squeeze(-1).log() - a_hat.sum(-1).log()
    return {"main": -recon + kl_std_normal(loc, scale).sum() - log_qy.sum()}


def _fake(m, y: torch.Tensor) -> torch.Tensor:
    z = torch.randn(len(y), m.latent_dim, device=y.device)
    out = m.generator(torch.cat([z, onehot(y, m.num_classes, z)], -1))
    return torch.sigmoid(out) if m.output == "sigmoid" else out


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction="sum")


def _frozen(net, *inputs):
    for p in net.parameters():
        p.requires_grad_(False)
    try:
        return net(*inputs)
    finally:
        for p in net.parameters():
            p.requires_grad_(True)


@register("cgan")
def cgan(m, g, aux, x, y):
    """Discriminator step −Σ[log D(x, y) + log(1 − D(G(z, y), y))], then the generator's −Σ log D(G(z, y), y)."""
    d = aux["discriminator"]

    def disc():
        with torch.no_grad():
            fake = _fake(m, y)
        return _bce(d(x, y), 1.0) + _bce(d(fake, y), 0.0)

    return {"discriminator": disc, "main": lambda: _bce(_frozen(d, _fake(m, y), y), 1.0)}


@register("acgan")
def acgan(m, g, aux, x, y):
    """AC-GAN: the discriminator's source and class losses on real and detached fakes, then the generator's."""
    d, w = aux["discriminator"], aux["objective"].class_weight

    def disc():
        with torch.no_grad():
            fake = _fake(m, y)
        real_s, real_c = d(x)
        fake_s, fake_c = d(fake)
        classes = F.cross_entropy(real_c, y, reduction="sum") + F.cross_entropy(fake_c, y, reduction="sum")
        return _bce(real_s, 1.0) + _bce(fake_s, 0.0) + w * classes

    def gen():
        source, classes = _frozen(d, _fake(m, y))
        return _bce(source, 1.0) + w * F.cross_entropy(classes, y, reduction="sum")

    return {"discriminator": disc, "main": gen}


def hand_step(
    name: str,
    model,
    guide,
    aux: dict,
    optimizers: dict[str, torch.optim.Optimizer],
    x: torch.Tensor,
    y: torch.Tensor | None,
) -> tuple[float, ...]:
    """One training step by hand: each optimizer in turn zeroes its gradients, takes its loss (``.item()`` read, as
    any training loop logs it), backward, step. Returns the losses."""
    losses = HAND[name].fn(model, guide, aux, x, y)
    out = []
    for opt_name, loss in losses.items():
        opt = optimizers[opt_name]
        opt.zero_grad(set_to_none=True)
        value = loss() if callable(loss) else loss
        out.append(value.detach().item())
        value.backward()
        opt.step()
    return tuple(out)
