"""The FactorVAE disentanglement metric (Kim & Mnih, 2018, §4; CHyVAE appendix A.2).

One *vote*: pick a factor k uniformly, draw L observations in which factor k holds one value and the
others vary, encode them (posterior means), divide each code dimension by its global standard deviation,
and record (d*, k) with d* = argmin_d Var(code_d / std_d). A majority-vote classifier maps each code
dimension d to the factor it most often wins for on the training votes (V[d, k] counts, class(d) =
argmax_k V[d, k]); the score is its accuracy on a separate set of evaluation votes.

Settings (``variant``):

* ``"chyvae"`` (default, the CHyVAE code's ``utils.compute_metric``): L = 200, 800 training
  and 800 evaluation votes, std of the posterior means over 5,000 training images, no pruning.
* ``"disentanglement_lib"``: L = 64, 10,000 / 5,000 votes, variance over 10,000 samples and dimensions with
  std < 0.05 pruned (collapsed to the prior) before the argmin (``prune_dims.threshold = 0.05``).

Expected score of codes independent of the factors: exactly 1/K on the evaluation votes (K factors),
since the winning dimension then carries no information about which factor was fixed.

:func:`factor_vae_metric_from_codes` is the pure part (vote batches of codes → score);
:func:`factor_vae_metric` draws the batches from a :class:`~pyro_vaes.data.FactorSource` and a
representation function; :func:`factor_vae_metric_for_run` does it for any fitted run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pyro_vaes.data.base import FactorSource
from pyro_vaes.plumbing.isolation import eval_mode

VARIANTS = {
    "chyvae": dict(batch_size=200, num_train=800, num_eval=800, num_variance_estimate=5000, prune_threshold=None),
    "disentanglement_lib": dict(
        batch_size=64, num_train=10000, num_eval=5000, num_variance_estimate=10000, prune_threshold=0.05
    ),
}


def vote(codes: torch.Tensor, global_std: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
    """argmin_d of the normalised variance Var(code_d / std_d) (ddof = 1) for each batch; codes (V, L, D) -> (V,).

    A dimension with zero global spread carries no information: its normalised variance is infinite (it never
    wins a vote; 0/0 would otherwise make it win every one). With ``active`` (a (D,) bool mask) the argmin runs
    over active dimensions only and returns their index in the full code.
    """
    safe_std = torch.where(global_std > 0, global_std, torch.ones_like(global_std))
    var = (codes / safe_std).var(dim=-2, unbiased=True).masked_fill(global_std <= 0, float("inf"))
    if active is not None:
        var = var.masked_fill(~active, float("inf"))
    return var.argmin(-1)


def factor_vae_metric_from_codes(
    train_codes: torch.Tensor,
    train_factors: torch.Tensor,
    eval_codes: torch.Tensor,
    eval_factors: torch.Tensor,
    global_std: torch.Tensor,
    num_factors: int,
    prune_threshold: float | None = None,
) -> dict[str, object]:
    """The metric from vote batches of codes: ``*_codes`` (V, L, D) with factor ``*_factors[v]`` fixed in batch v.

    ``global_std`` (D,) normalises each dimension. ``prune_threshold``: drop dimensions whose std is below it
    (disentanglement_lib); None keeps all (CHyVAE). Returns ``score`` (evaluation accuracy),
    ``train_accuracy``, ``votes`` (D × K training vote matrix), ``classifier`` (factor per dimension) and
    ``num_active_dims``.
    """
    D = train_codes.shape[-1]
    global_std = global_std.to(train_codes.dtype)
    active = None
    if prune_threshold is not None:
        active = global_std >= prune_threshold
        if not bool(active.any()):
            return {
                "score": 0.0,
                "train_accuracy": 0.0,
                "votes": [[0] * num_factors for _ in range(D)],
                "classifier": [0] * D,
                "num_active_dims": 0,
            }
    d_train = vote(train_codes, global_std, active)
    d_eval = vote(eval_codes, global_std, active)
    votes = torch.zeros(D, num_factors, dtype=torch.long)
    votes.index_put_((d_train, train_factors.long()), torch.ones_like(d_train), accumulate=True)
    classifier = votes.argmax(1)
    train_acc = float((classifier[d_train] == train_factors).float().mean())
    eval_acc = float((classifier[d_eval] == eval_factors).float().mean())
    return {
        "score": eval_acc,
        "train_accuracy": train_acc,
        "votes": votes.tolist(),
        "classifier": classifier.tolist(),
        "num_active_dims": int(D if active is None else active.sum()),
    }


def _vote_batches(
    representation: Callable[[torch.Tensor], torch.Tensor],
    source: FactorSource,
    n: int,
    batch_size: int,
    generator: torch.Generator,
):
    ks = torch.randint(source.num_factors, (n,), generator=generator)
    codes = []
    for k in ks.tolist():
        _, x = source.sample_fixed(batch_size, k, generator)
        codes.append(representation(x))
    return torch.stack(codes), ks


@torch.no_grad()
def factor_vae_metric(
    representation: Callable[[torch.Tensor], torch.Tensor],
    source: FactorSource,
    variance_observations: torch.Tensor | None = None,
    variant: str = "chyvae",
    seed: int = 0,
    **overrides,
) -> dict[str, object]:
    """FactorVAE metric of ``representation`` (observations (n, ...) -> codes (n, D)) on ``source``.

    ``variance_observations``: the images whose codes give the normalising std (the CHyVAE code uses
    training images); default: ``num_variance_estimate`` fresh renders. ``overrides`` change the variant's
    ``batch_size``, ``num_train``, ``num_eval``, ``num_variance_estimate`` or ``prune_threshold``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    cfg = {**VARIANTS[variant]}
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; valid: {sorted(cfg)}")
    cfg.update(overrides)
    g = torch.Generator().manual_seed(seed)
    if variance_observations is None:
        variance_observations = source.render(source.sample_factors(cfg["num_variance_estimate"], g))
    else:
        variance_observations = variance_observations[: cfg["num_variance_estimate"]]
    codes = torch.cat(
        [representation(variance_observations[i : i + 500]) for i in range(0, len(variance_observations), 500)]
    )
    # CHyVAE: np.std of the means (ddof 0); disentanglement_lib: sqrt of np.var(ddof=1): same to 1/n
    global_std = codes.std(0, unbiased=variant != "chyvae")
    tr_codes, tr_k = _vote_batches(representation, source, cfg["num_train"], cfg["batch_size"], g)
    ev_codes, ev_k = _vote_batches(representation, source, cfg["num_eval"], cfg["batch_size"], g)
    out = factor_vae_metric_from_codes(
        tr_codes, tr_k, ev_codes, ev_k, global_std, source.num_factors, cfg["prune_threshold"]
    )
    out["settings"] = {"variant": variant, **cfg, "seed": seed}
    return out


def run_representation(run, batch_size: int = 500) -> Callable[[torch.Tensor], torch.Tensor]:
    """The posterior mean of a fitted run's code, E_q[code | x] (``guide.encode(x)[model.code_site]["loc"]``),
    computed in eval mode."""
    return representation(run.model, run.guide, run.parts.device, batch_size)


def representation(model, guide, device=None, batch_size: int = 500) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> E_q[code | x]`` for any model/guide pair (the model's ``code_site``), in eval mode."""
    device = device if device is not None else model.device
    site = model.code_site

    @torch.no_grad()
    def encode(x: torch.Tensor) -> torch.Tensor:
        with eval_mode(guide):
            out = torch.cat(
                [
                    guide.encode(x[i : i + batch_size].to(device))[site]["loc"].cpu()
                    for i in range(0, len(x), batch_size)
                ]
            )
        return out.reshape(len(x), -1)

    return encode


def factor_vae_metric_for_run(run, variant: str = "chyvae", seed: int = 0, **overrides) -> dict[str, object]:
    """The FactorVAE metric of a fitted :class:`~pyro_vaes.api.Run` on a dataset with ``factors``."""
    source = run.data.factors
    if source is None:
        raise ValueError(f"dataset {run.config.data!r} has no ground-truth factors; the FactorVAE metric needs them")
    return factor_vae_metric(run_representation(run), source, run.data.train.x, variant=variant, seed=seed, **overrides)
