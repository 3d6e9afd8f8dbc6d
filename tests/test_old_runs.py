"""Run folders written by pyro_vaes 0.1.0 (``tests/fixtures/runs-v0.1.0``, made before the contract of
docs/design.md) still load, evaluate and resume with today's code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import pyro_vaes
from pyro_vaes.engine import checkpoint as ckpt

FIXTURES = Path(__file__).parent / "fixtures" / "runs-v0.1.0"
RUNS = sorted(p.name for p in FIXTURES.iterdir() if (p / "checkpoint.pt").exists())


def test_all_fixtures_are_present():
    assert set(RUNS) == {"beta-vae-b", "chyvae", "factor-vae", "ugvae", "vae-svi", "vae-torch"}


@pytest.mark.parametrize("name", RUNS)
def test_old_run_loads_evaluates_and_resumes(name, tmp_path):
    run_dir = tmp_path / name
    shutil.copytree(FIXTURES / name, run_dir)
    old_config = json.loads((run_dir / "config.json").read_text())
    assert "version" not in old_config  # written by 0.1.0
    state = ckpt.load(run_dir / "checkpoint.pt")
    run = pyro_vaes.load(run_dir)
    for key, value in state["model"].items():  # the checkpoint's weights, under the same names
        assert torch.equal(run.model.state_dict()[key], value)
    res = run.evaluate(num_particles=4, write=False)
    assert res["n"] == 32 and res["elbo"] <= res["log_likelihood"] + 5.0
    resumed = pyro_vaes.fit(resume=run_dir, steps=6, progress=False, figures=False)
    assert [r["step"] for r in resumed.history] == [6]
    rows = [json.loads(r)["step"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows == [2, 4, 6]
    after = ckpt.load(run_dir / "checkpoint.pt")
    assert after["step"] == 6
    assert any(not torch.equal(after["model"][k], v) for k, v in state["model"].items())
    new_config = json.loads((run_dir / "config.json").read_text())
    assert new_config["version"] == 2 and new_config["steps"] == 6
    if name == "ugvae":  # z_dim was renamed latent_dim; the old folder is migrated, not refused
        assert new_config["model_args"]["latent_dim"] == old_config["model_args"]["z_dim"] == 2
    if name == "factor-vae":  # the discriminator of the old single-auxiliary checkpoint keeps training
        assert set(after["auxiliaries"]) == {"discriminator"}
        assert not torch.equal(
            after["auxiliaries"]["discriminator"]["net.0.weight"], state["auxiliary"]["net.0.weight"]
        )
    # a second resume from the same old folder gives the same numbers (exact, deterministic resume)
    again = tmp_path / "again"
    shutil.copytree(FIXTURES / name, again)
    pyro_vaes.fit(resume=again, steps=6, progress=False, figures=False)
    for k, v in ckpt.load(again / "checkpoint.pt")["model"].items():
        assert torch.equal(after["model"][k], v)


def test_changed_defaults_keep_old_runs_meaning_what_they_meant():
    """GMVAE and ML-VAE now default to the authors' baseline variance 0.5 (their losses sum squared errors);
    a config written by 0.1.0 that did not set obs_scale keeps 0.1.0's variance 0.2, and z_dim/s_dim become
    latent_dim. A new config gets the new default."""
    import math

    from pyro_vaes.config import FitConfig
    from pyro_vaes.engine.build import migrate
    from pyro_vaes.registry import MODELS

    old = json.loads((FIXTURES / "ugvae" / "config.json").read_text())
    for model, size in (("mlvae", "s_dim"), ("gmvae", "z_dim")):
        cfg = migrate(FitConfig.from_dict({**old, "model": model, "model_args": {size: 2}}))
        assert cfg.version == 2 and cfg.model_args == {"latent_dim": 2, "obs_scale": math.sqrt(0.2)}
        assert MODELS.get(model)((4,)).obs_scale == pytest.approx(math.sqrt(0.5))
    assert MODELS.get("ugvae")((4,)).obs_scale == pytest.approx(math.sqrt(0.2))
