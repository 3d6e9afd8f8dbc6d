"""The proof that the next papers fit the contract: a toy label-conditioned model (with its guide) and a toy
guide-less adversarial model (with its two-optimizer objective), written here and nowhere else, train through
``pyro_vaes.fit``, checkpoint, resume exactly, load and evaluate, and join the CLI — no edit outside this file.
"""

from __future__ import annotations

import json

import pyro
import pyro.distributions as dist
import pytest
import torch
from helpers import example_data
from torch import nn
from torch.nn import functional as F

import pyro_vaes
from pyro_vaes.cli import main
from pyro_vaes.guides.base import GuideBase
from pyro_vaes.models.base import ModelBase
from pyro_vaes.nets import broadcast_cat
from pyro_vaes.objectives.base import AuxiliaryNetwork, Objective
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES, MODELS, OBJECTIVES


# -- a label-conditioned model: p(z) p(x | z, y), q(z | x, y) ----------------------------------------------------
class ToyCVAE(ModelBase):
    """z ~ N(0, I); x ~ N(decoder([z, onehot(y)]), 0.5²); y drawn uniformly when generating."""

    latent_sites = ("z",)
    labels = "class"
    pyro_name = "toy_cvae"

    def __init__(self, input_shape, num_classes: int, latent_dim: int = 2, hidden: int = 16):
        super().__init__(input_shape)
        self.num_classes, self.latent_dim = num_classes, latent_dim
        n = int(torch.tensor(self.input_shape).prod())
        self.decoder = nn.Sequential(nn.Linear(latent_dim + num_classes, hidden), nn.ReLU(), nn.Linear(hidden, n))

    def mean(self, z, y):  # z may carry particle dims on the left: broadcast the label before concatenating
        h = self.decoder(broadcast_cat([z, F.one_hot(y, self.num_classes).to(z.dtype)]))
        return h.reshape(*h.shape[:-1], *self.input_shape)

    def model(self, x, y=None):
        register(self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], self.latent_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(self.mean(z, y), 0.5).to_event(len(self.input_shape)), obs=x)

    def decode(self, latents, y=None):
        return self.mean(latents["z"], y)

    def sample_prior(self, n, y=None):
        y = torch.randint(self.num_classes, (n,), device=self.device) if y is None else y
        return {"z": torch.randn(n, self.latent_dim, device=self.device), "y": y}


class ToyCVAEGuide(GuideBase):
    """q(z | x, y) = N(μ([x, onehot(y)]), diag σ²)."""

    mean_field = True
    pyro_name = "toy_cvae_guide"

    def __init__(self, model, hidden: int = 16):
        super().__init__(model)
        self.num_classes = model.num_classes
        n = int(torch.tensor(model.input_shape).prod())
        self.net = nn.Sequential(
            nn.Linear(n + model.num_classes, hidden), nn.ReLU(), nn.Linear(hidden, 2 * model.latent_dim)
        )

    def encode(self, x, y=None):
        h = torch.cat([x.reshape(x.shape[0], -1), F.one_hot(y, self.num_classes).to(x.dtype)], -1)
        loc, raw = self.net(h).chunk(2, -1)
        return {"z": {"loc": loc, "scale": F.softplus(raw) + 1e-4}}

    def guide(self, x, y=None):
        register(self)
        q = self.encode(x, y)["z"]
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(q["loc"], q["scale"]).to_event(1))


# -- a guide-less adversarial model: a generator and a GAN objective with its own discriminator ---------------------
class ToyGenerator(ModelBase):
    """x = sigmoid(G(z)), z ~ N(0, I): no likelihood, no guide."""

    latent_sites = ("z",)
    has_guide = False
    default_objective = "toy-gan"

    def __init__(self, input_shape, latent_dim: int = 2, hidden: int = 16):
        super().__init__(input_shape)
        self.latent_dim = latent_dim
        n = int(torch.tensor(self.input_shape).prod())
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, n))

    def decode(self, latents, y=None):
        z = latents["z"]
        return torch.sigmoid(self.net(z)).reshape(*z.shape[:-1], *self.input_shape)

    def sample_prior(self, n, y=None):
        return {"z": torch.randn(n, self.latent_dim, device=self.device)}


class ToyGAN(Objective):
    """Non-saturating GAN: the discriminator steps first (real vs detached fakes), then the generator."""

    models = ("toy-generator",)
    requires = frozenset()
    step_order = ("discriminator", "main")

    def bind(self, model, guide, num_data=None):
        n = int(torch.tensor(model.input_shape).prod())
        self.disc = nn.Sequential(nn.Flatten(), nn.Linear(n, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
        return super().bind(model, guide, num_data)

    def networks(self):
        return {"discriminator": AuxiliaryNetwork(self.disc, lr=2e-3, betas=(0.5, 0.999))}

    def loss(self, x, y=None):
        fake = self.model.sample(x.shape[0])
        return F.binary_cross_entropy_with_logits(self.disc(fake), torch.ones(len(x), 1), reduction="sum")

    def network_loss(self, name, x, y=None):
        with torch.no_grad():
            fake = self.model.sample(x.shape[0])
        logits = self.disc(torch.cat([x, fake]))
        target = torch.cat([torch.ones(len(x), 1), torch.zeros(len(x), 1)])
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum")

    @torch.no_grad()
    def evaluate_loss(self, x, y=None):
        return float(self.loss(x, y))


@pytest.fixture(autouse=True)
def toys():
    """Register the toys for one test (the registry's tables, as any user code would) and remove them after."""
    MODELS.register("toy-cvae")(ToyCVAE)
    GUIDES.register("toy-cvae-guide", models=("toy-cvae",), default_for=("toy-cvae",))(ToyCVAEGuide)
    MODELS.register("toy-generator")(ToyGenerator)
    OBJECTIVES.register("toy-gan")(ToyGAN)
    yield
    for registry, name in (
        (MODELS, "toy-cvae"),
        (GUIDES, "toy-cvae-guide"),
        (MODELS, "toy-generator"),
        (OBJECTIVES, "toy-gan"),
    ):
        registry.unregister(name)


SETTINGS = dict(
    data="linear-gaussian",
    batch_size=8,
    eval_every=2,
    checkpoint_every=2,
    eval_batches=1,
    progress=False,
    figures=False,
)


def _params(run):
    modules = [run.model, run.guide, *(n.module for n in run.parts.objective.networks().values())]
    return [p.detach().clone() for m in modules if m is not None for p in m.parameters()]


@pytest.mark.parametrize("model,objective", [("toy-cvae", None), ("toy-generator", None)])
def test_toy_trains_checkpoints_resumes_exactly_loads_and_evaluates(model, objective, tmp_path):
    data = example_data((1, 6, 6), labels="class" if model == "toy-cvae" else None, n_train=48)
    full = pyro_vaes.fit(model=model, objective=objective, dataset=data, steps=8, out=tmp_path / "full", **SETTINGS)
    pyro_vaes.fit(model=model, objective=objective, dataset=data, steps=4, out=tmp_path / "half", **SETTINGS)
    resumed = pyro_vaes.fit(resume=tmp_path / "half", steps=8, dataset=data, progress=False, figures=False)
    for a, b in zip(_params(full), _params(resumed), strict=True):
        assert torch.equal(a, b)
    rows = [
        {k: v for k, v in json.loads(r).items() if k != "seconds"}
        for r in (tmp_path / "half" / "metrics.jsonl").read_text().splitlines()
    ]
    assert rows == [{k: v for k, v in r.items() if k != "seconds"} for r in full.history]
    loaded = pyro_vaes.load(tmp_path / "full", dataset=data)
    for a, b in zip(_params(full), _params(loaded), strict=True):
        assert torch.equal(a, b)
    res = loaded.evaluate(num_particles=4, write=False)
    assert res["n"] == len(data.test)
    if model == "toy-cvae":  # labels reach the model and guide in evaluation too
        assert res["elbo"] <= res["log_likelihood"] + 1.0
        assert loaded.sample(3, y=torch.tensor([0, 1, 2])).shape == (3, 1, 6, 6)
    assert loaded.sample(5).shape == (5, 1, 6, 6)
    assert len(loaded.plot("all", out=tmp_path / "figs")) == (3 if model == "toy-cvae" else 2)


def test_toy_gan_steps_each_network_with_its_own_optimizer_in_its_order(tmp_path):
    from pyro_vaes.config import FitConfig
    from pyro_vaes.engine import Trainer, build

    data = example_data((1, 6, 6), n_train=48)
    trainer = Trainer(
        build(FitConfig(model="toy-generator", **{k: v for k, v in SETTINGS.items() if k not in ("progress",)}), data),
        tmp_path,
        progress=False,
    )
    assert trainer.config.objective == "toy-gan" and trainer.config.guide is None
    assert trainer.order == ("discriminator", "main")
    opt = trainer.aux_optimizers["discriminator"]
    assert opt.param_groups[0]["lr"] == 2e-3 and opt.param_groups[0]["betas"] == (0.5, 0.999)
    with pytest.raises(ValueError, match="does not fit model 'toy-generator'.*Objectives that fit: toy-gan"):
        pyro_vaes.fit(model="toy-generator", objective="elbo", dataset=data, steps=1, out=tmp_path / "x", **SETTINGS)


def test_toys_join_the_command_line(tmp_path, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "toy-cvae" in out and "toy-generator" in out and "toy-gan" in out
    for model in ("toy-generator", "toy-cvae"):  # the toys train on a registered dataset from the CLI too
        args = [
            "fit",
            model,
            "--data",
            "moons",
            "--data-arg",
            "n_train=64",
            "--data-arg",
            "n_test=16",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--quiet",
            "--out",
            str(tmp_path / model),
        ]
        assert main(args) == 0, capsys.readouterr().err
        assert main(["evaluate", str(tmp_path / model), "--particles", "3"]) == 0
        assert main(["sample", str(tmp_path / model), "-n", "4", "--out", str(tmp_path / f"{model}.pt")]) == 0
