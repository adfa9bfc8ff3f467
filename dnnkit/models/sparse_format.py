"""The `bitmask-v1` sparse storage of pruned tensors (see specs/prune.md section 5).

Tensor NAME is stored as `NAME.__bitmask` (uint8, element i in C order is bit i % 8 of byte
i // 8, LSB first) and `NAME.__values` (the non-zeros in C order, original dtype). The metadata
key `dnnkit.sparse` lists the encoded tensors with their shapes and dtypes. Loading rebuilds
dense tensors; files shrink, inference does not get faster.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, NamedTuple

from dnnkit.errors import CorruptCheckpointError

if TYPE_CHECKING:
    import torch

SPARSE_KEY = "dnnkit.sparse"
FORMAT = "bitmask-v1"
_BITS = None


class SparseSpec(NamedTuple):
    """The dense shape and dtype of one tensor stored as bitmask + values."""

    shape: tuple[int, ...]
    dtype: str


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


def parse_sparse_metadata(raw: str, where: str) -> dict[str, SparseSpec]:
    """The tensors a `dnnkit.sparse` metadata value lists, checked: name -> (shape, dtype)."""
    from dnnkit.models.safetensors_io import DTYPE_SIZES, MAX_DIM, parse_json

    info = parse_json(raw, where, f"the {SPARSE_KEY} metadata")
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        found = info.get("format") if isinstance(info, dict) else None
        raise CorruptCheckpointError(f"{where}: unsupported sparse format {str(found)[:40]!r} (expected {FORMAT})")
    tensors = info.get("tensors")
    if not isinstance(tensors, dict):
        raise CorruptCheckpointError(f"{where}: the {SPARSE_KEY} metadata lists no tensors")
    out: dict[str, SparseSpec] = {}
    for name, spec in tensors.items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        dtype = spec.get("dtype") if isinstance(spec, dict) else None
        if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DIM
                                                for d in shape) and math.prod(max(d, 1) for d in shape) <= MAX_DIM):
            raise CorruptCheckpointError(f"corrupt sparse tensor {name}: invalid shape in {where}")
        if not (isinstance(dtype, str) and dtype in DTYPE_SIZES and dtype not in ("F4",)):
            raise CorruptCheckpointError(f"corrupt sparse tensor {name}: invalid dtype in {where}")
        out[name] = SparseSpec(tuple(shape), dtype)
    return out


def check_sparse_layout(specs: dict[str, SparseSpec], stored: dict[str, tuple[str, tuple[int, ...]]],
                        where: str) -> None:
    """Header-only check of each sparse tensor's stored parts (`stored`: name -> (dtype, shape)): the bitmask
    is U8 with one bit per element, the values have the listed dtype and at most one per element."""
    for name, spec in specs.items():
        mask, values = stored.get(f"{name}.__bitmask"), stored.get(f"{name}.__values")
        if mask is None or values is None:
            raise CorruptCheckpointError(f"corrupt sparse tensor {name}: bitmask or values missing in {where}")
        numel = math.prod(spec.shape)
        if mask[0] != "U8" or math.prod(mask[1]) != math.ceil(numel / 8):
            raise CorruptCheckpointError(f"corrupt sparse tensor {name}: bitmask size does not match shape "
                                         f"{spec.shape} in {where}")
        if values[0] != spec.dtype or len(values[1]) != 1 or values[1][0] > numel:
            raise CorruptCheckpointError(f"corrupt sparse tensor {name}: values do not match dtype {spec.dtype} "
                                         f"and shape {spec.shape} in {where}")


def decode_sparse_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str],
                          where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Rebuild dense tensors from `bitmask-v1` entries; other tensors pass through.

    The dense size comes from the metadata but is bounded by the file: the bitmask stored in it holds
    one bit per element (checked before anything is allocated).
    """
    from dnnkit.models.safetensors_io import torch_dtype_name

    raw = metadata.get(SPARSE_KEY)
    if raw is None:
        return tensors
    specs = parse_sparse_metadata(raw, where)
    stored = {}
    for name, t in tensors.items():
        try:
            stored[name] = (torch_dtype_name(t.dtype), tuple(t.shape))
        except KeyError:
            stored[name] = (str(t.dtype), tuple(t.shape))
    check_sparse_layout(specs, stored, where)
    out = dict(tensors)
    for name, spec in specs.items():
        packed, values = out.pop(f"{name}.__bitmask"), out.pop(f"{name}.__values")
        numel = math.prod(spec.shape)
        mask = unpack_mask(packed, numel)
        if int(mask.sum()) != values.numel():
            raise CorruptCheckpointError(f"corrupt sparse tensor {name}: popcount(mask) != number of values "
                                         f"in {where}")
        dense = values.new_zeros(numel)
        dense[mask] = values
        out[name] = dense.reshape(spec.shape)
    return out
