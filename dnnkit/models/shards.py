"""Sharded Hugging Face weights: `model-0000i-of-0000N.safetensors` plus `model.safetensors.index.json`.

An HF folder output keeps its input's sharding: the largest input shard's tensor bytes become the
output's max shard size (with the same tensors that reproduces the input's layout exactly), unless
`--max-shard-size` is given. Tensors are split greedily in state-dict order, as transformers does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from dnnkit.errors import InputError

if TYPE_CHECKING:
    import torch

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_shard_size(text: str | int | None) -> int | None:
    """`--max-shard-size` in bytes ("500MB", "2GB", "1.5GiB", 1000000); a bad value is an InputError."""
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, int):
        size = text
    else:
        match = _SIZE.match(str(text))
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise InputError(f"--max-shard-size must be a size such as 500MB or 2GB, got {text!r}",
                             hint="units: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB")
        size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise InputError(f"--max-shard-size must be positive, got {text!r}")
    return size


def input_shard_size(folder: Path | None) -> int | None:
    """The max shard size of a sharded safetensors folder (its largest shard's tensor bytes), else None."""
    if folder is None or not (folder / INDEX_NAME).is_file():
        return None
    from dnnkit.models.registry import hf_weight_files
    from dnnkit.models.safetensors_io import read_header

    files = hf_weight_files(folder)
    if len(files) < 2:
        return None
    return max(sum(info.nbytes for info in read_header(f).tensors.values()) for f in files)


def split_shards(tensors: dict[str, torch.Tensor], max_bytes: int | None) -> dict[str, list[str]]:
    """File name -> tensor names: one `model.safetensors`, or greedy shards of at most `max_bytes` each
    (a tensor larger than that gets a shard of its own), named as transformers names them."""
    if max_bytes is None:
        return {SINGLE_NAME: list(tensors)}
    shards: list[list[str]] = []
    current: list[str] = []
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if nbytes > max_bytes:
            shards.append([name])
            continue
        if current and size + nbytes > max_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(name)
        size += nbytes
    if current:
        shards.append(current)
    if len(shards) <= 1:
        return {SINGLE_NAME: list(tensors)}
    n = len(shards)
    return {f"model-{i + 1:05d}-of-{n:05d}.safetensors": names for i, names in enumerate(shards)}


def write_weights(folder: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str],
                  max_bytes: int | None) -> list[str]:
    """Write `tensors` into `folder` as one file or as shards with their index; returns the file names."""
    from dnnkit.models.safetensors_io import save_tensors

    layout = split_shards(tensors, max_bytes)
    for filename, names in layout.items():
        save_tensors(folder / filename, {n: tensors[n] for n in names}, metadata)
    if len(layout) > 1:
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        params = sum(t.numel() for t in tensors.values())
        index = {"metadata": {"total_parameters": params, "total_size": total},
                 "weight_map": {n: filename for filename, names in layout.items() for n in names}}
        (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return list(layout)
