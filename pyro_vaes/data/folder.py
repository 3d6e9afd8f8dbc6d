"""Bring your own data: ``folder`` (a folder of images, optional CSV of labels) and ``arrays`` (one
.npy / .npz / .pt file of observations and optional labels). Also the image-loading helpers that the
real datasets share."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from pyro_vaes.data.base import ArraySplit, VAEData, data_root
from pyro_vaes.registry import DATASETS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".gif", ".webp")


def load_image(
    path: Path,
    size: int,
    channels: int,
    crop: tuple[int, int] | None = None,
    full_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """One image as uint8 (channels, size, size): optional centre crop ``crop`` = (w, h) in pixels of the
    original image, then a bilinear (antialiased) resize to size x size. For JPEGs, when ``full_size``
    is known, PIL's ``draft`` decodes at a reduced DCT scale first (much faster) as long as the crop
    still has at least ``size`` pixels. A file that cannot be decoded is refused with one line naming it."""
    try:
        return _load_image(path, size, channels, crop)
    except (OSError, ValueError, SyntaxError) as err:  # PIL: UnidentifiedImageError, truncated data, bad headers
        raise ValueError(
            f"image {path} cannot be read ({type(err).__name__}: {' '.join(str(err).split())}); it is "
            "corrupt or truncated: replace it or remove it from the dataset"
        ) from None


def _load_image(path: Path, size: int, channels: int, crop: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        if crop is not None and im.format == "JPEG":
            cw, ch = crop
            factor = min(cw, ch) // size
            if factor >= 2:
                im.draft("RGB" if channels == 3 else "L", (-(-w // factor), -(-h // factor)))
        sx, sy = im.size[0] / w, im.size[1] / h
        im = im.convert("RGB" if channels == 3 else "L")
        if crop is None:
            cw, ch = w, h
        else:
            cw, ch = crop
        left, top = (w - cw) / 2, (h - ch) / 2
        box = (left * sx, top * sy, (left + cw) * sx, (top + ch) * sy)
        im = im.resize((size, size), Image.BILINEAR, box=box)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_images(
    paths: Sequence[Path], size: int, channels: int, crop: tuple[int, int] | None = None, square: bool = False
) -> torch.Tensor:
    """Load many images in threads (PIL releases the GIL while decoding) -> float (N, C, size, size) in [0, 1].

    ``square``: centre-crop each image to its shorter side before resizing (no aspect distortion).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if not isinstance(size, int) or size < 4:
        raise ValueError(f"size must be an integer >= 4, got {size!r}")

    def one(p: Path) -> np.ndarray:
        c = crop
        if square and c is None:
            from PIL import Image

            try:
                with Image.open(p) as im:
                    m = min(im.size)
            except (OSError, ValueError, SyntaxError) as err:
                raise ValueError(
                    f"image {p} cannot be read ({type(err).__name__}); it is corrupt or truncated"
                ) from None
            c = (m, m)
        return load_image(p, size, channels, c)

    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(one, paths, chunksize=64))
    if not arrays:
        return torch.zeros(0, channels, size, size)
    return torch.from_numpy(np.stack(arrays)).float().div_(255.0)


def seeded_split(n: int, n_train: int | None, n_test: int | None, seed: int, test_fraction: float = 0.1):
    """Indices (train, test) of a deterministic random split of ``n`` items; defaults: 10% test, rest train."""
    for k, v in (("n_train", n_train), ("n_test", n_test)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise ValueError(f"{k} must be a non-negative integer or None, got {v!r}")
    if n_test is None:
        n_test = int(round(test_fraction * n)) if n_train is None else min(int(round(test_fraction * n)), n - n_train)
    if n_train is None:
        n_train = n - n_test
    if n_train < 1 or n_train + n_test > n:
        raise ValueError(f"cannot split {n} items into n_train={n_train} and n_test={n_test}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:n_train], perm[n_train : n_train + n_test]


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _read_labels_csv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or len(rows[0]) < 2:
        raise ValueError(f"{path}: labels CSV needs a header 'filename,<label1>,...' and at least one row")
    header, body = rows[0], [r for r in rows[1:] if r]
    names, values = [], []
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise ValueError(f"{path}, line {i}: {len(r)} columns, header has {len(header)}")
        names.append(r[0].strip())
        try:
            values.append([int(float(v)) for v in r[1:]])
        except ValueError:
            raise ValueError(f"{path}, line {i}: labels must be integers, got {r[1:]}") from None
    return names, header[1:], np.array(values, dtype=np.int64)


def _data_path(
    dataset: str, path: str | None, what: str, root: str | None, found: Callable[[Path], bool]
) -> tuple[Path, Path | None]:
    """The ``path`` data argument of ``dataset`` (``what`` it names), as given or, when relative and not ``found``
    there, under the data root; and the data root (None when unset)."""
    if path is None:
        raise ValueError(f"dataset {dataset!r} needs --data-arg path={what}")
    p = Path(path).expanduser()
    base = data_root(root)
    if not found(p) and not p.is_absolute() and base is not None and found(base / p):
        p = base / p
    return p, base


@DATASETS.register("folder", kind="real", shape="Cx<size>x<size>", factors="")
def folder(
    root: str | None = None,
    seed: int = 0,
    path: str | None = None,
    labels_csv: str | None = None,
    size: int = 64,
    channels: int = 3,
    n_train: int | None = None,
    n_test: int | None = None,
) -> VAEData:
    """Any folder of images (searched recursively), centre-cropped to a square and resized to ``size``.

    Labels: ``labels_csv`` (header ``filename,<label columns...>``, integer values; filenames relative
    to ``path``; only listed images are used) -> y (N,) for one column or (N, k); else, when every image
    sits in a first-level sub-folder, the sub-folder is the class (ImageFolder layout); else no labels.
    A relative ``path`` is resolved against the data root when it is not found as given.
    """
    p, base = _data_path("folder", path, "<folder of images>", root, Path.is_dir)
    if not p.is_dir():
        raise FileNotFoundError(
            f"image folder {p} does not exist (looked at {path!r}" + (f" and {base / path}" if base else "") + ")"
        )
    label_names = None
    if labels_csv is not None:
        csv_path = Path(labels_csv).expanduser()
        if not csv_path.exists() and (p / labels_csv).exists():
            csv_path = p / labels_csv
        if not csv_path.exists():
            raise FileNotFoundError(f"labels CSV {labels_csv!r} not found (looked at {csv_path} and {p / labels_csv})")
        names, label_names, values = _read_labels_csv(csv_path)
        files = [p / n for n in names]
        absent = [str(f) for f in files if not f.is_file()]
        if absent:
            raise FileNotFoundError(f"{len(absent)} images listed in {csv_path} are missing, e.g. {absent[:3]}")
        y = torch.from_numpy(values[:, 0] if values.shape[1] == 1 else values)
    else:
        files = _list_images(p)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {p}")
        rel = [f.relative_to(p) for f in files]
        if all(len(r.parts) == 2 for r in rel):
            label_names = sorted({r.parts[0] for r in rel})
            lookup = {c: i for i, c in enumerate(label_names)}
            y = torch.tensor([lookup[r.parts[0]] for r in rel], dtype=torch.long)
        else:
            y = None
    tr, te = seeded_split(len(files), n_train, n_test, seed)
    x = load_images([files[i] for i in torch.cat([tr, te]).tolist()], size, channels, square=True)
    yy = None if y is None else y[torch.cat([tr, te])]
    n = len(tr)
    return VAEData(
        "folder",
        ArraySplit(x[:n], None if yy is None else yy[:n]),
        ArraySplit(x[n:], None if yy is None else yy[n:]),
        label_names=label_names,
        info={
            "path": str(p),
            "files_train": [str(files[i]) for i in tr.tolist()],
            "files_test": [str(files[i]) for i in te.tolist()],
        },
    )


def _load_array_file(p: Path, key: str | None, label_key: str | None):
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return np.load(p, allow_pickle=False), None
    if suffix in (".npz", ".pt", ".pth"):
        if suffix == ".npz":
            obj = dict(np.load(p, allow_pickle=False))
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
            if isinstance(obj, torch.Tensor):
                return obj, None
            if isinstance(obj, (tuple, list)) and len(obj) in (1, 2):
                return obj[0], (obj[1] if len(obj) == 2 else None)
            if not isinstance(obj, dict):
                raise ValueError(
                    f"{p}: expected a tensor, a (x, y) tuple or a dict of tensors, got {type(obj).__name__}"
                )
        keys = list(obj)
        xk = key or next((k for k in ("x", "images", "data", "arr_0", "X") if k in obj), None)
        if xk is None or xk not in obj:
            raise ValueError(
                f"{p}: no observation array {key or '(x, images, data, arr_0, X)'!r}; keys: {keys}; pass --data-arg key=NAME"
            )
        yk = label_key or next((k for k in ("y", "labels", "targets", "arr_1") if k in obj), None)
        if label_key is not None and label_key not in obj:
            raise ValueError(f"{p}: no label array {label_key!r}; keys: {keys}")
        return obj[xk], (obj[yk] if yk is not None else None)
    raise ValueError(f"{p}: unsupported file type {suffix!r}; use .npy, .npz or .pt")


@DATASETS.register("arrays", kind="real", shape="from file", factors="")
def arrays(
    root: str | None = None,
    seed: int = 0,
    path: str | None = None,
    key: str | None = None,
    label_key: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
) -> VAEData:
    """Observations from one .npy / .npz / .pt file: (N, D) flat, (N, H, W) grey, (N, C, H, W) or (N, H, W, C).

    .npy holds x only; .npz / a .pt dict hold ``x`` (or images/data/arr_0, or ``key``) and optional ``y``
    (or labels/targets/arr_1, or ``label_key``); a .pt may also hold a tensor or an (x, y) tuple
    (loaded weights-only). uint8 images are divided by 255; float images must lie in [0, 1]; flat data
    is kept as is. Labels must be integers with one row per observation.
    """
    p, _ = _data_path("arrays", path, "<file.npy|.npz|.pt>", root, Path.exists)
    if not p.is_file():
        raise FileNotFoundError(f"array file {p} does not exist")
    x, y = _load_array_file(p, key, label_key)
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if x.dim() not in (2, 3, 4) or len(x) == 0:
        raise ValueError(
            f"{p}: observations must be (N, D), (N, H, W), (N, C, H, W) or (N, H, W, C); got shape {tuple(x.shape)}"
        )
    was_uint8 = x.dtype == torch.uint8
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.dim() == 4 and x.shape[1] not in (1, 3):
        raise ValueError(
            f"{p}: images must have 1 or 3 channels (N, C, H, W) or (N, H, W, C); got shape {tuple(x.shape)}"
        )
    x = x.float().div_(255.0) if was_uint8 else x.float()
    if x.dim() == 4 and not was_uint8 and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{p}: float images must lie in [0, 1] (got [{x.min():.3g}, {x.max():.3g}]); store uint8 or rescale"
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{p}: observations contain NaN or inf")
    if y is not None:
        y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        if len(y) != len(x):
            raise ValueError(f"{p}: {len(y)} labels for {len(x)} observations")
        if y.is_floating_point() and not torch.equal(y, y.round()):
            raise ValueError(f"{p}: labels must be integers")
        y = y.long()
    tr, te = seeded_split(len(x), n_train, n_test, seed)
    return VAEData(
        "arrays",
        ArraySplit(x[tr].contiguous(), None if y is None else y[tr]),
        ArraySplit(x[te].contiguous(), None if y is None else y[te]),
        info={"path": str(p)},
    )
