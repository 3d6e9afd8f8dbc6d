"""Procedural datasets generated from their published specifications, with ground-truth factors.

* ``shapes2d``: a re-render of dSprites (Matthey et al. 2017), the "2DShapes" of CHyVAE.
* ``ellipses``: CHyVAE's CorrelatedEllipses (``clear-nus/correlated-ellipses/synthetic.py``).
* ``moons`` and ``swissroll``: scikit-learn toy sets with a binary label (CSVAE's toy experiment).

Every dataset with factors exposes them through :class:`pyro_vaes.data.base.FactorSource`; the
factor classes of each example are also kept in ``ArraySplit.factors``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pyro_vaes.data.base import ArraySplit, FactorSource, VAEData
from pyro_vaes.registry import DATASETS


def _check_sizes(n_train: int, n_test: int, limit: int | None = None) -> None:
    for k, v in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{k} must be a non-negative integer, got {v!r}")
    if n_train == 0:
        raise ValueError("n_train must be at least 1")
    if limit is not None and n_train + n_test > limit:
        raise ValueError(f"n_train + n_test = {n_train + n_test} exceeds the {limit} distinct combinations")


# ---------------------------------------------------------------------------------------------------
# dSprites re-render
# ---------------------------------------------------------------------------------------------------

_MASK_RES = 512  # resolution of the canonical shape masks over [-1, 1]^2


def _rendered(name: str, src: FactorSource, f: torch.Tensor, n_train: int, **info: object) -> VAEData:
    """The dataset of the images ``src`` renders for factors ``f``, the first ``n_train`` for training, each split
    keeping its factor classes (no labels); ``info`` after the factor names."""
    x = src.render(f)
    return VAEData(
        name,
        ArraySplit(x[:n_train], None, f[:n_train]),
        ArraySplit(x[n_train:], None, f[n_train:]),
        factors=src,
        info={"factor_names": list(src.factor_names), **info},
    )


def _heart_polygon(n: int = 400) -> np.ndarray:
    """The classic parametric heart (x = 16 sin^3 t, y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t),
    point down, centred on its bounding box and scaled so its larger half-extent is 1.
    Returned in image orientation (second coordinate grows downwards)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    x = x - (x.max() + x.min()) / 2
    y = y - (y.max() + y.min()) / 2
    s = max(x.max(), y.max())
    return np.stack([x / s, -y / s], 1)


def _canonical_masks(res: int = _MASK_RES) -> np.ndarray:
    """(3, res, res) bool masks of square, ellipse and heart on [-1, 1]^2 (row = v, col = u)."""
    from PIL import Image, ImageDraw

    c = (np.arange(res) + 0.5) / res * 2 - 1
    v, u = np.meshgrid(c, c, indexing="ij")
    square = (np.abs(u) <= 1) & (np.abs(v) <= 1)
    ellipse = (u / 1.0) ** 2 + (v / 0.5) ** 2 <= 1  # dSprites' ellipse is an oval, 2:1 axes
    img = Image.new("L", (res, res), 0)
    pts = (_heart_polygon() + 1) / 2 * res
    ImageDraw.Draw(img).polygon([tuple(p) for p in pts], fill=1)
    heart = np.asarray(img, dtype=bool)
    return np.stack([square, ellipse, heart])


class DSpritesFactors(FactorSource):
    """dSprites' factor grid: shape (square, ellipse, heart), 6 scales linspace(0.5, 1), 40 orientations
    linspace(0, 2pi) (both endpoints, as dSprites), 32 posX and 32 posY linspace(0, 1).

    The colour factor (one value) is dropped, as CHyVAE does; the flat :meth:`index` equals the
    dSprites archive's row index (mixed radix over color, shape, scale, orientation, posX, posY with
    color = 0). Factors are drawn uniformly over the 737,280 combinations.

    Geometry of this re-render (64x64 canvas, pixel (r, c) sampled at its centre):
    centre = 64 * (0.22 + 0.56 * pos) pixels (posX -> column, posY -> row, growing downwards);
    half-size at scale s is ``9 * s`` pixels (square side 18 px at scale 1); an orientation rotates
    the shape counter-clockwise as displayed.
    """

    factor_names = ("shape", "scale", "orientation", "posX", "posY")
    factor_sizes = (3, 6, 40, 32, 32)
    shape_names = ("square", "ellipse", "heart")
    size = 64
    half_size = 9.0
    margin = 0.22

    def __init__(self) -> None:
        self._masks = torch.from_numpy(_canonical_masks())
        self.values = {
            "shape": np.arange(1, 4, dtype=np.float64),  # dSprites' latents_values for shape: 1, 2, 3
            "scale": np.linspace(0.5, 1, 6),
            "orientation": np.linspace(0, 2 * np.pi, 40),
            "posX": np.linspace(0, 1, 32),
            "posY": np.linspace(0, 1, 32),
        }

    def factor_values(self, factors: torch.Tensor) -> torch.Tensor:
        """The dSprites ``latents_values`` (n, 5) of factor classes (n, 5)."""
        factors = torch.as_tensor(factors, dtype=torch.long)
        self.check_factors(factors)
        cols = [torch.from_numpy(self.values[k])[factors[:, i]] for i, k in enumerate(self.factor_names)]
        return torch.stack(cols, 1)

    def sample_factors(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.stack([torch.randint(s, (n,), generator=generator) for s in self.factor_sizes], 1)

    def render(self, factors: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """Binary images (n, 1, 64, 64) float for factor classes (n, 5); a pure function of the factors."""
        factors = torch.as_tensor(factors, dtype=torch.long)
        self.check_factors(factors)
        vals = self.factor_values(factors).float()
        out = torch.empty(len(factors), 1, self.size, self.size)
        grid = torch.arange(self.size, dtype=torch.float32) + 0.5
        res = self._masks.shape[-1]
        flat_masks = self._masks.reshape(-1)
        for a in range(0, len(factors), chunk):
            v = vals[a : a + chunk]
            shape = factors[a : a + chunk, 0]
            scale, theta = v[:, 1], v[:, 2]
            cx = self.size * (self.margin + (1 - 2 * self.margin) * v[:, 3])
            cy = self.size * (self.margin + (1 - 2 * self.margin) * v[:, 4])
            dx = grid.view(1, 1, -1) - cx.view(-1, 1, 1)  # columns
            dy = grid.view(1, -1, 1) - cy.view(-1, 1, 1)  # rows
            cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
            r = (self.half_size * scale).view(-1, 1, 1)
            # inverse of a counter-clockwise (as displayed, rows down) rotation by theta
            u = (dx * cos - dy * sin) / r
            w = (dx * sin + dy * cos) / r
            iu = torch.floor((u + 1) / 2 * res).long()
            iw = torch.floor((w + 1) / 2 * res).long()
            inside = (iu >= 0) & (iu < res) & (iw >= 0) & (iw < res)
            lin = iw.clamp_(0, res - 1).mul_(res).add_(iu.clamp_(0, res - 1)).add_(shape.view(-1, 1, 1) * (res * res))
            hit = flat_masks[lin] & inside
            out[a : a + chunk, 0] = hit.float()
        return out


@DATASETS.register("shapes2d", kind="procedural", shape="1x64x64", factors="shape,scale,orientation,posX,posY")
def shapes2d(root: str | None = None, seed: int = 0, n_train: int = 20000, n_test: int = 2000) -> VAEData:
    """dSprites (CHyVAE's 2DShapes) re-rendered on demand: 3 shapes x 6 scales x 40 orientations x 32 x 32.

    A re-render, not the DeepMind archive (which is not available offline). Same factor grid, same
    factor order and same flat index as ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``; what
    differs: the pixel outlines (our square side is 18 px at scale 1, the ellipse has 2:1 axes, the
    heart is the parametric curve x = 16 sin^3 t, y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t), the
    position range (centres between 22% and 78% of the canvas, so no shape is ever clipped), the
    orientation sign convention, and pixel sampling (one sample at each pixel centre, no antialiasing:
    images are exactly binary). As in dSprites, orientation 0 and 2pi (classes 0 and 39) are the same
    image, and the square (4-fold) and ellipse (2-fold) symmetries repeat images.

    ``n_train`` / ``n_test`` distinct combinations are drawn without replacement (seeded); train and
    test are disjoint. Factor classes are in ``split.factors``; ``y`` is None.
    """
    src = DSpritesFactors()
    _check_sizes(n_train, n_test, src.num_combinations)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(src.num_combinations, generator=g)[: n_train + n_test]
    return _rendered("shapes2d", src, src.factors_from_index(idx), n_train, re_render=True)


# ---------------------------------------------------------------------------------------------------
# CHyVAE CorrelatedEllipses
# ---------------------------------------------------------------------------------------------------


class CorrelatedEllipsesFactors(FactorSource):
    """CHyVAE's CorrelatedEllipses (``synthetic.py`` of clear-nus/correlated-ellipses), re-implemented.

    Sampling: (x, y, scale, rot) ~ N(0, C), C = [[1,.5,0,0],[.5,1,0,0],[0,0,1,.5],[0,0,.5,1]]; each value
    clipped to [-1, 1] and mapped v -> (v + 1)/2; x, y floor-binned (``np.digitize(v, grid) - 1``) on
    linspace(0, 1, 32); scale mapped s/2 + 1/2 and floor-binned on linspace(0.5, 1, 6); rot*360
    floor-binned on linspace(0, 360, 40). Factor classes are those bin indices.

    Drawing: a filled white ellipse on a 256x256 canvas, centre (round(156 x + 50), round(156 y + 50))
    (x -> column, y -> row), semi-axes (round(50 s), round(25 s)), rotated by the binned angle in
    degrees (OpenCV's convention), then area-resized to 64x64 (exact 4x4 block means), rounded to uint8
    and divided by 255. ``binarize="threshold"`` renders x > 0.5 instead (binary images for a Bernoulli
    likelihood), so every image drawn from the source — training data and the metrics' vote batches alike — gets
    the same preprocessing.
    """

    factor_names = ("x", "y", "scale", "orientation")
    factor_sizes = (32, 32, 6, 40)
    cov = np.array([[1, 0.5, 0, 0], [0.5, 1, 0, 0], [0, 0, 1, 0.5], [0, 0, 0.5, 1]], dtype=np.float64)

    def __init__(self, binarize: str = "none") -> None:
        if binarize not in ("none", "threshold"):
            raise ValueError(f"binarize must be 'none' or 'threshold', got {binarize!r}")
        self.binarize = binarize
        self.grids = {
            "x": np.linspace(0, 1, 32),
            "y": np.linspace(0, 1, 32),
            "scale": np.linspace(0.5, 1, 6),
            "orientation": np.linspace(0, 360, 40),
        }
        self._patches: dict[tuple[int, int, int, int], np.ndarray] = {}

    # --- sampling --------------------------------------------------------------------------------
    def sample_latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The continuous latents in [0, 1]^4 after clipping and mapping (before binning)."""
        chol = torch.linalg.cholesky(torch.from_numpy(self.cov))
        z = torch.randn(n, 4, generator=generator, dtype=torch.float64) @ chol.T
        return 0.5 * (z.clamp(-1, 1) + 1)

    def bin_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous latents in [0, 1]^4 -> factor classes, with CHyVAE's digitize-floor binning."""
        z = np.asarray(z, dtype=np.float64)
        cols = [
            np.digitize(z[:, 0], self.grids["x"]) - 1,
            np.digitize(z[:, 1], self.grids["y"]) - 1,
            np.digitize(z[:, 2] / 2.0 + 0.5, self.grids["scale"]) - 1,
            np.digitize(z[:, 3] * 360, self.grids["orientation"]) - 1,
        ]
        return torch.from_numpy(np.stack(cols, 1).astype(np.int64))

    def sample_factors(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.bin_latents(self.sample_latents(n, generator))

    def sample_fixed(self, n: int, factor: int, generator: torch.Generator, value: int | None = None):
        """CHyVAE's ``conditional_sample``: draw n correlated latents, then overwrite factor ``factor``
        with the first row's value; its correlated partner keeps its marginal draw."""
        return super().sample_fixed(n, factor, generator, value)

    # --- drawing ---------------------------------------------------------------------------------
    def factor_values(self, factors: torch.Tensor) -> torch.Tensor:
        """Binned values (n, 4): x, y in [0, 1], scale in [0.5, 1], orientation in degrees."""
        factors = torch.as_tensor(factors, dtype=torch.long)
        self.check_factors(factors)
        return torch.stack([torch.from_numpy(self.grids[k])[factors[:, i]] for i, k in enumerate(self.factor_names)], 1)

    def _patch(self, s: int, r: int, px: int, py: int) -> np.ndarray:
        """Block-averaged 27x27 patch of one ellipse whose centre lies at (px, py) in a 108x108 canvas."""
        key = (s, r, px, py)
        if key not in self._patches:
            scale = self.grids["scale"][s]
            a, b = int(round(scale * 50)), int(round(scale * 25))
            ang = math.radians(self.grids["orientation"][r])
            c = np.arange(108, dtype=np.float64)
            dy, dx = np.meshgrid(c - py, c - px, indexing="ij")
            u = dx * math.cos(ang) + dy * math.sin(ang)
            v = -dx * math.sin(ang) + dy * math.cos(ang)
            canvas = ((u / a) ** 2 + (v / b) ** 2 <= 1.0).astype(np.float64) * 255.0
            block = canvas.reshape(27, 4, 27, 4).mean(axis=(1, 3))
            self._patches[key] = np.floor(block + 0.5) / 255.0  # cv2 INTER_AREA on uint8, then /255
        return self._patches[key]

    def render(self, factors: torch.Tensor) -> torch.Tensor:
        """Grey images (n, 1, 64, 64) in [0, 1] for factor classes (n, 4)."""
        vals = self.factor_values(factors).numpy()
        f = torch.as_tensor(factors, dtype=torch.long).numpy()
        out = np.zeros((len(f), 66, 66), dtype=np.float32)  # one block of padding each side
        for i in range(len(f)):
            cx = int(round(vals[i, 0] * 156 + 50))
            cy = int(round(vals[i, 1] * 156 + 50))
            ox, oy = ((cx - 52) // 4) * 4, ((cy - 52) // 4) * 4  # block-aligned patch origin
            patch = self._patch(int(f[i, 2]), int(f[i, 3]), cx - ox, cy - oy)
            bx, by = ox // 4 + 1, oy // 4 + 1
            out[i, by : by + 27, bx : bx + 27] = np.maximum(out[i, by : by + 27, bx : bx + 27], patch)
        images = torch.from_numpy(out[:, 1:65, 1:65].copy()).unsqueeze(1)
        return (images > 0.5).float() if self.binarize == "threshold" else images


@DATASETS.register("ellipses", kind="procedural", shape="1x64x64", factors="x,y,scale,orientation")
def ellipses(
    root: str | None = None, seed: int = 0, n_train: int = 20000, n_test: int = 2000, binarize: str = "none"
) -> VAEData:
    """CHyVAE's CorrelatedEllipses: corr(x, y) = corr(scale, rot) = 0.5 before clipping, 64x64 grey.

    Re-implemented with numpy (no OpenCV): the ellipse is filled by the exact implicit inequality at
    each canvas pixel instead of OpenCV's polygon fill, so boundary pixels may differ by one on the
    256x256 canvas (a grey level of at most 1/16 per boundary block after resizing). The archive
    ``correlated_ellipses.npz`` (200,000 samples) is regenerated, not read. Factor classes are in
    ``split.factors``; ``y`` is None. CHyVAE's authors apply a Bernoulli cross-entropy to these grey images (not a
    normalised likelihood); ``binarize="threshold"`` gives binary images (x > 0.5) from the data and from the
    factor source alike, for a proper Bernoulli likelihood.
    """
    _check_sizes(n_train, n_test)
    src = CorrelatedEllipsesFactors(binarize)
    g = torch.Generator().manual_seed(seed)
    return _rendered(
        "ellipses", src, src.sample_factors(n_train + n_test, g), n_train, correlation=0.5, binarize=binarize
    )


# ---------------------------------------------------------------------------------------------------
# scikit-learn toy sets
# ---------------------------------------------------------------------------------------------------


@DATASETS.register("moons", kind="procedural", shape="2", factors="")
def moons(
    root: str | None = None, seed: int = 0, n_train: int = 10000, n_test: int = 1000, noise: float = 0.1
) -> VAEData:
    """Two interleaved half circles (``sklearn.datasets.make_moons``), flat 2-D, y = which moon (class 0 or 1)."""
    from sklearn.datasets import make_moons

    _check_sizes(n_train, n_test)
    x, y = make_moons(n_train + n_test, noise=noise, random_state=seed)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
    return VAEData(
        "moons",
        ArraySplit(x[:n_train], y[:n_train]),
        ArraySplit(x[n_train:], y[n_train:]),
        label_names=["moon 0", "moon 1"],
        info={"noise": noise},
    )


_SWISS_RULES = {
    "x0>=10": lambda x: x[:, 0] >= 10,  # alexlyzhov/latent-subspaces
    "x1<10": lambda x: x[:, 1] < 10,  # qq456cvb/CSVAE
}


@DATASETS.register("swissroll", kind="procedural", shape="3", factors="")
def swissroll(
    root: str | None = None,
    seed: int = 0,
    n_train: int = 10000,
    n_test: int = 1000,
    noise: float = 0.0,
    label: str = "x0>=10",
) -> VAEData:
    """CSVAE's toy data: the 3-D Swiss roll (``sklearn.datasets.make_swiss_roll``), y (N, 1) one binary attribute.

    The paper does not state the label rule; the two public re-implementations differ: ``label="x0>=10"``
    (alexlyzhov/latent-subspaces, default) or ``label="x1<10"`` (qq456cvb/CSVAE). Both sample 10,000
    points; the roll parameter t is kept in ``info["train_t"]`` / ``info["test_t"]``.
    """
    from sklearn.datasets import make_swiss_roll

    if label not in _SWISS_RULES:
        raise ValueError(f"unknown swissroll label rule {label!r}; valid: {', '.join(_SWISS_RULES)}")
    _check_sizes(n_train, n_test)
    x, t = make_swiss_roll(n_train + n_test, noise=noise, random_state=seed)
    y = _SWISS_RULES[label](x).astype(np.int64)[:, None]
    x, y, t = torch.tensor(x, dtype=torch.float32), torch.from_numpy(y), torch.tensor(t, dtype=torch.float32)
    return VAEData(
        "swissroll",
        ArraySplit(x[:n_train], y[:n_train]),
        ArraySplit(x[n_train:], y[n_train:]),
        label_names=[label],
        info={"label_rule": label, "train_t": t[:n_train], "test_t": t[n_train:], "noise": noise},
    )
