"""Attribute switching for any model, as CSVAE's paper defines it (Klys, Snell & Zemel, NeurIPS 2018, §4.3),
through the model/guide contract only (``encode``, ``posterior_means``, ``decode``, the model's declarations).

G_ij changes attribute j of x from its value s to t = ``to``; which G a model gets depends on what it declares:

* **latent arithmetic** — a model without labels (``model.labels is None``; the VAE): encode, add the difference
  of the attribute's mean codes, decode: z' = E_q[z | x] + α (z̄_t − z̄_s), where z̄_v is the mean posterior mean
  of the reference items whose attribute j is v (the paper's "vector arithmetic in the latent space");
* **label swap** — a binary-label model without subspaces (CondVAE, CondVAE-info): encode with the true labels,
  decode with label j set to s + α (t − s) ("encode the data using its original label, then switch the label
  and decode"; α > 1 scales the changed label for a stronger attribute);
* **subspace** — a model that declares ``subspace_site`` (CSVAE): keep E_q[z | x], put a chosen point p_j in
  the subspace W_j, decode [w', z]. The other subspaces keep their posterior means (``others="keep"``, for
  non-exclusive labels) or are set to 0 (``others="zero"``, the paper's p_l = 0 for l ≠ j, written for
  exclusive labels). Candidate points (:func:`subspace_points`): a grid centred at the prior mean of
  p(w_j | y_j = t) for 2-D subspaces, or, for larger ones, the mean of the reference posterior means
  {μ_φ2(x, y)_j : y_j = t} plus multiples of their principal components.

In every case α = 1 and t = s (or p_j = the item's own posterior mean) give back the plain reconstruction
``decode(posterior_means(encode(x, y)), y)``. :func:`switch_accuracy` is the paper's Method 1: a classifier's
verdict on the switched images.

Choices where the paper is silent (all options): the grid's half-width is ``radius`` (default 2) standard
deviations of the reference posterior means of the target value, per dimension (the prior's scale when fewer
than two references); the PCA candidates are mean ± a·√λ_c·v_c for a in ``linspace(−radius, radius, grid)``
along the first ``components`` components.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pyro_vaes.guides.base import posterior_means
from pyro_vaes.plumbing.isolation import eval_mode

METHODS = ("latent-arithmetic", "label-swap", "subspace")
OTHERS = ("keep", "zero")


def switch_method(model) -> str:
    """Which switching function a model gets (see the module docstring)."""
    if getattr(model, "subspace_site", None):
        return "subspace"
    if model.labels == "binary":
        return "label-swap"
    if model.labels is None:
        return "latent-arithmetic"
    raise ValueError(
        f"{type(model).__name__} conditions on {model.labels!r} labels; switching a binary attribute "
        "needs a model without labels, with binary labels, or with label subspaces"
    )


@dataclass
class Switched:
    """Switched images ``images`` (B, P, *shape): P candidates per item, described by ``candidates``; ``points`` the
    subspace points used (P, d) or (B, P, d) for the subspace method, else None."""

    images: torch.Tensor
    method: str
    attribute: int
    to: int
    candidates: list[str] = field(default_factory=list)
    points: torch.Tensor | None = None


def _labels(y: torch.Tensor | None, n: int, attribute: int) -> torch.Tensor:
    if y is None:
        raise ValueError("switching an attribute needs the items' labels y (N, k): the attribute's current value")
    if y.dim() == 1:
        y = y[:, None]
    if y.shape[0] != n or not 0 <= attribute < y.shape[1]:
        raise ValueError(f"labels of shape {tuple(y.shape)} do not give attribute {attribute} of {n} items")
    return y


@torch.no_grad()
def encode_means(
    model, guide, x: torch.Tensor, y: torch.Tensor | None, batch_size: int = 500
) -> dict[str, torch.Tensor]:
    """``posterior_means(guide.encode(x, y))`` in batches (per-datum sites concatenated), the modules in eval mode."""
    parts: list[dict[str, torch.Tensor]] = []
    with eval_mode(model, guide):
        for i in range(0, len(x), batch_size):
            yy = None if y is None else y[i : i + batch_size].to(model.device)
            parts.append(posterior_means(guide.encode(x[i : i + batch_size].to(model.device), yy)))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@torch.no_grad()
def attribute_code_means(model, guide, x: torch.Tensor, y: torch.Tensor, attribute: int) -> torch.Tensor:
    """(2, d): the mean posterior mean of the code site over reference items whose attribute is 0 and 1."""
    y = _labels(y, len(x), attribute)
    codes = encode_means(model, guide, x, y)[model.code_site]
    out = []
    for v in (0, 1):
        sel = y[:, attribute] == v
        if not bool(sel.any()):
            raise ValueError(f"no reference item has attribute {attribute} = {v}: latent arithmetic needs both values")
        out.append(codes[sel.to(codes.device)].mean(0))
    return torch.stack(out)


@torch.no_grad()
def subspace_points(
    model,
    guide,
    attribute: int,
    to: int,
    reference: tuple[torch.Tensor, torch.Tensor] | None = None,
    method: str = "auto",
    grid: int = 5,
    components: int = 2,
    radius: float = 2.0,
) -> tuple[torch.Tensor, list[str]]:
    """Candidate points p_j in the subspace W_j of ``attribute`` for target value ``to``: (P, dim W_j), with labels.

    ``method``: ``grid`` (``grid`` × ``grid`` points for 2-D subspaces, ``grid`` points on a line for 1-D; centred at
    the prior mean of p(w_j | y_j = to)), ``pca`` (the reference posterior means' mean ± multiples of their first
    ``components`` principal components), ``auto`` (grid up to 2-D, else pca). ``reference`` = (x, y) labelled
    items (the training set): the spread of the grid and the PCA are taken from their posterior means with
    y_j = ``to``.
    """
    sl = model.subspace(attribute)
    d = sl.stop - sl.start
    if method == "auto":
        method = "grid" if d <= 2 else "pca"
    if method not in ("grid", "pca"):
        raise ValueError(f"method must be auto, grid or pca, got {method!r}")
    label = torch.zeros(1, model.num_labels, device=model.device)
    label[0, attribute] = float(to)
    prior_loc, prior_scale = (t[0, sl] for t in model.subspace_prior(label))
    refs = None
    if reference is not None:
        xr, yr = reference
        yr = _labels(yr, len(xr), attribute)
        sel = yr[:, attribute] == to
        if int(sel.sum()) >= 2:
            refs = encode_means(model, guide, xr[sel], yr[sel])[model.subspace_site][:, sl]
    if method == "pca":
        if refs is None or len(refs) <= d:
            raise ValueError(
                f"PCA candidates in W_{attribute} need more than {d} reference items with the attribute "
                f"= {to}; pass reference=(x, y) (or use method='grid')"
            )
        mean = refs.mean(0)
        _, s, v = torch.linalg.svd(refs - mean, full_matrices=False)
        sd = s / max(len(refs) - 1, 1) ** 0.5
        steps = torch.linspace(-radius, radius, grid, device=mean.device)
        pts, names = [], []
        for c in range(min(components, d)):
            for a in steps.tolist():
                pts.append(mean + a * sd[c] * v[c])
                names.append(f"pc{c + 1} {a:+.2g}sd")
        return torch.stack(pts), names
    spread = refs.std(0) if refs is not None else prior_scale
    axes = [
        torch.linspace(float(c - radius * h), float(c + radius * h), grid, device=prior_loc.device)
        for c, h in zip(prior_loc.tolist(), spread.tolist())
    ]
    if d == 1:
        pts = axes[0][:, None]
    elif d == 2:
        pts = torch.cartesian_prod(axes[0], axes[1])
    else:
        raise ValueError(f"a grid over W_{attribute} needs a 1-D or 2-D subspace (it has {d} dimensions); use pca")
    return pts, [" ".join(f"{v:.2g}" for v in p.tolist()) for p in pts]


@torch.no_grad()
def switch_attribute(
    model,
    guide,
    x: torch.Tensor,
    y: torch.Tensor,
    attribute: int,
    to: int,
    reference: tuple[torch.Tensor, torch.Tensor] | None = None,
    points: torch.Tensor | None = None,
    intensities: Sequence[float] = (1.0,),
    others: str = "keep",
    code_means: torch.Tensor | None = None,
    **point_options: Any,
) -> Switched:
    """Switch attribute ``attribute`` of items ``x`` (labels ``y`` (B, k)) to ``to`` ∈ {0, 1} (see the module docstring).

    ``reference`` = (x, y) labelled items (e.g. the training split): the attribute's mean codes (latent arithmetic)
    or the spread of the candidate points (subspace). ``points``: subspace points, (P, dim W_j) for every item or
    (B, P, dim W_j) per item (default :func:`subspace_points` with ``point_options``). ``intensities``: α values of
    latent arithmetic and label swap (one candidate each). ``others``: the other subspaces, ``keep`` or ``zero``.
    ``code_means``: the (2, d) mean codes of latent arithmetic, when already computed from ``reference``
    (:func:`attribute_code_means`). Returns :class:`Switched` with images (B, P, *shape).
    """
    if to not in (0, 1):
        raise ValueError(f"an attribute is switched to 0 or 1, got {to!r}")
    if others not in OTHERS:
        raise ValueError(f"others must be one of {', '.join(OTHERS)}, got {others!r}")
    method = switch_method(model)
    dev = model.device
    x = x.to(dev)
    y = _labels(y, len(x), attribute).to(dev)
    with eval_mode(model, guide):
        means = posterior_means(guide.encode(x, y))
        src = y[:, attribute].to(torch.get_default_dtype())
        images, names = [], []
        if method == "latent-arithmetic":
            if code_means is None and reference is None:
                raise ValueError("latent arithmetic needs reference=(x, y): labelled items to average codes over")
            centre = (
                attribute_code_means(model, guide, reference[0], reference[1], attribute)
                if code_means is None
                else code_means
            ).to(dev)
            code = means[model.code_site]
            shift = centre[to] - centre[src.long()]  # (B, d); zero where the item already has the target
            for a in intensities:
                images.append(model.decode({**means, model.code_site: code + a * shift}, y))
                names.append(f"α = {a:g}")
        elif method == "label-swap":
            for a in intensities:
                y2 = y.to(torch.get_default_dtype()).clone()
                y2[:, attribute] = src + a * (to - src)
                images.append(model.decode(means, y2))
                names.append(f"α = {a:g}")
        else:
            site, sl = model.subspace_site, model.subspace(attribute)
            if points is None:
                points, names = subspace_points(model, guide, attribute, to, reference, **point_options)
            elif points.dim() == 2:
                names = [" ".join(f"{v:.2g}" for v in p.tolist()) for p in points]
            else:
                names = [f"point {i}" for i in range(points.shape[-2])]
            points = points.to(dev)
            base = means[site].clone()
            if others == "zero":
                base = torch.zeros_like(base)
            for p in range(points.shape[-2]):
                w = base.clone()
                w[:, sl] = points[..., p, :]
                images.append(model.decode({**means, site: w}, y))
    return Switched(torch.stack(images, 1), method, attribute, to, names, points if method == "subspace" else None)


def attribute_index(names: Sequence[str] | None, attribute: int | str, columns: int | None = None) -> int:
    """The column of ``attribute`` (a name from ``names`` or an index), checked against the ``columns`` label
    columns the data has when given."""
    if isinstance(attribute, int) or (isinstance(attribute, str) and attribute.lstrip("-").isdigit()):
        j = int(attribute)
        if j < 0 or (columns is not None and j >= columns):
            valid = "none" if not columns else "0" if columns == 1 else f"0 to {columns - 1}"
            named = f" ({', '.join(f'{i}: {n}' for i, n in enumerate(names))})" if names else ""
            raise ValueError(f"--attribute {j} is not a label column of the data; its columns: {valid}{named}")
        return j
    if not names or attribute not in names:
        raise ValueError(f"unknown attribute {attribute!r}; the data's labels: {', '.join(names or []) or 'none'}")
    return list(names).index(attribute)


def attribute_labels(run, split: str = "test") -> torch.Tensor:
    """The 0/1 attribute labels (N, k) of a fitted run's ``split``; data without labels, or with class labels, is
    refused in one line."""
    data = run.data
    part = getattr(data, split)
    if part.y is None or data.train.y is None:
        raise ValueError(f"dataset {run.config.data!r} has no labels: switching needs 0/1 attribute labels")
    y_all = part.y if part.y.dim() == 2 else part.y[:, None]
    if y_all.is_floating_point() or not bool(((y_all == 0) | (y_all == 1)).all()):
        raise ValueError(
            f"dataset {run.config.data!r} has class labels, not 0/1 attributes; switching needs the latter"
        )
    return y_all


def switch(
    run,
    attribute: int | str,
    to: int,
    n: int = 8,
    split: str = "test",
    only_other: bool = True,
    reference_size: int = 2000,
    **options: Any,
) -> tuple[Switched, torch.Tensor, torch.Tensor]:
    """Switch ``attribute`` (name or column) to ``to`` for the first ``n`` items of a fitted run's ``split`` (only
    those whose attribute is not already ``to`` when ``only_other``), with the first ``reference_size`` training
    items as reference. Returns (:class:`Switched`, the items, their reconstructions)."""
    from pyro_vaes.metrics.reconstruction import reconstruct

    if run.guide is None:
        raise ValueError(f"model {run.config.model!r} has no guide: switching encodes the data")
    check_counts(n, options.get("grid"))
    data = run.data
    part = getattr(data, split)
    y_all = attribute_labels(run, split)
    j = attribute_index(data.label_names, attribute, y_all.shape[1])
    idx = torch.nonzero(y_all[:, j] != to).flatten() if only_other else torch.arange(len(part))
    if len(idx) == 0:
        raise ValueError(f"no {split} item has {data.label_names[j] if data.label_names else j} != {to}")
    idx = idx[:n]
    x, y = part.x[idx], y_all[idx]
    ref = (data.train.x[:reference_size], data.train.y[:reference_size])
    with eval_mode(run.model, run.guide):
        out = switch_attribute(run.model, run.guide, x, y, j, to, reference=ref, **options)
        rec = reconstruct(run.model, run.guide, x.to(run.model.device), y.to(run.model.device))
    return out, x, rec.cpu()


@torch.no_grad()
def switch_accuracy(
    model,
    guide,
    classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    attribute: int,
    reference: tuple[torch.Tensor, torch.Tensor] | None = None,
    column: int | None = None,
    batch_size: int = 100,
    **options: Any,
) -> dict[str, Any]:
    """The paper's Method 1 (§5.4): switch attribute ``attribute`` of every item to the other value and ask
    ``classifier`` (its output ``column``, default ``attribute``) whether the switched image carries the target.

    Returns, per direction (``to_1``: items without the attribute, ``to_0``: items with it) and ``both``: the
    accuracy averaged over all candidates (``mean``), of the best candidate (``best``, chosen on these same items:
    an optimistic number), per candidate, the number of items, ``unswitched`` — how often the classifier already
    gives the target to the plain reconstructions of the same items (the rate a switch that changes nothing
    would score) — and ``spread``, the per-pixel standard deviation across an item's candidates, averaged over
    pixels and items (how different the candidate styles are).
    """
    from pyro_vaes.metrics.reconstruction import reconstruct

    column = attribute if column is None else column
    y = _labels(y, len(x), attribute)
    method = switch_method(model)
    point_options = {k: options.pop(k) for k in ("method", "grid", "components", "radius") if k in options}
    code_means = None
    if method == "latent-arithmetic" and reference is not None:  # computed once, not per batch
        code_means = attribute_code_means(model, guide, reference[0], reference[1], attribute)
    res: dict[str, Any] = {}
    n_all = 0
    for to in (1, 0):
        idx = torch.nonzero(y[:, attribute] != to).flatten()
        if len(idx) == 0:
            continue
        fixed = dict(options)
        if method == "subspace" and fixed.get("points") is None:
            fixed["points"], _ = subspace_points(model, guide, attribute, to, reference, **point_options)
        hits, plain, spread, names = [], [], 0.0, []
        for i in range(0, len(idx), batch_size):
            b = idx[i : i + batch_size]
            out = switch_attribute(
                model, guide, x[b], y[b], attribute, to, reference=reference, code_means=code_means, **fixed
            )
            imgs = out.images.cpu()
            names = out.candidates
            pred = classifier.predict(imgs.flatten(0, 1))
            pred = pred[:, column] if pred.dim() == 2 else pred
            hits.append((pred.reshape(len(b), -1) == to).float())
            with eval_mode(model, guide):
                rec = reconstruct(model, guide, x[b].to(model.device), y[b].to(model.device)).cpu()
            p0 = classifier.predict(rec)
            plain.append(((p0[:, column] if p0.dim() == 2 else p0) == to).float())
            if imgs.shape[1] > 1:
                spread += float(imgs.std(1).flatten(1).mean(1).sum())
        h = torch.cat(hits)  # (n, P)
        per = h.mean(0)
        res[f"to_{to}"] = {
            "n": len(idx),
            "mean": float(h.mean()),
            "best": float(per.max()),
            "best_candidate": names[int(per.argmax())] if names else None,
            "per_candidate": per.tolist(),
            "unswitched": float(torch.cat(plain).mean()),
            "spread": spread / len(idx),
        }
        n_all += len(idx)
    if all(k in res for k in ("to_0", "to_1")):
        r1, r0 = res["to_1"], res["to_0"]
        res["both"] = {
            "n": n_all,
            "mean": (r1["mean"] * r1["n"] + r0["mean"] * r0["n"]) / n_all,
            "spread": (r1["spread"] * r1["n"] + r0["spread"] * r0["n"]) / n_all,
        }
    return res


def check_counts(n: int, grid: int | None = None) -> None:
    """Refuse fewer than one item to switch or one grid point per axis."""
    if n < 1:
        raise ValueError(f"-n must be >= 1 test items, got {n}")
    if grid is not None and grid < 1:
        raise ValueError(f"--grid must be >= 1 point per axis, got {grid}")


def file_name(text: str) -> str:
    """``text`` as a part of a file name no shell needs quoted: comparisons spelt out (``x0>=10`` -> ``x0ge10``),
    any other character but letters, digits, ``.``, ``_`` and ``-`` as ``_``."""
    for op, word in ((">=", "ge"), ("<=", "le"), ("!=", "ne"), ("==", "eq"), (">", "gt"), ("<", "lt"), ("=", "eq")):
        text = text.replace(op, word)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.") or "attribute"


def write_switch(run, attribute: int | str, to: int, out=None, overwrite: bool = False, n: int = 8, **options: Any):
    """Switch ``attribute`` to ``to`` for ``n`` test items of a fitted run (:func:`switch`) and write the result: a PNG
    grid for images (one row per item: input, reconstruction, then every candidate), a ``.pt`` file of tensors for
    flat data (``x``, ``reconstruction``, ``switched`` (items, candidates, ...), ``candidates``, ``method``,
    ``attribute``, ``to``). ``out`` defaults to ``RUN/figures/switch-<attribute>-to<to>.png`` (``.pt`` for flat data;
    the attribute's name made safe for a file name); a name with the other suffix is refused, an existing file
    unless ``overwrite``, a run folder's own files always — all before anything is computed. Returns the path
    written; a summary of what was switched is logged at INFO on the ``pyro_vaes`` logger."""
    from pathlib import Path

    from pyro_vaes.analysis.plots import image_grid
    from pyro_vaes.engine import LOGGER, check_output

    check_counts(n, options.get("grid"))
    y_all = attribute_labels(run)
    j = attribute_index(run.data.label_names, attribute, y_all.shape[1])
    name = run.data.label_names[j] if run.data.label_names else str(j)
    suffix = ".png" if run.data.is_image else ".pt"
    path = Path(out) if out is not None else Path(run.run_dir) / "figures" / f"switch-{file_name(name)}-to{to}{suffix}"
    if path.suffix.lower() != suffix:
        kind = "an image grid (.png)" if run.data.is_image else "a tensor file (torch.save)"
        raise ValueError(
            f"--out {path}: a switch on {run.config.data} is written as {kind}; give a name ending in {suffix}"
        )
    check_output(path, overwrite)  # the run folder's own files never; an existing file only with overwrite
    res, x, rec = switch(run, j, to, n=n, **options)
    imgs = res.images.cpu()
    shown = ", ".join(res.candidates[:6]) + (", ..." if len(res.candidates) > 6 else "")
    LOGGER.info(
        "switched %s to %d for %d test item(s) by %s: %d candidate(s) each (%s)",
        name,
        to,
        len(x),
        res.method,
        len(res.candidates),
        shown,
    )
    if run.data.is_image:
        grid = torch.cat([x[:, None], rec[:, None], imgs], 1)
        cols = ["input", "recon."] + (res.candidates if len(res.candidates) <= 12 else [""] * len(res.candidates))
        title = (
            f"{run.config.model}: {name} switched to {to} ({res.method}); one row per test item, columns: "
            f"input, reconstruction, {len(res.candidates)} candidate(s)"
        )
        return image_grid(grid.flatten(0, 1), grid.shape[1], title, path, col_labels=cols)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "x": x,
            "reconstruction": rec,
            "switched": imgs,
            "candidates": res.candidates,
            "method": res.method,
            "attribute": name,
            "to": to,
        },
        path,
    )
    return path
