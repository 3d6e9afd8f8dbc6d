"""``pyro-vaes reproduce ugvae-sampling``: UG-VAE's global/local sampling grid per cluster (Peis et al., arXiv
2012.08234, Fig. 3; the authors' ``interpolation.sampling``) and the same grid for ML-VAE, both trained on random
MNIST batches. Writes ``figures/ugvae_sampling_cluster<k>.png`` (the first 10 clusters; 2 at tiny scale) and
``figures/mlvae_sampling.png`` from the first seed's fits, and every seed's fit in ``rows``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pyro_vaes.experiments.base import Context, register
from pyro_vaes.experiments.ugvae_common import LR, MNIST_SCALES, MNIST_SIZES, mnist_args
from pyro_vaes.experiments.ugvae_experiment import UGVAEExperiment, run_rows
from pyro_vaes.experiments.ugvae_figures import mlvae_sampling_figure, ugvae_sampling_figure


class UGVAESampling(UGVAEExperiment):
    name = "ugvae-sampling"
    help = "UG-VAE global/local sampling grids per cluster vs ML-VAE (MNIST)"
    scales = MNIST_SCALES
    sizes = MNIST_SIZES

    def run_one(self, settings: dict[str, Any], seed: int, context: Context) -> list[dict[str, Any]]:
        torch.manual_seed(seed)
        data = context.data("mnist", seed=seed, **mnist_args(settings))
        self.record_first(seed, context, train_images=len(data.train))
        return [
            self.fit_row(name, data, "mnist", mnist_args(settings), settings, seed, context)
            for name in ("ugvae", "mlvae")
        ]

    def draw(self, first: list[dict[str, Any]], context: Context) -> list[Path]:
        figures, paths = context.out / "figures", []
        for row in first:
            model = row["_run"].model
            if row["model"] == "ugvae":
                clusters = min(model.K, 10 if context.scale != "tiny" else 2)
                paths += [
                    ugvae_sampling_figure(model, k, figures / f"ugvae_sampling_cluster{k}.png") for k in range(clusters)
                ]
            else:
                paths.append(mlvae_sampling_figure(model, figures / "mlvae_sampling.png"))
        return paths

    def body(self, table: dict[str, Any]) -> list[str]:
        s = table["settings"]
        return [
            f"{table['command']}: UG-VAE and ML-VAE (z/β/K = 10/20/10) trained on "
            f"{table['train_images']} MNIST images in random batches of {s['batch']} for {s['steps']} steps, lr {LR}.",
            "",
            *run_rows(table["runs"]),
        ]


run_sampling = register(UGVAESampling())
