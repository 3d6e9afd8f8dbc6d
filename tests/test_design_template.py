"""The minimal model and guide, and the minimal experiment, that ``docs/design.md`` shows a contributor are real code:
taken from the document as written, registered and run, so the templates can never drift from the contracts."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import REPO
from helpers import example_data

import pyro_vaes
from pyro_vaes.registry import GUIDES, MODELS

PRELUDE = """
import math
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn
from pyro_vaes.guides.base import GuideBase
from pyro_vaes.models.base import ModelBase
from pyro_vaes.nets import Decoder, broadcast_cat
from pyro_vaes.plumbing.params import register
from pyro_vaes.registry import GUIDES, MODELS
"""


def template_source(heading: str = "### A minimal model and guide") -> str:
    """The first Python block after ``heading`` in docs/design.md."""
    text = (REPO / "docs" / "design.md").read_text()
    assert heading in text, f"docs/design.md lost its {heading!r}"
    match = re.search(r"```python\n(.*?)```", text[text.index(heading) :], re.S)
    assert match, f"docs/design.md has no Python block after {heading!r}"
    return match.group(1)


@pytest.fixture
def template():
    namespace: dict = {}
    exec(compile(PRELUDE + template_source(), "docs/design.md", "exec"), namespace)
    yield namespace
    MODELS.unregister("toy-cvae")
    GUIDES.unregister("toy-cvae-guide")


def test_template_is_at_most_50_lines():
    assert len([line for line in template_source().splitlines() if line.strip()]) <= 50


def test_the_design_template_fits_evaluates_and_samples(template, tmp_path):
    data = example_data((1, 6, 6), labels="class", n_train=48)
    run = pyro_vaes.fit(
        model="toy-cvae",
        dataset=data,
        steps=4,
        batch_size=8,
        eval_every=2,
        checkpoint_every=2,
        eval_batches=1,
        out=tmp_path / "run",
        progress=False,
        figures=False,
    )
    assert run.config.guide == "toy-cvae-guide"  # its default_for made it the model's default guide
    res = run.evaluate(num_particles=4, write=False)
    assert torch.isfinite(torch.tensor(res["log_likelihood"]))
    assert run.sample(3, y=torch.tensor([0, 1, 2])).shape == (3, 1, 6, 6)
    x = data.test.x[:4]
    assert run.guide.encode(x)["z"]["loc"].shape == (4, 2)  # label-free metrics encode without y (the contract)


def test_the_design_experiment_runs_every_seed_and_writes_its_table(tmp_path):
    from pyro_vaes.registry import EXPERIMENTS

    source = template_source("A minimal experiment, complete:")
    exec(compile(source, "docs/design.md", "exec"), {})  # the block carries its own imports
    try:
        table = EXPERIMENTS.get("example-moons")(tmp_path, scale="tiny", overrides={"steps": 2})
    finally:
        EXPERIMENTS.unregister("example-moons")
    assert [r["seed"] for r in table["rows"]] == [0, 1] and table["summary"]["test_loss"]["seeds"] == 2
    assert table["figures"] and all((tmp_path / f).is_file() for f in table["figures"])
    assert (tmp_path / "results.json").is_file() and "example-moons" in (tmp_path / "results.md").read_text()
