"""``pyro-vaes reproduce ugvae-domains`` (Peis et al., arXiv 2012.08234, §5.2, Figs. 5-6): UG-VAE trained on
random batches of CelebA and Extended Yale B balanced and pooled (the registered ``celeba-yaleb``: a random batch
mixes the domains ~50/50; 3D FACES is not available here, Yale B stands in for it), then μ_β of single-domain
batches: linear SVM domain separability per seed, and the first seed's t-SNE (``figures/tsne_domains.png``) and
interpolation grid from a CelebA batch to a Yale B batch (``figures/interpolation.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyro_vaes.data.composite import domain_parts
from pyro_vaes.experiments.base import Context, register
from pyro_vaes.experiments.common import format_mean_std, markdown_table, mean_std
from pyro_vaes.experiments.ugvae_common import DOMAIN_SCALES, DOMAIN_SIZES, LR, domain_args
from pyro_vaes.experiments.ugvae_experiment import UGVAEExperiment, run_rows
from pyro_vaes.experiments.ugvae_figures import interpolation_figure
from pyro_vaes.metrics.batch_classification import batch_classification, batch_features

NOTE = "3D FACES (the paper's second domain) is not available; Extended Yale B (grey, repeated to RGB) stands in"
SEPARABILITY = ["linear SVM domain separability", "train", "test"]


class UGVAEDomains(UGVAEExperiment):
    name = "ugvae-domains"
    help = "UG-VAE on mixed CelebA + Yale B batches: β of single-domain batches"
    scales = DOMAIN_SCALES
    sizes = DOMAIN_SIZES

    def prepare(self, settings: dict[str, Any], context: Context) -> None:
        super().prepare(settings, context)
        context.extra["note"] = NOTE

    def run_one(self, settings: dict[str, Any], seed: int, context: Context) -> list[dict[str, Any]]:
        from pyro_vaes.data.batches import domain_batches

        data_args = domain_args(settings)
        celeba, yale, mixed = domain_parts(context.data_root, seed, **data_args)  # balanced; ``mixed`` pools both
        nb, ab = settings["attr_batches"], settings["attr_batch"]
        row = self.fit_row("ugvae", mixed, "celeba-yaleb", data_args, settings, seed, context)
        model, guide = row["_run"].model, row["_run"].guide
        ge = torch.Generator().manual_seed(seed + 1)
        single = list(domain_batches(celeba, yale, 2 * nb, ab, ge, proportion=0.5, mode="single", split="test"))
        feats = batch_features(model, guide, [b.x for b in single])
        labels = np.array([b.group for b in single])
        row.update(
            train_images={"celeba": len(celeba.train), "yaleb": len(yale.train)},
            test_images={"celeba": len(celeba.test), "yaleb": len(yale.test)},
            balanced_from={"celeba": celeba.info["balanced_from"], "yaleb": yale.info["balanced_from"]},
            single_domain_batches={"celeba": int((labels == 0).sum()), "yaleb": int((labels == 1).sum())},
        )
        if len(np.unique(labels)) == 2 and min(np.bincount(labels)) >= 2:
            row["separability"] = batch_classification(feats, labels, kernels=("linear",))
        keep = ("train_images", "balanced_from", "single_domain_batches", "separability")
        self.record_first(seed, context, **{k: row[k] for k in keep if k in row})
        title = "UG-VAE μ_β of single-domain batches (trained on 50/50 mixed batches)"
        row["_tsne"] = [("tsne_domains", feats, labels, ["CelebA batches", "Yale B batches"], title)]
        row["_xa"] = next(b.x for b in single if b.group == 0) if (labels == 0).any() else celeba.test.x[:ab]
        row["_xb"] = next(b.x for b in single if b.group == 1) if (labels == 1).any() else yale.test.x[:ab]
        return [row]

    def summary(self, rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
        """The fits' losses and the linear separability's train/test accuracy, mean ± std over seeds (a seed with
        too few batches of one domain to measure it counts as missing)."""
        linear = [r.get("separability", {}).get("linear", {}) for r in rows]
        return {
            **super().summary(rows, settings),
            "separability": {"linear": {part: mean_std([s.get(part) for s in linear]) for part in ("train", "test")}},
        }

    def draw(self, first: list[dict[str, Any]], context: Context) -> list[Path]:
        (row,) = first
        run, path = row["_run"], context.out / "figures" / "interpolation.png"
        return [interpolation_figure(run.model, run.guide, row["_xa"], row["_xb"], path)]

    def body(self, table: dict[str, Any]) -> list[str]:
        s, first = table["settings"], table["rows"][0]
        sep = table.get("separability", {}).get("linear", {})
        return [
            f"{table['command']}: UG-VAE (z/β/K = 40/40/40) trained "
            f"{s['steps']} steps (lr {LR}) on random batches of {s['batch']} from CelebA and Yale B balanced to "
            f"{table['train_images']['celeba']} training images each (from {table['balanced_from']['celeba']} and "
            f"{table['balanced_from']['yaleb']}), so batches mix the domains ~50/50; then μ_β of "
            f"{sum(table['single_domain_batches'].values())} single-domain batches of {s['attr_batch']} from the "
            f"{first['test_images']['celeba']} + {first['test_images']['yaleb']} held-out images.",
            "",
            *run_rows(table["runs"]),
            "",
            *markdown_table(
                SEPARABILITY,
                [["UG-VAE μ_β", *(f"{sep.get(part, float('nan')):.3f}" for part in ("train", "test"))]],
            ),
            "",
            table["note"] + ".",
        ]

    def seed_lines(self, table: dict[str, Any]) -> list[str]:
        linear = table["summary"]["separability"]["linear"]
        return ["", *markdown_table(SEPARABILITY, [["UG-VAE μ_β", *(format_mean_std(linear[p]) for p in linear)]])]


run_domains = register(UGVAEDomains())
