"""The minimal model and guide that ``docs/design.md`` shows a contributor is real code: taken from the document as
written, registered, fitted, evaluated and sampled, so the template can never drift from the contract."""

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


def template_source() -> str:
    text = (REPO / "docs" / "design.md").read_text()
    section = text[text.index("### A minimal model and guide") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/design.md lost its minimal model and guide"
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
