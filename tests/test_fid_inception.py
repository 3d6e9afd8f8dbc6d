"""The FID Inception features equal pytorch-fid's on the same weights, and a wrong weights file gets one line.

pytorch-fid's module would download the real weights (not allowed here, and not needed): the test gives both
networks the same *random* weights — pytorch-fid's ``load_state_dict_from_url`` is replaced by a function that
returns them — so what is compared is the architecture, the patched blocks and the resize/normalise conventions.
"""

from __future__ import annotations

import pytest
import torch

from pyro_vaes.metrics.fid_inception import fid_inception_v3, load_fid_inception

pytorch_fid_inception = pytest.importorskip("pytorch_fid.inception", reason="pytorch-fid is a test dependency")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    net = fid_inception_v3()
    state = {}
    for k, v in net.state_dict().items():  # random weights of a scale that keeps activations finite and varied
        state[k] = torch.randn_like(v) * 0.1 if v.is_floating_point() and "running_var" not in k else v
        if "running_var" in k:
            state[k] = torch.rand_like(v) + 0.5
    path = tmp_path_factory.mktemp("w") / "random-inception.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 64)])
def test_features_equal_pytorch_fid(weights, monkeypatch, channels, size):
    path, state = weights
    monkeypatch.setattr(pytorch_fid_inception, "load_state_dict_from_url", lambda *a, **k: state)
    theirs = pytorch_fid_inception.InceptionV3([3]).eval()
    ours, record = load_fid_inception(path, check_hash=False)
    x = torch.rand(3, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = theirs(x.repeat(1, 3 // channels, 1, 1))[0].flatten(1)
        got = ours(x)
    assert got.shape == (3, 2048) and expected.std() > 0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert record["weights_sha256"] and "pytorch-fid" in record["network"]


def test_a_wrong_file_gets_one_line(weights, tmp_path):
    path, _ = weights
    with pytest.raises(
        ValueError, match=r"^\S+ is not pytorch-fid's pt_inception-2015-12-05-6726825d.pth: its SHA-256"
    ):
        load_fid_inception(path)  # random weights: the hash does not match
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError, match="holds the weights of another network"):
        load_fid_inception(other, check_hash=False)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read as a weights file"):
        load_fid_inception(junk, check_hash=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fid_inception(tmp_path / "absent.pth")
