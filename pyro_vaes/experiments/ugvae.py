"""UG-VAE's experiments (Peis et al., arXiv 2012.08234, §5), each a ``pyro-vaes reproduce`` target.

* ``ugvae-sampling``          global/local sampling grids per cluster (paper Fig. 3; ``interpolation.sampling``)
                              and the same grid for ML-VAE, both trained on random MNIST batches
                              (:mod:`~pyro_vaes.experiments.ugvae_sampling`);
* ``ugvae-mnist-series``      t-SNE of μ_β for number-series batches vs random batches, and SVM batch
                              classification for UG-VAE, ML-VAE and GMVAE, all trained on random batches only
                              (paper §5.3; ``experiments/mnist_series.py``;
                              :mod:`~pyro_vaes.experiments.ugvae_mnist_series`);
* ``ugvae-domains``           trained on random 50/50 mixed CelebA + Extended Yale B batches, then μ_β of
                              single-domain batches: t-SNE, linear separability, interpolation grid (paper §5.2,
                              Fig. 5-6; 3D FACES is not available here, Yale B stands in for it;
                              :mod:`~pyro_vaes.experiments.ugvae_domains`);
* ``ugvae-celeba-attributes`` male/female and black/blond-hair batches: t-SNE and the batch-classification
                              table (paper §5.3, Table 1; ``experiments/celeba_attributes.py``;
                              :mod:`~pyro_vaes.experiments.ugvae_celeba_attributes`).

Scales: ``tiny`` (seconds, for tests), ``small`` (a laptop CPU, minutes), ``full`` (the authors' budgets); any
setting can be overridden (``pyro-vaes reproduce ugvae-mnist-series --set steps=500``), ``--set seeds=3`` runs
three seeds (every seed's fits and measurements in ``rows``, mean ± std over seeds in ``summary``; the entries from
before seeds, ``runs``, ``classification`` and the figures, are the first seed's).
Every model is trained by :func:`pyro_vaes.fit` (the project's one training loop) on random i.i.d. batches of
an in-memory :class:`~pyro_vaes.data.VAEData`, as the paper trains on random batches; for the domains
experiment that dataset is CelebA and Yale B balanced and pooled (``celeba-yaleb``), so a random batch mixes
the two ~50/50 (the registered ``celeba-yaleb`` dataset). Each fit writes a run folder ``OUT/runs/<model>``
(``OUT/runs/<model>-seed<seed>`` when several seeds run) that ``pyro-vaes evaluate`` and ``pyro-vaes plot``
open. Every number is written with its seed, data size and step budget.

This module gathers the experiments' public names; they are defined in ``ugvae_common`` (settings, sizes,
:func:`fit_model`), ``ugvae_experiment`` (the contract's common part, the results tables), ``ugvae_figures`` (the
image grids) and one module per experiment.
"""

from __future__ import annotations

from pyro_vaes.experiments.ugvae_celeba_attributes import CELEBA_PAPER, run_celeba_attributes
from pyro_vaes.experiments.ugvae_common import (
    CELEBA_SCALES,
    CELEBA_SIZES,
    DOMAIN_SCALES,
    DOMAIN_SIZES,
    LR,
    MNIST_SCALES,
    MNIST_SIZES,
    PAPER,
    fit_model,
    model_args,
)
from pyro_vaes.experiments.ugvae_domains import run_domains
from pyro_vaes.experiments.ugvae_experiment import MODEL_NAMES, classification_rows, run_rows
from pyro_vaes.experiments.ugvae_figures import interpolation_grid, mlvae_sampling_grid, ugvae_sampling_grid
from pyro_vaes.experiments.ugvae_mnist_series import SERIES_PAPER_CLAIM, run_mnist_series
from pyro_vaes.experiments.ugvae_sampling import run_sampling

__all__ = [
    "CELEBA_PAPER",
    "CELEBA_SCALES",
    "CELEBA_SIZES",
    "DOMAIN_SCALES",
    "DOMAIN_SIZES",
    "LR",
    "MNIST_SCALES",
    "MNIST_SIZES",
    "MODEL_NAMES",
    "PAPER",
    "SERIES_PAPER_CLAIM",
    "classification_rows",
    "fit_model",
    "interpolation_grid",
    "mlvae_sampling_grid",
    "model_args",
    "run_celeba_attributes",
    "run_domains",
    "run_mnist_series",
    "run_rows",
    "run_sampling",
    "ugvae_sampling_grid",
]
