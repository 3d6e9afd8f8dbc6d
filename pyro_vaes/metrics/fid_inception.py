"""The FID Inception network: the features every published FID is computed on, from the user's weights file.

Published FIDs (Heusel et al., 2017; dpVAE's Table 1 among them) use the pool features of TensorFlow's
``inception-2015-12-05`` graph. pytorch-fid ports it as torchvision's Inception-v3 with 1,008 classes, no
auxiliary head, and four kinds of patched blocks (:class:`FIDInceptionA`, :class:`FIDInceptionC`,
:class:`FIDInceptionE` with average or max pooling): TensorFlow's average pooling leaves the padded zeros out of
its mean, and the last block pools by max. Its weights, ``pt_inception-2015-12-05-6726825d.pth``, cannot be
downloaded here and no pip package ships them, so the user gives the file (``--inception-weights PATH``); it is
checked by its SHA-256 (the ``6726825d`` in its name is the hash's prefix, which is what ``torch.hub`` checks) and
loaded weights-only. :func:`fid_inception_features` then computes pytorch-fid's 2048 pool features: images in
[0, 1] (grey images repeated to three channels, as pytorch-fid's RGB loader does), resized bilinearly to 299×299
(``align_corners=False``), scaled to [-1, 1]. ``tests/test_fid_inception.py`` checks the features equal those of
the ``pytorch-fid`` package's own module on the same (random) weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import inception_v3
from torchvision.models.inception import InceptionA, InceptionC, InceptionE

from pyro_vaes.data.base import file_digest

#: pytorch-fid's weights file and the prefix of its SHA-256 that its name carries
WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
SHA256_PREFIX = "6726825d"


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's 3×3 average pool: the padded zeros are not counted in the mean."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(InceptionA):
    """torchvision's InceptionA with TensorFlow's average pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class FIDInceptionC(InceptionC):
    """torchvision's InceptionC with TensorFlow's average pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_3(self.branch7x7dbl_2(self.branch7x7dbl_1(x)))
        b7d = self.branch7x7dbl_5(self.branch7x7dbl_4(b7d))
        return torch.cat([self.branch1x1(x), b7, b7d, self.branch_pool(_tf_avg_pool(x))], 1)


class FIDInceptionE(InceptionE):
    """torchvision's InceptionE with TensorFlow's average pool (``Mixed_7b``) or a 3×3 max pool (``Mixed_7c``)."""

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, b3d, self.branch_pool(pooled)], 1)


def fid_inception_v3() -> nn.Module:
    """The FID Inception network, randomly initialised (its state_dict keys are those of the weights file)."""
    net = inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280, max_pool=False)
    net.Mixed_7c = FIDInceptionE(2048, max_pool=True)
    return net


class FIDInceptionFeatures(nn.Module):
    """pytorch-fid's ``InceptionV3`` (output block 3): images in [0, 1] -> (N, 2048) pool features."""

    def __init__(self, net: nn.Module):
        super().__init__()
        n = net
        self.layers = nn.Sequential(
            n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, nn.MaxPool2d(3, 2),
            n.Conv2d_3b_1x1, n.Conv2d_4a_3x3, nn.MaxPool2d(3, 2),
            n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e,
            n.Mixed_7a, n.Mixed_7b, n.Mixed_7c, nn.AdaptiveAvgPool2d(1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"FID Inception features need images (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers(2 * x - 1).flatten(1)


def check_weights_file(path: Path, check_hash: bool = True) -> str:
    """The SHA-256 of ``path`` after checking that it exists and (``check_hash``) that it is pytorch-fid's weights
    file; one line naming the file and what to do otherwise. Cheap enough to run before anything is written."""
    if not path.is_file():
        raise FileNotFoundError(
            f"Inception weights file {path} does not exist; give pytorch-fid's {WEIGHTS_NAME} "
            "(it cannot be downloaded here), or leave --inception-weights out to use the classifier features"
        )
    digest = file_digest(path, "sha256")
    if check_hash and not digest.startswith(SHA256_PREFIX):
        raise ValueError(
            f"{path} is not pytorch-fid's {WEIGHTS_NAME}: its SHA-256 starts with {digest[:8]}, expected "
            f"{SHA256_PREFIX}; give that file, or leave --inception-weights out to use the classifier features"
        )
    return digest


def load_fid_inception(weights: str | Path, check_hash: bool = True) -> tuple[FIDInceptionFeatures, dict]:
    """The feature network with pytorch-fid's weights from ``weights``, in eval mode, and its record (file, SHA-256).

    A missing file, a file whose SHA-256 does not start with ``6726825d`` (``check_hash=False`` skips that, for
    tests on random weights) or a state_dict of another network is refused with one line."""
    path = Path(weights).expanduser()
    digest = check_weights_file(path, check_hash)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle that is not plain tensors, or not a torch file at all
        raise ValueError(
            f"{path} cannot be read as a weights file ({type(err).__name__}); give {WEIGHTS_NAME}"
        ) from None
    net = fid_inception_v3()
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError):
        raise ValueError(f"{path} holds the weights of another network; give pytorch-fid's {WEIGHTS_NAME}") from None
    record = {
        "network": "FID Inception (pytorch-fid, TF inception-2015-12-05)",
        "weights": str(path),
        "weights_sha256": digest,
        "features": "2048 pool features",
    }
    return FIDInceptionFeatures(net).eval(), record
