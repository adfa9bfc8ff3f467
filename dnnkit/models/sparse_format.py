"""The `bitmask-v1` sparse storage of pruned tensors (see specs/prune.md section 5).

Tensor NAME is stored as `NAME.__bitmask` (uint8, element i in C order is bit i % 8 of byte
i // 8, LSB first) and `NAME.__values` (the non-zeros in C order, original dtype). The metadata
key `dnnkit.sparse` lists the encoded tensors with their shapes and dtypes. Loading rebuilds
dense tensors; files shrink, inference does not get faster.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from dnnkit.errors import RuntimeFailure

if TYPE_CHECKING:
    import torch

SPARSE_KEY = "dnnkit.sparse"
FORMAT = "bitmask-v1"
_BITS = None


def _bit_weights() -> torch.Tensor:
    import torch

    global _BITS
    if _BITS is None:
        _BITS = torch.tensor([1 << i for i in range(8)], dtype=torch.uint8)
    return _BITS


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """Pack a boolean tensor into LSB-first bytes (C order)."""
    import torch

    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.view(-1, 8) * _bit_weights()).sum(dim=1, dtype=torch.uint8)


def unpack_mask(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """Inverse of `pack_mask`: a flat boolean tensor of `numel` elements."""
    bits = packed.reshape(-1, 1).bitwise_and(_bit_weights()).ne(0)
    return bits.reshape(-1)[:numel]


def sparse_pays(numel: int, nnz: int, itemsize: int) -> bool:
    """True when mask + values take fewer bytes than the dense tensor."""
    return math.ceil(numel / 8) + nnz * itemsize < numel * itemsize


def encode_sparse(name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """Split one tensor into its bitmask and values entries."""
    flat = tensor.reshape(-1)
    mask = flat != 0
    return {f"{name}.__bitmask": pack_mask(mask), f"{name}.__values": flat[mask].contiguous()}


def sparse_metadata(entries: dict[str, torch.Tensor]) -> str:
    """The JSON value of the `dnnkit.sparse` metadata key for the given dense tensors."""
    from dnnkit.models.safetensors_io import torch_dtype_name

    return json.dumps({"format": FORMAT, "tensors": {
        name: {"shape": list(t.shape), "dtype": torch_dtype_name(t.dtype)} for name, t in entries.items()}})


def decode_sparse_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str],
                          where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Rebuild dense tensors from `bitmask-v1` entries; other tensors pass through."""
    raw = metadata.get(SPARSE_KEY)
    if raw is None:
        return tensors
    info = json.loads(raw)
    if info.get("format") != FORMAT:
        raise RuntimeFailure(f"{where}: unsupported sparse format {info.get('format')!r}")
    out = dict(tensors)
    for name, spec in info["tensors"].items():
        mask_key, values_key = f"{name}.__bitmask", f"{name}.__values"
        if mask_key not in out or values_key not in out:
            raise RuntimeFailure(f"corrupt sparse tensor {name}: bitmask or values missing in {where}")
        shape = tuple(spec["shape"])
        numel = math.prod(shape)
        packed, values = out.pop(mask_key), out.pop(values_key)
        if packed.numel() != math.ceil(numel / 8):
            raise RuntimeFailure(f"corrupt sparse tensor {name}: bitmask size does not match shape {shape}")
        mask = unpack_mask(packed, numel)
        if int(mask.sum()) != values.numel():
            raise RuntimeFailure(f"corrupt sparse tensor {name}: popcount(mask) != number of values")
        dense = values.new_zeros(numel)
        dense[mask] = values
        out[name] = dense.reshape(shape)
    return out
