"""Real datasets read from a local root (``--data-root`` or ``$PYRO_VAES_DATA``), downloaded by
torchvision where the network allows it."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from pyro_vaes.data.base import DATA_ENV, ArraySplit, VAEData, binarize, data_root, file_digest
from pyro_vaes.registry import DATASETS

#: md5 of the uncompressed IDX files, as torchvision publishes them.
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


class MissingDataError(FileNotFoundError):
    """Dataset files are absent; the message says which, where they were looked for, and how to get them."""


MNIST_FILES = list(MNIST_MD5)


def _torchvision_mnist(
    cls_name: str, folder: str, files: list[str], md5: dict[str, str] | None, root: str | None, download: bool
):
    import torchvision.datasets as tvd

    base = data_root(root)
    if base is None:
        base = Path.home() / ".cache" / "pyro_vaes"
    raw = base / folder / "raw"
    missing = [f for f in files if not (raw / f).exists()]
    download_error = ""
    if missing and download:
        try:
            getattr(tvd, cls_name)(str(base), train=True, download=True)
            missing = [f for f in files if not (raw / f).exists()]
        except Exception as err:  # no network: fall through to the clear error below
            download_error = f" (torchvision's download failed: {type(err).__name__}: {err})"
    if missing:
        where = (
            "--data-root/$" + DATA_ENV + " unset, so the default cache" if data_root(root) is None else "the data root"
        )
        raise MissingDataError(
            f"{folder} files missing in {raw} ({where}): {', '.join(missing)}{download_error}. "
            f"Point --data-root (or ${DATA_ENV}) at a folder holding {folder}/raw/ with the uncompressed IDX "
            f"files, or run once with network access and --data-arg download=true so torchvision fetches them."
        )
    if md5:
        for f, expected in md5.items():
            got = file_digest(raw / f, "md5")
            if got != expected:
                raise MissingDataError(
                    f"{raw / f} is corrupt: md5 {got}, expected {expected}; delete it and fetch it again"
                )
    try:
        train = getattr(tvd, cls_name)(str(base), train=True, download=False)
        test = getattr(tvd, cls_name)(str(base), train=False, download=False)
    except (RuntimeError, ValueError, OSError, AssertionError, EOFError) as err:  # torchvision on a damaged IDX file
        raise MissingDataError(
            f"the {folder} files in {raw} cannot be read ({type(err).__name__}); one is truncated "
            "or corrupt: delete them and fetch them again"
        ) from None
    return train, test


def _mnist_like(name: str, cls_name: str, folder: str, md5, root, seed, binarize_mode, n_train, n_test, download):
    for k, v in (("n_train", n_train), ("n_test", n_test)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"{k} must be a positive integer or None, got {v!r}")
    train, test = _torchvision_mnist(cls_name, folder, MNIST_FILES, md5, root, download)

    def to_split(ds, n):
        x = ds.data[:n].unsqueeze(1).float().div_(255.0)
        return ArraySplit(binarize(x, binarize_mode, seed), ds.targets[:n].clone())

    return VAEData(
        name,
        to_split(train, n_train),
        to_split(test, n_test),
        label_names=[str(c) for c in train.classes],
        info={"binarize": binarize_mode},
    )


@DATASETS.register("mnist", kind="real", shape="1x28x28", factors="")
def mnist(
    root: str | None = None,
    seed: int = 0,
    binarize: str = "stochastic",
    n_train: int | None = None,
    n_test: int | None = None,
    download: bool = False,
) -> VAEData:
    """MNIST 28x28 (torchvision ``MNIST/raw`` layout under the data root), binarized by default.

    ``binarize``: ``stochastic`` (one fixed Bernoulli draw per pixel, seeded), ``threshold`` or ``none``
    (grey values in [0, 1], for continuous-Bernoulli or Gaussian likelihoods).
    """
    return _mnist_like("mnist", "MNIST", "MNIST", MNIST_MD5, root, seed, binarize, n_train, n_test, download)


@DATASETS.register("fashion-mnist", kind="real", shape="1x28x28", factors="")
def fashion_mnist(
    root: str | None = None,
    seed: int = 0,
    binarize: str = "none",
    n_train: int | None = None,
    n_test: int | None = None,
    download: bool = False,
) -> VAEData:
    """Fashion-MNIST 28x28 grey (torchvision ``FashionMNIST/raw`` layout under the data root), 10 classes.

    Grey values in [0, 1] by default (``binarize="none"``; ``threshold`` / ``stochastic`` as for MNIST).
    No md5 check: only the md5s of the *compressed* .gz files are published (by torchvision), and this
    loader reads the uncompressed files; we do not invent checksums, so the files are trusted as found.
    """
    return _mnist_like(
        "fashion-mnist", "FashionMNIST", "FashionMNIST", None, root, seed, binarize, n_train, n_test, download
    )


# ---------------------------------------------------------------------------------------------------
# CelebA
# ---------------------------------------------------------------------------------------------------

#: labels built from the official attributes, asked for by name like any other (``labels="Eyeglasses,Facial_Hair"``):
#: CSVAE's facial hair (Klys et al., 2018, §5.2: beard, mustache or goatee) = Goatee or Mustache or not No_Beard
CELEBA_DERIVED = {"Facial_Hair": (("Goatee", 1), ("Mustache", 1), ("No_Beard", 0))}


def derived_celeba_label(name: str, names: list[str], attrs: torch.Tensor) -> torch.Tensor:
    """(N,) 0/1: 1 where any attribute of ``CELEBA_DERIVED[name]`` takes its listed value."""
    return torch.stack([attrs[:, names.index(a)] == v for a, v in CELEBA_DERIVED[name]], 1).any(1).long()


#: the crop most VAE papers apply to the 178x218 aligned CelebA images before resizing to 64x64
#: (a centred 148x148 square, as in DCGAN-style CelebA pipelines, e.g. PyTorch-VAE's CenterCrop(148)).
CELEBA_CROP = 148


def _find_celeba(root: str | None) -> tuple[Path, Path]:
    """(image folder, attribute file) in torchvision's layout or the plain celeba-subset layout."""
    base = data_root(root)
    if base is None:
        raise MissingDataError(
            f"celeba needs a data root: pass --data-root (or set ${DATA_ENV}) to a folder holding celeba/ "
            "(torchvision's layout: celeba/img_align_celeba/ + celeba/list_attr_celeba.txt) or celeba-subset/"
        )
    candidates = [base, base / "celeba", base / "celeba-subset"]
    for d in candidates:
        img = d / "img_align_celeba"
        if img.is_dir():
            for name in ("list_attr_celeba.txt", "list_attr_celeba_subset.txt"):
                if (d / name).is_file():
                    return img, d / name
            attrs = sorted(d.glob("list_attr_celeba*.txt"))
            if attrs:
                return img, attrs[0]
    raise MissingDataError(
        "CelebA not found. Looked for img_align_celeba/ (extracted JPEGs) next to list_attr_celeba*.txt in: "
        + ", ".join(str(c) for c in candidates)
        + f". Point --data-root (or ${DATA_ENV}) at the folder that contains celeba/ or celeba-subset/, or at it "
        "directly. torchvision can download CelebA (torchvision.datasets.CelebA(root, download=True)) where "
        "Google Drive is reachable; unzip img_align_celeba.zip there."
    )


def read_celeba_attributes(path: Path) -> tuple[list[str], list[str], torch.Tensor]:
    """Parse the official attribute file: count line, names line, rows ``file v1 .. v40`` with 1/-1.
    Returns (file names, attribute names, (N, 40) 0/1 long)."""
    with open(path) as f:
        lines = f.read().splitlines()
    try:
        count = int(lines[0].split()[0])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: first line must be the number of images") from None
    names = lines[1].split()
    rows = [ln.split() for ln in lines[2:] if ln.strip()]
    if len(rows) != count:
        raise ValueError(f"{path}: header says {count} images but {len(rows)} rows follow")
    files = [r[0] for r in rows]
    bad = next((i for i, r in enumerate(rows) if len(r) != len(names) + 1), None)
    if bad is not None:
        raise ValueError(f"{path}: row {bad + 3} has {len(rows[bad]) - 1} values for {len(names)} attributes")
    vals = torch.tensor([[int(v) for v in r[1:]] for r in rows], dtype=torch.long)
    return files, names, (vals > 0).long()


@DATASETS.register("celeba", kind="real", shape="3x64x64", factors="")
def celeba(
    root: str | None = None,
    seed: int = 0,
    size: int = 64,
    labels: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
) -> VAEData:
    """CelebA aligned faces, centre-cropped to 148x148 and resized to ``size`` (default 64), RGB in [0, 1].

    Reads torchvision's layout (``<root>/celeba/img_align_celeba/`` + ``list_attr_celeba.txt``) or the
    plain ``celeba-subset`` layout (``img_align_celeba/`` + ``list_attr_celeba_subset.txt``); ``root`` may
    be the parent folder or the dataset folder itself. The 148x148 centred crop of the 178x218 image is
    the one used by most VAE code (e.g. DCGAN-style pipelines, PyTorch-VAE); JPEGs are decoded at half
    DCT scale when that still leaves >= ``size`` pixels, then resized bilinearly with antialiasing.

    ``labels``: comma-separated attribute names (default: all 40) -> y (N, k) 0/1 long, ``label_names``
    the names; ``Facial_Hair`` (Goatee or Mustache or not No_Beard, CSVAE's label) is derived on request.
    Split: a seeded random permutation, ``n_test`` default 10%, ``n_train`` the rest (the official partition
    file is not used). Images are decoded in threads; nothing is written anywhere.
    """
    img_dir, attr_file = _find_celeba(root)
    files, names, attrs = read_celeba_attributes(attr_file)
    if labels is None or labels == "all":
        cols = list(range(len(names)))
    else:
        wanted = [a.strip() for a in str(labels).split(",") if a.strip()]
        for a in dict.fromkeys(a for a in wanted if a in CELEBA_DERIVED and a not in names):
            names, attrs = names + [a], torch.cat([attrs, derived_celeba_label(a, names, attrs)[:, None]], 1)
        unknown = [a for a in wanted if a not in names]
        if unknown or not wanted:
            raise ValueError(
                f"unknown CelebA attribute(s) {unknown}; valid: {', '.join(names + [d for d in CELEBA_DERIVED if d not in names])}"
            )
        cols = [names.index(a) for a in wanted]
    from pyro_vaes.data.folder import load_images, seeded_split

    tr, te = seeded_split(len(files), n_train, n_test, seed)
    order = torch.cat([tr, te])
    paths = [img_dir / files[i] for i in order.tolist()]
    absent = [str(p) for p in paths[:50] if not p.is_file()]
    if absent:
        raise MissingDataError(f"images listed in {attr_file} are missing from {img_dir}, e.g. {absent[:3]}")
    x = load_images(paths, size, 3, crop=(CELEBA_CROP, CELEBA_CROP))
    y = attrs[order][:, cols]
    n = len(tr)
    return VAEData(
        "celeba",
        ArraySplit(x[:n], y[:n]),
        ArraySplit(x[n:], y[n:]),
        label_names=[names[c] for c in cols],
        info={
            "image_dir": str(img_dir),
            "attr_file": str(attr_file),
            "files_train": [files[i] for i in tr.tolist()],
            "files_test": [files[i] for i in te.tolist()],
            "crop": CELEBA_CROP,
        },
    )


# ---------------------------------------------------------------------------------------------------
# Extended Yale B (cropped)
# ---------------------------------------------------------------------------------------------------

_YALE_NAME = re.compile(r"^yaleB(\d\d)_P00A([+-]\d{3})E([+-]\d{2})\.pgm$")


def yaleb_files(folder: Path) -> list[tuple[Path, int, int, int]]:
    """(path, subject number, azimuth, elevation) of every illumination image; ``.bad`` files, the
    ``_Ambient`` images and other files are skipped."""
    out = []
    for p in sorted(folder.glob("yaleB*/*.pgm")):
        m = _YALE_NAME.match(p.name)
        if m:
            out.append((p, int(m.group(1)), int(m.group(2)), int(m.group(3))))
    return out


@DATASETS.register("yaleb", kind="real", shape="1x64x64", factors="")
def yaleb(
    root: str | None = None,
    seed: int = 0,
    size: int = 64,
    channels: int = 1,
    max_angle: float = 100.0,
    with_angles: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
) -> VAEData:
    """Extended Yale Face Database B, cropped (``<root>/CroppedYale/yaleBNN/yaleBNN_P00A±aaaE±ee.pgm``).

    38 subjects -> y in 0..37 (sorted subject numbers; yaleB14 does not exist). N-VAE's filter
    ("keeping images with illumination angles smaller than 100°"): keep |azimuth| < ``max_angle`` and
    |elevation| < ``max_angle`` (elevations never exceed 90°, so in practice this drops azimuths 110,
    120, 130). ``.bad`` files and the ``_Ambient`` images are skipped. The 168x192 images are centre-
    cropped to 168x168 (no aspect distortion; 12 rows lost top and bottom) and resized to ``size``;
    ``channels=3`` repeats grey to RGB (to mix with CelebA).

    Angles: always in ``info["train_angles"]`` / ``info["test_angles"]`` ((N, 2) long: azimuth,
    elevation in degrees); ``with_angles=True`` also makes y (N, 3) = [subject, azimuth, elevation].
    Split: seeded random permutation, ``n_test`` default 10%.
    """
    base = data_root(root)
    candidates = [] if base is None else [base / "CroppedYale", base]
    folder = next((c for c in candidates if c.is_dir() and any(c.glob("yaleB*/*.pgm"))), None)
    if folder is None:
        raise MissingDataError(
            "Extended Yale B (cropped) not found"
            + (
                f"; looked for yaleBNN/*.pgm in {', '.join(map(str, candidates))}"
                if candidates
                else f" (no data root: pass --data-root or set ${DATA_ENV})"
            )
            + ". Download CroppedYale.zip (Extended Yale Face Database B, cropped) and unzip it under the data root."
        )
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    rows = [r for r in yaleb_files(folder) if abs(r[2]) < max_angle and abs(r[3]) < max_angle]
    subjects = sorted({r[1] for r in rows})
    lookup = {s: i for i, s in enumerate(subjects)}
    subj = torch.tensor([lookup[r[1]] for r in rows], dtype=torch.long)
    angles = torch.tensor([[r[2], r[3]] for r in rows], dtype=torch.long)
    from pyro_vaes.data.folder import load_images, seeded_split

    tr, te = seeded_split(len(rows), n_train, n_test, seed)
    order = torch.cat([tr, te])
    x = load_images([rows[i][0] for i in order.tolist()], size, 1, crop=(168, 168))
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    y = torch.cat([subj[:, None], angles], 1)[order] if with_angles else subj[order]
    n = len(tr)
    return VAEData(
        "yaleb",
        ArraySplit(x[:n], y[:n]),
        ArraySplit(x[n:], y[n:]),
        label_names=[f"yaleB{s:02d}" for s in subjects],
        info={
            "train_angles": angles[tr],
            "test_angles": angles[te],
            "y_columns": ["subject", "azimuth", "elevation"] if with_angles else ["subject"],
            "subjects": [f"yaleB{s:02d}" for s in subjects],
            "max_angle": max_angle,
        },
    )
