"""Tensor-by-tensor views of weights: header-only facts, and one tensor at a time on demand.

Weight-only operations (inspect, magnitude pruning, SVD truncation) use these so that a large
file is never held in memory as a whole.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from dnnkit.errors import InputError
from dnnkit.models.safetensors_io import SafetensorsHeader, read_header

if TYPE_CHECKING:
    import torch


class WeightSource(Protocol):
    """Named tensors with their dtype and shape known before any data is read."""

    def names(self) -> list[str]: ...

    def dtype(self, name: str) -> str: ...

    def shape(self, name: str) -> tuple[int, ...]: ...

    def get(self, name: str) -> torch.Tensor: ...


class SafetensorsWeights:
    """One or more safetensors files (a single file, or the shards of a Hugging Face folder)."""

    def __init__(self, paths: list[Path]) -> None:
        self.headers: list[SafetensorsHeader] = [read_header(p) for p in paths]
        self._where: dict[str, SafetensorsHeader] = {}
        for h in self.headers:
            for name in h.tensors:
                self._where[name] = h
        self.sparse = self._sparse_specs()

    def _sparse_specs(self) -> dict[str, dict]:
        """Sparse tensors listed by the metadata, checked against the stored parts (header only)."""
        from dnnkit.models.sparse_format import SPARSE_KEY, check_sparse_layout, parse_sparse_metadata

        specs: dict[str, dict] = {}
        stored = {name: (h.tensors[name].dtype, h.tensors[name].shape) for h in self.headers for name in h.tensors}
        for h in self.headers:
            raw = h.metadata.get(SPARSE_KEY)
            if raw:
                parsed = parse_sparse_metadata(raw, str(h.path))
                check_sparse_layout(parsed, stored, str(h.path))
                specs.update({n: {"shape": list(p.shape), "dtype": p.dtype} for n, p in parsed.items()})
        return specs

    def names(self) -> list[str]:
        hidden = {f"{n}.__bitmask" for n in self.sparse} | {f"{n}.__values" for n in self.sparse}
        names = [n for n in self._where if n not in hidden] + list(self.sparse)
        return sorted(names, key=natural_key)

    def dtype(self, name: str) -> str:
        if name in self.sparse:
            return self.sparse[name]["dtype"]
        return self._where[name].tensors[name].dtype

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.sparse:
            return tuple(self.sparse[name]["shape"])
        return self._where[name].tensors[name].shape

    def stored_bytes(self, name: str) -> int:
        """Bytes the tensor takes in the file (mask + values for sparse tensors)."""
        if name in self.sparse:
            h = self._where[f"{name}.__values"]
            return h.tensors[f"{name}.__bitmask"].nbytes + h.tensors[f"{name}.__values"].nbytes
        return self._where[name].tensors[name].nbytes

    def get(self, name: str) -> torch.Tensor:
        from safetensors import safe_open

        from dnnkit.models.sparse_format import decode_sparse_tensors

        if name in self.sparse:
            h = self._where[f"{name}.__values"]
            with safe_open(str(h.path), framework="pt") as fh:
                parts = {k: fh.get_tensor(k) for k in (f"{name}.__bitmask", f"{name}.__values")}
            return decode_sparse_tensors(parts, {"dnnkit.sparse": json.dumps(
                {"format": "bitmask-v1", "tensors": {name: self.sparse[name]}})}, str(h.path))[name]
        h = self._where[name]
        with safe_open(str(h.path), framework="pt") as fh:
            return fh.get_tensor(name)


class StateDictWeights:
    """Tensors already in memory (a built model's state dict)."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def names(self) -> list[str]:
        return list(self.tensors)

    def dtype(self, name: str) -> str:
        from dnnkit.models.safetensors_io import torch_dtype_name

        try:
            return torch_dtype_name(self.tensors[name].dtype)
        except KeyError:
            return str(self.tensors[name].dtype).replace("torch.", "")

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name].shape)

    def get(self, name: str) -> torch.Tensor:
        return self.tensors[name]


class GGUFWeights:
    """Tensors of a GGUF file: names, shapes and quantisation types from the header (memory-mapped)."""

    def __init__(self, path: Path) -> None:
        from dnnkit.models.gguf import open_gguf_reader

        self.path = path
        self.reader = open_gguf_reader(path)
        self._tensors = {t.name: t for t in self.reader.tensors}

    def names(self) -> list[str]:
        return list(self._tensors)

    def dtype(self, name: str) -> str:
        return self._tensors[name].tensor_type.name

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in reversed(self._tensors[name].shape.tolist()))

    def get(self, name: str) -> torch.Tensor:
        """The tensor as fp32: quantised types dequantised, F64 and the integer types (I8 to I64) converted
        (exact up to 2**24); an empty tensor is an empty fp32 tensor of its shape."""
        import numpy as np
        import torch
        from gguf.constants import GGMLQuantizationType as Q
        from gguf.quants import dequantize

        t = self._tensors[name]
        shape = self.shape(name)
        if int(t.n_elements) == 0:
            return torch.zeros(shape)
        try:
            if t.tensor_type in (Q.F64, Q.I8, Q.I16, Q.I32, Q.I64):
                arr = np.asarray(t.data).astype(np.float32)
            else:
                arr = dequantize(t.data, t.tensor_type)
            return torch.from_numpy(np.array(arr, dtype=np.float32)).reshape(shape)
        except NotImplementedError as exc:  # the gguf library dequantises most types, not all (Q8_1, Q8_K)
            raise InputError(f"{self.path}: tensor {name!r} is {t.tensor_type.name}, a type dnnkit cannot "
                             "dequantise") from exc
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{self.path}: tensor {name!r} ({t.tensor_type.name}) cannot be read ({first})") \
                from exc

    def metadata(self) -> dict[str, object]:
        """Descriptive header fields: architecture, name, file type, block count."""
        out: dict[str, object] = {}
        arch = self._field("general.architecture")
        for key in ("general.architecture", "general.name", "general.file_type", f"{arch}.block_count"):
            value = self._field(key)
            if value is not None:
                out[key] = value
        return out

    def _field(self, key: str) -> object:
        field = self.reader.fields.get(key)
        if field is None:
            return None
        try:
            return field.contents()
        except (UnicodeDecodeError, ValueError, IndexError, TypeError) as exc:  # a field is decoded only here
            raise InputError(f"{self.path}: GGUF field {key!r} is malformed ({type(exc).__name__})") from exc


def numel(shape: tuple[int, ...]) -> int:
    """Number of elements of a shape."""
    return math.prod(shape)


def natural_key(name: str) -> list:
    """Sort key that orders `layers.2` before `layers.10`."""
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]
