"""Images for a model: a dataset split or a file, checked against the model with one forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dnnkit.data.images import read_image
from dnnkit.errors import InputError


def logits_of(out: Any) -> torch.Tensor:
    """A model's output as one tensor (`.logits` of a ModelOutput, first item of a tuple)."""
    if hasattr(out, "logits"):
        out = out.logits
    elif isinstance(out, (tuple, list)):
        out = out[0]
    return out


def check_accepts(model: nn.Module, x: torch.Tensor, where: str, expected: tuple[int, ...] | None) -> None:
    """One forward pass on one example; a model that rejects the shape is an InputError naming both shapes."""
    try:
        with torch.no_grad():
            logits_of(model(x[:1]))
    except (RuntimeError, ValueError, IndexError) as exc:
        want = "x".join(map(str, expected)) if expected else "another shape"
        raise InputError(f"{where} gives inputs of shape {'x'.join(map(str, x.shape[1:]))} but the model expects "
                         f"{want} ({str(exc).splitlines()[0][:120]})") from exc


def load_split(data: str, split: str) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None]:
    """(x, y, classes) of an image dataset split; text data is refused."""
    from dnnkit.data import ImageData, load_data

    loaded = load_data(data, split)
    if not isinstance(loaded, ImageData):
        raise InputError(f"--data {data} is not an image dataset; these probes read image classifiers")
    return loaded.x, loaded.y, loaded.classes


def load_input_file(path: str, expected: tuple[int, ...] | None) -> torch.Tensor:
    """One input (or a batch) from .npy (never pickled) or an image file, as float32 N x ...; images in [0, 1]."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--input {path}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"--input {path}: not a readable .npy array ({exc})") from exc
        if not np.issubdtype(arr.dtype, np.number):
            raise InputError(f"--input {path}: array dtype {arr.dtype} is not numeric")
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    elif suffix in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"):
        channels = expected[0] if expected else 1
        arr = read_image(p, "L" if channels == 1 else "RGB")
        if expected and len(expected) == 3 and arr.shape[:2] != (expected[1], expected[2]):
            raise InputError(f"--input {path} is {arr.shape[1]}x{arr.shape[0]} pixels but the model expects "
                             f"{expected[2]}x{expected[1]}", hint="resize the image first")
        x = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
    else:
        raise InputError(f"--input {path}: expected a .npy array or an image (.png, .jpg)")
    if not torch.isfinite(x).all():
        raise InputError(f"--input {path} holds NaN or Inf values")
    if expected is not None and tuple(x.shape) == tuple(expected):
        x = x[None]
    elif expected is not None and x.dim() == len(expected) + 1 and tuple(x.shape[1:]) == tuple(expected):
        pass
    elif expected is None or x.dim() == len(expected):
        x = x[None]
    return x
