"""What UG-VAE's four experiments share (Peis et al., arXiv 2012.08234, §5): the settings per scale, the authors'
learning rate and latent sizes, the datasets' arguments, and fitting one model into its run folder
(:func:`fit_model`). Their common part of the experiment contract is
:class:`~pyro_vaes.experiments.ugvae_experiment.UGVAEExperiment`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyro_vaes.data import VAEData
from pyro_vaes.experiments.common import eval_every, fit, say

PAPER = "Peis, Olmos & Artés-Rodríguez, arXiv 2012.08234"

#: settings shared by the four experiments, per scale: batch size, evaluation batches, data sizes (None = all);
#: ``full`` is ``small`` with more random evaluation batches
_BASE: dict[str, dict[str, Any]] = {
    "tiny": dict(
        batch=32,
        eval_series=24,
        eval_random=12,
        mnist_train=512,
        mnist_test=512,
        celeba_train=200,
        celeba_test=240,
        attr_batches=10,
        attr_batch=16,
        hair_batch=16,
        yale_n=200,
        perplexity=5.0,
    ),
    "small": dict(
        batch=128,
        eval_series=200,
        eval_random=200,
        mnist_train=None,
        mnist_test=None,
        celeba_train=None,
        celeba_test=1200,
        attr_batches=100,
        attr_batch=128,
        hair_batch=64,
        yale_n=None,
        perplexity=30.0,
    ),
}
_BASE["full"] = {**_BASE["small"], "eval_random": 400}


def _scales(tiny: int, small: int, full: int) -> dict[str, dict[str, Any]]:
    """The shared settings with one experiment's step budget per scale, and one seed at every scale (``--set
    seeds=3`` runs three)."""
    return {
        name: {**_BASE[name], "steps": steps, "seeds": 1}
        for name, steps in (("tiny", tiny), ("small", small), ("full", full))
    }


MNIST_SCALES = _scales(4, 2000, 23400)
CELEBA_SCALES = _scales(4, 150, 3000)
DOMAIN_SCALES = _scales(4, 300, 3000)

#: the authors' settings (their train.py): lr 5e-3, var_x 0.2 for UG-VAE (the baselines' MSE sum is var 0.5, their
#: models' default); MNIST z/β/K = 10/20/10; CelebA attributes
#: 20/50/20; domain alignment 40/40/40. ML-VAE and GMVAE get the same latent sizes as UG-VAE.
LR = 5e-3
MNIST_SIZES = dict(latent_dim=10, beta_dim=20, K=10)
CELEBA_SIZES = dict(latent_dim=20, beta_dim=50, K=20)
DOMAIN_SIZES = dict(latent_dim=40, beta_dim=40, K=40)


def model_args(name: str, sizes: dict[str, int]) -> dict[str, int]:
    """UG-VAE's latent ``sizes`` as the constructor arguments of ``ugvae``, ``gmvae`` or ``mlvae`` (the
    baselines get the same sizes: GMVAE's w and ML-VAE's group latent C take β's size, as in the authors' code)."""
    if name == "ugvae":
        return dict(sizes)
    if name == "gmvae":
        return dict(latent_dim=sizes["latent_dim"], w_dim=sizes["beta_dim"], K=sizes["K"])
    if name == "mlvae":
        return dict(latent_dim=sizes["latent_dim"], c_dim=sizes["beta_dim"])
    raise ValueError(f"unknown model {name!r}; valid: ugvae, gmvae, mlvae")


def fit_model(
    name: str,
    data: VAEData,
    data_name: str,
    data_args: dict[str, Any],
    out: Path,
    *,
    sizes: dict[str, int],
    steps: int,
    batch_size: int,
    seed: int,
    data_root: str | None = None,
    guide: str | None = None,
    objective: str = "enum-elbo",
    progress: bool = False,
    tag: str | None = None,
):
    """Fit ``name`` on ``data`` (random i.i.d. batches of its train split) into the run folder ``out/runs/<tag>``
    (``tag`` defaults to ``name``); returns the :class:`~pyro_vaes.api.Run` with model and guide in eval mode.

    The held-out loss (the engine's, on its first ``eval_batches`` test batches) is written
    :data:`~pyro_vaes.experiments.common.CURVE_POINTS` times per fit (every step when ``steps`` < 20). ``data_name``/``data_args``/``data_root`` are the registry dataset that ``data``
    was built from; they go into the run's ``config.json``, so ``pyro-vaes evaluate|plot OUT/runs/<tag>``
    rebuilds the same data.
    """
    tag = name if tag is None else tag
    root = None if data_root is None else str(Path(data_root).resolve())
    say(f"training {name} on random {data_name} batches of {batch_size} ({steps} steps) -> {Path(out) / 'runs' / tag}")
    return fit(
        out,
        tag,
        progress=progress,
        model=name,
        guide=guide,
        objective=objective,
        data=data_name,
        data_args=data_args,
        data_root=root,
        dataset=data,
        model_args=model_args(name, sizes),
        steps=steps,
        batch_size=batch_size,
        lr=LR,
        eval_every=eval_every(steps),
        checkpoint_every=steps,
        seed=seed,
    )


# -- data -------------------------------------------------------------------------------------------------
def mnist_args(s: dict[str, Any]) -> dict[str, Any]:
    return dict(binarize="none", n_train=s["mnist_train"], n_test=s["mnist_test"])


def celeba_args(s: dict[str, Any], labels: str = "Male,Black_Hair,Blond_Hair") -> dict[str, Any]:
    return dict(labels=labels, n_train=s["celeba_train"], n_test=s["celeba_test"])


def domain_args(s: dict[str, Any]) -> dict[str, Any]:
    yale_test = None if s["yale_n"] is None else max(s["yale_n"] // 4, s["attr_batch"])
    return dict(
        celeba_train=s["celeba_train"], celeba_test=s["celeba_test"], yale_train=s["yale_n"], yale_test=yale_test
    )
