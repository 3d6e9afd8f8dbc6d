"""``reproduce --inception-weights PATH``: refused in one line, before anything is written, for an experiment without
FIDs, a missing file or a file that is not pytorch-fid's; given, dpvae-mnist's FIDs use that network and its results
say so (a stand-in network here: the real weights cannot be downloaded, and the architecture is checked against
pytorch-fid in ``test_fid_inception.py``)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SHARED_DATA

from pyro_vaes.cli import main
from pyro_vaes.data.real import MissingDataError
from pyro_vaes.metrics.generative import FeatureNetwork
from pyro_vaes.registry import EXPERIMENTS


@pytest.mark.parametrize(
    "name,weights,message",
    [
        (
            "dpvae-moons",
            "absent.pth",
            "dpvae-moons computes no FID; leave it out (experiments that take it: dpvae-mnist)",
        ),
        ("dpvae-mnist", "absent.pth", "absent.pth does not exist; give pytorch-fid's pt_inception-2015-12-05"),
        (
            "dpvae-mnist",
            "wrong.pth",
            "wrong.pth is not pytorch-fid's pt_inception-2015-12-05-6726825d.pth: its SHA-256",
        ),
    ],
)
def test_refused_before_anything_is_written(tmp_path, capsys, name, weights, message):
    (tmp_path / "wrong.pth").write_bytes(b"some other file")
    out = tmp_path / "out"
    code = main(
        ["reproduce", name, "--scale", "tiny", "--inception-weights", str(tmp_path / weights), "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_dpvae_mnist_uses_the_given_network(tmp_path, monkeypatch):
    seen = []

    def stand_in(weights: str, device: str = "cpu") -> FeatureNetwork:
        seen.append(weights)
        torch.manual_seed(0)
        proj = torch.randn(784, 16)
        return FeatureNetwork(lambda x: x.flatten(1) @ proj, {"network": "stand-in", "weights_sha256": "6726825dabc"})

    monkeypatch.setattr("pyro_vaes.metrics.generative.inception_features", stand_in)
    run, out = EXPERIMENTS.get("dpvae-mnist"), tmp_path / "out"
    try:
        table = run(out=out, scale="tiny", seed=0, data_root=str(SHARED_DATA), overrides={"inception_weights": "w.pth"})
    except MissingDataError as err:
        pytest.skip(f"dpvae-mnist needs MNIST, which {SHARED_DATA} lacks (set PYRO_VAES_DATA): {err}")
    assert seen == ["w.pth"], "the classifier features were used although weights were given"
    assert table["feature_network"]["network"] == "stand-in"
    assert (
        "FID Inception network's pool features (pytorch-fid's weights, SHA-256 6726825d"
        in (out / "results.md").read_text()
    )
    assert json.loads((out / "results.json").read_text())["settings"]["inception_weights"] == "w.pth"
