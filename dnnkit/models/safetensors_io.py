"""Safetensors access without trusting the file: header-only reads, validated loads, streamed writes.

The header is parsed and checked here (sizes, offsets, dtypes) before the safetensors library
touches the data, so a truncated file, random bytes, or a header that claims more data than the
file holds is an `InputError` with one clear line, never a crash deep inside a loader.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnnkit.errors import CorruptCheckpointError

if TYPE_CHECKING:
    import torch

DTYPE_SIZES: dict[str, float] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 0.5,
}
MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a safetensors file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass
class SafetensorsHeader:
    """The parsed, validated header of one safetensors file."""

    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    data_start: int = 0
    file_size: int = 0

    @property
    def num_params(self) -> int:
        return sum(t.numel for t in self.tensors.values())

    def dnnkit_record(self) -> dict[str, Any] | None:
        """The dnnkit JSON record stored in the metadata, if any (validated: see `models.record`)."""
        raw = self.metadata.get("dnnkit")
        if raw is None:
            return None
        from dnnkit.models.record import parse_record

        return parse_record(raw, str(self.path))


MAX_DIM = 2**62  # no axis of a real tensor is longer; keeps every size computation in 64 bits


def parse_json(raw: bytes | str, where: str, what: str) -> Any:
    """`json.loads` of untrusted text: every failure (bad UTF-8, syntax, nesting too deep, an integer of
    thousands of digits) is one CorruptCheckpointError naming `what`."""
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise CorruptCheckpointError(f"{where}: {what} is not valid JSON ({reason})") from exc


def read_header(path: str | Path) -> SafetensorsHeader:
    """Read and validate a safetensors header without reading tensor data.

    Accepts exactly what the safetensors library loads: known dtypes, integer shapes, offsets that
    tile the data section from byte 0 to the end of the file without gaps or overlaps.
    """
    path = Path(path)
    where = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CorruptCheckpointError(f"cannot read {where}: {exc.strerror}") from exc
    if size < 8:
        raise CorruptCheckpointError(f"{where} is not a safetensors file (only {size} bytes)")
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
            raise CorruptCheckpointError(
                f"{where} is not a valid safetensors file (header length {n} does not fit a {size}-byte file)",
                hint="the file may be truncated or not safetensors at all")
        raw = fh.read(n)
    if not raw.startswith(b"{"):
        raise CorruptCheckpointError(f"{where} is not a valid safetensors file (header is not a JSON object)")
    header = parse_json(raw, where, "the safetensors header")
    if not isinstance(header, dict):
        raise CorruptCheckpointError(f"{where} is not a valid safetensors file (header is not an object)")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CorruptCheckpointError(f"{where}: __metadata__ must map strings to strings")
    data_len = size - 8 - n
    tensors = {name: _tensor_info(where, name, entry) for name, entry in header.items()}
    _check_layout(where, tensors, data_len)
    return SafetensorsHeader(path=path, tensors=tensors, metadata=dict(metadata), data_start=8 + n,
                             file_size=size)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _tensor_info(where: str, name: str, entry: Any) -> TensorInfo:
    if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}):
        raise CorruptCheckpointError(f"{where}: tensor {name!r} has a malformed header entry "
                                     "(needs exactly dtype, shape, data_offsets)")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not (isinstance(dtype, str) and dtype in DTYPE_SIZES):
        raise CorruptCheckpointError(f"{where}: tensor {name!r} has unknown dtype {_short(dtype)}")
    if not (isinstance(shape, list) and all(_is_int(d) and 0 <= d <= MAX_DIM for d in shape)):
        raise CorruptCheckpointError(f"{where}: tensor {name!r} has an invalid shape {_short(shape)}")
    if math.prod(max(d, 1) for d in shape) > MAX_DIM:
        raise CorruptCheckpointError(f"{where}: tensor {name!r} has an absurd shape {_short(shape)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise CorruptCheckpointError(f"{where}: tensor {name!r} has invalid data offsets {_short(offsets)}")
    begin, end = offsets
    bits = math.prod(shape) * int(DTYPE_SIZES[dtype] * 8)
    if bits % 8:
        raise CorruptCheckpointError(f"{where}: tensor {name!r} of dtype {dtype} does not fill whole bytes")
    if end - begin != bits // 8:
        raise CorruptCheckpointError(
            f"{where}: tensor {name!r} claims {end - begin} bytes but its shape needs {bits // 8}")
    return TensorInfo(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def _check_layout(where: str, tensors: dict[str, TensorInfo], data_len: int) -> None:
    """The tensors must tile the data section: from byte 0, no gap, no overlap, up to the end of the file."""
    end = max((t.end for t in tensors.values()), default=0)
    if end > data_len:
        raise CorruptCheckpointError(
            f"{where} is truncated: its header claims {end} bytes of data, the file holds {data_len}")
    pos = 0
    for t in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if t.begin != pos:
            raise CorruptCheckpointError(f"{where}: tensor {t.name!r} starts at byte {t.begin}, expected {pos} "
                                         "(tensors overlap or leave a gap)")
        pos = t.end
    if pos != data_len:
        raise CorruptCheckpointError(f"{where}: {data_len - pos} bytes after the last tensor "
                                     "(the header does not describe the whole file)")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def iter_tensors(path: str | Path, names: Iterable[str] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) one at a time, in file order unless `names` gives an order."""
    from safetensors import safe_open

    header = read_header(path)
    order = list(names) if names is not None else sorted(header.tensors, key=lambda k: header.tensors[k].begin)
    with safe_open(str(path), framework="pt") as fh:
        for name in order:
            yield name, fh.get_tensor(name)


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load every tensor of a validated safetensors file (sparse-format tensors are decoded)."""
    from safetensors.torch import load_file

    from dnnkit.models.sparse_format import decode_sparse_tensors

    header = read_header(path)
    tensors = load_file(str(path))
    return decode_sparse_tensors(tensors, header.metadata, where=str(path))


def torch_dtype_name(dtype: torch.dtype) -> str:
    """The safetensors dtype code of a torch dtype."""
    import torch

    table = {
        torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
        torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
        torch.bool: "BOOL",
    }
    return table[dtype]


class StreamingWriter:
    """Write a safetensors file tensor by tensor, holding one tensor in memory at a time.

    The caller declares every tensor's (dtype, shape) first, since the header precedes the data,
    then calls `write(name, tensor)` for each, in declaration order.
    """

    def __init__(self, path: str | Path, specs: dict[str, tuple[str, tuple[int, ...]]],
                 metadata: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self._order = list(specs)
        self._specs = specs
        header: dict[str, Any] = {}
        if metadata:
            header["__metadata__"] = metadata
        offset = 0
        for name in self._order:
            dtype, shape = specs[name]
            nbytes = math.ceil(math.prod(shape) * DTYPE_SIZES[dtype])
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed by close()/__exit__
        self._fh.write(struct.pack("<Q", len(raw)))
        self._fh.write(raw)
        self._next = 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Append the data of the next declared tensor."""
        if self._next >= len(self._order) or self._order[self._next] != name:
            raise ValueError(f"expected tensor {self._order[self._next]!r}, got {name!r}")
        dtype, shape = self._specs[name]
        if torch_dtype_name(tensor.dtype) != dtype or tuple(tensor.shape) != tuple(shape):
            raise ValueError(f"tensor {name!r} does not match its declared dtype/shape")
        self._fh.write(_tensor_bytes(tensor))
        self._next += 1

    def close(self) -> None:
        """Flush; raises if some declared tensors were never written."""
        self._fh.close()
        if self._next != len(self._order):
            raise ValueError(f"{len(self._order) - self._next} declared tensors were not written")

    def __enter__(self) -> StreamingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._fh.close()


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    import torch

    t = tensor.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write tensors to `path` (not atomic by itself: call inside `atomic_file`)."""
    specs = {name: (torch_dtype_name(t.dtype), tuple(t.shape)) for name, t in tensors.items()}
    with StreamingWriter(path, specs, metadata) as writer:
        for name, tensor in tensors.items():
            writer.write(name, tensor)
