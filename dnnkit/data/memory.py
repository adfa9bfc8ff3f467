"""Data handed in from Python (the API's `data=`): tensors, arrays, a DataLoader, or token ids.

Each is registered under a `memory:N` spec, so every surgery and probe reads it through the same
`load_data(spec, split)` as a `--data` value. Forms:

- `(x, y)` images (N x C x H x W, or N x H x W / N x D) and integer labels: split 80/20 (fixed,
  stratified when every class allows) like `npz:` arrays `x`/`y`;
- `{"train": (x, y), "test": (x, y)}`: the two splits as given;
- a tensor of token ids (N x T, integers) for a language model: blocks as they are (same 80/20 rule),
  or `{"train": ids, "test": ids}`;
- a DataLoader (or any iterable) of `(x, y)` batches or of token-id tensors: gathered once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from dnnkit.errors import InputError

PREFIX = "memory:"
_STORE: dict[str, dict[str, Any]] = {}
_IDS = itertools.count(1)


@dataclass
class TokenData:
    """Token-id blocks (N x T) for a language model, used as they are (no tokenizer needed)."""

    name: str
    ids: Any  # torch.LongTensor (N, T)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, indices: Any) -> TokenData:
        import torch

        return TokenData(self.name, self.ids[torch.as_tensor(list(indices), dtype=torch.long)])


def as_data_spec(data: Any) -> str | None:
    """A `--data` spec for whatever the API was given (a spec string passes through)."""
    if data is None or isinstance(data, str):
        return data
    splits = data if isinstance(data, dict) else None
    if splits is not None:
        if set(splits) != {"train", "test"}:
            raise InputError("data={...} must have exactly the keys 'train' and 'test'")
        parts = {k: _one(v) for k, v in splits.items()}
        if type(parts["train"]) is not type(parts["test"]):
            raise InputError("data={'train': ..., 'test': ...} must hold the same kind of data twice")
    else:
        whole = _one(data)
        parts = {"train": _split(whole, "train"), "test": _split(whole, "test")}
    spec = f"{PREFIX}{next(_IDS)}"
    for part in parts.values():
        part.name = spec
    _STORE[spec] = parts
    return spec


def memory_kind(spec: str) -> str:
    """`memory-images` or `memory-tokens` for a registered spec (InputError when unknown)."""
    parts = _STORE.get(spec)
    if parts is None:
        raise InputError(f"--data {spec!r} names no data registered in this process")
    return "memory-tokens" if isinstance(parts["train"], TokenData) else "memory-images"


def load_memory(spec: str, split: str) -> Any:
    """The registered split."""
    memory_kind(spec)
    return _STORE[spec][split]


def _one(value: Any) -> Any:
    """ImageData or TokenData from a pair, a tensor of ids, or an iterable of batches."""
    import numpy as np
    import torch

    from dnnkit.data.registry import ImageData

    if isinstance(value, (tuple, list)) and len(value) == 2 and not _is_batch_iterable(value):
        x, y = (torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v for v in value)
        return _images(x, y)
    if isinstance(value, (torch.Tensor, np.ndarray)):
        ids = torch.as_tensor(value)
        if ids.dtype.is_floating_point or ids.dim() != 2:
            raise InputError("a tensor given as data= must hold token ids (N x T integers); pass images as (x, y)")
        return TokenData("", ids.long())
    if hasattr(value, "__iter__"):
        batches = list(value)
        if not batches:
            raise InputError("data= gave no batches")
        if all(isinstance(b, (tuple, list)) and len(b) >= 2 for b in batches):
            return _images(torch.cat([torch.as_tensor(b[0]) for b in batches]),
                           torch.cat([torch.as_tensor(b[1]) for b in batches]))
        return _one(torch.cat([torch.as_tensor(b) for b in batches]))
    if isinstance(value, ImageData):
        return value
    raise InputError(f"cannot use {type(value).__name__} as data=",
                     hint="pass a --data spec, an (x, y) pair, token ids (N x T), or a DataLoader")


def _is_batch_iterable(value: Any) -> bool:
    return hasattr(value, "__iter__") and not isinstance(value, (tuple, list))


def _images(x: Any, y: Any) -> Any:
    from dnnkit.data.registry import ImageData

    x = x.float()
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() not in (2, 4):
        raise InputError(f"data= images must be N x C x H x W (or N x H x W, N x D), got {tuple(x.shape)}")
    y = y.long().reshape(-1)
    if len(y) != len(x):
        raise InputError(f"data= holds {len(x)} inputs but {len(y)} labels")
    n_classes = int(y.max()) + 1 if len(y) else 0
    return ImageData("", x.contiguous(), y, [str(i) for i in range(n_classes)])


def _split(whole: Any, split: str) -> Any:
    import numpy as np

    from dnnkit.data.images import _stratified_split

    labels = whole.y.numpy() if not isinstance(whole, TokenData) else np.zeros(len(whole), dtype=np.int64)
    return whole.take(_stratified_split(labels, 0.2, split))
