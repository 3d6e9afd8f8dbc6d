"""``pyro-vaes reproduce ugvae-celeba-attributes`` (Peis et al., arXiv 2012.08234, §5.3, Table 1; the authors'
``experiments/celeba_attributes.py``): UG-VAE and ML-VAE trained on random CelebA batches, then the global
posterior of male / female / random batches and of black-hair / blond-hair batches: the batch-classification
table per seed and model, and t-SNE plots (``figures/tsne_<model>_{gender,hair}.png``, the first seed's)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pyro_vaes.experiments.base import Context, register
from pyro_vaes.experiments.common import format_mean_std
from pyro_vaes.experiments.ugvae_common import CELEBA_SCALES, CELEBA_SIZES, LR, celeba_args
from pyro_vaes.experiments.ugvae_experiment import UGVAEExperiment, classification_rows, run_rows
from pyro_vaes.metrics.batch_classification import batch_classification, batch_features

#: the authors' run notes in their experiments/celeba_attributes.py (accuracy %)
CELEBA_PAPER = {
    "ugvae:male vs female:linear": "85.0 (train 100)",
    "ugvae:male vs female:rbf": "85.0 (train 100)",
    "ugvae:male / female / random:linear": "66.0 (train 84.0)",
    "ugvae:male / female / random:rbf": "63.0 (train 89.0)",
}


class UGVAECelebAAttributes(UGVAEExperiment):
    name = "ugvae-celeba-attributes"
    paper_budget = "20 epochs of ~162k images"
    help = "CelebA male/female and black/blond batches: t-SNE and Table 1"
    scales = CELEBA_SCALES
    sizes = CELEBA_SIZES

    def run_one(self, settings: dict[str, Any], seed: int, context: Context) -> list[dict[str, Any]]:
        from pyro_vaes.data.batches import attribute_batches, random_batches

        data = context.data("celeba", seed=seed, **celeba_args(settings))
        nb, ab, hb = settings["attr_batches"], settings["attr_batch"], settings["hair_batch"]
        g = torch.Generator().manual_seed(seed + 1)
        male = [b.x for b in attribute_batches(data, "Male", nb, ab, g, present=True)]
        female = [b.x for b in attribute_batches(data, "Male", nb, ab, g, present=False)]
        rand = [b.x for b in random_batches(data.test, nb, ab, g)]
        # black vs blond: items with one hair colour and not the other
        col = {n: i for i, n in enumerate(data.label_names)}
        y = data.test.y
        pools = {
            "black hair": ((y[:, col["Black_Hair"]] == 1) & (y[:, col["Blond_Hair"]] == 0)).nonzero().flatten(),
            "blond hair": ((y[:, col["Blond_Hair"]] == 1) & (y[:, col["Black_Hair"]] == 0)).nonzero().flatten(),
        }
        hb = min(hb, min(len(p) for p in pools.values()))
        hair = {
            k: [data.test.x[p[torch.randperm(len(p), generator=g)[:hb]]] for _ in range(nb)] for k, p in pools.items()
        }
        self.record_first(
            seed,
            context,
            train_images=len(data.train),
            test_images=len(data.test),
            eval_batches_per_class=nb,
            attribute_batch_size=ab,
            hair_batch_size=hb,
            test_pool_sizes={
                "male": int(y[:, col["Male"]].sum()),
                "female": int((1 - y[:, col["Male"]]).sum()),
                **{k: len(p) for k, p in pools.items()},
            },
        )
        rows = []
        for name in ("ugvae", "mlvae"):
            row = self.fit_row(name, data, "celeba", celeba_args(settings), settings, seed, context)
            run = row["_run"]
            fm, ff, fr = (batch_features(run.model, run.guide, b) for b in (male, female, rand))
            fb, fbl = (batch_features(run.model, run.guide, hair[k]) for k in ("black hair", "blond hair"))
            two = np.concatenate([fm, ff])
            two_y = np.array([0] * nb + [1] * nb)
            three = np.concatenate([fm, ff, fr])
            three_y = np.array([0] * nb + [1] * nb + [2] * nb)
            hair_f = np.concatenate([fb, fbl])
            row["classification"] = {
                "male vs female": batch_classification(two, two_y),
                "male / female / random": batch_classification(three, three_y),
                "black vs blond hair": batch_classification(hair_f, two_y),
            }
            feature = "UG-VAE μ_β" if name == "ugvae" else "ML-VAE μ_C"
            row["_tsne"] = [
                (f"tsne_{name}_{tag}", f, lab, nm, f"{feature} of CelebA {tag} batches (trained on random batches)")
                for tag, f, lab, nm in (
                    ("gender", three, three_y, ["male", "female", "random"]),
                    ("hair", hair_f, two_y, ["black hair", "blond hair"]),
                )
            ]
            rows.append(row)
        return rows

    def body(self, table: dict[str, Any]) -> list[str]:
        s = table["settings"]
        return [
            f"{table['command']}: trained on "
            f"{table['train_images']} CelebA-subset images (64x64, random batches of {s['batch']}) for {s['steps']} "
            f"steps (lr {LR}, z/β/K = 20/50/20, beta_vae conv nets); {table['eval_batches_per_class']} batches per "
            f"class of {table['attribute_batch_size']} (hair: {table['hair_batch_size']}) drawn from the "
            f"{table['test_images']} held-out images (pools: {table['test_pool_sizes']}), so batches of one class "
            "overlap heavily. SVM: StandardScaler + SVC(gamma='auto'), the authors' 80/20 train_test_split "
            "(random_state 42, not stratified).",
            "",
            *classification_rows(table["classification"], CELEBA_PAPER),
            "",
            *run_rows(table["runs"]),
            "",
            "Paper numbers: the authors' run notes in their `experiments/celeba_attributes.py` (their CelebA: 162k "
            "training images, 20 epochs, dim_beta 50).",
        ]

    def verdicts(self, table: dict[str, Any]) -> list[dict[str, Any]]:
        """§4.3's three statements on UG-VAE's μ_β (SVM test accuracies, means over seeds): male and female batches
        separate, and black- and blond-hair batches (both kernels above chance by more than 0.1, the rule of the
        MNIST series); adding random batches as a third class lowers the accuracy (below the two-class accuracy with
        both kernels). Table 1's values are the authors' on their 162k-image CelebA, whose test batches share no
        images; ours are drawn from small held-out pools and share many, so only the directions compare."""
        c = table["summary"].get("classification", {})
        two, three, hair = (
            c.get(f"ugvae:{task}") for task in ("male vs female", "male / female / random", "black vs blond hair")
        )
        if two is None:
            return super().verdicts(table)
        kernels = ("linear", "rbf")
        acc = lambda r: ", ".join(f"{k} {format_mean_std(r[k]['test'])}" for k in kernels)  # noqa: E731
        above = lambda r: all(r[k]["test"]["mean"] > r["chance"]["test"]["mean"] + 0.1 for k in kernels)  # noqa: E731
        overlap = "; our test batches of a class share images, so only directions compare"

        def verdict(claim: str, task: str, result: dict[str, Any], paper: str, holds: bool) -> dict[str, Any]:
            return dict(
                claim=claim,
                metric=f"SVM test accuracy on UG-VAE's μ_β, {task}",
                ours=f"{acc(result)} (chance {result['chance']['test']['mean']:.3f})",
                seeds=result["linear"]["test"]["seeds"],
                paper=paper,
                verdict="holds" if holds else "does not hold",
            )

        out = [
            verdict(
                "UG-VAE's global posterior separates male and female batches although it was trained on random "
                "batches (§4.3, Table 1)",
                "male vs female",
                two,
                "linear 0.850, RBF 0.850" + overlap + "; decided as both kernels > chance + 0.1",
                above(two),
            )
        ]
        if three is not None:
            out.append(
                verdict(
                    "With random batches as a third class the accuracy drops (§4.3, Table 1)",
                    "male / female / random",
                    three,
                    "linear 0.660, RBF 0.630" + overlap + "; decided as below the two-class accuracy",
                    all(three[k]["test"]["mean"] < two[k]["test"]["mean"] for k in kernels),
                )
            )
        if hair is not None:
            out.append(
                verdict(
                    "Black-hair and blond-hair batches separate to some extent (§4.3, Fig. 7b)",
                    "black vs blond hair",
                    hair,
                    "t-SNE only; decided as both kernels > chance + 0.1",
                    above(hair),
                )
            )
        return out


run_celeba_attributes = register(UGVAECelebAAttributes())
