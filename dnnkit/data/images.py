"""Image datasets: scikit-learn digits, Fashion-MNIST (Debian package), image folders, npz arrays."""

from __future__ import annotations

import gzip
import io
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_IMAGE_PIXELS = 4096 * 4096  # per image: a small file may decode to any size, so the header is checked first
MAX_IMAGE_FILE_BYTES = 256 * 1024**2  # one image file; it is read whole, so a chunk length it claims reads no more
MAX_CLASSES = 100_000
GREY_MODES = ("L", "1", "I", "I;16")
MAX_NPZ_BYTES = 16 * 1024**3  # decoded arrays of one npz (a zip may inflate a tiny file to any size)
MAX_NPZ_RATIO = 1000  # ... and no more than this many times the file's size


def load_imagefolder(path: Path, split: str) -> ImageData:
    """A folder of class sub-folders of images (all one size); stratified 80/20 split (fixed)."""
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise InputError(f"imagefolder {path}: no class sub-folders")
    if len(classes) > MAX_CLASSES:
        raise InputError(f"imagefolder {path}: {len(classes)} class folders (at most {MAX_CLASSES})")
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((path / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                continue
            img = read_image(f)
            xs.append(img[None] if img.ndim == 2 else img.transpose(2, 0, 1))
            ys.append(label)
    if not xs:
        raise InputError(f"imagefolder {path}: no images found")
    if len({x.shape for x in xs}) != 1:
        raise InputError(f"imagefolder {path}: images differ in size or colour mode",
                         hint="resize them to one size (and one mode) first")
    y = np.array(ys)
    idx = _stratified_split(y, 0.2, split) if len(set(ys)) > 1 and min(np.bincount(y)) >= 2 else np.arange(len(y))
    return _to_data(f"imagefolder:{path}", np.stack(xs)[idx], y[idx], classes)


def image_bytes(f: Path) -> io.BytesIO:
    """An image file's bytes, for PIL to decode from memory: a chunk whose length field claims gigabytes
    then reads only what the file holds, where a file object would first allocate the claimed length."""
    size = f.stat().st_size
    if size > MAX_IMAGE_FILE_BYTES:
        raise InputError(f"image {f} is {size} bytes (at most {MAX_IMAGE_FILE_BYTES} per image file)")
    return io.BytesIO(f.read_bytes())


def read_image(f: Path, mode: str | None = None) -> np.ndarray:
    """One image file as float32 in [0, 1] (H x W grey, or H x W x 3; `mode` "L" or "RGB" converts, by
    default grey stays grey); a broken or huge file is an InputError, checked before it is decoded."""
    import warnings

    from PIL import Image

    data = image_bytes(f)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(data) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS or width * height == 0:
                    raise InputError(f"image {f} is {width}x{height} pixels (at most {MAX_IMAGE_PIXELS} per image)")
                mode = mode or ("L" if img.mode in GREY_MODES else "RGB")
                return np.asarray(img.convert(mode), dtype=np.float32) / 255.0
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ValueError, ...)
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise InputError(f"image {f} cannot be read ({type(exc).__name__}: {first})") from exc


def load_npz(path: Path, split: str) -> ImageData:
    """Arrays `x_train/y_train/x_test/y_test`, or `x/y` split 80/20 (fixed); x as NCHW, NHW or NC.

    Only numeric arrays are read (never pickled objects); each array's header is checked against
    what the file holds before it is decoded.
    """
    arrays = _read_npz(path)
    if f"x_{split}" in arrays and f"y_{split}" in arrays:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        _check_xy(path, x, y)
    elif "x" in arrays and "y" in arrays:
        x_all, y_all = arrays["x"], arrays["y"]
        _check_xy(path, x_all, y_all)
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


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays named x/y/x_train/... of an npz, decoded only after their headers pass the checks."""
    import zipfile

    wanted = {"x", "y", "x_train", "y_train", "x_test", "y_test"}
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            members = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")
                       and i.filename[:-4] in wanted}
            total = 0
            for name, info in members.items():
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(fh)
                if dtype.hasobject or dtype.kind not in "biuf":
                    raise InputError(f"npz {path}: array {name} has dtype {dtype} (only numbers are read)")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if nbytes > info.file_size:
                    raise InputError(f"npz {path}: array {name} claims {nbytes} bytes, the file holds "
                                     f"{info.file_size}")
                total += info.file_size
            if total > MAX_NPZ_BYTES or total > MAX_NPZ_RATIO * max(size, 1):
                raise InputError(f"npz {path}: its arrays inflate to {total} bytes from a {size}-byte file",
                                 hint="store the arrays uncompressed (np.savez) or split the dataset")
            return {name: np.lib.format.read_array(zf.open(info), allow_pickle=False)
                    for name, info in members.items()}
    except InputError:
        raise
    except MemoryError as exc:
        raise InputError(f"npz {path}: its arrays do not fit in memory") from exc
    except Exception as exc:  # noqa: BLE001 - zipfile/numpy raise many types on a corrupt file
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise InputError(f"npz {path}: cannot read ({type(exc).__name__}: {first})") from exc


def _check_xy(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """x holds N inputs (N x D, N x H x W or N x C x H x W), y N integer labels from 0 to MAX_CLASSES - 1."""
    if x.ndim not in (2, 3, 4) or y.ndim != 1 or len(x) != len(y):
        raise InputError(f"npz {path}: x must be N x D, N x H x W or N x C x H x W and y N labels "
                         f"(got x {tuple(x.shape)}, y {tuple(y.shape)})")
    if len(y) == 0:
        raise InputError(f"npz {path}: the arrays are empty")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise InputError(f"npz {path}: x holds NaN or infinite values")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and np.equal(np.mod(y, 1), 0).all()):
        raise InputError(f"npz {path}: y must hold integer class labels")
    if y.dtype.kind == "b" or y.min() < 0 or y.max() >= MAX_CLASSES:
        raise InputError(f"npz {path}: labels must be integers from 0 to {MAX_CLASSES - 1}")
