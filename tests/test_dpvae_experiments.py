"""The dpVAE experiments at their tiny scale: every (regulariser, prior) row, the tables and the figures."""

from __future__ import annotations

import json
import math

import pytest

from pyro_vaes.registry import EXPERIMENTS


def test_moons_tiny_writes_both_priors_table_and_figures(tmp_path):
    table = EXPERIMENTS.get("dpvae-moons")(
        out=tmp_path, scale="tiny", overrides={"steps": 4, "regularizers": ["beta-tc-vae"]}
    )
    assert [(r["regularizer"], r["prior"]) for r in table["rows"]] == [
        ("beta-tc-vae", "normal"),
        ("beta-tc-vae", "flow"),
    ]
    assert all(math.isfinite(r["skl"]) and math.isfinite(r["log_likelihood"]) for r in table["rows"])
    assert (tmp_path / "moons-beta-tc-vae.png").exists() and (tmp_path / "runs" / "beta-tc-vae-flow-seed0").is_dir()
    assert json.loads((tmp_path / "results.json").read_text())["command"].startswith("`pyro-vaes reproduce dpvae-moons")
    assert "| β-TC-dpVAE | flow |" in (tmp_path / "results.md").read_text()
    with pytest.raises(ValueError, match="unknown regularizer"):
        EXPERIMENTS.get("dpvae-moons")(out=tmp_path / "x", scale="tiny", overrides={"regularizers": ["beta-vae"]})


@pytest.mark.slow
@pytest.mark.data
def test_mnist_tiny_table_beside_the_paper(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("PYRO_VAES_CACHE", str(tmp_path / "cache"))
    table = EXPERIMENTS.get("dpvae-mnist")(
        out=tmp_path, scale="tiny", data_root=str(shared_data), overrides={"regularizers": ["info-vae"]}
    )
    assert {r["prior"] for r in table["rows"]} == {"normal", "flow"}
    assert table["feature_network"]["cache_key"].startswith("mnist-")
    text = (tmp_path / "results.md").read_text()
    assert "| Info-dpVAE |" in text and "110.1" in text  # the paper's number beside ours
    for name in ("leakage.png", "interpolation-info-vae.png", "latents-info-vae.png"):
        assert (tmp_path / name).exists()
