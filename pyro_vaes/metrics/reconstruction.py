"""Reconstructions through the model/guide contract: decode the posterior means of every latent site.

* :func:`reconstruct` — E[x | latents = E_q[latents | x, y]] (``model.decode`` of ``guide.encode``'s means);
* :func:`reconstruction_log_likelihood` — log p(x_i | latents = E_q[latents | x_i]) per datum, read off the
  model's own ``x`` site with every latent conditioned on its posterior mean (``poutine.condition``), so it is
  the model's likelihood whatever it is (for a Bernoulli likelihood: minus the binary cross-entropy summed over
  pixels, the "reconstruction error" of the β-VAE and CHyVAE papers);
* :func:`reconstruction_error` — both over a split, per datum: ``nll`` (−log p(x | E_q latents)) and
  ``squared_error`` (‖x − reconstruction‖² summed over an observation).
"""

from __future__ import annotations

import pyro.poutine as poutine
import torch

from pyro_vaes.guides.base import posterior_means
from pyro_vaes.plumbing.isolation import eval_mode


@torch.no_grad()
def reconstruct(model, guide, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """E[x | posterior means of the latents], shaped like ``x``."""
    return model.decode(posterior_means(guide.encode(x, y)), y)


@torch.no_grad()
def reconstruction_log_likelihood(model, guide, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x_i | latents = E_q[latents | x_i]) per datum, shape (B,), from the model's observation site."""
    means = posterior_means(guide.encode(x, y))
    trace = poutine.trace(poutine.condition(model.model, data=means)).get_trace(x, y)
    site = trace.nodes["x"]
    return site["fn"].log_prob(site["value"]).reshape(x.shape[0])


@torch.no_grad()
def reconstruction_error(model, guide, split, n: int | None = None, batch_size: int = 250) -> dict[str, float]:
    """Mean over the first ``n`` examples of ``split`` of −log p(x | E_q latents) (``nll``) and of the squared
    error of the reconstruction summed over an observation (``squared_error``); modules in eval mode."""
    n = len(split) if n is None else min(n, len(split))
    device = model.device
    nll = sq = 0.0
    with eval_mode(model, guide):
        for start in range(0, n, batch_size):
            x, y = split.batch(torch.arange(start, min(n, start + batch_size)))
            x, y = x.to(device), None if y is None else y.to(device)
            nll -= float(reconstruction_log_likelihood(model, guide, x, y).sum())
            sq += float(((reconstruct(model, guide, x, y) - x) ** 2).reshape(len(x), -1).sum())
    return {"nll": nll / max(n, 1), "squared_error": sq / max(n, 1), "n": n}
