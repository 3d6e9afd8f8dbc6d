"""The switching figures of ``csvae-celeba`` (Klys et al., 2018, Figs. 3 and 5): one test face switched to each
attribute by every model, and CSVAE switching both attributes on together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pyro_vaes.analysis.switch import subspace_points, switch_attribute
from pyro_vaes.experiments.common import image_grid_figure
from pyro_vaes.experiments.csvae import NAMES


def plain_face(data, attribute: int) -> int:
    """The first test face without any of the attributes (else without this one)."""
    y = data.test.y
    none = torch.nonzero((y == 0).all(1)).flatten()
    idx = none if len(none) else torch.nonzero(y[:, attribute] == 0).flatten()
    return int(idx[0])


@torch.no_grad()
def switch_row(
    run, name: str, x: torch.Tensor, y: torch.Tensor, attribute: int, s: dict[str, Any], ref
) -> torch.Tensor:
    """The switched images of one face for one model: (rows, cols, C, H, W) — one row of intensities for VAE and
    CondVAE-style models, the figure grid (rows × cols points in the subspace) for CSVAE."""
    if name == "csvae":
        out = switch_attribute(run.model, run.guide, x, y, attribute, 1, reference=ref, grid=s["figure_grid"])
        g = s["figure_grid"]
        return out.images[0].reshape(g, -1, *out.images.shape[2:]).cpu()
    out = switch_attribute(run.model, run.guide, x, y, attribute, 1, reference=ref, intensities=tuple(s["intensities"]))
    return out.images[0][None].cpu()


@torch.no_grad()
def both_attributes_grid(run, x: torch.Tensor, y: torch.Tensor, ref, g: int) -> torch.Tensor:
    """CSVAE with both attributes switched on (Fig. 5): rows = g points along the first diagonal of the
    Eyeglasses subspace grid, columns = the same for facial hair; (g, g, C, H, W)."""
    from pyro_vaes.guides.base import posterior_means

    model, guide = run.model, run.guide
    lines = []
    for j in (0, 1):
        pts, _ = subspace_points(model, guide, j, 1, ref, grid=g)
        lines.append(pts.reshape(g, g, -1).diagonal(dim1=0, dim2=1).t() if pts.shape[1] == 2 else pts[:g])
    means = posterior_means(guide.encode(x.to(model.device), y.to(model.device)))
    rows = []
    for a in range(g):
        row = []
        for b in range(g):
            w = means["w"].clone()
            w[:, model.subspace(0)] = lines[0][a]
            w[:, model.subspace(1)] = lines[1][b]
            row.append(model.decode({**means, "w": w})[0])
        rows.append(torch.stack(row))
    return torch.stack(rows).cpu()


def switch_figures(out: Path, subset: str, data, runs: dict[str, Any], s: dict[str, Any], ref) -> list[Path]:
    """``switch-<subset>-<attribute>.png`` for every attribute (one face across models, Fig. 3) and, for two
    attributes and a CSVAE run, ``switch-<subset>-both.png`` (Fig. 5)."""
    paths = []
    for j, attr in enumerate(data.label_names):
        f = plain_face(data, j)
        x, y = data.test.x[f : f + 1], data.test.y[f : f + 1]
        blocks, labels = [], []
        for name, run in runs.items():
            imgs = switch_row(run, name, x, y, j, s, ref)
            width = max(len(s["intensities"]), s["figure_grid"])
            for r in range(imgs.shape[0]):
                row = imgs[r]
                pad = torch.full((width - row.shape[0], *row.shape[1:]), 0.5)
                blocks.append(torch.cat([x.cpu(), row, pad]))
                labels.append(NAMES[name] if imgs.shape[0] == 1 else f"{NAMES[name]} {r + 1}")
        title = (
            f"{attr} switched on for one test face ({subset}, {s['steps']} steps): first column the "
            f"input; VAE/CondVAE/CondVAE-info at α = {', '.join(f'{a:g}' for a in s['intensities'])}; "
            f"CSVAE on a {s['figure_grid']}×{s['figure_grid']} grid in W_{attr}"
        )
        target = out / f"switch-{subset}-{attr}.png"
        paths.append(image_grid_figure(torch.stack(blocks), target, title, "candidate", "model", row_labels=labels))
    if len(data.label_names) == 2 and "csvae" in runs:  # both attributes together (Fig. 5)
        f = plain_face(data, 0)
        x, y = data.test.x[f : f + 1], data.test.y[f : f + 1]
        grid = both_attributes_grid(runs["csvae"], x, y, ref, s["figure_grid"])
        grid = torch.cat([x.cpu()[None].expand(grid.shape[0], 1, *x.shape[1:]), grid], 1)  # the input first
        paths.append(
            image_grid_figure(
                grid,
                out / f"switch-{subset}-both.png",
                f"CSVAE: {data.label_names[0]} and {data.label_names[1]} switched on together for one "
                "test face (first column: the input; rows: points in the first subspace, columns: "
                "in the second)",
                xlabel=f"point in W_{data.label_names[1]}",
                ylabel=f"point in W_{data.label_names[0]}",
            )
        )
    return paths
