"""Image datasets: scikit-learn digits, Fashion-MNIST (Debian package), image folders, npz arrays."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from dnnkit.data.registry import ImageData
from dnnkit.errors import InputError

FASHION_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
SPLIT_SEED = 0  # fixed train/test partition for datasets without an official one


def _to_data(name: str, x: np.ndarray, y: np.ndarray, classes: list[str]) -> ImageData:
    import torch

    return ImageData(name, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                     torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)), classes)


def _stratified_split(y: np.ndarray, test_fraction: float, split: str) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if len(y) < 2:
        return idx
    counts = np.unique(y, return_counts=True)[1]
    n_test = int(np.ceil(test_fraction * len(y)))
    # Stratify when every class can appear on both sides; a small set gets a plain (fixed) shuffle split.
    stratify = y if counts.min() >= 2 and len(counts) <= n_test <= len(y) - len(counts) else None
    train, test = train_test_split(idx, test_size=test_fraction, stratify=stratify, random_state=SPLIT_SEED)
    return np.sort(train if split == "train" else test)


def load_digits_split(split: str) -> ImageData:
    """scikit-learn's 8x8 digits, scaled to [0, 1], stratified 70/30 split (fixed)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0)[:, None, :, :]
    idx = _stratified_split(bunch.target, 0.3, split)
    return _to_data("digits", x[idx], bunch.target[idx], [str(i) for i in range(10)])


def fashion_mnist_dir() -> Path:
    """The folder of the Debian package `dataset-fashion-mnist`, or an error with the install command."""
    for d in FASHION_DIRS:
        if (d / "train-images-idx3-ubyte.gz").exists():
            return d
    raise InputError("Fashion-MNIST is not installed",
                     hint="install it with: apt-get install dataset-fashion-mnist (or run `make setup`)")


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(split: str) -> ImageData:
    """Fashion-MNIST official split (60k train / 10k test), 1x28x28 in [0, 1]."""
    d = fashion_mnist_dir()
    prefix = "train" if split == "train" else "t10k"
    x = _read_idx(d / f"{prefix}-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
    y = _read_idx(d / f"{prefix}-labels-idx1-ubyte.gz")
    return _to_data("fashion-mnist", x, y, FASHION_CLASSES)


def load_imagefolder(path: Path, split: str) -> ImageData:
    """A folder of class sub-folders of images (all one size); stratified 80/20 split (fixed)."""
    from PIL import Image

    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise InputError(f"imagefolder {path}: no class sub-folders")
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((path / cls).iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"):
                continue
            img = np.asarray(Image.open(f).convert("L" if _is_gray(f) else "RGB"), dtype=np.float32) / 255.0
            xs.append(img[None] if img.ndim == 2 else img.transpose(2, 0, 1))
            ys.append(label)
    if not xs:
        raise InputError(f"imagefolder {path}: no images found")
    if len({x.shape for x in xs}) != 1:
        raise InputError(f"imagefolder {path}: images differ in size", hint="resize them to one size first")
    y = np.array(ys)
    idx = _stratified_split(y, 0.2, split) if len(set(ys)) > 1 and min(np.bincount(y)) >= 2 else np.arange(len(y))
    return _to_data(f"imagefolder:{path}", np.stack(xs)[idx], y[idx], classes)


def _is_gray(f: Path) -> bool:
    from PIL import Image

    with Image.open(f) as img:
        return img.mode in ("L", "1", "I", "I;16")


def load_npz(path: Path, split: str) -> ImageData:
    """Arrays `x_train/y_train/x_test/y_test`, or `x/y` split 80/20 (fixed); x as NCHW, NHW or NC."""
    try:
        arrays = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"npz {path}: cannot read ({exc})") from exc
    if f"x_{split}" in arrays and f"y_{split}" in arrays:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    elif "x" in arrays and "y" in arrays:
        x_all, y_all = arrays["x"], arrays["y"]
        idx = _stratified_split(y_all, 0.2, split)
        x, y = x_all[idx], y_all[idx]
    else:
        raise InputError(f"npz {path}: needs arrays x and y (or x_train, y_train, x_test, y_test)")
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.max(initial=0) > 1.5:
        x = x / 255.0
    n_classes = int(y.max()) + 1 if len(y) else 0
    return _to_data(f"npz:{path}", x, y.astype(np.int64), [str(i) for i in range(n_classes)])
